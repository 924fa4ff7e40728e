"""IDM evaluation: metric definitions, the A-visibility ceiling on real SMB physics, outputs."""

import json

import numpy as np
import pytest
import torch

from swag.actions import BIT, from_names
from swag.errors import SwagError
from swag.evaluate import (a_visible, evaluate_idm, metrics, onset_counts, onsets, precision_recall_f1,
                           press_lengths)
from swag.model import ModelConfig, VPTModel
from swag.store import StoreWriter, write_array_store



def test_precision_recall_f1_by_hand():
    truth = np.array([1, 1, 0, 0, 1, 0], bool)
    predicted = np.array([1, 0, 1, 0, 1, 0], bool)
    scores = precision_recall_f1(truth, predicted)
    assert (scores["tp"], scores["fp"], scores["fn"], scores["tn"]) == (2, 1, 1, 2)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert precision_recall_f1(np.zeros(3, bool), np.zeros(3, bool))["f1"] == 0.0


def test_onsets_match_within_two_frames_one_to_one():
    truth = np.zeros(40, bool)
    truth[[5, 6, 7, 20, 21, 30]] = True  # onsets at 5, 20, 30
    predicted = np.zeros(40, bool)
    predicted[[7, 8, 23, 24, 31, 35]] = True  # onsets at 7 (+2: hit), 23 (+3: miss), 31 (hit), 35 (extra)
    assert list(onsets(truth)) == [5, 20, 30] and list(onsets(predicted)) == [7, 23, 31, 35]
    assert onset_counts(truth, predicted) == (2, 3, 4)
    # one predicted onset cannot match two true ones
    assert onset_counts(np.array([1, 0, 1, 0, 0, 0], bool), np.array([0, 1, 0, 0, 0, 0], bool)) == (1, 2, 1)


def test_metrics_exact_match_and_buttons():
    truth = [np.array([BIT["right"], BIT["right"] | BIT["A"], 0, BIT["left"]], np.uint8)]
    predicted = [np.array([BIT["right"], BIT["right"], 0, BIT["left"]], np.uint8)]
    result = metrics(truth, predicted, [None])
    assert result["exact_match"] == pytest.approx(0.75)
    assert result["buttons"]["right"]["f1"] == 1.0 and result["buttons"]["A"]["recall"] == 0.0
    assert "visibility" not in result


def test_press_lengths_and_recall_by_press_length():
    pressed = np.array([1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1], bool)
    assert list(press_lengths(pressed)) == [1, 0, 2, 2, 0, 5, 5, 5, 5, 5, 0, 1]
    left = BIT["left"]
    # two stores, so a press at the end of one and the start of the next stay two presses
    truth = [np.array([left, 0, left, left, 0], np.uint8), np.array([left, left, left, left, 0], np.uint8)]
    predicted = [np.array([0, 0, left, 0, 0], np.uint8), np.array([left, left, left, 0, 0], np.uint8)]
    by_length = metrics(truth, predicted, [None, None])["buttons"]["left"]["recall_by_press_length"]
    assert by_length["1"] == {"frames": 1, "recall": 0.0}
    assert by_length["2"] == {"frames": 2, "recall": 0.5}
    assert by_length["3"] == {"frames": 0, "recall": None}
    assert by_length["4+"] == {"frames": 4, "recall": 0.75}


def test_a_visibility_ceiling_on_real_smb_physics():
    """Hold A for a long jump on the real emulator: once Mario stops rising, the held A is invisible."""
    from swag import games

    env = games.make("smb1", "1-1")
    _, info = env.reset(seed=0)
    actions, y_pos = [], []
    hold = from_names(["A", "right"])
    for i in range(90):  # 20 frames to stand, then A held for 60 frames (the jump lasts ~40)
        action = hold if 20 <= i < 80 else BIT["right"]
        actions.append(action)
        y_pos.append(int(info["y_pos"]))
        _, _, terminated, truncated, info = env.step(action)
        assert not (terminated or truncated)
    env.close()
    actions, y_pos = np.array(actions, np.uint8), np.array(y_pos)
    visible = a_visible(actions, y_pos)
    assert visible[20]  # the onset
    assert y_pos.max() > y_pos[19] + 20  # it did jump
    fraction = visible[20:80].mean()
    assert 0.1 < fraction < 0.8  # rising part visible, the fall and landing not
    assert not visible[75:80].any()  # back on the ground, still holding A
    # a predictor that only ever sees visible A frames loses no F1 on the visible-only measure
    predicted = np.where(visible, actions, actions & ~np.uint8(BIT["A"]))
    result = metrics([actions], [predicted.astype(np.uint8)], [visible])
    assert result["visibility"]["a_f1_visible_only"] == 1.0
    assert result["buttons"]["A"]["recall"] == pytest.approx(result["visibility"]["a_visible_fraction"])


def test_evaluate_idm_writes_results_and_plots(tmp_path):
    config = ModelConfig(embedding_dim=16, ff_dim=32, transformer_heads=2, transformer_blocks=1,
                         dimensions={"x": 16, "y": 12}, feature_channels=[4, 8], spatial_channels=4, sequence_length=8)
    torch.manual_seed(0)
    torch.save({"model": VPTModel(config).state_dict(), "model_config": config.to_dict()}, tmp_path / "model.pt")
    rng = np.random.default_rng(0)
    entries = []
    for i, split in enumerate(["test", "test", "unseen_style", "train"]):
        path = tmp_path / f"s{i}.zarr"
        actions = rng.integers(0, 256, 30).astype(np.uint8)
        frames = rng.integers(0, 256, (30, 12, 16, 3)).astype(np.uint8)
        with StoreWriter(path, height=12, width=16, fps=20, attrs={}, info_keys=("y_pos",),
                         has_actions=split != "unseen_style") as writer:
            writer.append(frames, actions if split != "unseen_style" else None,
                          {"y_pos": rng.integers(70, 120, 30)})
        entry = {"path": str(path), "game": "smb1", "split": split}
        if split == "unseen_style":  # hidden labels: the truth store holds them
            write_array_store(tmp_path / "truth.zarr", {"actions": actions}, {"kind": "truth"})
            entry["truth"] = str(tmp_path / "truth.zarr")
        entries.append(entry)
    (tmp_path / "index.json").write_text(json.dumps({"dataset": "t", "stores": entries}))
    results = evaluate_idm(tmp_path / "model.pt", tmp_path / "index.json", tmp_path / "eval", progress=False)
    saved = json.loads((tmp_path / "eval" / "idm_eval.json").read_text())
    assert saved["splits"].keys() == {"test", "unseen_style"}
    assert saved["splits"]["test"]["frames"] == 60 and saved["splits"]["unseen_style"]["frames"] == 30
    assert 0.0 <= results["splits"]["test"]["exact_match"] <= 1.0
    assert "a_visible_fraction" in saved["splits"]["test"]["visibility"]
    for split in ("test", "unseen_style"):
        for kind in ("confusion", "f1"):
            assert (tmp_path / "eval" / f"{kind}_{split}.png").stat().st_size > 1000
    # a held-out store without actions or truth is an error naming it
    entries[2].pop("truth")
    (tmp_path / "index.json").write_text(json.dumps({"dataset": "t", "stores": entries}))
    with pytest.raises(SwagError, match=r"s2\.zarr: no actions to evaluate against"):
        evaluate_idm(tmp_path / "model.pt", tmp_path / "index.json", tmp_path / "eval2", progress=False)
