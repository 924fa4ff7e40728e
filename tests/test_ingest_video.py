"""Web video ingest: border detection, NES aspect, fps resampling, pixel fidelity, bad input.

Fixtures are made here: SMB 1-1 frames from our emulator, turned into web-style videos
(upscaled, letterboxed into 16:9, 30 fps, lossy H.264) by `swag.ingest.webvideo`.
"""

from __future__ import annotations

import subprocess
import sys

import av
import numpy as np
import pytest

from swag import games
from swag.errors import SwagError
from swag.ingest.video import Crop, detect_crop, ingest_video, snap_to_nes, to_pipeline
from swag.ingest.webvideo import WebStyle, encode_web_video
from swag.store import open_store

SOURCE_FRAMES = 240  # 4 s at 60 fps


@pytest.fixture(scope="module")
def smb_frames() -> list[np.ndarray]:
    env = games.make("smb1", "1-1")
    frame, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    frames = [frame]
    for _ in range(SOURCE_FRAMES - 1):
        frame, *_ = env.step(int(rng.choice([128, 130, 129, 131])))
        frames.append(frame)
    env.close()
    return frames


@pytest.fixture(scope="module")
def web_x3(smb_frames, tmp_path_factory) -> tuple:
    """x3 nearest, pillarboxed into 1280x720, crf 26, with a logo in the bar and a timer over the game."""
    path = tmp_path_factory.mktemp("web") / "x3.mp4"
    geometry = encode_web_video(smb_frames, 60.0, path, WebStyle(1280, 720, 3.0, "nearest", 26, 30.0, True, (0, 0, 0)))
    return path, geometry


def test_x3_letterboxed_video_comes_back_to_nes_frames(web_x3, smb_frames, tmp_path):
    path, geometry = web_x3
    assert geometry["crop"] == {"x": 256, "y": 0, "width": 768, "height": 720}
    out = tmp_path / "x3.zarr"
    attrs = ingest_video(path, out, height=60, width=64, fps=30, progress=False)
    assert attrs["provenance"]["crop"] == {"x": 256, "y": 0, "width": 768, "height": 720}
    assert attrs["provenance"]["scale"] == 3.0
    assert attrs["provenance"]["codec"] == "h264"
    store = open_store(out)
    assert store.attrs["kind"] == "video" and store.attrs["has_actions"] is False and store.actions is None
    assert store.attrs["source_fps"] == pytest.approx(30.0)
    assert len(store) == SOURCE_FRAMES // 2
    # Web frame k (30 fps) shows source frame 2k (60 fps); so does ingest frame k at 30 fps.
    got = store.frames[:].astype(np.int16)
    want = np.stack([to_pipeline(smb_frames[2 * k], 60, 64) for k in range(len(store))]).astype(np.int16)
    error = np.abs(got - want).mean()
    assert error < 8, f"mean abs error {error:.2f}/255 at 64x60"  # bound: 8/255, the timer box included
    times = store.info["source_time"][:]
    np.testing.assert_allclose(times, np.arange(len(store)) / 30.0, atol=1e-3)


def test_nes_resolution_error_is_bounded(web_x3, smb_frames, tmp_path):
    path, _ = web_x3
    out = tmp_path / "full.zarr"
    ingest_video(path, out, height=240, width=256, fps=30, progress=False)
    got = open_store(out).frames[:40].astype(np.int16)
    want = np.stack(smb_frames[0:80:2]).astype(np.int16)
    # Outside the timer box (top-left 50x20 NES pixels), lossy H.264 leaves < 8/255 per pixel on average.
    mask = np.ones((240, 256), bool)
    mask[:20, :50] = False
    error = np.abs(got - want)[:, mask].mean()
    assert error < 8, f"mean abs error {error:.2f}/255 at 256x240"


def test_fps_resampling_uses_timestamps(web_x3, tmp_path):
    path, _ = web_x3
    out = tmp_path / "20fps.zarr"
    attrs = ingest_video(path, out, height=30, width=32, fps=20, progress=False)
    store = open_store(out)
    assert attrs["frames"] == len(store) == 80  # 4 s at 20 fps
    times = store.info["source_time"][:]
    # Step k shows the 30 fps frame on screen at k/20 s: frame floor(1.5 k).
    np.testing.assert_allclose(times, np.floor(np.arange(80) * 1.5 + 1e-9) / 30.0, atol=1e-3)


@pytest.mark.parametrize(
    "style, crop",
    [
        (WebStyle(1280, 720, 2.0, "linear", 28, 30.0, False, (0, 0, 0)), (384, 120, 512, 480)),  # both bars
        (WebStyle(854, 480, 2.0, "cubic", 23, 30.0, True, (30, 20, 10)), (170, 0, 512, 480)),  # coloured bars
        (WebStyle(1280, 720, 2.5, "linear", 25, 30.0, True, (0, 0, 0)), (320, 60, 640, 600)),
    ],
)
def test_detects_crop_in_other_layouts(style, crop, smb_frames, tmp_path):
    path = tmp_path / "web.mp4"
    geometry = encode_web_video(smb_frames[:120], 60.0, path, style)
    assert tuple(geometry["crop"].values()) == crop
    found, samples = detect_crop(path)
    assert samples >= 12
    assert (found.x, found.y, found.width, found.height) == crop


@pytest.mark.parametrize(
    "name, codec, pix_fmt, options",
    [
        ("vp9.webm", "libvpx-vp9", "yuv420p", {"crf": "34", "b:v": "0", "deadline": "realtime", "cpu-used": "8"}),
        ("h264_444.mkv", "libx264", "yuv444p", {"crf": "23", "preset": "ultrafast"}),  # the RGB path
    ],
)
def test_other_codecs_and_containers(name, codec, pix_fmt, options, smb_frames, tmp_path):
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg has no {codec}")
    path = tmp_path / name
    canvas = np.zeros((480, 854, 3), np.uint8)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = 854, 480, pix_fmt
        stream.options = options
        for frame in smb_frames[:120:2]:
            canvas[:, 170:682] = np.repeat(np.repeat(frame, 2, axis=0), 2, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "out.zarr"
    attrs = ingest_video(path, out, height=60, width=64, fps=15, progress=False)
    assert attrs["provenance"]["crop"] == {"x": 170, "y": 0, "width": 512, "height": 480}
    got = open_store(out).frames[:].astype(np.int16)
    want = np.stack([to_pipeline(smb_frames[4 * k], 60, 64) for k in range(len(got))]).astype(np.int16)
    assert len(got) == 30 and np.abs(got - want).mean() < 8


def test_picture_stretched_to_4_3_is_cropped_whole(smb_frames, tmp_path):
    import cv2

    path = tmp_path / "tv.mp4"
    canvas = np.zeros((720, 1280, 3), np.uint8)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        for frame in smb_frames[:120:2]:
            canvas[:, 160:1120] = cv2.resize(frame, (960, 720), interpolation=cv2.INTER_NEAREST)
            for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    crop, _ = detect_crop(path)
    assert crop == Crop(160, 0, 960, 720)


def test_snap_recovers_black_game_rows_hidden_in_the_bars():
    # A x3 picture centred in 1280x720 whose top 24 rows were black, like the bars.
    found = snap_to_nes((256, 1024, 24, 720), 1280, 720)
    assert found == Crop(256, 0, 768, 720)
    # Compression ringing a pixel or two past the edges still snaps to the x2 picture.
    assert snap_to_nes((382, 898, 119, 601), 1280, 720) == Crop(384, 120, 512, 480)


def test_make_web_video_then_ingest_through_the_cli(smb_frames, tmp_path):
    from swag.recording import RecordingWriter

    prefix = tmp_path / "rec"
    meta = {"game": "smb1", "level": "1-1", "rom_sha1": games.get("smb1").rom_sha1, "demonstrator": "test",
            "style": "test", "seed": 0}
    with RecordingWriter(prefix, meta) as writer:
        for frame in smb_frames[:120]:
            writer.write(frame, 128, {})
    video = tmp_path / "web.mp4"
    swag = [sys.executable, "-m", "swag"]
    made = subprocess.run([*swag, "make-web-video", str(prefix), str(video), "--seed", "3", "--canvas", "854x480"],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    sidecar = __import__("json").loads(video.with_suffix(".web.json").read_text())
    assert sidecar["frames"] == 60 and sidecar["canvas_width"] == 854 and 23 <= sidecar["crf"] <= 28
    assert "actions" not in sidecar  # the truth stays with the recording
    out = tmp_path / "web.zarr"
    done = subprocess.run([*swag, "ingest-video", str(video), str(out), "--height", "60", "--width", "64",
                           "--fps", "15"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    store = open_store(out)
    assert len(store) == 30
    assert store.attrs["provenance"]["crop"] == sidecar["crop"]


def test_web_video_at_the_pipeline_rate_gets_a_truth_for_every_frame(smb_frames, tmp_path):
    # 61 frames at 60 fps make a 31-frame 30 fps web video whose last frame shows for half a step;
    # ingesting it at 30 fps must still give each of its 31 steps a true action (with
    # data.fps: 30 the demo DAG failed so: "recording covers 762 steps at 30 fps, the video 763").
    from swag.recording import RecordingWriter

    prefix = tmp_path / "rec"
    meta = {"game": "smb1", "level": "1-1", "rom_sha1": games.get("smb1").rom_sha1, "demonstrator": "test",
            "style": "test", "seed": 0}
    with RecordingWriter(prefix, meta) as writer:
        for index, frame in enumerate(smb_frames[:61]):
            writer.write(frame, 1 if index == 60 else 128, {})  # A on the last frame only
    video = tmp_path / "web.mp4"
    swag = [sys.executable, "-m", "swag"]
    made = subprocess.run([*swag, "make-web-video", str(prefix), str(video), "--seed", "3", "--canvas", "854x480"],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    out, truth = tmp_path / "web.zarr", tmp_path / "truth.zarr"
    done = subprocess.run([*swag, "ingest-video", str(video), str(out), "--height", "60", "--width", "64",
                           "--fps", "30", "--truth-from", str(prefix), "--truth", str(truth)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    actions = open_store(truth, need_frames=False).actions[:]
    assert len(open_store(out)) == len(actions) == 31
    assert actions[-1] == 1 and set(actions[:-1].tolist()) == {128}


# --- bad input -----------------------------------------------------------------------------------


def _write_video(path, frames, fps=30):
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _rejects(video, tmp_path, message):
    out = tmp_path / "out.zarr"
    with pytest.raises(SwagError, match=message) as error:
        ingest_video(video, out, height=60, width=64, fps=20, progress=False)
    assert "\n" not in str(error.value) and str(video) in str(error.value)
    assert not out.exists() and not list(tmp_path.glob("out.zarr*"))


def test_rejects_zero_frame_video(tmp_path):
    for name in ("empty.avi", "empty.mp4"):  # AVI keeps the empty video track; MP4 drops it
        path = tmp_path / name
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
            container.start_encoding()
        _rejects(path, tmp_path, "no frames|no video stream")


def test_rejects_non_video_file(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 100)
    _rejects(path, tmp_path, "not a video FFmpeg can read")


def test_rejects_audio_only_file(tmp_path):
    path = tmp_path / "tone.wav"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        samples = (np.sin(np.arange(8000) / 5) * 3000).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    _rejects(path, tmp_path, "no video stream")


def test_rejects_unsupported_codec(tmp_path):
    # A Matroska file whose video track claims a codec id FFmpeg has no decoder for.
    path = tmp_path / "odd.mkv"
    source = tmp_path / "ok.mkv"
    rng = np.random.default_rng(0)
    _write_video(source, [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(5)])
    data = source.read_bytes().replace(b"V_MPEG4/ISO/AVC", b"V_SWAG/NOCODEC!")
    path.write_bytes(data)
    _rejects(path, tmp_path, "codec|not a video|damaged|no frames")


def test_rejects_truncated_file(web_x3, tmp_path):
    path, _ = web_x3
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _rejects(cut, tmp_path, "truncated|not a video|damaged")


@pytest.mark.parametrize("name, options", [("cut.mkv", {}), ("cut_faststart.mp4", {"movflags": "faststart"})])
def test_rejects_truncated_file_with_index_in_front(name, options, smb_frames, tmp_path):
    # With the index first, the container opens and promises more than the data holds.
    whole = tmp_path / f"whole{name[-4:]}"
    with av.open(str(whole), mode="w", options=options) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 512, 480, "yuv420p"
        stream.options = {"g": "30"}
        for frame in smb_frames[:120]:
            big = np.repeat(np.repeat(frame, 2, axis=0), 2, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(big, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    cut = tmp_path / name
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    _rejects(cut, tmp_path, "truncated")


def test_rejects_solid_colour_video(tmp_path):
    path = tmp_path / "blue.mp4"
    _write_video(path, [np.full((240, 320, 3), (20, 40, 200), np.uint8) for _ in range(30)])
    _rejects(path, tmp_path, "no NES picture")


def test_cli_reports_bad_video_on_one_line(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video")
    result = subprocess.run([sys.executable, "-m", "swag", "ingest-video", str(path), str(tmp_path / "o.zarr")],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith("swag: error: ") and result.stderr.count("\n") == 1
    assert not (tmp_path / "o.zarr").exists()
