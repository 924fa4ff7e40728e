"""The Legend of Zelda: an explorer that walks from screen to screen.

It reads Link's position (RAM 0x70 x, 0x84 y), the overworld screen (0xEB: high
nibble row, low nibble column) and the other objects' positions and types (0x71-0x7B,
0x85-0x8F, 0x350-0x35A). It heads for a screen edge, preferring neighbours it has not seen,
holds the direction pad for long stretches, detours sideways when a wall or a
tree stops it, swings the sword (A) at anything that comes close, and now and
then stops to look around.
"""

from __future__ import annotations

import numpy as np

from swag.demonstrators.base import A, DOWN, LEFT, RIGHT, UP, Demonstrator

LINK_X = 0x70
LINK_Y = 0x84
OBJECT_X = slice(0x71, 0x7C)  # other objects (enemies, projectiles, items)
OBJECT_Y = slice(0x85, 0x90)
OBJECT_TYPE = slice(0x350, 0x35B)  # 0 = empty slot (its position bytes are stale)
SCREEN = 0xEB

HEADINGS = (UP, DOWN, LEFT, RIGHT)
STEP = {UP: (-1, 0), DOWN: (1, 0), LEFT: (0, -1), RIGHT: (0, 1)}  # (row, column) on the map
SIDEWAYS = {UP: (LEFT, RIGHT), DOWN: (LEFT, RIGHT), LEFT: (UP, DOWN), RIGHT: (UP, DOWN)}
STUCK_FRAMES = 12
SWING_RANGE = 28  # pixels: enemies this close get the sword
SWING_HOLD = {"cautious": (6, 10), "speedy": (4, 7), "jumpy": (4, 8)}
SIDESTEP = {"cautious": (30, 70), "speedy": (20, 45), "jumpy": (15, 40)}
TURN_PER_SECOND = {"cautious": 0.05, "speedy": 0.03, "jumpy": 0.3}  # change of mind mid-screen


class ZeldaPlayer(Demonstrator):
    family = "zelda-explorer"
    version = 1

    def _reset(self, env, info):
        ram = env.unwrapped.ram
        self.visited = {int(ram[SCREEN])}
        self.screen = int(ram[SCREEN])
        self.heading = self._choose_heading(self.screen)
        self.detour = 0  # a sideways button held for `detour_left` frames
        self.detour_left = 0
        self.swing_left = 0
        self.rest_left = 0
        self.wait = self.frames(self.params.reaction)
        self.last_position = (-1, -1)
        self.still = 0

    def _choose_heading(self, screen: int) -> int:
        """A direction toward an unseen neighbour if there is one, else any direction."""
        row, column = screen >> 4, screen & 0xF
        fresh = [h for h in HEADINGS
                 if 0 <= row + STEP[h][0] < 8 and 0 <= column + STEP[h][1] < 16
                 and ((row + STEP[h][0]) << 4 | (column + STEP[h][1])) not in self.visited]
        options = fresh or list(HEADINGS)
        return int(options[self.rng.integers(len(options))])

    def act(self, env, info):
        self.frame += 1
        ram = env.unwrapped.ram
        screen = int(ram[SCREEN])
        if screen != self.screen:  # a new screen: look at it, pick where to go next
            self.screen = screen
            self.visited.add(screen)
            self.heading = self._choose_heading(screen)
            self.detour_left = 0
            self.wait = self.frames(self.params.reaction)
        if self.wait > 0:
            self.wait -= 1
            return 0
        if self.swing_left > 0:
            self.swing_left -= 1
            return A if self.swing_left > 1 else 0  # let go before the next swing can start

        link_x, link_y = int(ram[LINK_X]), int(ram[LINK_Y])
        dx = ram[OBJECT_X].astype(np.int16) - link_x
        dy = ram[OBJECT_Y].astype(np.int16) - link_y
        types = ram[OBJECT_TYPE]
        present = (types > 0) & (types < 0x60)  # higher ids are not monsters
        near = present & (np.abs(dx) < SWING_RANGE) & (np.abs(dy) < SWING_RANGE)
        if near.any():
            # face the closest one and swing
            closest = int(np.argmin(np.where(near, np.abs(dx) + np.abs(dy), 999)))
            if abs(int(dx[closest])) > abs(int(dy[closest])):
                face = RIGHT if dx[closest] > 0 else LEFT
            else:
                face = DOWN if dy[closest] > 0 else UP
            self.swing_left = self.frames(SWING_HOLD[self.style]) + 2
            return face | A

        if self.rest_left > 0:
            self.rest_left -= 1
            return 0
        if self.chance_per_frame(self.params.pause_per_second):
            self.rest_left = self.frames(self.params.pause_length)
            return 0
        if self.chance_per_frame(TURN_PER_SECOND[self.style]):
            self.heading = self._choose_heading(screen)

        position = (link_x, link_y)
        self.still = self.still + 1 if position == self.last_position else 0
        self.last_position = position
        if self.detour_left > 0:
            self.detour_left -= 1
            if self.still >= STUCK_FRAMES:  # the detour is blocked too: try the other way
                self.detour = [d for d in SIDEWAYS[self.heading] if d != self.detour][0]
                self.still = 0
            return self.detour
        if self.still >= STUCK_FRAMES:
            self.still = 0
            if self.rng.random() < 0.25:
                self.heading = self._choose_heading(screen)
            else:
                self.detour = int(self.rng.choice(SIDEWAYS[self.heading]))
                self.detour_left = self.frames(SIDESTEP[self.style])
                return self.detour
        return self.heading
