import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from swag import actions as nes_actions
from swag.convert import convert_folder, convert_recording
from swag.errors import SwagError
from swag.index import build_index, write_index
from swag.recording import json_safe_info, paths, record_episode
from swag.store import StoreWriter, open_store

SWAG = str(Path(sys.executable).with_name("swag"))
FRAMES = 200  # not a multiple of 3: the last partial 20 fps step is dropped


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A short real SMB episode plus the frames, actions and x positions handed to the writer."""
    prefix = tmp_path_factory.mktemp("raw") / "1-1_jumpy_002"
    kept_frames, kept_actions, kept_x = [], [], []

    def keep(frame, action, info):
        kept_frames.append(frame.copy())
        kept_actions.append(action)
        kept_x.append(json_safe_info(info)["x_pos"])

    record_episode("smb1", "1-1", "jumpy", 2, FRAMES, prefix, progress_bar=False, on_frame=keep)
    return prefix, np.stack(kept_frames), np.array(kept_actions, np.uint8), np.array(kept_x)


def copy_recording(prefix, folder, name="ep"):
    folder.mkdir(parents=True, exist_ok=True)
    for source, target in zip(paths(prefix), paths(folder / name)):
        shutil.copy(source, target)
    return folder / name


def test_full_resolution_round_trip(recorded, tmp_path):
    prefix, frames, actions, x_pos = recorded
    attrs = convert_recording(prefix, tmp_path / "ep.zarr", height=240, width=256, fps=60, progress_bar=False)
    store = open_store(tmp_path / "ep.zarr")
    assert len(store) == FRAMES and attrs["frames"] == FRAMES
    np.testing.assert_array_equal(store.actions, actions)
    np.testing.assert_array_equal(store.frames[:], frames)  # lossless video: exact
    np.testing.assert_array_equal(store.info["x_pos"][:], x_pos)
    assert store.info["flag_get"].dtype == np.bool_ and store.info["x_pos"].dtype == np.int64
    provenance = store.attrs["provenance"]
    assert provenance["seed"] == 2 and provenance["rom_sha1"] and len(provenance["source_files"]) == 3
    assert all(len(entry["sha256"]) == 64 for entry in provenance["source_files"].values())
    assert store.attrs["style"] == "jumpy" and store.attrs["source_fps"] == 60 and store.attrs["kind"] == "recording"


def test_resampled_conversion_and_truth_store(recorded, tmp_path):
    prefix, frames, actions, x_pos = recorded
    spans = nes_actions.frame_spans(FRAMES, 60, 20)
    expected_actions = nes_actions.resample(actions, 60, 20)
    expected_frames = np.stack([cv2.resize(frames[start], (64, 60), interpolation=cv2.INTER_AREA)
                                for start in spans[:, 0]])

    convert_recording(prefix, tmp_path / "ep.zarr", height=60, width=64, fps=20, chunk_frames=16,
                      progress_bar=False)
    store = open_store(tmp_path / "ep.zarr")
    assert len(store) == FRAMES // 3 and store.fps == 20 and store.frames.chunks == (16, 60, 64, 3)
    np.testing.assert_array_equal(store.actions, expected_actions)
    np.testing.assert_array_equal(store.frames[:], expected_frames)
    np.testing.assert_array_equal(store.info["x_pos"][:], x_pos[spans[:, 0]])

    # vpt-style: the training store has no actions, the truth store keeps them
    convert_recording(prefix, tmp_path / "hidden.zarr", height=60, width=64, fps=20,
                      truth_path=tmp_path / "truth.zarr", progress_bar=False)
    hidden = open_store(tmp_path / "hidden.zarr")
    truth = open_store(tmp_path / "truth.zarr", need_frames=False)
    assert hidden.actions is None and hidden.attrs["has_actions"] is False
    assert hidden.attrs["truth"] == str(tmp_path / "truth.zarr")
    np.testing.assert_array_equal(hidden.frames[:], expected_frames)
    np.testing.assert_array_equal(truth.actions, expected_actions)
    assert truth.attrs["kind"] == "truth" and truth.attrs["fps"] == 20


def test_convert_folder(recorded, tmp_path):
    prefix = recorded[0]
    raw = tmp_path / "raw"
    copy_recording(prefix, raw, "a")
    copy_recording(prefix, raw, "b")
    (raw / "notes.json").write_text("{}")  # not a recording: no mp4/jsonl beside it
    stores = convert_folder(raw, tmp_path / "zarr", height=30, width=32, fps=30, progress_bar=False)
    assert [s.name for s in stores] == ["a.zarr", "b.zarr"]
    assert len(open_store(stores[1])) == FRAMES // 2


def no_output_left(folder):
    return [p.name for p in folder.iterdir() if p.suffix not in (".mp4", ".jsonl", ".json")] == []


def test_frame_count_mismatch(recorded, tmp_path):
    ep = copy_recording(recorded[0], tmp_path)
    video, jsonl, meta_path = paths(ep)
    # a recording tool that keeps no hashes, whose jsonl lost its last line
    meta = json.loads(meta_path.read_text())
    del meta["sha256"]
    lines = jsonl.read_text().splitlines(keepends=True)
    jsonl.write_text("".join(lines[:-1]))
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SwagError, match=r"ep\.jsonl: 199 frames, but .*ep\.json says 200"):
        convert_recording(ep, tmp_path / "out.zarr", height=60, width=64, fps=20, progress_bar=False)
    meta["frames"] = FRAMES - 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SwagError, match=r"ep\.mp4: video has more frames than the 199 in .*ep\.jsonl"):
        convert_recording(ep, tmp_path / "out.zarr", height=60, width=64, fps=20, progress_bar=False)
    assert no_output_left(tmp_path)


def test_damaged_videos(recorded, tmp_path):
    ep = copy_recording(recorded[0], tmp_path)
    video = paths(ep)[0]
    data = video.read_bytes()
    # a few flipped bytes H.264 would conceal: caught by the sha256 in the metadata
    damaged = bytearray(data)
    damaged[len(data) // 2: len(data) // 2 + 8] = bytes(8)
    video.write_bytes(bytes(damaged))
    with pytest.raises(SwagError, match=r"ep\.mp4: damaged or changed since recording"):
        convert_recording(ep, tmp_path / "out.zarr", height=60, width=64, fps=20, progress_bar=False)

    # without hashes, the decoder itself must refuse a truncated or garbled file
    meta_path = paths(ep)[2]
    meta = json.loads(meta_path.read_text())
    del meta["sha256"]
    meta_path.write_text(json.dumps(meta))
    video.write_bytes(data[: len(data) // 2])
    with pytest.raises(SwagError, match=r"ep\.mp4: cannot open video"):
        convert_recording(ep, tmp_path / "out.zarr", height=60, width=64, fps=20, progress_bar=False)
    garbled = bytearray(data)
    garbled[len(data) // 3: len(data) // 3 + 4000] = np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes()
    video.write_bytes(bytes(garbled))
    with pytest.raises(SwagError, match=r"ep\.mp4: (video is damaged|video has \d+ frames)"):
        convert_recording(ep, tmp_path / "out.zarr", height=60, width=64, fps=20,
                          truth_path=tmp_path / "truth.zarr", progress_bar=False)
    assert no_output_left(tmp_path)

    # the same through the command line: exit 1 and a single line naming the file
    video.write_bytes(data[: len(data) // 2])
    result = subprocess.run([SWAG, "convert", str(ep), str(tmp_path / "out.zarr")], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "300"})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"swag: error: {video}: cannot open video")
    assert no_output_left(tmp_path)


def test_empty_folder_and_missing_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SwagError, match="empty: no recordings"):
        convert_folder(tmp_path / "empty", tmp_path / "zarr", height=60, width=64, fps=20)
    with pytest.raises(SwagError, match=r"nothing\.json: recording file not found"):
        convert_recording(tmp_path / "nothing", tmp_path / "out.zarr", height=60, width=64, fps=20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


# --- the dataset index ---------------------------------------------------------------------------


def tiny_store(path, style, actions=None, fps=20, game="smb1"):
    n = 6 if actions is None else len(actions)
    with StoreWriter(path, height=4, width=4, fps=fps, attrs={"game": game, "level": "1-1", "style": style},
                     has_actions=actions is not None) as writer:
        writer.append(np.zeros((n, 4, 4, 3), np.uint8), actions)
    return str(path)


def test_index_split_is_stable_when_recordings_are_added(tmp_path):
    styles = ("cautious", "speedy", "jumpy")
    first = [tiny_store(tmp_path / f"ep{i:02d}.zarr", styles[i % 3]) for i in range(30)]
    index = build_index("idm", first, 0.25, ["jumpy"])
    splits = {entry["path"]: entry["split"] for entry in index["stores"]}
    assert all(splits[p] == "unseen_style" for i, p in enumerate(first) if styles[i % 3] == "jumpy")
    seen = [splits[p] for i, p in enumerate(first) if styles[i % 3] != "jumpy"]
    assert 1 <= seen.count("test") < len(seen) // 2  # ~25% of 20

    more = first + [tiny_store(tmp_path / f"new{i:02d}.zarr", styles[i % 3]) for i in range(10)]
    bigger = build_index("idm", list(reversed(more)), 0.25, ["jumpy"])
    assert {e["path"]: e["split"] for e in bigger["stores"] if e["path"] in splits} == splits
    assert bigger["summary"]["stores"] == 40 and bigger["summary"]["frames"] == 240
    assert sum(bigger["summary"]["frames_per_split"].values()) == 240

    write_index(bigger, tmp_path / "index" / "idm.json")
    assert json.loads((tmp_path / "index" / "idm.json").read_text()) == bigger


def test_train_only_styles_train_and_leave_the_other_splits_as_they_were(tmp_path):
    styles = ("cautious", "speedy", "explorer")
    paths_ = [tiny_store(tmp_path / f"ep{i:02d}.zarr", styles[i % 3]) for i in range(30)]
    without = {e["path"]: e["split"] for e in build_index("idm", paths_, 0.25, [])["stores"]}
    index = build_index("idm", paths_, 0.25, [], ["explorer"])
    splits = {e["path"]: e["split"] for e in index["stores"]}
    explorer = [p for i, p in enumerate(paths_) if styles[i % 3] == "explorer"]
    assert "test" in [without[p] for p in explorer]  # the hash alone would test some of them
    assert all(splits[p] == "train" for p in explorer)
    for path, split in without.items():
        assert path in explorer or splits[path] == split
    assert index["train_only_styles"] == ["explorer"]
    # a dataset whose testable part is one recording still gets a test split, never a train-only one
    few = [tiny_store(tmp_path / "c.zarr", "cautious"), *explorer[:3]]
    assert [e["split"] for e in build_index("idm", few, 0.01, [], ["explorer"])["stores"]
            if e["style"] == "cautious"] == ["test"]
    with pytest.raises(SwagError, match="'explorer' is both held out and train-only"):
        build_index("idm", paths_, 0.25, ["explorer"], ["explorer"])


def test_index_small_datasets_get_train_and_test(tmp_path):
    for n in (2, 3):
        paths_ = [tiny_store(tmp_path / f"n{n}_{i}.zarr", "cautious") for i in range(n)]
        splits = [e["split"] for e in build_index("idm", paths_, 0.2, [])["stores"]]
        assert "train" in splits and "test" in splits
    single = build_index("idm", [tiny_store(tmp_path / "one.zarr", "speedy")], 0.9, [])
    assert [e["split"] for e in single["stores"]] == ["train"]


def test_index_summary_and_errors(tmp_path):
    a = tiny_store(tmp_path / "a.zarr", "cautious", np.array([1, 3, 128, 129], np.uint8))
    b = tiny_store(tmp_path / "b.zarr", "speedy", np.array([2, 2, 2], np.uint8))
    c = tiny_store(tmp_path / "c.zarr", "jumpy")  # no actions: not counted
    index = build_index("idm", [a, b, c], 0.0, ["jumpy"])
    summary = index["summary"]
    assert summary["labelled_frames"] == 7
    assert summary["button_presses"] == {"A": 3, "B": 4, "select": 0, "start": 0, "up": 0, "down": 0,
                                         "left": 0, "right": 2}
    assert summary["frames_per_style"] == {"cautious": 4, "jumpy": 6, "speedy": 3}
    assert index["fps"] == 20 and index["height"] == 4

    odd = tiny_store(tmp_path / "odd.zarr", "cautious", fps=30)
    with pytest.raises(SwagError, match=r"odd\.zarr: 4x4 at 30 fps differs from"):
        build_index("idm", [a, odd], 0.2, [])
    with pytest.raises(SwagError, match="listed twice"):
        build_index("idm", [a, a], 0.2, [])
    with pytest.raises(SwagError, match=r"missing\.zarr: store not found"):
        build_index("idm", [a, str(tmp_path / "missing.zarr")], 0.2, [])


def test_info_types_follow_every_line(tmp_path):
    from swag.convert import _scan_jsonl

    lines = [{"frame": 0, "action": 1, "info": {"a": 1, "b": True, "c": 1.5, "s": "x", "e": 1, "big": 1, "g": True}},
             {"frame": 1, "action": 2, "info": {"a": 2, "b": False, "c": 2, "e": 2.5, "big": 2**70, "g": 3}}]
    (tmp_path / "ep.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    actions, dtypes = _scan_jsonl(tmp_path / "ep.jsonl")
    np.testing.assert_array_equal(actions, [1, 2])
    # strings and keys missing on a line are left out; mixed numbers widen
    assert dtypes == {"a": np.int64, "b": np.bool_, "big": np.float64, "c": np.float64, "e": np.float64,
                      "g": np.int64}
    (tmp_path / "bad.jsonl").write_text('{"frame": 0, "action": 1}\n{"frame": 5, "action": 1}\n')
    with pytest.raises(SwagError, match=r"bad\.jsonl: line 2 has frame 5, expected 1"):
        _scan_jsonl(tmp_path / "bad.jsonl")
