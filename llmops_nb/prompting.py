"""Prompts: parse (front matter, role markers), hash, render (sandboxed Jinja2), version, alias.

A prompt body is optional YAML front matter between `---` lines, then a template.
Lines `system:`, `user:` or `assistant:` alone start chat messages; a body with no
marker is one user message. A version's identity is the sha256 of its normalized
template, model and parameters, so re-running an unchanged cell creates nothing.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from . import config
from .errors import InvalidName, MissingVariable, NotFound, PromptSyntaxError

if TYPE_CHECKING:
    import jinja2
    import polars as pl

    from .llm.completion import Completion
    from .store import models as m

__all__ = [
    "PromptVersion",
    "RegisterResult",
    "parse_prompt",
    "parse_ref",
    "prompt",
    "prompt_history",
    "prompts",
    "register_prompt",
    "rollback",
    "set_alias",
]

ROLES = ("system", "user", "assistant")
FRONT_MATTER_KEYS = ("description", "model", "parameters", "sample", "inputs")
# A lowercase word and a colon alone on a line is a role marker ("Answer:" stays text).
_MARKER = re.compile(r"^([a-z_]+):\s*$")


# --- parsing -----------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedPrompt:
    """A cell body split into front matter and a normalized template."""

    template: str
    model: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # description, sample, inputs


def parse_prompt(body: str) -> ParsedPrompt:
    """Split front matter from the template and check both; raises PromptSyntaxError."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    front: dict[str, Any] = {}
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].strip() == "---":
        end = next((i for i in range(first + 1, len(lines)) if lines[i].strip() == "---"), None)
        if end is None:
            raise PromptSyntaxError("front matter starts with '---' but has no closing '---' line")
        front = _load_front_matter("\n".join(lines[first + 1 : end]), offset=first + 1)
        lines = lines[end + 1 :]
    template = normalize_template("\n".join(lines))
    if not template:
        raise PromptSyntaxError("the prompt has no template: write the text after the front matter")
    split_messages(template)  # unknown role markers fail here
    compile_template(template)  # syntax errors fail here
    model = front.pop("model", None)
    if isinstance(model, dict):  # Prompty style: {name/id: ..., parameters: {...}}
        front.setdefault("parameters", model.get("parameters") or {})
        model = model.get("id") or model.get("name")
    if model is not None and not isinstance(model, str):
        raise PromptSyntaxError(f"front matter 'model' must be a model id string, got {model!r}")
    parameters = front.pop("parameters", None) or {}
    if not isinstance(parameters, dict):
        raise PromptSyntaxError(
            "front matter 'parameters' must be a mapping, e.g. {temperature: 0}"
        )
    for key in ("sample", "inputs"):
        if key in front and front[key] is not None and not isinstance(front[key], dict):
            raise PromptSyntaxError(f"front matter {key!r} must be a mapping of variable: value")
    return ParsedPrompt(template=template, model=model, parameters=parameters, meta=front)


def load_yaml(text: str, what: str, line_offset: int = 0) -> Any:
    """YAML 1.2 (ruamel), so `{question: How do I reset my password?}` parses as written.

    A JSON document (a promptfoo config, a JSON spec) is also YAML 1.2, and the json
    module reads it about 100x faster than pure-Python ruamel: it is tried first.
    """
    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except ValueError:
            pass  # YAML flow style, or broken JSON: ruamel parses it, or says where
    from ruamel.yaml import YAML, YAMLError

    try:
        return YAML(typ="safe", pure=True).load(text) if text.strip() else None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" on line {mark.line + 1 + line_offset}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PromptSyntaxError(f"malformed {what} YAML{where}: {problem}") from None


def _load_front_matter(text: str, offset: int) -> dict[str, Any]:
    data = load_yaml(text, "front matter", offset)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PromptSyntaxError("front matter must be a YAML mapping of key: value lines")
    unknown = sorted(set(data) - set(FRONT_MATTER_KEYS))
    if unknown:
        raise PromptSyntaxError(
            f"unknown front matter key {unknown[0]!r}; allowed keys: {', '.join(FRONT_MATTER_KEYS)}"
        )
    return data


def normalize_template(text: str) -> str:
    """Newlines to \\n, no trailing spaces, no leading/trailing blank lines."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).strip("\n")


def split_messages(template: str) -> list[tuple[str, str]]:
    """[(role, template text)]; a template without markers is one user message."""
    messages: list[tuple[str, list[str]]] = []
    for number, line in enumerate(template.split("\n"), start=1):
        marker = _MARKER.match(line.strip())
        if marker:
            role = marker.group(1)
            if role not in ROLES:
                raise PromptSyntaxError(
                    f"unknown role marker '{role}:' on line {number}; "
                    "use system:, user: or assistant: alone on a line"
                )
            messages.append((role, []))
        elif messages:
            messages[-1][1].append(line)
        elif line.strip():
            messages.append(("user", [line]))
    return [(role, "\n".join(body).strip("\n")) for role, body in messages]


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)


@lru_cache(maxsize=512)
def compile_template(source: str) -> jinja2.Template:
    """Compile once; a syntax error becomes one message with its line."""
    from jinja2 import TemplateSyntaxError

    try:
        return _environment().from_string(source)
    except TemplateSyntaxError as exc:
        raise PromptSyntaxError(
            f"template syntax error on line {exc.lineno}: {exc.message}"
        ) from None


def template_variables(template: str) -> list[str]:
    """The variables a template uses, sorted."""
    from jinja2 import meta

    env = _environment()
    return sorted(meta.find_undeclared_variables(env.parse(template)))


def content_hash(template: str, model: str | None, parameters: dict[str, Any]) -> str:
    """The version identity: sha256 of the normalized template, model and parameters."""
    payload = json.dumps(
        {
            "template": normalize_template(template),
            "model": model or None,
            "parameters": parameters,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def render_template(
    template: str, values: dict[str, Any], label: str, variables: list[str] | None = None
) -> list[dict[str, str]]:
    """The chat messages of TEMPLATE with VALUES; a missing variable is named (LABEL says
    which prompt; VARIABLES, when known, saves parsing the template again)."""
    needed = template_variables(template) if variables is None else variables
    missing = [v for v in needed if v not in values]
    if missing:
        names = ", ".join(repr(v) for v in missing)
        raise MissingVariable(
            f"missing variable{'s' if len(missing) > 1 else ''} {names} "
            f"for {label}; pass {missing[0]}=..."
        )
    from jinja2 import UndefinedError
    from jinja2.exceptions import SecurityError

    messages = []
    for role, text in split_messages(template):
        try:
            content = compile_template(text).render(values)
        except UndefinedError as exc:
            raise MissingVariable(f"{label}: {exc.message}") from None
        except SecurityError as exc:
            raise PromptSyntaxError(f"{label} tried an unsafe operation: {exc}") from None
        messages.append({"role": role, "content": content})
    return messages


def run_variables(
    variables: list[str], sample: dict[str, Any], namespace: Mapping[str, Any]
) -> dict[str, Any]:
    """The values a run uses: the notebook's variables that the template names, then sample."""
    return {**{k: v for k, v in namespace.items() if k in variables}, **sample}


# --- references --------------------------------------------------------------------


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """'name' | 'name@3' | 'name@production' -> (name, version, alias)."""
    if not isinstance(ref, str):
        raise InvalidName(
            f"a prompt reference is text such as 'support_reply@2', not {type(ref).__name__} "
            f"{ref!r}"
        )
    name, _, tag = ref.strip().partition("@")
    config.check_name("prompt", name)
    if not tag or tag == "latest":
        return name, None, None
    if tag.isdigit():
        return name, int(tag), None
    if tag.startswith("v") and tag[1:].isdigit():
        return name, int(tag[1:]), None
    return name, None, config.check_name("alias", tag)


# --- the user-facing version ---------------------------------------------------------


@dataclass(frozen=True)
class PromptVersion:
    """One immutable version of a prompt, as `lo.prompt("name@3")` returns it."""

    name: str
    version: int
    hash: str
    template: str
    model: str | None
    parameters: dict[str, Any]
    variables: list[str]
    meta: dict[str, Any]
    message: str | None
    author: str
    created_at: datetime
    notebook_path: str | None
    project: str
    id: int
    arm: str | None = None  # the split arm that picked this version (`name@split`)

    @classmethod
    def from_row(cls, name: str, project: str, row: m.PromptVersion) -> PromptVersion:
        assert row.id is not None
        return cls(
            name=name,
            version=row.version,
            hash=row.hash,
            template=row.template,
            model=row.model,
            parameters=dict(row.parameters or {}),
            variables=list(row.variables or []),
            meta=dict(row.meta or {}),
            message=row.message,
            author=row.author,
            created_at=row.created_at,
            notebook_path=row.notebook_path,
            project=project,
            id=row.id,
        )

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def trace_attributes(self) -> dict[str, Any]:
        """What the spans of a call made with this version record (and a split's report
        reads): prompt name, version and, for a split's pick, the split and its arm."""
        attributes: dict[str, Any] = {
            "llmops.prompt.name": self.name,
            "llmops.prompt.version": self.version,
        }
        if self.arm is not None:
            attributes["llmops.prompt.split"] = self.name
            attributes["llmops.prompt.arm"] = self.arm
        return attributes

    @property
    def description(self) -> str | None:
        return self.meta.get("description")

    @property
    def sample(self) -> dict[str, Any]:
        return dict(self.meta.get("sample") or {})

    def render(
        self, variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[dict[str, str]]:
        """The chat messages with variables filled in; a missing variable is named."""
        values = {**(variables or {}), **kwargs}
        label = f"prompt {self.name} v{self.version}"
        return render_template(self.template, values, label, self.variables)

    def run(
        self, variables: dict[str, Any] | None = None, *, model: str | None = None, **kwargs: Any
    ) -> Completion:
        """Render and call the model (traced); model defaults to the prompt's, then settings."""
        from .llm.client import complete
        from .tracing import call_attributes

        messages = self.render(variables, **kwargs)
        with call_attributes(self.trace_attributes):
            return complete(model or self.model or None, messages=messages, **self.parameters)

    def source(self) -> str:
        """The text form a diff compares: model and parameters, then the template."""
        head = []
        if self.model:
            head.append(f"model: {self.model}")
        if self.parameters:
            head.append(f"parameters: {json.dumps(self.parameters, sort_keys=True)}")
        return "\n".join([*head, "---", self.template] if head else [self.template]) + "\n"

    def diff(self, other: PromptVersion) -> str:
        """Unified diff from OTHER to this version ("" when identical)."""
        return "".join(
            difflib.unified_diff(
                other.source().splitlines(keepends=True),
                self.source().splitlines(keepends=True),
                fromfile=f"{other.name} v{other.version}",
                tofile=f"{self.name} v{self.version}",
            )
        )

    def __repr__(self) -> str:
        return f"PromptVersion({self.name!r}, version={self.version}, hash={self.hash[:12]!r})"


@dataclass(frozen=True)
class RegisterResult:
    """What registering a body did: the version, and whether it is new."""

    version: PromptVersion
    created: bool

    @property
    def status(self) -> str:
        return "created" if self.created else "unchanged"

    def describe(self) -> str:
        v = self.version
        return f"{self.status}: {v.name} v{v.version}"


# --- the service -----------------------------------------------------------------------


def _project(project: str | None) -> str:
    return config.check_name("project", project) if project else config.current_project()


def register_body(
    name: str,
    body: str,
    *,
    model: str | None = None,
    message: str | None = None,
    project: str | None = None,
    run: bool = False,
    namespace: Mapping[str, Any] | None = None,
) -> RegisterResult:
    """Register a `%%prompt` cell body: parse, hash, and add a version unless unchanged.

    When the body will be rendered (RUN, or it has a `sample`), it must render with the
    sample and NAMESPACE first: a misspelled variable stores nothing."""
    config.check_name("prompt", name)
    parsed = parse_prompt(body)
    sample = dict(parsed.meta.get("sample") or {})
    if run or sample:
        values = run_variables(template_variables(parsed.template), sample, namespace or {})
        render_template(parsed.template, values, f"prompt {name}")
    return _register(name, parsed, model=model, message=message, project=project)


def register_prompt(
    name: str,
    template: str,
    model: str | None = None,
    parameters: dict[str, Any] | None = None,
    message: str | None = None,
    *,
    project: str | None = None,
) -> PromptVersion:
    """Python form of `%%prompt`: returns the new version, or the latest if unchanged."""
    config.check_name("prompt", name)
    parsed = parse_prompt(template)
    if parameters is not None:
        parsed = ParsedPrompt(parsed.template, parsed.model, dict(parameters), parsed.meta)
    return _register(name, parsed, model=model, message=message, project=project).version


def _register(
    name: str, parsed: ParsedPrompt, *, model: str | None, message: str | None, project: str | None
) -> RegisterResult:
    from .redaction import drop_secrets
    from .store import get_store

    project = _project(project)
    model = model or parsed.model
    # api_key=... and the like in the front matter are never stored (nor sent as '***')
    parameters = drop_secrets(parsed.parameters)
    parsed = ParsedPrompt(parsed.template, parsed.model, parameters, parsed.meta)
    row, created = get_store().add_prompt_version(
        project,
        name,
        hash=content_hash(parsed.template, model, parsed.parameters),
        template=parsed.template,
        model=model,
        parameters=parsed.parameters,
        meta=parsed.meta,
        variables=template_variables(parsed.template),
        message=message,
        author=config.author(),
        notebook_path=config.notebook_path(),
    )
    return RegisterResult(PromptVersion.from_row(name, project, row), created)


def prompt(ref: str, *, key: Any = None, project: str | None = None) -> PromptVersion:
    """`lo.prompt("name")`, `"name@3"` or `"name@production"`; `"name@split"` with
    `key=user_id` is the arm of the prompt's A/B split that KEY always gets."""
    from .store import get_store

    project = _project(project)
    name, version, alias = parse_ref(ref)
    if alias == "split" or key is not None:
        from .splits import split_version

        return split_version(name, key, project=project, ref=ref)
    store = get_store()
    row = (
        store.resolve_alias(project, name, alias)
        if alias
        else store.prompt_version(project, name, version)
    )
    return PromptVersion.from_row(name, project, row)


def previous_version(version: PromptVersion) -> PromptVersion | None:
    """The version a diff compares with: the highest earlier one (versions may have gaps)."""
    earlier = [
        v for v in versions(version.name, project=version.project) if v.version < version.version
    ]
    return earlier[-1] if earlier else None


def versions(name: str, *, project: str | None = None) -> list[PromptVersion]:
    """Every version of a prompt, oldest first."""
    from .store import get_store

    project = _project(project)
    config.check_name("prompt", name)
    return [
        PromptVersion.from_row(name, project, r) for r in get_store().prompt_versions(project, name)
    ]


def aliases(name: str, *, project: str | None = None) -> dict[str, int]:
    from .store import get_store

    return get_store().prompt_aliases(_project(project), name)


def prompts(*, project: str | None = None) -> pl.DataFrame:
    """All prompts of the project: name, latest, aliases, updated."""
    import polars as pl

    from .store import get_store

    rows = get_store().list_prompts(_project(project))
    schema = {
        "name": pl.String,
        "latest": pl.Int64,
        "aliases": pl.String,
        "updated": pl.Datetime("us", "UTC"),
    }
    return pl.DataFrame(rows, schema=schema)


def prompt_history(name: str, *, project: str | None = None) -> pl.DataFrame:
    """One row per version: version, hash, model, message, author, created, notebook, aliases."""
    import polars as pl

    project = _project(project)
    alias_of: dict[int, list[str]] = {}
    for alias, version in aliases(name, project=project).items():
        alias_of.setdefault(version, []).append(alias)
    rows = [
        {
            "version": v.version,
            "hash": v.hash[:12],
            "model": v.model,
            "message": v.message,
            "author": v.author,
            "created": v.created_at,
            "notebook": v.notebook_path,
            "aliases": ", ".join(alias_of.get(v.version, [])),
        }
        for v in versions(name, project=project)
    ]
    schema = {
        "version": pl.Int64,
        "hash": pl.String,
        "model": pl.String,
        "message": pl.String,
        "author": pl.String,
        "created": pl.Datetime("us", "UTC"),
        "notebook": pl.String,
        "aliases": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)


def move_alias(
    name: str,
    alias: str,
    version: int | None = None,
    *,
    project: str | None = None,
    reason: str | None = None,
) -> tuple[int | None, int]:
    """Point ALIAS at VERSION, or roll it back when VERSION is None; every move is kept
    in the audit log. Returns (previous version or None, new version)."""
    from .store import get_store

    config.check_name("prompt", name)
    config.check_name("alias", alias)
    if alias == "latest":
        raise NotFound("'latest' is reserved: it always means the newest version")
    if alias == "split":
        raise NotFound("'split' is reserved: name@split picks an arm of lo.set_split")
    store, project = get_store(), _project(project)
    if version is None:
        return store.rollback_alias(project, name, alias, config.author(), reason)
    return store.set_alias(project, name, alias, int(version), config.author(), reason)


def set_alias(
    name: str, alias: str, version: int, *, project: str | None = None, reason: str | None = None
) -> str:
    """Point ALIAS at VERSION (kept in the audit log); returns a one-line summary."""
    before, after = move_alias(name, alias, version, project=project, reason=reason)
    if before == after:
        return f"{name}@{alias} is already v{after}"
    was = f" (was v{before})" if before is not None else ""
    return f"{name}@{alias} -> v{after}{was}"


def rollback(
    name: str, alias: str, *, project: str | None = None, reason: str | None = None
) -> str:
    """Point ALIAS back at the version it pointed to before its last move (audited, with
    REASON)."""
    before, after = move_alias(name, alias, None, project=project, reason=reason)
    return f"{name}@{alias} rolled back: v{before} -> v{after}"
