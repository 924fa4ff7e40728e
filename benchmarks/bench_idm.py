"""IDM benchmarks: labelling speed, training speed, and the demo-scale accuracy experiment.

    python benchmarks/bench_idm.py            # speed rows (labelling x real time, training frames/s)
    python benchmarks/bench_idm.py demo DIR   # demo experiment: scripted SMB 1-1 data -> train -> evaluate
    python benchmarks/bench_idm.py heads DIR  # action factoring: "buttons" vs "joint" on the same data

The demo data comes from a small scripted player with a few play styles (below), so the
experiment does not depend on the demonstrators; on real pipeline data use `swag train-idm`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

# --- scripted SMB player ------------------------------------------------------------------------

# Per-style probabilities of a segment's intent; a segment lasts `segment` frames (60 fps).
STYLES = {
    "runner": dict(right=0.9, left=0.03, run=0.85, jump_rate=0.04, hold=(4, 30), segment=(20, 90), idle=0.02),
    "walker": dict(right=0.75, left=0.10, run=0.15, jump_rate=0.02, hold=(6, 25), segment=(15, 60), idle=0.10),
    "hopper": dict(right=0.75, left=0.08, run=0.5, jump_rate=0.10, hold=(2, 12), segment=(10, 40), idle=0.05),
    # held out: jittery, mashes buttons, backtracks, ducks
    "erratic": dict(right=0.55, left=0.25, run=0.5, jump_rate=0.07, hold=(2, 35), segment=(4, 20), idle=0.1,
                    down=0.08),
}


def play_smb(style: str, seed: int, max_frames: int = 1800):
    """One episode of SMB 1-1 by a scripted player; returns frames (T, 240, 256, 3), actions (T,) and
    info {"x_pos", "y_pos"} (T,) at 60 fps.

    Frame i is shown before action i (docs/design.md).
    """
    from swag import games
    from swag.actions import BIT

    params = STYLES[style]
    rng = np.random.default_rng(seed)
    env = games.make("smb1", "1-1")
    frame, info = env.reset(seed=seed)
    frames, actions, x_pos, y_pos = [], [], [], []
    segment_left, intent = 0, 0
    jump_left, cooldown, last_x, stuck = 0, 0, int(info["x_pos"]), 0
    for _ in range(max_frames):
        if segment_left == 0:
            segment_left = int(rng.integers(*params["segment"]))
            u = rng.random()
            intent = 0
            if u < params["right"]:
                intent |= BIT["right"]
            elif u < params["right"] + params["left"]:
                intent |= BIT["left"]
            elif rng.random() < params.get("down", 0.0):
                intent |= BIT["down"]
            if rng.random() < params["run"]:
                intent |= BIT["B"]
            if rng.random() < params["idle"]:
                intent = 0
        segment_left -= 1
        x = int(info["x_pos"])
        stuck = stuck + 1 if x <= last_x else 0
        last_x = x
        if jump_left == 0 and cooldown == 0 and (rng.random() < params["jump_rate"] or stuck > 15):
            jump_left = int(rng.integers(*params["hold"])) if stuck <= 15 else 30
            stuck = 0
        action = intent
        if jump_left > 0:
            action |= BIT["A"]
            jump_left -= 1
            if jump_left == 0:
                cooldown = int(rng.integers(2, 10))  # A must be released before the next jump
        elif cooldown > 0:
            cooldown -= 1
        frames.append(frame)
        actions.append(action)
        x_pos.append(int(info["x_pos"]))
        y_pos.append(int(info["y_pos"]))
        frame, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    env.close()
    return np.stack(frames), np.asarray(actions, np.uint8), {"x_pos": np.asarray(x_pos), "y_pos": np.asarray(y_pos)}


def write_demo_store(path, style: str, seed: int, fps: float = 20, width: int = 64, height: int = 60,
                     max_frames: int = 1800) -> int:
    """Play one episode and write it as a swag store at `fps` and `width`x`height`; returns its length."""
    import cv2

    from swag import actions as pad
    from swag.store import StoreWriter

    frames60, actions60, info60 = play_smb(style, seed, max_frames)
    spans = pad.frame_spans(len(actions60), 60, fps)
    actions = pad.resample(actions60, 60, fps)
    frames = np.stack([cv2.resize(frames60[s], (width, height), interpolation=cv2.INTER_AREA) for s in spans[:, 0]])
    attrs = {"kind": "recording", "game": "smb1", "level": "1-1", "style": style, "source_fps": 60,
             "provenance": {"demonstrator": "bench_idm scripted", "seed": seed}}
    info = {key: values[spans[:, 0]] for key, values in info60.items()}
    with StoreWriter(path, height=height, width=width, fps=fps, attrs=attrs, info_keys=tuple(info)) as writer:
        writer.append(frames, actions, info)
    return len(frames)


def write_demo_dataset(root, episodes_per_style: int = 8, heldout=("erratic",), test_every: int = 5,
                       fps: float = 20, width: int = 64, height: int = 60) -> Path:
    """Stores for every style plus an index: every `test_every`-th episode of a training style is
    `test`, held-out styles are `unseen_style`, the rest `train`."""
    root = Path(root)
    entries = []
    for style in STYLES:
        for episode in range(episodes_per_style):
            seed = 1000 * list(STYLES).index(style) + episode
            path = root / "smb1" / f"1-1_{style}_{episode:03d}.zarr"
            if not path.exists():
                write_demo_store(path, style, seed, fps, width, height)
            from swag.store import open_store

            frames = len(open_store(path))
            split = "unseen_style" if style in heldout else ("test" if episode % test_every == test_every - 1 else "train")
            entries.append({"path": str(path.resolve()), "game": "smb1", "level": "1-1", "style": style,
                            "frames": frames, "split": split})
    index = {"dataset": "bench_idm", "fps": fps, "height": height, "width": width, "stores": entries}
    index_path = root / "index.json"
    index_path.write_text(json.dumps(index, indent=1))
    return index_path


# --- demo-scale experiment ------------------------------------------------------------------------

DEMO_MODEL = dict(embedding_dim=64, ff_dim=256, transformer_heads=4, transformer_blocks=2,
                  dimensions={"x": 64, "y": 60}, feature_channels=[8, 16, 32], spatial_channels=8,
                  sequence_length=16)
DEMO_TRAINING = dict(batch_size=16, learning_rate=1e-3, weight_decay=0.01, patience=5, stride=4,
                     test_train_split=0.15, min_class_weight=0.2, epochs=30, max_steps=500, eval_every=100,
                     checkpoint_every=100)


def demo(index_path, out_dir, head: str = "buttons", **training_overrides) -> dict:
    """Train the demo IDM on the index's train split and evaluate on test and unseen_style."""
    import torch

    from swag.evaluate import evaluate_idm
    from swag.model import ModelConfig
    from swag.train import TrainingConfig, train_idm

    torch.set_num_threads(1)
    out_dir = Path(out_dir)
    model_config = ModelConfig(**DEMO_MODEL, head=head)
    training = TrainingConfig(**{**DEMO_TRAINING, **training_overrides})
    started = time.time()
    summary = train_idm(index_path, model_config, training, out_dir, progress=False)
    train_seconds = time.time() - started
    results = evaluate_idm(out_dir / "model.pt", index_path, out_dir / "eval", progress=False)
    results["train_seconds"] = train_seconds
    results["train_steps"] = summary["steps"]
    (out_dir / "demo.json").write_text(json.dumps(results, indent=1))
    return results


def summarise(results: dict) -> str:
    lines = []
    for split, r in results["splits"].items():
        f1 = " ".join(f"{b}={r['buttons'][b]['f1']:.3f}" for b in ("right", "left", "A", "B"))
        onset = " ".join(f"{b}={r['buttons'][b]['onset_f1']:.3f}" for b in ("right", "left", "A", "B"))
        vis = r.get("visibility", {})
        lines.append(f"{split}: frames={r['frames']} exact={r['exact_match']:.3f} F1 {f1} | onset F1 {onset}"
                     + (f" | A visible {vis['a_visible_fraction']:.3f}, A F1 visible-only "
                        f"{vis['a_f1_visible_only']:.3f}" if vis else ""))
    return "\n".join(lines)


@contextlib.contextmanager
def precision(value: str):
    """Every swag.model.autocast() inside runs at `value`."""
    previous = os.environ.get("SWAG_PRECISION")
    os.environ["SWAG_PRECISION"] = value
    try:
        yield
    finally:
        if previous is None:
            del os.environ["SWAG_PRECISION"]
        else:
            os.environ["SWAG_PRECISION"] = previous


def run() -> list[dict]:
    """Speed rows at demo size on CPU, one thread, measured side by side in this run, in fp32
    (SWAG_PRECISION is read at every autocast()); the last two rows put bf16 against it."""
    with precision("fp32"):
        return measure()


def measure() -> list[dict]:
    import torch

    from swag.label import predict_store
    from swag.model import ModelConfig, VPTModel, autocast, uses_bf16

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = ModelConfig(**DEMO_MODEL)
    model = VPTModel(config).eval()
    H, W, L = config.dimensions.y, config.dimensions.x, config.sequence_length
    frames = np.random.default_rng(0).integers(0, 256, (40 * L, H, W, 3)).astype(np.uint8)
    predict_store(model, frames[: 4 * L])  # warm-up

    def timed(fn, repeats=3):
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - started)
        return best

    label_seconds = timed(lambda: predict_store(model, frames, batch_size=16))
    label_fps = len(frames) / label_seconds
    # the old default: a quarter window of context, 2 window-frames per labelled frame
    quarter_fps = len(frames) / timed(lambda: predict_store(model, frames, batch_size=16, context=L // 4))
    torch.set_num_threads(2)  # what one `label` job gets: the rule asks for 2 threads
    label_fps_2 = len(frames) / timed(lambda: predict_store(model, frames, batch_size=16))
    torch.set_num_threads(1)
    # the same frames in non-overlapping windows: what keeping only window centres costs
    batch = torch.from_numpy(frames).view(-1, L, H, W, 3)

    def no_overlap():
        with torch.inference_mode():
            for i in range(0, len(batch), 16):
                model(batch[i:i + 16])

    plain_fps = len(frames) / timed(no_overlap)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    train_batch = batch[:16]
    targets = torch.randint(0, 256, (16, L))

    def train_step():
        with autocast("cpu"):  # as swag.train does
            _, loss = model(train_batch, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    train_step()
    train_fps = train_batch.shape[0] * L / timed(train_step)

    # bf16 (the default, `auto`, where the CPU has AVX512-BF16) against fp32, side by side.
    with precision("bf16"):
        train_step()
        train_fps_bf16 = train_batch.shape[0] * L / timed(train_step)
        model.eval()
        label_fps_bf16 = len(frames) / timed(lambda: predict_store(model, frames, batch_size=16))
        native = "bf16 native on this CPU" if uses_bf16("cpu") else "no native bf16 on this CPU: fp32, ratio ~1"
    return [
        {"benchmark": "idm_label_speed_vs_realtime_60fps", "measured": label_fps, "reference": 60.0,
         "ratio": label_fps / 60.0, "unit": "frames/s", "goal": ">= 10x real time (60 fps), CPU 1 thread, 64x60"},
        {"benchmark": "idm_label_speed_2_threads_vs_realtime_60fps", "measured": label_fps_2, "reference": 60.0,
         "ratio": label_fps_2 / 60.0, "unit": "frames/s", "goal": ">= 10x real time (60 fps), CPU 2 threads (one label job)"},
        {"benchmark": "idm_label_speed_vs_realtime_data_fps", "measured": label_fps, "reference": 20.0,
         "ratio": label_fps / 20.0, "unit": "frames/s", "goal": "seconds of 20 fps video labelled per second"},
        {"benchmark": "idm_label_centre_windows_vs_no_overlap", "measured": label_fps, "reference": plain_fps,
         "ratio": label_fps / plain_fps, "unit": "frames/s",
         "goal": "~0.62: at the default context (3/16) each frame costs 1.6 window-frames"},
        {"benchmark": "idm_label_context_3_16_vs_quarter", "measured": label_fps, "reference": quarter_fps,
         "ratio": label_fps / quarter_fps, "unit": "frames/s", "goal": "~1.25: 1.6 vs 2 window-frames per frame"},
        {"benchmark": "idm_train_speed_vs_labelling", "measured": train_fps, "reference": label_fps,
         "ratio": train_fps / label_fps, "unit": "frames/s", "goal": "training frames/s (forward+backward+AdamW)"},
        {"benchmark": "idm_train_speed_bf16_vs_fp32", "measured": train_fps_bf16, "reference": train_fps,
         "ratio": train_fps_bf16 / train_fps, "unit": "frames/s", "goal": f"speed-up of the default ({native})"},
        {"benchmark": "idm_label_speed_bf16_vs_fp32", "measured": label_fps_bf16, "reference": label_fps,
         "ratio": label_fps_bf16 / label_fps, "unit": "frames/s", "goal": f"speed-up of the default ({native})"},
    ]


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if len(sys.argv) > 1 and sys.argv[1] == "data":
        print(write_demo_dataset(sys.argv[2], episodes_per_style=int(sys.argv[3]) if len(sys.argv) > 3 else 30))
    elif len(sys.argv) > 1 and sys.argv[1] == "demo":
        head = sys.argv[4] if len(sys.argv) > 4 else "buttons"
        print(summarise(demo(sys.argv[2], sys.argv[3], head)))
    else:
        for row in run():
            print(row)
