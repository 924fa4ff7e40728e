"""Where a policy's SMB episodes end: episodes counted by the x range their furthest x falls in.

    python benchmarks/episode_ends.py RESULTS.json ... [--game smb1:1-1]

RESULTS are the per-policy files `swag evaluate-vpt` writes (results/eval/*/*.json). The ranges
default to SMB 1-1's hazards, in level pixels; an episode is counted in the range its `x_max`
falls in, and the count of those that ended in a death is given after it. The mean says how far a
policy gets; this says where it stops, which is what to look at when the mean does not move.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# (upper bound of the range, name), in level pixels of SMB 1-1
RANGES_1_1 = (
    (400, "first goomba"),
    (640, "blocks, pipes 1-2"),
    (715, "goomba before the tall pipe"),
    (730, "tall pipe"),
    (1000, "pipes 3-4"),
    (1500, "pits"),
    (2100, "stairs, pit"),
    (float("inf"), "further"),
)


def main(paths: list[str], game: str) -> None:
    from swag.rollout import read_results

    print(f"{'policy':24s} {'mean':>5s}  " + "  ".join(name for _, name in RANGES_1_1) + "   (episodes, died)")
    for path in paths:
        result = read_results(path)
        episodes = result["games"][game]["per_episode"]
        cells, lower = [], 0.0
        for upper, _name in RANGES_1_1:
            inside = [e for e in episodes if lower <= e["x_max"] < upper]
            cells.append(f"{len(inside)},{sum(e['deaths'] > 0 for e in inside)}" if inside else "-")
            lower = upper
        mean = result["games"][game]["progress_mean"]
        print(f"{result['policy']:24s} {mean:5.3f}  " + "  ".join(cells))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="rollout results JSON files")
    parser.add_argument("--game", default="smb1:1-1", help="GAME:LEVEL key in the results (ranges are 1-1's)")
    args = parser.parse_args()
    main(args.results, args.game)
