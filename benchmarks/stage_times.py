"""Where a workflow run spent its time: one line per rule, from Snakemake's benchmark files.

    python benchmarks/stage_times.py [logs/benchmarks]

Every compute rule writes `logs/benchmarks/{rule}/....tsv` (wall seconds `s`, `max_rss` MB,
`cpu_time` seconds). This sums them per rule. On a few cores jobs run side by side, so the
wall seconds of a rule add up to more than the time it held up the run; the run's own elapsed
time is at the end of its Snakemake log.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def number(job: dict, key: str) -> float:
    """One column of a benchmark row; Snakemake writes NA where it measured nothing."""
    value = job.get(key, "NA")
    return float(value) if value not in ("NA", "", "-") else 0.0


def stage_times(root: Path) -> list[dict]:
    rows = []
    for rule_dir in sorted(path for path in root.iterdir() if path.is_dir()):
        jobs = []
        for tsv in rule_dir.rglob("*.tsv"):
            with tsv.open() as handle:
                jobs += list(csv.DictReader(handle, delimiter="\t"))
        if not jobs:
            continue
        rows.append({"rule": rule_dir.name, "jobs": len(jobs),
                     "wall_s": sum(number(job, "s") for job in jobs),
                     "max_job_s": max(number(job, "s") for job in jobs),
                     "cpu_s": sum(number(job, "cpu_time") for job in jobs),
                     "max_rss_mb": max(number(job, "max_rss") for job in jobs)})
    return rows


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "logs/benchmarks")
    if not root.is_dir():
        print(f"{root}: no such folder; run the workflow first", file=sys.stderr)
        return 1
    rows = stage_times(root)
    print(f"| rule | jobs | wall s (sum) | longest job s | CPU s | peak RSS MB |\n|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['rule']} | {row['jobs']} | {row['wall_s']:.0f} | {row['max_job_s']:.0f} | {row['cpu_s']:.0f}"
              f" | {row['max_rss_mb']:.0f} |")
    total = sum(row["wall_s"] for row in rows)
    print(f"| all | {sum(row['jobs'] for row in rows)} | {total:.0f} | | {sum(row['cpu_s'] for row in rows):.0f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
