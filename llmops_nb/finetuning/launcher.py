"""`lo.finetune(...)`: check everything, record a queued job, start its worker process.

Nothing is written until every argument checks out, so a bad call leaves no job row.
The worker (`python -m llmops_nb.finetuning.worker JOB_ID`) runs in its own process group,
so the kernel stays responsive, survives a crash of the job, and a cancel can stop the
whole group. A watcher thread marks the job failed when its worker dies without saying.
"""

from __future__ import annotations

import importlib.util
import math
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import config
from ..errors import FineTuneError
from .job import FineTuneJob
from .processes import start_worker

if TYPE_CHECKING:
    import polars as pl

__all__ = ["finetune", "finetune_job", "finetunes", "resolve_base"]

METHODS = ("lora", "qlora")
BACKENDS = ("auto", "unsloth", "peft")


def finetune(
    base: str,
    data: Any,
    prompt: Any,
    target: str,
    *,
    method: str = "lora",
    r: int = 16,
    alpha: int = 16,
    epochs: float = 1,
    lr: float = 2e-4,
    name: str | None = None,
    eval_data: Any = None,
    backend: str | None = None,
    batch_size: int | None = None,
    max_steps: int | None = None,
    max_length: int = 512,
    target_modules: list[str] | None = None,
    lora_dropout: float = 0.0,
    seed: int = 0,
    threads: int | None = None,
    project: str | None = None,
    executor: str | None = None,
    ray_num_cpus: float | None = None,
    ray_num_gpus: float | None = None,
) -> FineTuneJob:
    """Fine-tune BASE (a `local/` model) on DATA rendered through PROMPT, TARGET as the answer.

    Returns at once with a queued FineTuneJob; the training runs in another process.
    backend: "auto" (Unsloth on a CUDA GPU when installed, else transformers + peft
    through TRL), "unsloth" or "peft"; None takes `%config LLMOps.finetune_backend`.
    threads: torch CPU threads for the worker (None: torch's default, one per core).
    executor: "local" (a process here) or "ray" (a Ray task with ray_num_cpus/ray_num_gpus;
    None: the LLMOps.executor and LLMOps.ray_* settings).
    """
    from ..datasets import DatasetVersion, get_version, load_frame, store_frame
    from ..prompting import PromptVersion
    from ..prompting import prompt as get_prompt
    from ..store import get_store

    project = config.check_name("project", project) if project else config.current_project()
    backend = backend or config.settings.finetune_backend
    batch_size = batch_size or config.settings.finetune_batch_size
    _check_choices(method, backend)
    _check_numbers(
        r=r, alpha=alpha, epochs=epochs, lr=lr, batch_size=batch_size,
        max_steps=max_steps, max_length=max_length, threads=threads,
    )  # fmt: skip
    if not 0 <= lora_dropout < 1:
        raise FineTuneError(f"lora_dropout must be in [0, 1), not {lora_dropout!r}")
    if name is not None:
        config.check_name("fine-tune job", name)
        from ..llm.builtin_models import is_builtin

        if is_builtin(name):
            raise FineTuneError(
                f"cannot name a fine-tune {name!r}: local/{name} is a built-in base; "
                "choose another name"
            )
    base_path = resolve_base(base)
    resolved_backend = _pick_backend(method, backend)
    version = (
        prompt if isinstance(prompt, PromptVersion) else get_prompt(str(prompt), project=project)
    )
    if not isinstance(target, str) or not target:
        raise FineTuneError(
            "target must name the column that holds the answers, e.g. target='answer'"
        )
    train, train_ref = load_frame(data, project=project)
    _check_frame(train, "data", version, target)
    held_out, eval_ref = None, None
    if eval_data is not None:
        held_out, eval_ref = load_frame(eval_data, project=project)
        _check_frame(held_out, "eval_data", version, target)
    store = get_store()
    name = name or _free_name(store.finetune_job_names(project), version.name)
    existing = store.finetune_job_named(project, name)
    if existing is not None:
        raise FineTuneError(
            f"a fine-tune job named {name!r} already exists in project {project!r} "
            f"(job #{existing.id}, {existing.status}): pass another name=, or reattach "
            f"with lo.finetune_job({name!r})"
        )

    from .ray_launch import ray_resources

    on_ray = ray_resources(executor, ray_num_cpus, ray_num_gpus)  # {} for a local job

    # Everything checked: now write (datasets are content-addressed: a rerun adds nothing).
    def stored(frame: pl.DataFrame, given: Any, ref: str | None, suffix: str) -> Any:
        if isinstance(given, DatasetVersion):
            return given
        if ref and ref.startswith("dataset:"):
            return get_version(ref, project=project)
        return store_frame(f"{name}-{suffix}", frame, source=ref, project=project)

    train_version = stored(train, data, train_ref, "train")
    eval_version = stored(held_out, eval_data, eval_ref, "eval") if held_out is not None else None
    output_dir = config.home() / "finetunes" / project / name
    params = {
        "r": int(r),
        "alpha": int(alpha),
        "epochs": float(epochs),
        "lr": float(lr),
        "batch_size": int(batch_size),
        "max_steps": int(max_steps) if max_steps else None,
        "max_length": int(max_length),
        "target_modules": list(target_modules) if target_modules else None,
        "lora_dropout": float(lora_dropout),
        "seed": int(seed),
        "threads": int(threads) if threads else None,
        "requested_backend": backend,
        "base_path": base_path,
        "prompt_ref": version.ref,
        "dataset_version_id": train_version.id,
        "dataset_ref": train_version.ref,
        "n_train": train.height,
        "eval_dataset_version_id": eval_version.id if eval_version else None,
        "n_eval": held_out.height if held_out is not None else 0,
        "host": socket.gethostname(),
        **({"executor": "ray"} if on_ray else {}),
    }
    row = store.create_finetune_job(
        project,
        name,
        base=base,
        method=method,
        backend=resolved_backend,
        params=params,
        data_hash=train_version.hash,
        prompt_version_id=version.id,
        target=target,
        output_dir=str(output_dir),
        author=config.author(),
    )
    assert row.id is not None
    from ..audit import record

    record(
        "finetune launched",
        name,
        to=f"job #{row.id}",
        reason=f"{method} on {base}, data {train_version.ref}, prompt {version.ref}",
        project=project,
    )
    if on_ray:
        from .ray_launch import start_ray_worker

        start_ray_worker(row.id, output_dir, store.url, **on_ray)
    else:
        start_worker(row.id, output_dir, store.url, project)
    return FineTuneJob(row.id, project=project, store_url=store.url)


def finetunes(*, project: str | None = None) -> pl.DataFrame:
    """The project's fine-tune jobs, newest first: id, name, status, base, model, steps, loss."""
    import polars as pl

    from ..store import get_store

    project = project or config.current_project()
    store = get_store()
    records = []
    for row in store.list_finetune_jobs(project):
        job = FineTuneJob(row.id, project=project, row=row, store_url=store.url)  # type: ignore[arg-type]
        job.check_alive()
        row = job.row
        last = job.last_metrics()
        records.append(
            {
                "id": row.id,
                "name": row.name,
                "status": row.status,
                "base": row.base,
                "method": row.method,
                "backend": row.backend,
                "model": job.model,
                "step": last.get("step"),
                "loss": last.get("loss"),
                "eval_loss": last.get("eval_loss"),
                "created": row.created_at,
                "error": row.error,
            }
        )
    schema = {
        "id": pl.Int64, "name": pl.String, "status": pl.String, "base": pl.String,
        "method": pl.String, "backend": pl.String, "model": pl.String, "step": pl.Int64,
        "loss": pl.Float64, "eval_loss": pl.Float64, "created": pl.Datetime("us", "UTC"),
        "error": pl.String,
    }  # fmt: skip
    return pl.DataFrame(records, schema=schema)


def finetune_job(id_or_name: int | str, *, project: str | None = None) -> FineTuneJob:
    """Reattach to a job by id or name, from any kernel (or after a restart)."""
    from ..errors import NotFound
    from ..store import get_store

    project = project or config.current_project()
    store = get_store()
    if isinstance(id_or_name, int) or (isinstance(id_or_name, str) and id_or_name.isdigit()):
        row = store.finetune_job(int(id_or_name))
    else:
        row = store.finetune_job_named(project, str(id_or_name))
        if row is None:
            known = store.finetune_job_names(project)
            hint = f"known: {', '.join(sorted(known)[:10])}" if known else "it has none yet"
            raise NotFound(f"no fine-tune job named {id_or_name!r} in project {project!r} ({hint})")
    assert row.id is not None
    job = FineTuneJob(row.id, project=project, row=row, store_url=store.url)
    job.check_alive()
    return job


# --- checks ------------------------------------------------------------------------------


def resolve_base(base: str) -> str:
    """The directory (or cached Hugging Face id) of a `local/` base model, or one clear error."""
    from ..llm.local import LocalModelError, resolve

    if not isinstance(base, str) or not base.startswith("local/"):
        raise FineTuneError(
            f"cannot fine-tune {base!r}: the base must be a local model, "
            "local/<path to a Hugging Face model directory> or local/<built-in name>"
        )
    try:
        source = resolve(base.removeprefix("local/"))
    except LocalModelError as exc:
        raise FineTuneError(f"unknown base model {base!r}: {exc}") from None
    if source.adapter_path:
        raise FineTuneError(
            f"cannot fine-tune {base!r}: it is itself a fine-tune (an adapter on "
            f"{source.base}); fine-tune its base instead"
        )
    path = Path(source.base)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise FineTuneError(
                f"unknown base model {base!r}: {path} has no config.json "
                "(not a Hugging Face model directory)"
            )
        return str(path)
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source.base, "config.json")
    except Exception:  # an id that is not a valid repo name
        cached = None
    if not isinstance(cached, str):
        raise FineTuneError(
            f"unknown base model {base!r}: no such directory, and {source.base!r} is not in "
            "the local Hugging Face cache (nothing is downloaded here)"
        )
    return source.base


def _check_choices(method: str, backend: str) -> None:
    if method not in METHODS:
        raise FineTuneError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    if backend not in BACKENDS:
        raise FineTuneError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")


def _check_numbers(**values: Any) -> None:
    for key, value in values.items():
        if value is None and key in ("max_steps", "threads"):
            continue
        integral = key not in ("epochs", "lr")
        ok = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0
            and (not integral or float(value).is_integer())
        )
        if not ok:
            kind = "a positive integer" if integral else "a positive number"
            raise FineTuneError(f"{key} must be {kind}, not {value!r}")


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _pick_backend(method: str, backend: str) -> str:
    """The backend the worker will use; QLoRA and Unsloth need a CUDA GPU."""
    gpu = _cuda_available()
    if method == "qlora" and not gpu:
        raise FineTuneError(
            "method='qlora' needs a CUDA GPU (4-bit weights through bitsandbytes), and this "
            "machine has none: use method='lora'"
        )
    has_unsloth = importlib.util.find_spec("unsloth") is not None
    if backend == "unsloth" and not (gpu and has_unsloth):
        why = "no CUDA GPU is available" if not gpu else "the unsloth extra is not installed"
        raise FineTuneError(
            f"backend='unsloth' cannot run here: {why} (pip install 'llmops_nb[unsloth]' on "
            "a GPU machine); use backend='auto' or 'peft'"
        )
    if backend == "auto":
        return "unsloth" if gpu and has_unsloth else "peft"
    return backend


def _check_frame(frame: pl.DataFrame, what: str, version: Any, target: str) -> None:
    if frame.height == 0 or frame.width == 0:
        raise FineTuneError(f"{what} is empty ({frame.height} rows): a fine-tune needs examples")
    columns = ", ".join(frame.columns)
    if target not in frame.columns:
        raise FineTuneError(
            f"{what} has no target column {target!r} (columns: {columns}): target= names "
            "the column with the answers"
        )
    missing = [v for v in version.variables if v not in frame.columns]
    if missing:
        names = ", ".join(repr(v) for v in missing)
        raise FineTuneError(
            f"prompt {version.ref} uses {names}, but {what} has no such column (columns: {columns})"
        )
    nulls = frame[target].null_count()
    if nulls:
        raise FineTuneError(f"{what}: {nulls} row(s) have no {target!r} (null): drop or fill them")


def _free_name(taken: list[str], stem: str) -> str:
    names = set(taken)
    candidate = f"{stem}-ft"
    n = 2
    while candidate in names:
        candidate, n = f"{stem}-ft-{n}", n + 1
    return candidate
