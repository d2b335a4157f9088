"""Grids and fine-tunes on a real local Ray cluster (2 CPUs) that this module starts.

Two replicas of the tiny model serve a grid; one is killed mid-grid; the run equals the
local run of the same spec; resume works across executors; the workers never open the
store (their environment names one that cannot be opened, and it is never created).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import text

import llmops_nb as lo
from llmops_nb import config
from llmops_nb.errors import LLMOpsError
from llmops_nb.store import get_store

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'llmops_nb[ray]'")

from llmops_nb.llm.ray_actors import ReplicaPool, serving_pools  # noqa: E402
from llmops_nb.ray_cluster import RayNotInstalled, RayUnavailable  # noqa: E402

# What a user compares between two runs of one spec (latency, trace ids differ by nature).
SAME = ["prompt", "model", "row_index", "output", "error", "exact", "passed",
        "input_tokens", "output_tokens", "cached"]  # fmt: skip


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local 2-CPU Ray cluster. Its workers get a store URL that cannot be opened (its
    folder does not exist): a worker opening the store would fail its cell, and would
    create that folder."""
    canary = tmp_path_factory.mktemp("ray-workers") / "never-created"
    env = {
        "LLMOPS_NB_STORE": f"sqlite:///{canary}/store.db",
        "LLMOPS_NB_HOME": str(canary / "home"),
        "TOKENIZERS_PARALLELISM": "false",
    }
    # LLMOPS_NB_TEST_RAY_ADDRESS: run against a cluster started apart (`ray start --head`)
    existing = os.environ.get("LLMOPS_NB_TEST_RAY_ADDRESS")
    local = {
        "address": "local",  # always a new cluster: never a stale one named in /tmp/ray
        "num_cpus": 2,
        "include_dashboard": False,
        "object_store_memory": 150 * 2**20,
    }
    ray.init(
        **({"address": existing} if existing else local),
        log_to_driver=False,
        runtime_env={"env_vars": env},
    )
    yield canary
    ray.shutdown()


@pytest.fixture
def grid(tiny_model: Path) -> dict[str, Any]:
    lo.register_prompt("echo", "user:\nsay {{word}}", parameters={"max_tokens": 6})
    words = ["apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "ocean"] * 3
    data = pl.DataFrame({"word": words, "expected": words})
    return dict(
        prompts=["echo@1"],
        models=[f"local/{tiny_model}"],
        data=data,
        scorers=["exact", watch],
        concurrency=8,
        cache=False,
        progress=False,
    )


_seen: list[ReplicaPool] = []
_on_cell: list[Any] = []


@lo.scorer
def watch(output: str, row: dict[str, Any]) -> bool:
    """A scorer in both executors' runs: it remembers the pools serving the grid, and runs
    a hook (a test kills an actor from it)."""
    for pool in serving_pools():
        if pool not in _seen:
            _seen.append(pool)
    for hook in list(_on_cell):
        hook()
    return True


@pytest.fixture(autouse=True)
def fresh_watch() -> Iterator[None]:
    _seen.clear()
    _on_cell.clear()
    yield
    _on_cell.clear()


def same_rows(run: lo.EvalRun) -> pl.DataFrame:
    return run.results.select(SAME).sort("prompt", "model", "row_index")


def wait_until(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def count(table: str) -> int:
    with get_store().write_engine.begin() as conn:
        return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def test_grid_on_two_replicas_equals_the_local_run(cluster: Path, grid: dict[str, Any]) -> None:
    local = lo.evaluate(**grid, name="here")
    on_ray = lo.evaluate(**grid, name="there", executor="ray", ray_actors=2, ray_num_cpus=1)
    assert on_ray.status == "done" and on_ray.n_cells == local.n_cells == 24
    assert same_rows(on_ray).equals(same_rows(local))
    assert on_ray.results["error"].null_count() == 24
    (pool,) = _seen
    assert len(pool.served) == 2 and all(n > 0 for n in pool.served) and sum(pool.served) == 24
    # every call traced, by the driver, linked to its row
    traces = on_ray.results["trace_id"]
    assert traces.null_count() == 0 and traces.n_unique() == 24
    assert serving_pools() == []
    wait_until(lambda: ray.available_resources().get("CPU") == 2.0)  # the actors ended
    assert not cluster.exists()


def test_killing_an_actor_mid_grid_loses_and_duplicates_nothing(
    cluster: Path, grid: dict[str, Any]
) -> None:
    local = lo.evaluate(**grid, name="reference")
    killed: list[Any] = []

    def kill_one() -> None:
        if not killed and _seen and sum(_seen[0].served) >= 6:
            handle = _seen[0].handles[0]
            ray.kill(handle)
            killed.append(handle)

    _on_cell.append(kill_one)
    run = lo.evaluate(**grid, name="survivor", executor="ray", ray_actors=2)
    assert killed, "the grid ended before an actor could be killed"
    (pool,) = _seen
    # the killed actor's in-flight cells went to the other one, each answered once
    assert pool.retried >= 1 and sum(pool.served) == 24
    assert run.status == "done"
    keys = run.results.select("prompt", "model", "row_index")
    assert keys.height == 24 and keys.unique().height == 24 and count("eval_result") == 48
    assert run.results["error"].null_count() == 24
    assert same_rows(run).equals(same_rows(local))


def test_resume_works_across_executors(cluster: Path, grid: dict[str, Any]) -> None:
    first = lo.evaluate(**grid, name="both")
    expected = same_rows(first)

    def drop_from(row: int) -> None:  # as after a crash: cells missing, run never finished
        with get_store().write_engine.begin() as conn:
            conn.execute(text(f"DELETE FROM eval_result WHERE row_index >= {row}"))
            conn.execute(text("UPDATE eval_run SET status = 'running'"))

    drop_from(10)  # started locally, finished on Ray
    resumed = lo.evaluate(**grid, name="both", resume=True, executor="ray")
    assert resumed.id == first.id and resumed.status == "done"
    assert sum(_seen[0].served) == 14  # only the missing cells were generated
    assert same_rows(resumed).equals(expected)

    drop_from(20)  # and back: finished locally
    _seen.clear()
    again = lo.evaluate(**grid, name="both", resume=True, executor="local")
    assert again.id == first.id and again.status == "done" and _seen == []
    assert same_rows(again).equals(expected) and count("eval_result") == 24


def test_the_config_setting_and_the_magic_choose_ray(
    cluster: Path, grid: dict[str, Any], tiny_model: Path
) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython() or InteractiveShell.instance()
    shell.run_line_magic("load_ext", "llmops_nb")
    try:
        shell.run_line_magic("config", "LLMOps.ray_actors = 1")
        shell.user_ns["words"] = grid["data"].head(4)
        body = f"prompts: [echo@1]\nmodels: [local/{tiny_model}]\ndata: words\nscorers: [exact]\n"
        run = shell.run_cell_magic("eval", "magic --executor ray --no-cache", body)
        assert run.status == "done" and run.results.height == 4 and config.settings.ray_actors == 1
        shell.run_line_magic("config", 'LLMOps.executor = "ray"')
        assert config.settings.executor == "ray"
        again = lo.evaluate(**{**grid, "data": grid["data"].head(4)}, name="by-setting")
        assert len(_seen) == 1 and sum(_seen[0].served) == 4 and again.status == "done"
    finally:
        shell.run_line_magic("config", 'LLMOps.executor = "local"')
        shell.run_line_magic("config", "LLMOps.ray_actors = 2")
        shell.run_line_magic("unload_ext", "llmops_nb")


def test_workers_never_open_the_store(cluster: Path, grid: dict[str, Any]) -> None:
    run = lo.evaluate(**grid, name="driver-writes", executor="ray")
    assert run.status == "done" and count("eval_result") == 24
    assert run.results["error"].null_count() == 24  # a worker opening its store would fail
    assert not cluster.exists()  # ... and would have created this folder


def test_an_unreachable_address_is_named(grid: dict[str, Any]) -> None:
    config.settings.ray_address = "127.0.0.1:9"
    with pytest.raises(RayUnavailable, match=r"cannot reach the Ray cluster at '127\.0\.0\.1:9'"):
        lo.evaluate(**grid, name="nowhere", executor="ray")
    assert lo.EvalRun.list().height == 0  # nothing half-written


def test_without_ray_the_message_says_how_to_install_it(
    grid: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if absent
    with pytest.raises(RayNotInstalled, match=r"pip install 'llmops_nb\[ray\]'") as info:
        lo.evaluate(**grid, name="no-ray", executor="ray")
    assert isinstance(info.value, LLMOpsError) and "\n" not in str(info.value)
    assert lo.EvalRun.list().height == 0


def test_bad_executor_options_are_one_clear_error(grid: dict[str, Any]) -> None:
    with pytest.raises(LLMOpsError, match="executor must be 'local' or 'ray', not 'spark'"):
        lo.evaluate(**grid, executor="spark")
    with pytest.raises(LLMOpsError, match="ray_actors must be a whole number"):
        lo.evaluate(**grid, executor="ray", ray_actors=0)
    with pytest.raises(LLMOpsError, match="executor must be 'local' or 'ray', not 'spark'"):
        lo.finetune(grid["models"][0], grid["data"], "echo@1", "expected", executor="spark")
    assert lo.EvalRun.list().height == 0 and lo.finetunes().height == 0


def test_resources_no_machine_has_are_refused(cluster: Path, grid: dict[str, Any]) -> None:
    with pytest.raises(RayUnavailable, match=r"asks for 1 GPU\(s\), and the Ray cluster has 0"):
        lo.evaluate(**grid, executor="ray", ray_num_gpus=1)
    with pytest.raises(RayUnavailable, match=r"fine-tune task asks for 64 CPU\(s\)"):
        lo.finetune(
            grid["models"][0], grid["data"], "echo@1", "expected", executor="ray",
            ray_num_cpus=64,
        )  # fmt: skip
    assert lo.EvalRun.list().height == 0 and lo.finetunes().height == 0


def test_a_finetune_runs_as_a_ray_task(cluster: Path, tiny_model: Path) -> None:
    lo.register_prompt("topic", "user:\ntopic: {{text}}", parameters={"max_tokens": 4})
    rows = pl.DataFrame({"text": ["cat sat", "tree grew", "dog ran", "house lit"] * 4,
                         "label": ["animal", "plant", "animal", "home"] * 4})  # fmt: skip
    job = lo.finetune(
        f"local/{tiny_model}", rows, "topic", "label", name="ray-ft", executor="ray",
        eval_data=rows.head(4), max_steps=6, batch_size=4, lr=5e-3, threads=1,
    )  # fmt: skip
    job.wait(timeout=240)
    assert job.status == "completed", job.error
    metrics = job.metrics
    assert metrics["step"].max() == 6 and metrics["loss"].drop_nulls().len() >= 1
    assert metrics["eval_loss"].drop_nulls().len() >= 1 and job.samples()
    assert (job.adapter_path / "adapter_config.json").exists()  # written by the driver
    wait_until(lambda: "completed: ray-ft registered" in job.logs())  # relayed by the driver
    version = lo.model("ray-ft")
    assert version.version == 1 and Path(version.adapter_path) == job.adapter_path
    assert job.params["executor"] == "ray"
    assert not cluster.exists()
