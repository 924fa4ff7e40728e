"""Zarr v3 stores: one episode's frames, actions and per-frame info, written atomically.

Layout (see docs/design.md):

    EPISODE.zarr/
        frames      uint8 (T, H, W, 3), chunks (chunk_frames, H, W, 3), RGB
        actions     uint8 (T,)            absent when the store has no (or hidden) labels
        info/<key>  numeric (T,)          one per per-frame info field
        attrs["swag"] = {"format_version": 1, "fps", "height", "width", "frames": T,
                         "has_actions", "info_keys", ...caller's attrs (kind, game, provenance...)}

Every writer builds the store under `PATH.tmp-<pid>` and renames it into place only
when it is complete, so a store that exists is always whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from swag.errors import SwagError


def file_sha256(path) -> str:
    """Hex sha256 of a file's bytes (identifies a checkpoint in provenance and run keys)."""
    import hashlib

    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()

FORMAT_VERSION = 1
ATTRS_KEY = "swag"


def default_compressor() -> ZstdCodec:
    # Measured on 600 SMB 1-1 frames in 64-frame chunks (benchmarks/bench_data.py, "store codec" rows):
    # plain zstd level 3 shrank them 150-230x at 256x240 and 70-115x at 64x60 (depending on the play),
    # 1.7-2.4x smaller than blosc-zstd-3 (whose small blocks lose the repetition between frames), and
    # wrote full-size frames about twice as fast.
    return ZstdCodec(level=3)


# --- atomic placement ----------------------------------------------------------------------------


def _temp_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def remove_path(path: Path) -> None:
    """Delete a file or directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def replace_path(temp: Path, path: Path) -> None:
    """Move a finished file or directory onto `path`, replacing what was there.

    A directory cannot be renamed over a non-empty one, so an old store is first
    moved aside; the window in which `path` is missing is two renames long.
    """
    temp, path = Path(temp), Path(path)
    if path.exists() or path.is_symlink():
        old = path.with_name(f"{path.name}.old-{os.getpid()}")
        remove_path(old)
        os.replace(path, old)
        os.replace(temp, path)
        remove_path(old)
    else:
        os.replace(temp, path)


@contextlib.contextmanager
def atomic_store_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path to build a store (or file) in; rename it onto
    `path` on success, remove it on any exception.

        with atomic_store_path("labels/ep.zarr") as temp:
            group = zarr.open_group(temp, mode="w", zarr_format=3)
            ...
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_path(path)
    remove_path(temp)
    try:
        yield temp
    except BaseException:
        remove_path(temp)
        raise
    replace_path(temp, path)


def atomic_write_text(text: str, path: str | os.PathLike) -> None:
    """Write a small file whole (`atomic_store_path`), so that a reader, or Snakemake after a
    crash, never finds half of it."""
    with atomic_store_path(path) as temp:
        temp.write_text(text, encoding="utf-8")


def atomic_save_figure(fig, path: str | os.PathLike, dpi: int) -> None:
    """Save a matplotlib figure whole (`atomic_store_path`), in the format PATH's suffix names
    (the temp name hides the suffix from matplotlib)."""
    path = Path(path)
    with atomic_store_path(path) as temp:
        fig.savefig(temp, dpi=dpi, format=path.suffix.lstrip("."))


def read_json(path: str | os.PathLike, what: str) -> Any:
    """A small JSON file's value; a missing, unreadable or malformed file is a one-line SwagError
    naming the file and `what` it should have been (e.g. "dataset index")."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SwagError(f"{path}: {what} not found") from None
    except OSError as error:
        raise SwagError(f"{path}: cannot read {what} ({error.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SwagError(f"{path}: {what} is not valid JSON ({error})") from None


# --- writing -------------------------------------------------------------------------------------


class StoreWriter:
    """Streams frames (and actions, info) into a new store; a context manager.

    Writes whole chunks, resizing the frames array as it goes, on a background thread so
    that compression overlaps the caller's decoding: at most two chunks of frames are in
    memory (one filling, one being written). Actions and info are a few bytes per frame,
    so they are kept in memory and written once on close.

        with StoreWriter(path, height=60, width=64, fps=20, attrs={...}) as writer:
            writer.append(frames, actions, {"x_pos": x})
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        height: int,
        width: int,
        fps: float,
        attrs: Mapping[str, Any],
        chunk_frames: int = 64,
        has_actions: bool = True,
        info_keys: tuple[str, ...] | list[str] = (),
        compressor: Any = None,
    ):
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be positive, got {chunk_frames}")
        self.path = Path(path)
        self.height, self.width, self.fps = int(height), int(width), float(fps)
        self.attrs = dict(attrs)
        self.chunk_frames = int(chunk_frames)
        self.has_actions = bool(has_actions)
        self.info_keys = tuple(info_keys)
        self.compressor = compressor if compressor is not None else default_compressor()
        self.frames_written = 0  # frames handed to the zarr array (written, or being written)
        self._context: contextlib.AbstractContextManager[Path] | None = None

    # The store lives under a temp path until __exit__ renames it.
    def __enter__(self) -> StoreWriter:
        self._context = atomic_store_path(self.path)
        self.temp_path = self._context.__enter__()
        try:
            self.group = zarr.open_group(self.temp_path, mode="w", zarr_format=3)
            self.frames = self.group.create_array(
                "frames",
                shape=(0, self.height, self.width, 3),
                chunks=(self.chunk_frames, self.height, self.width, 3),
                dtype="uint8",
                compressors=self.compressor,
                dimension_names=("time", "height", "width", "channel"),
            )
        except BaseException:
            self._context.__exit__(*sys.exc_info())
            raise
        self._buffer = np.empty((self.chunk_frames, self.height, self.width, 3), np.uint8)
        self._spare = np.empty_like(self._buffer)  # the chunk being written while _buffer fills
        self._buffered = 0
        self._chunk_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._pending: Future | None = None
        self._actions: list[np.ndarray] = []
        self._info: dict[str, list[np.ndarray]] = {key: [] for key in self.info_keys}
        return self

    def __len__(self) -> int:
        return self.frames_written + self._buffered

    def append(
        self,
        frames: np.ndarray,
        actions: np.ndarray | None = None,
        info: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Add n frames uint8 (n, H, W, 3), with their actions uint8 (n,) and info arrays (n,)."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        n = len(frames)
        if frames.dtype != np.uint8 or frames.shape[1:] != (self.height, self.width, 3):
            raise ValueError(
                f"{self.path}: frames must be uint8 (n, {self.height}, {self.width}, 3), "
                f"got {frames.dtype} {frames.shape}"
            )
        if self.has_actions:
            if actions is None:
                raise ValueError(f"{self.path}: store has actions, but append() got none")
            actions = np.asarray(actions)
            if actions.shape != (n,):
                raise ValueError(f"{self.path}: expected {n} actions, got shape {actions.shape}")
            if actions.dtype != np.uint8:
                if actions.size and (actions.min() < 0 or actions.max() > 255):
                    raise ValueError(f"{self.path}: actions must be bytes (0..255)")
                actions = actions.astype(np.uint8)
        elif actions is not None:
            raise ValueError(f"{self.path}: store was opened with has_actions=False, but got actions")
        info = {key: np.asarray(values) for key, values in (info or {}).items()}
        if set(info) != set(self.info_keys):
            raise ValueError(f"{self.path}: info keys {sorted(info)} differ from declared {sorted(self.info_keys)}")
        for key, values in info.items():
            if values.shape != (n,):
                raise ValueError(f"{self.path}: info {key!r} must have shape ({n},), got {values.shape}")

        # All checked: only now change state, so a refused append leaves the writer as it was.
        if self.has_actions:
            self._actions.append(actions.copy())
        for key, values in info.items():
            self._info[key].append(values.copy())

        # Fill the one-chunk buffer; flush it whenever it is full.
        start = 0
        while start < n:
            take = min(n - start, self.chunk_frames - self._buffered)
            self._buffer[self._buffered : self._buffered + take] = frames[start : start + take]
            self._buffered += take
            start += take
            if self._buffered == self.chunk_frames:
                self._flush()

    def _flush(self) -> None:
        if self._buffered == 0:
            return
        self._wait()  # the previous chunk is on disk and _spare is free again
        start, stop = self.frames_written, self.frames_written + self._buffered
        self._pending = self._chunk_writer.submit(self._write_chunk, start, stop, self._buffer[: self._buffered])
        self._buffer, self._spare = self._spare, self._buffer
        self.frames_written = stop
        self._buffered = 0

    def _write_chunk(self, start: int, stop: int, chunk: np.ndarray) -> None:
        self.frames.resize((stop, self.height, self.width, 3))
        self.frames[start:stop] = chunk

    def _wait(self) -> None:
        """Block until the chunk being written is done; re-raise its error here."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def _finish(self) -> None:
        self._flush()
        self._wait()
        total = self.frames_written
        # Small per-frame arrays: one chunk each unless the episode is very long.
        small: dict[str, np.ndarray] = {}
        if self.has_actions:
            small["actions"] = np.concatenate(self._actions) if self._actions else np.zeros(0, np.uint8)
        for key in self.info_keys:
            parts = self._info[key]
            small[f"info/{key}"] = np.concatenate(parts) if parts else np.zeros(0, np.float64)
        if self.info_keys:
            self.group.create_group("info")
        _write_arrays_concurrently(self.temp_path, small, self.compressor)
        attrs = {
            **self.attrs,
            "format_version": FORMAT_VERSION,
            "fps": self.fps,
            "height": self.height,
            "width": self.width,
            "frames": total,
            "has_actions": self.has_actions,
            "info_keys": list(self.info_keys),
        }
        self.group.attrs[ATTRS_KEY] = _json_safe(attrs)

    def __exit__(self, exc_type, exc, traceback) -> None:
        assert self._context is not None
        try:
            if exc_type is None:
                self._finish()
        except BaseException:
            self._chunk_writer.shutdown(wait=True)
            self._context.__exit__(*sys.exc_info())
            raise
        finally:
            self._buffer = self._spare = None  # free the chunks before the rename
        # on an error, let the chunk in flight finish before its directory is removed
        self._chunk_writer.shutdown(wait=True)
        self._context.__exit__(exc_type, exc, traceback)
        self._context = None


def _write_arrays_concurrently(path: Path, arrays: Mapping[str, np.ndarray], compressor: Any) -> None:
    """Create and fill many small 1-D arrays at once. One by one, zarr spends ~5 ms of event-loop
    round trips on each, and a game's 30-odd info fields would cost more than a short episode's frames."""
    if not arrays:
        return
    import asyncio

    import zarr.api.asynchronous as zarr_async
    from zarr.core.sync import sync

    async def write_all() -> None:
        group = await zarr_async.open_group(path, mode="r+", zarr_format=3)

        async def write_one(name: str, values: np.ndarray) -> None:
            array = await group.create_array(
                name, shape=values.shape, chunks=(max(1, min(len(values), 1 << 20)),), dtype=values.dtype,
                compressors=compressor, dimension_names=("time",),
            )
            if len(values):
                await array.setitem(slice(None), values)

        await asyncio.gather(*(write_one(name, values) for name, values in arrays.items()))

    sync(write_all())


def write_array_store(
    path: str | os.PathLike, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any], chunk_len: int = 1 << 20
) -> None:
    """Write a small store of whole arrays (e.g. a truth store with only `actions`) atomically.

    `attrs` are stored under the `swag` attribute with `format_version` added.
    """
    with atomic_store_path(path) as temp:
        group = zarr.open_group(temp, mode="w", zarr_format=3)
        for name, values in arrays.items():
            values = np.asarray(values)
            chunks = (max(1, min(len(values), chunk_len)), *values.shape[1:]) if values.ndim else ()
            array = group.create_array(
                name, shape=values.shape, chunks=chunks, dtype=values.dtype, compressors=default_compressor()
            )
            if values.size:
                array[...] = values
        group.attrs[ATTRS_KEY] = _json_safe({**attrs, "format_version": FORMAT_VERSION})


def _json_safe(value: Any) -> Any:
    """numpy scalars, tuples and paths -> plain JSON types."""
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


# --- reading -------------------------------------------------------------------------------------


class Store:
    """A swag store opened for reading. `frames` and `info` stay lazy; `actions` is loaded."""

    def __init__(self, path: Path, group: zarr.Group, attrs: dict[str, Any]):
        self.path = path
        self.group = group
        self.attrs = attrs
        self.frames: zarr.Array | None = group["frames"] if "frames" in group else None  # uint8 (T, H, W, 3)
        self.actions: np.ndarray | None = group["actions"][:] if "actions" in group else None
        self.info: dict[str, zarr.Array] = {}
        if "info" in group:
            info_group = group["info"]
            self.info = {key: info_group[key] for key in sorted(info_group.array_keys())}

    def __len__(self) -> int:
        if self.frames is None:
            return int(len(self.actions)) if self.actions is not None else int(self.attrs.get("frames", 0))
        return int(self.frames.shape[0])

    @property
    def fps(self) -> float:
        return float(self.attrs["fps"])

    @property
    def height(self) -> int:
        return int(self.attrs.get("height", 0)) if self.frames is None else int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.attrs.get("width", 0)) if self.frames is None else int(self.frames.shape[2])

    @property
    def has_actions(self) -> bool:
        return self.actions is not None

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, frames={len(self)}, {self.height}x{self.width} @ {self.fps:g} fps)"


def open_store(path: str | os.PathLike, *, need_frames: bool = True) -> Store:
    """Open a swag store for reading; SwagError (naming the path) when it is not one.

    `need_frames=False` also accepts frame-less stores such as truth stores, whose
    `frames` is then None.
    """
    path = Path(path)
    attrs = read_store_attrs(path)
    group = zarr.open_group(path, mode="r", zarr_format=3)
    store = Store(path, group, attrs)
    if store.frames is None:
        if need_frames:
            raise SwagError(f"{path}: swag store has no frames array")
        return store
    frames = store.frames
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise SwagError(f"{path}: frames must be uint8 (T, H, W, 3), found {frames.dtype} {frames.shape}")
    if store.actions is not None and store.actions.shape != (len(store),):
        raise SwagError(f"{path}: {len(store.actions)} actions for {len(store)} frames")
    return store


def read_store_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """The `swag` attribute dict of a store, checked for a known format version."""
    path = Path(path)
    if not path.exists():
        raise SwagError(f"{path}: store not found")
    if not (path / "zarr.json").is_file():
        raise SwagError(f"{path}: not a Zarr v3 store (no zarr.json)")
    try:
        group = zarr.open_group(path, mode="r", zarr_format=3)
        attrs = dict(group.attrs)
    except Exception as error:  # zarr raises a zoo of types for a damaged zarr.json
        raise SwagError(f"{path}: cannot open as a Zarr v3 group ({type(error).__name__}: {error})") from None
    if ATTRS_KEY not in attrs or not isinstance(attrs[ATTRS_KEY], dict):
        raise SwagError(f"{path}: not a swag store (no '{ATTRS_KEY}' attribute)")
    swag_attrs = dict(attrs[ATTRS_KEY])
    version = swag_attrs.get("format_version")
    if version != FORMAT_VERSION:
        raise SwagError(f"{path}: unknown swag store format_version {version!r} (this swag reads {FORMAT_VERSION})")
    return swag_attrs
