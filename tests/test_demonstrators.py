"""Scripted players in the real emulator: deterministic, distinct styles, human timing, and good enough."""

from __future__ import annotations

import numpy as np
import pytest

from swag import games
from swag.actions import BIT, BUTTONS, to_multihot
from swag.demonstrators import DEMONSTRATORS, PLAY_STYLES, STYLES, make_demonstrator, play_episode
from swag.demonstrators.base import STYLE_TABLE
from swag.errors import SwagError


def actions_of(game, level, style, seed, frames):
    actions = []
    summary = play_episode(game, level, style, seed, frames, on_step=lambda frame, action, info: actions.append(action))
    return np.array(actions, dtype=np.uint8), summary


def held_run_lengths(actions: np.ndarray) -> list[int]:
    """Lengths of every stretch during which one button stays down."""
    lengths = []
    for column in to_multihot(actions).T:
        edges = np.flatnonzero(np.diff(np.concatenate([[0], column.astype(np.int8), [0]])))
        lengths += list(edges[1::2] - edges[::2])
    return lengths


def test_registry_covers_every_game_and_rejects_unknowns():
    assert STYLES[:3] == ("cautious", "speedy", "jumpy")
    assert set(DEMONSTRATORS) == set(games.GAMES)
    demo = make_demonstrator("smb1", "speedy", 0)
    assert demo.name == "smb-ram/1" and demo.style == "speedy"
    with pytest.raises(SwagError, match="no demonstrator for game"):
        make_demonstrator("pacman", "speedy", 0)
    with pytest.raises(SwagError, match="unknown demonstrator style"):
        make_demonstrator("smb1", "reckless", 0)


def test_same_seed_same_episode_other_seed_other_episode():
    first, summary_first = actions_of("smb1", "1-1", "jumpy", 5, 500)
    again, summary_again = actions_of("smb1", "1-1", "jumpy", 5, 500)
    other, _ = actions_of("smb1", "1-1", "jumpy", 6, 500)
    assert np.array_equal(first, again) and summary_first == summary_again
    n = min(len(first), len(other))
    assert not np.array_equal(first[:n], other[:n])


def test_smb_styles_differ_and_look_human():
    stats = {}
    for style in ("cautious", "speedy", "jumpy"):
        actions, summary = actions_of("smb1", "1-1", style, 1, 1500)
        pressed = to_multihot(actions)
        jump_starts = np.sum(np.diff(pressed[:, 0].astype(np.int8)) == 1)
        a_edges = np.flatnonzero(np.diff(np.concatenate([[0], pressed[:, 0].astype(np.int8), [0]])))
        a_holds = a_edges[1::2] - a_edges[::2]
        stats[style] = {"run": pressed[:, 1].mean(), "idle": (actions == 0).mean(),
                        "jumps_per_second": jump_starts / len(actions) * 60,
                        "taps": np.mean(a_holds <= 10),  # share of A presses that are short hops
                        "speed": summary["x_max"] / len(actions)}
        # a person holds buttons: no one-frame flicker as the typical press
        assert np.median(held_run_lengths(actions)) >= 5, style
        # a few plausible combinations, never a random mash
        assert not np.any(actions & (BIT["select"] | BIT["start"] | BIT["up"] | BIT["down"]))
        assert not np.any((actions & BIT["left"]) & ((actions & BIT["right"]) >> 1))
        assert len(np.unique(actions)) <= 8
        assert summary["x_max"] > 400, style  # it gets somewhere
    assert stats["speedy"]["run"] > stats["cautious"]["run"] + 0.2
    assert stats["speedy"]["speed"] > 1.2 * stats["cautious"]["speed"]
    assert stats["cautious"]["idle"] > 2 * stats["speedy"]["idle"]  # it stops and waits
    assert stats["jumpy"]["jumps_per_second"] > 1.2 * stats["cautious"]["jumps_per_second"]
    assert stats["jumpy"]["taps"] > 1.5 * stats["cautious"]["taps"]


def test_explorer_brakes_at_random_moments_and_the_play_styles_never_do():
    actions, summary = actions_of("smb1", "1-1", "explorer", 1, 1500)
    pressed = to_multihot(actions)
    left, right, a = (pressed[:, BUTTONS.index(button)] for button in ("left", "right", "A"))
    spells = np.flatnonzero(np.diff(np.concatenate([[0], left.astype(np.int8)])) == 1)
    assert left.mean() > 0.05 and len(spells) >= 5  # the play styles hold left in 0-2% of frames
    assert np.any(left & a)  # brakes in jumps too, not only on the ground
    assert not np.any(left & right)
    assert summary["x_max"] > 400
    assert all(STYLE_TABLE[style].brake_per_second == 0 for style in PLAY_STYLES)
    assert set(PLAY_STYLES) | {"explorer"} == set(STYLES)


def test_tetris_b_starts_with_25_lines_and_runs():
    env = games.make("tetris-b")
    _, info = env.reset(seed=0)
    assert info["number_of_lines"] == 25
    for _ in range(10):
        _, _, terminated, _, info = env.step(0)
        assert not terminated
    assert info["progress"]["lines"] == 0 and info["progress"]["lines_left"] == 25
    env.close()


def test_tetris_player_clears_lines():
    actions, summary = actions_of("tetris-a", None, "speedy", 0, 2000)  # first line at frame 1276
    assert summary["lines"] >= 1
    assert np.median(held_run_lengths(actions)) >= 4  # taps, not single-frame flicks


def test_zelda_player_explores():
    _, summary = actions_of("zelda", None, "cautious", 0, 1500)  # third screen at frame 796
    assert summary["screens"] >= 3


@pytest.mark.parametrize("game", ["smb2-usa", "smb3"])
def test_run_and_jump_player_moves_right(game):
    env = games.make(game, "1-1")
    _, info = env.reset(seed=0)
    demo = make_demonstrator(game, "speedy", 0)
    demo.reset(env, info)
    start = demo._position(info)
    for _ in range(600):
        _, _, terminated, truncated, info = env.step(demo.act(env, info))
        if terminated or truncated:
            break
    env.close()
    assert demo.best > start + 64


@pytest.mark.slow
def test_smb_player_clears_world_1_1_in_most_episodes():
    results = {style: [play_episode("smb1", "1-1", style, seed, 5000)["clear"] for seed in range(4)]
               for style in ("cautious", "speedy", "jumpy")}
    for style, clears in results.items():
        assert np.mean(clears) >= 0.5, (style, clears)
