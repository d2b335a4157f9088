"""A loaded `local/` model and its batching worker: one thread per model serves every
request, grouping those that arrive within a few milliseconds into one `generate()` call.

Importing this module is cheap: torch and transformers load on the first request.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Generation", "GenParams", "LocalModel", "ModelSource"]

DEFAULT_MAX_TOKENS = 256
# A request waits up to BATCH_WINDOW_S for a companion (reset by each arrival), never more
# than BATCH_MAX_WAIT_S in all: concurrent callers then share one forward pass per step.
BATCH_WINDOW_S = 0.005
BATCH_MAX_WAIT_S = 0.05
MAX_BATCH = 16

# --- where a model comes from ------------------------------------------------------------


@dataclass(frozen=True)
class ModelSource:
    """What a `local/` spec resolved to: the base model, an optional adapter, and the
    registry entry it came from (e.g. "support-ft v3") when it was a registered name."""

    spec: str
    base: str
    adapter_path: str | None = None
    registered: str | None = None

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.base, self.adapter_path)


# --- generation parameters and results -----------------------------------------------


@dataclass(frozen=True)
class GenParams:
    """OpenAI-style sampling parameters, resolved against the model's defaults."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    def batch_key(self, unique: object) -> tuple[Any, ...]:
        """Requests with equal keys can share a generate() call. Greedy rows are independent
        of their batch; seeded sampling runs alone so the same seed gives the same text."""
        if not self.sampling:
            return ("greedy",)
        if self.seed is not None:
            return ("seeded", id(unique))
        return ("sample", self.temperature, self.top_p, self.top_k)


@dataclass
class Generation:
    """One completion: its text, token counts and why it ended ("stop" or "length")."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


@dataclass
class _Request:
    prompt: str
    add_special_tokens: bool
    params: GenParams
    future: Future[Generation] = field(default_factory=Future)


# --- a loaded model and its batching worker -------------------------------------------


class LocalModel:
    """A model and tokenizer loaded once, served by one worker thread that batches requests.

    `generate_calls` and `batch_sizes` count the generate() calls it made, for tests and
    benchmarks.
    """

    def __init__(self, source: ModelSource, model: Any, tokenizer: Any, device: str) -> None:
        self.source = source
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.generate_calls = 0
        self.batch_sizes: list[int] = []
        self._pad_id = _pad_id(model, tokenizer)
        self._eos_ids = _eos_ids(model, tokenizer)
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._serve, name=f"llmops-local:{source.spec}", daemon=True
        )
        self._thread.start()

    @property
    def key(self) -> tuple[str, str | None]:
        return self.source.key

    def __repr__(self) -> str:
        adapter = f" + {self.source.adapter_path}" if self.source.adapter_path else ""
        return f"<LocalModel {self.source.base}{adapter} on {self.device}>"

    # -- prompts --

    def format_prompt(self, messages: Sequence[Any]) -> tuple[str, bool]:
        """The prompt text, and whether the tokenizer should add its special tokens (the
        chat template writes its own)."""
        plain = [_plain_message(m) for m in messages]
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                plain, add_generation_prompt=True, tokenize=False
            )
            return text, False
        lines = [f"{m['role']}: {m['content']}" for m in plain]
        return "\n".join([*lines, "assistant:"]), True

    def params(self, optional: dict[str, Any]) -> GenParams:
        """GenParams from litellm's optional params; unset ones follow the model's defaults."""
        config = getattr(self.model, "generation_config", None)
        defaults = {"temperature": 0.0, "top_p": 1.0, "top_k": 0}  # greedy
        if config is not None and getattr(config, "do_sample", False):  # the author's choice
            defaults = {
                "temperature": getattr(config, "temperature", None) or 1.0,
                "top_p": getattr(config, "top_p", None) or 1.0,
                "top_k": getattr(config, "top_k", None) or 0,
            }

        def get(name: str) -> Any:
            value = optional.get(name)
            return defaults[name] if value is None else value

        max_tokens = optional.get("max_tokens") or optional.get("max_completion_tokens")
        stop = optional.get("stop") or ()
        seed = optional.get("seed")
        return GenParams(
            max_tokens=int(max_tokens) if max_tokens else DEFAULT_MAX_TOKENS,
            temperature=float(get("temperature")),
            top_p=float(get("top_p")),
            top_k=int(get("top_k")),
            stop=(stop,) if isinstance(stop, str) else tuple(s for s in stop if s),
            seed=int(seed) if seed is not None else None,
        )

    # -- requests --

    def submit(self, messages: Sequence[Any], params: GenParams) -> Future[Generation]:
        """Queue one completion; the worker thread batches it with its neighbours."""
        prompt, add_special = self.format_prompt(messages)
        request = _Request(prompt, add_special, params)
        self._queue.put(request)
        return request.future

    def generate(
        self, messages: Sequence[Any], params: GenParams | None = None, timeout: float | None = None
    ) -> Generation:
        """One completion, blocking the calling thread (not the model's worker)."""
        future = self.submit(messages, params or GenParams())
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise

    def close(self) -> None:
        """Stop the worker once the queued requests are done."""
        self._queue.put(None)

    # -- the worker --

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, closing = [first], False
            deadline = time.monotonic() + BATCH_MAX_WAIT_S
            while len(batch) < MAX_BATCH:
                wait = min(BATCH_WINDOW_S, deadline - time.monotonic())
                if wait <= 0:
                    break
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    break
                if item is None:
                    closing = True
                    break
                batch.append(item)
            groups: dict[tuple[Any, ...], list[_Request]] = {}
            for request in batch:
                if request.future.set_running_or_notify_cancel():
                    groups.setdefault(request.params.batch_key(request), []).append(request)
            for group in groups.values():
                try:
                    results = self._run(group)
                except BaseException as exc:  # every waiting caller sees the failure
                    for request in group:
                        request.future.set_exception(exc)
                else:
                    for request, result in zip(group, results):
                        request.future.set_result(result)
            if closing:
                return

    def _run(self, group: list[_Request]) -> list[Generation]:
        """One generate() over left-padded prompts; per-row max_tokens and stop strings."""
        import torch
        from transformers import StoppingCriteriaList

        tok = self.tokenizer
        encoded = [
            list(tok(r.prompt, add_special_tokens=r.add_special_tokens)["input_ids"]) for r in group
        ]
        width = max(len(ids) for ids in encoded)
        input_ids = torch.full((len(group), width), self._pad_id, dtype=torch.long)
        attention = torch.zeros((len(group), width), dtype=torch.long)
        for i, ids in enumerate(encoded):
            if ids:
                input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                attention[i, width - len(ids) :] = 1

        params = group[0].params
        limits = _row_limits_class()(width, [r.params for r in group], tok)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max(r.params.max_tokens for r in group),
            "do_sample": params.sampling,
            "pad_token_id": self._pad_id,
            "eos_token_id": self._eos_ids,
            "stopping_criteria": StoppingCriteriaList([limits]),
        }
        if params.sampling:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        rng: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if params.sampling and params.seed is not None:
            devices = [torch.device(self.device).index or 0] if self.device != "cpu" else []
            rng = torch.random.fork_rng(devices=devices)
        with rng, torch.inference_mode():
            if params.sampling and params.seed is not None:
                torch.manual_seed(params.seed)
            output = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                **kwargs,
            )
        self.generate_calls += 1
        self.batch_sizes.append(len(group))

        results = []
        for i, request in enumerate(group):
            new = output[i, width:].tolist()
            new = new[: limits.done_at[i] if limits.done_at[i] is not None else len(new)]
            new = new[: request.params.max_tokens]
            finish = "length"
            for j, token in enumerate(new):
                if token in self._eos_ids:
                    new, finish = new[: j + 1], "stop"  # the EOS counts as generated
                    break
            text = tok.decode(new, skip_special_tokens=True)
            cut = _first_stop(text, request.params.stop)
            if cut is not None:
                text, finish = text[:cut], "stop"
            results.append(Generation(text, len(encoded[i]), len(new), finish))
        return results


def _row_limits_class() -> type:
    """A transformers StoppingCriteria (built lazily: transformers is heavy) that ends each
    row at its own max_tokens or stop string, remembering where."""
    global _RowLimits
    if _RowLimits is not None:
        return _RowLimits
    from transformers import StoppingCriteria

    class RowLimits(StoppingCriteria):
        def __init__(self, prompt_width: int, params: list[GenParams], tokenizer: Any) -> None:
            self.prompt_width = prompt_width
            self.max_tokens = [p.max_tokens for p in params]
            self.stops = [p.stop for p in params]
            self.tokenizer = tokenizer
            self.done_at: list[int | None] = [None] * len(params)

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            n = input_ids.shape[1] - self.prompt_width
            for i in range(len(self.done_at)):
                if self.done_at[i] is not None:
                    continue
                if n >= self.max_tokens[i]:
                    self.done_at[i] = n
                elif self.stops[i]:
                    # A stop string of L characters lies within the last 4L+4 tokens
                    # (a byte-level token is at least a quarter of a character).
                    tail = max(len(s) for s in self.stops[i]) * 4 + 4
                    text = self.tokenizer.decode(
                        input_ids[i, max(self.prompt_width, input_ids.shape[1] - tail) :],
                        skip_special_tokens=True,
                    )
                    if _first_stop(text, self.stops[i]) is not None:
                        self.done_at[i] = n
            done = [d is not None for d in self.done_at]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    _RowLimits = RowLimits
    return RowLimits


_RowLimits: type | None = None


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def _plain_message(message: Any) -> dict[str, str]:
    """{"role", "content"} with text content, from a dict or a litellm Message."""
    get = message.get if isinstance(message, dict) else lambda k, d=None: getattr(message, k, d)
    content = get("content", "")
    if isinstance(content, list):  # OpenAI content parts: keep the text ones
        content = "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return {"role": str(get("role", "user")), "content": "" if content is None else str(content)}


def _pad_id(model: Any, tokenizer: Any) -> int:
    for value in (
        tokenizer.pad_token_id,
        getattr(model.generation_config, "pad_token_id", None),
        tokenizer.eos_token_id,
    ):
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None:
            return int(value)
    return 0


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, list) else [eos])]
