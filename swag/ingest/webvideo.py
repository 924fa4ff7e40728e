"""One of our recordings -> a realistic web video of it, to exercise `ingest-video`.

What a typical upload of NES play looks like: the 256x240 picture upscaled x2-x3
(nearest, or smoothed by the capture chain), letterboxed/pillarboxed into a 16:9
frame (1280x720 or 854x480), 30 fps, lossy H.264 (yuv420p, crf 23-28), sometimes a
small channel logo and a timer box. Every choice not given is drawn from `seed`.
The truth (the actions) stays in the raw recording; the sidecar `OUT.web.json` holds
only the geometry, so tests can check what `ingest-video` recovers.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from swag.errors import SwagError
from swag.store import atomic_write_text

log = logging.getLogger(__name__)

CANVASES = ((1280, 720), (854, 480))
INTERPOLATIONS = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


@dataclass
class WebStyle:
    """How the upload looks; `draw` fills the fields left None from a seed."""

    canvas_width: int | None = None
    canvas_height: int | None = None
    scale: float | None = None  # picture size / 256
    interpolation: str | None = None  # nearest | linear | cubic
    crf: int | None = None
    fps: float = 30.0
    overlay: bool | None = None  # a logo in a bar and a timer box
    background: tuple[int, int, int] | None = None  # the bars' colour

    def draw(self, seed: int) -> WebStyle:
        rng = np.random.default_rng(seed)
        style = WebStyle(**asdict(self))
        if style.canvas_width is None or style.canvas_height is None:
            style.canvas_width, style.canvas_height = CANVASES[int(rng.integers(len(CANVASES)))]
        if style.scale is None:
            fits = [s for s in (2.0, 2.5, 3.0) if 240 * s <= style.canvas_height and 256 * s <= style.canvas_width]
            style.scale = float(rng.choice(fits)) if fits else min(style.canvas_height / 240, style.canvas_width / 256)
        if style.interpolation is None:
            style.interpolation = "nearest" if rng.random() < 0.5 else "linear"
        if style.crf is None:
            style.crf = int(rng.integers(23, 29))
        if style.overlay is None:
            style.overlay = bool(rng.random() < 0.5)
        if style.background is None:
            style.background = (0, 0, 0) if rng.random() < 0.8 else tuple(int(v) for v in rng.integers(0, 40, 3))
        return style


def _geometry(style: WebStyle) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the picture in the canvas, centred, on even pixels."""
    width = int(round(256 * style.scale))
    height = int(round(240 * style.scale))
    if width > style.canvas_width or height > style.canvas_height:
        raise SwagError(f"a x{style.scale:g} picture ({width}x{height}) does not fit a "
                        f"{style.canvas_width}x{style.canvas_height} frame")
    x = (style.canvas_width - width) // 2 // 2 * 2
    y = (style.canvas_height - height) // 2 // 2 * 2
    return x, y, width, height


def encode_web_video(frames: Iterable[np.ndarray], source_fps: float, out: str | os.PathLike, style: WebStyle,
                     seed: int = 0) -> dict[str, Any]:
    """Encode 256x240 RGB frames at `source_fps` as a web-style video; returns the geometry written.

    The output is written to a temporary name and renamed when complete.
    """
    out = Path(out)
    if style.canvas_width % 2 or style.canvas_height % 2:
        raise SwagError(f"{out}: canvas {style.canvas_width}x{style.canvas_height} must have even sides for yuv420p")
    x, y, width, height = _geometry(style)
    rng = np.random.default_rng(seed + 1)
    canvas = np.empty((style.canvas_height, style.canvas_width, 3), np.uint8)
    canvas[:] = style.background
    logo = None
    if style.overlay:
        # A logo in the bar beside (or below) the picture, away from the game.
        logo_w, logo_h = max(24, style.canvas_width // 14), max(12, style.canvas_height // 24)
        if x >= logo_w + 16:
            logo = (style.canvas_width - logo_w - 8, 8, logo_w, logo_h)
        elif y >= logo_h + 16:
            logo = (style.canvas_width - logo_w - 8, style.canvas_height - logo_h - 8, logo_w, logo_h)
        logo_colour = tuple(int(v) for v in rng.integers(120, 256, 3))
    interpolation = INTERPOLATIONS[style.interpolation]
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_name(f"{out.name}.tmp-{os.getpid()}.mp4")
    step = source_fps / style.fps
    written = 0
    try:
        with av.open(os.fspath(temp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(style.fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = style.canvas_width, style.canvas_height, "yuv420p"
            stream.options = {"crf": str(style.crf), "preset": "veryfast", "g": str(int(2 * style.fps))}
            next_source = 0.0
            for index, frame in enumerate(frames):
                if index + 1e-9 < next_source:
                    continue  # web video shows the source frame on screen at k / fps
                next_source += step
                picture = cv2.resize(frame, (width, height), interpolation=interpolation)
                canvas[y : y + height, x : x + width] = picture
                if style.overlay:
                    if logo is not None:
                        lx, ly, lw, lh = logo
                        canvas[ly : ly + lh, lx : lx + lw] = logo_colour
                        cv2.putText(canvas, "NES", (lx + 2, ly + lh - 3), cv2.FONT_HERSHEY_SIMPLEX,
                                    lh / 30, (0, 0, 0), 1, cv2.LINE_AA)
                    # A timer box over the picture's top-left corner, as streamers' overlays sit.
                    text = f"{written / style.fps:05.1f}"
                    tw, th = max(40, width // 8), max(14, height // 20)
                    cv2.rectangle(canvas, (x + 4, y + 4), (x + 4 + tw, y + 4 + th), (20, 20, 20), -1)
                    cv2.putText(canvas, text, (x + 6, y + 2 + th), cv2.FONT_HERSHEY_SIMPLEX, th / 30,
                                (255, 255, 255), 1, cv2.LINE_AA)
                for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                    container.mux(packet)
                written += 1
            for packet in stream.encode():
                container.mux(packet)
        if written == 0:
            raise SwagError(f"{out}: no frames to encode")
        os.replace(temp, out)
    finally:
        temp.unlink(missing_ok=True)
    return {"crop": {"x": x, "y": y, "width": width, "height": height}, "frames": written, **asdict(style)}


def make_web_video(prefix: str | os.PathLike, out: str | os.PathLike, *, seed: int = 0,
                   style: WebStyle | None = None) -> dict[str, Any]:
    """Render the recording at `prefix` as a web video at `out`; also writes `OUT.web.json` (geometry)."""
    from swag.recording import read_recording

    meta, frames, _actions, _infos = read_recording(prefix)
    style = (style or WebStyle()).draw(seed)
    result = encode_web_video(frames, float(meta["fps"]), out, style, seed)
    sidecar = {"source": os.fspath(prefix), "seed": seed, "game": meta.get("game"), "level": meta.get("level"),
               **result}
    sidecar_path = Path(out).with_suffix(".web.json")
    atomic_write_text(json.dumps(sidecar, indent=2) + "\n", sidecar_path)
    log.info("%s: %d frames, %dx%d, picture x%g at (%d, %d), crf %d", out, result["frames"], style.canvas_width,
             style.canvas_height, style.scale, result["crop"]["x"], result["crop"]["y"], style.crf)
    return sidecar
