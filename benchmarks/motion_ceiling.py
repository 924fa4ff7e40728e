"""How well could any IDM find each button if it read Mario's motion perfectly? A ceiling, from the emulator's RAM.

    python benchmarks/motion_ceiling.py [RUN_DIR] [--train-run DIR] [--seeds 3]

Every SMB recording of the training styles in RUN_DIR's results/index/idm.json (`train` and `test`
splits) is replayed in the emulator from its seed and actions, reading at every NES frame what
the screen draws of Mario (his position in the level to the pixel, x and y; which way he faces;
whether he is in the air) and the state behind it that no frame draws (the sub-pixel byte of his
x position, RAM 0x400, and his speed byte, 0x57). From each of four views of that motion, a small
classifier (an MLP of two hidden layers of 64, fit to the `train` split's true buttons, one per
seed) labels the `test` split, and the F1 of right, left, A and B is printed:

- `drawn, 20 fps`: Mario's drawn x and y velocity into store frames t-2 ... t+4, his facing and
  airborne flag at t. All that a perfect reader of the store's frames learns from Mario's motion
  over the IDM's labelling context.
- `drawn, 60 fps`: the same, at every NES frame over the same span (what 60 fps frames would show).
- `sub-pixel, 60 fps`: the x velocity with the sub-pixel byte: finer than any frame draws.
- `sub-pixel + speed byte`: and the speed byte at t-2 ... t+3, whose change is what a brake is.

So the first row is what perfect perception of the frames could reach with the run's labelled
play, and the gap to the last row is what the frames never show. The classifier sees only
Mario's motion (not enemies, blocks or the score), so for buttons whose effect lasts longer than
the window (B's run) it is no ceiling; for left's brakes and A's jumps, which change Mario's
motion within frames, it is. `--train-run` fits the classifiers on another run's `train` split
(4x the labelled play, say) and scores on RUN_DIR's `test` split; a recording in both is an
error. It needs a finished demo run (`make demo`), so `make bench` skips it. On the demo's
labelled play it took about 10 minutes on one thread, most of it fitting the classifiers.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BUTTONS_SHOWN = ("right", "left", "A", "B")
CONTEXT = (-2, 4)  # store frames around t whose motion the classifiers see: the demo's labelling context
VIEWS = ("drawn, 20 fps", "drawn, 60 fps", "sub-pixel, 60 fps", "sub-pixel + speed byte")


def replay_motion(prefix: Path, store_fps: float) -> dict:
    """Mario's motion at every source (NES) frame of one recording, as the frame shows it: x
    (level pixel), y (pixel), sub (x's sub-pixel byte), speed (signed speed byte), air (in the
    air), facing_left; and `starts`, the source frame each store frame shows."""
    import numpy as np

    from swag import actions as nes_actions
    from swag import games
    from swag.recording import iter_jsonl, read_meta

    meta = read_meta(prefix)
    source = np.array([line["action"] for line in iter_jsonl(f"{prefix}.jsonl")], np.uint8)
    starts = nes_actions.frame_spans(len(source), games.NES_FPS, store_fps)[:, 0]
    env = games.make(meta["game"], meta["level"])
    fields = {name: [] for name in ("x", "y", "sub", "speed", "air", "facing_left")}
    try:
        env.reset(seed=int(meta["seed"]))
        ram = env.unwrapped.ram
        for i in range(len(source)):
            # RAM before source frame i's action: the state the screen shows as frame i
            fields["x"].append(int(ram[0x6D]) * 256 + int(ram[0x86]))
            fields["y"].append(int(ram[0xCE]))
            fields["sub"].append(int(ram[0x400]))
            fields["speed"].append(int(ram[0x57:0x58].view(np.int8)[0]))
            fields["air"].append(int(ram[0x1D] != 0))
            fields["facing_left"].append(int(ram[0x33] == 2))
            _, _, terminated, truncated, _ = env.step(int(source[i]))
            if terminated or truncated:
                break
    finally:
        env.close()
    motion = {name: np.array(values, np.float64) for name, values in fields.items()}
    motion["starts"] = starts
    return motion


def shown_frames(motion: dict, num_frames: int):
    """int (num_frames,): the replayed source frame each store frame shows; store frames after
    the episode ended repeat its last state."""
    import numpy as np

    return np.minimum(motion["starts"][:num_frames], len(motion["x"]) - 1)


def views(motion: dict, num_frames: int, ratio: int) -> dict:
    """Per view of VIEWS, float (num_frames, features) for the store frames; NaN where a frame's
    context runs past the recording (the classifier reads NaN as 0 after standardising)."""
    import numpy as np

    played = len(motion["x"])
    starts = motion["starts"][:num_frames]
    shown = shown_frames(motion, num_frames)

    def around(values, at, offsets):  # values[at + offset] per offset, NaN outside
        out = np.full((len(at), len(offsets)), np.nan)
        for j, offset in enumerate(offsets):
            k = at + offset
            inside = (k >= 0) & (k < len(values))
            out[inside, j] = values[k[inside]]
        return out

    def velocity(position):
        return np.r_[np.nan, np.diff(position)]  # into each frame

    lo, hi = CONTEXT
    store_offsets, nes_offsets = range(lo, hi + 1), range(lo * ratio, hi * ratio + 1)
    at_t = np.c_[motion["facing_left"][shown], motion["air"][shown]]
    every_store_frame = np.arange(len(shown))
    vx_20 = around(velocity(motion["x"][shown]), every_store_frame, store_offsets)
    vy_20 = around(velocity(motion["y"][shown]), every_store_frame, store_offsets)
    vx_60 = around(velocity(motion["x"]), shown, nes_offsets)
    vy_60 = around(velocity(motion["y"]), shown, nes_offsets)
    vx_60_subpixel = around(velocity(motion["x"] + motion["sub"] / 256), shown, nes_offsets)
    speed = around(motion["speed"], shown, range(lo * ratio, hi * ratio, ratio))  # at store frames t-2 ... t+3
    features = {
        VIEWS[0]: np.c_[vx_20, vy_20, at_t],
        VIEWS[1]: np.c_[vx_60, vy_60, at_t],
        VIEWS[2]: np.c_[vx_60_subpixel, vy_60, at_t],
        VIEWS[3]: np.c_[vx_60_subpixel, vy_60, at_t, speed],
    }
    for array in features.values():
        array[starts >= played] = np.nan  # store frames past the replay's end (none when faithful)
    return features


def fit_and_label(X, Y, X_test, seed: int, steps: int = 3000):
    """bool (len(X_test), buttons): an MLP (64, 64) fit to multi-hot Y by full-batch Adam, thresholded at 0.5."""
    import numpy as np
    import torch

    mean, std = np.nanmean(X, 0), np.nanstd(X, 0) + 1e-6
    X, X_test = (torch.tensor(np.nan_to_num((a - mean) / std), dtype=torch.float32) for a in (X, X_test))
    targets = torch.tensor(Y, dtype=torch.float32)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                              torch.nn.ReLU(), torch.nn.Linear(64, Y.shape[1]))
    optimizer = torch.optim.Adam(net.parameters(), 3e-3, weight_decay=1e-4)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(net(X), targets).backward()
        optimizer.step()
    with torch.no_grad():
        return (net(X_test) > 0).numpy()


def load_split(run_dir: Path, split: str) -> tuple[dict, "np.ndarray", list[str], int]:
    """Per view, the features of every SMB store of `split` (training styles only), their true
    buttons (bool, frames x BUTTONS_SHOWN), the episodes, and store frames whose replayed x
    differs from the store's recorded x_pos (0 when the replay is faithful)."""
    import numpy as np

    from swag import games
    from swag.actions import BUTTONS, to_multihot
    from swag.data import index_stores, read_index
    from swag.store import open_store

    index = read_index(run_dir / "results/index/idm.json")
    heldout = set(index.get("heldout_styles", []))
    columns = [BUTTONS.index(name) for name in BUTTONS_SHOWN]
    features, truth, episodes, mismatched = {view: [] for view in VIEWS}, [], [], 0
    for entry in index_stores(index, split):
        if entry["game"] != "smb1" or entry.get("style") in heldout:
            continue
        store = open_store(run_dir / entry["path"])
        prefix = run_dir / "results/raw/idm" / entry["game"] / Path(entry["path"]).stem
        motion = replay_motion(prefix, store.fps)
        T = len(store)
        recorded_x = np.asarray(store.info["x_pos"][:T])
        mismatched += int((motion["x"][shown_frames(motion, T)] != recorded_x).sum())
        for view, array in views(motion, T, round(games.NES_FPS / store.fps)).items():
            features[view].append(array)
        truth.append(to_multihot(store.actions)[:, columns].astype(bool))
        episodes.append(entry["episode"])
    if not truth:
        raise SystemExit(f"{run_dir}: no SMB recordings of the training styles in the {split} split")
    return {view: np.concatenate(arrays) for view, arrays in features.items()}, np.concatenate(truth), episodes, mismatched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", default=".", type=Path)
    parser.add_argument("--train-run", type=Path, default=None,
                        help="fit on this run's train split instead (scored on RUN_DIR's test split)")
    parser.add_argument("--seeds", type=int, default=3, help="classifier seeds per view")
    args = parser.parse_args()

    import numpy as np
    import torch

    from swag.evaluate import precision_recall_f1

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    left = BUTTONS_SHOWN.index("left")
    train_run = args.train_run or args.run_dir
    train, train_truth, train_episodes, train_mismatched = load_split(train_run, "train")
    test, test_truth, test_episodes, test_mismatched = load_split(args.run_dir, "test")
    overlap = set(train_episodes) & set(test_episodes)
    if overlap:
        raise SystemExit(f"{train_run}: its train split holds {len(overlap)} test recordings of {args.run_dir}, "
                         f"e.g. {sorted(overlap)[0]}")
    print(f"fit on {len(train_truth)} store frames of {train_run}'s train split "
          f"({int(train_truth[:, left].sum())} with left), scored on {len(test_truth)} of {args.run_dir}'s test split "
          f"({int(test_truth[:, left].sum())} with left); replayed x differs from the stores' on "
          f"{train_mismatched + test_mismatched} frames; {args.seeds} classifier seeds")
    print(f"{'view of Mario motion':24} " + " ".join(f"{'F1 ' + name:>8}" for name in BUTTONS_SHOWN)
          + "   left per seed")
    for view in VIEWS:
        scores = []
        for seed in range(args.seeds):
            predicted = fit_and_label(train[view], train_truth, test[view], seed)
            scores.append([precision_recall_f1(test_truth[:, b], predicted[:, b])["f1"]
                           for b in range(len(BUTTONS_SHOWN))])
        scores = np.array(scores)
        print(f"{view:24} " + " ".join(f"{f:8.3f}" for f in scores.mean(0))
              + "   " + " / ".join(f"{f:.3f}" for f in scores[:, left]), flush=True)


if __name__ == "__main__":
    main()
