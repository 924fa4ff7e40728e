"""The public human SMB dataset (github.com/rafaelcp/smbdataset) -> raw recordings.

Layout: one folder per episode `<user>_<sessid>_e<episode>_<world>-<level>_<outcome>`,
one 256x240 8-bit indexed PNG per frame named
`<user>_<sessid>_e<episode>_<world>-<level>_f<frame>_a<action>_<YYYY-MM-DD_HH-mm-SS>.<outcome>.png`,
frames numbered from 1. The action byte's bits, most to least significant, are
up, down, left, right, A, B, start, select (20 = right + B); `remap_action` turns it
into our byte (`swag.actions`). The recorder (the dataset's `datacollector.lua`)
appends tEXt chunks *after* IEND with a fake CRC: `RAM` (2048 bytes), `BP1` (the
action byte) and `OUTCOME` (1 fail, 2 win); Pillow stops at IEND, so we walk the chunks
ourselves and use the RAM for the same per-frame info our own recordings carry.

Colours: the PNGs are indexed by NES colour (FCEUX's screen buffer) with FCEUX's
palette; by default we draw them with nes-py's palette instead (`read_frame`), so the
frames are pixel for pixel what our emulator would show.

We write raw recordings (via RecordingWriter), not stores: `swag convert` then makes
the stores at the configured resolution and fps exactly as for our generated
recordings, so the two sources cannot drift apart in resampling or resizing.

Frame/action alignment. The collector runs after each emulated frame n: it reads the
pad input of frame n and asks for a screenshot, which FCEUX takes at the end of frame
n+1 (`gui.savescreenshotas` only sets a flag that `FCEU_PutImage` serves next frame).
SMB reads the pad in its NMI, which in FCEUX comes at the start of a frame, and its
sprites move one frame later, so the first picture an input can change is exactly the
picture saved with it. In nes-py the same input first shows ACTION_LAG = 3 recording
frames after the frame it is paired with (measured: `tests/test_smbdataset.py::
test_nes_py_action_lag`). To give imported data the timing of our own recordings,
recording frame i is PNG i+1 and action i is the action of PNG i+1+ACTION_LAG; the
first ACTION_LAG actions pair with frames the dataset never saved and the last
ACTION_LAG frames have no following action, so an episode of N PNGs becomes N - 3
frames (the unpaired leading actions are kept in the metadata).
"""

from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from swag import actions as nes_actions
from swag.errors import SwagError

log = logging.getLogger(__name__)

ACTION_LAG = 3

# The dataset's action bits, most significant first.
DATASET_BUTTONS = ("up", "down", "left", "right", "A", "B", "start", "select")
_REMAP = np.zeros(256, np.uint8)
for _value in range(256):
    _REMAP[_value] = nes_actions.from_names(
        name for position, name in enumerate(DATASET_BUTTONS) if _value >> (7 - position) & 1
    )

FOLDER_PATTERN = re.compile(
    r"^(?P<user>.+)_(?P<sessid>[^_]+)_e(?P<episode>\d+)_(?P<world>\d+)-(?P<level>\d+)_(?P<outcome>win|fail)$"
)
FRAME_PATTERN = re.compile(
    r"^(?P<user>.+)_(?P<sessid>[^_]+)_e(?P<episode>\d+)_(?P<world>\d+)-(?P<level>\d+)"
    r"_f(?P<frame>\d+)_a(?P<action>\d+)_(?P<datetime>\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})"
    r"(?:\.(?P<outcome>win|fail))?\.png$"
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RAM_SIZE = 2048


def remap_action(dataset_action: int | np.ndarray) -> np.ndarray:
    """Dataset action byte(s) (up,down,left,right,A,B,start,select from the MSB) -> our byte(s)."""
    values = np.asarray(dataset_action)
    if values.size and (values.min() < 0 or values.max() > 255):
        raise ValueError(f"action {dataset_action} is not a byte")
    return _REMAP[values.astype(np.int64)]


@dataclass(frozen=True)
class FrameFile:
    path: Path
    frame: int
    action: int  # the dataset's byte, not remapped
    datetime: str
    outcome: str | None


@dataclass
class Episode:
    folder: Path
    user: str
    sessid: str
    episode: int
    level: str  # "world-level"
    outcome: str
    frames: list[FrameFile]  # sorted by frame number


def read_png_text_chunks(path: Path) -> dict[str, bytes]:
    """All tEXt chunks of a PNG, including those the dataset appends after IEND.

    CRCs are not checked: the dataset's recorder writes zeros there. Pillow has already
    checked the image's own chunks when it decodes the picture.
    """
    data = path.read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise SwagError(f"{path}: not a PNG file")
    chunks: dict[str, bytes] = {}
    position = len(PNG_SIGNATURE)
    after_end = False
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        if len(body) != length:
            if after_end:
                break  # a truncated trailer after the image; the image itself is whole
            raise SwagError(f"{path}: truncated PNG chunk {kind!r}")
        if kind == b"tEXt" and b"\0" in body:
            key, value = body.split(b"\0", 1)
            chunks[key.decode("latin-1")] = value
        if kind == b"IEND":
            after_end = True
        position += 12 + length
    return chunks


# nes-py's 64 NES colours (its palette.hpp), xRGB. Our emulator draws with exactly these.
NES_PY_PALETTE = np.array([
    0x7C7C7C, 0x0000FC, 0x0000BC, 0x4428BC, 0x940084, 0xA80020, 0xA81000, 0x881400,
    0x503000, 0x007800, 0x006800, 0x005800, 0x004058, 0x000000, 0x000000, 0x000000,
    0xBCBCBC, 0x0078F8, 0x0058F8, 0x6844FC, 0xD800CC, 0xE40058, 0xF83800, 0xE45C10,
    0xAC7C00, 0x00B800, 0x00A800, 0x00A844, 0x008888, 0x000000, 0x000000, 0x000000,
    0xF8F8F8, 0x3CBCFC, 0x6888FC, 0x9878F8, 0xF878F8, 0xF85898, 0xF87858, 0xFCA044,
    0xF8B800, 0xB8F818, 0x58D854, 0x58F898, 0x00E8D8, 0x787878, 0x000000, 0x000000,
    0xFCFCFC, 0xA4E4FC, 0xB8B8F8, 0xD8B8F8, 0xF8B8F8, 0xF8A4C0, 0xF0D0B0, 0xFCE0A8,
    0xF8D878, 0xD8F878, 0xB8F8B8, 0xB8F8D8, 0x00FCFC, 0xF8D8F8, 0x000000, 0x000000,
], dtype=np.uint32)
NES_PY_RGB = np.stack([NES_PY_PALETTE >> 16, NES_PY_PALETTE >> 8 & 255, NES_PY_PALETTE & 255], axis=1).astype(np.uint8)
# A PNG palette this far (mean max-channel difference) from nes-py's on the colours used is not
# indexed by NES colour, and keeps its own colours.
PALETTE_TOLERANCE = 64
PALETTES = ("nes-py", "source")


def read_frame(path: Path, palette: str = "nes-py") -> tuple[np.ndarray, bool]:
    """(uint8 (240, 256, 3) RGB of one dataset PNG, whether nes-py's colours were used).

    FCEUX saves its screenshots indexed by its screen buffer, whose low 6 bits are the NES
    colour (`GetScreenPixelPalette` reads them so). With `palette="nes-py"` each pixel gets
    nes-py's colour for that index, so imported frames look exactly like our emulator's;
    a PNG whose palette does not look NES-indexed keeps its own colours.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.size != (256, 240):
                raise SwagError(f"{path}: frame is {image.size[0]}x{image.size[1]}, expected 256x240")
            if palette == "nes-py" and image.mode == "P":
                indices = np.asarray(image, dtype=np.uint8)
                source = np.array(image.getpalette() or [], np.int16).reshape(-1, 3)
                used = np.unique(indices)
                if used.max() < len(source):
                    distance = np.abs(source[used] - NES_PY_RGB[used & 0x3F]).max(axis=1).mean()
                    if distance <= PALETTE_TOLERANCE:
                        return NES_PY_RGB[indices & 0x3F], True
            return np.asarray(image.convert("RGB"), dtype=np.uint8), False
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise SwagError(f"{path}: cannot read PNG ({error})") from None


def scan_episode(folder: Path) -> Episode:
    """Parse an episode folder's name and its frame files (sorted); SwagError on a malformed name."""
    match = FOLDER_PATTERN.match(folder.name)
    if not match:
        raise SwagError(f"{folder}: folder name is not <user>_<sessid>_e<episode>_<world>-<level>_<win|fail>")
    frames = []
    for path in folder.iterdir():
        if path.suffix.lower() != ".png":
            continue
        frame_match = FRAME_PATTERN.match(path.name)
        if not frame_match:
            raise SwagError(f"{path}: frame file name does not follow the smbdataset pattern")
        for key in ("user", "sessid", "episode", "world", "level"):
            if frame_match.group(key) != match.group(key):
                raise SwagError(f"{path}: {key} {frame_match.group(key)!r} differs from its folder's "
                                f"{match.group(key)!r}")
        action = int(frame_match.group("action"))
        if action > 255:
            raise SwagError(f"{path}: action {action} is not a byte")
        frames.append(FrameFile(path, int(frame_match.group("frame")), action, frame_match.group("datetime"),
                                frame_match.group("outcome")))
    if not frames:
        raise SwagError(f"{folder}: episode folder has no frame PNGs")
    frames.sort(key=lambda item: item.frame)
    for previous, current in zip(frames, frames[1:]):
        if previous.frame == current.frame:
            raise SwagError(f"{current.path}: frame number {current.frame} appears twice in {folder.name}")
    return Episode(folder, match.group("user"), match.group("sessid"), int(match.group("episode")),
                   f"{match.group('world')}-{match.group('level')}", match.group("outcome"), frames)


def contiguous_runs(episode: Episode) -> tuple[list[list[FrameFile]], list[tuple[int, int]]]:
    """Split the frames into runs of consecutive numbers from 1; also return the gaps [first, last] missing."""
    runs: list[list[FrameFile]] = []
    gaps: list[tuple[int, int]] = []
    expected = 1
    for item in episode.frames:
        if item.frame != expected:
            gaps.append((expected, item.frame - 1))
            runs.append([])
        elif not runs:
            runs.append([])
        runs[-1].append(item)
        expected = item.frame + 1
    return [run for run in runs if run], gaps


def find_episodes(folder: Path) -> list[Path]:
    """Episode folders in `folder`, or up to two levels below it (itself, when it is one)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SwagError(f"{folder}: not a directory")
    if FOLDER_PATTERN.match(folder.name) and any(folder.glob("*.png")):
        return [folder]
    found = []
    for depth in range(3):  # the archive may unpack into a folder or two above the episodes
        found = sorted(path for path in folder.glob("/".join(["*"] * (depth + 1)))
                       if path.is_dir() and FOLDER_PATTERN.match(path.name))
        if found:
            break
    if not found:
        raise SwagError(f"{folder}: no smbdataset episode folders (<user>_<sessid>_e<n>_<w>-<l>_<win|fail>)")
    return found


def _write_run(run: list[FrameFile], episode: Episode, prefix: Path, segment: int | None, progress,
               palette: str) -> Path:
    from swag import games
    from swag.ingest.common import smb_info_from_ram
    from swag.recording import RecordingWriter

    dataset_actions = np.array([item.action for item in run], np.int64)
    ours = remap_action(dataset_actions)
    count = len(run) - ACTION_LAG  # frames that have a following action
    chunks = [read_png_text_chunks(item.path) for item in run[:count]]
    with_ram = all(len(chunk.get("RAM", b"")) == RAM_SIZE for chunk in chunks)
    if not with_ram:
        log.warning("%s: some frames lack a 2048-byte RAM chunk; the recording gets no per-frame info",
                    episode.folder)
    for item, chunk in zip(run, chunks):
        if "BP1" in chunk and len(chunk["BP1"]) == 1 and chunk["BP1"][0] != item.action:
            raise SwagError(f"{item.path}: BP1 chunk says action {chunk['BP1'][0]}, the file name {item.action}")
    meta = {
        "game": "smb1",
        "level": episode.level,
        "rom_sha1": games.get("smb1").rom_sha1,
        "demonstrator": "human",
        "style": episode.user,
        "seed": None,
        "source": {
            "kind": "smbdataset",
            "folder": str(episode.folder),
            "session": episode.sessid,
            "episode": episode.episode,
            "outcome": episode.outcome,
            "first_frame": run[0].frame,
            "last_frame": run[-1].frame,
            "segment": segment,
            "started": run[0].datetime,
            "action_lag": ACTION_LAG,
            "unpaired_leading_actions": [int(value) for value in ours[:ACTION_LAG]],
            "palette": palette,
        },
    }
    recoloured = 0
    with RecordingWriter(prefix, meta) as writer:
        for index in progress(range(count)):
            frame, was_recoloured = read_frame(run[index].path, palette)
            recoloured += was_recoloured
            info = smb_info_from_ram(np.frombuffer(chunks[index]["RAM"], np.uint8)) if with_ram else {}
            writer.write(frame, int(ours[index + ACTION_LAG]), info)
    if palette == "nes-py" and recoloured < count:
        log.warning("%s: %d of %d frames are not NES-indexed PNGs and keep their own colours", prefix,
                    count - recoloured, count)
    return prefix


def import_smbdataset(folder: str | Path, out_dir: str | Path, *, on_gap: str = "fail", palette: str = "nes-py",
                      progress: bool = True) -> list[Path]:
    """Turn every episode folder under `folder` into raw recordings in `out_dir`; return their prefixes.

    A gap in an episode's frame numbers: `on_gap="fail"` raises SwagError before anything
    is written; `on_gap="skip"` splits the episode at its gaps and writes each run of
    consecutive frames as `<folder>_s<k>` (runs too short to hold one action are skipped).
    """
    from tqdm import tqdm

    if on_gap not in ("skip", "fail"):
        raise SwagError(f"--on-gap must be 'skip' or 'fail', got {on_gap!r}")
    if palette not in PALETTES:
        raise SwagError(f"--palette must be one of {', '.join(PALETTES)}, got {palette!r}")
    out_dir = Path(out_dir)
    episodes = [scan_episode(path) for path in find_episodes(Path(folder))]
    plans = []
    for episode in episodes:
        runs, gaps = contiguous_runs(episode)
        if gaps:
            missing = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in gaps)
            if on_gap == "fail":
                raise SwagError(f"{episode.folder}: gap in frame numbers (missing {missing}); "
                                f"use --on-gap skip to split the episode there")
            log.warning("%s: gap in frame numbers (missing %s): split into %d runs", episode.folder, missing,
                        len(runs))
        plans.append((episode, runs, bool(gaps)))

    written = []
    for episode, runs, split in plans:
        for number, run in enumerate(runs):
            if len(run) <= ACTION_LAG:
                log.warning("%s: run of %d frames from frame %d is too short to pair with actions; skipped",
                            episode.folder, len(run), run[0].frame)
                continue
            name = f"{episode.folder.name}_s{number}" if split else episode.folder.name
            bar = (lambda iterable, name=name: tqdm(iterable, desc=name, unit="frame", disable=not progress))
            written.append(_write_run(run, episode, out_dir / name, number if split else None, bar, palette))
    log.info("%s: %d recordings from %d episodes into %s", folder, len(written), len(episodes), out_dir)
    return written
