"""Web video ingest speed next to plain FFmpeg (PyAV) decoding of the same file.

The file is what `make-web-video` produces: SMB 1-1 play upscaled x3 into 1280x720,
30 fps, H.264 crf 26, 2 s keyframe interval. Ingest (both passes: keyframe sampling for
the crop, then decode + resample + crop + resize + store) must keep at least 0.7x the
speed of decoding alone. Both decoders use the same threading (PyAV "AUTO"), and the
two are timed alternately, best of three each, so machine noise hits both alike.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _make_video(path: Path, source_frames: int) -> None:
    from swag import games
    from swag.ingest.webvideo import WebStyle, encode_web_video

    env = games.make("smb1", "1-1")
    frame, _ = env.reset()
    rng = np.random.default_rng(0)
    frames = [frame]
    for _ in range(source_frames - 1):
        frame, _, terminated, truncated, _ = env.step(int(rng.choice([128, 130, 129, 131, 0])))
        frames.append(frame)
        if terminated or truncated:
            frame, _ = env.reset()
    env.close()
    encode_web_video(frames, 60.0, path, WebStyle(1280, 720, 3.0, "nearest", 26, 30.0, True, (0, 0, 0)))


def _decode_only(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def run() -> list[dict]:
    import cv2
    import torch

    from swag.ingest.video import ingest_video

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    work = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    try:
        video = work / "web.mp4"
        _make_video(video, 2400)  # 40 s of play -> 1200 frames at 30 fps
        frames = _decode_only(video)
        decode_times, ingest_times = [], []
        for attempt in range(3):
            started = time.perf_counter()
            _decode_only(video)
            decode_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            ingest_video(video, work / f"out{attempt}.zarr", height=60, width=64, fps=20, progress=False)
            ingest_times.append(time.perf_counter() - started)
        decode_fps = frames / min(decode_times)
        ingest_fps = frames / min(ingest_times)
        return [{
            "benchmark": "ingest-video 1280x720 -> 64x60@20 fps",
            "measured": ingest_fps,
            "reference": decode_fps,
            "ratio": ingest_fps / decode_fps,
            "unit": "source fps",
            "goal": ">= 0.7x PyAV decode-only",
        }]
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    for row in run():
        print(row)
