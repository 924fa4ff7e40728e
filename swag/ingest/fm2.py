"""FCEUX `.fm2` movies -> raw recordings, replayed in nes-py from power-on.

An FM2 v3 file is text: header lines `key value` (`version 3` first), then one input
line per frame, `|commands|port0|port1|port2|`. A gamepad field is 8 characters in the
order R L D U T S B A (T = start, S = select); `.` or a space means released, anything
else pressed. `commands` is a decimal bit field: 1 soft reset, 2 power cycle (4, 8 FDS,
16 VS coin are not supported).

The ROM is identified by `romChecksum`, which FCEUX writes as `base64:` + the base64 of
the MD5 of the cartridge's PRG-ROM then CHR-ROM, without the iNES header or trainer (its
`ines.cpp`: `md5_update(ROM, ROM_size << 14)`, then `md5_update(VROM, VROM_size << 13)`,
with PRG rounded up to a power of two 16 KiB banks and the padding 0xFF). We accept a
movie only for a ROM of our registry whose checksum we compute the same way.

Replay uses the plain `nes_py.NESEnv` (the gym-super-mario-bros environment skips the
title screen, a movie starts at power-on). Input line i is the pad state held while the
emulator computes frame i+1, so recording frame i is the screen shown before line i is
applied, as docs/design.md asks. A soft reset is nes-py's `reset()` (CPU/PPU reset, RAM
kept); a power cycle is a fresh emulator. FCEUX and nes-py differ in power-on RAM and
timing details, so a long movie made in FCEUX may desync here: the actions are exact,
the pictures are nes-py's.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from swag import actions as nes_actions
from swag import games
from swag.errors import SwagError

log = logging.getLogger(__name__)

# FM2 pad field characters, left to right, and the NES button each one stands for.
PAD_ORDER = ("right", "left", "down", "up", "start", "select", "B", "A")
_PAD_BITS = tuple(nes_actions.BIT[name] for name in PAD_ORDER)

COMMAND_SOFT_RESET = 1
COMMAND_POWER = 2
_SUPPORTED_COMMANDS = COMMAND_SOFT_RESET | COMMAND_POWER

REQUIRED_KEYS = ("romFilename", "guid", "romChecksum", "port2")
_HEADER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)(?: (.*))?$")


@dataclass
class Movie:
    """A parsed FM2 movie: its header and one command byte and pad byte per frame."""

    path: Path
    header: dict[str, str]
    game: str  # registry name of the ROM the checksum names
    commands: np.ndarray  # uint8 (T,)
    actions: np.ndarray  # uint8 (T,) player 1, our bit order
    player2: np.ndarray | None = None  # uint8 (T,) when port1 holds a gamepad
    first_input_line: int = 0  # 1-based line number of input line 0, for messages

    def __len__(self) -> int:
        return len(self.actions)


# --- ROM checksums -------------------------------------------------------------------------------


def fceux_rom_checksum(rom: bytes) -> str:
    """The `romChecksum` value FCEUX writes for an iNES image: `base64:` + base64(MD5(PRG + CHR))."""
    if len(rom) < 16 or rom[:4] != b"NES\x1a":
        raise ValueError("not an iNES image")
    prg_banks, chr_banks, flags6 = rom[4], rom[5], rom[6]
    start = 16 + (512 if flags6 & 4 else 0)
    prg = rom[start : start + prg_banks * 16384]
    chr_rom = rom[start + prg_banks * 16384 : start + prg_banks * 16384 + chr_banks * 8192]
    rounded = 1
    while rounded < prg_banks:
        rounded *= 2
    prg = prg + b"\xff" * ((rounded - prg_banks) * 16384)  # FCEUX hashes its power-of-two PRG buffer
    digest = hashlib.md5(prg + chr_rom).digest()
    return "base64:" + base64.b64encode(digest).decode("ascii")


@cache
def known_checksums() -> dict[str, str]:
    """romChecksum -> the first registry game that uses that ROM (Tetris A and B share one)."""
    table: dict[str, str] = {}
    for spec in games.GAMES.values():
        path = spec.rom_path
        if path.is_file():
            table.setdefault(fceux_rom_checksum(path.read_bytes()), spec.name)
    return table


# --- parsing -------------------------------------------------------------------------------------


def _pad_byte(text: str, where: str) -> int:
    if len(text) != 8:
        raise SwagError(f"{where}: gamepad field {text!r} must be 8 characters (R L D U T S B A)")
    action = 0
    for char, bit in zip(text, _PAD_BITS):
        if char not in ". ":
            action |= bit
    return action


def parse_fm2(path: str | Path, *, force_game: str | None = None) -> Movie:
    """Parse and check an FM2 v3 movie; SwagError naming the file and line on any problem.

    `force_game` replays a movie whose romChecksum matches none of our ROMs on that
    registry game anyway (another dump of the same game; it may desync).
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise SwagError(f"{path}: no such movie file") from None
    except UnicodeDecodeError:
        raise SwagError(f"{path}: not a text FM2 movie (binary FM2 input is not supported)") from None
    lines = text.splitlines()

    header: dict[str, str] = {}
    number = 0
    while number < len(lines) and not lines[number].startswith("|"):
        line = lines[number].rstrip("\r")
        number += 1
        if not line.strip():
            continue
        match = _HEADER_LINE.match(line)
        if not match:
            raise SwagError(f"{path}:{number}: bad header line {line[:60]!r} (expected 'key value')")
        key, value = match.group(1), (match.group(2) or "").strip()
        if not header and (key != "version"):
            raise SwagError(f"{path}:{number}: an FM2 movie must begin with 'version 3', found {line[:60]!r}")
        header[key] = value
    if not header:
        raise SwagError(f"{path}: empty movie (no 'version 3' header)")
    if header["version"] != "3":
        raise SwagError(f"{path}:1: FM2 version {header['version']!r} is not supported (only version 3)")
    for key in REQUIRED_KEYS:
        if key not in header:
            raise SwagError(f"{path}: header lacks the required key {key!r}")
    if header.get("binary", "0") not in ("0", "false"):
        raise SwagError(f"{path}: binary FM2 input is not supported (save the movie as text)")
    if header.get("savestate", ""):
        raise SwagError(f"{path}: the movie starts from a savestate; only power-on movies are supported")
    if header.get("palFlag", "0") not in ("0", "false"):
        raise SwagError(f"{path}: PAL movie; nes-py emulates NTSC only")
    if header.get("FDS", "0") not in ("0", "false"):
        raise SwagError(f"{path}: Famicom Disk System movies are not supported")

    checksum = header["romChecksum"]
    if not checksum.startswith("base64:"):
        raise SwagError(f"{path}: romChecksum {checksum!r} is not of the form base64:<md5>")
    game = known_checksums().get(checksum)
    if game is None and force_game is not None:
        game = games.get(force_game).name
        log.warning("%s: romChecksum %s is not our %s ROM's; replaying anyway, it may desync", path, checksum, game)
    if game is None:
        raise SwagError(
            f"{path}: romChecksum {checksum} (romFilename {header['romFilename']!r}) matches no ROM we have; "
            f"known: {', '.join(f'{name} {value}' for value, name in known_checksums().items())}"
        )

    fourscore = header.get("fourscore", "0") not in ("0", "false")
    ports = [header.get("port0", "1"), header.get("port1", "0")]
    if header["port2"] != "0":
        raise SwagError(f"{path}: port2 {header['port2']!r} (a Famicom expansion device) is not supported")
    for index, port in enumerate(ports):
        if port not in ("0", "1"):
            raise SwagError(f"{path}: port{index} {port!r} is not supported (only 0 none or 1 gamepad)")
    if not fourscore and ports[0] != "1":
        raise SwagError(f"{path}: port0 has no gamepad, so the movie has no player-1 actions")
    pads = 4 if fourscore else 2
    expected_fields = 1 + pads + 1  # commands, the pads, the port2 device

    first_input_line = number + 1
    commands, player1, player2 = [], [], []
    for offset, raw in enumerate(lines[number:]):
        line_number = number + offset + 1
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        if not line.startswith("|"):
            raise SwagError(f"{where}: expected an input line '|commands|port0|port1|port2|', found {line[:60]!r}")
        fields = line.split("|")[1:]
        if fields and fields[-1] == "":
            fields = fields[:-1]
        if len(fields) != expected_fields:
            raise SwagError(f"{where}: input line has {len(fields)} fields, expected {expected_fields} "
                            f"(|commands|{'|'.join(f'port{i}' for i in range(pads))}|port2|)")
        try:
            command = int(fields[0] or "0")
        except ValueError:
            raise SwagError(f"{where}: commands field {fields[0]!r} is not a number") from None
        if command & ~_SUPPORTED_COMMANDS:
            raise SwagError(f"{where}: command bits {command} include FDS/VS commands, which are not supported")
        pad_fields = fields[1 : 1 + pads]
        if fourscore:
            p1, p2 = _pad_byte(pad_fields[0], where), _pad_byte(pad_fields[1], where)
        else:
            p1 = _pad_byte(pad_fields[0], where)
            if ports[1] == "1":
                p2 = _pad_byte(pad_fields[1], where)
            elif pad_fields[1]:
                raise SwagError(f"{where}: port1 is empty in the header but the line has input {pad_fields[1]!r}")
            else:
                p2 = 0
        commands.append(command)
        player1.append(p1)
        player2.append(p2)
    if not player1:
        raise SwagError(f"{path}: the movie has no input lines")

    has_player2 = fourscore or ports[1] == "1"
    return Movie(
        path=path,
        header=header,
        game=game,
        commands=np.asarray(commands, np.uint8),
        actions=np.asarray(player1, np.uint8),
        player2=np.asarray(player2, np.uint8) if has_player2 else None,
        first_input_line=first_input_line,
    )


# --- replay --------------------------------------------------------------------------------------


def _power_on(game: str):
    from nes_py import NESEnv

    spec = games.get(game)
    spec.check_rom()
    env = NESEnv(str(spec.rom_path))
    frame, _ = env.reset()
    return env, frame


def replay(movie: Movie) -> Iterator[tuple[np.ndarray, int, np.ndarray]]:
    """Yield (frame uint8 (240, 256, 3), action byte, RAM uint8 (2048,)) per input line.

    The frame and RAM are those *before* the line's input is applied (copies).
    """
    env, frame = _power_on(movie.game)
    try:
        for index in range(len(movie)):
            command = int(movie.commands[index])
            shown = frame.copy()  # what a viewer saw before this frame's reset or input
            if command & COMMAND_POWER and index > 0:
                env.close()
                env, frame = _power_on(movie.game)
            elif command & COMMAND_SOFT_RESET:
                frame, _ = env.reset()
            ram = env.ram.copy()
            if movie.player2 is not None:
                env.controllers[1][:] = movie.player2[index]
            action = int(movie.actions[index])
            yield shown, action, ram
            frame = env.step(action)[0]
    finally:
        env.close()


def import_fm2(
    movie_path: str | Path, out_prefix: str | Path, *, force_game: str | None = None, progress: bool = True
) -> Path:
    """Replay an FM2 movie and write it as a raw recording at `out_prefix` (.mp4/.jsonl/.json)."""
    from tqdm import tqdm

    from swag.ingest.common import sha256_file, smb_info_from_ram
    from swag.recording import RecordingWriter

    movie = parse_fm2(movie_path, force_game=force_game)
    spec = games.get(movie.game)
    is_smb = movie.game in ("smb1", "smb-lost-levels")
    meta = {
        "game": movie.game,
        "level": None,
        "rom_sha1": spec.rom_sha1,
        "demonstrator": "fm2",
        "style": movie.header.get("comment", "").removeprefix("author ").strip() or "fm2",
        "seed": None,
        "source": {
            "kind": "fm2",
            "path": str(Path(movie_path)),
            "sha256": sha256_file(movie_path),
            "guid": movie.header["guid"],
            "romFilename": movie.header["romFilename"],
            "romChecksum": movie.header["romChecksum"],
            "emuVersion": movie.header.get("emuVersion"),
            "rerecordCount": movie.header.get("rerecordCount"),
            "resets": int(np.count_nonzero(movie.commands & COMMAND_SOFT_RESET)),
            "power_cycles": int(np.count_nonzero(movie.commands[1:] & COMMAND_POWER)),
        },
    }
    out_prefix = Path(out_prefix)
    with RecordingWriter(out_prefix, meta) as writer:
        for index, (frame, action, ram) in enumerate(
            tqdm(replay(movie), total=len(movie), desc=f"replay {Path(movie_path).name}", disable=not progress,
                 unit="frame")
        ):
            info = smb_info_from_ram(ram) if is_smb else {}
            info["fm2_command"] = int(movie.commands[index])
            if movie.player2 is not None:
                info["player2_action"] = int(movie.player2[index])
            writer.write(frame, action, info)
    log.info("%s: %d frames of %s replayed into %s", movie_path, len(movie), movie.game, out_prefix)
    return out_prefix
