import json

import numpy as np
import pytest
import zarr

from swag.errors import SwagError
from swag.store import FORMAT_VERSION, StoreWriter, atomic_store_path, open_store, read_json, write_array_store


def random_episode(n, height=24, width=32, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, height, width, 3), dtype=np.uint8)
    actions = rng.integers(0, 256, n, dtype=np.uint8)
    return frames, actions


def test_streamed_appends_round_trip(tmp_path):
    frames, actions = random_episode(150)
    path = tmp_path / "ep.zarr"
    with StoreWriter(path, height=24, width=32, fps=20, attrs={"kind": "recording", "game": "smb1"},
                     chunk_frames=64, info_keys=("x_pos",)) as writer:
        # odd-sized appends cross chunk boundaries
        for start in range(0, 150, 7):
            stop = min(start + 7, 150)
            writer.append(frames[start:stop], actions[start:stop], {"x_pos": np.arange(start, stop)})
            # never more than one chunk waits in memory
            assert len(writer) - writer.frames_written < 64
    store = open_store(path)
    assert len(store) == 150 and store.height == 24 and store.width == 32 and store.fps == 20
    assert store.frames.chunks == (64, 24, 32, 3)
    np.testing.assert_array_equal(store.frames[:], frames)
    np.testing.assert_array_equal(store.actions, actions)
    np.testing.assert_array_equal(store.info["x_pos"][:], np.arange(150))
    assert store.attrs["frames"] == 150 and store.attrs["has_actions"] is True
    assert store.attrs["game"] == "smb1" and store.attrs["format_version"] == FORMAT_VERSION
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep.zarr"]  # no temp left


def test_store_without_actions_and_replacement(tmp_path):
    frames, actions = random_episode(10)
    path = tmp_path / "ep.zarr"
    with StoreWriter(path, height=24, width=32, fps=60, attrs={}) as writer:
        writer.append(frames, actions)
    with StoreWriter(path, height=24, width=32, fps=60, attrs={}, has_actions=False) as writer:
        writer.append(frames[:3])
        with pytest.raises(ValueError):
            writer.append(frames[:3], actions[:3])
    store = open_store(path)
    assert store.actions is None and len(store) == 3 and store.attrs["has_actions"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep.zarr"]


def test_failed_write_leaves_nothing_and_keeps_old_store(tmp_path):
    frames, actions = random_episode(100)
    path = tmp_path / "ep.zarr"
    with StoreWriter(path, height=24, width=32, fps=60, attrs={}) as writer:
        writer.append(frames[:5], actions[:5])
    with pytest.raises(RuntimeError):
        with StoreWriter(path, height=24, width=32, fps=60, attrs={}) as writer:
            writer.append(frames, actions)
            raise RuntimeError("emulator died")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep.zarr"]
    assert len(open_store(path)) == 5


def test_bad_append_shapes(tmp_path):
    frames, actions = random_episode(4)
    with StoreWriter(tmp_path / "ep.zarr", height=24, width=32, fps=60, attrs={}, info_keys=("score",)) as writer:
        with pytest.raises(ValueError):
            writer.append(frames[:, :10], actions, {"score": np.zeros(4)})
        with pytest.raises(ValueError):
            writer.append(frames, actions[:3], {"score": np.zeros(4)})
        with pytest.raises(ValueError):
            writer.append(frames, actions, {})
        writer.append(frames, actions, {"score": np.zeros(4, np.int32)})
    assert open_store(tmp_path / "ep.zarr").info["score"].dtype == np.int32


def test_truth_store_and_atomic_path(tmp_path):
    actions = np.arange(50, dtype=np.uint8)
    write_array_store(tmp_path / "truth.zarr", {"actions": actions}, {"kind": "truth", "fps": 20})
    truth = open_store(tmp_path / "truth.zarr", need_frames=False)
    assert truth.frames is None and len(truth) == 50
    np.testing.assert_array_equal(truth.actions, actions)
    with pytest.raises(SwagError, match="no frames"):
        open_store(tmp_path / "truth.zarr")

    with pytest.raises(KeyError):
        with atomic_store_path(tmp_path / "labels.zarr") as temp:
            zarr.open_group(temp, mode="w", zarr_format=3)
            raise KeyError("x")
    assert not any(p.name.startswith("labels") for p in tmp_path.iterdir())


def test_open_rejects_non_stores(tmp_path):
    with pytest.raises(SwagError, match="not found"):
        open_store(tmp_path / "missing.zarr")
    (tmp_path / "dir.zarr").mkdir()
    with pytest.raises(SwagError, match="dir.zarr: not a Zarr v3 store"):
        open_store(tmp_path / "dir.zarr")
    zarr.open_group(tmp_path / "plain.zarr", mode="w", zarr_format=3)
    with pytest.raises(SwagError, match="plain.zarr: not a swag store"):
        open_store(tmp_path / "plain.zarr")
    group = zarr.open_group(tmp_path / "future.zarr", mode="w", zarr_format=3)
    group.attrs["swag"] = {"format_version": 99}
    with pytest.raises(SwagError, match="future.zarr: unknown swag store format_version 99"):
        open_store(tmp_path / "future.zarr")
    (tmp_path / "broken.zarr").mkdir()
    (tmp_path / "broken.zarr" / "zarr.json").write_text("{not json")
    with pytest.raises(SwagError, match="broken.zarr: cannot open"):
        open_store(tmp_path / "broken.zarr")
    assert json.loads((tmp_path / "future.zarr" / "zarr.json").read_text())["attributes"]["swag"]["format_version"] == 99


def test_read_json_errors_name_the_file_and_what_it_should_be(tmp_path):
    good = tmp_path / "index.json"
    good.write_text('{"stores": []}')
    assert read_json(good, "dataset index") == {"stores": []}
    cases = {tmp_path / "missing.json": "dataset index not found",
             tmp_path: "cannot read dataset index",
             tmp_path / "bad.json": "dataset index is not valid JSON"}
    (tmp_path / "bad.json").write_text('{"stores": [')
    for path, message in cases.items():
        with pytest.raises(SwagError) as error:
            read_json(path, "dataset index")
        assert str(error.value).startswith(f"{path}: {message}")
        assert "\n" not in str(error.value)
