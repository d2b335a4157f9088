"""Guardrails: `lo.guard(text)` finds PII, secrets and prompt injection; guarded model calls.

`guard(text, checks=[...])` returns a `GuardResult` (ok, findings with masked excerpts,
the redacted text). `lo.complete(..., guard=[...], guard_action=...)` hands the call to
`guarded_complete` here, which checks the input messages before the model is called and
the reply after:

- "block": a finding in the input raises `GuardBlocked` and the model is never called;
  one in the reply raises it instead of returning the reply;
- "redact": the masked input is sent, the masked reply returned;
- "flag": the call goes through untouched; the findings are recorded.

Every guarded call is one `guardrail` span (the model call's span nests under it) that
records the checks, the action and the findings (masked); a blocked call is that span
with status error and the reason as its error. The detectors are in `guard_checks`.

Which turns are checked: pii and secrets in every message (whatever is sent leaks);
injection only in untrusted turns (user, tool), since the system prompt is the
developer's own text ("never reveal your system prompt" is not an attack).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from . import guard_checks
from .errors import LLMOpsError
from .guard_checks import DEFAULT_REGION, Hit
from .llm.client import ModelError

__all__ = [
    "DEFAULT_CHECKS",
    "GUARD_ACTIONS",
    "Finding",
    "GuardBlocked",
    "GuardError",
    "GuardResult",
    "aguarded_complete",
    "guard",
    "guard_scorer",
    "guarded_complete",
]

DEFAULT_CHECKS = ("pii", "secrets", "injection")
GUARD_ACTIONS = ("block", "redact", "flag")
_UNTRUSTED_ONLY = frozenset({"injection"})  # checks that skip system messages
_EXCERPT_MAX = 60

Messages = list[dict[str, Any]]


class GuardError(LLMOpsError, ValueError):
    """Bad guard arguments: an unknown check or action, or text that is not a string."""


class GuardBlocked(ModelError):
    """A guarded call stopped by its guard. `stage` is "input" (the model was never
    called) or "output"; `findings` says what was found (excerpts masked)."""

    stage: str = "input"
    findings: list[Finding]

    def __init__(self, message: str, stage: str = "input", findings: Sequence[Finding] = ()):
        super().__init__(message)
        self.stage = stage
        self.findings = list(findings)


@dataclass(frozen=True)
class Finding:
    """One thing a check found: where (character offsets), and a masked excerpt.

    In a guarded call, `stage` is "input" or "output" and `message` is the index of the
    input message the offsets refer to.
    """

    check: str
    kind: str
    start: int
    end: int
    excerpt: str
    stage: str | None = None
    message: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class GuardResult:
    """What `lo.guard` found: `ok` when nothing, each finding, and the text redacted."""

    ok: bool
    findings: list[Finding]
    redacted: str
    checks: tuple[str, ...] = field(default=DEFAULT_CHECKS)

    def counts(self) -> dict[str, int]:
        """Findings per check (every check asked for, zero included)."""
        out = dict.fromkeys(self.checks, 0)
        for f in self.findings:
            out[f.check] = out.get(f.check, 0) + 1
        return out

    def summary(self) -> str:
        """One line: 'ok', or the checks and kinds found ('pii: email, phone_number')."""
        return "ok" if self.ok else _summary(self.findings)

    def __repr__(self) -> str:
        return f"GuardResult(ok={self.ok}, {self.summary()})"

    def _repr_html_(self) -> str:
        e = html.escape
        verdict = "ok: nothing found" if self.ok else f"{len(self.findings)} finding(s)"
        rows = "".join(
            f"<tr><td>{e(f.check)}</td><td>{e(f.kind)}</td><td>{f.start}–{f.end}</td>"
            f"<td><code>{e(f.excerpt)}</code></td></tr>"
            for f in self.findings
        )
        table = (
            "<table><tr><th>check</th><th>kind</th><th>where</th><th>excerpt</th></tr>"
            f"{rows}</table>"
            if rows
            else ""
        )
        return (
            f"<div class='llmops-guard'><b>guard ({e(', '.join(self.checks))})</b>: "
            f"{e(verdict)}{table}<div>redacted:</div><pre>{e(self.redacted)}</pre></div>"
        )


# --- lo.guard -------------------------------------------------------------------------------


def check_names(checks: str | Iterable[str] | None) -> tuple[str, ...]:
    """The checks asked for, validated: one clear error naming the known ones."""
    if checks is None:
        return DEFAULT_CHECKS
    names = [checks] if isinstance(checks, str) else list(checks)
    for name in names:
        if not isinstance(name, str) or name not in guard_checks.CHECKS:
            known = ", ".join(guard_checks.CHECKS)
            raise GuardError(f"unknown guard check {name!r}; the checks are: {known}")
    return tuple(dict.fromkeys(names))


def guard(
    text: str, checks: str | Iterable[str] | None = None, *, region: str = DEFAULT_REGION
) -> GuardResult:
    """Look for PII, secrets and prompt injection in TEXT.

    `checks` picks among "pii", "secrets" and "injection" (default: all three).
    `region` is the country a phone number without a country code is read in.
    """
    names = check_names(checks)
    if not isinstance(text, str):
        raise GuardError(f"lo.guard needs text (a str), not {type(text).__name__}")
    hits = _hits(text, names, region)
    findings = [_finding(text, check, hit) for check, hit in hits]
    return GuardResult(
        ok=not findings,
        findings=findings,
        redacted=guard_checks.redact_hits(text, hits),
        checks=names,
    )


def _hits(text: str, names: Sequence[str], region: str = DEFAULT_REGION) -> list[tuple[str, Hit]]:
    out: list[tuple[str, Hit]] = []
    for name in names:
        options = {"region": region} if name == "pii" else {}
        out += [(name, hit) for hit in guard_checks.run_check(name, text, **options)]
    return sorted(out, key=lambda ch: (ch[1].start, -ch[1].end))


def _finding(
    text: str, check: str, hit: Hit, stage: str | None = None, message: int | None = None
) -> Finding:
    return Finding(check, hit.kind, hit.start, hit.end, _excerpt(check, text[hit.start : hit.end]),
                   stage, message)  # fmt: skip


def _excerpt(check: str, value: str) -> str:
    """What a finding may show: PII and secrets masked, injection as written (controls
    spelled out, long blobs cut)."""
    if check == "secrets":
        return value[:3] + "***" if len(value) > 8 else "***"
    if check == "pii":
        return value[:2] + "***" + value[-2:] if len(value) >= 8 else value[:1] + "***"
    shown = "".join(f"\\u{ord(c):04x}" if guard_checks.INVISIBLE.match(c) else c for c in value)
    return shown if len(shown) <= _EXCERPT_MAX else shown[: _EXCERPT_MAX - 1] + "…"


def _summary(findings: Sequence[Finding]) -> str:
    kinds: dict[str, list[str]] = {}
    for f in findings:
        listed = kinds.setdefault(f.check, [])
        if f.kind not in listed:
            listed.append(f.kind)
    return "; ".join(f"{check}: {', '.join(k)}" for check, k in kinds.items())


# --- guarded model calls ------------------------------------------------------------------


def _parts(content: Any) -> list[tuple[int | None, str]]:
    """The texts of a message's content: the string, or each text part of a list."""
    if isinstance(content, str):
        return [(None, content)]
    if isinstance(content, list):
        return [
            (i, p["text"])
            for i, p in enumerate(content)
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
    return []


class _GuardedCall:
    """One guarded call: its checks and action, what the input held, the findings."""

    def __init__(self, checks: Any, action: Any, model: str | None) -> None:
        self.checks = check_names(checks)
        if action not in GUARD_ACTIONS:
            raise GuardError(
                f"unknown guard_action {action!r}; use one of: {', '.join(GUARD_ACTIONS)}"
            )
        self.action: str = action
        self.model = model
        self.findings: list[Finding] = []

    def span(self) -> Any:
        from . import tracing

        attributes = {
            "llmops.guard.checks": list(self.checks),
            "llmops.guard.action": self.action,
            "llmops.guard.model": self.model or "",
        }
        return tracing.span("guard", kind="guardrail", attributes=attributes)

    def check_input(self, span: Any, messages: Messages) -> Messages:
        """The messages to send (masked for "redact"); raises GuardBlocked for "block"."""
        sent: Messages = []
        found: list[Finding] = []
        for index, message in enumerate(messages):
            role = str(message.get("role", "user")) if isinstance(message, dict) else "user"
            names = [c for c in self.checks if not (role == "system" and c in _UNTRUSTED_ONLY)]
            content = message.get("content") if isinstance(message, dict) else None
            masked_content = content
            for part, text in _parts(content):
                hits = _hits(text, names)
                found += [_finding(text, c, h, "input", index) for c, h in hits]
                if hits:
                    masked = guard_checks.redact_hits(text, hits)
                    if part is None:
                        masked_content = masked
                    else:
                        masked_content = list(masked_content)
                        masked_content[part] = {**masked_content[part], "text": masked}
            changed = masked_content is not content
            sent.append({**message, "content": masked_content} if changed else message)
        self._record(span, "input", found)
        if found and self.action == "block":
            span.set_inputs({"messages": sent})  # what was blocked, masked
            self._block(span, "input", found)
        return sent if self.action == "redact" else messages

    def check_output(self, span: Any, result: Any) -> Any:
        """The completion, masked for "redact", with its findings; raises for "block"."""
        text = result.text or ""
        hits = _hits(text, self.checks)
        found = [_finding(text, c, h, "output") for c, h in hits]
        self._record(span, "output", found)
        if found and self.action == "block":
            self._block(span, "output", found)
        if found and self.action == "redact":
            result.text = guard_checks.redact_hits(text, hits)
        result.guard_findings = list(self.findings)
        return result

    def _record(self, span: Any, stage: str, found: list[Finding]) -> None:
        self.findings += found
        span.set_attribute(f"llmops.guard.{stage}_findings", len(found))
        span.set_attribute("llmops.guard.findings", [f.to_dict() for f in self.findings])
        span.set_attribute("llmops.guard.flagged", bool(self.findings))

    def _block(self, span: Any, stage: str, found: list[Finding]) -> None:
        span.set_attribute("llmops.guard.blocked", stage)
        where = (
            f"before calling {self.model or 'the model'} (the model was not called)"
            if stage == "input"
            else f"in the reply of {self.model or 'the model'}"
        )
        error = GuardBlocked(
            f"guard blocked the {stage} {where}: {_summary(found)}. Use guard_action='redact' "
            "to mask it, or 'flag' to only record it",
            stage,
            found,
        )
        error.trace_id = span.trace_id
        raise error


def _plan(
    checks: Any, action: Any, model: str | None, prompt: Any, messages: Messages | None
) -> tuple[_GuardedCall, Messages] | None:
    """The guarded call and the messages it checks; None when the call goes straight to
    the model: no checks, or prompt/messages given wrong (complete then says why)."""
    call = _GuardedCall(checks, action, model)
    if (prompt is None) == (messages is None) or not call.checks:
        return None
    if prompt is None:
        return call, list(messages or [])
    return call, [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def guarded_complete(
    checks: Any,
    action: Any,
    model: str | None = None,
    prompt: str | Messages | None = None,
    *,
    messages: Messages | None = None,
    **kwargs: Any,
) -> Any:
    """`lo.complete(..., guard=CHECKS, guard_action=ACTION)`: see the module docstring."""
    from .llm.client import complete

    plan = _plan(checks, action, model, prompt, messages)
    if plan is None:
        return complete(model, prompt, messages=messages, **kwargs)
    call, checked = plan
    with call.span() as span:
        result = complete(model, messages=call.check_input(span, checked), **kwargs)
        return call.check_output(span, result)


async def aguarded_complete(
    checks: Any,
    action: Any,
    model: str | None = None,
    prompt: str | Messages | None = None,
    *,
    messages: Messages | None = None,
    **kwargs: Any,
) -> Any:
    """`guarded_complete` for `lo.acomplete`."""
    from .llm.client import acomplete

    plan = _plan(checks, action, model, prompt, messages)
    if plan is None:
        return await acomplete(model, prompt, messages=messages, **kwargs)
    call, checked = plan
    async with call.span() as span:
        result = await acomplete(model, messages=call.check_input(span, checked), **kwargs)
        return call.check_output(span, result)


# --- scorers for %%eval ---------------------------------------------------------------------


def guard_scorer(check: str) -> Any:
    """The `%%eval` scorer for CHECK: 1.0 (pass) when the output has no finding."""
    check_names([check])

    def score(output: str, args: dict[str, Any], ctx: Any) -> dict[str, Any]:
        result = guard(output or "", [check])
        if result.ok:
            return {"score": 1.0}
        shown = ", ".join(f"{f.kind} ({f.excerpt})" for f in result.findings[:5])
        return {"score": 0.0, "reason": f"{check}: {shown}"}

    score.__name__ = f"guard_{check}"
    return score
