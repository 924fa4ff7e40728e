"""SMB2 (USA) and SMB3: a plain run-right-and-jump player.

These games keep their level maps in RAM differently from SMB1, so this player
only watches Mario's horizontal position (info: x_page * 256 + x_screen). It
holds right (and B to run, per style) for long stretches, jumps with a full
press when it stops making headway (a wall, a pipe, a step), jumps now and then
anyway, and pauses sometimes, with the same human timing as the other players.
"""

from __future__ import annotations

from swag.demonstrators.base import A, B, LEFT, RIGHT, Demonstrator

STUCK_FRAMES = 10
OBSTACLE_HOLD = (24, 35)


class RunAndJumpPlayer(Demonstrator):
    family = "run-and-jump"
    version = 1

    def _reset(self, env, info):
        self.jump_left = 0
        self.rest_left = 0
        self.rest_buttons = 0
        self.run = self.rng.random() < self.params.run_share
        self.run_left = self.frames(self.params.run_stretch)
        self.best = self._position(info)
        self.since_progress = 0
        self.a_was_down = False
        self.wait = self.frames(self.params.reaction)

    @staticmethod
    def _position(info: dict) -> int:
        return int(info.get("x_page", 0)) * 256 + int(info.get("x_screen", info.get("x_pos", 0)))

    def act(self, env, info):
        self.frame += 1
        p = self.params
        position = self._position(info)
        if position > self.best:
            self.best = position
            self.since_progress = 0
        else:
            self.since_progress += 1
        self.run_left -= 1
        if self.run_left <= 0:
            self.run = self.rng.random() < p.run_share
            self.run_left = self.frames(p.run_stretch)
        move = RIGHT | (B if self.run else 0)

        if self.wait > 0:
            self.wait -= 1
            return self._press(0)
        if self.jump_left > 0:
            self.jump_left -= 1
            return self._press(move | A)
        if self.rest_left > 0:
            self.rest_left -= 1
            return self._press(self.rest_buttons)
        if self.a_was_down:
            return self._press(move)  # A must come up before it can start another jump
        if self.since_progress >= STUCK_FRAMES:
            self.since_progress = 0
            self.jump_left = self.frames(OBSTACLE_HOLD) - 1
            return self._press(move | A)
        if self.chance_per_frame(p.idle_jump_per_second):
            self.jump_left = self.frames(p.idle_jump_hold) - 1
            return self._press(move | A)
        if self.chance_per_frame(p.pause_per_second):
            self.rest_left = self.frames(p.pause_length)
            self.rest_buttons = LEFT if self.rng.random() < p.backstep_share else 0
            if self.rest_buttons:
                self.rest_left = min(self.rest_left, 16)
            return self._press(self.rest_buttons)
        return self._press(move)

    def _press(self, buttons: int) -> int:
        self.a_was_down = bool(buttons & A)
        return buttons
