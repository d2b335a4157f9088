"""A real JupyterLab driven in Debian's Chromium (Playwright), for the browser tests.

`JupyterLab` runs `jupyter lab` on a free port with a token and a store, config,
settings and workspace of its own, and can restart on the same port and root (what a
user does when they come back to a saved notebook). `chromium_page` opens one page.
Screenshots and the server log land in tests/artifacts/<name>/.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_core.paths import jupyter_path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
VISIBLE_NOTEBOOK = ".jp-NotebookPanel:visible"


def sync_playwright() -> Any:
    """Playwright's entry point; skips (saying why) when Chromium or Playwright is missing."""
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (`make chromium` installs it)")
    try:
        from playwright.sync_api import sync_playwright as entry
    except ImportError as exc:
        pytest.skip(f"playwright is not installed: {exc}")
    return entry


def write_notebook(path: Path, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """`jupyter lab` on 127.0.0.1 over ROOT, with LLMOPS_NB_HOME=HOME."""

    def __init__(self, workdir: Path, home: Path, artifacts: Path) -> None:
        if not any(
            Path(d, "llmops_nb", "package.json").exists() for d in jupyter_path("labextensions")
        ):
            pytest.fail("the llmops_nb labextension is not installed: run `make install`")
        self.workdir, self.home, self.artifacts = workdir, home, artifacts
        self.root = workdir / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        self.token, self.port = secrets.token_hex(16), _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._starts = 0
        # A user settings dir of its own: no news prompt, no update check.
        self.settings = workdir / "lab_settings"
        notification = (
            self.settings
            / "@jupyterlab"
            / "apputils-extension"
            / "notification.jupyterlab-settings"
        )
        notification.parent.mkdir(parents=True, exist_ok=True)
        notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        # Start the notebook's kernel without asking (a late "Select Kernel" dialog eats runs).
        tracker = (
            self.settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
        )
        tracker.parent.mkdir(parents=True, exist_ok=True)
        tracker.write_text(json.dumps({"autoStartDefaultKernel": True}))

    def url(self, path: str = "lab") -> str:
        return f"{self.base}/{path}?token={self.token}"

    def start(self) -> None:
        env = dict(os.environ)
        env.update(
            LLMOPS_NB_HOME=str(self.home),
            LLMOPS_NB_USER="tester",
            JUPYTER_CONFIG_DIR=str(self.workdir / "jupyter_config"),
            JUPYTER_RUNTIME_DIR=str(self.workdir / "jupyter_runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(self.settings),
        )
        for name in ("LLMOPS_NB_STORE", "LLMOPS_NB_PROJECT"):
            env.pop(name, None)
        cmd = [
            sys.executable, "-m", "jupyter", "lab", "--no-browser",
            "--ip", "127.0.0.1", f"--port={self.port}", "--LabApp.news_url=None",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
            f"--LabApp.workspaces_dir={self.workdir / 'workspaces'}",
            "--LabApp.expose_app_in_browser=True",
        ]  # fmt: skip
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self._starts += 1
        log_path = self.artifacts / f"jupyter_lab.{self._starts}.log"
        with open(log_path, "w") as log:
            self._proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.root
            )
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=2):
                    return
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"jupyter lab did not start; see {log_path}")
                time.sleep(0.3)

    def stop(self) -> None:
        """Stop the server (it shuts its kernels down with it)."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def api(self, path: str) -> Any:
        """GET /llmops-nb/api/PATH as JSON (what the sidebar reads)."""
        sep = "&" if "?" in path else "?"
        url = f"{self.base}/llmops-nb/api/{path}{sep}token={self.token}"
        with urllib.request.urlopen(url, timeout=10) as reply:
            return json.loads(reply.read())


@contextmanager
def running_lab(workdir: Path, home: Path, artifacts: Path) -> Iterator[JupyterLab]:
    lab = JupyterLab(workdir, home, artifacts)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


@contextmanager
def chromium_page(artifacts: Path, width: int = 1500, height: int = 950) -> Iterator[Any]:
    """A page in Debian's Chromium (Playwright downloads no browser here).

    When the test fails inside, the page is kept as ARTIFACTS/failure.png.
    """
    entry = sync_playwright()
    with entry() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.set_default_timeout(60_000)
        try:
            yield page
        except BaseException:
            artifacts.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(artifacts / "failure.png"))
            raise
        finally:
            context.close()
            browser.close()


def shot(page: Any, artifacts: Path, name: str, element: Any = None) -> None:
    (element or page).screenshot(path=str(artifacts / f"{name}.png"))


def open_notebook(page: Any, lab: JupyterLab, name: str) -> None:
    page.goto(lab.url(f"lab/tree/{name}"))
    page.locator(f"{VISIBLE_NOTEBOOK} .jp-Cell").first.wait_for()


def wait_kernel_idle(page: Any) -> None:
    page.locator(
        f'{VISIBLE_NOTEBOOK} .jp-Notebook-ExecutionIndicator[data-status="idle"]'
    ).wait_for(timeout=120_000)


def wait_kernel_settled(page: Any) -> None:
    """Wait until the notebook's kernel has been the same, connected and idle for 3 s.

    Lab can swap the first kernel connection while it settles; runs sent (and widgets
    shown) before that can be lost.
    """
    wait_kernel_idle(page)
    page.wait_for_function(
        """() => {
            const kernel = window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel;
            const now = Date.now();
            if (!kernel || kernel.status !== 'idle' || kernel.connectionStatus !== 'connected') {
                window.__settled = null;
                return false;
            }
            if (!window.__settled || window.__settled.id !== kernel.id) {
                window.__settled = { id: kernel.id, since: now };
                return false;
            }
            return now - window.__settled.since > 3000;
        }""",
        polling=500,
        timeout=120_000,
    )


def cell(page: Any, index: int) -> Any:
    return page.locator(f"{VISIBLE_NOTEBOOK} .jp-Notebook .jp-Cell").nth(index)


def run_cell(page: Any, index: int, expect: str) -> Any:
    """Run cell INDEX of the current notebook (Lab's own command) and wait for EXPECT in its output.

    A run sent while Lab is still settling its kernel can be dropped (the cell keeps its
    blank "[ ]:" prompt): then it is sent again, never once it has started.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    target = cell(page, index)
    for _ in range(6):
        wait_kernel_idle(page)
        page.evaluate(
            """index => {
                const panel = window.jupyterapp.shell.currentWidget;
                panel.content.activeCellIndex = index;
                void window.jupyterapp.commands.execute('notebook:run-cell');
            }""",
            index,
        )
        try:
            page.wait_for_function(
                """el => !/^\\[ \\]:$/.test(el.textContent.trim())""",
                arg=target.locator(".jp-InputPrompt").element_handle(),
                timeout=15_000,
            )
            break
        except PlaywrightTimeout:
            continue
    target.locator(".jp-OutputArea-output", has_text=expect).first.wait_for(timeout=120_000)
    return target


def save_notebook(page: Any, path: Path, expect: str) -> None:
    """Save with Ctrl+S and wait until the file at PATH holds EXPECT."""
    page.locator(f"{VISIBLE_NOTEBOOK} .jp-Notebook").click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while expect not in path.read_text():
        if time.monotonic() > deadline:
            pytest.fail(f"{path.name} was not saved with {expect!r} in it")
        time.sleep(0.2)


def open_sidebar(page: Any) -> Any:
    """Show the LLMOps sidebar (its tab toggles it: Lab may have restored it open)."""
    sidebar = page.locator("#llmops-nb-sidebar")
    page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="llmops-nb-sidebar"]').wait_for()
    if not sidebar.is_visible():
        page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="llmops-nb-sidebar"]').click()
    sidebar.wait_for()
    return sidebar
