"""How much labelling context the IDM needs: accuracy and compute per `context`, on a finished run.

    python benchmarks/label_context.py [RUN_DIR] [CONTEXT ...]   # defaults: . and 4 3 2 1 0

Labels, with the run's IDM (`results/idm/model.pt`), the SMB recordings of the IDM's held-out
splits (`test`, `unseen_style` of results/index/idm.json) and the `train` split of the unlabelled
set (results/index/vpt.json, scored against its truth stores), once per context, and prints exact
match and per-button F1 over all those frames, next to the compute each context costs: window-frames
run per labelled frame, length / (length - 2 context). This is the measurement behind
`swag.label.default_context`; it needs a finished demo run (`make demo`), so `make bench` skips it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(run_dir: str = ".", contexts: list[int] = (4, 3, 2, 1, 0)) -> None:
    import numpy as np
    import torch

    from swag.data import index_stores, read_index
    from swag.evaluate import metrics
    from swag.label import predict_store
    from swag.store import open_store
    from swag.train import load_model

    os.chdir(run_dir)  # index paths are relative to the run
    torch.set_num_threads(1)
    model = load_model("results/idm/model.pt", "cpu")
    videos, truths = [], []
    idm = read_index("results/index/idm.json")
    for entry in index_stores(idm, "test") + index_stores(idm, "unseen_style"):
        if entry["game"] == "smb1":
            videos.append(entry["path"])
            truths.append(entry["path"])
    for entry in index_stores(read_index("results/index/vpt.json"), "train"):
        if entry["game"] == "smb1" and entry.get("truth"):
            videos.append(entry["path"])
            truths.append(entry["truth"])
    frames = [np.asarray(open_store(path).frames[:]) for path in videos]
    truth = [np.asarray(open_store(path, need_frames=False).actions[:]) for path in truths]
    length = model.config.sequence_length
    print(f"{len(videos)} SMB recordings, {sum(map(len, truth))} frames, window {length}")
    print(f"{'context':>7} {'cost':>5} {'exact':>6}  F1 right  left     A      B")
    for context in contexts:
        predicted = [predict_store(model, video, context=context)[0] for video in frames]
        result = metrics(truth, predicted, [None] * len(truth))
        f1 = "  ".join(f"{result['buttons'][b]['f1']:.3f}" for b in ("right", "left", "A", "B"))
        print(f"{context:7d} {length / (length - 2 * context):5.2f} {result['exact_match']:6.3f}     {f1}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".", [int(c) for c in sys.argv[2:]] or [4, 3, 2, 1, 0])
