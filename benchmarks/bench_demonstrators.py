"""Demonstrator cost: emulator steps per second with the player deciding every frame, against
the same emulator fed a constant action, interleaved in one run (goal: ratio >= 0.8)."""

from __future__ import annotations

import time

from swag import games
from swag.demonstrators import make_demonstrator

CASES = (("smb1", "1-1"), ("tetris-a", None), ("zelda", None))
STEPS = 1000
ROUNDS = 2  # alternate raw and scripted blocks so load changes hit both alike


def _steps_per_second(env, demo, steps: int) -> float:
    _, info = env.reset(seed=0)
    if demo is not None:
        demo.reset(env, info)
    started = time.perf_counter()
    for _ in range(steps):
        action = demo.act(env, info) if demo is not None else 0x80
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            _, info = env.reset(seed=0)
            if demo is not None:
                demo.reset(env, info)
    return steps / (time.perf_counter() - started)


def run() -> list[dict]:
    rows = []
    for game, level in CASES:
        env = games.make(game, level)
        raw = scripted = 0.0
        for round_index in range(ROUNDS):
            raw += _steps_per_second(env, None, STEPS)
            scripted += _steps_per_second(env, make_demonstrator(game, "speedy", round_index), STEPS)
        env.close()
        rows.append({"benchmark": f"demonstrator {game} steps/s", "measured": scripted / ROUNDS,
                     "reference": raw / ROUNDS, "ratio": scripted / raw, "unit": "steps/s",
                     "goal": ">= 0.8 x raw emulator"})
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
