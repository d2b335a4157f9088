"""Bad input to an eval fails with one clear line before anything is written; a killed
run's status tells the truth; an errored cell is tried again on resume; the saved
progress output shows the final count."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import polars as pl
import pytest
from nbclient import NotebookClient
from sqlalchemy import text

import llmops_nb as lo
from llmops_nb import cli
from llmops_nb.datasets import DatasetError
from llmops_nb.errors import InvalidName, NotFound
from llmops_nb.evals import EvalRun, EvalSpecError, ScorerError
from llmops_nb.store import get_store
from llmops_nb.testing import OpenAIServer, serve


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with serve() as srv:
        yield srv


def rows(table: str) -> int:
    with get_store().engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)


def evaluate(srv: OpenAIServer, **kwargs: Any) -> EvalRun:
    lo.register_prompt("q", "user:\nQuestion {{i}}?")
    args: dict[str, Any] = dict(
        prompts=["q"],
        models=[{"model": "openai/m", "api_base": srv.base_url, "api_key": "k"}],
        data=pl.DataFrame({"i": [1, 2, 3]}),
        scorers=[{"contains": {"value": "Question"}}],
        name="faq",
        progress=False,
    )
    return lo.evaluate(**{**args, **kwargs})


@pytest.mark.parametrize(
    ("baseline", "error", "message"),
    [
        ("nosuchrun", NotFound, "baseline 'nosuchrun': no finished eval run of that name"),
        (99999, NotFound, "baseline 99999: there is no eval run with that id"),
        (3.5, EvalSpecError, "baseline must be 'latest', a run id or a run name, not 3.5"),
        (True, EvalSpecError, "baseline must be 'latest', a run id or a run name, not True"),
    ],
)
def test_a_bad_baseline_fails_before_anything_is_stored(
    store_url: str, server: OpenAIServer, baseline: Any, error: type, message: str
) -> None:
    with pytest.raises(error) as info:
        evaluate(server, baseline=baseline)
    assert str(info.value).startswith(message)
    assert rows("dataset_version") == 0 and rows("eval_run") == 0


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"timeout": -1}, "timeout must be a number of seconds above 0, not -1"),
        ({"timeout": 0}, "timeout must be a number of seconds above 0, not 0"),
        ({"retries": -5}, "retries must be a whole number of at least 0, not -5"),
        ({"concurrency": 0}, "concurrency must be a whole number of at least 1, not 0"),
        ({"concurrency": -1}, "concurrency must be a whole number of at least 1, not -1"),
        (
            {"scorers": [{"regex": {"pattern": "[oops"}}]},
            "scorer 'regex': invalid regex '[oops': unterminated character set at position 0",
        ),
    ],
)
def test_bad_settings_are_one_clear_error_and_write_nothing(
    server: OpenAIServer, setting: dict[str, Any], message: str
) -> None:
    with pytest.raises((EvalSpecError, ScorerError)) as info:
        evaluate(server, **setting)
    assert str(info.value) == message
    assert rows("dataset_version") == 0 and rows("eval_run") == 0
    assert server.stats.requests == 0


def test_cli_rejects_fail_under_outside_0_1_and_concurrency_0(
    tmp_path: Path, server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "prompts: [{template: 'Q {{i}}', label: p}]\n"
        f'models: [{{model: openai/m, api_base: "{server.base_url}", api_key: k}}]\n'
        "data: d.csv\nscorers: [{contains: {value: Q}}]\n"
    )
    pl.DataFrame({"i": [1, 2]}).write_csv(tmp_path / "d.csv")
    assert cli.main(["eval", str(spec), "--fail-under", "7"]) == 2
    assert capsys.readouterr().err == "error: --fail-under must be a score between 0 and 1, not 7\n"
    assert cli.main(["eval", str(spec), "--concurrency", "0"]) == 2
    assert "concurrency must be a whole number of at least 1, not 0" in capsys.readouterr().err
    assert server.stats.requests == 0


def test_a_binary_csv_is_named_as_such(tmp_path: Path) -> None:
    bad = tmp_path / "data.csv"
    bad.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(DatasetError) as info:
        lo.dataset("d", str(bad))
    assert str(info.value) == (
        f"cannot read {str(bad)!r}: it is not a CSV file (binary content, not UTF-8 text); "
        "give a text file, or a .parquet file for binary tables"
    )
    text_csv = tmp_path / "ok.csv"
    text_csv.write_text("q,a\nCafé,ü\n")
    assert lo.dataset("ok", str(text_csv)).n_rows == 1


def test_a_prompt_ref_that_is_not_text_is_one_clear_error() -> None:
    with pytest.raises(InvalidName) as info:
        lo.prompt(42)  # type: ignore[arg-type]
    assert str(info.value) == "a prompt reference is text such as 'support_reply@2', not int 42"


def test_unbalanced_quotes_on_a_magic_line_are_one_clear_error() -> None:
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython() or InteractiveShell.instance()
    shell.run_line_magic("load_ext", "llmops_nb")
    try:
        with pytest.raises(UsageError) as info:
            shell.run_line_magic("prompt", "show 'p")
        assert str(info.value) == 'cannot parse the magic line "show \'p": No closing quotation'
        with pytest.raises(UsageError) as info:
            shell.run_cell_magic("eval", "'x", "prompts: [q]\ndata: d.csv\n")
        assert str(info.value) == 'cannot parse the magic line "\'x": No closing quotation'
    finally:
        shell.run_line_magic("unload_ext", "llmops_nb")


def test_a_run_whose_process_is_gone_reads_interrupted(store_url: str) -> None:
    script = (
        "from llmops_nb.store import get_store\n"
        "get_store().create_eval_run('default', 'orphan', n_cells=3)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=dict(os.environ))
    mine = get_store().create_eval_run("default", "alive", n_cells=3)
    foreign = get_store().create_eval_run("default", "elsewhere", n_cells=3)
    with get_store().write_engine.begin() as conn:
        conn.execute(
            text("UPDATE eval_run SET owner = 'other-host:1:1' WHERE id = :id"), {"id": foreign.id}
        )
    assert EvalRun.load("orphan").status == "interrupted"
    listed = dict(EvalRun.list().select("name", "status").rows())
    # this process is alive; another host's process cannot be checked from here
    assert listed == {"orphan": "interrupted", "alive": "running", "elsewhere": "running"}
    assert get_store().get_eval_run(mine.id).status == "running"


def test_an_errored_cell_is_tried_again_on_resume(store_url: str, server: OpenAIServer) -> None:
    server.fail_next(500, times=2)
    first = evaluate(server, retries=0, cache=False)
    assert first.status == "done" and first.results["error"].null_count() == 1
    before = server.stats.requests
    resumed = evaluate(server, retries=0, cache=False, resume=True)
    assert server.stats.requests - before == 2  # only the errored cells ran again
    assert resumed.id == first.id and resumed.results["error"].null_count() == 3
    assert resumed.results["contains"].to_list() == [1.0, 1.0, 1.0]
    assert rows("eval_result") == 3


def test_the_saved_progress_output_shows_the_final_count(
    llmops_home: Path, tmp_path: Path, server: OpenAIServer
) -> None:
    """In a real kernel, on data with repeated rows served from the cache (fast cells, the
    case that once left the bar at 78/80): the saved output reads 80/80 done."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import polars as pl, llmops_nb as lo\n"
            "lo.register_prompt('q', 'user:\\nQuestion {{i}}?')\n"
            "run = lo.evaluate(['q', {'template': 'Again {{i}}', 'label': 'again'}],\n"
            f"    [{{'model': 'openai/m', 'api_base': '{server.base_url}', 'api_key': 'k'}}],\n"
            "    pl.DataFrame({'i': [1, 2, 3, 4] * 10}), ['is_json'], name='bar',\n"
            "    concurrency=16, cache=True)\n"
            "print(run)"
        )
    ]
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = nb.cells[0].outputs
    shown = [o for o in outputs if o.output_type == "display_data"]
    assert [o.data["text/plain"] for o in shown] == ["eval bar #1: 100% 80/80 cells done"]
    assert 'value="80"' in shown[0].data["text/html"]
    assert "application/vnd.jupyter.widget-view+json" not in shown[0].data
    assert "EvalRun #1 'bar': done, 80/80 cells" in "".join(
        o.get("text", "") for o in outputs if o.output_type == "stream"
    )
