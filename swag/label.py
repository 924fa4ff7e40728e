"""Label unlabelled video with the IDM.

Windows of `sequence_length` frames overlap by twice the labelling `context` (plus one window
ending on the last frame), and each keeps only its centre, as VPT did: every frame is predicted
with at least `context` frames of past and future in its window, except near the video's ends,
which use the first and last windows' edges. The default context is 3/16 of the window (3 frames
of the demo's 16), so a frame costs 1.6 window-frames of compute. Measured with the demo IDM
on 17,696 held-out and unlabelled SMB frames (`python benchmarks/label_context.py RUN_DIR`):
exact match 0.793 at context 4 (2 window-frames per frame), 0.795 at 3 (1.6), 0.787 at 2
(1.33), 0.781 at 0 (1.0, no overlap).

The labels store (docs/design.md) holds `actions` uint8 (T,), `probs` float16 (T, 8) and
`confidence` float32 (T,). It is built in `PATH.partial`, whose `swag.progress_batches` attribute
counts the batches of windows already written; an interrupted job (SIGTERM, a crash) rerun with
the same arguments resumes after the last finished batch, and since batches are always formed the
same way the labels are identical to an uninterrupted run. On success `PATH.partial` is renamed
to PATH.
"""

from __future__ import annotations

import logging
import shutil
import signal
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import zarr

from swag.data import check_resolution
from swag.model import NUM_BUTTONS, VPTModel, autocast
from swag.store import ATTRS_KEY, FORMAT_VERSION, default_compressor, file_sha256, open_store, replace_path
from swag.errors import EXIT_INTERRUPTED, SwagError, TrainingInterrupted
from swag.train import load_model

log = logging.getLogger(__name__)

LABEL_CHUNK = 4096  # frames per zarr chunk of the labels arrays


def default_context(length: int) -> int:
    """Frames of past and future each window keeps around the centre it labels (module docstring)."""
    return 3 * length // 16


def windows(num_frames: int, length: int, context: int | None = None) -> list[tuple[int, int, int, int]]:
    """(start, stop, keep_start, keep_stop) per window: the window covers [start, stop) and
    owns the frames [keep_start, keep_stop); the owned ranges tile [0, num_frames). Each window
    keeps its centre, `context` frames in from either edge (default `default_context(length)`)."""
    if num_frames <= length:
        return [(0, num_frames, 0, num_frames)]
    context = default_context(length) if context is None else context
    if not 0 <= 2 * context < length:
        raise SwagError(f"labelling context {context} leaves no centre in a window of {length} frames")
    stride = length - 2 * context
    starts = list(range(0, num_frames - length + 1, stride))
    if starts[-1] != num_frames - length:
        starts.append(num_frames - length)
    # boundary between consecutive windows: halfway between their centres
    bounds = [0] + [(a + b + length) // 2 for a, b in zip(starts[:-1], starts[1:])] + [num_frames]
    return [(s, s + length, bounds[i], bounds[i + 1]) for i, s in enumerate(starts)]


@torch.inference_mode()
def predict_batches(model: VPTModel, frames, batch_size: int = 16, device="cpu", first_batch: int = 0,
                    context: int | None = None):
    """Yield (batch index, keep_start, keep_stop, actions uint8, probs float32 (n, 8), confidence
    float32) for consecutive batches of windows over `frames` (uint8 (T, H, W, 3), lazy is fine)."""
    device = torch.device(device)
    spans = windows(int(frames.shape[0]), model.config.sequence_length, context)
    batches = [spans[i:i + batch_size] for i in range(0, len(spans), batch_size)]
    for b in range(first_batch, len(batches)):
        batch = batches[b]
        lo, hi = batch[0][0], batch[-1][1]
        block = np.asarray(frames[lo:hi])  # one read covers all the batch's windows
        x = torch.from_numpy(np.stack([block[s - lo:e - lo] for s, e, _, _ in batch])).to(device)  # (B, T, H, W, 3)
        with autocast(device):
            logits, _ = model(x)
        probs = model.button_probs(logits).cpu().numpy()  # (B, T, 8)
        actions, confidence = (t.cpu().numpy() for t in model.predict(logits))
        keep = [slice(ks - s, ke - s) for s, _, ks, ke in batch]
        yield (b, batch[0][2], batch[-1][3],
               np.concatenate([actions[i, k] for i, k in enumerate(keep)]).astype(np.uint8),
               np.concatenate([probs[i, k] for i, k in enumerate(keep)]).astype(np.float32),
               np.concatenate([confidence[i, k] for i, k in enumerate(keep)]).astype(np.float32))


def predict_store(model: VPTModel, frames, batch_size: int = 16, device="cpu", context: int | None = None):
    """Whole-video predictions in memory: actions uint8 (T,), probs float32 (T, 8), confidence (T,)."""
    T = int(frames.shape[0])
    actions, probs, confidence = np.zeros(T, np.uint8), np.zeros((T, NUM_BUTTONS), np.float32), np.zeros(T, np.float32)
    for _, ks, ke, a, p, c in predict_batches(model, frames, batch_size, device, context=context):
        actions[ks:ke], probs[ks:ke], confidence[ks:ke] = a, p, c
    return actions, probs, confidence


def label_store(video_path, model_path, out_path, batch_size: int = 16, device: str | None = None,
                on_batch: Callable[[int, int], None] | None = None, context: int | None = None) -> Path:
    """Label one video store with the IDM at `model_path`, writing the labels store `out_path`.

    `on_batch(done, total)` is called after every finished batch (a progress bar). SIGTERM
    finishes the current batch and raises TrainingInterrupted (the CLI exits 143); rerunning resumes.
    """
    video_path, model_path, out_path = Path(video_path), Path(model_path), Path(out_path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(model_path, device)
    video = open_store(video_path)
    check_resolution(video, model.config.dimensions.x, model.config.dimensions.y)
    T = len(video)
    context = default_context(model.config.sequence_length) if context is None else context
    spans = windows(T, model.config.sequence_length, context)
    total_batches = (len(spans) + batch_size - 1) // batch_size
    attrs = {"kind": "labels", "video": str(video_path), "idm": str(model_path), "idm_sha256": file_sha256(model_path),
             "fps": video.fps, "height": video.height, "width": video.width, "frames": T, "has_actions": True,
             "game": video.attrs.get("game"), "level": video.attrs.get("level"), "context": context,
             "batch_size": batch_size,
             "format_version": FORMAT_VERSION}

    partial = out_path.with_name(out_path.name + ".partial")
    group, done = _open_partial(partial, attrs, T)
    if done:
        log.info("%s: resuming after %d of %d batches", partial, done, total_batches)

    interrupted = {"flag": False}
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: interrupted.__setitem__("flag", True))
    try:
        for b, ks, ke, actions, probs, confidence in predict_batches(model, video.frames, batch_size, device, done,
                                                                     context):
            group["actions"][ks:ke] = actions
            group["probs"][ks:ke] = probs.astype(np.float16)
            group["confidence"][ks:ke] = confidence
            # the marker moves only after the batch's labels are written: a crash in between redoes the batch
            group.attrs[ATTRS_KEY] = {**attrs, "progress_batches": b + 1}
            if on_batch is not None:
                on_batch(b + 1, total_batches)
            if interrupted["flag"] and b + 1 < total_batches:
                raise TrainingInterrupted(f"{out_path}: interrupted after batch {b + 1} of {total_batches}")
    finally:
        signal.signal(signal.SIGTERM, previous)
    attrs.pop("batch_size")
    group.attrs[ATTRS_KEY] = attrs
    replace_path(partial, out_path)
    return out_path


def _open_partial(partial: Path, attrs: dict, T: int) -> tuple[zarr.Group, int]:
    """The partial labels store and how many batches it holds; a fresh one when it is missing or
    was started for another video, model, or batch size."""
    if partial.exists():
        try:
            group = zarr.open_group(partial, mode="r+", zarr_format=3)
            previous = dict(group.attrs.get(ATTRS_KEY, {}))
            done = int(previous.pop("progress_batches", -1))
            if previous == attrs and done >= 0 and {"actions", "probs", "confidence"} <= set(group.array_keys()):
                return group, done
        except Exception:  # unreadable leftovers are simply started over
            pass
        log.info("%s: partial labels from another run; starting over", partial)
        shutil.rmtree(partial, ignore_errors=True)
    group = zarr.open_group(partial, mode="w", zarr_format=3)
    chunk = (max(1, min(T, LABEL_CHUNK)),)
    group.create_array("actions", shape=(T,), chunks=chunk, dtype="uint8", compressors=default_compressor())
    group.create_array("probs", shape=(T, NUM_BUTTONS), chunks=(*chunk, NUM_BUTTONS), dtype="float16",
                       compressors=default_compressor())
    group.create_array("confidence", shape=(T,), chunks=chunk, dtype="float32", compressors=default_compressor())
    group.attrs[ATTRS_KEY] = {**attrs, "progress_batches": 0}
    return group, 0


__all__ = ["windows", "default_context", "predict_batches", "predict_store", "label_store", "EXIT_INTERRUPTED"]
