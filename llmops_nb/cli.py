"""`llmops-nb`: the command line (demo now; eval and report join as they land)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEMO_NOTEBOOKS = ("quickstart.ipynb", "prompts.ipynb", "tracing.ipynb", "evals.ipynb")


def demo(out_dir: Path) -> int:
    """Execute the bundled notebooks on the embedded defaults and save the executed copies."""
    import nbformat
    from nbclient import NotebookClient

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    root = Path(__file__).resolve().parent.parent / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    ran = 0
    for name in DEMO_NOTEBOOKS:
        path = root / name
        if not path.exists():
            continue
        # each notebook in a project of its own: the tours reuse prompt names
        os.environ["LLMOPS_NB_PROJECT"] = f"demo-{path.stem}"
        print(f"running {path.name} (project demo-{path.stem}) ...", flush=True)
        nb = nbformat.read(path, as_version=4)
        NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(root)}}
        ).execute()
        target = out_dir / path.name
        nbformat.write(nb, target)
        print(f"  executed -> {target}")
        ran += 1
    from . import config

    print(f"{ran} notebook(s) ran; store: {config.mask_url(config.store_url())}")
    return 0 if ran else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmops-nb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="run the bundled notebooks end to end")
    p_demo.add_argument("-o", "--out", default="reports", help="folder for executed notebooks")
    from .evals import gate

    gate.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(Path(args.out))
    if args.command == "eval":
        return gate.main(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
