"""Would per-button decision thresholds tuned on validation label better than 0.5? On a finished run.

    python benchmarks/decision_thresholds.py [RUN_DIR] [--model results/idm/model.pt] [--index results/index/idm.json]

The IDM presses a button where its probability exceeds 0.5. For a rare button (SMB's left: about 1.4%
of frames) a lower threshold can trade precision for recall and raise F1. This picks, per button,
the threshold in 0.05 … 0.95 with the best F1 on the SMB recordings the IDM validated on
(`val_stores` of the model's train_log.json, never trained on), then labels the IDM's held-out
splits (`test`, `unseen_style` of results/index/idm.json) and the unlabelled set's `train` split
against its truth (results/index/vpt.json) both ways, and prints exact match and per-button F1 at
0.5 and at the tuned thresholds. It needs a finished demo run (`make demo`), so `make bench` skips it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHOWN = ("right", "left", "A", "B")


def main(run_dir: str, model_path: str, index_path: str) -> None:
    import numpy as np
    import torch

    from swag.actions import BUTTONS, to_multihot
    from swag.data import index_stores, read_index
    from swag.evaluate import precision_recall_f1
    from swag.label import predict_store
    from swag.store import open_store
    from swag.train import load_model

    os.chdir(run_dir)  # index paths are relative to the run
    torch.set_num_threads(1)
    model = load_model(model_path, "cpu")
    train_log = json.loads((Path(model_path).parent / "train_log.json").read_text())

    def probabilities(pairs) -> tuple[np.ndarray, np.ndarray]:
        """(frames, 8) press probabilities and (frames, 8) true presses over (video, truth) stores."""
        probs, truth = [], []
        for video, labels in pairs:
            probs.append(predict_store(model, open_store(video).frames)[1])
            truth.append(to_multihot(np.asarray(open_store(labels, need_frames=False).actions[:])).astype(bool))
        return np.concatenate(probs), np.concatenate(truth)

    idm, vpt = read_index(index_path), read_index("results/index/vpt.json")
    smb = {e["path"]: e for e in idm["stores"] if e["game"] == "smb1"}
    sets = {
        "validation": [(p, p) for p in train_log["val_stores"] if p in smb],
        "test": [(e["path"], e["path"]) for e in index_stores(idm, "test") if e["game"] == "smb1"],
        "unseen_style": [(e["path"], e["path"]) for e in index_stores(idm, "unseen_style") if e["game"] == "smb1"],
        "label quality": [(e["path"], e["truth"]) for e in index_stores(vpt, "train")
                          if e["game"] == "smb1" and e.get("truth")],
    }
    scored = {name: probabilities(pairs) for name, pairs in sets.items() if pairs}
    val_probs, val_truth = scored.pop("validation")
    grid = np.round(np.arange(0.05, 0.951, 0.05), 2)
    thresholds = np.full(len(BUTTONS), 0.5)
    for b in range(len(BUTTONS)):
        if val_truth[:, b].any():
            thresholds[b] = max(grid, key=lambda t: precision_recall_f1(val_truth[:, b], val_probs[:, b] > t)["f1"])
    print(f"{len(val_truth)} validation frames; thresholds: "
          + ", ".join(f"{BUTTONS[b]} {thresholds[b]:.2f} ({val_truth[:, b].sum()} pressed)"
                      for b in range(len(BUTTONS)) if val_truth[:, b].any()))
    print(f"{'set':14s} {'frames':>6s} {'threshold':>9s} {'exact':>6s}  " + "  ".join(f"{b:>5s}" for b in SHOWN))
    for name, (probs, truth) in scored.items():
        for label, cut in (("0.5", 0.5), ("tuned", thresholds)):
            pressed = probs > cut
            exact = float((pressed == truth).all(1).mean())
            f1 = "  ".join(f"{precision_recall_f1(truth[:, BUTTONS.index(b)], pressed[:, BUTTONS.index(b)])['f1']:.3f}"
                           for b in SHOWN)
            print(f"{name:14s} {len(truth):6d} {label:>9s} {exact:6.3f}  {f1}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default=".")
    parser.add_argument("--model", default="results/idm/model.pt", help="IDM model.pt, relative to RUN_DIR")
    parser.add_argument("--index", default="results/index/idm.json", help="the IDM's dataset index, relative to RUN_DIR")
    args = parser.parse_args()
    main(args.run_dir, args.model, args.index)
