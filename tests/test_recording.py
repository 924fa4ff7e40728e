import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from swag import games
from swag.errors import SwagError
from swag.recording import (RecordingWriter, json_safe_info, paths, read_meta, read_recording,
                            record_episode)

SWAG = str(Path(sys.executable).with_name("swag"))
FRAMES = 180


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A short real SMB episode, with copies of what was handed to the writer at the time."""
    prefix = tmp_path_factory.mktemp("raw") / "1-1_speedy_004"
    kept_frames, kept_actions, kept_infos = [], [], []

    def keep(frame, action, info):
        kept_frames.append(frame.copy())
        kept_actions.append(action)
        kept_infos.append(json_safe_info(info))

    meta = record_episode("smb1", "1-1", "speedy", 4, FRAMES, prefix, progress_bar=False, on_frame=keep)
    return prefix, meta, np.stack(kept_frames), np.array(kept_actions, np.uint8), kept_infos


def test_round_trip_is_lossless(recorded):
    prefix, meta, frames, actions, infos = recorded
    assert sorted(p.name for p in prefix.parent.iterdir()) == [prefix.name + s for s in (".json", ".jsonl", ".mp4")]
    read_meta_, stream, read_actions, read_infos = read_recording(prefix)
    decoded = np.stack(list(stream))
    assert decoded.shape == (FRAMES, 240, 256, 3)
    # libx264rgb at crf 0 is lossless: exactly the emulator's pixels
    np.testing.assert_array_equal(decoded, frames)
    np.testing.assert_array_equal(read_actions, actions)
    assert read_infos == infos
    for key, value in {"format": "swag-recording", "game": "smb1", "level": "1-1", "style": "speedy", "seed": 4,
                       "fps": 60, "width": 256, "height": 240, "frames": FRAMES,
                       "rom_sha1": games.get("smb1").rom_sha1}.items():
        assert read_meta_[key] == value, key
    assert read_meta_["demonstrator"].startswith("smb")
    assert meta["progress"]["x_max"] > 40  # the demonstrator moved Mario


def test_frame_i_is_the_screen_before_action_i(recorded):
    """Replaying the recorded actions from reset reproduces every recorded frame, one step later."""
    prefix, meta, frames, actions, infos = recorded
    env = games.make("smb1", "1-1")
    frame, info = env.reset(seed=4)
    np.testing.assert_array_equal(frame, frames[0])
    for i in range(FRAMES - 1):
        frame, *_ = env.step(int(actions[i]))
        assert np.array_equal(frame, frames[i + 1]), f"frame {i + 1} differs"
    env.close()


def test_jsonl_lines(recorded):
    prefix, meta, frames, actions, infos = recorded
    lines = paths(prefix)[1].read_text().splitlines()
    assert len(lines) == FRAMES
    line = json.loads(lines[10])
    assert line["frame"] == 10 and line["action"] == actions[10]
    assert set(line["buttons"]) == {b for i, b in enumerate(("A", "B", "select", "start", "up", "down", "left", "right"))
                                    if actions[10] >> i & 1}
    assert isinstance(line["info"]["x_pos"], int) and "progress.x_max" in line["info"]
    assert "reward_components" not in line["info"]


def test_json_safe_info():
    info = {"x": np.uint8(7), "h": np.float64(2.5), "t": (1, np.int64(2)), "flag": np.bool_(True),
            "stats": {"T": np.int32(3)}, "reward_components": {"a": 1.0}, "name": "small", "none": None}
    safe = json_safe_info(info)
    assert safe == {"x": 7, "h": 2.5, "t": [1, 2], "flag": True, "stats.T": 3, "name": "small", "none": None}
    assert type(safe["x"]) is int and type(safe["flag"]) is bool
    json.dumps(safe)


def test_failed_recording_leaves_nothing(tmp_path):
    prefix = tmp_path / "ep"
    with pytest.raises(RuntimeError):
        with RecordingWriter(prefix, {"game": "smb1"}) as writer:
            writer.write(np.zeros((240, 256, 3), np.uint8), 0, {})
            raise RuntimeError("emulator crashed")
    with pytest.raises(ValueError):
        with RecordingWriter(prefix, {"game": "smb1"}) as writer:
            writer.write(np.zeros((240, 255, 3), np.uint8), 0, {})
    assert list(tmp_path.iterdir()) == []


def test_altered_rom_is_refused(tmp_path, monkeypatch):
    altered = dataclasses.replace(games.GAMES["smb1"], rom_sha1="0" * 40)
    monkeypatch.setitem(games.GAMES, "smb1", altered)
    with pytest.raises(SwagError, match=r"super-mario-bros\.nes: ROM for smb1 has SHA-1"):
        record_episode("smb1", "1-1", "cautious", 0, 10, tmp_path / "ep", progress_bar=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_one_line_errors(tmp_path):
    with pytest.raises(SwagError, match="no level"):
        record_episode("smb1", "9-9", "cautious", 0, 10, tmp_path / "ep", progress_bar=False)
    with pytest.raises(SwagError, match="style"):
        record_episode("smb1", "1-1", "sleepy", 0, 10, tmp_path / "ep", progress_bar=False)
    # through the real command: exit code 1, one line on stderr, nothing written
    result = subprocess.run([SWAG, "record", "--game", "smb9", "--level", "1-1", "--out", str(tmp_path / "ep")],
                            capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["swag: error: unknown game 'smb9'; known games: "
                                                  + ", ".join(games.GAMES)]
    assert list(tmp_path.iterdir()) == []


def test_read_meta_errors(tmp_path, recorded):
    prefix = recorded[0]
    with pytest.raises(SwagError, match="missing.json: recording file not found"):
        read_meta(tmp_path / "missing")
    for suffix in (".mp4", ".jsonl"):
        (tmp_path / ("ep" + suffix)).write_bytes(paths(prefix)[0 if suffix == ".mp4" else 1].read_bytes())
    (tmp_path / "ep.json").write_text('{"format": "something-else"}')
    with pytest.raises(SwagError, match="ep.json: not a swag recording"):
        read_meta(tmp_path / "ep")


def test_encoder_failure_is_raised_and_leaves_nothing(tmp_path):
    class BrokenStream:
        def encode(self, frame=None):
            raise OSError("disk full")

    with pytest.raises(RuntimeError, match="ep.mp4: video encoder failed") as failure:
        with RecordingWriter(tmp_path / "ep", {"game": "smb1"}, queue_frames=4) as writer:
            writer._stream = BrokenStream()
            for _ in range(50):  # far more than the queue holds: the writer must not hang
                writer.write(np.zeros((240, 256, 3), np.uint8), 0, {})
    assert isinstance(failure.value.__cause__, OSError)
    assert list(tmp_path.iterdir()) == []
