"""Offline IDM metrics on held-out stores: what `swag evaluate-idm` writes for the report.

Per split (index splits `test`, `unseen_style`, …) it labels every store exactly as `swag label`
does (centre-of-window predictions) and compares with the true actions:

- `exact_match`: fraction of frames whose whole pad byte is right;
- per button: precision, recall, F1 and support (frames pressed);
- per button `onset_f1`: press onsets (released -> pressed) matched one-to-one within ±2 frames;
- per button `recall_by_press_length`: recall over the frames of presses 1, 2, 3 and 4+ store
  frames long: whether a button's F1 is held down by its short taps or by presses of every length;
- `visibility` (SMB family, stores with `info/y_pos`): holding A only matters while Mario rises
  (it lowers his gravity) or on the frame the jump starts; a held A while he falls or stands is
  invisible in the frames. We report the fraction of A-pressed frames that are visible (the
  recall any IDM can reach on A) and A's F1 counting only visible presses, the fair figure.

Outputs: OUT/idm_eval.json, OUT/confusion_<split>.png (2x2 matrix per button) and
OUT/f1_<split>.png (per-button F1 bars).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from swag.actions import BUTTONS, NUM_BUTTONS, onsets, press_lengths, to_multihot
from swag.data import check_resolution, index_stores, read_index
from swag.errors import SwagError
from swag.store import atomic_save_figure, atomic_write_text, open_store

ONSET_TOLERANCE = 2  # frames


def precision_recall_f1(truth: np.ndarray, predicted: np.ndarray) -> dict:
    """bool arrays (N,) -> precision, recall, F1 (0 when undefined) and support."""
    tp = int((truth & predicted).sum())
    fp = int((~truth & predicted).sum())
    fn = int((truth & ~predicted).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": int(truth.sum()), "tp": tp, "fp": fp,
            "fn": fn, "tn": int((~truth & ~predicted).sum())}


def onset_counts(truth: np.ndarray, predicted: np.ndarray, tolerance: int = ONSET_TOLERANCE) -> tuple[int, int, int]:
    """(matched, true onsets, predicted onsets): greedy one-to-one matching in time order."""
    true_onsets, predicted_onsets = onsets(truth), onsets(predicted)
    matched, j = 0, 0
    used = np.zeros(len(predicted_onsets), bool)
    for t in true_onsets:
        while j < len(predicted_onsets) and predicted_onsets[j] < t - tolerance:
            j += 1
        k = j
        while k < len(predicted_onsets) and predicted_onsets[k] <= t + tolerance:
            if not used[k]:
                used[k] = True
                matched += 1
                break
            k += 1
    return matched, len(true_onsets), len(predicted_onsets)


PRESS_LENGTHS = ("1", "2", "3", "4+")


def a_visible(actions: np.ndarray, y_pos: np.ndarray) -> np.ndarray:
    """bool (T,): frames where a held A could show in the next frame (SMB): its onset, or while
    Mario rises (y_pos grows upwards in gym-super-mario-bros' info)."""
    pressed_a = to_multihot(actions)[:, BUTTONS.index("A")]
    onset = pressed_a & ~np.concatenate([[False], pressed_a[:-1]])
    rising = np.concatenate([np.diff(np.asarray(y_pos, np.float64)) > 0, [False]])
    return onset | (pressed_a & rising)


def metrics(truth: list[np.ndarray], predicted: list[np.ndarray], visible_a: list[np.ndarray | None]) -> dict:
    """Metrics over several stores (lists of per-store arrays, so onsets never span stores)."""
    all_truth, all_pred = np.concatenate(truth), np.concatenate(predicted)
    truth_hot, pred_hot = to_multihot(all_truth), to_multihot(all_pred)
    result = {"frames": int(len(all_truth)), "stores": len(truth),
              "exact_match": float((all_truth == all_pred).mean()) if len(all_truth) else 0.0, "buttons": {}}
    truth_hots, pred_hots = [to_multihot(t) for t in truth], [to_multihot(p) for p in predicted]  # per store
    for b, name in enumerate(BUTTONS):
        scores = precision_recall_f1(truth_hot[:, b], pred_hot[:, b])
        matched = true_count = pred_count = 0
        for t, p in zip(truth_hots, pred_hots):
            m, n_true, n_pred = onset_counts(t[:, b], p[:, b])
            matched, true_count, pred_count = matched + m, true_count + n_true, pred_count + n_pred
        onset_precision = matched / pred_count if pred_count else 0.0
        onset_recall = matched / true_count if true_count else 0.0
        scores["onset_f1"] = (2 * onset_precision * onset_recall / (onset_precision + onset_recall)
                              if onset_precision + onset_recall else 0.0)
        scores["onsets"] = true_count
        lengths = np.concatenate([press_lengths(t[:, b]) for t in truth_hots])
        buckets = np.minimum(lengths, len(PRESS_LENGTHS))  # 0 released, 1..3, 4 for 4+
        scores["recall_by_press_length"] = {
            label: {"frames": int((buckets == i).sum()),
                    "recall": float(pred_hot[buckets == i, b].mean()) if (buckets == i).any() else None}
            for i, label in enumerate(PRESS_LENGTHS, start=1)}
        result["buttons"][name] = scores
    if visible_a and all(v is not None for v in visible_a):
        visible = np.concatenate(visible_a)
        a = BUTTONS.index("A")
        pressed = truth_hot[:, a]
        keep = ~pressed | visible  # drop the frames where A is held but cannot be seen
        result["visibility"] = {
            "a_pressed_frames": int(pressed.sum()),
            "a_visible_fraction": float(visible[pressed].mean()) if pressed.any() else 1.0,
            "a_f1_visible_only": precision_recall_f1(pressed[keep], pred_hot[keep, a])["f1"],
            "a_recall_visible_only": precision_recall_f1(pressed[keep], pred_hot[keep, a])["recall"],
        }
    return result


def evaluate_idm(model_path, index_path, out_dir, splits=("test", "unseen_style"), batch_size: int = 16,
                 device: str | None = None, progress: bool = True, context: int | None = None) -> dict:
    """Label each split's stores with the IDM, as `swag label` does with the same `context`, and
    score them; writes idm_eval.json and PNGs."""
    import torch

    from swag.label import predict_store
    from swag.train import load_model

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(model_path, device)
    index = read_index(index_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"model": str(model_path), "index": str(index_path), "splits": {}}
    entries_by_split = {split: index_stores(index, split) for split in splits}
    total = sum(len(v) for v in entries_by_split.values())
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="evaluate", unit="store")
    for split, entries in entries_by_split.items():
        truth, predicted, visible = [], [], []
        for entry in entries:
            store = open_store(entry["path"])
            check_resolution(store, model.config.dimensions.x, model.config.dimensions.y)
            actions = store.actions
            if entry.get("truth"):
                actions = open_store(entry["truth"], need_frames=False).actions
            if actions is None:
                raise SwagError(f"{entry['path']}: no actions to evaluate against (and no truth store)")
            if len(actions) != len(store):
                raise SwagError(f"{entry.get('truth', entry['path'])}: {len(actions)} actions for {len(store)} frames")
            pred, _, _ = predict_store(model, store.frames, batch_size, device, context)
            truth.append(actions)
            predicted.append(pred)
            visible.append(a_visible(actions, store.info["y_pos"][:]) if "y_pos" in store.info else None)
            if bar is not None:
                bar.update(1)
        if not entries:
            continue
        result = metrics(truth, predicted, visible)
        results["splits"][split] = result
        plot_confusion(result, split, out_dir / f"confusion_{split}.png")
        plot_f1(result, split, out_dir / f"f1_{split}.png")
    if bar is not None:
        bar.close()
    atomic_write_text(json.dumps(results, indent=1), out_dir / "idm_eval.json")
    return results


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    atomic_save_figure(fig, path, dpi=100)
    plt.close(fig)


def plot_confusion(result: dict, split: str, path: Path) -> None:
    """One 2x2 confusion matrix per button (rows: truth, columns: prediction), row-normalised."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(10, 5.5))
    for ax, name in zip(axes.flat, BUTTONS):
        s = result["buttons"][name]
        counts = np.array([[s["tn"], s["fp"]], [s["fn"], s["tp"]]], np.float64)
        rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        ax.imshow(rates, vmin=0, vmax=1, cmap="Blues")
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f"{rates[i, j]:.2f}\n({int(counts[i, j])})", ha="center", va="center",
                        color="white" if rates[i, j] > 0.5 else "black", fontsize=8)
        ax.set_xticks([0, 1], ["off", "on"])
        ax.set_yticks([0, 1], ["off", "on"])
        ax.set_title(f"{name}  F1 {s['f1']:.2f}", fontsize=9)
    fig.suptitle(f"IDM per-button confusion ({split}; rows truth, columns predicted)")
    fig.tight_layout()
    _save(fig, path)


def plot_f1(result: dict, split: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(NUM_BUTTONS)
    ax.bar(x - 0.2, [result["buttons"][n]["f1"] for n in BUTTONS], 0.4, label="F1 (per frame)")
    ax.bar(x + 0.2, [result["buttons"][n]["onset_f1"] for n in BUTTONS], 0.4, label=f"onset F1 (±{ONSET_TOLERANCE})")
    ax.set_xticks(x, BUTTONS)
    ax.set_ylim(0, 1)
    ax.set_title(f"IDM on {split}: exact match {result['exact_match']:.3f}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
