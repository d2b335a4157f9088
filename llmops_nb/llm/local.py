"""`local/<name-or-path>`: Hugging Face causal LMs (optionally with a LoRA adapter) served
in-process as a litellm custom provider, so local and hosted models share one code path.

`<name-or-path>` is a built-in model (`smollm2`, see builtin_models), a model directory, a
LoRA adapter directory, a model registered by a fine-tune in the current project (`name` or
`name@version`, applied on its base), or a Hugging Face id found in the local cache. Each
model is loaded once and served by one worker thread (local_model.py) that batches
requests arriving within a few milliseconds into a single `generate()` call.

Importing this module is cheap: torch, transformers and peft load on the first request.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import threading
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from types import ModuleType
from typing import Any

from ..config import NAME_PATTERN, current_project
from ..errors import LocalModelError, NotFound
from . import builtin_models
from .local_model import Generation, GenParams, LocalModel, ModelSource

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


# --- where a model comes from ------------------------------------------------------------


def resolve(spec: str, project: str | None = None) -> ModelSource:
    """Turn `<name-or-path>` into a base model and adapter, or raise LocalModelError.

    A built-in name (`smollm2`) comes first, then a directory, then a registered name of
    the project (`name`, `name@N`); a spec with a '/' that is no directory is tried as a
    Hugging Face id (cache only when HF_HUB_OFFLINE=1).
    """
    spec = spec.strip()
    if not spec:
        raise LocalModelError(
            "local/ needs a model: local/smollm2, local/<path to a Hugging Face model "
            "directory> or local/<registered name> (see lo.models())"
        )
    if builtin_models.is_builtin(spec):
        return ModelSource(spec, _builtin_dir(spec))
    path = Path(spec).expanduser()
    if path.is_dir():
        return _source_for_dir(spec, path.resolve())
    name, _, version = spec.partition("@")
    if NAME_PATTERN.match(name) and NAME_PATTERN.match(version):  # local/name@alias
        return _registered(spec, name, _aliased(spec, name, version, project), project, path)
    if NAME_PATTERN.match(name) and (not version or version.isdigit()):
        return _registered(spec, name, int(version) if version else None, project, path)
    if "/" in spec and not spec.startswith(("/", ".", "~")):
        return ModelSource(spec, spec)  # a Hugging Face id; loading says if it is not cached
    raise LocalModelError(
        f"cannot find local model {spec!r}: there is no directory {str(path.absolute())!r}. "
        "Use local/<path to a Hugging Face model directory>, or a name from lo.models()."
    )


def _aliased(spec: str, name: str, alias: str, project: str | None) -> int:
    """The version `local/NAME@ALIAS` points at now (an alias moves between requests)."""
    from ..store import get_store

    try:
        return get_store().resolve_model_alias(project or current_project(), name, alias)
    except NotFound as exc:
        raise LocalModelError(f"cannot find local model {spec!r}: {exc}") from None


def _registered(
    spec: str, name: str, version: int | None, project: str | None, path: Path
) -> ModelSource:
    """A model of the registry: its base (itself `local/...` or a path) plus its adapter."""
    project = project or current_project()
    from ..store import get_store

    store = get_store()
    try:
        row = store.registered_model(project, name, version)
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
    base = _base_of(row.base)
    return ModelSource(spec, base, adapter, f"{row.name} v{row.version}")


def _base_of(base: str) -> str:
    """A registered base as a loadable directory: `local/smollm2` is the converted copy."""
    bare = base.removeprefix(f"{PROVIDER}/")
    if builtin_models.is_builtin(bare):
        return _builtin_dir(bare)
    return _local_path(bare if Path(bare).expanduser().is_dir() else base)


def _builtin_dir(name: str) -> str:
    model = builtin_models.builtin(name)
    if model.kind != "chat":
        raise LocalModelError(
            f"local/{name} is an embedding model: use it with lo.embed(..., "
            f"model='local/{name}') or a semantic scorer, not for completions"
        )
    try:
        return str(builtin_models.smollm2_dir())
    except LocalModelError:
        raise
    except Exception as exc:  # a full disk, an unwritable dir: say so once, not as a retry
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LocalModelError(
            f"cannot prepare local/{name} in {builtin_models.models_dir()}: {reason}"
        ) from None


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
        return ModelSource(spec, _base_of(base), str(path))
    return ModelSource(spec, str(path))


def _local_path(name_or_path: str) -> str:
    """An existing directory as an absolute path (one cache key however it is spelled);
    anything else (a Hugging Face id) unchanged."""
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if path.is_dir() else name_or_path


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
        with builtin_models.quiet_transformers():
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
