"""Run every benchmark and print one table of side-by-side ratios.

Each `benchmarks/bench_*.py` exposes `run() -> list[dict]` with rows
{benchmark, measured, reference, ratio, unit, goal}: a figure and its reference measured
in the same run, so the ratio means something on a shared machine. Pass module names
(e.g. `data idm`) to run a subset. The table also lands in benchmarks/out/results.json.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main(selected: list[str]) -> int:
    modules = sorted(path.stem for path in HERE.glob("bench_*.py"))
    if selected:
        modules = [name for name in modules if name.removeprefix("bench_") in selected or name in selected]
    rows, failures = [], []
    for name in modules:
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            rows += module.run()
        except Exception as error:  # one broken benchmark must not hide the others' figures
            failures.append(f"{name}: {type(error).__name__}: {error}")
        print(f"[{name} took {time.perf_counter() - started:.0f} s]", file=sys.stderr)
    header = f"{'benchmark':44} {'measured':>12} {'reference':>12} {'ratio':>8}  {'unit':12} goal"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['benchmark']:44} {row['measured']:12.1f} {row['reference']:12.1f} {row['ratio']:8.2f}"
              f"  {row['unit']:12} {row['goal']}")
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
