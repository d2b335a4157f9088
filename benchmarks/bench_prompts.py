"""Foundation figures: `%load_ext llmops_nb` in fresh kernels, and registering a changed version.

Targets (issue 2): load ≤ 0.3 s with none of the heavy libraries imported;
registering a changed version ≤ 20 ms median on SQLite.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

from jupyter_client.manager import start_new_kernel

HEAVY = ["litellm", "torch", "transformers", "peft", "altair", "hnswlib"]


def load_ext_in_fresh_kernels(n: int = 5) -> tuple[list[float], list[str]]:
    times, imported = [], []
    code = (
        "import time, sys\n"
        "t = time.perf_counter()\n"
        "get_ipython().run_line_magic('load_ext', 'llmops_nb')\n"
        "dt = time.perf_counter() - t\n"
        f"print('RESULT', dt, [m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    for _ in range(n):
        km, kc = start_new_kernel(kernel_name="python3")
        try:
            out: list[str] = []
            kc.execute_interactive(
                code,
                output_hook=lambda m, out=out: (
                    out.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None
                ),
                timeout=60,
            )
            line = next(x for x in "".join(out).splitlines() if x.startswith("RESULT"))
            _, dt, mods = line.split(" ", 2)
            times.append(float(dt))
            imported.extend(eval(mods))  # noqa: S307 - our own printed list
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    return times, sorted(set(imported))


def register_changed_versions(n: int = 200) -> list[float]:
    import llmops_nb as lo
    from llmops_nb.store import get_store

    get_store()  # open (and migrate) outside the timing
    lo.register_prompt("bench", "warm up {{x}}")
    times = []
    for i in range(n):
        t = time.perf_counter()
        lo.register_prompt("bench", f"system:\nYou are agent {i}.\nuser:\n{{{{question}}}}")
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    home = tempfile.mkdtemp(prefix="llmops-bench-")
    os.environ["LLMOPS_NB_HOME"] = home
    os.environ.pop("LLMOPS_NB_STORE", None)

    times, heavy = load_ext_in_fresh_kernels()
    med = statistics.median(times)
    print(
        f"%load_ext llmops_nb, fresh kernel: median {med * 1000:.1f} ms over {len(times)} "
        f"kernels (max {max(times) * 1000:.1f} ms); target ≤ 300 ms -> {med / 0.3:.2f}× budget"
    )
    print(f"heavy libraries imported by %load_ext: {heavy or 'none'}")

    reg = register_changed_versions()
    med_reg = statistics.median(reg)
    p95 = sorted(reg)[int(len(reg) * 0.95)]
    print(
        f"register a changed version (SQLite): median {med_reg * 1000:.2f} ms, "
        f"p95 {p95 * 1000:.2f} ms over {len(reg)}; target ≤ 20 ms -> {med_reg / 0.02:.2f}× budget"
    )
    sys.exit(0 if med <= 0.3 and not heavy and med_reg <= 0.02 else 1)


if __name__ == "__main__":
    main()
