"""Raw recording (PREFIX.mp4/.jsonl/.json) -> Zarr store at the configured resolution and fps.

The video is decoded as a stream and written chunk by chunk, so memory stays at a few
chunks of frames however long the episode. Time is resampled with `swag.actions`
(target frame k shows source frame spans[k, 0]; its action is `actions.resample`),
space with cv2.INTER_AREA. Numeric info fields become `info/<key>` arrays sampled at
each target frame's first source frame.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import swag
from swag import actions as nes_actions
from swag import recording
from swag.errors import SwagError
from swag.store import StoreWriter, remove_path, write_array_store

log = logging.getLogger(__name__)

SUFFIXES = (".json", ".jsonl", ".mp4")


def recording_prefix(path: str | os.PathLike) -> str:
    """Accept a recording as its prefix or as any of its three files."""
    text = os.fspath(path)
    for suffix in SUFFIXES:
        if text.endswith(suffix):
            return text[: -len(suffix)]
    return text


_KIND = {bool: 0, int: 1, float: 2}  # JSON number types, narrowest first
_DTYPES = (np.bool_, np.int64, np.float64)


def _scan_jsonl(path: Path) -> tuple[np.ndarray, dict[str, type]]:
    """First pass over the jsonl: actions uint8 (T,), and the info keys that are numeric on every line
    with the narrowest numpy type that holds them all (bool < int64 < float64)."""
    actions: list[int] = []
    kinds: dict[str, int] | None = None  # key -> index into _DTYPES
    for line in recording.iter_jsonl(path):
        actions.append(line["action"])
        info = line.get("info") or {}
        if kinds is None:
            kinds = {key: _KIND[type(value)] for key, value in info.items() if type(value) in _KIND}
        for key in list(kinds):
            value = info.get(key)
            kind = _KIND.get(type(value))
            if kind is None:
                del kinds[key]  # missing or not a number on this line
            elif kind == 1 and not -(2**63) <= value < 2**63:
                kinds[key] = 2  # an integer beyond int64 is kept as a float
            elif kind > kinds[key]:
                kinds[key] = kind
    dtypes = {key: _DTYPES[kind] for key, kind in sorted((kinds or {}).items())}
    return np.array(actions, dtype=np.uint8), dtypes


def convert_recording(
    prefix: str | os.PathLike,
    out: str | os.PathLike,
    *,
    height: int,
    width: int,
    fps: float,
    truth_path: str | os.PathLike | None = None,
    chunk_frames: int = 64,
    progress_bar: bool = True,
) -> dict[str, Any]:
    """Convert one recording into the store `out`; returns the store's `swag` attributes.

    With `truth_path`, the (resampled) actions go to a separate truth store there and
    `out` has no actions (`has_actions: false`).
    """
    from tqdm import tqdm

    prefix = recording_prefix(prefix)
    meta = recording.read_meta(prefix)
    video_path, jsonl_path, meta_path = recording.paths(prefix)
    if height < 1 or width < 1 or fps <= 0:
        raise SwagError(f"{out}: height, width and fps must be positive, got {height}x{width} @ {fps}")
    source_fps = float(meta["fps"])
    if fps > source_fps:
        raise SwagError(f"{meta_path}: cannot convert {source_fps:g} fps to a higher {fps:g} fps")

    digests = recording.check_hashes(prefix, meta)
    source_actions, info_dtypes = _scan_jsonl(jsonl_path)
    num_source = len(source_actions)
    if num_source != meta["frames"]:
        raise SwagError(f"{jsonl_path}: {num_source} frames, but {meta_path} says {meta['frames']}")
    spans = nes_actions.frame_spans(num_source, source_fps, fps)  # (T, 2) source [start, stop)
    target_actions = nes_actions.resample(source_actions, source_fps, fps)  # uint8 (T,)
    num_target = len(spans)
    if num_target == 0:
        raise SwagError(f"{video_path}: {num_source} frames make no whole frame at {fps:g} fps")

    # Which source frame each target frame shows; -1 where none does.
    shown_as = np.full(num_source, -1, dtype=np.int64)
    shown_as[spans[:, 0]] = np.arange(num_target)
    info_keys = tuple(info_dtypes)
    attrs = {
        "kind": "recording",
        "game": meta.get("game"),
        "level": meta.get("level"),
        "style": meta.get("style"),
        "episode": Path(prefix).name,
        "source_fps": source_fps,
        "provenance": {
            "source_files": {
                path.name: {"path": os.fspath(path), "sha256": digests.get(path.name) or recording.sha256_file(path)}
                for path in (video_path, jsonl_path, meta_path)
            },
            "rom_sha1": meta.get("rom_sha1"),
            "demonstrator": meta.get("demonstrator"),
            "seed": meta.get("seed"),
            "recorded_with_swag": meta.get("swag_version"),
            "swag_version": swag.__version__,
            "resolution": [int(height), int(width)],
            "fps": float(fps),
            "resize": "cv2.INTER_AREA",
        },
    }
    if truth_path is not None:
        attrs["truth"] = os.fspath(truth_path)

    wrote_truth = False
    try:
        with StoreWriter(out, height=height, width=width, fps=fps, attrs=attrs, chunk_frames=chunk_frames,
                         has_actions=truth_path is None, info_keys=info_keys) as writer:
            batch = np.empty((chunk_frames, height, width, 3), np.uint8)  # target frames waiting to be appended
            batch_info = {key: np.zeros(chunk_frames, dtype) for key, dtype in info_dtypes.items()}
            batch_len, next_target = 0, 0

            def flush() -> None:
                nonlocal batch_len
                if batch_len:
                    start = next_target - batch_len
                    writer.append(
                        batch[:batch_len],
                        target_actions[start:next_target] if truth_path is None else None,
                        {key: values[:batch_len] for key, values in batch_info.items()},
                    )
                    batch_len = 0

            decoder = recording.iter_decoded(video_path)
            lines = open(jsonl_path, encoding="utf-8")
            bar = tqdm(total=num_source, unit="frame", desc=f"convert {Path(prefix).name}", disable=not progress_bar)
            decoded = 0
            with bar, lines:
                for frame in decoder:
                    if decoded >= num_source:
                        raise SwagError(f"{video_path}: video has more frames than the {num_source} in {jsonl_path}")
                    text = next(lines)
                    if shown_as[decoded] >= 0:
                        image = frame.to_ndarray(format="rgb24")  # (240, 256, 3)
                        if decoded == 0 and image.shape[:2] != (meta["height"], meta["width"]):
                            raise SwagError(f"{video_path}: frames are {image.shape[1]}x{image.shape[0]}, "
                                            f"but {meta_path} says {meta['width']}x{meta['height']}")
                        if image.shape[:2] != (height, width):
                            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
                        batch[batch_len] = image
                        if info_keys:
                            info = json.loads(text).get("info") or {}
                            for key in info_keys:
                                batch_info[key][batch_len] = info[key]
                        batch_len += 1
                        next_target += 1
                        if batch_len == chunk_frames:
                            flush()
                    decoded += 1
                    bar.update()
            if decoded < num_source:
                raise SwagError(f"{video_path}: video has {decoded} frames, but {jsonl_path} has {num_source}")
            flush()
            assert next_target == num_target
            if truth_path is not None:
                truth_attrs = {"kind": "truth", "game": attrs["game"], "level": attrs["level"],
                               "style": attrs["style"], "episode": attrs["episode"], "fps": float(fps),
                               "source_fps": source_fps, "frames": num_target, "store": os.fspath(out),
                               "provenance": attrs["provenance"]}
                write_array_store(truth_path, {"actions": target_actions}, truth_attrs)
                wrote_truth = True
    except BaseException:
        if wrote_truth:
            remove_path(Path(truth_path))
        raise
    log.info("converted %s (%d frames at %g fps) to %s (%d frames at %g fps, %dx%d)",
             prefix, num_source, source_fps, out, num_target, fps, width, height)
    return {**attrs, "frames": num_target, "fps": float(fps), "height": height, "width": width,
            "has_actions": truth_path is None}


def find_recordings(folder: str | os.PathLike) -> list[str]:
    """Prefixes of the recordings (PREFIX.json beside PREFIX.mp4 and PREFIX.jsonl) in a folder, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SwagError(f"{folder}: not a folder")
    prefixes = [
        os.fspath(meta)[: -len(".json")]
        for meta in sorted(folder.glob("*.json"))
        if meta.with_suffix(".mp4").is_file() and meta.with_suffix(".jsonl").is_file()
    ]
    if not prefixes:
        raise SwagError(f"{folder}: no recordings (PREFIX.json with PREFIX.mp4 and PREFIX.jsonl) in this folder")
    return prefixes


def convert_folder(
    folder: str | os.PathLike,
    out_folder: str | os.PathLike,
    *,
    truth_folder: str | os.PathLike | None = None,
    **options: Any,
) -> list[Path]:
    """Convert every recording in `folder` to `out_folder/<name>.zarr` (truth stores likewise)."""
    stores = []
    for prefix in find_recordings(folder):
        name = Path(prefix).name + ".zarr"
        truth = Path(truth_folder) / name if truth_folder is not None else None
        convert_recording(prefix, Path(out_folder) / name, truth_path=truth, **options)
        stores.append(Path(out_folder) / name)
    return stores
