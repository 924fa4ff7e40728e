"""Recording and conversion speed, each next to the bare operation it wraps, plus the codec choices.

(a) Recording (demonstrator + emulator + lossless encoder thread + jsonl, `record_episode`)
    against the raw emulator step rate (nes-py `env.step` with a fixed action, no frame
    copies, no info flattening). Goal >= 0.8x.
(b) Conversion (decode + resample + INTER_AREA resize + Zarr write, `convert_recording`)
    against decoding the same mp4 to RGB arrays alone, on a 3600-frame recording of real
    play (the demo config's episode length). Goal >= 0.7x.
(c) The codecs: libx264rgb crf 0 (what recordings use) against libx264 yuv444p crf 0 (the
    first design), and zstd-3 (the store default) against blosc-zstd-3.

Every pair is timed alternately in the same run (best of ROUNDS), so machine noise hits
both sides alike; only the ratios mean anything on a shared machine.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

ROUNDS = 3
RECORD_FRAMES = 3600  # the demo config's max_frames; a cautious 1-1 episode usually ends sooner
CONVERT_FRAMES = 3600  # a full-length demo-config episode: fixed per-store costs weigh as in use
FIXED_ACTION = 128  # right: Mario walks, meets the first goomba, the env resets


def _raw_step_rate(frames: int) -> tuple[float, float]:
    """(frames per wall second, frames per CPU second) of the bare emulator."""
    from swag import games

    env = games.make("smb1", "1-1").unwrapped  # the bare nes-py environment
    env.reset(seed=0)
    started, started_cpu = time.perf_counter(), time.process_time()
    for _ in range(frames):
        _, _, terminated, truncated, _ = env.step(FIXED_ACTION)
        if terminated or truncated:
            env.reset()
    rates = frames / (time.perf_counter() - started), frames / (time.process_time() - started_cpu)
    env.close()
    return rates


def _record_rate(prefix: Path, frames: int) -> tuple[float, float, int]:
    """(frames per wall second, frames per CPU second of all threads, frames) of record_episode."""
    from swag.recording import record_episode

    started, started_cpu = time.perf_counter(), time.process_time()
    # seed 0 clears 1-1 in ~2200 frames: an episode of typical length, so fixed costs weigh as in use
    meta = record_episode("smb1", "1-1", "cautious", 0, frames, prefix, progress_bar=False)
    wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    return meta["frames"] / wall, meta["frames"] / cpu, meta["frames"]


def _fixed_length_recording(prefix: Path, frames: int) -> None:
    """A recording of exactly `frames` frames of real SMB play (run right, random jumps, reset on
    death), so the conversion figures do not depend on how long a demonstrator survives."""
    from swag import games
    from swag.recording import RecordingWriter

    env = games.make("smb1", "1-1")
    rng = np.random.default_rng(0)
    frame, info = env.reset(seed=0)
    with RecordingWriter(prefix, {"game": "smb1", "level": "1-1", "style": "bench", "seed": 0}) as writer:
        for _ in range(frames):
            action = 0b10000011 if rng.random() < 0.3 else 0b10000010  # right+B, sometimes +A
            writer.write(frame, action, info)
            frame, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                frame, info = env.reset()
    env.close()


def _decode_rate(video: Path, to_rgb: bool = True) -> tuple[float, float]:
    """(frames per wall second, frames per CPU second) of decoding alone."""
    from swag.recording import iter_decoded

    started, started_cpu = time.perf_counter(), time.process_time()
    count = 0
    for frame in iter_decoded(video):
        if to_rgb:
            frame.to_ndarray(format="rgb24")
        count += 1
    return count / (time.perf_counter() - started), count / (time.process_time() - started_cpu)


def _convert_rate(prefix: Path, out: Path, frames: int, **options) -> tuple[float, float]:
    """(source frames per wall second, per CPU second) of convert_recording."""
    from swag.convert import convert_recording

    started, started_cpu = time.perf_counter(), time.process_time()
    convert_recording(prefix, out, progress_bar=False, **options)
    return frames / (time.perf_counter() - started), frames / (time.process_time() - started_cpu)


def _encode(frames: np.ndarray, path: Path, codec: str, pix_fmt: str) -> tuple[float, float, float]:
    """(frames/s, bytes per frame, mean absolute error after decoding) of one codec setting."""
    import av

    from swag.recording import iter_video_frames

    started = time.perf_counter()
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=60)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    rate = len(frames) / (time.perf_counter() - started)
    decoded = np.stack(list(iter_video_frames(path)))
    error = float(np.abs(decoded.astype(np.int16) - frames.astype(np.int16)).mean())
    return rate, path.stat().st_size / len(frames), error


def _store_codec(frames: np.ndarray, path: Path, compressor) -> tuple[float, float]:
    """(compression ratio, frames/s written) of one Zarr codec on 64-frame chunks."""
    from swag.store import StoreWriter

    shutil.rmtree(path, ignore_errors=True)
    started = time.perf_counter()
    with StoreWriter(path, height=frames.shape[1], width=frames.shape[2], fps=20, attrs={}, has_actions=False,
                     compressor=compressor) as writer:
        writer.append(frames)
    rate = len(frames) / (time.perf_counter() - started)
    size = sum(file.stat().st_size for file in (path / "frames").rglob("*") if file.is_file())
    return frames.nbytes / size, rate


def row(benchmark, measured, reference, unit, goal):
    return {"benchmark": benchmark, "measured": float(measured), "reference": float(reference),
            "ratio": float(measured) / float(reference) if reference else float("nan"), "unit": unit, "goal": goal}


def run() -> list[dict]:
    import cv2
    from zarr.codecs import BloscCodec

    from swag.recording import read_recording
    from swag.store import default_compressor

    cv2.setNumThreads(1)
    work = Path(tempfile.mkdtemp(prefix="bench_data_"))
    try:
        prefix = work / "episode"
        raw, record = [], []
        for _ in range(ROUNDS):
            wall, cpu, frames = _record_rate(prefix, RECORD_FRAMES)
            record.append((wall, cpu))
            raw.append(_raw_step_rate(frames))
        rows = [
            row(f"record: record_episode vs raw env.step ({frames} fr)", max(r[0] for r in record),
                max(r[0] for r in raw), "frames/s", ">= 0.8"),
            # CPU seconds of all threads: the ratio if the encoder thread found no free core
            row("record per CPU second vs raw env.step", max(r[1] for r in record), max(r[1] for r in raw),
                "frames/cpu-s", "(info: serial bound)"),
        ]

        prefix = work / "fixed"
        frames = CONVERT_FRAMES
        _fixed_length_recording(prefix, frames)
        decode, decode_bare, small, full = [], [], [], []
        for round_ in range(ROUNDS):
            # fresh output paths: the pipeline never converts onto an existing store
            decode.append(_decode_rate(prefix.with_suffix(".mp4")))
            small.append(_convert_rate(prefix, work / f"small{round_}.zarr", frames, height=60, width=64, fps=20))
            decode_bare.append(_decode_rate(prefix.with_suffix(".mp4"), to_rgb=False))
            full.append(_convert_rate(prefix, work / f"full{round_}.zarr", frames, height=240, width=256, fps=60))
        rows += [
            row(f"convert 60->20 fps, 64x60 vs decode to RGB ({frames} fr)", max(r[0] for r in small),
                max(r[0] for r in decode), "src frames/s", ">= 0.7"),
            row(f"convert 60 fps, 256x240 vs decode to RGB ({frames} fr)", max(r[0] for r in full),
                max(r[0] for r in decode), "src frames/s", ">= 0.7"),
            row("convert 60->20 fps per CPU second vs decode", max(r[1] for r in small), max(r[1] for r in decode),
                "frames/cpu-s", "(info: work ratio)"),
            row("decode without RGB conversion vs with", max(r[0] for r in decode_bare), max(r[0] for r in decode),
                "frames/s", "(info)"),
        ]

        _, stream, _, _ = read_recording(prefix)
        frames_rgb = np.stack([frame for _, frame in zip(range(600), stream)])
        rgb = [_encode(frames_rgb, work / "rgb.mp4", "libx264rgb", "rgb24") for _ in range(ROUNDS)]
        yuv = [_encode(frames_rgb, work / "yuv.mp4", "libx264", "yuv444p") for _ in range(ROUNDS)]
        rows += [
            row("video: libx264rgb vs libx264 yuv444p encode", max(r[0] for r in rgb), max(y[0] for y in yuv),
                "frames/s", ">= 0.8 (lossless at similar speed)"),
            row("video: libx264rgb vs yuv444p bytes/frame", rgb[0][1], yuv[0][1], "bytes/frame", "<= 1.2"),
            row("video: libx264rgb vs yuv444p mean abs error", rgb[0][2], yuv[0][2], "levels/255", "0 (lossless)"),
        ]

        small_frames = np.stack([cv2.resize(f, (64, 60), interpolation=cv2.INTER_AREA) for f in frames_rgb])
        blosc = BloscCodec(cname="zstd", clevel=3, shuffle="noshuffle")
        for name, data in (("256x240", frames_rgb), ("64x60", small_frames)):
            zstd = [_store_codec(data, work / "zstd.zarr", default_compressor()) for _ in range(ROUNDS)]
            other = [_store_codec(data, work / "blosc.zarr", blosc) for _ in range(ROUNDS)]
            rows += [
                row(f"store codec {name}: zstd-3 vs blosc-zstd-3 size", max(z[0] for z in zstd),
                    max(o[0] for o in other), "x smaller", ">= 1"),
                row(f"store codec {name}: zstd-3 vs blosc-zstd-3 write", max(z[1] for z in zstd),
                    max(o[1] for o in other), "frames/s", ">= 1"),
            ]
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    for result in run():
        print(f"{result['benchmark']:52} {result['measured']:10.1f} {result['reference']:10.1f} "
              f"{result['ratio']:6.2f}  {result['unit']:12} {result['goal']}")
