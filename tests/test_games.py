"""The game registry: every game builds from its packaged ROM, steps with the action byte,
copies frames out of nes-py's shared buffer, and reports its progress measure."""

import numpy as np
import pytest

from swag import games
from swag.errors import SwagError


@pytest.mark.parametrize("name", sorted(games.GAMES))
def test_every_game_steps_and_reports_progress(name):
    spec = games.GAMES[name]
    env = games.make(name, spec.levels[0] if spec.levels else None)
    frame, info = env.reset(seed=0)
    assert frame.shape == games.SCREEN_SHAPE and frame.dtype == np.uint8
    assert "progress" in info["progress"]
    frames = [frame]
    for step in range(120):
        frame, _, terminated, truncated, info = env.step(actions_for(step))
        frames.append(frame)
        if terminated or truncated:
            break
    # frames must be independent copies, not views of the emulator's one buffer
    assert frames[0] is not frames[-1]
    assert not np.shares_memory(frames[0], frames[-1])
    assert isinstance(info["progress"]["progress"], float)
    env.close()


def actions_for(step):
    return 0b1000_0000 if step % 30 < 20 else 0b1000_0001  # run right, jump now and then


def test_smb_progress_grows_when_running_right():
    env = games.make("smb1", "1-1")
    _, info = env.reset(seed=0)
    start = info["progress"]["x_max"]
    for _ in range(200):
        _, _, terminated, _, info = env.step(0b1000_0000)
        if terminated:
            break
    assert info["progress"]["x_max"] > start + 100
    assert 0 < info["progress"]["progress"] < 1
    assert info["progress"]["clear"] == 0.0


def test_unknown_game_and_level():
    with pytest.raises(SwagError, match="unknown game 'pacman'"):
        games.make("pacman")
    with pytest.raises(SwagError, match="has no level '9-9'"):
        games.make("smb1", "9-9")
    with pytest.raises(SwagError, match="no levels to choose"):
        games.make("zelda", "1-1")


def test_altered_rom_is_rejected(tmp_path, monkeypatch):
    spec = games.GAMES["smb1"]
    altered = games.GameSpec(**{**spec.__dict__, "rom_sha1": "0" * 40})
    with pytest.raises(SwagError, match="has SHA-1 ab30029e.*expected 0000"):
        altered.make("1-1")
    missing = games.GameSpec(**{**spec.__dict__, "rom_file": "_roms/missing.nes"})
    with pytest.raises(SwagError, match="missing"):
        missing.check_rom()
