"""IDM labelling: window tiling, centre predictions, resume after an interrupt, bad input, its log."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from swag.data import WindowDataset, load_labels
from swag.errors import SwagError
from swag.label import label_store, predict_store, windows
from swag.model import ModelConfig, VPTModel
from swag.store import StoreWriter, open_store, write_array_store
from swag.train import load_model


TINY = dict(embedding_dim=16, ff_dim=32, transformer_heads=2, transformer_blocks=1, dimensions={"x": 16, "y": 12},
            feature_channels=[4, 8], spatial_channels=4, sequence_length=8)


def write_video(path, frames=70, width=16, height=12, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (frames, height, width, 3)).astype(np.uint8)
    with StoreWriter(path, height=height, width=width, fps=20, attrs={"kind": "video", "game": "smb1"},
                     chunk_frames=16, has_actions=False) as writer:
        writer.append(images)
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.manual_seed(0)
    config = ModelConfig(**TINY)
    path = tmp_path_factory.mktemp("idm") / "model.pt"
    torch.save({"model": VPTModel(config).state_dict(), "model_config": config.to_dict()}, path)
    return path


@pytest.mark.parametrize("context", [None, 0, 1, 3])
@pytest.mark.parametrize("num_frames,length", [(70, 8), (64, 8), (9, 8), (8, 8), (5, 8), (101, 32), (33, 7)])
def test_windows_tile_the_video_and_keep_centres(num_frames, length, context):
    spans = windows(num_frames, length, context)
    owned = np.concatenate([np.arange(ks, ke) for _, _, ks, ke in spans])
    assert np.array_equal(owned, np.arange(num_frames))  # every frame exactly once, in order
    for start, stop, ks, ke in spans:
        assert 0 <= start <= ks <= ke <= stop <= num_frames and stop - start == min(length, num_frames)
    context = 3 * length // 16 if context is None else context
    if num_frames > length:
        # interior frames get at least `context` frames of past and future; windows step by the kept centre
        for start, stop, ks, ke in spans[1:-1]:
            assert ks - start >= context and stop - ke >= context
        assert len(spans) == -(-(num_frames - length) // (length - 2 * context)) + 1


def test_a_context_that_leaves_no_centre_is_refused():
    with pytest.raises(SwagError, match="context 4"):
        windows(70, 8, 4)


def test_labels_are_the_owning_windows_centre_predictions(model_path, tmp_path, monkeypatch):
    monkeypatch.setenv("SWAG_PRECISION", "fp32")  # exact: batched windows against one at a time
    video = open_store(write_video(tmp_path / "v.zarr"))
    model = load_model(model_path)
    actions, probs, confidence = predict_store(model, video.frames, batch_size=3)
    frames = torch.from_numpy(video.frames[:])
    for start, stop, ks, ke in windows(len(video), 8):
        with torch.no_grad():
            expected = model.button_probs(model(frames[None, start:stop])[0])[0]
        np.testing.assert_allclose(probs[ks:ke], expected[ks - start:ke - start].numpy(), atol=1e-5)
    assert actions.dtype == np.uint8 and ((confidence > 0) & (confidence <= 1)).all()


def test_interrupted_labelling_resumes_to_identical_labels(model_path, tmp_path):
    video = write_video(tmp_path / "v.zarr", frames=90)
    straight = label_store(video, model_path, tmp_path / "straight.zarr", batch_size=2)

    calls = []

    def interrupt_after_two(done, total):
        calls.append(done)
        if done == 2:
            raise KeyboardInterrupt  # as if the job were killed mid-video

    out = tmp_path / "resumed.zarr"
    with pytest.raises(KeyboardInterrupt):
        label_store(video, model_path, out, batch_size=2, on_batch=interrupt_after_two)
    partial = tmp_path / "resumed.zarr.partial"
    assert not out.exists() and partial.is_dir()
    import zarr

    assert zarr.open_group(partial, mode="r").attrs["swag"]["progress_batches"] == 2
    resumed_calls = []
    label_store(video, model_path, out, batch_size=2, on_batch=lambda done, total: resumed_calls.append(done))
    assert resumed_calls[0] == 3  # the first two batches were not recomputed
    assert not partial.exists()
    a, b = open_store(straight, need_frames=False), open_store(out, need_frames=False)
    assert len(a.actions) == 90
    for name in ("actions", "probs", "confidence"):
        assert np.array_equal(a.group[name][:], b.group[name][:]), name
    assert a.group["probs"].dtype == np.float16 and a.group["confidence"].dtype == np.float32
    assert b.attrs["video"] == str(video) and b.attrs["idm"] == str(model_path) and "progress_batches" not in b.attrs
    # the labels feed the policy's dataset, with their confidence as frame weights
    dataset = WindowDataset([video], 8, 4, 16, 12, labels_paths=[out], use_confidence=True)
    _, window_actions, weights, previous = dataset[0]
    assert np.array_equal(window_actions.numpy(), b.actions[:8])
    assert np.allclose(weights.numpy(), b.group["confidence"][:8])
    # the byte held before each frame: none before the first, then the labels shifted by one
    assert np.array_equal(previous.numpy(), np.concatenate([[0], b.actions[:7]]))
    _, _, _, previous = dataset[1]
    assert np.array_equal(previous.numpy(), b.actions[3:11])


def test_stale_partial_from_another_model_is_discarded(model_path, tmp_path):
    video = write_video(tmp_path / "v.zarr", frames=40)
    out = tmp_path / "l.zarr"
    with pytest.raises(KeyboardInterrupt):
        label_store(video, model_path, out, batch_size=1, on_batch=lambda d, t: (_ for _ in ()).throw(KeyboardInterrupt))
    other = tmp_path / "other.pt"
    torch.manual_seed(1)
    config = ModelConfig(**TINY)
    torch.save({"model": VPTModel(config).state_dict(), "model_config": config.to_dict()}, other)
    done = []
    label_store(video, other, out, batch_size=1, on_batch=lambda d, t: done.append(d))
    assert done[0] == 1  # started over
    fresh = label_store(video, other, tmp_path / "fresh.zarr", batch_size=1)
    assert np.array_equal(open_store(out, need_frames=False).group["probs"][:],
                          open_store(fresh, need_frames=False).group["probs"][:])


def test_label_progress_into_a_log_file_redraws_rarely(model_path, tmp_path, progress_draws):
    # stderr is a pipe here, as it is a file in a workflow job: the bar draws when it opens and when it
    # closes, not at every batch (it did, whatever TQDM_MININTERVAL said)
    video = write_video(tmp_path / "v.zarr", frames=200)
    assert len(windows(200, TINY["sequence_length"], None)) > 30
    swag = Path(sys.executable).with_name("swag")
    result = subprocess.run([str(swag), "label", str(video), "--model", str(model_path), "--out",
                             str(tmp_path / "l.zarr"), "--batch-size", "1"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    draws = progress_draws(result.stderr, "label:")
    assert 1 <= len(draws) <= 3, draws


def test_video_with_other_resolution_is_refused(model_path, tmp_path):
    video = write_video(tmp_path / "big.zarr", width=20, height=12)
    with pytest.raises(SwagError, match=r"big\.zarr: frames are 20x12, the model expects 16x12"):
        label_store(video, model_path, tmp_path / "l.zarr")
    assert not (tmp_path / "l.zarr").exists()
    swag = Path(sys.executable).with_name("swag")
    result = subprocess.run([str(swag), "label", str(video), "--model", str(model_path), "--out",
                             str(tmp_path / "l.zarr")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("swag: error: ")
    assert "frames are 20x12, the model expects 16x12" in result.stderr


def test_labels_store_with_other_frame_count_is_refused(tmp_path):
    video = open_store(write_video(tmp_path / "v.zarr", frames=30))
    labels = tmp_path / "labels.zarr"
    write_array_store(labels, {"actions": np.zeros(29, np.uint8), "confidence": np.ones(29, np.float32)},
                      {"kind": "labels", "frames": 29})
    with pytest.raises(SwagError, match=r"labels\.zarr: labels store has 29 frames, its video .*v\.zarr has 30"):
        load_labels(video, labels)
    with pytest.raises(SwagError, match="labels store has 29 frames"):
        WindowDataset([video.path], 8, 4, 16, 12, labels_paths=[labels])
