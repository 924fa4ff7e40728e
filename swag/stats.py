"""Data statistics for the report: frames per game and split, and how often each button is held."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from swag import actions
from swag.store import open_store, read_json


def dataset_statistics(index_path: str | Path) -> dict[str, Any]:
    """Frames per game/split/style, and per-game button press rates from actions or truth stores."""
    index = read_json(index_path, "dataset index")
    frames = defaultdict(lambda: defaultdict(int))  # game -> split -> frames
    styles = defaultdict(lambda: defaultdict(int))  # game -> style -> frames
    presses = defaultdict(lambda: np.zeros(actions.NUM_BUTTONS, dtype=np.int64))
    labelled = defaultdict(int)
    for entry in index["stores"]:
        game = entry["game"]
        frames[game][entry["split"]] += int(entry["frames"])
        styles[game][entry["style"]] += int(entry["frames"])
        source = open_store(entry["path"], need_frames=False)
        if not source.has_actions and entry.get("truth"):
            source = open_store(entry["truth"], need_frames=False)
        if source.has_actions:
            held = actions.to_multihot(np.asarray(source.actions))
            presses[game] += held.sum(axis=0)
            labelled[game] += len(held)
    return {
        "dataset": index.get("dataset"),
        "fps": index.get("fps"),
        "recordings": len(index["stores"]),
        "frames": {game: dict(by_split) for game, by_split in frames.items()},
        "frames_by_style": {game: dict(by_style) for game, by_style in styles.items()},
        "button_press_rate": {
            game: dict(zip(actions.BUTTONS, (presses[game] / max(labelled[game], 1)).round(4).tolist()))
            for game in labelled
        },
    }


def plot_statistics(stats: dict[str, Any], frames_png: Path, buttons_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    games = sorted(stats["frames"])
    splits = sorted({split for by_split in stats["frames"].values() for split in by_split})
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bottom = np.zeros(len(games))
    for split in splits:
        counts = np.array([stats["frames"][game].get(split, 0) for game in games], dtype=float)
        ax.bar(games, counts, bottom=bottom, label=split)
        bottom += counts
    ax.set_ylabel(f"frames at {stats['fps']} fps")
    ax.set_title(f"{stats['dataset']}: frames per game and split")
    ax.legend()
    fig.tight_layout()
    fig.savefig(frames_png, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    rates = stats["button_press_rate"]
    width = 0.8 / max(len(rates), 1)
    for i, game in enumerate(sorted(rates)):
        ax.bar(np.arange(actions.NUM_BUTTONS) + i * width, [rates[game][b] for b in actions.BUTTONS], width, label=game)
    ax.set_xticks(np.arange(actions.NUM_BUTTONS) + 0.4 - width / 2, actions.BUTTONS)
    ax.set_ylabel("fraction of frames held")
    ax.set_title(f"{stats['dataset']}: button press rates")
    if rates:
        ax.legend()
    fig.tight_layout()
    fig.savefig(buttons_png, dpi=100)
    plt.close(fig)


def write_statistics(index_path: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """stats.json, frames.png and buttons.png in out_dir, written to a temp dir and renamed."""
    from swag.store import atomic_store_path

    stats = dataset_statistics(index_path)
    with atomic_store_path(out_dir) as temp:
        temp.mkdir(parents=True)
        (temp / "stats.json").write_text(json.dumps(stats, indent=2))
        plot_statistics(stats, temp / "frames.png", temp / "buttons.png")
    return stats
