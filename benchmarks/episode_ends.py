"""Where a policy's SMB episodes end: episodes counted by the x range their furthest x falls in.

    python benchmarks/episode_ends.py RESULTS.json ... [--game smb1:1-1]
    python benchmarks/episode_ends.py --recordings 'results/raw/vpt/smb1/1-1_*.jsonl'

RESULTS are the per-policy files `swag evaluate-vpt` writes (results/eval/*/*.json). The ranges
default to SMB 1-1's hazards, in level pixels; an episode is counted in the range its `x_max`
falls in, and the count of those that ended in a death is given after it. The mean says how far a
policy gets; this says where it stops, which is what to look at when the mean does not move.

With --recordings, the same ranges over the demonstrators' raw recordings: how many 60 Hz frames
fall in each, and in how many Mario stands (x unchanged over the last `STAND_FRAMES`). A cloned
policy that stops somewhere the demonstrators never stand has little play there to copy.
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import numpy as np

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

STAND_FRAMES = 30  # 0.5 s at 60 Hz


def range_index(x) -> np.ndarray:
    """Index into RANGES_1_1 of each x: the first range whose upper bound is above it."""
    return np.searchsorted([upper for upper, _name in RANGES_1_1], x, side="right")


def standing(x) -> np.ndarray:
    """bool (T,): at each frame, whether Mario's x is what it was `STAND_FRAMES` frames before."""
    x = np.asarray(x)
    stands = np.zeros(len(x), dtype=bool)
    stands[STAND_FRAMES:] = x[STAND_FRAMES:] == x[:-STAND_FRAMES]
    return stands


def count_recordings(paths: list[str]) -> None:
    from swag.recording import iter_jsonl

    frames = np.zeros(len(RANGES_1_1), dtype=np.int64)
    frames_standing = np.zeros(len(RANGES_1_1), dtype=np.int64)
    recordings_standing = np.zeros(len(RANGES_1_1), dtype=np.int64)
    for path in paths:
        x = np.array([line["info"]["x_pos"] for line in iter_jsonl(path)])
        ranges = range_index(x)
        stands = standing(x)
        frames += np.bincount(ranges, minlength=len(RANGES_1_1))
        standing_here = np.bincount(ranges[stands], minlength=len(RANGES_1_1))
        frames_standing += standing_here
        recordings_standing += standing_here > 0
    print(f"{len(paths)} recordings, {frames.sum()} frames at 60 Hz; per range: frames, frames standing "
          f"(x unchanged over {STAND_FRAMES} frames), recordings with any standing")
    for (_upper, name), f, s, r in zip(RANGES_1_1, frames, frames_standing, recordings_standing):
        print(f"  {name:28s} {f:8d} {s:6d} {r:4d}")


def main(paths: list[str], game: str) -> None:
    from swag.rollout import read_results

    print(f"{'policy':24s} {'mean':>5s}  " + "  ".join(name for _, name in RANGES_1_1) + "   (episodes, died)")
    for path in paths:
        result = read_results(path)
        episodes = result["games"][game]["per_episode"]
        ranges = range_index([e["x_max"] for e in episodes])
        cells = []
        for i in range(len(RANGES_1_1)):
            inside = [e for e, r in zip(episodes, ranges) if r == i]
            cells.append(f"{len(inside)},{sum(e['deaths'] > 0 for e in inside)}" if inside else "-")
        mean = result["games"][game]["progress_mean"]
        print(f"{result['policy']:24s} {mean:5.3f}  " + "  ".join(cells))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*", help="rollout results JSON files")
    parser.add_argument("--game", default="smb1:1-1", help="GAME:LEVEL key in the results (ranges are 1-1's)")
    parser.add_argument("--recordings", help="glob of raw SMB 1-1 recordings (.jsonl) to count instead")
    args = parser.parse_args()
    if args.recordings:
        paths = sorted(glob.glob(args.recordings))
        if not paths:
            parser.error(f"--recordings {args.recordings!r} matches no file")
        count_recordings(paths)
    elif args.results:
        main(args.results, args.game)
    else:
        parser.error("give rollout results files, or --recordings")
