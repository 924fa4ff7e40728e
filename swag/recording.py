"""Raw recordings: one episode as PREFIX.mp4 + PREFIX.jsonl + PREFIX.json (see docs/design.md).

The video is H.264 from libx264rgb at crf 0: lossless RGB, so a recording holds exactly the
pixels the emulator drew (measured in benchmarks/bench_data.py: ~1 KB per 256x240 frame and
encoding several times faster than the emulator steps). ffmpeg, PyAV and OpenCV decode it;
browsers do not play the 4:4:4 RGB profile.

Frame i is the screen shown before action i; line i of the jsonl holds action i and the
info that came with frame i. All three files are written under temporary names and
renamed at the end, the metadata last, so a PREFIX.json that exists marks a whole recording.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import queue
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import av
import numpy as np

import swag
from swag import actions as nes_actions
from swag import games
from swag.errors import SwagError

log = logging.getLogger(__name__)

FORMAT = "swag-recording"
FORMAT_VERSION = 1
FPS = games.NES_FPS
HEIGHT, WIDTH = games.SCREEN_SHAPE[:2]
VIDEO_CODEC = "libx264rgb"
VIDEO_PIX_FMT = "rgb24"
VIDEO_OPTIONS = {"crf": "0", "preset": "ultrafast"}  # lossless; ultrafast keeps pace with the emulator

# Info fields that describe the environment's reward shaping, not the game: left out of recordings.
DROPPED_INFO_KEYS = frozenset({"reward_components"})


def paths(prefix: str | os.PathLike) -> tuple[Path, Path, Path]:
    """(video, actions, metadata) paths of the recording at `prefix`."""
    prefix = os.fspath(prefix)
    return Path(prefix + ".mp4"), Path(prefix + ".jsonl"), Path(prefix + ".json")


def sha256_file(path: str | os.PathLike) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def check_hashes(prefix: str | os.PathLike, meta: Mapping[str, Any]) -> dict[str, str]:
    """sha256 of the video and jsonl, checked against those the metadata recorded (when it has them).

    Returns {file name: sha256}; SwagError naming the file whose content changed. The metadata
    keys them by suffix ("mp4", "jsonl") so that renaming a recording keeps them valid."""
    video, actions, meta_path = paths(prefix)
    recorded = meta.get("sha256") or {}
    digests = {}
    for path in (video, actions):
        digest = sha256_file(path)
        expected = recorded.get(path.suffix.lstrip("."))
        if expected is not None and digest != expected:
            raise SwagError(f"{path}: damaged or changed since recording (sha256 {digest[:12]}..., "
                            f"{meta_path.name} says {str(expected)[:12]}...)")
        digests[path.name] = digest
    return digests


_PLAIN_JSON = frozenset({bool, int, float, str, type(None)})


def json_safe_info(info: Mapping[str, Any]) -> dict[str, Any]:
    """A game's info dict as plain JSON: numpy scalars become Python numbers, tuples lists,
    and nested dicts are flattened one level as "outer.inner" (progress.x_max, statistics.T)."""
    safe: dict[str, Any] = {}
    for key, value in info.items():
        if type(value) in _PLAIN_JSON:  # most fields; the fast path matters at 60 calls a second
            safe[key] = value
        elif key in DROPPED_INFO_KEYS:
            continue
        elif isinstance(value, Mapping):
            for inner, item in value.items():
                safe[f"{key}.{inner}"] = _json_scalar(item)
        else:
            safe[key] = _json_scalar(value)
    return safe


def _json_scalar(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_json_scalar(item) for item in value]
    if isinstance(value, Mapping):
        return {str(k): _json_scalar(v) for k, v in value.items()}
    return str(value)


class RecordingWriter:
    """Writes one recording; a context manager.

        with RecordingWriter("results/raw/idm/smb1/1-1_cautious_000", meta) as writer:
            writer.write(frame, action, info)

    `meta` supplies game, level, rom_sha1, demonstrator, style, seed; the writer adds the
    format, size, fps, frame count, swag version and creation time. Frames are encoded on
    a background thread fed through a bounded queue, so encoding overlaps emulation.
    """

    def __init__(self, prefix: str | os.PathLike, meta: Mapping[str, Any], *, queue_frames: int = 120,
                 batch_frames: int = 8):
        self.prefix = os.fspath(prefix)
        self.meta = dict(meta)
        self.queue_frames = queue_frames
        self.batch_frames = batch_frames  # frames handed over per wake-up of the encoder thread
        self.frames = 0
        self.video_path, self.actions_path, self.meta_path = paths(self.prefix)
        suffix = f".tmp-{os.getpid()}"
        self._temps = [Path(os.fspath(p) + suffix) for p in (self.video_path, self.actions_path, self.meta_path)]

    def __enter__(self) -> RecordingWriter:
        self.video_path.parent.mkdir(parents=True, exist_ok=True)
        video_temp, actions_temp, _ = self._temps
        try:
            self._jsonl = open(actions_temp, "w", encoding="utf-8")
            self._container = av.open(os.fspath(video_temp), mode="w", format="mp4")
            stream = self._container.add_stream(VIDEO_CODEC, rate=FPS)
            stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, VIDEO_PIX_FMT
            stream.options = dict(VIDEO_OPTIONS)
            # One x264 thread: the encoder already runs beside the emulator on its own thread, and at
            # ~2000 frames/s per core it outpaces the emulator's ~500; more threads only contend.
            stream.codec_context.thread_count = 1
        except BaseException:
            for temp in self._temps:
                temp.unlink(missing_ok=True)
            raise
        self._stream = stream
        self._queue: queue.Queue[list[np.ndarray] | None] = queue.Queue(maxsize=max(1, self.queue_frames // self.batch_frames))
        self._batch: list[np.ndarray] = []
        self._encoder_error: BaseException | None = None
        self._encoder = threading.Thread(target=self._encode_loop, name="recording-encoder", daemon=True)
        self._encoder.start()
        return self

    def _encode_loop(self) -> None:
        # PyAV releases the GIL inside x264, so this runs beside the emulator on another core.
        # It consumes until the closing None even after a failure, so the producer never blocks.
        while (batch := self._queue.get()) is not None:
            if self._encoder_error is not None:
                continue
            try:
                for frame in batch:
                    for packet in self._stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                        self._container.mux(packet)
            except BaseException as error:  # handed to the main thread at the next write or close
                self._encoder_error = error
        if self._encoder_error is None:
            try:
                for packet in self._stream.encode():
                    self._container.mux(packet)
            except BaseException as error:
                self._encoder_error = error

    def write(self, frame: np.ndarray, action: int, info: Mapping[str, Any] | None = None) -> None:
        """Append frame i (uint8 (240, 256, 3), the screen before the action), action i and frame i's info."""
        if self._encoder_error is not None:
            raise RuntimeError(f"{self.video_path}: video encoder failed") from self._encoder_error
        if frame.shape != (HEIGHT, WIDTH, 3) or frame.dtype != np.uint8:
            raise ValueError(f"{self.video_path}: frames must be uint8 ({HEIGHT}, {WIDTH}, 3), got {frame.dtype} {frame.shape}")
        action = int(action)
        line = {
            "frame": self.frames,
            "action": action,
            "buttons": nes_actions.to_names(action),
            "info": json_safe_info(info or {}),
        }
        self._jsonl.write(json.dumps(line, separators=(",", ":")) + "\n")
        self._batch.append(frame)
        if len(self._batch) == self.batch_frames:
            self._queue.put(self._batch)
            self._batch = []
        self.frames += 1

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            if self._batch:
                self._queue.put(self._batch)
                self._batch = []
            self._queue.put(None)
            self._encoder.join()
            try:
                self._container.close()
            finally:
                self._jsonl.close()
            if exc_type is None:
                if self._encoder_error is not None:
                    raise RuntimeError(f"{self.video_path}: video encoder failed") from self._encoder_error
                meta = {
                    "format": FORMAT,
                    "format_version": FORMAT_VERSION,
                    **self.meta,
                    "fps": FPS,
                    "width": WIDTH,
                    "height": HEIGHT,
                    "frames": self.frames,
                    "video_codec": VIDEO_CODEC,
                    # H.264 decoders conceal small damage silently; these let readers detect it.
                    "sha256": {
                        "mp4": sha256_file(self._temps[0]),
                        "jsonl": sha256_file(self._temps[1]),
                    },
                    "swag_version": swag.__version__,
                    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                }
                self._temps[2].write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
                # Metadata last: its presence marks a complete recording.
                for temp, final in zip(self._temps, (self.video_path, self.actions_path, self.meta_path)):
                    os.replace(temp, final)
        finally:
            for temp in self._temps:
                temp.unlink(missing_ok=True)


# --- reading -------------------------------------------------------------------------------------


def read_meta(prefix: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a recording; SwagError when any of its three files is missing or the json is bad."""
    video, actions, meta_path = paths(prefix)
    for path in (meta_path, video, actions):
        if not path.is_file():
            raise SwagError(f"{path}: recording file not found")
    from swag.store import read_json  # here, so that `swag record` jobs do not import zarr (~0.5 s each)

    meta = read_json(meta_path, "recording metadata")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SwagError(f"{meta_path}: not a swag recording (format is not {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise SwagError(f"{meta_path}: unknown recording format_version {meta.get('format_version')!r}")
    return meta


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The lines of a recording's jsonl, checked to be numbered 0, 1, 2... with a byte action."""
    path = Path(path)
    with open(path, encoding="utf-8") as lines:
        for number, text in enumerate(lines):
            try:
                line = json.loads(text)
                action = line["action"]
                frame = line["frame"]
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise SwagError(f"{path}: line {number + 1} is not a frame record ({type(error).__name__}: {error})") from None
            if frame != number:
                raise SwagError(f"{path}: line {number + 1} has frame {frame}, expected {number}")
            if not isinstance(action, int) or not 0 <= action <= 255:
                raise SwagError(f"{path}: line {number + 1} has action {action!r}, expected a byte 0..255")
            yield line


def iter_video_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Stream-decode a video as uint8 (H, W, 3) RGB frames; SwagError naming the file when it is damaged."""
    decoded = iter_decoded(path)  # opens the file now
    return (frame.to_ndarray(format="rgb24") for frame in decoded)


def iter_decoded(path: str | os.PathLike) -> Iterator[av.VideoFrame]:
    """Stream-decode a video as PyAV frames, leaving the RGB conversion to the caller (it costs
    about as much as decoding, and a resampling reader skips it for the frames it drops).

    The file is opened at the call, so an unreadable one fails here rather than at the first frame."""
    path = Path(path)
    try:
        container = av.open(os.fspath(path), mode="r")
    except (av.error.FFmpegError, OSError) as error:
        raise SwagError(f"{path}: cannot open video ({error})") from None
    if not container.streams.video:
        container.close()
        raise SwagError(f"{path}: no video stream")
    return _decode(path, container)


def _decode(path: Path, container) -> Iterator[av.VideoFrame]:
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            yield from container.decode(stream)
        except av.error.FFmpegError as error:
            raise SwagError(f"{path}: video is damaged ({error})") from None


def read_recording(prefix: str | os.PathLike) -> tuple[dict[str, Any], Iterator[np.ndarray], np.ndarray, list[dict]]:
    """(metadata, iterator of frames uint8 (240, 256, 3), actions uint8 (T,), per-frame info dicts).

    Frames stream from the video; actions and info are read whole from the jsonl. The
    files must match the sha256 the metadata recorded, and the jsonl must have as many
    lines as the metadata says frames.
    """
    meta = read_meta(prefix)
    video, actions_path, meta_path = paths(prefix)
    check_hashes(prefix, meta)
    lines = list(iter_jsonl(actions_path))
    if len(lines) != meta["frames"]:
        raise SwagError(f"{actions_path}: {len(lines)} frames, but {meta_path} says {meta['frames']}")
    actions = np.array([line["action"] for line in lines], dtype=np.uint8)
    infos = [line.get("info", {}) for line in lines]
    return meta, iter_video_frames(video), actions, infos


# --- recording a demonstrator --------------------------------------------------------------------


def record_episode(
    game: str,
    level: str | None,
    style: str,
    seed: int,
    max_frames: int,
    prefix: str | os.PathLike,
    *,
    progress_bar: bool = True,
    on_frame=None,
) -> dict[str, Any]:
    """Play one seeded episode with a scripted demonstrator and record it at `prefix`.

    Returns the metadata written, plus the game's progress summary under "progress".
    `on_frame(frame, action, info)` (for tests) sees exactly what is recorded.
    """
    from tqdm import tqdm

    from swag.demonstrators import make_demonstrator

    if max_frames < 1:
        raise SwagError(f"--max-frames must be at least 1, got {max_frames}")
    level = level or None
    spec = games.get(game)
    rom_sha1 = spec.check_rom()
    demo = make_demonstrator(game, style, seed)
    env = games.make(game, level)
    meta = {"game": game, "level": level, "rom_sha1": rom_sha1, "demonstrator": demo.name, "style": style,
            "seed": int(seed)}
    try:
        frame, info = env.reset(seed=int(seed))
        demo.reset(env, info)
        where = f"{game} {level}" if level else game
        bar = tqdm(total=max_frames, unit="frame", desc=f"record {where} {style} {seed}", disable=not progress_bar)
        with bar, RecordingWriter(prefix, meta) as writer:
            for _ in range(max_frames):
                action = demo.act(env, info)
                writer.write(frame, action, info)
                if on_frame is not None:
                    on_frame(frame, action, info)
                frame, _, terminated, truncated, info = env.step(action)
                bar.update()
                if terminated or truncated:
                    break
            frames = writer.frames
    finally:
        env.close()
    log.info("recorded %d frames of %s (%s, seed %d) to %s.mp4", frames, where, style, seed, prefix)
    return {**read_meta(prefix), "progress": dict(info.get("progress", {}))}
