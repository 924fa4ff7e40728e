"""Scripted human-like players, one module per game family, in three styles.

    demo = make_demonstrator("smb1", "cautious", seed=3)
    demo.reset(env, info)
    action = demo.act(env, info)

`play_episode` runs one whole seeded episode and returns the game's progress summary.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from swag import games
from swag.demonstrators.base import PLAY_STYLES, STYLE_TABLE, STYLES, Demonstrator
from swag.demonstrators.platformer import RunAndJumpPlayer
from swag.demonstrators.smb import SMBPlayer
from swag.demonstrators.tetris import TetrisPlayer
from swag.demonstrators.zelda import ZeldaPlayer
from swag.errors import SwagError

# game name -> the player class that plays it
DEMONSTRATORS: dict[str, type[Demonstrator]] = {
    "smb1": SMBPlayer,
    "smb-lost-levels": SMBPlayer,
    "tetris-a": TetrisPlayer,
    "tetris-b": TetrisPlayer,
    "zelda": ZeldaPlayer,
    "smb2-usa": RunAndJumpPlayer,
    "smb3": RunAndJumpPlayer,
}


def make_demonstrator(game: str, style: str, seed: int) -> Demonstrator:
    """A fresh player for `game` in `style`; the same seed gives the same actions."""
    if game not in DEMONSTRATORS:
        raise SwagError(f"no demonstrator for game {game!r}; known: {', '.join(DEMONSTRATORS)}")
    if style not in STYLE_TABLE:
        raise SwagError(f"unknown demonstrator style {style!r}; known: {', '.join(STYLES)}")
    return DEMONSTRATORS[game](game, style, seed)


def play_episode(game: str, level: str | None, style: str, seed: int, max_frames: int,
                 on_step: Callable[[np.ndarray, int, dict], None] | None = None) -> dict:
    """Play one episode; returns the progress summary of its last step plus {"frames": n}.

    `on_step(frame, action, info)` sees frame i (the screen before action i), action i,
    and the info that came with frame i.
    """
    demo = make_demonstrator(game, style, seed)
    env = games.make(game, level)
    try:
        frame, info = env.reset(seed=seed)
        demo.reset(env, info)
        frames = 0
        while frames < max_frames:
            action = demo.act(env, info)
            if on_step is not None:
                on_step(frame, action, info)
            frame, _, terminated, truncated, info = env.step(action)
            frames += 1
            if terminated or truncated:
                break
    finally:
        env.close()
    return {**info["progress"], "frames": frames}


__all__ = ["DEMONSTRATORS", "PLAY_STYLES", "STYLES", "Demonstrator", "make_demonstrator", "play_episode"]
