"""`local/<name-or-path>`: Hugging Face causal LMs (optionally with a LoRA adapter) served
in-process as a litellm custom provider, so local and hosted models share one code path.

`<name-or-path>` is a model directory, a LoRA adapter directory, a model registered by a
fine-tune in the current project (`name` or `name@version`), or a Hugging Face id found in
the local cache. Each model is loaded once and served by one worker thread that batches
requests arriving within a few milliseconds into a single `generate()` call.

Importing this module is cheap: torch, transformers and peft load on the first request.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import queue
import threading
import time
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from ..config import NAME_PATTERN, current_project
from ..errors import LLMOpsError, NotFound

__all__ = [
    "PROVIDER",
    "Generation",
    "GenParams",
    "LocalModel",
    "LocalModelError",
    "ModelSource",
    "install",
    "load",
    "load_count",
    "loaded_models",
    "resolve",
    "unload_all",
]

PROVIDER = "local"
DEFAULT_MAX_TOKENS = 256
# A request waits up to BATCH_WINDOW_S for a companion (reset by each arrival), never more
# than BATCH_MAX_WAIT_S in all: concurrent callers then share one forward pass per step.
BATCH_WINDOW_S = 0.005
BATCH_MAX_WAIT_S = 0.05
MAX_BATCH = 16


class LocalModelError(LLMOpsError, LookupError):
    """A `local/` model that cannot be found or loaded; the message names it and what to do."""


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


def resolve(spec: str, project: str | None = None) -> ModelSource:
    """Turn `<name-or-path>` into a base model and adapter, or raise LocalModelError.

    A directory wins over a registered name of the same spelling; a spec with a '/' that
    is no directory is tried as a Hugging Face id (cache only when HF_HUB_OFFLINE=1).
    """
    spec = spec.strip()
    if not spec:
        raise LocalModelError(
            "local/ needs a model: local/<path to a Hugging Face model directory> or "
            "local/<registered name> (see lo.models())"
        )
    path = Path(spec).expanduser()
    if path.is_dir():
        return _source_for_dir(spec, path.resolve())
    name, _, version = spec.partition("@")
    if NAME_PATTERN.match(name) and (not version or version.isdigit()):
        project = project or current_project()
        from ..store import get_store

        store = get_store()
        try:
            row = store.registered_model(project, name, int(version) if version else None)
        except NotFound as exc:
            known = sorted({r.name for r in store.list_models(project)})
            if name in known:  # the name exists, the version does not
                raise LocalModelError(f"cannot find local model {spec!r}: {exc}") from None
            hint = f"known: {', '.join(known[:10])}" if known else "none is registered yet"
            raise LocalModelError(
                f"cannot find local model {spec!r}: there is no directory "
                f"{str(path.absolute())!r} and no model {name!r} in the registry of project "
                f"{project!r} ({hint}). Use local/<path to a Hugging Face model directory>, "
                "or a registered name (lo.models(); a fine-tune registers one)."
            ) from None
        adapter = _local_path(row.adapter_path) if row.adapter_path else None
        return ModelSource(spec, _local_path(row.base), adapter, f"{row.name} v{row.version}")
    if "/" in spec and not spec.startswith(("/", ".", "~")):
        return ModelSource(spec, spec)  # a Hugging Face id; loading says if it is not cached
    raise LocalModelError(
        f"cannot find local model {spec!r}: there is no directory {str(path.absolute())!r}. "
        "Use local/<path to a Hugging Face model directory>, or a name from lo.models()."
    )


def _source_for_dir(spec: str, path: Path) -> ModelSource:
    """A model directory, or a peft adapter directory that names its base model."""
    adapter_config = path / "adapter_config.json"
    if adapter_config.exists() and not (path / "config.json").exists():
        try:
            base = json.loads(adapter_config.read_text())["base_model_name_or_path"]
        except (ValueError, KeyError) as exc:
            raise LocalModelError(
                f"cannot load local model {spec!r}: {adapter_config} does not name its base "
                f"model ({exc}). Register the adapter with its base in the model registry."
            ) from None
        return ModelSource(spec, _local_path(base), str(path))
    return ModelSource(spec, str(path))


def _local_path(name_or_path: str) -> str:
    """An existing directory as an absolute path (one cache key however it is spelled);
    anything else (a Hugging Face id) unchanged."""
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.is_dir() else name_or_path


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


# --- the cache of loaded models -------------------------------------------------------

_cache: dict[tuple[str, str | None], LocalModel] = {}
_loading: dict[tuple[str, str | None], threading.Lock] = {}
_loads: dict[tuple[str, str | None], int] = {}
_cache_lock = threading.Lock()


def load(spec: str | ModelSource) -> LocalModel:
    """The model for SPEC, loaded on first use and kept (one load even when many threads
    ask at once)."""
    source = resolve(spec) if isinstance(spec, str) else spec
    key = source.key
    with _cache_lock:
        model = _cache.get(key)
        if model is not None:
            return model
        lock = _loading.setdefault(key, threading.Lock())
    with lock:
        with _cache_lock:
            model = _cache.get(key)
        if model is None:
            model = _load(source)
            with _cache_lock:
                _cache[key] = model
                _loads[key] = _loads.get(key, 0) + 1
        return model


def loaded_models() -> list[LocalModel]:
    """The models in memory, in load order."""
    with _cache_lock:
        return list(_cache.values())


def load_count(spec: str | ModelSource) -> int:
    """How many times SPEC's model was loaded from disk (1 once it is cached)."""
    source = resolve(spec) if isinstance(spec, str) else spec
    with _cache_lock:
        return _loads.get(source.key, 0)


def unload_all() -> None:
    """Forget every loaded model (frees memory; the next request loads again)."""
    with _cache_lock:
        models = list(_cache.values())
        _cache.clear()
        _loading.clear()
        _loads.clear()
    for model in models:
        model.close()


def _load(source: ModelSource) -> LocalModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    what = f"{source.base} + adapter {source.adapter_path}" if source.adapter_path else source.base
    try:
        tokenizer_dir = source.base
        if source.adapter_path and (Path(source.adapter_path) / "tokenizer_config.json").exists():
            tokenizer_dir = source.adapter_path  # a fine-tune may ship its own chat template
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        model = AutoModelForCausalLM.from_pretrained(
            source.base, dtype="auto" if device == "cuda" else torch.float32
        )
        if source.adapter_path:
            from peft import PeftModel

            with warnings.catch_warnings():  # peft's use of deprecated transformers names
                warnings.simplefilter("ignore", FutureWarning)
                model = PeftModel.from_pretrained(model, source.adapter_path)
            with contextlib.suppress(Exception):  # merged weights generate faster
                model = model.merge_and_unload()
        model.to(device)
        model.eval()
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
        raise LocalModelError(
            f"cannot load local model {source.spec!r} ({what}): {reason}. Check that it is a "
            "Hugging Face causal LM directory (config.json, weights, tokenizer) or a LoRA "
            "adapter whose base model is available offline."
        ) from None
    return LocalModel(source, model, tokenizer, device)


# --- the litellm provider ---------------------------------------------------------------

_install_lock = threading.Lock()
_priced: set[str] = set()


def install(litellm_module: ModuleType) -> None:
    """Register the `local` provider with litellm (idempotent)."""
    with _install_lock:
        entries = litellm_module.custom_provider_map
        if any(entry.get("provider") == PROVIDER for entry in entries):
            return
        entries.append({"provider": PROVIDER, "custom_handler": _provider(litellm_module)})
        from litellm.utils import custom_llm_setup

        custom_llm_setup()


def _price_at_zero(litellm_module: ModuleType, model: str) -> None:
    """Local models cost nothing: tell litellm's cost table so cost is 0.0, not an error."""
    name = f"{PROVIDER}/{model}"
    if name in _priced:
        return
    litellm_module.register_model(
        {
            name: {
                "input_cost_per_token": 0.0,
                "output_cost_per_token": 0.0,
                "cache_creation_input_token_cost": 0.0,
                "cache_read_input_token_cost": 0.0,
                "litellm_provider": PROVIDER,
                "mode": "chat",
            }
        }
    )
    _priced.add(name)


def _provider(litellm_module: ModuleType) -> Any:
    """An instance of the CustomLLM subclass (defined here: litellm is imported by now)."""
    from litellm import CustomLLM

    class LocalModelNotFound(LocalModelError, litellm_module.NotFoundError):  # type: ignore[misc,name-defined]
        """litellm passes its own exception types through untouched: as a NotFoundError too,
        the error keeps its one-line message and is never retried."""

        def __init__(self, message: str, model: str) -> None:
            litellm_module.NotFoundError.__init__(
                self, message, model=f"{PROVIDER}/{model}", llm_provider=PROVIDER
            )
            self.plain_message = message

        def __str__(self) -> str:
            return self.plain_message

    @contextlib.contextmanager
    def clear_errors(model: str) -> Iterator[None]:
        try:
            yield
        except LocalModelError as exc:
            raise LocalModelNotFound(str(exc), model) from None

    def timeout_error(model: str, timeout: float) -> Exception:
        return litellm_module.Timeout(
            message=f"local model {model!r} did not answer within {timeout:g} s",
            model=f"{PROVIDER}/{model}",
            llm_provider=PROVIDER,
        )

    def respond(model_response: Any, model: str, generations: list[Generation]) -> Any:
        from litellm.types.utils import Choices, Message, Usage

        model_response.choices = [
            Choices(
                index=i,
                finish_reason=g.finish_reason,
                message=Message(role="assistant", content=g.text),
            )
            for i, g in enumerate(generations)
        ]
        prompt_tokens = generations[0].prompt_tokens
        completion_tokens = sum(g.completion_tokens for g in generations)
        model_response.usage = Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )
        model_response.model = f"{PROVIDER}/{model}"
        model_response.created = int(time.time())
        _price_at_zero(litellm_module, model)
        return model_response

    def announce(logging_obj: Any, messages: list[Any], optional: dict[str, Any] | None) -> None:
        """Run litellm's pre-call logging, as its built-in providers do: callbacks (the
        tracing one opens the LLM span there) see the request before it runs."""
        if logging_obj is not None:
            logging_obj.pre_call(
                input=messages, api_key=None, additional_args={"complete_input_dict": optional}
            )

    def seconds(timeout: Any) -> float | None:
        if isinstance(timeout, int | float) and timeout > 0:
            return float(timeout)
        read = getattr(timeout, "read", None)  # an httpx.Timeout
        return float(read) if isinstance(read, int | float) and read > 0 else None

    def chunk(response: Any) -> dict[str, Any]:
        choice = response.choices[0]
        usage = response.usage
        return {
            "text": choice.message.content or "",
            "is_finished": True,
            "finish_reason": choice.finish_reason or "stop",
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
            "index": 0,
            "tool_use": None,
        }

    class LocalProvider(CustomLLM):
        """`local/<name-or-path>`: in-process Hugging Face models for litellm."""

        def completion(  # type: ignore[override]
            self,
            model: str,
            messages: list[Any],
            *args: Any,
            model_response: Any = None,
            optional_params: dict[str, Any] | None = None,
            timeout: Any = None,
            **kwargs: Any,
        ) -> Any:
            announce(kwargs.get("logging_obj"), messages, optional_params)
            limit = seconds(timeout)
            with clear_errors(model):
                local = load(model)
                params = local.params(optional_params or {})
                futures = [local.submit(messages, p) for p in _choices(params, optional_params)]
            try:
                deadline = None if limit is None else time.monotonic() + limit
                generations = [
                    f.result(None if deadline is None else max(0.0, deadline - time.monotonic()))
                    for f in futures
                ]
            except FutureTimeout:
                for f in futures:
                    f.cancel()
                raise timeout_error(model, limit or 0.0) from None
            return respond(model_response, model, generations)

        async def acompletion(  # type: ignore[override]
            self,
            model: str,
            messages: list[Any],
            *args: Any,
            model_response: Any = None,
            optional_params: dict[str, Any] | None = None,
            timeout: Any = None,
            **kwargs: Any,
        ) -> Any:
            announce(kwargs.get("logging_obj"), messages, optional_params)
            limit = seconds(timeout)
            with clear_errors(model):
                # Loading (and a registry lookup) runs in a thread: the event loop never waits.
                local = await asyncio.to_thread(load, model)
                params = local.params(optional_params or {})
                futures = [local.submit(messages, p) for p in _choices(params, optional_params)]
            try:
                generations = await asyncio.wait_for(
                    asyncio.gather(*(asyncio.wrap_future(f) for f in futures)), limit
                )
            except TimeoutError:
                raise timeout_error(model, limit or 0.0) from None
            return respond(model_response, model, list(generations))

        def streaming(self, *args: Any, **kwargs: Any) -> Iterator[Any]:  # type: ignore[override]
            """The whole completion as one chunk: `stream=True` works, without token streaming."""
            yield chunk(self.completion(*args, **kwargs))

        async def astreaming(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:  # type: ignore[override]
            yield chunk(await self.acompletion(*args, **kwargs))

    return LocalProvider()


def _choices(params: GenParams, optional_params: dict[str, Any] | None) -> list[GenParams]:
    """One GenParams per requested choice (`n`); seeded choices get seed, seed+1, ..."""
    n = (optional_params or {}).get("n")
    n = max(1, int(n)) if n else 1
    if params.seed is None:
        return [params] * n
    return [dataclasses.replace(params, seed=params.seed + i) for i in range(n)]
