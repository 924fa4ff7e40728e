"""Which button presses can an IDM see at all? A counterfactual ceiling, measured in the emulator.

    python benchmarks/button_visibility.py [RUN_DIR] [--horizon 3] [--split test] [--whole-press]

For every SMB recording of the IDM's `test` split (results/index/idm.json of a finished run), the
recording is replayed in the emulator from its seed and actions. At each store frame k (data.fps,
e.g. 20 fps) where a button is held, it plays the next `horizon` store frames twice from the same
emulator state: once as recorded, once with that button released during frame k's span of source
frames (everything after as recorded). The press is *visible* when any of the store frames
k+1 ... k+horizon, downscaled as `swag convert` does, differ by more than `--threshold` in some pixel.
An invisible press (pushing against a wall, braking when already stopped, A after the jump's apex)
leaves the frames identical, so no IDM can label it from the frames that follow it; for buttons
that act at once (left's brake, A's jump) the visible fraction bounds the IDM's recall. Buttons that
act through momentum (right, B's run) mostly show only when held for many frames: a one-step release
changes little, and the IDM reads them from the speed of the whole window instead, so for them the
fraction is no ceiling. `--whole-press` measures theirs: each press is released for all of its
store frames at once, and it is visible when any store frame from its second to `horizon` after its
last differs.

It prints, per button, the held frames, the visible fraction, and the run's IDM F1 on all frames
and on visible presses only (invisible presses left out: the ceiling-adjusted score), labelled as
`swag evaluate-idm` labels them. It needs a finished demo run (`make demo`), so `make bench` skips it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BUTTONS_SHOWN = ("right", "left", "A", "B")


def replay_visibility(prefix: Path, store_frames, height: int, width: int, fps: float,
                      horizon: int, whole_press: bool = False) -> tuple[dict, int]:
    """Per button, int16 (T_store,): for each held press of one recording, the largest pixel
    difference its release makes to the next `horizon` store frames (-1 where not held); and how
    many replayed store frames differ from the store (0 when the replay is faithful).
    `whole_press`: release each press for all its store frames at once instead of one at a time,
    and compare every store frame from the press's second to `horizon` after its last; every frame
    of the press gets that one difference (a press that changes nothing is invisible as a whole).

    The recorded play runs in one emulator; the two branches run in a second one loaded with the
    first's state, because an emulator that has loaded states renders frames that differ from an
    unbroken run's (measured: 191 of the first 300 store frames of a recording, by up to 64 of
    255), which would spoil the faithfulness check. Between branches that both start with a load,
    no such difference shows: the recorded branch played twice, with a released one in between,
    gave identical frames at all 665 store frames of a recording."""
    import cv2
    import numpy as np

    from swag import actions as nes_actions
    from swag import games
    from swag.recording import iter_jsonl, read_meta

    meta = read_meta(prefix)
    source = np.array([line["action"] for line in iter_jsonl(f"{prefix}.jsonl")], np.uint8)
    spans = nes_actions.frame_spans(len(source), games.NES_FPS, fps)  # (T, 2) source frames per store frame
    held = nes_actions.to_multihot(nes_actions.resample(source, games.NES_FPS, fps)).astype(bool)  # (T, 8)
    T = len(spans)
    env = games.make(meta["game"], meta["level"])
    branches = games.make(meta["game"], meta["level"])
    nes = branches.unwrapped

    def small(screen):
        return cv2.resize(np.ascontiguousarray(screen), (width, height), interpolation=cv2.INTER_AREA).astype(np.int16)

    def play(start: int, stop: int, release: int = 0, release_until: int = -1) -> list:
        """Source actions [start, stop) from the current state, `release` bits cleared before
        `release_until`; the downscaled screens at the store frames' first source frames."""
        shown = []
        for i in range(start, stop):
            _, _, terminated, truncated, _ = nes.step(int(source[i]) & ~release if i < release_until else int(source[i]))
            shown.append((i + 1, small(nes.screen)))
            if terminated or truncated:  # a death or the flag: both branches end here
                break
        return shown

    effect = {name: np.full(T, -1, np.int16) for name in BUTTONS_SHOWN}
    press_last = {}  # per button, store frame of each press's start -> its last held store frame
    for name in BUTTONS_SHOWN:
        column = held[:, nes_actions.BUTTONS.index(name)]
        starts = nes_actions.onsets(column)
        lasts = starts + nes_actions.press_lengths(column)[starts] - 1
        press_last[name] = dict(zip(starts.tolist(), lasts.tolist()))
    mismatches = 0
    try:
        frame, _ = env.reset(seed=int(meta["seed"]))
        branches.reset(seed=int(meta["seed"]))
        for k in range(T):
            start, stop = spans[k]
            if np.abs(small(frame) - np.asarray(store_frames[k], np.int16)).max() > 0:
                mismatches += 1
            snapshot, recorded_until = None, {}  # last store frame compared -> the recorded branch's screens
            for name in BUTTONS_SHOWN:
                if whole_press:
                    last = press_last[name].get(k)  # a press starts at k: release all of it
                else:
                    last = k if held[k, nes_actions.BUTTONS.index(name)] else None
                end_k = k if last is None else min(last + horizon, T - 1)
                if end_k <= k:
                    continue
                end = spans[end_k][0]  # source frame shown as store frame end_k
                wanted = set(spans[k + 1:end_k + 1, 0].tolist())
                if snapshot is None:
                    snapshot = env.unwrapped.dump_state()
                if end_k not in recorded_until:
                    nes.load_state(snapshot)
                    recorded_until[end_k] = [s for i, s in play(start, end) if i in wanted]
                recorded = recorded_until[end_k]
                nes.load_state(snapshot)
                released = [s for i, s in play(start, end, nes_actions.BIT[name], spans[last][1]) if i in wanted]
                if len(released) != len(recorded):  # one branch died or cleared the level
                    effect[name][k:last + 1] = 255
                else:
                    effect[name][k:last + 1] = max((int(np.abs(a - b).max()) for a, b in zip(recorded, released)),
                                                   default=0)
            for i in range(start, stop):  # the recorded play, through the wrapper as when recording
                frame, _, terminated, truncated, _ = env.step(int(source[i]))
                if terminated or truncated:  # the recording's last frames: nothing after them to show a press
                    return effect, mismatches
    finally:
        env.close()
        branches.close()
    return effect, mismatches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", default=".")
    parser.add_argument("--horizon", type=int, default=3, help="store frames after the press that may show it")
    parser.add_argument("--threshold", type=int, nargs="+", default=[0, 8],
                        help="pixel differences (0-255) above which a press counts as visible")
    parser.add_argument("--split", default="test")
    parser.add_argument("--whole-press", action="store_true",
                        help="release each press for its whole length, not one store frame: the ceiling for "
                             "buttons that act through momentum (right, B)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from swag.actions import BUTTONS, to_multihot
    from swag.data import index_stores, read_index
    from swag.evaluate import precision_recall_f1
    from swag.label import predict_store
    from swag.store import open_store
    from swag.train import load_model

    os.chdir(args.run_dir)  # index paths are relative to the run
    torch.set_num_threads(1)
    model = load_model("results/idm/model.pt", "cpu")
    truth, predicted, visible = [], [], {name: [] for name in BUTTONS_SHOWN}
    mismatched = frames = 0
    for entry in index_stores(read_index("results/index/idm.json"), args.split):
        if entry["game"] != "smb1":
            continue
        store = open_store(entry["path"])
        prefix = Path("results/raw/idm") / entry["game"] / Path(entry["path"]).stem
        effect, mismatches = replay_visibility(prefix, store.frames, store.height, store.width, store.fps,
                                               args.horizon, args.whole_press)
        mismatched, frames = mismatched + mismatches, frames + len(store)
        truth.append(to_multihot(np.asarray(store.actions[:])).astype(bool))
        predicted.append(to_multihot(predict_store(model, store.frames)[0]).astype(bool))
        for name in BUTTONS_SHOWN:
            visible[name].append(effect[name])
    truth, predicted = np.concatenate(truth), np.concatenate(predicted)
    released = "the whole press" if args.whole_press else "it for one store frame"
    print(f"{frames} store frames of {args.split} SMB recordings; the replay differs from the store on {mismatched}; "
          f"a press is visible when releasing {released} changes a pixel of the next {args.horizon} store frames "
          "by more than the threshold")
    print(f"{'button':7} {'held':>6} {'F1 all':>7} {'threshold':>9} {'visible':>8} {'F1 visible':>10} {'recall visible':>14}")
    for name in BUTTONS_SHOWN:
        b = BUTTONS.index(name)
        effect = np.concatenate(visible[name])
        overall = precision_recall_f1(truth[:, b], predicted[:, b])
        held = int(truth[:, b].sum())
        for threshold in args.threshold:
            seen = effect > threshold
            keep = ~truth[:, b] | seen  # drop the presses no frame shows
            ceiling = precision_recall_f1(truth[keep, b], predicted[keep, b])
            print(f"{name:7} {held:6d} {overall['f1']:7.3f} {threshold:9d} {seen.sum() / max(held, 1):8.3f} "
                  f"{ceiling['f1']:10.3f} {ceiling['recall']:14.3f}")


if __name__ == "__main__":
    main()
