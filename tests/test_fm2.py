"""FCEUX .fm2 import: parsing, ROM checksums, replay from power-on, and every malformed input."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys

import numpy as np
import pytest
from nes_py import NESEnv

from swag import actions as nes_actions
from swag import games
from swag.errors import SwagError
from swag.ingest.fm2 import PAD_ORDER, fceux_rom_checksum, import_fm2, known_checksums, parse_fm2
from swag.recording import read_recording

SMB1_CHECKSUM = next(value for value, name in known_checksums().items() if name == "smb1")


def _header(**changes) -> str:
    fields = {"version": "3", "emuVersion": "22020", "rerecordCount": "5", "palFlag": "0",
              "romFilename": "Super Mario Bros.", "romChecksum": SMB1_CHECKSUM,
              "guid": "452DE2C3-EF43-2FA9-77AC-0677FC51543B", "fourscore": "0", "port0": "1", "port1": "0",
              "port2": "0", "comment": "author swag tests"}
    fields.update(changes)
    return "".join(f"{key} {value}\n" for key, value in fields.items() if value is not None)


def _pad(action: int) -> str:
    """Our byte -> an FM2 gamepad field, written independently of the parser."""
    letters = {"right": "R", "left": "L", "down": "D", "up": "U", "start": "T", "select": "S", "B": "B", "A": "A"}
    names = set(nes_actions.to_names(action))
    return "".join(letters[name] if name in names else "." for name in PAD_ORDER)


def _movie(actions, commands=None, port1=False) -> str:
    commands = commands or {}
    lines = [f"|{commands.get(i, 0)}|{_pad(a)}|{'........' if port1 else ''}||" for i, a in enumerate(actions)]
    return "\n".join(lines) + "\n"


def test_checksum_is_fceux_md5_of_prg_and_chr_without_header():
    rom = games.get("smb1").rom_path.read_bytes()
    digest = hashlib.md5(rom[16 : 16 + 2 * 16384 + 8192]).digest()  # NROM: 2 PRG banks, 1 CHR bank
    assert fceux_rom_checksum(rom) == "base64:" + base64.b64encode(digest).decode()
    # The iNES header is not hashed; a PRG byte is.
    assert fceux_rom_checksum(rom[:10] + b"\x07" + rom[11:]) == fceux_rom_checksum(rom)
    assert fceux_rom_checksum(rom[:100] + bytes([rom[100] ^ 1]) + rom[101:]) != fceux_rom_checksum(rom)
    assert set(known_checksums().values()) >= {"smb1", "smb-lost-levels", "smb3", "zelda"}


def test_parse_maps_pad_letters_to_our_bits(tmp_path):
    path = tmp_path / "pads.fm2"
    path.write_text(_header(port1="1") + "|0|R......A|.L......||\n|1|...UT.B.|........||\n|0| . . . .|........||\n")
    movie = parse_fm2(path)
    assert movie.game == "smb1"
    assert nes_actions.to_names(int(movie.actions[0])) == ["A", "right"]
    assert set(nes_actions.to_names(int(movie.actions[1]))) == {"up", "start", "B"}
    assert movie.actions[2] == 0  # '.' and ' ' are released
    assert movie.player2.tolist() == [nes_actions.BIT["left"], 0, 0]
    assert movie.commands.tolist() == [0, 1, 0]


def test_replay_keeps_every_action_and_matches_the_emulator(tmp_path):
    rng = np.random.default_rng(0)
    actions = [0] * 30 + [nes_actions.BIT["start"]] * 4 + [0] * 40
    actions += [int(rng.choice([128, 130, 129, 131, 0, 64])) for _ in range(60)]
    reset_at = 110
    path = tmp_path / "run.fm2"
    path.write_text(_header() + _movie(actions, {reset_at: 1}))
    prefix = tmp_path / "out" / "run"
    import_fm2(path, prefix, progress=False)
    meta, frames, got_actions, infos = read_recording(prefix)
    frames = list(frames)
    assert meta["game"] == "smb1" and meta["source"]["kind"] == "fm2" and meta["source"]["resets"] == 1
    assert len(frames) == len(actions)
    np.testing.assert_array_equal(got_actions, np.array(actions, np.uint8))
    assert [info["fm2_command"] for info in infos].count(1) == 1 and infos[reset_at]["fm2_command"] == 1
    # The same inputs applied by hand to a plain emulator from power-on give the same pictures.
    env = NESEnv(str(games.get("smb1").rom_path))
    screen, _ = env.reset()
    for i, action in enumerate(actions):
        if i in (0, 60, reset_at - 1):
            np.testing.assert_array_equal(frames[i], screen)
        if i == reset_at:
            env.reset()
        screen = env.step(action)[0]
    env.close()
    assert infos[reset_at + 1]["x_pos"] >= 0  # SMB info read from RAM on every frame


def _rejects(tmp_path, text, message, line=None):
    path = tmp_path / "bad.fm2"
    path.write_text(text)
    prefix = tmp_path / "out" / "bad"
    with pytest.raises(SwagError, match=message) as error:
        import_fm2(path, prefix, progress=False)
    text = str(error.value)
    assert "\n" not in text and str(path) in text
    if line is not None:
        assert f"{path}:{line}:" in text
    assert not list(tmp_path.glob("out/bad*"))


def test_rejects_non_v3(tmp_path):
    _rejects(tmp_path, _header(version="2") + "|0|........|||\n", "version '2' is not supported")


def test_rejects_missing_version_line(tmp_path):
    text = _header().replace("version 3\n", "") + "|0|........|||\n"
    _rejects(tmp_path, text, "must begin with 'version 3'", line=1)


def test_rejects_bad_header_line(tmp_path):
    text = _header().replace("guid ", "guid\t= ") + "|0|........|||\n"
    _rejects(tmp_path, text, "bad header line", line=7)


def test_rejects_missing_required_key(tmp_path):
    _rejects(tmp_path, _header(guid=None) + "|0|........|||\n", "lacks the required key 'guid'")


def test_rejects_unknown_rom(tmp_path):
    _rejects(tmp_path, _header(romChecksum="base64:jjYwGG411HcjG/j9UOVM3Q==") + "|0|........|||\n",
             "matches no ROM we have")


def test_rejects_savestate_movie(tmp_path):
    _rejects(tmp_path, _header(savestate="base64:AAAA") + "|0|........|||\n", "savestate")


def test_rejects_wrong_field_count(tmp_path):
    text = _header() + "|0|........|||\n|0|R.......||\n|0|........|||\n"
    _rejects(tmp_path, text, "input line has 3 fields, expected 4", line=14)


def test_rejects_bad_pad_field_and_commands(tmp_path):
    _rejects(tmp_path, _header() + "|0|R......|||\n", "must be 8 characters", line=13)
    _rejects(tmp_path, _header() + "|4|........|||\n", "FDS/VS", line=13)
    _rejects(tmp_path, _header() + "|x|........|||\n", "is not a number", line=13)


def test_rejects_empty_and_binary_movies(tmp_path):
    _rejects(tmp_path, _header(), "no input lines")
    _rejects(tmp_path, _header(binary="1") + "|0|........|||\n", "binary")
    _rejects(tmp_path, "", "empty movie")


def test_cli_error_is_one_line(tmp_path):
    path = tmp_path / "bad.fm2"
    path.write_text(_header() + "|0|R.......||\n")
    result = subprocess.run([sys.executable, "-m", "swag", "import-fm2", str(path), str(tmp_path / "x")],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith(f"swag: error: {path}:13: ") and result.stderr.count("\n") == 1
    assert not list(tmp_path.glob("x*"))


def test_imported_movie_converts_to_a_store(tmp_path):
    from swag.convert import convert_recording
    from swag.store import open_store

    actions = [0] * 20 + [nes_actions.BIT["right"]] * 40
    path = tmp_path / "short.fm2"
    path.write_text(_header() + _movie(actions))
    import_fm2(path, tmp_path / "rec", progress=False)
    attrs = convert_recording(tmp_path / "rec", tmp_path / "rec.zarr", height=30, width=32, fps=20,
                              progress_bar=False)
    store = open_store(tmp_path / "rec.zarr")
    assert attrs["game"] == "smb1" and len(store) == 20
    np.testing.assert_array_equal(store.actions, nes_actions.resample(np.array(actions, np.uint8), 60, 20))
    assert "x_pos" in store.info and "fm2_command" in store.info
