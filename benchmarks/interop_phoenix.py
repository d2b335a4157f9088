"""Export llmops_nb traces to a real Arize Phoenix and read back what Phoenix made of them.

`make interop` runs it, outside `make test`: Phoenix is a large install. It
1. installs arize-phoenix into its own venv (.cache/phoenix-venv, or $PHOENIX_VENV);
2. starts the Phoenix server on free local ports, with a throwaway working dir;
3. exports, with only the standard OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_SERVICE_NAME set:
   an agent span with a retriever and a tool under it, an LLM call with a system prompt
   (against the OpenAI-compatible test server), and a two-row eval run;
4. queries Phoenix's REST API (GET /v1/projects, GET /v1/projects/{project}/spans) and
   prints, for each span, its kind, input and output as Phoenix has them, and its project.

Exit status 0 when every span arrived in our project with its kind, input and output;
1 when something is missing; 2 (after one line saying why) when Phoenix cannot be
installed or started here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("PHOENIX_VENV") or ROOT / ".cache" / "phoenix-venv")
PACKAGE = os.environ.get("PHOENIX_PACKAGE", "arize-phoenix")
PROJECT = "interop-check"
SERVICE = "llmops-interop"
INSTALL_TIMEOUT = 1_200  # seconds
START_TIMEOUT = 180

# span name -> the OpenInference kind Phoenix should show, and whether it has an input/output
EXPECTED = {
    "answer": ("AGENT", True, True),
    "retrieve": ("RETRIEVER", True, True),
    "lookup_city": ("TOOL", True, True),
    "chat gpt-4o-mini": ("LLM", True, True),
    "eval": ("CHAIN", False, False),
}


class Unavailable(Exception):
    """Phoenix cannot be installed or started on this machine."""


def main() -> int:
    try:
        python = install()
        port = free_port()
        with tempfile.TemporaryDirectory(prefix="phoenix-") as work:
            server = start(python, port, Path(work))
            try:
                version = phoenix_version(python)
                print(f"Phoenix {version} on http://127.0.0.1:{port}")
                exported = export(f"http://127.0.0.1:{port}")
                return report(f"http://127.0.0.1:{port}", exported)
            finally:
                server.terminate()
                try:
                    server.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    server.kill()
    except Unavailable as exc:
        print(f"interop: {exc}")
        return 2


# --- Phoenix in its own venv ----------------------------------------------------------


def install() -> Path:
    """The venv's python with arize-phoenix importable (installed on first use)."""
    python = VENV / "bin" / "python"
    if python.exists() and _imports_phoenix(python):
        return python
    print(f"installing {PACKAGE} into {VENV} (a few minutes the first time)...", flush=True)
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=120
        )
        # pip, not uv: it honours this machine's pip configuration (indexes, constraints)
        cmd = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", PACKAGE]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as exc:
        raise Unavailable(f"{PACKAGE} could not be installed: {exc}") from None
    if done.returncode != 0 or not _imports_phoenix(python):
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        why = lines[-1].strip() if lines else f"exit status {done.returncode}"
        raise Unavailable(f"{PACKAGE} could not be installed: {why}")
    return python


def _imports_phoenix(python: Path) -> bool:
    probe = subprocess.run(
        [str(python), "-c", "import phoenix.server.main"], capture_output=True, timeout=120
    )
    return probe.returncode == 0


def phoenix_version(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('arize-phoenix'))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip() or "?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(python: Path, port: int, work: Path) -> subprocess.Popen[bytes]:
    """`phoenix serve` on PORT (its gRPC collector on another free port), data in WORK."""
    env = {
        **os.environ,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(free_port()),
        "PHOENIX_WORKING_DIR": str(work),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    log = open(work / "phoenix.log", "wb")
    server = subprocess.Popen(
        [str(python), "-m", "phoenix.server.main", "serve"], env=env, stdout=log, stderr=log
    )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = (work / "phoenix.log").read_text(errors="replace").strip().splitlines()
            raise Unavailable(f"Phoenix exited at start: {tail[-1] if tail else server.returncode}")
        try:
            get(f"http://127.0.0.1:{port}", "/v1/projects")
            return server
        except (OSError, ValueError):
            time.sleep(0.5)
    server.kill()
    raise Unavailable(f"Phoenix did not answer on port {port} within {START_TIMEOUT} s")


def get(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=10) as response:
        return json.loads(response.read())


# --- what llmops_nb exports -----------------------------------------------------------


def export(endpoint: str) -> dict[str, Any]:
    """Trace a small agent, an LLM call and an eval run, exported to ENDPOINT with the
    standard variables only; returns what was sent, to compare with what Phoenix shows."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["LLMOPS_NB_HOME"] = tempfile.mkdtemp(prefix="llmops-interop-")
    os.environ.pop("LLMOPS_NB_OTLP_ENDPOINT", None)
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    os.environ["OTEL_SERVICE_NAME"] = SERVICE

    import llmops_nb as lo
    from llmops_nb import config, tracing
    from llmops_nb.testing import serve

    config.set_project(PROJECT)
    with serve() as srv:

        @lo.trace(kind="tool")
        def lookup_city(name: str) -> dict[str, str]:
            return {"city": name, "country": "France"}

        @lo.trace(name="answer", kind="agent")
        def answer(question: str) -> str:
            with lo.span("retrieve", kind="retriever") as s:
                s.set_inputs(query=question)
                s.set_outputs([{"id": "d1", "score": 0.9, "text": "Paris is the capital."}])
            lookup_city("Paris")
            c = lo.complete(
                "openai/gpt-4o-mini",
                messages=[
                    {"role": "system", "content": "Answer in one word."},
                    {"role": "user", "content": question},
                ],
                api_base=srv.base_url,
                api_key="sk-test",
                cache=False,
            )
            return c.text

        reply = answer("What is the capital of France?")
        run = lo.evaluate(
            prompts=[{"template": "user:\nSay {{word}}", "label": "say"}],
            models=[
                {"model": "openai/gpt-4o-mini", "api_base": srv.base_url, "api_key": "sk-test"}
            ],
            data=[{"word": "alpha"}, {"word": "beta"}],
            scorers=[{"contains": {"value": "{{word}}"}}],
            name="interop",
            progress=False,
            cache=False,
        )
        tracing.shutdown()  # flushes the store and the OTLP exporter
    return {"reply": reply, "run": run.id}


# --- what Phoenix shows ---------------------------------------------------------------


def report(base: str, exported: dict[str, Any]) -> int:
    spans = wait_for_spans(base)
    projects = [p.get("name") for p in get(base, "/v1/projects").get("data", [])]
    print(f"projects in Phoenix: {projects}")
    if not spans:
        print(f"no span reached Phoenix's project {PROJECT!r}: FAIL")
        return 1
    print(f"{'span':<22} {'kind':<10} {'input':<44} {'output':<44}")
    problems: list[str] = []
    seen: dict[str, int] = {}
    for span in spans:
        attrs = flat(span.get("attributes") or {})
        name = str(span.get("name"))
        kind = str(span.get("span_kind") or attrs.get("openinference.span.kind") or "?").upper()
        inp = str(attrs.get("input.value") or "")
        out = str(attrs.get("output.value") or "")
        print(f"{name:<22} {kind:<10} {short(inp):<44} {short(out):<44}")
        seen[name] = seen.get(name, 0) + 1
        want = EXPECTED.get(name)
        if want is None:
            continue
        want_kind, want_in, want_out = want
        if kind != want_kind:
            problems.append(f"{name}: kind {kind}, expected {want_kind}")
        if want_in and not inp:
            problems.append(f"{name}: no input")
        if want_out and not out:
            problems.append(f"{name}: no output")
        if name == "chat gpt-4o-mini":
            if "echo:" not in out:
                problems.append(f"{name}: the reply is not in the output")
            if "gen_ai.input.messages" not in attrs or "gen_ai.output.messages" not in attrs:
                problems.append(f"{name}: no gen_ai.input/output.messages")
        if name == "eval":
            run, session = attrs.get("llmops.eval.run_id"), attrs.get("session.id")
            print(f"{'':<22} {'':<10} run {run}, session {session}")
            if run != exported["run"] or session != f"llmops-eval-run-{exported['run']}":
                problems.append(f"eval: run {run!r}, session {session!r}")
    for name in EXPECTED:
        if name not in seen:
            problems.append(f"{name}: not in Phoenix")
    if seen.get("eval", 0) != 2:
        problems.append(f"eval: {seen.get('eval', 0)} cell spans, expected 2")
    resource = resource_of(spans)
    print(f"project {PROJECT!r}: {len(spans)} spans; service.name seen: {resource or 'not shown'}")
    for line in problems:
        print(f"  problem: {line}")
    print(
        "OK: every span arrived with its kind, input, output and project"
        if not problems
        else f"FAIL: {len(problems)} problems"
    )
    return 1 if problems else 0


def wait_for_spans(base: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Our project's spans, once Phoenix has ingested them all (its writes are batched)."""
    deadline = time.monotonic() + timeout
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            spans = list_spans(base)
        except urllib.error.HTTPError as exc:
            if exc.code != 404:  # 404: the project does not exist yet
                raise
        if len(spans) >= 8:  # agent, retriever, tool, llm, 2 x (eval, llm)
            time.sleep(1.0)
            return list_spans(base)
        time.sleep(0.5)
    return spans


def list_spans(base: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = "?limit=100" + (f"&cursor={cursor}" if cursor else "")
        page = get(base, f"/v1/projects/{PROJECT}/spans{query}")
        out.extend(page.get("data", []))
        cursor = page.get("next_cursor")
        if not cursor:
            return out


def flat(attrs: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Phoenix may nest attributes ({"input": {"value": ...}}): as dotted keys."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat(value, f"{name}."))
        else:
            out[name] = value
    return out


def resource_of(spans: list[dict[str, Any]]) -> str | None:
    for span in spans:
        resource = span.get("resource") or {}
        attrs = flat(resource.get("attributes", resource) if isinstance(resource, dict) else {})
        if "service.name" in attrs:
            return str(attrs["service.name"])
    return None


def short(text: str, width: int = 42) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
