"""lo.finetune end to end on the tiny model: a real worker process, TRL + peft on CPU, the
store, the registry, reattaching from another process, cancel, a killed worker, bad input."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import llmops_nb as lo
from llmops_nb.errors import FineTuneError, LLMOpsError
from llmops_nb.store import get_store

# A topic label for a short sentence: the random tiny model answers gibberish (exact match
# about 0), and a LoRA learns it in about 150 steps.
CLASSES = {"animal": ["cat", "dog", "fox"], "plant": ["tree", "river"], "home": ["house", "light"]}
FILLER = "the a an small large quick brown over lazy please thanks hello world".split()
TRAIN = {"epochs": 6, "lr": 5e-3, "r": 16, "alpha": 32, "batch_size": 8, "threads": 1}


def topic_rows(n: int, seed: int) -> pl.DataFrame:
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        label = rng.choice(list(CLASSES))
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 6))]
        words.insert(rng.randint(0, len(words)), rng.choice(CLASSES[label]))
        texts.append(" ".join(words))
        labels.append(label)
    return pl.DataFrame({"text": texts, "label": labels})


@pytest.fixture
def base(tiny_model: Path) -> str:
    lo.register_prompt("topic", "user:\ntopic: {{text}}", parameters={"max_tokens": 8})
    return f"local/{tiny_model}"


def exact_match(model: str, data: pl.DataFrame, name: str) -> float:
    run = lo.evaluate(
        ["topic"],
        [model],
        data,
        [{"exact": {"expected": "{{label}}"}}],
        name=name,
        progress=False,
    )
    return float(run.summary()["exact"][0])


def wait_until(predicate: Any, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def test_finetune_learns_registers_reattaches_and_exports(
    base: str, tiny_model: Path, tmp_path: Path, llmops_home: Path
) -> None:
    held_out = topic_rows(30, seed=99)
    before = exact_match(base, held_out, "before")
    assert before <= 0.1

    job = lo.finetune(
        base, topic_rows(200, seed=1), "topic", "label", name="topic-ft",
        eval_data=topic_rows(8, seed=7), **TRAIN,
    )  # fmt: skip
    assert job.status in ("queued", "running")  # returned at once
    assert job.model == "local/topic-ft"
    job.wait(timeout=540)
    assert job.status == "completed", job.logs(tail=30)
    assert job.backend == "peft" and job.error is None

    metrics = job.metrics
    assert {"step", "loss", "eval_loss", "lr", "epoch", "tokens_per_s", "peak_mem_mb"} <= set(
        metrics.columns
    )
    train = metrics.filter(pl.col("loss").is_not_null())
    assert train["step"].max() == 150 and train.height >= 10
    assert train["loss"][-1] < train["loss"][0] / 2
    assert metrics["eval_loss"].drop_nulls().len() >= 4
    assert (train["tokens_per_s"].drop_nulls() > 0).all()
    samples = job.samples()
    assert len(samples) == 3 and {s["expected"] for s in samples} <= set(CLASSES)
    assert "completed: topic-ft registered as local/topic-ft" in job.logs()

    after = exact_match(job.model, held_out, "after")
    assert after >= 0.5, (before, after)

    # the registry entry carries the lineage
    store = get_store()
    model = store.registered_model("default", "topic-ft")
    row = store.finetune_job(job.id)
    assert (model.version, model.job_id, model.backend) == (1, job.id, "peft")
    assert model.data_hash == row.data_hash and model.data_hash
    assert model.prompt_version_id == lo.prompt("topic@1").id
    assert model.params["r"] == 16 and model.metrics["steps"] == 150
    assert Path(model.adapter_path, "adapter_config.json").exists()

    # a "restarted kernel": another process reattaches by name and reads the same metrics
    script = (
        "import json, llmops_nb as lo\n"
        "job = lo.finetune_job('topic-ft')\n"
        "print(json.dumps({'status': job.status, 'rows': job.metrics.height, "
        "'model': job.model, 'listed': lo.finetunes()['name'].to_list()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True,
        env={**os.environ, "LLMOPS_NB_HOME": str(llmops_home)}, timeout=120,
    )  # fmt: skip
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {
        "status": "completed", "rows": metrics.height, "model": "local/topic-ft",
        "listed": ["topic-ft"],
    }  # fmt: skip

    # finished: cancel is refused; the name is taken
    with pytest.raises(FineTuneError, match="already completed: there is nothing to cancel"):
        job.cancel()
    with pytest.raises(FineTuneError, match="a fine-tune job named 'topic-ft' already exists"):
        lo.finetune(base, topic_rows(20, seed=3), "topic", "label", name="topic-ft")

    # merged weights load with plain transformers and answer like the registered model
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir = job.export(tmp_path / "merged")
    assert not (out_dir / "adapter_config.json").exists()
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    merged = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32)
    text = held_out["text"][0]
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": f"topic: {text}"}], add_generation_prompt=True, tokenize=False
    )
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    generated = merged.generate(**ids, max_new_tokens=6, do_sample=False)
    answer = tokenizer.decode(generated[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    registered = lo.complete(
        job.model, messages=[{"role": "user", "content": f"topic: {text}"}], max_tokens=6
    )
    assert answer.strip() == registered.text.strip()

    # the panel's view and static rendering read the same job
    from llmops_nb.views.finetunes import finetune_view
    from llmops_nb.widgets.finetune_panel import mimebundle, static_html

    view = finetune_view(job)
    assert view["status"] == "completed" and view["step"] == 150 and view["total_steps"] == 150
    assert len(view["train"]) == train.height and view["eval"]
    page = static_html(view)
    assert "<svg" in page and "topic-ft" in page and "completed" in page
    assert page.count("<polyline") == 2  # train and eval curves
    bundle = mimebundle(job)
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "completed" in bundle["text/plain"]


def static_html_of(panel: Any) -> str:
    from llmops_nb.widgets.finetune_panel import static_html

    return static_html(panel.view)


def _long_job(base: str, name: str) -> Any:
    return lo.finetune(
        base, topic_rows(64, seed=2), "topic", "label", name=name, max_steps=100_000, threads=1
    )


def _running_with_metrics(job: Any) -> bool:
    return job.status == "running" and job.metrics.height > 0


def test_finetune_magic_launches_and_cancel_stops_the_worker(base: str) -> None:
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython() or InteractiveShell.instance()
    shell.run_line_magic("load_ext", "llmops_nb")
    try:
        shell.user_ns["rows"] = topic_rows(64, seed=2)
        with pytest.raises(UsageError, match="no variable 'nope' in the notebook"):
            shell.run_line_magic(
                "finetune", f"--base {base} --data nope --prompt topic --target label"
            )
        job = shell.run_line_magic(
            "finetune",
            f"--base {base} --data rows --prompt topic@1 --target label --name to-cancel "
            "--r 8 --lr 1e-3 --max-steps 100000 --max-length 64 --threads 1 --out cancel_me",
        )
        assert shell.user_ns["cancel_me"] is job
        assert (job.params["r"], job.params["lr"], job.params["max_steps"]) == (8, 1e-3, 100000)
        assert job.params["max_length"] == 64
    finally:
        shell.run_line_magic("unload_ext", "llmops_nb")
    from llmops_nb.widgets.finetune_panel import FineTunePanel

    panel = FineTunePanel(job, poll_s=0.2)  # follows the job without re-running anything
    wait_until(lambda: (panel.view.get("step") or 0) > 0)
    first_step = panel.view["step"]
    wait_until(lambda: panel.view["step"] > first_step)
    assert panel.view["status"] == "running" and panel.view["train"]
    pid = job.row.pid
    panel._on_message(panel, {"type": "cancel"}, [])  # the panel's Cancel button
    assert panel.view["status"] == "cancelled" and not panel.view["active"]
    assert job.status == "cancelled"
    wait_until(lambda: subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode)
    assert job.status == "cancelled"  # the worker's exit did not turn it into "failed"
    assert panel._poller is not None
    panel._poller.join(timeout=5)
    assert not panel._poller.is_alive()  # the poller stops once the job has finished
    assert "cancelled" in static_html_of(panel)
    assert get_store().list_models("default") == []
    with pytest.raises(FineTuneError, match="already cancelled"):
        job.cancel()


def test_a_killed_worker_marks_the_job_failed(base: str) -> None:
    job = _long_job(base, "to-kill")
    wait_until(lambda: job.status == "running")
    os.killpg(job.row.pid, signal.SIGKILL)
    job.wait(timeout=60)
    assert job.status == "failed"
    assert "the worker process was killed by SIGKILL" in job.error
    assert "to-kill" in repr(job) and "failed" in repr(job)


def test_a_crashing_worker_reports_its_error(base: str, tiny_model: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    job = lo.finetune(f"local/{broken}", topic_rows(16, seed=4), "topic", "label", name="crash")
    (broken / "config.json").unlink()  # the base disappears after the checks
    job.wait(timeout=180)
    assert job.status == "failed"
    assert job.error and "config" in job.error.lower()
    assert "Traceback" in job.logs()


def test_a_stored_dataset_version_trains_and_is_the_lineage(base: str) -> None:
    stored = lo.dataset("topics", topic_rows(16, seed=8))
    job = lo.finetune(base, "dataset:topics@1", "topic", "label", name="from-dataset",
                      max_steps=2, batch_size=4, threads=1)  # fmt: skip
    assert job.params["dataset_ref"] == "dataset:topics@1" and job.params["n_train"] == 16
    job.wait(timeout=300)
    assert job.status == "completed", job.logs(tail=30)
    assert "16 training rows" in job.logs()  # the worker read the stored version's rows
    lineage = lo.lineage(job.model)
    assert lineage.dataset is not None
    assert (lineage.dataset["name"], lineage.dataset["version"]) == ("topics", 1)
    assert lo.model("from-dataset").dataset_hash == stored.hash
    from llmops_nb.datasets import datasets

    assert datasets()["name"].to_list() == ["topics"]  # no second copy of the rows


def test_bad_input_is_one_clear_message_and_writes_no_job(base: str) -> None:
    data = topic_rows(10, seed=5)
    gpu = _has_cuda()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"base": "local/no-such-model"}, "unknown base model 'local/no-such-model'"),
        ({"base": "openai/gpt-4o"}, "the base must be a local model"),
        ({"target": "answer"}, "data has no target column 'answer' (columns: text, label)"),
        ({"data": data.drop("text")}, "prompt topic@1 uses 'text', but data has no such column"),
        ({"data": data.head(0)}, "data is empty (0 rows)"),
        ({"eval_data": data.head(0)}, "eval_data is empty (0 rows)"),
        ({"epochs": 0}, "epochs must be a positive number, not 0"),
        ({"lr": -1e-4}, "lr must be a positive number, not -0.0001"),
        ({"r": 0}, "r must be a positive integer, not 0"),
        ({"method": "full"}, "unknown method 'full': use one of lora, qlora"),
        ({"backend": "tpu"}, "unknown backend 'tpu'"),
        ({"prompt": "nope"}, "nope"),
        ({"name": "bad name"}, "invalid fine-tune job name 'bad name'"),
    ]
    if not gpu:
        cases.append(({"method": "qlora"}, "method='qlora' needs a CUDA GPU"))
        cases.append(({"backend": "unsloth"}, "backend='unsloth' cannot run here"))
    for change, message in cases:
        kwargs: dict[str, Any] = {
            "base": base, "data": data, "prompt": "topic", "target": "label", **change
        }  # fmt: skip
        with pytest.raises(LLMOpsError) as info:
            lo.finetune(**kwargs)
        assert message in str(info.value), (change, str(info.value))
        assert "\n" not in str(info.value)
    assert lo.finetunes().height == 0
    assert get_store().list_finetune_jobs("default") == []
    with pytest.raises(LLMOpsError, match="no fine-tune job named 'ghost'"):
        lo.finetune_job("ghost")


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _unsloth_missing() -> str:
    """Why the Unsloth backend cannot run here ("" when it can)."""
    import importlib.util

    if not _has_cuda():
        return "no CUDA GPU on this machine: the Unsloth backend needs one, so it has not run here"
    if importlib.util.find_spec("unsloth") is None:
        return "the unsloth extra is not installed (pip install 'llmops_nb[unsloth]' on a GPU)"
    return ""


UNSLOTH_MISSING = _unsloth_missing()


@pytest.mark.skipif(bool(UNSLOTH_MISSING), reason=UNSLOTH_MISSING or "Unsloth can run here")
def test_unsloth_backend_on_a_gpu(base: str) -> None:
    job = lo.finetune(base, topic_rows(64, seed=6), "topic", "label", name="gpu", max_steps=20)
    job.wait(timeout=600)
    assert job.status == "completed", job.logs(tail=30)
    assert job.backend == "unsloth"
    assert job.metrics.filter(pl.col("loss").is_not_null()).height > 0
    assert lo.model("gpu").backend == "unsloth"
