"""Any FFmpeg-readable video of NES play -> an unlabelled store (`kind: "video"`).

Two streaming passes; neither holds more than one decoded frame plus small statistics:

1. Find the picture. Decode only the keyframes (cheap, and spread through the whole
   video; when a short video has too few, every k-th frame) and keep per-pixel minimum
   and maximum over them. A pixel belongs to the game when, in some sample, it differs
   from the border colour (the median of the outer ring) by more than BORDER_THRESHOLD,
   which compression noise in flat bars does not reach. The content rectangle is found
   from column, then row, then column activity fractions, each restricted to the span
   found before, so a channel logo or timer box in the bars does not widen it. The
   rectangle is then snapped to the NES 256:240 aspect (letterboxing may hide black
   game rows at an edge), and its scale to a half-integer when it is within 1.5%.
2. Decode every frame, resample to the target fps by presentation time (target frame k
   shows the source frame on screen at t0 + k / fps, as `swag.actions.frame_spans` does
   for recordings), crop, and resize with cv2.INTER_AREA to the configured size, as
   `swag.convert` resizes recordings (one area resize of the crop averages the same
   pixels as going through 256x240 first). 4:2:0 video is cropped and resized in
   Y'CbCr and converted to RGB only at the pipeline size (`frame_to_pipeline`). Each
   output frame's source time is kept in `info/source_time`.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

import swag
from swag.errors import SwagError

log = logging.getLogger(__name__)

NES_HEIGHT, NES_WIDTH = 240, 256
BORDER_THRESHOLD = 40  # max channel difference from the border colour that still counts as border
MIN_SAMPLES = 12  # fewer keyframes than this: sample every k-th frame instead
MAX_SAMPLES = 120  # keyframes sampled, at most (about)
ACTIVE_FRACTION = 0.25  # a row/column is content when this share of its pixels (relative to the best) is


@dataclass(frozen=True)
class Crop:
    """The game picture inside the video frame, in source pixels."""

    x: int
    y: int
    width: int
    height: int

    @property
    def scale(self) -> float:
        return self.width / NES_WIDTH


@dataclass
class VideoInfo:
    path: str
    codec: str
    width: int
    height: int
    fps: float  # average frame rate the container reports
    frames: int  # the container's frame count; 0 when unknown
    duration: float  # seconds; 0 when unknown


def _open(path: Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    if not path.is_file():
        raise SwagError(f"{path}: no such video file")
    try:
        container = av.open(os.fspath(path), mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise SwagError(f"{path}: not a video FFmpeg can read, or truncated ({error})") from None
    if not container.streams.video:
        container.close()
        raise SwagError(f"{path}: has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None or not stream.codec_context.name:
        container.close()
        raise SwagError(f"{path}: video codec is not supported by this FFmpeg build")
    return container, stream


def probe(path: str | os.PathLike) -> VideoInfo:
    path = Path(path)
    container, stream = _open(path)
    with container:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
        if not duration and container.duration:
            duration = container.duration / 1e6
        return VideoInfo(os.fspath(path), stream.codec_context.name, stream.codec_context.width,
                         stream.codec_context.height, float(rate) if rate else 0.0, int(stream.frames or 0), duration)


def _decode_errors(path: Path):
    return SwagError(f"{path}: video is truncated or damaged (decoding failed)")


def iter_sample_frames(path: str | os.PathLike, info: VideoInfo) -> Iterator[np.ndarray]:
    """RGB frames spread through the video, one at a time, for finding the picture.

    Keyframes first (at most about MAX_SAMPLES, evenly spaced in time when the duration
    is known; the other packets are demuxed but never decoded); when the video has fewer
    than MIN_SAMPLES keyframes, every k-th frame follows as well.
    """
    path = Path(path)
    spacing = info.duration / MAX_SAMPLES if info.duration else 0.0  # seconds between sampled keyframes
    yielded = 0
    container, stream = _open(path)
    with container:
        stream.thread_type = "AUTO"
        time_base = float(stream.time_base) if stream.time_base else 0.0
        next_time = -math.inf
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the flush packet at the end
                    frames = stream.decode(packet)
                elif packet.is_keyframe:
                    time = packet.pts * time_base if packet.pts is not None and time_base else next_time
                    if time < next_time:
                        continue
                    next_time = time + spacing
                    frames = stream.decode(packet)
                else:
                    continue
                for frame in frames:
                    yield frame.to_ndarray(format="rgb24")
                    yielded += 1
        except av.error.FFmpegError:
            raise _decode_errors(path) from None
    if yielded >= MIN_SAMPLES:
        return
    expected = info.frames or int(info.duration * info.fps) or MAX_SAMPLES
    stride = max(1, expected // (2 * MIN_SAMPLES))
    container, stream = _open(path)
    with container:
        stream.thread_type = "AUTO"
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index % stride == 0:
                    yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError:
            raise _decode_errors(path) from None


def _span(activity: np.ndarray) -> tuple[int, int] | None:
    """[first, last + 1) of the entries above ACTIVE_FRACTION of the maximum; None when all are zero."""
    peak = float(activity.max()) if activity.size else 0.0
    if peak <= 0:
        return None
    active = np.flatnonzero(activity >= ACTIVE_FRACTION * peak)
    return int(active[0]), int(active[-1]) + 1


def find_content(low: np.ndarray, high: np.ndarray, border: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, x1, y0, y1) of the game picture from the per-pixel min/max over samples (H, W, 3)."""
    difference = np.maximum(np.abs(low.astype(np.int16) - border), np.abs(high.astype(np.int16) - border))
    content = difference.max(axis=2) > BORDER_THRESHOLD  # bool (H, W)
    height, width = content.shape
    x0, x1, y0, y1 = 0, width, 0, height
    for _ in range(2):  # columns, rows, columns, rows: each pass ignores what lies outside the other span
        columns = _span(content[y0:y1].mean(axis=0))
        if columns is None:
            return None
        x0, x1 = columns
        rows = _span(content[:, x0:x1].mean(axis=1))
        if rows is None:
            return None
        y0, y1 = rows
    return x0, x1, y0, y1


def snap_to_nes(box: tuple[int, int, int, int], frame_width: int, frame_height: int) -> Crop:
    """The NES-aspect rectangle that best explains a detected content box.

    The box can only be too small along one axis (game rows or columns matching the
    border colour at its edge), so the larger implied scale wins; clamped to the frame,
    a picture stretched to 4:3 (as TVs showed it) fills the frame's height. Where the box leaves
    room, the rectangle is centred in the frame (videos are letterboxed symmetrically),
    otherwise on the box.
    """
    x0, x1, y0, y1 = box
    scale = max((x1 - x0) / NES_WIDTH, (y1 - y0) / NES_HEIGHT)
    half = round(scale * 2) / 2
    if half > 0 and abs(scale - half) <= 0.015 * half:
        scale = half
    width = min(frame_width, round(NES_WIDTH * scale))
    height = min(frame_height, round(NES_HEIGHT * scale))

    def place(start: int, stop: int, size: int, frame: int) -> int:
        centred = (frame - size) // 2
        if centred <= start and centred + size >= stop:
            return centred
        middle = (start + stop - size) // 2
        return int(min(max(middle, 0), frame - size))

    return Crop(place(x0, x1, width, frame_width), place(y0, y1, height, frame_height), width, height)


def detect_crop(path: str | os.PathLike, info: VideoInfo | None = None) -> tuple[Crop, int]:
    """(crop, number of sample frames) of the game picture in a video; SwagError when there is none."""
    path = Path(path)
    info = info or probe(path)
    low = high = None
    border = None
    samples = 0
    for frame in iter_sample_frames(path, info):
        if low is None:
            low, high = frame.copy(), frame.copy()
            ring = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]])  # (2W + 2H, 3)
            border = np.median(ring, axis=0).astype(np.int16)
        else:
            np.minimum(low, frame, out=low)
            np.maximum(high, frame, out=high)
        samples += 1
    if low is None:
        raise SwagError(f"{path}: video has no frames")
    box = find_content(low, high, border)
    if box is None:
        raise SwagError(f"{path}: no NES picture found (every sampled frame is one flat colour)")
    x0, x1, y0, y1 = box
    frame_height, frame_width = low.shape[:2]
    if (x1 - x0) < 0.1 * frame_width or (y1 - y0) < 0.1 * frame_height:
        raise SwagError(f"{path}: no NES picture found (the only changing area is {x1 - x0}x{y1 - y0} pixels)")
    return snap_to_nes(box, frame_width, frame_height), samples


def to_nes(frame: np.ndarray, crop: Crop) -> np.ndarray:
    """uint8 (H, W, 3) video frame -> uint8 (240, 256, 3) game picture."""
    picture = frame[crop.y : crop.y + crop.height, crop.x : crop.x + crop.width]
    if picture.shape[:2] == (NES_HEIGHT, NES_WIDTH):
        return np.ascontiguousarray(picture)
    return cv2.resize(picture, (NES_WIDTH, NES_HEIGHT), interpolation=cv2.INTER_AREA)


def to_pipeline(picture: np.ndarray, height: int, width: int) -> np.ndarray:
    """(240, 256, 3) -> (height, width, 3), the resize `swag.convert` applies to recordings."""
    if picture.shape[:2] == (height, width):
        return picture
    return cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA)


# Y'CbCr -> R'G'B' for limited-range video: rows R, G, B over (Y - 16, Cb - 128, Cr - 128).
_LIMITED = {
    601: np.array([[1.164383, 0.0, 1.596027], [1.164383, -0.391762, -0.812968], [1.164383, 2.017232, 0.0]]),
    709: np.array([[1.164383, 0.0, 1.792741], [1.164383, -0.213249, -0.532909], [1.164383, 2.112402, 0.0]]),
}
_YUV420 = ("yuv420p", "yuvj420p")


def _plane(frame: av.VideoFrame, index: int) -> np.ndarray:
    """A zero-copy uint8 (rows, line_size) view of one plane of a decoded frame."""
    plane = frame.planes[index]
    return np.frombuffer(plane, np.uint8, count=plane.line_size * plane.height).reshape(plane.height, -1)


def frame_to_pipeline(frame: av.VideoFrame, crop: Crop, height: int, width: int) -> np.ndarray:
    """Decoded frame -> uint8 (height, width, 3) RGB of the game picture.

    For 4:2:0 video (nearly all of it) the crop is resized in Y'CbCr, straight to the
    pipeline size, and only then turned into RGB: the colour conversion of the whole
    frame costs more than decoding it (measured in benchmarks/bench_ingest.py). One
    INTER_AREA resize of the crop averages the same source pixels as the two of
    `to_nes` + `to_pipeline` (the RGB path other formats take).
    """
    even = crop.x % 2 == 0 and crop.y % 2 == 0 and crop.width % 2 == 0 and crop.height % 2 == 0
    if frame.format.name not in _YUV420 or not even:
        return to_pipeline(to_nes(frame.to_ndarray(format="rgb24"), crop), height, width)
    x, y, w, h = crop.x, crop.y, crop.width, crop.height
    luma = cv2.resize(_plane(frame, 0)[y : y + h, x : x + w], (width, height), interpolation=cv2.INTER_AREA)
    blue = cv2.resize(_plane(frame, 1)[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2], (width, height),
                      interpolation=cv2.INTER_AREA)
    red = cv2.resize(_plane(frame, 2)[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2], (width, height),
                     interpolation=cv2.INTER_AREA)
    full_range = frame.format.name == "yuvj420p" or int(frame.color_range) == 2
    transform = _ycbcr_to_rgb(709 if int(frame.colorspace) == 1 else 601, full_range)
    # cv2.transform: one affine map per pixel, rounded and saturated to uint8.
    return cv2.transform(cv2.merge([luma, blue, red]), transform)


@functools.cache
def _ycbcr_to_rgb(standard: int, full_range: bool) -> np.ndarray:
    """float (3, 4) affine map from (Y', Cb, Cr) to (R', G', B'); unspecified colourspaces decode as BT.601."""
    matrix = _LIMITED[standard]
    offset = np.array([16.0, 128.0, 128.0])
    if full_range:
        matrix = matrix * np.array([[1 / 1.164383, 255 / 224, 255 / 224]])
        offset = np.array([0.0, 128.0, 128.0])
    return np.concatenate([matrix, -(matrix @ offset)[:, None]], axis=1)


def iter_resampled(path: Path, fps: float) -> Iterator[tuple[av.VideoFrame, float]]:
    """(decoded frame, its source time in seconds) for each output step at `fps`, by presentation time.

    Output step k shows the frame on screen at t0 + k / fps; frames that no step shows are
    yielded never (and so never converted to RGB). The last frame is shown for one frame
    duration, and only whole output steps within the video are produced.
    """
    container, stream = _open(path)
    with container:
        stream.thread_type = "AUTO"
        time_base = float(stream.time_base) if stream.time_base else 0.0
        rate = stream.average_rate or stream.guessed_rate
        frame_duration = 1.0 / float(rate) if rate else 0.0
        start = None
        step = 0
        previous: av.VideoFrame | None = None
        previous_time = 0.0
        last_time = 0.0
        try:
            for index, frame in enumerate(container.decode(stream)):
                if frame.pts is not None and time_base:
                    time = frame.pts * time_base
                else:  # no timestamps: assume a constant rate
                    time = index * frame_duration
                if start is None:
                    start = time
                elif time <= last_time:  # reordered or duplicated timestamps: keep them increasing
                    time = last_time + 1e-6
                last_time = time
                # Every step before this frame's time shows the previous frame.
                while previous is not None and start + step / fps < time - 1e-9:
                    yield previous, previous_time
                    step += 1
                previous, previous_time = frame, time
        except av.error.FFmpegError:
            raise _decode_errors(path) from None
        if previous is None:
            raise SwagError(f"{path}: video has no frames")
        end = last_time + (frame_duration or 1.0 / fps)
        while start + step / fps <= end - 1.0 / fps + 1e-9:
            yield previous, previous_time
            step += 1


def _write_truth(raw_prefix, truth_path, count: int, fps: float, attrs: dict) -> None:
    """True actions of a video made from a raw recording: step k's action is the pad state held
    for most of [k / fps, (k + 1) / fps) of the recording, as `swag convert` computes it. The
    video may show one step the recording covers only in part (its last frame, on screen for
    less than a step); that step gets the action of the frames the recording has."""
    from swag import actions as nes_actions
    from swag import recording
    from swag.store import write_array_store

    meta = recording.read_meta(raw_prefix)
    raw = np.array([line["action"] for line in recording.iter_jsonl(recording.paths(raw_prefix)[1])], np.uint8)
    truth = nes_actions.resample(raw, float(meta["fps"]), fps, keep_partial=True)
    if len(truth) < count:
        raise SwagError(f"{raw_prefix}: recording covers {len(truth)} steps at {fps:g} fps, the video {count}")
    write_array_store(truth_path, {"actions": truth[:count]},
                      {"kind": "truth", "game": attrs["game"], "level": attrs["level"], "style": attrs["style"],
                       "episode": attrs["episode"], "fps": fps, "frames": count,
                       "provenance": {"recording": os.fspath(raw_prefix)}})


def ingest_video(
    video: str | os.PathLike,
    out: str | os.PathLike,
    *,
    height: int,
    width: int,
    fps: float,
    game: str | None = None,
    level: str | None = None,
    style: str = "web",
    chunk_frames: int = 64,
    progress: bool = True,
    truth_from: str | os.PathLike | None = None,
    truth_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Turn a video into an unlabelled store at `out`; returns the store's `swag` attributes.

    `truth_from` names the raw recording a web video was made from (`swag make-web-video`): its
    actions, resampled to `fps` over the same time steps, go to a truth store at `truth_path`
    that only evaluation reads, so the IDM's labels of web-style video can be scored.
    """
    from tqdm import tqdm

    from swag.ingest.common import sha256_file
    from swag.store import StoreWriter

    video = Path(video)
    if height < 1 or width < 1 or fps <= 0:
        raise SwagError(f"{out}: height, width and fps must be positive, got {height}x{width} @ {fps}")
    info = probe(video)
    crop, samples = detect_crop(video, info)
    if info.fps and fps > info.fps + 1e-6:
        log.warning("%s: %g fps is above the video's %g fps; frames will repeat", video, fps, info.fps)
    attrs = {
        "kind": "video",
        "game": game,
        "level": level,
        "style": style,
        "episode": video.stem,
        "source_fps": info.fps,
        "provenance": {
            "source_files": {video.name: {"path": os.fspath(video), "sha256": sha256_file(video)}},
            "codec": info.codec,
            "source_width": info.width,
            "source_height": info.height,
            "source_frames": info.frames,
            "source_duration": info.duration,
            "crop": asdict(crop),
            "scale": crop.scale,
            "crop_samples": samples,
            "border_threshold": BORDER_THRESHOLD,
            "resize": "cv2.INTER_AREA of the crop (in Y'CbCr for 4:2:0 video)",
            "resample": "frame on screen at t0 + k / fps",
            "swag_version": swag.__version__,
        },
    }
    if (truth_from is None) != (truth_path is None):
        raise SwagError(f"{out}: truth_from and truth_path go together")
    if truth_path is not None:
        attrs["truth"] = os.fspath(truth_path)
    expected = math.floor(info.duration * fps) if info.duration else None
    batch = np.empty((chunk_frames, height, width, 3), np.uint8)
    times = np.empty(chunk_frames, np.float64)
    count = 0
    with StoreWriter(out, height=height, width=width, fps=fps, attrs=attrs, chunk_frames=chunk_frames,
                     has_actions=False, info_keys=("source_time",)) as writer:
        filled = 0
        with tqdm(total=expected, unit="frame", desc=f"ingest {video.name}", disable=not progress) as bar:
            for frame, time in iter_resampled(video, fps):
                if (frame.height, frame.width) != (info.height, info.width):
                    raise SwagError(f"{video}: frame size changes mid-video ({frame.width}x{frame.height})")
                batch[filled] = frame_to_pipeline(frame, crop, height, width)
                times[filled] = time
                filled += 1
                count += 1
                if filled == chunk_frames:
                    writer.append(batch, None, {"source_time": times})
                    filled = 0
                bar.update()
            if filled:
                writer.append(batch[:filled], None, {"source_time": times[:filled]})
        if count == 0:
            raise SwagError(f"{video}: video is shorter than one frame at {fps:g} fps")
        promised = info.frames / info.fps if info.frames and info.fps else info.duration  # seconds
        if promised and count < 0.9 * math.floor(promised * fps):
            raise SwagError(f"{video}: video is truncated (decoded {count / fps:.1f} s, "
                            f"the container promises {promised:.1f} s)")
        if truth_from is not None:
            _write_truth(truth_from, truth_path, count, fps, attrs)
    log.info("ingested %s: crop %dx%d at (%d, %d), %d frames at %g fps into %s", video, crop.width, crop.height,
             crop.x, crop.y, count, fps, out)
    return {**attrs, "frames": count, "fps": float(fps), "height": height, "width": width, "has_actions": False}
