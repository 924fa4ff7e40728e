"""Tetris (A- and B-type): pick a placement like a steady club player, then steer there by hand.

When a piece appears the player waits a reaction time, reads the board from RAM
(0x0400, 20 rows of 10, 0xEF = empty), tries every rotation and column of the
current piece, drops each one and scores the result with the classic four-term
heuristic (aggregate height, completed lines, holes, bumpiness). Then it taps
rotate (A clockwise, B counter-clockwise) and left/right with human press and
release times until the piece is there, and lets it fall, or holds down to hurry it.
"""

from __future__ import annotations

import numpy as np

from swag.demonstrators.base import A, B, DOWN, LEFT, RIGHT, Demonstrator

PIECE_X = 0x0040
PIECE_Y = 0x0041
PIECE_ORIENTATION = 0x0042  # index into ORIENTATIONS
PLAY_STATE = 0x0048  # 1 while the player steers a falling piece
BOARD = slice(0x0400, 0x04C8)
EMPTY = 0xEF

# (row, column) offsets of the four squares around the pivot, per orientation id, as in the
# game's own orientation table; A steps to the next id within a piece's group, B to the previous.
ORIENTATIONS = (
    ((0, -1), (0, 0), (0, 1), (-1, 0)), ((-1, 0), (0, 0), (0, 1), (1, 0)),  # T
    ((0, -1), (0, 0), (0, 1), (1, 0)), ((-1, 0), (0, -1), (0, 0), (1, 0)),
    ((-1, 0), (0, 0), (1, -1), (1, 0)), ((-1, -1), (0, -1), (0, 0), (0, 1)),  # J
    ((-1, 0), (-1, 1), (0, 0), (1, 0)), ((0, -1), (0, 0), (0, 1), (1, 1)),
    ((0, -1), (0, 0), (1, 0), (1, 1)), ((-1, 1), (0, 0), (0, 1), (1, 0)),  # Z
    ((0, -1), (0, 0), (1, -1), (1, 0)),  # O
    ((0, 0), (0, 1), (1, -1), (1, 0)), ((-1, 0), (0, 0), (0, 1), (1, 1)),  # S
    ((-1, 0), (0, 0), (1, 0), (1, 1)), ((0, -1), (0, 0), (0, 1), (1, -1)),  # L
    ((-1, -1), (-1, 0), (0, 0), (1, 0)), ((-1, 1), (0, -1), (0, 0), (0, 1)),
    ((-2, 0), (-1, 0), (0, 0), (1, 0)), ((0, -2), (0, -1), (0, 0), (0, 1)),  # I
)
GROUPS = ((0, 1, 2, 3), (4, 5, 6, 7), (8, 9), (10,), (11, 12), (13, 14, 15, 16), (17, 18))
GROUP_OF = {orientation: group for group in GROUPS for orientation in group}

# Weights of the well-known hand-tuned heuristic (height, lines, holes, bumpiness).
WEIGHTS = (-0.51, 0.76, -0.36, -0.18)

TAP_PRESS = {"cautious": (5, 8), "speedy": (4, 6), "jumpy": (4, 7)}
TAP_RELEASE = {"cautious": (5, 10), "speedy": (2, 5), "jumpy": (3, 7)}
SOFT_DROP_SHARE = {"cautious": 0.0, "speedy": 0.8, "jumpy": 0.3}
FIDGET_SHARE = {"cautious": 0.05, "speedy": 0.05, "jumpy": 0.6}  # spin the piece once before placing


def board_score(board: np.ndarray) -> tuple[float, int]:
    """(heuristic value, lines cleared) of a bool (20, 10) board after a piece locks."""
    full = board.all(axis=1)
    lines = int(full.sum())
    if lines:
        board = np.vstack([np.zeros((lines, 10), dtype=bool), board[~full]])
    filled = board.any(axis=0)
    tops = np.where(filled, board.argmax(axis=0), 20)  # first filled row from the top, per column
    heights = 20 - tops
    holes = int((np.cumsum(board, axis=0) > 0).sum() - board.sum())  # empty cells below a filled one
    bumpiness = int(np.abs(np.diff(heights)).sum())
    value = (WEIGHTS[0] * heights.sum() + WEIGHTS[1] * lines + WEIGHTS[2] * holes
             + WEIGHTS[3] * bumpiness)
    return float(value), lines


def fits(board: np.ndarray, orientation: int, row: int, column: int) -> bool:
    for d_row, d_column in ORIENTATIONS[orientation]:
        r, c = row + d_row, column + d_column
        if not (0 <= c < 10 and r < 20) or (r >= 0 and board[r, c]):
            return False
    return True


def best_placement(board: np.ndarray, orientation: int, row: int) -> tuple[int, int]:
    """(orientation id, pivot column) of the best place for the current piece."""
    # first filled row at or below each row, per column (20 = floor): a straight drop from
    # `row` stops one above it, so each candidate lands in O(4) instead of row by row
    below = np.full((21, 10), 20, dtype=np.int64)
    for r in range(19, -1, -1):
        below[r] = np.where(board[r], r, below[r + 1])
    best, best_value = (orientation, 5), -np.inf
    for candidate in GROUP_OF[orientation]:
        cells = ORIENTATIONS[candidate]
        for column in range(10):
            if not fits(board, candidate, row, column):
                continue
            landing = min(int(below[max(row + d_row, 0), column + d_column]) - 1 - d_row
                          for d_row, d_column in cells)
            after = board.copy()
            for d_row, d_column in cells:
                if landing + d_row >= 0:
                    after[landing + d_row, column + d_column] = True
            value, _ = board_score(after)
            if value > best_value:
                best, best_value = (candidate, column), value
    return best


class TetrisPlayer(Demonstrator):
    family = "tetris-heuristic"
    version = 1

    def _reset(self, env, info):
        self.target = None  # (orientation, column) for the falling piece
        self.last_y = 99
        self.wait = self.frames(self.params.reaction)
        self.button = 0  # the button of the tap in progress
        self.press_left = 0
        self.release_left = 0
        self.soft_drop = False
        self.fidget = 0  # extra rotations to do first, for a player who spins pieces

    def act(self, env, info):
        self.frame += 1
        ram = env.unwrapped.ram
        if ram[PLAY_STATE] != 1:
            self.last_y = 99
            self.target = None
            return self._tap_step()
        y, x, orientation = int(ram[PIECE_Y]), int(ram[PIECE_X]), int(ram[PIECE_ORIENTATION])
        if orientation >= len(ORIENTATIONS):
            return self._tap_step()
        if self.target is None or y < self.last_y:  # a new piece: look, then decide
            board = ram[BOARD].reshape(20, 10) != EMPTY
            self.target = best_placement(board, orientation, y)
            self.wait = self.frames(self.params.reaction)
            self.soft_drop = self.rng.random() < SOFT_DROP_SHARE[self.style]
            self.fidget = len(GROUP_OF[orientation]) if self.rng.random() < FIDGET_SHARE[self.style] else 0
        self.last_y = y
        if self.wait > 0:
            self.wait -= 1
            return self._tap_step()
        if self.press_left > 0 or self.release_left > 0:
            return self._tap_step()
        target_orientation, target_column = self.target
        if self.fidget > 0:
            self.fidget -= 1
            return self._start_tap(A)
        if orientation != target_orientation:
            group = GROUP_OF[orientation]
            steps = (group.index(target_orientation) - group.index(orientation)) % len(group)
            return self._start_tap(A if steps <= len(group) // 2 else B)
        if x != target_column:
            return self._start_tap(RIGHT if target_column > x else LEFT)
        return DOWN if self.soft_drop else 0

    def _start_tap(self, button: int) -> int:
        self.button = button
        self.press_left = self.frames(TAP_PRESS[self.style])
        self.release_left = self.frames(TAP_RELEASE[self.style])
        return self._tap_step()

    def _tap_step(self) -> int:
        if self.press_left > 0:
            self.press_left -= 1
            return self.button
        if self.release_left > 0:
            self.release_left -= 1
        return 0
