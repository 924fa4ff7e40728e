"""The dataset index: which stores make up a dataset, and which split each belongs to.

Splits are by recording, never by frame. A store's split depends only on its own
episode id (game/name) and the settings, through a stable hash, so adding or removing a
recording never moves another between train and test (except in the tiny-dataset
fix-up below, which guarantees a non-empty train and test split).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from swag import actions as nes_actions
from swag.errors import SwagError
from swag.store import atomic_store_path, open_store, read_store_attrs

SPLITS = ("train", "test", "unseen_style")


def episode_id(path: str | os.PathLike, game: str | None) -> str:
    """The id a store is split by: "game/name" (name without .zarr), independent of where it lives."""
    name = Path(path).name
    if name.endswith(".zarr"):
        name = name[: -len(".zarr")]
    return f"{game}/{name}"


def split_draw(episode: str) -> float:
    """A number in [0, 1) fixed by the episode id alone (sha1), the same on every machine."""
    return int(hashlib.sha1(episode.encode("utf-8")).hexdigest()[:15], 16) / 16**15


def build_index(
    dataset: str,
    store_paths: Iterable[str | os.PathLike],
    test_fraction: float,
    heldout_styles: Iterable[str] = (),
    train_only_styles: Iterable[str] = (),
) -> dict[str, Any]:
    """The index of a dataset (see docs/design.md): stores with their split, plus a summary."""
    store_paths = [os.fspath(path) for path in store_paths]
    if not store_paths:
        raise SwagError(f"dataset {dataset}: no stores given to index")
    if not 0 <= test_fraction < 1:
        raise SwagError(f"dataset {dataset}: test fraction must be in [0, 1), got {test_fraction}")
    duplicates = [path for path, count in Counter(store_paths).items() if count > 1]
    if duplicates:
        raise SwagError(f"{duplicates[0]}: store listed twice")
    heldout = set(heldout_styles)
    train_only = set(train_only_styles)
    if heldout & train_only:
        raise SwagError(f"dataset {dataset}: style {sorted(heldout & train_only)[0]!r} is both held out and train-only")

    entries, draws = [], []
    shape = None  # (fps, height, width) shared by all stores
    for path in sorted(store_paths):
        attrs = read_store_attrs(path)
        store_shape = (float(attrs["fps"]), int(attrs["height"]), int(attrs["width"]))
        if shape is None:
            shape, first = store_shape, path
        elif store_shape != shape:
            raise SwagError(f"{path}: {store_shape[2]}x{store_shape[1]} at {store_shape[0]:g} fps differs from "
                            f"{first} ({shape[2]}x{shape[1]} at {shape[0]:g} fps)")
        episode = episode_id(path, attrs.get("game"))
        entry = {
            "path": path,
            "episode": episode,
            "game": attrs.get("game"),
            "level": attrs.get("level"),
            "style": attrs.get("style"),
            "frames": int(attrs["frames"]),
            "has_actions": bool(attrs.get("has_actions", False)),
            "split": "unseen_style" if attrs.get("style") in heldout else "train",
        }
        if attrs.get("truth"):
            entry["truth"] = attrs["truth"]
        draw = split_draw(episode)
        if entry["split"] == "train" and draw < test_fraction and entry["style"] not in train_only:
            entry["split"] = "test"
        entries.append(entry)
        draws.append(draw)

    # Tiny datasets: the hash may put every recording on one side. Move the one nearest the
    # threshold so that training has data and, when there are two or more, so does testing.
    seen = [i for i, entry in enumerate(entries) if entry["split"] != "unseen_style"]
    if seen and not any(entries[i]["split"] == "train" for i in seen):
        entries[max(seen, key=lambda i: draws[i])]["split"] = "train"
    testable = [i for i in seen if entries[i]["style"] not in train_only]
    if len(seen) >= 2 and testable and test_fraction > 0 and not any(entries[i]["split"] == "test" for i in seen):
        entries[min(testable, key=lambda i: draws[i])]["split"] = "test"

    fps, height, width = shape
    return {
        "dataset": dataset,
        "fps": fps,
        "height": height,
        "width": width,
        "test_fraction": test_fraction,
        "heldout_styles": sorted(heldout),
        "train_only_styles": sorted(train_only),
        "stores": entries,
        "summary": summarize(entries),
    }


def summarize(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Frames per game, split and style; per-button press counts of the stores that have actions."""
    summary: dict[str, Any] = {"stores": len(entries), "frames": sum(entry["frames"] for entry in entries)}
    for field in ("game", "split", "style"):
        frames: Counter[str] = Counter()
        stores: Counter[str] = Counter()
        for entry in entries:
            frames[str(entry[field])] += entry["frames"]
            stores[str(entry[field])] += 1
        summary[f"frames_per_{field}"] = dict(sorted(frames.items()))
        summary[f"stores_per_{field}"] = dict(sorted(stores.items()))

    pressed = {split: np.zeros(nes_actions.NUM_BUTTONS, np.int64) for split in SPLITS}
    labelled = Counter()
    for entry in entries:
        if entry["has_actions"]:
            actions = open_store(entry["path"]).actions  # uint8 (T,)
            pressed[entry["split"]] += nes_actions.to_multihot(actions).sum(axis=0)
            labelled[entry["split"]] += len(actions)
    if labelled:
        total = sum(pressed.values())
        summary["labelled_frames"] = sum(labelled.values())
        summary["button_presses"] = dict(zip(nes_actions.BUTTONS, total.tolist()))
        summary["button_press_rate"] = {
            button: round(count / summary["labelled_frames"], 6) for button, count in summary["button_presses"].items()
        }
        summary["button_presses_per_split"] = {
            split: dict(zip(nes_actions.BUTTONS, pressed[split].tolist())) for split in SPLITS if labelled[split]
        }
    return summary


def write_index(index: dict[str, Any], out: str | os.PathLike) -> None:
    """Write the index as JSON, atomically."""
    with atomic_store_path(out) as temp:
        Path(temp).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
