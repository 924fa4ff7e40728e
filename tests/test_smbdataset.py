"""The smbdataset importer, on a fixture in exactly the dataset's layout built from our emulator.

The fixture models the dataset's timing (see swag/ingest/smbdataset.py): a PNG shows the
first picture its own action can change, i.e. our frame j carries our action j - 3. So
importing it must give back our own recording, frames and actions, shifted by ACTION_LAG.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from PIL import Image

from swag import actions as nes_actions
from swag import games
from swag.errors import SwagError
from swag.ingest.smbdataset import ACTION_LAG, DATASET_BUTTONS, NES_PY_RGB, import_smbdataset, remap_action
from swag.recording import read_recording

STEPS = 64


def test_remap_action_follows_the_readme():
    assert set(nes_actions.to_names(int(remap_action(20)))) == {"right", "B"}  # the README's example
    for position, name in enumerate(DATASET_BUTTONS):
        assert int(remap_action(1 << (7 - position))) == nes_actions.BIT[name]
    assert sorted(remap_action(np.arange(256)).tolist()) == list(range(256))  # a permutation of bytes


def _unmap(ours: int) -> int:
    """Our byte -> the dataset's byte (test-side inverse, written independently of the importer)."""
    names = nes_actions.to_names(ours)
    return sum(1 << (7 - DATASET_BUTTONS.index(name)) for name in names)


def test_nes_py_action_lag():
    """An action first changes the picture ACTION_LAG recording frames after its own frame."""
    env = games.make("smb1", "1-1")
    env.reset()
    for _ in range(40):
        env.step(0)
    state = env.unwrapped.dump_state()
    firsts = []
    for action in (nes_actions.BIT["A"], nes_actions.BIT["right"] | nes_actions.BIT["B"]):
        pictures = []
        for first in (0, action):
            env.unwrapped.load_state(state)
            pictures.append([env.step(first if step == 0 else 0)[0] for step in range(6)])
        changed = [int((a != b).any()) for a, b in zip(*pictures)]
        firsts.append(changed.index(1) + 1)  # step 0 returns recording frame i + 1
    env.close()
    assert firsts == [ACTION_LAG, ACTION_LAG]


# An FCEUX-like palette: every NES colour a little off nes-py's, as FCEUX's own palette is.
FCEUX_LIKE = np.clip(NES_PY_RGB[np.arange(256) & 0x3F].astype(np.int16)
                     + np.random.default_rng(7).integers(-20, 21, (256, 3)), 0, 255).astype(np.uint8)
# nes-py colour (0xRRGGBB) -> a NES colour index that nes-py draws with it.
_PACKED = (NES_PY_RGB.astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], np.uint32)).tolist()
NES_INDEX = {colour: index for index, colour in reversed(list(enumerate(_PACKED)))}


def _png_with_trailer(path, frame: np.ndarray, chunks: dict[str, bytes]) -> None:
    """A PNG indexed by NES colour with an FCEUX-like palette, as FCEUX saves screenshots, plus
    tEXt chunks appended after IEND with a fake CRC, as datacollector.lua does."""
    packed = frame.astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], np.uint32)  # (H, W) 0xRRGGBB
    colours, inverse = np.unique(packed, return_inverse=True)
    indices = np.array([NES_INDEX[int(colour)] for colour in colours], np.uint8)[inverse].reshape(frame.shape[:2])
    image = Image.fromarray(indices, mode="P")
    image.putpalette(FCEUX_LIKE.ravel().tolist())
    image.save(path, format="PNG")
    with open(path, "ab") as handle:
        for key, value in chunks.items():
            body = key.encode() + b"\0" + value
            handle.write(struct.pack(">I", len(body)) + b"tEXt" + body + b"\0\0\0\0")


@pytest.fixture(scope="module")
def emulated():
    """Our own recording: frames F_0..F_STEPS, actions A_0..A_{STEPS-1}, RAM after each frame."""
    env = games.make("smb1", "1-1")
    frame, _ = env.reset(seed=0)
    rng = np.random.default_rng(1)
    frames, actions, rams = [frame], [], [env.ram.copy()]
    for _ in range(STEPS):
        action = int(rng.choice([128, 130, 129, 131, 64, 0, 16 | 128, 32]))
        frame, *_ = env.step(action)
        frames.append(frame)
        actions.append(action)
        rams.append(env.ram.copy())
    env.close()
    return frames, np.array(actions, np.uint8), rams


def _make_episode(root, emulated, name="Rafael_ab12cd34_e3_1-1_win", skip_frames=()):
    """PNG k (from 1) shows F_{k+2} and carries A_{k-1} (the dataset byte) and F_{k+2}'s RAM."""
    frames, actions, rams = emulated
    folder = root / name
    folder.mkdir(parents=True)
    user, sessid, episode, level, outcome = name.split("_")
    count = len(frames) - 3  # PNG k needs F_{k+2}
    for k in range(1, count + 1):
        if k in skip_frames:
            continue
        dataset_action = _unmap(int(actions[k - 1]))
        file = folder / f"{user}_{sessid}_{episode}_{level}_f{k}_a{dataset_action}_2021-03-04_10-20-30.{outcome}.png"
        _png_with_trailer(file, frames[k + 2], {"RAM": rams[k + 2][:2048].tobytes(),
                                                "BP1": bytes([dataset_action]), "OUTCOME": b"\x02"})
    return folder, count


def test_import_gives_back_our_recording(emulated, tmp_path):
    frames, actions, rams = emulated
    folder, count = _make_episode(tmp_path / "data", emulated)
    written = import_smbdataset(tmp_path / "data", tmp_path / "raw", progress=False)
    assert [p.name for p in written] == [folder.name]
    meta, video, got_actions, infos = read_recording(written[0])
    got_frames = list(video)
    assert meta["game"] == "smb1" and meta["level"] == "1-1"
    assert meta["demonstrator"] == "human" and meta["style"] == "Rafael"
    assert len(got_frames) == count - ACTION_LAG == len(got_actions)
    # Recording frame i = PNG i+1 = F_{i+3}; action i = PNG (i+1+3)'s action = A_{i+3}: every paired action kept,
    # each with the dataset's bits remapped to ours.
    np.testing.assert_array_equal(got_actions, actions[ACTION_LAG : ACTION_LAG + len(got_actions)])
    for i in (0, 7, len(got_frames) - 1):
        # nes-py's colours for the PNG's NES colour indices; the recording's video is lossless.
        np.testing.assert_array_equal(got_frames[i], frames[i + 3])
    # The leading actions that no saved picture precedes are kept in the metadata.
    assert meta["source"]["unpaired_leading_actions"] == actions[:ACTION_LAG].tolist()
    # Per-frame info comes from the RAM chunk, read as the emulator reads it.
    env_x = [int(ram[0x6D]) * 256 + int(ram[0x86]) for ram in rams[3 : 3 + len(infos)]]
    assert [info["x_pos"] for info in infos] == env_x


def test_source_palette_keeps_the_png_colours(emulated, tmp_path):
    frames, _, _ = emulated
    _make_episode(tmp_path / "data", emulated)
    written = import_smbdataset(tmp_path / "data", tmp_path / "raw", palette="source", progress=False)
    meta, video, _, _ = read_recording(written[0])
    first = next(iter(video))
    assert meta["source"]["palette"] == "source"
    assert not np.array_equal(first, frames[3])
    assert np.abs(first.astype(int) - frames[3]).max() <= 20  # FCEUX_LIKE is within 20 of nes-py's


def test_gap_fails_and_writes_nothing(emulated, tmp_path):
    folder, _ = _make_episode(tmp_path / "data", emulated, skip_frames=(20, 21))
    with pytest.raises(SwagError, match=r"gap in frame numbers \(missing 20-21\)") as error:
        import_smbdataset(tmp_path / "data", tmp_path / "raw", on_gap="fail", progress=False)
    assert folder.name in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())


def test_gap_skip_splits_the_episode(emulated, tmp_path):
    _, actions, _ = emulated
    folder, count = _make_episode(tmp_path / "data", emulated, skip_frames=(20, 21))
    written = import_smbdataset(tmp_path / "data", tmp_path / "raw", on_gap="skip", progress=False)
    assert [p.name for p in written] == [f"{folder.name}_s0", f"{folder.name}_s1"]
    first = read_recording(written[0])
    second = read_recording(written[1])
    assert first[0]["frames"] == 19 - ACTION_LAG and second[0]["frames"] == count - 21 - ACTION_LAG
    np.testing.assert_array_equal(first[2], actions[3 : 3 + 19 - ACTION_LAG])
    # The second run starts at PNG 22 = F_24, whose action is A_24.
    np.testing.assert_array_equal(second[2], actions[24 : 24 + len(second[2])])
    assert second[0]["source"]["first_frame"] == 22


def test_rejects_malformed_layouts(emulated, tmp_path):
    with pytest.raises(SwagError, match="no smbdataset episode folders"):
        import_smbdataset(tmp_path, tmp_path / "raw", progress=False)
    folder, _ = _make_episode(tmp_path / "data", emulated)
    bad = folder / "Rafael_ab12cd34_e3_1-1_f9999_aXX_2021-03-04_10-20-30.win.png"
    bad.write_bytes(b"")
    with pytest.raises(SwagError, match="does not follow the smbdataset pattern"):
        import_smbdataset(tmp_path / "data", tmp_path / "raw", progress=False)
    with pytest.raises(SwagError, match="on-gap"):
        import_smbdataset(tmp_path / "data", tmp_path / "raw", on_gap="maybe", progress=False)


def test_cli_gap_error_is_one_line_and_skip_works(emulated, tmp_path):
    import subprocess
    import sys

    folder, _ = _make_episode(tmp_path / "data", emulated, skip_frames=(30,))
    command = [sys.executable, "-m", "swag", "import-smbdataset", str(tmp_path / "data"), str(tmp_path / "raw")]
    failed = subprocess.run(command, capture_output=True, text=True)
    assert failed.returncode == 1
    assert failed.stderr.startswith("swag: error: ") and failed.stderr.count("\n") == 1
    assert "missing 30" in failed.stderr
    done = subprocess.run([*command, "--on-gap", "skip"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in (tmp_path / "raw").glob("*.json")) == [
        f"{folder.name}_s0.json", f"{folder.name}_s1.json"]
