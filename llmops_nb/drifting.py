"""`lo.drift`: did what a model is asked (or answers) change between two samples?

(The module is `drifting` so that `lo.drift` stays the function, like `prompting`.)

Three two-sample tests compare a reference sample of texts with a current one:
- `length`: characters per text, Kolmogorov-Smirnov (scipy);
- `tokens`: MiniLM WordPiece tokens per text, Kolmogorov-Smirnov;
- `embedding`: the energy distance between the two clouds of MiniLM sentence vectors
  (`lo.embed(..., model="local/minilm")`), with a seeded permutation p-value.

The samples are drifted when any test's p-value is below `alpha / 3` (Bonferroni over
the three tests). The examples are what changed: the current texts farthest from every
reference text, each with its nearest reference text.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import config
from .errors import LLMOpsError
from .timespans import since_ns

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DriftError", "DriftExample", "DriftResult", "DriftTest", "drift", "parse_time"]

TESTS = ("length", "tokens", "embedding")
MAX_ITEMS = 1000  # per side; a larger sample is subsampled (seeded)
_WINDOW_KEYS = frozenset({"since", "until", "model", "project", "limit"})


class DriftError(LLMOpsError, ValueError):
    """Bad input to lo.drift: an empty side, a window that does not parse, a missing column."""


@dataclass(frozen=True)
class DriftTest:
    """One two-sample test: its statistic, p-value, and each side's mean (of the measure)."""

    statistic: float
    p_value: float
    reference_mean: float | None = None
    current_mean: float | None = None


@dataclass(frozen=True)
class DriftExample:
    """A current text far from the reference, with the reference text nearest to it."""

    current: str
    nearest_reference: str
    similarity: float  # cosine similarity of their MiniLM vectors


@dataclass(frozen=True)
class DriftResult:
    """What `lo.drift` found: `drifted`, each test, and the examples of what changed."""

    drifted: bool
    on: str
    alpha: float
    tests: dict[str, DriftTest]
    examples: list[DriftExample]
    n_reference: int
    n_current: int
    permutations: int = 0
    seed: int = 0

    def summary(self) -> str:
        verdict = "drifted" if self.drifted else "no drift"
        parts = ", ".join(
            f"{name} stat={t.statistic:.3g} p={t.p_value:.3g}" for name, t in self.tests.items()
        )
        return (
            f"{verdict} ({self.on}: {self.n_reference} reference vs {self.n_current} current; "
            f"{parts})"
        )

    def __repr__(self) -> str:
        return f"DriftResult({self.summary()})"

    def _repr_html_(self) -> str:
        e = html.escape
        verdict = "drifted" if self.drifted else "no drift"
        tests = "".join(
            f"<tr><td>{e(name)}</td><td>{t.statistic:.4g}</td><td>{t.p_value:.4g}</td>"
            f"<td>{_num(t.reference_mean)}</td><td>{_num(t.current_mean)}</td></tr>"
            for name, t in self.tests.items()
        )
        examples = "".join(
            f"<tr><td>{e(x.current)}</td><td>{e(x.nearest_reference)}</td>"
            f"<td>{x.similarity:.3f}</td></tr>"
            for x in self.examples
        )
        return (
            f"<div class='llmops-drift'><b>drift on {e(self.on)}: {verdict}</b> "
            f"({self.n_reference} reference, {self.n_current} current; alpha {self.alpha:g}, "
            f"Bonferroni over {len(self.tests)} tests)"
            "<table><tr><th>test</th><th>statistic</th><th>p-value</th>"
            f"<th>reference mean</th><th>current mean</th></tr>{tests}</table>"
            "<div>farthest from the reference:</div><table><tr><th>current</th>"
            f"<th>nearest reference</th><th>similarity</th></tr>{examples}</table></div>"
        )


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


# --- the two sides -----------------------------------------------------------------------


def parse_time(value: Any, what: str) -> int:
    """Epoch ns for a duration ago ('7d', '12h', '30m', '2w', a timedelta), a date or time
    (ISO text, datetime, date; naive is local time) or epoch ns; one clear error if not."""
    return since_ns(value, name=what, naive="local", error=DriftError)


def _window_texts(window: Mapping[str, Any], on: str, side: str) -> list[str]:
    """The input (last user message) or output (reply) of each stored LLM call in WINDOW."""
    unknown = sorted(set(window) - _WINDOW_KEYS)
    if unknown or "since" not in window:
        raise DriftError(
            f"{side}: a trace window is a dict with 'since' (and optionally 'until', "
            f"'model', 'project', 'limit'), e.g. {{'since': '14d', 'until': '7d'}}"
            + (f"; unknown key {unknown[0]!r}" if unknown else "")
        )
    since = parse_time(window["since"], f"{side} since")
    until = (
        parse_time(window["until"], f"{side} until") if window.get("until") is not None else None
    )
    if until is not None and until <= since:
        raise DriftError(f"{side}: the window's 'until' is not after its 'since'")
    from . import tracing
    from .store import get_store

    tracing.flush()
    store = get_store()
    model = window.get("model")
    rows = store.list_traces(
        window.get("project") or config.current_project(),
        since_ns=since,
        until_ns=until,
        limit=int(window.get("limit") or MAX_ITEMS * 5),
    )
    texts: list[str] = []
    for row in reversed(rows):  # oldest first
        for span in store.get_trace(row.id)[1]:
            if span.kind != "llm" or span.status != "ok":
                continue
            attrs = span.attributes or {}
            if attrs.get("gen_ai.operation.name") not in (None, "chat", "text_completion"):
                continue
            if model is not None and model not in (
                attrs.get("llmops.model"),
                attrs.get("gen_ai.request.model"),
            ):
                continue
            text = _span_text(span.inputs if on == "input" else span.outputs, on)
            if text:
                texts.append(text)
    return texts


def _content(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(str(p.get("text", "")) for p in value if isinstance(p, dict))
    return ""


def _span_text(value: Any, on: str) -> str:
    if on == "input":
        messages = value.get("messages") if isinstance(value, dict) else None
        if isinstance(messages, list):
            users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
            return _content(users[-1].get("content")) if users else ""
        return ""
    if isinstance(value, list):  # several choices: the first
        value = value[0] if value else None
    return _content(value.get("content")) if isinstance(value, dict) else _content(value)


def _column(frame: Any, column: str, side: str) -> list[Any]:
    columns = list(getattr(frame, "columns", []))
    if column not in columns:
        raise DriftError(
            f"{side}: the data has no column {column!r} (columns: {', '.join(map(str, columns))}); "
            "pass column=NAME"
        )
    return list(frame[column])


def _side(value: Any, on: str, column: str | None, side: str) -> list[str]:
    """SIDE's texts: a list of strings, a Series, a DataFrame column, a dataset ref
    ('dataset:faq@2'), or a trace window ({'since': '14d', 'until': '7d'})."""
    if isinstance(value, Mapping):
        texts = _window_texts(value, on, side)
        where = "no stored LLM calls in that window"
    else:
        if isinstance(value, str):
            if not value.startswith("dataset:"):
                raise DriftError(
                    f"{side}: a string must be a dataset ref such as 'dataset:faq@2'; "
                    "pass texts as a list"
                )
            from .datasets import dataset

            value = dataset(value.removeprefix("dataset:"))
        if hasattr(value, "columns"):
            items = _column(value, column or on, side)
        elif isinstance(value, Iterable):
            items = list(value)
        else:
            raise DriftError(
                f"{side} must be a list of strings, a column, a DataFrame, 'dataset:NAME' or "
                f"a trace window {{'since': '14d', 'until': '7d'}}, not {type(value).__name__}"
            )
        for i, item in enumerate(items):
            if item is not None and not isinstance(item, str):
                raise DriftError(f"{side}: item {i} is {type(item).__name__}, not text")
        texts = [t for t in items if t]
        where = "no non-empty texts"
    if len(texts) < 2:
        raise DriftError(f"{side} has {len(texts)} text(s) ({where}): each side needs at least 2")
    return texts


# --- the tests ---------------------------------------------------------------------------


def _ks(reference: list[int], current: list[int]) -> DriftTest:
    from scipy.stats import ks_2samp

    result = ks_2samp(reference, current)
    return DriftTest(
        float(result.statistic),
        float(result.pvalue),
        sum(reference) / len(reference),
        sum(current) / len(current),
    )


def _energy_test(vectors: np.ndarray, n_reference: int, permutations: int, seed: int) -> DriftTest:
    """Energy distance between the first N_REFERENCE rows and the rest, and the share of
    label permutations (seeded) that give at least as large a distance."""
    import numpy as np

    x = vectors.astype(np.float64)
    sq = (x * x).sum(1)
    distances = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0))
    n, total = n_reference, len(x)
    m = total - n
    row_sums = distances.sum(1)
    grand = row_sums.sum()

    def energy(labels: np.ndarray) -> np.ndarray:  # labels: (total, k) 0/1, n ones a column
        within = distances @ labels
        s_xx = (labels * within).sum(0)
        s_xy = labels.T @ row_sums - s_xx
        s_yy = grand - 2 * s_xy - s_xx
        return 2 * s_xy / (n * m) - s_xx / n**2 - s_yy / m**2

    observed = float(energy(np.r_[np.ones(n), np.zeros(m)][:, None])[0])
    rng = np.random.default_rng(seed)
    at_least = 0
    for start in range(0, permutations, 100):
        k = min(100, permutations - start)
        labels = np.zeros((total, k))
        for j in range(k):
            labels[rng.permutation(total)[:n], j] = 1.0
        at_least += int((energy(labels) >= observed - 1e-12).sum())
    return DriftTest(observed, (1 + at_least) / (1 + permutations))


def _examples(
    vectors: np.ndarray, reference: list[str], current: list[str], k: int
) -> list[DriftExample]:
    import numpy as np

    ref, cur = vectors[: len(reference)], vectors[len(reference) :]
    similarity = cur @ ref.T  # unit rows: cosine
    nearest = similarity.argmax(1)
    best = similarity[np.arange(len(cur)), nearest]
    out: list[DriftExample] = []
    seen: set[str] = set()
    for i in np.argsort(best, kind="stable"):
        if current[i] in seen:
            continue
        seen.add(current[i])
        out.append(DriftExample(current[i], reference[int(nearest[i])], float(best[i])))
        if len(out) == k:
            break
    return out


def _sample(texts: list[str], seed: int) -> list[str]:
    if len(texts) <= MAX_ITEMS:
        return texts
    import random

    return random.Random(seed).sample(texts, MAX_ITEMS)


def drift(
    reference: Any,
    current: Any,
    *,
    on: str = "input",
    column: str | None = None,
    alpha: float = 0.05,
    permutations: int = 500,
    seed: int = 0,
    examples: int = 5,
) -> DriftResult:
    """Compare two samples of texts (see the module docstring for the tests).

    Each side is a list of strings, a polars/pandas Series, a DataFrame (its column
    `column`, default the column named like `on`), a dataset ref `"dataset:NAME@V"`, or
    a window of stored LLM calls `{"since": "14d", "until": "7d"}` (durations ago, or
    dates/datetimes; optional "model", "project", "limit"). `on` ("input" or "output")
    says which text of a stored call is compared: the last user message, or the reply.
    Each side is capped at 1,000 texts (a seeded sample).
    """
    if on not in ("input", "output"):
        raise DriftError(f"on must be 'input' or 'output', not {on!r}")
    if not (isinstance(alpha, float | int) and 0 < alpha < 1):
        raise DriftError(f"alpha must be between 0 and 1, not {alpha!r}")
    if isinstance(permutations, bool) or not isinstance(permutations, int) or permutations < 1:
        raise DriftError(f"permutations must be a whole number ≥ 1, not {permutations!r}")
    ref = _sample(_side(reference, on, column, "reference"), seed)
    cur = _sample(_side(current, on, column, "current"), seed + 1)

    from .llm.embeddings import _minilm, embed

    tokenizer = _minilm()[0]
    counts = [
        len(ids)
        for ids in tokenizer(ref + cur, add_special_tokens=False, verbose=False)["input_ids"]
    ]
    vectors = embed(ref + cur, model="local/minilm")
    tests = {
        "length": _ks([len(t) for t in ref], [len(t) for t in cur]),
        "tokens": _ks(counts[: len(ref)], counts[len(ref) :]),
        "embedding": _energy_test(vectors, len(ref), permutations, seed),
    }
    threshold = alpha / len(tests)
    return DriftResult(
        drifted=any(t.p_value < threshold for t in tests.values()),
        on=on,
        alpha=float(alpha),
        tests=tests,
        examples=_examples(vectors, ref, cur, examples),
        n_reference=len(ref),
        n_current=len(cur),
        permutations=permutations,
        seed=seed,
    )
