"""The one place that reads environment variables and paths, and holds the settings.

Kept import-light: `%load_ext llmops_nb` reads it, and must stay fast.
"""

from __future__ import annotations

import getpass
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidName

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")


def check_name(kind: str, name: str) -> str:
    """Validate a user-chosen name (project, prompt, alias, dataset...)."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InvalidName(
            f"invalid {kind} name {name!r}: use letters, digits, '_', '-' or '.', "
            "starting with a letter or '_' (no spaces or slashes)"
        )
    return name


def home() -> Path:
    """The user's data dir: LLMOPS_NB_HOME, else ~/.llmops_nb."""
    return Path(os.environ.get("LLMOPS_NB_HOME") or Path.home() / ".llmops_nb")


def store_url() -> str:
    """The shared store's SQLAlchemy URL: LLMOPS_NB_STORE, else SQLite under home()."""
    url = os.environ.get("LLMOPS_NB_STORE")
    if url:
        return url
    return f"sqlite:///{home() / 'store.db'}"


def mask_url(url: str) -> str:
    """URL with its password hidden, for messages, banners and anything stored.

    Masks the password of `user:password@host` (an '@' inside the password included,
    and `://:password@host`), and secret-named query parameters (`?password=`,
    `?sslpassword=`, `?api_key=`, `?token=`). The user name and host stay readable.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    cut = len(rest)
    for mark in "/?#":
        at = rest.find(mark, rest.rfind("@") + 1 if "@" in rest else 0)
        if at != -1:
            cut = min(cut, at)
    netloc, tail = rest[:cut], rest[cut:]
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if colon else f"{user}@{host}"
    tail = _QUERY_SECRET.sub(lambda m: m.group(1) + "***", tail)
    return f"{scheme}://{netloc}{tail}"


_QUERY_SECRET = re.compile(
    r"([?&;][A-Za-z0-9_.\-]*(?:passw(?:or)?d|pwd|secret|api[_\-]?key|apikey|token|credential)"
    r"[A-Za-z0-9_.\-]*=)[^&#;]*",
    re.IGNORECASE,
)

# Environment variables that hold credentials: OPENAI_API_KEY, HF_TOKEN, AWS_SECRET_ACCESS_KEY...
_SECRET_ENV = re.compile(
    r"(?:^|_)(?:API_?KEY|KEY|KEY_ID|TOKEN|SECRET|SECRET_KEY|PASSWORD|PASSWD|PWD|CREDENTIALS?)$",
    re.IGNORECASE,
)
_NOT_SECRET_ENV = frozenset({"PWD", "OLDPWD"})  # the shell's working directories


def secret_env_values() -> dict[str, str]:
    """Key-like environment variables (name -> value) whose values must never be shown."""
    return {
        name: value
        for name, value in os.environ.items()
        if len(value) >= 6 and name not in _NOT_SECRET_ENV and _SECRET_ENV.search(name)
    }


def author() -> str:
    """Who is writing: LLMOPS_NB_USER, else the OS user."""
    name = os.environ.get("LLMOPS_NB_USER")
    if name:
        return name
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (some containers)
        return "unknown"


def notebook_path() -> str | None:
    """The notebook this kernel runs, when the frontend tells us (JupyterLab, VS Code)."""
    return os.environ.get("JPY_SESSION_NAME") or os.environ.get("LLMOPS_NB_NOTEBOOK") or None


def otlp_endpoint() -> tuple[str, bool] | None:
    """Where spans go over OTLP, and whether that is a base URL (the signal path still to
    add): LLMOPS_NB_OTLP_ENDPOINT (base or /v1/traces URL), else the standard
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is), else OTEL_EXPORTER_OTLP_ENDPOINT."""
    ours = os.environ.get("LLMOPS_NB_OTLP_ENDPOINT")
    if ours:
        return ours, True
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return traces, False
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return (base, True) if base else None


def otlp_protocol() -> str:
    """OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf."""
    value = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    return (value or "http/protobuf").strip().lower()


def otel_capture_message_content() -> str | None:
    """The standard switch for exporting prompts and replies (see tracing.otel)."""
    return os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")


@dataclass
class Settings:
    """Process-wide settings; `%config LLMOps.<name>` writes these."""

    project: str = field(default_factory=lambda: os.environ.get("LLMOPS_NB_PROJECT") or "default")
    default_model: str = field(default_factory=lambda: os.environ.get("LLMOPS_NB_MODEL", ""))
    concurrency: int = 8
    cache: bool = True
    display: bool = True
    finetune_backend: str = "auto"  # auto, unsloth or peft
    finetune_batch_size: int = 8
    # export prompts, replies, inputs and outputs over OTLP; None: as
    # OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT says (default yes)
    otlp_content: bool | None = None
    redact_pii: bool = False  # mask PII (guardrails' pii check) in everything stored
    # OpenAI-compatible endpoints without litellm (llm/openai_wire.py); off: all via litellm
    fast_path: bool = field(
        default_factory=lambda: (
            os.environ.get("LLMOPS_NB_FAST_PATH", "1").lower() not in ("0", "false", "no", "off")
        )
    )
    # where eval grids and fine-tunes run: "local" (this process) or "ray"
    executor: str = "local"
    ray_address: str = (
        ""  # "" starts (or reuses) a local Ray; "auto", "HOST:PORT", "ray://HOST:PORT"
    )
    ray_actors: int = 2  # model replicas (one Ray actor each) per local model of a grid
    ray_num_cpus: float = 1.0  # per actor, and per fine-tune task
    ray_num_gpus: float = 0.0


settings = Settings()


CURRENT_PROJECT_FILE = "current_project.json"


def set_project(name: str) -> str:
    """Make NAME the current project for this process.

    In a notebook kernel it is also recorded under home(), so the JupyterLab sidebar
    (another process) can follow `%llmops project`.
    """
    settings.project = check_name("project", name)
    if _in_kernel():
        _record_project(name)
    return name


def _in_kernel() -> bool:
    """True only inside a running kernel: a process that merely imported ipykernel
    (nbclient resolving a kernel spec, a CLI report run) is not one."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def _record_project(name: str) -> None:
    """Write {project, notebook, updated} atomically; a read-only home only loses the hint."""
    import json
    import tempfile
    import time

    try:
        home().mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=home(), prefix=".current_project.")
    except OSError:
        return
    record = {"project": name, "notebook": notebook_path(), "updated": time.time()}
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, home() / CURRENT_PROJECT_FILE)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def recorded_project() -> tuple[str, float] | None:
    """The project a notebook kernel last switched to with set_project, and when."""
    import json

    try:
        record = json.loads((home() / CURRENT_PROJECT_FILE).read_text())
        name, updated = record["project"], float(record["updated"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return (name, updated) if isinstance(name, str) and NAME_PATTERN.match(name) else None


def current_project() -> str:
    return settings.project
