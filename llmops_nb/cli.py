"""`llmops-nb`: the command line (demo, eval, report, monitor)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

DEMO_NOTEBOOK = "quickstart.ipynb"


def demo(out_dir: Path) -> int:
    """Run the quickstart headless on the embedded defaults, export it, print the report's path.

    The notebook is saved after every cell, as JupyterLab's autosave would, so its own
    `%llmops report` cell sees the cells above it. Only the report's path goes to stdout.
    The other tour notebooks run in the tests, not here: the demo is the one lifecycle.
    """
    from nbclient import NotebookClient
    from nbformat import read, write

    from .reporting.build import export

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    root = Path(__file__).resolve().parent.parent / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    source, target = root / DEMO_NOTEBOOK, (out_dir / DEMO_NOTEBOOK).resolve()
    os.environ["LLMOPS_NB_PROJECT"] = f"demo-{source.stem}"
    # the kernel records this path in the store and reports on it, so it is saved as it runs
    os.environ["LLMOPS_NB_NOTEBOOK"] = str(target)
    print(f"running {source.name} (project demo-{source.stem}) ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    nb = read(source, as_version=4)
    write(nb, target)

    def save(cell: Any, execute_reply: dict[str, Any], **_: Any) -> None:
        # the kernel's own count (nbclient counts from 1, the kernel from 2), as Lab saves
        count = execute_reply.get("content", {}).get("execution_count")
        if count:
            cell["execution_count"] = count
        write(nb, target)

    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(out_dir.resolve())}},
        on_cell_executed=save,
    ).execute()
    write(nb, target)
    print(f"executed -> {target} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(export(target))
    return 0


def report(args: argparse.Namespace) -> int:
    from .errors import LLMOpsError
    from .reporting.build import export

    try:
        written = export(args.notebook, args.output, no_code=args.no_code, project=args.project)
    except LLMOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(written)
    return 0


def monitor_check(args: argparse.Namespace) -> int:
    """Print the alerts that fire now, one line each; 1 when any fired, else 0."""
    from .alerts import check_alerts
    from .errors import LLMOpsError

    if not args.check:
        print("llmops-nb monitor: pass --check to evaluate the alert rules", file=sys.stderr)
        return 2
    try:
        fired = check_alerts(project=args.project)
    except LLMOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for firing in fired:
        print(firing.line())
    if not fired:
        print("no alert fired")
    return 1 if fired else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmops-nb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="run the quickstart end to end and export its report")
    p_demo.add_argument("-o", "--out", default="reports", help="folder for the notebook and report")
    p_report = sub.add_parser("report", help="export a notebook to one self-contained HTML report")
    p_report.add_argument("notebook", help="the .ipynb file")
    p_report.add_argument("-o", "--output", help="the HTML file (default: NB.report.html)")
    p_report.add_argument("--no-code", action="store_true", help="hide the code cells' source")
    p_report.add_argument("--project", help="project for prompts the outputs name without one")
    p_monitor = sub.add_parser("monitor", help="check the alert rules, for cron or CI")
    p_monitor.add_argument(
        "--check", action="store_true", help="evaluate every rule; exit 1 when any fired"
    )
    p_monitor.add_argument("--project", help="the project whose rules to check (default: current)")
    from .evals import gate

    gate.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(Path(args.out))
    if args.command == "report":
        return report(args)
    if args.command == "eval":
        return gate.main(args)
    if args.command == "monitor":
        return monitor_check(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
