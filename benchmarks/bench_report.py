"""Report export: time and size for the quickstart, and time, size and peak memory for a
notebook that touched a 100,000-row eval run and 1,000 traces.

1. The quickstart, executed once by nbclient, then exported by `llmops-nb report` in a
   fresh process (cold: imports included, what a user waits for), and again in this
   process (warm). Target: about 3 s.
2. A 100,000-row run (one prompt × one model, as the grid runner stores it) and 1,000
   traces of three spans, named in a notebook's outputs; exported in a fresh process:
   wall time, report size, and the child's peak RSS.

    python benchmarks/bench_report.py [--skip-quickstart]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
HOME = Path(tempfile.mkdtemp(prefix="bench_report_"))
os.environ["LLMOPS_NB_HOME"] = str(HOME)
os.environ.pop("LLMOPS_NB_STORE", None)
os.environ.pop("LLMOPS_NB_PROJECT", None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def export_in_child(notebook: Path, output: Path) -> tuple[float, int]:
    """(seconds, peak RSS in MB) of `llmops-nb report` in a fresh interpreter (its own
    peak: RUSAGE_CHILDREN would also count the quickstart's kernel)."""
    code = (
        "import resource, sys\n"
        "from llmops_nb.cli import main\n"
        "rc = main(['report', sys.argv[1], '-o', sys.argv[2]])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, str(notebook), str(output)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seconds = time.perf_counter() - start
    return seconds, int(done.stderr.strip().splitlines()[-1]) // 1024


def quickstart() -> None:
    from nbclient import NotebookClient
    from nbformat import read, write

    from llmops_nb.reporting.build import export

    folder = HOME / "quickstart"
    folder.mkdir()
    target = folder / "quickstart.ipynb"
    os.environ["LLMOPS_NB_NOTEBOOK"] = str(target)
    nb = read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()  # fmt: skip
    print(f"quickstart executed in {time.perf_counter() - start:.1f} s (not part of the figure)")
    write(nb, target)
    os.environ.pop("LLMOPS_NB_NOTEBOOK")
    cold, peak = export_in_child(target, folder / "cold.html")
    start = time.perf_counter()
    export(target, folder / "warm.html")
    warm_first = time.perf_counter() - start
    start = time.perf_counter()
    export(target, folder / "warm.html")
    warm = time.perf_counter() - start
    size = (folder / "warm.html").stat().st_size
    print(
        f"quickstart report: cold (new process) {cold:.2f} s, peak {peak} MB; "
        f"in-process first {warm_first:.2f} s, again {warm:.2f} s; size {size / 1024:.0f} KB "
        f"(target about 3 s)"
    )


def big() -> None:
    from test_report_bounded import N_ROWS, write_big_run

    import llmops_nb as lo
    from llmops_nb import tracing

    start = time.perf_counter()
    run_id = write_big_run()

    @lo.trace(name="pipeline")
    def pipeline(i: int) -> int:
        with lo.span("retrieve", kind="retriever") as s:
            s.set_outputs({"hits": i % 7})
        with lo.span("answer", kind="tool") as s:
            s.set_outputs(f"answer {i}")
        return i

    for i in range(1000):
        pipeline(i)
    tracing.flush()
    ids = lo.traces(limit=1000)["id"].to_list()
    print(f"wrote {N_ROWS} eval rows and {len(ids)} traces in {time.perf_counter() - start:.1f} s")
    lines = [f"EvalRun #{run_id} 'big': done, {N_ROWS}/{N_ROWS} cells"]
    lines += [f"<Trace 'pipeline' {t} ok 1.0 ms 3 spans 0 tokens>" for t in ids]
    cell = {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": "run",
            "outputs": [{"output_type": "execute_result", "execution_count": 1, "metadata": {},
                         "data": {"text/plain": "\n".join(lines)}}]}  # fmt: skip
    notebook = HOME / "big.ipynb"
    notebook.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4,
                                    "nbformat_minor": 5}))  # fmt: skip
    from llmops_nb.store import reset_store

    reset_store()
    seconds, peak = export_in_child(notebook, HOME / "big.html")
    size = (HOME / "big.html").stat().st_size
    print(
        f"100,000-row run + 1,000 traces: {seconds:.2f} s (new process), "
        f"size {size / 1e6:.2f} MB, peak RSS {peak} MB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-quickstart", action="store_true")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if not args.skip_quickstart:
        quickstart()
    big()
    return 0


if __name__ == "__main__":
    sys.exit(main())
