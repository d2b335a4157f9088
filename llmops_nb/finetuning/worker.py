"""The fine-tune worker: `python -m llmops_nb.finetuning.worker JOB_ID`.

The only module that imports trl, peft's training code and unsloth. It reads the job
from the store, builds the examples, trains a LoRA adapter (Unsloth on a CUDA GPU when
it is installed, else transformers + peft through TRL's SFTTrainer), streams metrics and
sample generations to the store, saves the adapter under the job's folder, registers it,
and marks the job completed. Any failure marks it failed with a one-line reason; a
cancel (the job's status, or SIGTERM from `job.cancel()`) stops it without registering.
"""

from __future__ import annotations

import math
import os
import resource
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..store import get_store
from .examples import Conversation, conversations, encode_all, prompt_text
from .processes import ACTIVE

N_SAMPLES = 3
CANCEL_CHECK_S = 2.0
UNSLOTH_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class Terminated(BaseException):
    """SIGTERM arrived (job.cancel() ends the process group): stop at once, save nothing."""


class Cancelled(Exception):
    """The job was cancelled in the store while it trained."""


@dataclass
class Plan:
    """What to train, read from the job row."""

    job_id: int
    name: str
    project: str
    base: str
    base_path: str
    method: str
    params: dict[str, Any]
    output_dir: Path
    train: list[Conversation]
    eval: list[Conversation] = field(default_factory=list)
    prompt_ref: str = ""
    data_hash: str | None = None


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m llmops_nb.finetuning.worker JOB_ID", file=sys.stderr)
        return 2
    job_id = int(argv[1])
    signal.signal(signal.SIGTERM, _on_sigterm)
    store = get_store()
    if not store.update_finetune_job(
        job_id, only_from=("queued",), status="running", pid=os.getpid()
    ):
        print(f"job {job_id} is {store.finetune_job(job_id).status}, not queued: nothing to do")
        return 0
    try:
        plan = _plan(job_id)
        _say(f"job #{job_id} {plan.name}: {len(plan.train)} training rows, {len(plan.eval)} eval")
        _train(plan)
    except (Terminated, Cancelled):
        _say("stopped: the job was cancelled")
        store.update_finetune_job(job_id, only_from=ACTIVE, status="cancelled")
        return 0
    except BaseException as exc:
        traceback.print_exc()
        store.update_finetune_job(job_id, only_from=ACTIVE, status="failed", error=_one_line(exc))
        return 1
    return 0


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _plan(job_id: int) -> Plan:
    from ..datasets import get_version_by_id
    from ..prompting import prompt

    store = get_store()
    row = store.finetune_job(job_id)
    project = store.project_name(row.project_id)
    params = dict(row.params or {})
    version = prompt(params["prompt_ref"], project=project)
    target = row.target or ""

    def rows(version_id: int | None) -> list[Conversation]:
        if version_id is None:
            return []
        frame = get_version_by_id(version_id, project=project).df
        return conversations(frame.iter_rows(named=True), version, target)

    return Plan(
        job_id=job_id,
        name=row.name,
        project=project,
        base=row.base,
        base_path=params["base_path"],
        method=row.method,
        params=params,
        output_dir=Path(row.output_dir or "."),
        train=rows(params["dataset_version_id"]),
        eval=rows(params.get("eval_dataset_version_id")),
        prompt_ref=params["prompt_ref"],
        data_hash=row.data_hash,
    )


# --- backends ---------------------------------------------------------------------------


def _unsloth() -> Any | None:
    """Unsloth's FastLanguageModel when a CUDA GPU and the package are there, else None.
    Imported before transformers and trl, as Unsloth patches them."""
    import torch

    if not torch.cuda.is_available():
        return None
    try:
        from unsloth import FastLanguageModel
    except (ImportError, NotImplementedError) as exc:  # no package, or no usable accelerator
        _say(f"unsloth unavailable ({_one_line(exc)}): using transformers + peft")
        return None
    return FastLanguageModel


def _load_unsloth(fast: Any, plan: Plan) -> tuple[Any, Any]:
    p = plan.params
    model, tokenizer = fast.from_pretrained(
        model_name=plan.base_path,
        max_seq_length=p["max_length"],
        dtype=None,  # bf16 where supported, else fp16
        load_in_4bit=plan.method == "qlora",
    )
    model = fast.get_peft_model(
        model,
        r=p["r"],
        lora_alpha=p["alpha"],
        lora_dropout=p["lora_dropout"],
        target_modules=p["target_modules"] or UNSLOTH_TARGETS,
        bias="none",
        use_gradient_checkpointing="unsloth",
        random_state=p["seed"],
        max_seq_length=p["max_length"],
    )
    return model, tokenizer


def _load_peft(plan: Plan, gpu: bool) -> tuple[Any, Any]:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = plan.params
    tokenizer = AutoTokenizer.from_pretrained(plan.base_path)
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if gpu:
        kwargs = {"dtype": _gpu_dtype(), "device_map": {"": 0}}
    if plan.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=_gpu_dtype(),
            bnb_4bit_use_double_quant=True,
        )
    model = AutoModelForCausalLM.from_pretrained(plan.base_path, **kwargs)
    if plan.method == "qlora":
        model = prepare_model_for_kbit_training(model)
    config = LoraConfig(
        r=p["r"],
        lora_alpha=p["alpha"],
        lora_dropout=p["lora_dropout"],
        target_modules=p["target_modules"] or "all-linear",
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config), tokenizer


def _gpu_dtype() -> Any:
    import torch

    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# --- training ---------------------------------------------------------------------------


def _train(plan: Plan) -> None:
    store = get_store()
    p = plan.params
    requested = p.get("requested_backend", "auto")
    fast = _unsloth() if requested in ("auto", "unsloth") else None
    if requested == "unsloth" and fast is None:
        raise RuntimeError("backend='unsloth' was asked for, but Unsloth cannot run here")
    import torch

    gpu = torch.cuda.is_available()
    if p.get("threads"):
        torch.set_num_threads(p["threads"])
    if plan.method == "qlora" and not gpu:
        raise RuntimeError("method='qlora' needs a CUDA GPU, and this machine has none")
    backend = "unsloth" if fast is not None else "peft"
    store.update_finetune_job(plan.job_id, backend=backend)
    _say(f"loading {plan.base} ({plan.base_path}) with {backend} on {'cuda' if gpu else 'cpu'}")
    model, tokenizer = _load_unsloth(fast, plan) if fast else _load_peft(plan, gpu)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    train, dropped = encode_all(tokenizer, plan.train, p["max_length"])
    if not train:
        raise ValueError(
            f"every training example is longer than max_length={p['max_length']} tokens"
        )
    if dropped:
        _say(f"left out {dropped} training example(s) longer than {p['max_length']} tokens")
    held_out, _ = encode_all(tokenizer, plan.eval, p["max_length"])

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    def as_dataset(items: list[Any]) -> Any:
        return Dataset.from_list(
            [
                {
                    "input_ids": e.input_ids,
                    "labels": [t if m else -100 for t, m in zip(e.input_ids, e.completion_mask)],
                }
                for e in items
            ]
        )

    steps_per_epoch = math.ceil(len(train) / p["batch_size"])
    total = p["max_steps"] or max(1, math.ceil(steps_per_epoch * p["epochs"]))
    log_every = max(1, min(10, total // 20))
    eval_every = max(1, total // 4)
    half = gpu  # mixed precision on a GPU (Unsloth loads bf16 or fp16 weights too)
    args = SFTConfig(
        output_dir=str(plan.output_dir / "trainer"),
        per_device_train_batch_size=p["batch_size"],
        per_device_eval_batch_size=p["batch_size"],
        num_train_epochs=p["epochs"],
        max_steps=p["max_steps"] or -1,
        learning_rate=p["lr"],
        lr_scheduler_type="linear",
        warmup_steps=min(10, total // 10),
        logging_steps=log_every,
        eval_strategy="steps" if held_out else "no",
        eval_steps=eval_every if held_out else None,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=p["seed"],
        use_cpu=not gpu,
        bf16=half and _gpu_dtype() == torch.bfloat16,
        fp16=half and _gpu_dtype() == torch.float16,
        max_length=p["max_length"],
        gradient_checkpointing=gpu and fast is None,  # GPU memory; Unsloth does its own
        completion_only_loss=True,
        dataset_kwargs={"skip_prepare_dataset": True},
        remove_unused_columns=False,
    )
    reporter = _reporter_class()(plan, tokenizer, total, _mean_len(train), fast)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=as_dataset(train),
        eval_dataset=as_dataset(held_out) if held_out else None,
        processing_class=tokenizer,
        data_collator=Collator(tokenizer.pad_token_id),
        callbacks=[reporter],
    )
    result = trainer.train()
    if reporter.cancelled:
        raise Cancelled()
    if held_out and reporter.last_eval_step != trainer.state.global_step:
        trainer.evaluate()  # the final eval loss and samples

    adapter_dir = plan.output_dir / "adapter"
    model.save_pretrained(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))
    _say(f"saved the adapter in {adapter_dir}")
    metrics = reporter.summary(result)
    _register(plan, adapter_dir, backend, metrics)
    if not store.update_finetune_job(plan.job_id, only_from=("running",), status="completed"):
        raise Cancelled()
    _say(f"completed: {plan.name} registered as local/{plan.name}")


def _register(plan: Plan, adapter_dir: Path, backend: str, metrics: dict[str, Any]) -> None:
    from ..registry import register_model

    keys = ("r", "alpha", "epochs", "lr", "batch_size", "max_steps", "max_length", "seed")
    register_model(
        plan.name,
        base=plan.base,
        adapter_path=str(adapter_dir),
        backend=backend,
        parameters={"method": plan.method, **{k: plan.params.get(k) for k in keys}},
        metrics=metrics,
        dataset_hash=plan.data_hash,
        dataset_version_id=plan.params["dataset_version_id"],
        prompt_ref=plan.prompt_ref,
        job_id=plan.job_id,
        project=plan.project,
    )


def _mean_len(items: list[Any]) -> float:
    return sum(len(e.input_ids) for e in items) / max(1, len(items))


class Collator:
    """Right-pads input ids (pad id) and labels (-100) to the batch's longest example."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"], dtype=torch.long)
            labels[i, :n] = torch.tensor(f["labels"], dtype=torch.long)
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _peak_mem_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _reporter_class() -> type:
    """The TrainerCallback that streams metrics to the store (transformers loads lazily)."""
    from transformers import TrainerCallback

    class StoreReporter(TrainerCallback):
        def __init__(
            self, plan: Plan, tokenizer: Any, total: int, mean_len: float, fast: Any
        ) -> None:
            self.plan, self.tokenizer, self.fast = plan, tokenizer, fast
            self.total, self.mean_len = total, mean_len
            self.store = get_store()
            self.started = time.monotonic()
            self.last_check = 0.0
            self.last_tokens: tuple[float, float] | None = None  # (time, tokens) at last log
            self.last_eval_step = -1
            self.last_loss: float | None = None
            self.last_eval_loss: float | None = None
            self.tokens_per_s: float | None = None
            self.cancelled = False

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.started = time.monotonic()
            self.total = state.max_steps or self.total
            self.last_tokens = (self.started, 0.0)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step == state.max_steps:
                control.should_log = True  # the curve always ends at the last step
            now = time.monotonic()
            if now - self.last_check >= CANCEL_CHECK_S:
                self.last_check = now
                if self.store.finetune_job(self.plan.job_id).status == "cancelled":
                    self.cancelled = True
                    control.should_training_stop = True

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            logs = logs or {}
            if "loss" not in logs:
                return  # eval logs arrive in on_evaluate; the final summary in summary()
            step = state.global_step
            now = time.monotonic()
            tokens = logs.get("num_tokens")
            if not isinstance(tokens, int | float):
                tokens = step * args.per_device_train_batch_size * self.mean_len
            if self.last_tokens is not None and now > self.last_tokens[0]:
                rate = (tokens - self.last_tokens[1]) / (now - self.last_tokens[0])
                self.tokens_per_s = rate if rate > 0 else self.tokens_per_s
            self.last_tokens = (now, float(tokens))
            elapsed = now - self.started
            eta = elapsed / step * (self.total - step) if step else None
            self.last_loss = _finite(logs.get("loss"))
            extra = {
                "tokens_per_s": self.tokens_per_s,
                "peak_mem_mb": _peak_mem_mb(),
                "eta_s": eta,
                "elapsed_s": elapsed,
                "total_steps": self.total,
                "grad_norm": _finite(logs.get("grad_norm")),
            }
            self.store.add_finetune_metrics(
                self.plan.job_id,
                [
                    {
                        "step": step,
                        "epoch": state.epoch,
                        "loss": self.last_loss,
                        "lr": _finite(logs.get("learning_rate")),
                        "extra": {k: v for k, v in extra.items() if v is not None},
                    }
                ],
            )
            rate = f"{self.tokens_per_s:.0f} tok/s" if self.tokens_per_s else ""
            _say(f"step {step}/{self.total} loss {logs.get('loss')} {rate} eta {eta or 0:.0f}s")

        def on_evaluate(
            self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any
        ) -> None:
            metrics = metrics or {}
            self.last_eval_step = state.global_step
            self.last_eval_loss = _finite(metrics.get("eval_loss"))
            samples = _samples(kw.get("model"), self.tokenizer, self.plan.eval, self.fast)
            self.store.add_finetune_metrics(
                self.plan.job_id,
                [
                    {
                        "step": state.global_step,
                        "epoch": state.epoch,
                        "extra": {
                            "eval_loss": self.last_eval_loss,
                            "total_steps": self.total,
                            "samples": samples,
                        },
                    }
                ],
            )
            _say(f"eval at step {state.global_step}: eval_loss {self.last_eval_loss}")

        def summary(self, result: Any) -> dict[str, Any]:
            out = {
                "steps": result.global_step,
                "train_loss": _finite(result.training_loss),
                "final_loss": self.last_loss,
                "eval_loss": self.last_eval_loss,
                "train_runtime_s": _finite((result.metrics or {}).get("train_runtime")),
                "tokens_per_s": self.tokens_per_s,
                "peak_mem_mb": _peak_mem_mb(),
            }
            return {k: v for k, v in out.items() if v is not None}

    return StoreReporter


def _finite(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _samples(model: Any, tokenizer: Any, items: list[Conversation], fast: Any) -> list[dict]:
    """Greedy answers to the first few eval prompts, beside the expected ones."""
    import torch

    if model is None or not items:
        return []
    chosen = items[:N_SAMPLES]
    was_training = model.training
    if fast is not None:
        fast.for_inference(model)
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        for item in chosen:
            text, add_special = prompt_text(tokenizer, item.messages)
            ids = tokenizer(text, add_special_tokens=add_special, return_tensors="pt")
            ids = {k: v.to(device) for k, v in ids.items()}
            answer_len = len(tokenizer(item.answer, add_special_tokens=False)["input_ids"])
            with torch.no_grad():
                generated = model.generate(
                    **ids,
                    max_new_tokens=min(128, answer_len + 8),
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = generated[0, ids["input_ids"].shape[1] :]
            last_user = next(
                (m["content"] for m in reversed(item.messages) if m["role"] == "user"), ""
            )
            out.append(
                {
                    "prompt": last_user,
                    "expected": item.answer,
                    "output": tokenizer.decode(new, skip_special_tokens=True).strip(),
                }
            )
    finally:
        if fast is not None:
            fast.for_training(model)
        if was_training:
            model.train()
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv))
