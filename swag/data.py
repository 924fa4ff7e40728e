"""Windowed torch datasets over swag stores, the fit/val split, class weights and augmentation.

A sample is one window of `sequence_length` consecutive frames from one store:
    frames  uint8 (T, H, W, 3)
    actions int64 (T,)      pad bytes (from the store, or from a labels store)
    weights float32 (T,)    0 for padding past a short store's end; the label confidence
                            when `use_confidence` (IDM labels), else 1
Windows start every `stride` frames; the last window is moved back to end on the last frame so
every frame is covered. Frames are read lazily, chunk by chunk, from the zarr arrays; small
datasets (under `cache_bytes`) are kept in memory after the first read.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from swag.actions import NUM_BUTTONS, to_multihot
from swag.errors import SwagError
from swag.store import open_store, read_json


# --- the dataset index ---------------------------------------------------------------------------


def read_index(path) -> dict:
    """The dataset index (docs/design.md), with relative store paths resolved against its folder."""
    path = Path(path)
    index = read_json(path, "dataset index")
    if not isinstance(index, dict) or not isinstance(index.get("stores"), list):
        raise SwagError(f"{path}: dataset index has no 'stores' list")
    for entry in index["stores"]:
        if "path" not in entry or "split" not in entry:
            raise SwagError(f"{path}: every store entry needs 'path' and 'split', got {entry}")
        store_path = Path(entry["path"])
        if not store_path.is_absolute() and not store_path.exists():
            # relative paths are relative to the working directory (Snakemake) or, failing that, the index
            candidate = path.parent / store_path
            if candidate.exists():
                entry["path"] = str(candidate)
    return index


def index_stores(index: dict, split: str) -> list[dict]:
    return [entry for entry in index["stores"] if entry["split"] == split]


def _stable_fraction(key: str) -> float:
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "little") / 2**64


def split_fit_val(entries: list[dict], val_fraction: float) -> tuple[list[dict], list[dict]]:
    """Split training recordings (never frames) into fit and validation by a stable hash of the
    store's file name; at least one of each when there are two or more recordings."""
    ranked = sorted(entries, key=lambda e: _stable_fraction(Path(e["path"]).name))
    fit = [e for e in entries if _stable_fraction(Path(e["path"]).name) >= val_fraction]
    val = [e for e in entries if _stable_fraction(Path(e["path"]).name) < val_fraction]
    if val_fraction > 0 and not val and len(entries) >= 2:
        val = [ranked[0]]
        fit = [e for e in entries if e is not ranked[0]]
    if not fit and len(entries) >= 2:
        fit = [ranked[-1]]
        val = [e for e in entries if e is not ranked[-1]]
    return fit, val


# --- labels --------------------------------------------------------------------------------------


def load_labels(store, labels_path=None) -> tuple[np.ndarray, np.ndarray | None]:
    """Actions uint8 (T,) and confidence float32 (T,) or None, from the store or a labels store."""
    if labels_path is None:
        if store.actions is None:
            raise SwagError(f"{store.path}: store has no actions and no labels store was given")
        return store.actions, None
    labels = open_store(labels_path, need_frames=False)
    if labels.actions is None:
        raise SwagError(f"{labels_path}: labels store has no actions")
    if len(labels.actions) != len(store):
        raise SwagError(f"{labels_path}: labels store has {len(labels.actions)} frames, "
                        f"its video {store.path} has {len(store)}")
    confidence = labels.group["confidence"][:].astype(np.float32) if "confidence" in labels.group else None
    return labels.actions, confidence


def check_resolution(store, width: int, height: int) -> None:
    if (store.width, store.height) != (width, height):
        raise SwagError(f"{store.path}: frames are {store.width}x{store.height}, "
                        f"the model expects {width}x{height}")


# --- the dataset ---------------------------------------------------------------------------------


def window_starts(num_frames: int, length: int, stride: int) -> list[int]:
    """Start frames of the windows over one store: every `stride`, plus one ending on the last frame."""
    if num_frames <= length:
        return [0]
    starts = list(range(0, num_frames - length + 1, stride))
    if starts[-1] != num_frames - length:
        starts.append(num_frames - length)
    return starts


@dataclass
class _Source:
    path: str
    frames: int
    actions: np.ndarray
    confidence: np.ndarray | None


class WindowDataset(torch.utils.data.Dataset):
    """Windows of `sequence_length` frames over a list of stores; see the module docstring."""

    def __init__(self, store_paths, sequence_length: int, stride: int, width: int, height: int,
                 labels_paths=None, use_confidence: bool = False, cache_bytes: int = 2 << 30):
        self.sequence_length = sequence_length
        self.sources: list[_Source] = []
        self.windows: list[tuple[int, int]] = []  # (source index, start frame)
        labels_paths = list(labels_paths) if labels_paths is not None else [None] * len(store_paths)
        total_bytes = 0
        for i, (path, labels_path) in enumerate(zip(store_paths, labels_paths)):
            store = open_store(path)
            check_resolution(store, width, height)
            actions, confidence = load_labels(store, labels_path)
            self.sources.append(_Source(str(path), len(store), np.asarray(actions, np.uint8),
                                        confidence if use_confidence else None))
            self.windows += [(i, start) for start in window_starts(len(store), sequence_length, stride)]
            total_bytes += len(store) * height * width * 3
        self.cache = total_bytes <= cache_bytes
        self._frames: dict[int, object] = {}  # per process: opened zarr arrays or cached arrays
        self._pid = None

    def __len__(self) -> int:
        return len(self.windows)

    def all_actions(self) -> np.ndarray:
        return np.concatenate([s.actions for s in self.sources]) if self.sources else np.zeros(0, np.uint8)

    def _frames_of(self, i: int):
        if self._pid != os.getpid():  # zarr handles are not shared across DataLoader workers
            self._frames, self._pid = {}, os.getpid()
        if i not in self._frames:
            array = open_store(self.sources[i].path).frames
            self._frames[i] = array[:] if self.cache else array
        return self._frames[i]

    def __getitem__(self, item):
        i, start = self.windows[item]
        source = self.sources[i]
        stop = min(start + self.sequence_length, source.frames)
        frames = np.asarray(self._frames_of(i)[start:stop])
        actions = source.actions[start:stop].astype(np.int64)
        # the byte held before each frame (nothing before a recording's first frame): a policy with
        # `previous_buttons` reads it; it costs nothing to carry for the others
        previous = source.actions[max(start - 1, 0):stop - 1].astype(np.int64)
        if start == 0:
            previous = np.concatenate([[0], previous])
        weights = np.ones(stop - start, np.float32) if source.confidence is None else source.confidence[start:stop]
        missing = self.sequence_length - (stop - start)
        if missing > 0:  # a store shorter than a window: repeat the last frame, weight 0
            frames = np.concatenate([frames, np.repeat(frames[-1:], missing, axis=0)])
            actions = np.concatenate([actions, np.zeros(missing, np.int64)])
            previous = np.concatenate([previous, np.zeros(missing, np.int64)])
            weights = np.concatenate([weights, np.zeros(missing, np.float32)])
        return (torch.from_numpy(np.ascontiguousarray(frames)), torch.from_numpy(actions),
                torch.from_numpy(np.asarray(weights, np.float32)), torch.from_numpy(previous))


# --- class weights -------------------------------------------------------------------------------


def class_weights(actions: np.ndarray, head: str, min_class_weight: float) -> torch.Tensor:
    """Loss weights that balance rare and common classes, clipped to [m, 1/m] with m = min_class_weight.

    head "buttons": a (2, 8) tensor of (not pressed, pressed) weights per button. With p the
    button's press frequency over the fit set (add-one smoothed), pressed frames weigh 1/(2p) and
    unpressed frames 1/(2(1-p)), so both classes of every button carry equal total weight; then
    each weight is clipped to [m, 1/m]. m = 1 turns weighting off; m = 0.1 allows up to 10x.
    head "joint": a (256,) tensor, weight of byte c = (1/K)/frequency(c) over the K bytes that
    occur, clipped the same way; bytes that never occur keep weight 1.
    """
    actions = np.asarray(actions, np.uint8)
    low = float(min_class_weight)
    high = 1.0 / low if low > 0 else float("inf")
    if head == "buttons":
        pressed = to_multihot(actions).sum(0) if len(actions) else np.zeros(NUM_BUTTONS)
        p = (pressed + 1.0) / (len(actions) + 2.0)
        weights = np.stack([1.0 / (2.0 * (1.0 - p)), 1.0 / (2.0 * p)])
        return torch.tensor(np.clip(weights, low, high), dtype=torch.float32)
    counts = np.bincount(actions, minlength=256).astype(np.float64)
    weights = np.ones(256)
    seen = counts > 0
    if seen.any():
        frequency = counts[seen] / counts.sum()
        weights[seen] = np.clip((1.0 / seen.sum()) / frequency, low, high)
    return torch.tensor(weights, dtype=torch.float32)


# --- augmentation --------------------------------------------------------------------------------


def random_shift(frames: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each window by a random whole number of pixels, up to `max_shift` each way, the same
    for all its frames (DrQ's pad-and-crop): the motion between frames is kept and the screen's
    absolute position is jittered. Edges repeat the border pixels. On SMB it made both policies
    play worse (docs/experiments.md, "Random shifts"), so it is off unless a config asks.

    frames: uint8 (B, T, H, W, 3) on any device -> uint8, same shape.
    """
    import torch.nn.functional as F

    B, T, H, W, C = frames.shape
    x = frames.permute(0, 1, 4, 2, 3).reshape(B, T * C, H, W).float()  # (B, T*3, H, W)
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")  # (B, T*3, H + 2s, W + 2s)
    offsets = torch.randint(0, 2 * max_shift + 1, (B, 2), generator=generator).tolist()
    x = torch.stack([padded[b, :, dy:dy + H, dx:dx + W] for b, (dy, dx) in enumerate(offsets)])
    return x.view(B, T, C, H, W).permute(0, 1, 3, 4, 2).to(torch.uint8).contiguous()


def augment(frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Make clean emulator windows look like web video: per window (the same for all its frames)
    a random zoom-and-shift crop resized back, colour jitter (brightness, contrast, saturation),
    then a blur or a down-and-up resampling (the softness of compressed video), plus mild noise.

    frames: uint8 (B, T, H, W, 3) on any device -> uint8, same shape.
    """
    import torch.nn.functional as F

    B, T, H, W, _ = frames.shape
    device = frames.device
    rand = lambda *shape: torch.rand(*shape, generator=generator).to(device)  # noqa: E731
    x = frames.permute(0, 1, 4, 2, 3).float().div(255.0)  # (B, T, 3, H, W)
    # zoom 1.0-1.15x with a random shift, as an affine grid (one per window)
    scale = 1.0 - 0.13 * rand(B)
    shift = (rand(B, 2) * 2 - 1) * (1 - scale).unsqueeze(1)
    theta = torch.zeros(B, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 1, 1] = scale, scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, (B, 3, H, W), align_corners=False)  # (B, H, W, 2)
    grid = grid.repeat_interleave(T, dim=0)  # (B*T, H, W, 2)
    x = F.grid_sample(x.reshape(B * T, 3, H, W), grid, mode="bilinear", padding_mode="border",
                      align_corners=False).view(B, T, 3, H, W)
    # colour jitter
    brightness = (0.8 + 0.4 * rand(B)).view(B, 1, 1, 1, 1)
    contrast = (0.8 + 0.4 * rand(B)).view(B, 1, 1, 1, 1)
    saturation = (0.7 + 0.6 * rand(B)).view(B, 1, 1, 1, 1)
    gray = (0.299 * x[:, :, 0:1] + 0.587 * x[:, :, 1:2] + 0.114 * x[:, :, 2:3])
    x = gray + (x - gray) * saturation
    mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
    x = (x - mean) * contrast + mean
    x = x * brightness
    # softness: half the windows get a 3x3 blur, the other half a 2x down-and-up resampling
    flat = x.reshape(B * T, 3, H, W)
    blurred = F.avg_pool2d(F.pad(flat, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    resampled = F.interpolate(F.interpolate(flat, scale_factor=0.5, mode="bilinear", align_corners=False),
                              size=(H, W), mode="bilinear", align_corners=False)
    choose_blur = (rand(B) < 0.5).repeat_interleave(T).view(B * T, 1, 1, 1)
    flat = torch.where(choose_blur, blurred, resampled)
    flat = flat + 0.02 * torch.randn(flat.shape, generator=generator).to(device)
    x = flat.view(B, T, 3, H, W)
    return x.clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(0, 1, 3, 4, 2).contiguous()
