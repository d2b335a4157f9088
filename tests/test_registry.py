"""The model registry: register_model, lo.models(), lo.model() and lo.lineage(), on the real
store, with real eval runs of the tiny model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

import llmops_nb as lo
from llmops_nb.errors import LLMOpsError, ModelRegistryError, NotFound
from llmops_nb.llm import local
from llmops_nb.registry import register_model
from llmops_nb.store import get_store
from llmops_nb.store import models as m

TRAIN = pl.DataFrame({"question": ["reset password?", "change email?"], "answer": ["A", "B"]})


def finetune_job(name: str = "tiny-ft") -> int:
    """A finished job row, as the fine-tune launcher writes one (its service lands apart)."""
    store = get_store()
    project_id = store.project_id("default")

    def write(s: Any) -> int:
        job = m.FinetuneJob(
            project_id=project_id, name=name, base="local/tiny", method="lora",
            backend="peft", status="completed", params={"r": 4},
        )  # fmt: skip
        s.add(job)
        s.flush()
        return job.id

    return store.write(write)


@pytest.fixture
def lineage_inputs() -> dict[str, Any]:
    data = lo.dataset("support", TRAIN)
    prompt = lo.register_prompt(
        "reply", "Answer briefly: {{ question }}", parameters={"max_tokens": 4}
    )
    return {"dataset": data, "prompt": prompt, "job_id": finetune_job()}


def register_tuned(tiny_model: Path, tiny_adapter: Path, inputs: dict[str, Any]) -> lo.ModelVersion:
    return register_model(
        "tiny-ft",
        base=str(tiny_model),
        adapter_path=tiny_adapter,
        backend="peft",
        parameters={"r": 4, "epochs": 1},
        metrics={"loss": 0.42},
        dataset_version_id=inputs["dataset"].id,
        prompt_ref="reply@1",
        job_id=inputs["job_id"],
    )


def test_registered_version_reads_back_with_its_lineage_fields(
    tiny_model: Path, tiny_adapter: Path, lineage_inputs: dict[str, Any]
) -> None:
    made = register_tuned(tiny_model, tiny_adapter, lineage_inputs)
    again = lo.model("tiny-ft@1")
    assert again == made
    assert (again.name, again.version, again.ref, again.model) == (
        "tiny-ft", 1, "tiny-ft@1", "local/tiny-ft@1"
    )  # fmt: skip
    assert again.base == str(tiny_model)
    assert again.adapter_path == str(tiny_adapter.resolve())
    assert again.backend == "peft"
    assert again.parameters == {"r": 4, "epochs": 1}
    assert again.metrics == {"loss": 0.42}
    assert again.dataset_hash == lineage_inputs["dataset"].hash
    assert again.dataset_version_id == lineage_inputs["dataset"].id
    assert again.dataset_ref == "dataset:support@1"
    assert again.prompt_ref == "reply@1"
    assert again.prompt_version_id == lineage_inputs["prompt"].id
    assert again.job_id == lineage_inputs["job_id"]
    assert again.created is not None and again.author == "tester"
    assert lo.model("local/tiny-ft") == made  # the latest, with or without the prefix


def test_models_lists_builtin_bases_then_registered_versions(tiny_model: Path) -> None:
    register_model("plain", base=str(tiny_model), adapter_path=None, backend=None, parameters={})
    register_model("plain", base=str(tiny_model), adapter_path=None, backend=None, parameters={})
    frame = lo.models()
    assert isinstance(frame, pl.DataFrame)
    rows = frame.select("model", "builtin", "kind", "version").rows()
    assert rows == [
        ("local/smollm2", True, "chat", None),
        ("local/minilm", True, "embedding", None),
        ("local/plain@1", False, "model", 1),
        ("local/plain@2", False, "model", 2),
    ]
    assert frame.filter(pl.col("builtin"))["available"].to_list() == [True, True]
    assert "SmolLM2-135M-Instruct" in frame["base"][0]
    smol = lo.model("smollm2")
    assert smol.builtin and smol.model == "local/smollm2"


@pytest.mark.parametrize(
    ("change", "error", "says"),
    [
        ({"name": "smollm2"}, ModelRegistryError, "local/smollm2 is a built-in base"),
        ({"name": "bad name"}, LLMOpsError, "invalid model name 'bad name'"),
        ({"adapter_path": "/no/such/adapter"}, ModelRegistryError, "'/no/such/adapter' does not"),
        ({"prompt_ref": "nope@1"}, NotFound, "nope"),
        ({"dataset_version_id": 999}, NotFound, "no dataset version with id 999"),
        ({"dataset_hash": "f" * 64}, ModelRegistryError, "is not the content hash of dataset"),
        ({"job_id": 999}, NotFound, "there is no fine-tune job 999"),
    ],
)
def test_bad_registration_is_one_clear_error_and_writes_nothing(
    tiny_model: Path,
    tiny_adapter: Path,
    lineage_inputs: dict[str, Any],
    change: dict[str, Any],
    error: type[Exception],
    says: str,
) -> None:
    arguments: dict[str, Any] = {
        "name": "tiny-ft",
        "base": str(tiny_model),
        "adapter_path": tiny_adapter,
        "backend": "peft",
        "parameters": {},
        "dataset_version_id": lineage_inputs["dataset"].id,
        "prompt_ref": "reply@1",
        "job_id": lineage_inputs["job_id"],
        **change,
    }
    name = arguments.pop("name")
    with pytest.raises(error, match=None) as err:
        register_model(name, **arguments)
    assert says in str(err.value)
    assert "\n" not in str(err.value)
    assert get_store().list_models("default") == []


def test_lineage_walks_back_to_job_data_and_prompt_and_forward_to_eval_runs(
    tiny_model: Path, tiny_adapter: Path, lineage_inputs: dict[str, Any]
) -> None:
    register_tuned(tiny_model, tiny_adapter, lineage_inputs)
    rows = [{"question": "reset password?"}]
    pinned = lo.evaluate(["reply@1"], ["local/tiny-ft@1"], rows, name="pinned", progress=False)
    v2 = register_model(
        "tiny-ft", base=str(tiny_model), adapter_path=None, backend="peft", parameters={}
    )
    latest = lo.evaluate(["reply@1"], ["local/tiny-ft"], rows, name="latest", progress=False)
    lo.evaluate(["reply@1"], [f"local/{tiny_model}"], rows, name="other", progress=False)

    first = lo.lineage("local/tiny-ft@1")
    assert first.model.version == 1
    assert first.job is not None and first.job["id"] == lineage_inputs["job_id"]
    assert first.job["status"] == "completed" and first.job["backend"] == "peft"
    assert first.dataset is not None
    assert (first.dataset["name"], first.dataset["version"]) == ("support", 1)
    assert first.dataset["id"] == lineage_inputs["dataset"].id
    assert first.prompt is not None
    assert (first.prompt["name"], first.prompt["version"]) == ("reply", 1)
    assert [(r["run_id"], r["name"], r["version"]) for r in first.eval_runs] == [
        (pinned.id, "pinned", 1)
    ]
    assert "job: #" in repr(first) and "eval runs: #" in repr(first)

    every = lo.lineage("local/tiny-ft")  # the latest version, and the runs of every version
    assert every.model == v2
    assert every.job is None and every.dataset is None and every.prompt is None
    assert [(r["name"], r["model"], r["version"]) for r in every.eval_runs] == [
        ("pinned", "local/tiny-ft@1", 1),
        ("latest", "local/tiny-ft", 2),
    ]
    assert every.eval_runs[1]["run_id"] == latest.id
    assert lo.lineage("tiny-ft@2").eval_runs == [every.eval_runs[1]]
    assert every.to_dict()["model"] == "local/tiny-ft@2"


def test_missing_version_is_one_clear_error_everywhere(tiny_model: Path) -> None:
    register_model("tiny-ft", base=str(tiny_model), adapter_path=None, backend=None, parameters={})
    with pytest.raises(LLMOpsError) as err:
        lo.complete("local/tiny-ft@9", "hi", max_tokens=2, cache=False)
    assert "model 'tiny-ft' has no version 9 (latest is v1)" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(NotFound, match="has no version 9"):
        lo.model("tiny-ft@9")
    with pytest.raises(NotFound, match="unknown model 'nope'"):
        lo.lineage("nope")


def test_a_registered_model_on_a_builtin_base_runs_on_the_converted_copy(
    smollm2: Path, tmp_path: Path
) -> None:
    register_model(
        "smol-ft", base="local/smollm2", adapter_path=None, backend="peft", parameters={}
    )
    source = local.resolve("smol-ft@1")
    assert source.base == str(smollm2)
    assert source.registered == "smol-ft v1"


def test_training_data_that_was_never_stored_keeps_its_hash(tiny_model: Path) -> None:
    digest = "ab" * 32
    register_model(
        "hashed", base=str(tiny_model), adapter_path=None, backend="peft", parameters={},
        dataset_hash=digest,
    )  # fmt: skip
    version = lo.model("hashed")
    assert version.dataset_hash == digest and version.dataset_ref is None
    found = lo.lineage("hashed")
    assert found.dataset == {"name": None, "version": None, "hash": digest}
    assert "unstored data, hash abababababab" in repr(found)
    assert lo.models().filter(pl.col("name") == "hashed")["dataset"].to_list() == [digest]
