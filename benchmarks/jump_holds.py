"""How SMB 1-1 jumps are held: the demonstrators' recordings against policies playing the level.

    python benchmarks/jump_holds.py --recordings 'results/raw/vpt/smb1/1-1_*.jsonl' \\
        --policy vpt=results/vpt/policy/model.pt --policy oracle=results/vpt/oracle/model.pt \\
        --episodes 16 --temperature 1.0 0.5

Height in SMB comes from how long A stays held (swag.demonstrators.smb: 1 frame lifts Mario
27 px, 16 frames 61 px, 25+ frames 68 px); the tall pipe of 1-1 is four metatiles, 64 px. A
policy that samples its buttons afresh at every step may let go of A mid-jump where a
demonstrator never would, or stand at a pipe's foot holding A (SMB jumps only on a fresh press).
Per 1-1 range (benchmarks/episode_ends.py) of the x a jump starts at, this prints:

    jumps       A presses that lifted Mario (y rose within 3 frames of the press)
    hold        median frames A stayed held in those jumps
    >=25        share of those jumps held 25+ frames: high enough for the tall pipe
    rise        median pixels Mario rose
    stand       frames Mario stood (x unchanged over 30 frames)
    A|stand     share of the standing frames with A held
    press/s     fresh A presses per second of standing: zero with A held means no jump can start

Policies play `--episodes` seeded episodes (the seeds `swag evaluate-vpt` uses) of
`--max-steps` steps at `--fps`, at each `--temperature`; with `--max-hold N`, also with A let go
for one step after N steps held (`ModelAgent(hold_limits=...)`): a test of whether a stall comes
from held A.
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.episode_ends import RANGES_1_1, range_index, standing  # noqa: E402
from swag.actions import onsets, press_lengths  # noqa: E402

LIFT_FRAMES = 3  # a press lifts Mario when his y rises within this many frames
RISE_WINDOW = 60  # frames after the press in which the jump's highest point is looked for
TALL_PIPE_HOLD = 25  # frames of A that lift Mario over four metatiles


def trace(actions, x, y) -> dict:
    """One episode's per-frame (60 Hz) arrays: A held, x in the level, y on screen (down = larger)."""
    from swag.actions import BIT

    actions = np.asarray(actions, dtype=np.int64)
    return {"a": (actions & BIT["A"]) > 0, "x": np.asarray(x, np.int64), "y": np.asarray(y, np.int64)}


def recording_traces(paths: list[str]) -> list[dict]:
    from swag.recording import iter_jsonl

    traces = []
    for path in paths:
        lines = list(iter_jsonl(path))
        traces.append(trace([line["action"] for line in lines], [line["info"]["x_pos"] for line in lines],
                            [line["info"]["y_pixel"] for line in lines]))
    return traces


def policy_traces(checkpoint: str, episodes: int, temperature: float, max_steps: int, fps: float,
                  max_hold: int | None = None) -> list[dict]:
    from swag.policy import ModelAgent
    from swag.rollout import Episode, episode_seed, run_episode

    import torch

    torch.set_num_threads(1)  # a one-frame step is too small to share between threads
    # a test of a cause, not a player: if a policy that stalls holding A gets further when it lets
    # go, the stall is the held A (SMB jumps on a fresh press), not a failure to want to jump
    agent = ModelAgent.from_checkpoint(checkpoint, temperature=temperature,
                                       hold_limits={"A": max_hold} if max_hold else None)
    traces = []
    for index in range(episodes):
        actions, x, y = [], [], []

        def record(action, info):
            actions.append(action)
            x.append(info["x_pos"])
            y.append(info["y_pixel"])

        episode = Episode(spec=None, game="smb1", level="1-1", index=index,
                          seed=episode_seed(0, "smb1", "1-1", index), max_steps=max_steps, fps=fps)
        result = run_episode(episode, agent=agent, on_frame=record)
        traces.append({**trace(actions, x, y), "progress": result["progress"]})
    return traces


def table(traces: list[dict]) -> list[dict]:
    """One row per 1-1 range: the figures the module docstring lists."""
    ranges = len(RANGES_1_1)
    holds = [[] for _ in range(ranges)]
    rises = [[] for _ in range(ranges)]
    stand = np.zeros(ranges, np.int64)
    stand_a = np.zeros(ranges, np.int64)
    stand_presses = np.zeros(ranges, np.int64)
    for t in traces:
        a, x, y = t["a"], t["x"], t["y"]
        presses, lengths = onsets(a), press_lengths(a)
        for start in presses:
            after = y[start + 1:start + 1 + LIFT_FRAMES]
            if not len(after) or after.min() >= y[start]:
                continue  # in the air already, or A pressed where it cannot jump
            where = range_index(x[start])
            holds[where].append(int(lengths[start]))
            rises[where].append(int(y[start] - y[start:start + RISE_WINDOW].min()))
        stands = standing(x)
        where = range_index(x)
        stand += np.bincount(where[stands], minlength=ranges)
        stand_a += np.bincount(where[stands & a], minlength=ranges)
        fresh = np.zeros(len(a), dtype=bool)
        fresh[presses] = True
        stand_presses += np.bincount(where[stands & fresh], minlength=ranges)
    rows = []
    for i, (_upper, name) in enumerate(RANGES_1_1):
        held = np.array(holds[i])
        rows.append({
            "range": name, "jumps": len(held),
            "hold": float(np.median(held)) if len(held) else float("nan"),
            "tall": float((held >= TALL_PIPE_HOLD).mean()) if len(held) else float("nan"),
            "rise": float(np.median(rises[i])) if rises[i] else float("nan"),
            "stand": int(stand[i]),
            "a_stand": stand_a[i] / stand[i] if stand[i] else float("nan"),
            "presses_per_s": stand_presses[i] / stand[i] * 60 if stand[i] else float("nan"),
        })
    return rows


def show(title: str, traces: list[dict]) -> None:
    frames = sum(len(t["a"]) for t in traces)
    progress = [t["progress"] for t in traces if "progress" in t]
    mean = f", mean progress {np.mean(progress):.3f}" if progress else ""
    print(f"\n{title}: {len(traces)} episodes, {frames} frames at 60 Hz{mean}")
    print(f"  {'range':28s} {'jumps':>6s} {'hold':>5s} {'>=25':>5s} {'rise':>5s} {'stand':>6s} {'A|stand':>7s} "
          f"{'press/s':>7s}")
    for row in table(traces):
        print(f"  {row['range']:28s} {row['jumps']:6d} {row['hold']:5.0f} {row['tall']:5.2f} {row['rise']:5.0f} "
              f"{row['stand']:6d} {row['a_stand']:7.2f} {row['presses_per_s']:7.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", help="glob of raw SMB 1-1 recordings (.jsonl): the demonstrators")
    parser.add_argument("--policy", action="append", default=[], metavar="NAME=CHECKPOINT",
                        help="a causal policy checkpoint to play 1-1 with (repeatable)")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--temperature", type=float, nargs="+", default=[1.0])
    parser.add_argument("--max-steps", type=int, default=600, help="policy steps per episode")
    parser.add_argument("--fps", type=float, default=20.0, help="the policy's rate (data.fps)")
    parser.add_argument("--max-hold", type=int, nargs="+", default=[0], metavar="STEPS",
                        help="also play with A let go for a step after STEPS steps held (0: as the policy acts)")
    args = parser.parse_args()
    if not args.recordings and not args.policy:
        parser.error("give --recordings, --policy, or both")
    if args.recordings:
        paths = sorted(glob.glob(args.recordings))
        if not paths:
            parser.error(f"--recordings {args.recordings!r} matches no file")
        show(f"demonstrators ({args.recordings})", recording_traces(paths))
    for spec in args.policy:
        name, _, checkpoint = spec.partition("=")
        if not checkpoint:
            parser.error(f"--policy {spec!r}: expected NAME=CHECKPOINT")
        for temperature in args.temperature:
            for max_hold in args.max_hold:
                released = f", A let go after {max_hold} steps held" if max_hold else ""
                show(f"{name} at T={temperature}{released}",
                     policy_traces(checkpoint, args.episodes, temperature, args.max_steps, args.fps, max_hold))
