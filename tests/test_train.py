"""The shared training loop: outputs, SIGTERM + resume, DDP, bad checkpoints."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from swag.actions import hold_limits
from swag.data import random_shift
from swag.errors import SwagError
from swag.model import ModelConfig
from swag.store import StoreWriter, open_store
from swag.train import TrainingConfig, learning_rate_at, load_checkpoint, load_model, train, train_idm


TINY = dict(embedding_dim=16, ff_dim=32, transformer_heads=2, transformer_blocks=1, dimensions={"x": 16, "y": 12},
            feature_channels=[4, 8], spatial_channels=4, sequence_length=8)


def write_store(path, frames=48, seed=0, width=16, height=12):
    """A store whose action is readable from the frames: button bits light up pixel columns."""
    rng = np.random.default_rng(seed)
    actions = (rng.integers(0, 256, frames) & 0b11000011).astype(np.uint8)
    images = rng.integers(0, 40, (frames, height, width, 3)).astype(np.uint8)
    for bit in range(8):
        images[:, :, 2 * bit, 0] += ((actions >> bit) & 1).astype(np.uint8)[:, None] * 200
    with StoreWriter(path, height=height, width=width, fps=20, attrs={"kind": "recording", "game": "smb1"},
                     chunk_frames=16) as writer:
        writer.append(images, actions)
    return str(path)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    return [write_store(root / f"ep{i}.zarr", seed=i) for i in range(3)]


def tiny_training(**overrides) -> TrainingConfig:
    values = dict(batch_size=4, learning_rate=3e-3, stride=4, epochs=50, max_steps=12, eval_every=4,
                  checkpoint_every=1000, patience=100, seed=0)
    values.update(overrides)
    return TrainingConfig(**values)


def test_train_writes_outputs_and_learns(stores, tmp_path):
    torch.manual_seed(0)
    summary = train(ModelConfig(**TINY), tiny_training(max_steps=30, eval_every=10), tmp_path / "out",
                    stores[:2], stores[2:], progress=False)
    out = tmp_path / "out"
    for name in ("model.pt", "checkpoint.pt", "train_log.json", "curves.png"):
        assert (out / name).is_file(), name
    assert list((out / "runs").glob("events.out.tfevents.*"))
    log = json.loads((out / "train_log.json").read_text())
    assert log["steps"] == 30 and [c["step"] for c in log["curves"]] == [10, 20, 30]
    assert log["curves"][-1]["val_loss"] < log["curves"][0]["val_loss"]
    model = load_model(out / "model.pt")
    assert model.config == ModelConfig(**TINY)
    # how long the fit stores' labels hold each button, for the policy's rollouts
    fit_actions = [open_store(path).actions for path in stores[:2]]
    assert load_checkpoint(out / "model.pt")["hold_limits"] == hold_limits(fit_actions)
    assert summary["best_val_loss"] == pytest.approx(min(c["val_loss"] for c in log["curves"]))
    assert not list(out.glob("*.tmp-*"))


def test_ema_keeps_the_moving_average_of_the_weights_it_validated(stores, tmp_path):
    decay, steps = 0.8, 6
    # eval_every > steps: only the last step validates, so model.pt holds the final average
    train(ModelConfig(**TINY), tiny_training(max_steps=steps, eval_every=steps, checkpoint_every=1, ema_decay=decay),
          tmp_path / "ema", stores[:2], stores[2:], progress=False)
    checkpoint = torch.load(tmp_path / "ema" / "checkpoint.pt", weights_only=False)
    kept = load_checkpoint(tmp_path / "ema" / "model.pt")["model"]
    raw, averaged = checkpoint["model"], checkpoint["ema"]
    assert int(averaged["n_averaged"]) == steps
    assert all(torch.equal(kept[name], averaged[f"module.{name}"]) for name in kept)
    assert not torch.allclose(kept["head.weight"], raw["head.weight"])  # the average lags the last step's weights
    # replay the same run without EMA, one checkpoint per step, and average by hand
    history = []
    for step in range(1, steps + 1):
        train(ModelConfig(**TINY), tiny_training(max_steps=step, eval_every=steps, checkpoint_every=1),
              tmp_path / "plain", stores[:2], stores[2:], progress=False)
        history.append(torch.load(tmp_path / "plain" / "checkpoint.pt", weights_only=False)["model"])
    for name in kept:
        expected = history[0][name].double()
        for weights in history[1:]:
            expected = decay * expected + (1 - decay) * weights[name].double()
        assert torch.allclose(kept[name].double(), expected, atol=1e-6), name
    with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\), got 1.0"):
        TrainingConfig(ema_decay=1.0)


def test_early_stopping_after_patience(stores, tmp_path):
    # learning rate 0: validation loss never improves after the first evaluation
    summary = train(ModelConfig(**TINY), tiny_training(learning_rate=1e-12, max_steps=100, eval_every=1, patience=2),
                    tmp_path / "out", stores[:2], stores[2:], progress=False)
    assert summary["stopped_early"]
    assert summary["steps"] < 100


def test_train_idm_splits_the_index_by_recording(stores, tmp_path):
    index = {"dataset": "t", "fps": 20, "height": 12, "width": 16,
             "stores": [{"path": p, "game": "smb1", "split": "train"} for p in stores]
             + [{"path": stores[0], "game": "smb1", "split": "test"}]}
    (tmp_path / "index.json").write_text(json.dumps(index))
    summary = train_idm(tmp_path / "index.json", ModelConfig(**TINY), tiny_training(test_train_split=0.34, max_steps=4),
                        tmp_path / "out", progress=False)
    assert len(summary["fit_stores"]) + len(summary["val_stores"]) == 3
    assert summary["val_stores"] and not set(summary["fit_stores"]) & set(summary["val_stores"])


def test_checkpoint_from_another_model_config_is_refused(stores, tmp_path):
    train(ModelConfig(**TINY), tiny_training(max_steps=2), tmp_path / "out", stores[:2], stores[2:], progress=False)
    other = ModelConfig(**{**TINY, "embedding_dim": 32})
    with pytest.raises(SwagError, match=r"checkpoint\.pt: checkpoint was made for a different model config "
                                        r"\(differs in embedding_dim\)"):
        load_checkpoint(tmp_path / "out" / "checkpoint.pt", other)
    with pytest.raises(SwagError, match="different model config"):
        load_checkpoint(tmp_path / "out" / "model.pt", other)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SwagError, match="junk.pt: not a readable torch checkpoint"):
        load_model(tmp_path / "junk.pt")


def test_store_with_other_resolution_is_refused(stores, tmp_path):
    wide = write_store(tmp_path / "wide.zarr", width=20)
    with pytest.raises(SwagError, match=r"wide\.zarr: frames are 20x12, the model expects 16x12"):
        train(ModelConfig(**TINY), tiny_training(), tmp_path / "out", [stores[0], wide], [], progress=False)


def test_cosine_schedule_warms_up_then_decays_to_a_tenth():
    config = TrainingConfig(learning_rate=1e-3, lr_schedule="cosine", warmup_steps=10)
    rates = [learning_rate_at(config, step, 100) for step in range(100)]
    assert rates[0] == pytest.approx(1e-3 / 11)
    assert all(a < b for a, b in zip(rates[:10], rates[1:11]))  # warming up
    assert rates[10] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))  # then decaying
    assert learning_rate_at(config, 100, 100) == pytest.approx(1e-4)
    assert learning_rate_at(config, 250, 100) == pytest.approx(1e-4)  # past the end: the floor
    assert learning_rate_at(TrainingConfig(learning_rate=1e-3), 57, 100) == 1e-3
    with pytest.raises(ValueError, match="lr_schedule must be 'constant' or 'cosine', got 'linear'"):
        TrainingConfig(lr_schedule="linear")


def test_random_shift_translates_each_window_as_a_whole():
    frames = torch.randint(0, 256, (6, 4, 30, 32, 3), dtype=torch.uint8)
    shifted = random_shift(frames, 3, torch.Generator().manual_seed(0))
    assert shifted.shape == frames.shape and shifted.dtype == torch.uint8
    offsets = []
    for window, original in zip(shifted, frames):
        # the inside of the window is the original moved by one (dy, dx) for all its frames
        matches = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
                   if torch.equal(window[:, 3:-3, 3:-3], original[:, 3 + dy:27 + dy, 3 + dx:29 + dx])]
        assert len(matches) == 1
        offsets.append(matches[0])
    assert len(set(offsets)) > 1  # windows get their own shifts
    # pixels pushed in from beyond the edge repeat the border row
    assert any(dy for dy, _ in offsets)
    for window, original, (dy, dx) in zip(shifted, frames, offsets):
        if dy:
            edge = -1 if dy > 0 else 0
            assert torch.equal(window[:, edge, 3:-3], original[:, edge, 3 + dx:29 + dx])
    assert torch.equal(random_shift(frames, 3, torch.Generator().manual_seed(0)), shifted)


SCRIPT = """
import logging, sys, torch
torch.set_num_threads(1)
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
from swag.model import ModelConfig
from swag.train import TrainingConfig, TrainingInterrupted, train, EXIT_INTERRUPTED
out, max_steps, fit, val = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4].split(",")
config = TrainingConfig(batch_size=4, learning_rate=3e-3, stride=2, epochs=1000, max_steps=max_steps, eval_every=5,
                        checkpoint_every=7, patience=1000, seed=3, augment=True, random_shift=2, lr_schedule="cosine",
                        warmup_steps=10, ema_decay=0.9)
try:
    train(ModelConfig(**{tiny}), config, out, fit, val, progress=False)
except TrainingInterrupted:
    sys.exit(EXIT_INTERRUPTED)
"""


def _script(tmp_path) -> Path:
    path = tmp_path / "train_tiny.py"
    path.write_text(SCRIPT.replace("{tiny}", repr(TINY)))
    return path


@pytest.mark.slow
def test_sigterm_checkpoints_and_resume_matches_uninterrupted_run(stores, tmp_path):
    script, steps = _script(tmp_path), 150
    args = [",".join(stores[:2]), stores[2]]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # interrupted: SIGTERM once the first validation is logged, then rerun the same command
    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen([sys.executable, str(script), str(interrupted), str(steps), *args], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        if line.startswith("step 5 "):
            process.send_signal(signal.SIGTERM)
            break
    output = process.stdout.read()
    assert process.wait(timeout=300) == 143, output
    stopped_at = torch.load(interrupted / "checkpoint.pt", weights_only=False)["step"]
    assert 5 <= stopped_at < steps
    assert not (interrupted / "model.pt").exists()
    resumed = subprocess.run([sys.executable, str(script), str(interrupted), str(steps), *args], env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming {interrupted / 'checkpoint.pt'} at step {stopped_at}" in resumed.stdout
    # uninterrupted reference
    straight = tmp_path / "straight"
    reference = subprocess.run([sys.executable, str(script), str(straight), str(steps), *args], env=env,
                               capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stdout + reference.stderr
    a = torch.load(interrupted / "checkpoint.pt", weights_only=False)
    b = torch.load(straight / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == steps
    for name in b["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert torch.equal(a["optimizer"]["state"][0]["exp_avg"], b["optimizer"]["state"][0]["exp_avg"])
    for name in b["ema"]:
        assert torch.equal(a["ema"][name], b["ema"][name]), name
    log_a = json.loads((interrupted / "train_log.json").read_text())["curves"]
    log_b = json.loads((straight / "train_log.json").read_text())["curves"]
    assert [c["val_loss"] for c in log_a] == [c["val_loss"] for c in log_b]


DDP_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from swag.model import ModelConfig
from swag.train import TrainingConfig, train

out, fit, val = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
config = TrainingConfig(batch_size=4, learning_rate=3e-3, stride=2, epochs=1000, max_steps=8, eval_every=1,
                        checkpoint_every=1000, patience=1000, seed=5)
train(ModelConfig(**{tiny}), config, out, fit, val, progress=False)
"""


@pytest.mark.slow
def test_ddp_two_gloo_processes_match_one_process(stores, tmp_path):
    script = tmp_path / "ddp_tiny.py"
    script.write_text(DDP_SCRIPT.replace("{tiny}", repr(TINY)))
    args = [",".join(stores[:2]), stores[2]]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["CUDA_VISIBLE_DEVICES"] = ""  # gloo on CPU even where a GPU exists
    single = subprocess.run([sys.executable, str(script), str(tmp_path / "one"), *args], env=env,
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr
    double = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(script), str(tmp_path / "two"), *args], env=env, capture_output=True, text=True,
                            timeout=600)
    assert double.returncode == 0, double.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "train_log.json").read_text())
    two = json.loads((tmp_path / "two" / "train_log.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    losses_one = [c["train_loss"] for c in one["curves"]]
    losses_two = [c["train_loss"] for c in two["curves"]]
    assert len(losses_one) == len(losses_two) == 8
    assert losses_one[-1] < losses_one[0]  # it learns, so a matching curve is not a flat one
    np.testing.assert_allclose(losses_two, losses_one, rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose([c["val_loss"] for c in two["curves"]], [c["val_loss"] for c in one["curves"]],
                               rtol=2e-4, atol=1e-5)


def test_a_changed_run_trains_afresh_and_a_longer_budget_resumes(stores, tmp_path, caplog):
    """Snakemake reruns training when its model, settings or data change: the old checkpoint is
    another run's, not a resume point. Raising only the step budget does resume."""
    out = tmp_path / "out"
    train(ModelConfig(**TINY), tiny_training(max_steps=3), out, stores[:2], stores[2:], progress=False)
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 3
    with caplog.at_level("INFO", logger="swag.train"):
        train(ModelConfig(**TINY), tiny_training(max_steps=5), out, stores[:2], stores[2:], progress=False)
    assert "resuming" in caplog.text and "at step 3" in caplog.text
    caplog.clear()
    other = ModelConfig(**{**TINY, "embedding_dim": 32})
    with caplog.at_level("INFO", logger="swag.train"):
        summary = train(other, tiny_training(max_steps=2), out, stores[:2], stores[2:], progress=False)
    assert "training afresh" in caplog.text and "resuming" not in caplog.text
    assert summary["steps"] == 2
    caplog.clear()
    with caplog.at_level("INFO", logger="swag.train"):  # other data: one store fewer
        train(other, tiny_training(max_steps=2), out, stores[:1], stores[2:], progress=False)
    assert "training afresh" in caplog.text


def test_head_refit_changes_only_the_head_and_labels_validation_better(stores, tmp_path):
    """`refit_head`: after training, the head alone is refit on the frozen trunk; the refit head is
    kept because it labels the validation windows better, and the trunk is the trained one."""
    plain = train(ModelConfig(**TINY), tiny_training(), tmp_path / "plain", stores[:2], stores[2:], progress=False)
    refit = train(ModelConfig(**TINY), tiny_training(refit_head=True), tmp_path / "refit", stores[:2], stores[2:],
                  progress=False)
    assert plain["head_refit"] is None
    report = refit["head_refit"]
    assert report["kept"]
    assert report["after"]["exact_match"] > report["before"]["exact_match"]
    trained = load_checkpoint(tmp_path / "plain" / "model.pt")["model"]
    kept = load_checkpoint(tmp_path / "refit" / "model.pt")["model"]
    for name in trained:
        if name.startswith("head."):
            assert not torch.equal(kept[name], trained[name]), name
        else:
            assert torch.equal(kept[name], trained[name]), name
    assert json.loads((tmp_path / "refit" / "train_log.json").read_text())["head_refit"] == report


def test_head_refit_is_discarded_when_it_labels_validation_worse(stores, tmp_path):
    """Validation labelled with the trained head's own predictions: the trained head scores 1.0 on
    it, so a refit head that changes any of them labels it worse, and the trained head stays."""
    from swag.data import WindowDataset
    from swag.train import _trunk_features, refit_head

    train(ModelConfig(**TINY), tiny_training(), tmp_path / "out", stores[:2], stores[2:], progress=False)
    model = load_model(tmp_path / "out" / "model.pt")
    trained_head = {k: v.clone() for k, v in model.head.state_dict().items()}
    features, _, _ = _trunk_features(model, WindowDataset(stores[2:], 8, 8, 16, 12), "cpu", "auto")
    own_labels, _ = model.predict(model.head(features))  # (windows, 8): the store's 48 frames in order
    agreeing = str(tmp_path / "agreeing.zarr")
    with StoreWriter(agreeing, height=12, width=16, fps=20, attrs={"kind": "recording", "game": "smb1"},
                     chunk_frames=16) as writer:
        writer.append(open_store(stores[2]).frames[:], own_labels.flatten().numpy())
    fit = WindowDataset(stores[:2], 8, 4, 16, 12)
    report = refit_head(model, fit, WindowDataset([agreeing], 8, 8, 16, 12), "cpu")
    assert report["before"]["exact_match"] == 1.0
    assert not report["kept"] and report["after"]["exact_match"] < 1.0
    assert all(torch.equal(model.head.state_dict()[k], v) for k, v in trained_head.items())
    # the same refit without validation data is kept
    assert refit_head(model, fit, None, "cpu")["kept"]
    assert not torch.equal(model.head.weight, trained_head["weight"])
