"""benchmarks/jump_holds.py: how jumps and stands are counted, on hand-made traces."""

from __future__ import annotations

import numpy as np

from benchmarks.jump_holds import table, trace
from swag.actions import BIT


def _row(rows, name):
    return next(row for row in rows if row["range"] == name)


def test_a_held_against_the_pipe_is_a_stand_without_presses_and_a_long_press_is_a_tall_jump():
    frames = 100
    # Mario pushes against the tall pipe (x 720) with A held the whole time: no fresh press, no jump
    stuck = trace(np.full(frames, BIT["A"] | BIT["right"]), np.full(frames, 720), np.full(frames, 176))
    # Mario runs at the first goomba, presses A at frame 10 for 30 frames and rises from frame 11
    a = np.zeros(frames, np.int64)
    a[10:40] = BIT["A"]
    y = np.full(frames, 176)
    y[11:50] = 176 - np.minimum(np.arange(1, 40), 20) * 3  # rises 60 px, then holds there
    jumping = trace(a | BIT["right"], np.arange(100, 100 + frames), y)
    rows = table([stuck, jumping])
    pipe, goomba = _row(rows, "tall pipe"), _row(rows, "first goomba")
    assert pipe["jumps"] == 0
    assert pipe["stand"] == frames - 30 and pipe["a_stand"] == 1.0 and pipe["presses_per_s"] == 0.0
    assert goomba["jumps"] == 1 and goomba["hold"] == 30 and goomba["tall"] == 1.0 and goomba["rise"] == 60
    assert goomba["stand"] == 0 and np.isnan(goomba["a_stand"])
