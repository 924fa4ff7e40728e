"""Super Mario Bros. and The Lost Levels: a player that reads the RAM like a person reads the screen.

It sees what a person sees: the metatile map around Mario (RAM 0x0500-0x069F, two
16-column by 13-row pages), the enemies on screen, Mario's position and speed.
From that it finds the next wall or pipe, the next pit and the nearest walking
enemy, and answers with human timing: jumps held as long as the height needs,
runs held for long stretches, a reaction delay before it responds to a new
enemy, and now and then a pause, a small step back, or a jump nobody needed.

RAM addresses are the well-known SMB map (datacrystal), checked in the emulator:
Mario standing on the ground of 1-1 has y = 0xB0 and stands on metatile row 11,
so the row under his feet is y // 16.
"""

from __future__ import annotations

import numpy as np

from swag.demonstrators.base import A, B, LEFT, RIGHT, Demonstrator

PLAYER_STATE = 0x000E  # 8 = normal play; other values are cut-scenes, pipes, dying
FLOAT_STATE = 0x001D  # 0 on ground, 1 jumping, 2 falling, 3 on the flagpole
ENEMY_FLAG = 0x000F  # 5 slots: 1 when the slot holds an enemy
ENEMY_TYPE = 0x0016
ENEMY_STATE = 0x001E  # bit 5 set: knocked out and falling off screen
ENEMY_PAGE = 0x006E
ENEMY_X = 0x0087
ENEMY_Y = 0x00CF
ENEMY_Y_VIEWPORT = 0x00B6  # 1 = on the visible screen
PLAYER_PAGE = 0x006D
PLAYER_X = 0x0086
PLAYER_Y = 0x00CE
PLAYER_Y_VIEWPORT = 0x00B5
PLAYER_X_SPEED = 0x0057  # signed, 28 walking, 40 running
PLAYER_Y_SPEED = 0x009F  # signed, positive = falling
PLAYER_SIZE = 0x0754  # 0 big, 1 small
METATILES = slice(0x0500, 0x06A0)
ROWS = 13  # metatile rows; row r covers screen y 32 + 16 r
COLUMNS = 32  # two pages of 16 columns, indexed by (world x // 16) % 32

# Metatiles Mario walks through: climbables (flagpole, vine), invisible blocks, coins.
_NOT_SOLID = (0x00, 0x24, 0x25, 0x26, 0x5F, 0x60, 0xC2, 0xC3)
SOLID = np.ones(256, dtype=bool)
SOLID[list(_NOT_SOLID)] = False

# Enemy types a person jumps over or on. Higher ids are platforms, power-ups, the flag,
# springs and cannons; 0x16-0x1F are fireworks and fire bars, which do not walk at Mario.
HARMFUL_TYPE = np.zeros(256, dtype=bool)
HARMFUL_TYPE[0x00:0x16] = True
HARMFUL_TYPE[0x2D] = True  # Bowser

# A-hold frames that lift small or big Mario over a wall of 1, 2, 3, 4+ metatiles (measured:
# walking, A held 1 frame rises 27 px, 8 frames 46 px, 16 frames 61 px, 25+ frames 68 px).
WALL_HOLD = ((8, 12), (10, 16), (16, 22), (26, 35))
PIT_HOLD = (24, 35)
ENEMY_HOLD = (12, 22)
PAIR_HOLD = (24, 32)
STOMP_HOLD = (4, 8)
MAX_STUCK_FRAMES = 8  # pressing right without moving this long means something blocks the way


class SMBPlayer(Demonstrator):
    """The SMB1 / Lost Levels player; one instance plays one style with one seed."""

    family = "smb-ram"
    version = 1

    def _reset(self, env, info):
        self.jump_left = 0  # frames A stays held in the current jump
        self.a_was_down = False  # A must be released a frame before the next jump
        self.run = self.rng.random() < self.params.run_share
        self.run_left = self.frames(self.params.run_stretch)
        self.pause_left = 0  # frames of standing still (or stepping back) left
        self.pause_buttons = 0
        self.wait_left = 0  # frames a cautious player still lets an enemy come closer
        self.jump_lead = self.frames(self.params.jump_lead)
        self.enemy_lead = self.frames(self.params.enemy_lead)
        self.enemy_seen_at = np.full(5, -1, dtype=np.int64)  # frame each slot's enemy appeared
        self.enemy_last_x = np.zeros(5, dtype=np.int64)
        self.enemy_speed = np.zeros(5)  # px per frame, smoothed
        self.last_x = -1
        self.last_falling_speed = 0
        self.left_ground = False  # airborne since the current jump began
        self.pressed = 0
        self.stuck = 0
        self.ahead = []
        self.brake_left = 0  # frames of a random brake (explorer) still to hold

    # --- what Mario sees ---------------------------------------------------------------------------

    def _solid_columns(self, ram: np.ndarray) -> np.ndarray:
        """bool (32 columns, 13 rows): which metatiles block, columns by (world x // 16) % 32."""
        tiles = ram[METATILES].reshape(2, ROWS, 16).transpose(0, 2, 1).reshape(COLUMNS, ROWS)
        return SOLID[tiles]

    def _terrain_ahead(self, ram, x, y, big):
        """(pixels to the next wall, its height in metatiles, pixels to the next pit), None if clear."""
        solid = self._solid_columns(ram)
        feet_row = min(max(y // 16, 1), ROWS - 1)
        body_rows = [feet_row - 1] + ([feet_row - 2] if big and feet_row >= 2 else [])
        front = x + 13  # Mario's right edge
        wall = pit = None
        height = 0
        for column in range(front // 16 + 1, front // 16 + 6):
            column_solid = solid[column % COLUMNS]
            distance = column * 16 - front
            if wall is None and column_solid[body_rows].any():
                wall = distance
                height = 0
                row = feet_row - 1
                while row >= 0 and column_solid[row]:
                    height += 1
                    row -= 1
            if pit is None and wall is None and not column_solid[feet_row:].any():
                pit = distance
            if wall is not None:
                break
        return wall, height, pit

    def _enemies(self, ram, x, y):
        """The nearest harmful enemy ahead at Mario's height as (dx, closing speed, another one
        follows close behind) or None,
        and whether any harmful enemy is close at all (then nobody dawdles).

        An enemy only counts once it has been on screen for this player's reaction time.
        """
        ahead = []  # (dx, closing speed) of enemies at Mario's height
        any_close = False
        self.crowd = 0  # enemies just ahead
        self.side_hit_ahead = False  # falling onto an enemy's side rather than its head
        self.enemy_right_there = False  # an enemy at arm's length ahead, at Mario's height
        for slot in range(5):
            if not ram[ENEMY_FLAG + slot]:
                self.enemy_seen_at[slot] = -1
                continue
            enemy_x = int(ram[ENEMY_PAGE + slot]) * 256 + int(ram[ENEMY_X + slot])
            if self.enemy_seen_at[slot] < 0:
                self.enemy_seen_at[slot] = self.frame + self.frames(self.params.reaction)
                self.enemy_last_x[slot] = enemy_x
                self.enemy_speed[slot] = 0.0
            # enemies move in sub-pixel steps: smooth their per-frame displacement
            self.enemy_speed[slot] = 0.85 * self.enemy_speed[slot] + 0.15 * (enemy_x - int(self.enemy_last_x[slot]))
            self.enemy_last_x[slot] = enemy_x
            if (self.frame < self.enemy_seen_at[slot] or ram[ENEMY_Y_VIEWPORT + slot] != 1
                    or not HARMFUL_TYPE[ram[ENEMY_TYPE + slot]] or ram[ENEMY_STATE + slot] & 0x20
                    or ram[ENEMY_STATE + slot] == 0x04):  # 0x04: a stomped goomba or a resting shell
                continue
            dx = enemy_x - x
            dy = int(ram[ENEMY_Y + slot]) - y
            any_close = any_close or -32 < dx < 176
            self.enemy_right_there = self.enemy_right_there or (0 < dx < 30 and -8 < dy < 24)
            self.crowd += -8 < dx < 130
            if 14 < dx < 64 and -24 < dy < 64:
                # falling: will Mario sink below stomping height (dy 18) before he gets there?
                closing = int(ram[PLAYER_X_SPEED].view(np.int8)) / 16 - float(self.enemy_speed[slot])
                frames_to_reach = (dx - 14) / max(closing, 0.3)
                frames_to_sink = (dy - 18) / max(int(ram[PLAYER_Y_SPEED].view(np.int8)), 1)
                self.side_hit_ahead = self.side_hit_ahead or frames_to_sink < frames_to_reach
            if -12 < dx < 160 and -40 < dy < 100:  # below counts: Mario may step down onto it
                ahead.append((dx, -float(self.enemy_speed[slot])))
        if not ahead:
            return None, any_close
        ahead.sort()
        self.ahead = ahead
        follower = len(ahead) > 1 and ahead[1][0] - ahead[0][0] < 48
        return (ahead[0][0], ahead[0][1], follower), any_close

    def _floor_continues(self, ram, x, y):
        """Whether the floor Mario stands on goes on for two more metatiles (no ledge to slip off)."""
        solid = self._solid_columns(ram)
        feet_row = min(max(y // 16, 1), ROWS - 1)
        column = (x + 8) // 16
        return bool(solid[[column % COLUMNS, (column + 1) % COLUMNS, (column + 2) % COLUMNS], feet_row].all())

    def _landing_on_brink(self, ram, x, y):
        """Whether Mario is about to land on floor that ends right ahead of him (no room to jump)."""
        solid = self._solid_columns(ram)
        below = min(max((y + 15) // 16, 1), ROWS - 1)
        here = solid[((x + 8) // 16) % COLUMNS, below:]
        if not here.any() or 16 * (below + int(here.argmax())) - y > 24:
            return False  # nothing under him, or still high above it
        return not solid[((x + 13 + 10) // 16) % COLUMNS, below:].any()

    def _lands_among_enemies(self, ram, hold, first_dx):
        """Whether a jump held `hold` frames would come down next to an enemy further on."""
        air = min(21 + 1.1 * hold, 48)  # frames in the air (measured: hold 1 -> 21, 25+ -> 48)
        landing = max(int(ram[PLAYER_X_SPEED].view(np.int8)) / 16, 0.0) * air
        for dx, closing in self.ahead:
            if dx - first_dx > 48 and abs(dx - closing * air - landing) < 28:
                return True
        return False

    # --- the decision, once per frame --------------------------------------------------------------

    def act(self, env, info):
        self.frame += 1
        ram = env.unwrapped.ram
        if ram[PLAYER_STATE] != 8 or ram[FLOAT_STATE] == 3:
            return self._press(RIGHT)  # cut-scene or flagpole: the pad is ignored, people keep holding
        x = int(ram[PLAYER_PAGE]) * 256 + int(ram[PLAYER_X])
        y = int(ram[PLAYER_Y]) if ram[PLAYER_Y_VIEWPORT] == 1 else 0
        on_ground = ram[FLOAT_STATE] == 0
        big = ram[PLAYER_SIZE] == 0
        p = self.params

        self.run_left -= 1
        if self.run_left <= 0:
            self.run = self.rng.random() < p.run_share
            self.run_left = self.frames(p.run_stretch)
        enemy, enemy_close = self._enemies(ram, x, y)  # every frame: reaction time runs in the air too
        # runners slow to a walk where enemies crowd: a jump at full speed lands too far to aim
        move = RIGHT | (B if self.run and self.crowd < 2 else 0)

        if on_ground and self.left_ground:
            self.jump_left = 0  # landed: a player lets go of A, ready for the next jump
        self.left_ground = not on_ground or (self.left_ground and self.jump_left > 0)
        # a jump under way: keep A down for its planned length, steer right
        if self.jump_left > 0:
            self.jump_left -= 1
            # under a low ceiling a stomp bounce is short: back away from the next enemy
            return self._press((LEFT if self.enemy_right_there and not on_ground else move) | A)
        falling_speed = int(ram[PLAYER_Y_SPEED].view(np.int8))
        bounced = not on_ground and self.last_falling_speed > 0 and falling_speed < 0
        self.last_falling_speed = falling_speed if not on_ground else 0
        if bounced:
            # a stomp throws Mario up: hold A through it, as players do, to sail over the next one
            self.jump_left = self.frames(ENEMY_HOLD) - 1
            return self._press(move | A)
        if not on_ground:
            if self.enemy_right_there or falling_speed > 0 and (self.side_hit_ahead or self._landing_on_brink(ram, x, y)):
                return self._press(LEFT)  # brake in the air to come down short of it
            return self._press(move)

        wall, wall_height, pit = self._terrain_ahead(ram, x, y, big)
        self.stuck = self.stuck + 1 if x <= self.last_x and self.pressed & RIGHT else 0
        self.last_x = x

        # hesitation: stand still or step back a little, only where nothing threatens
        calm = (not enemy_close and (wall is None or wall > 48) and (pit is None or pit > 64)
                and self._floor_continues(ram, x, y))
        if self.pause_left > 0 and calm:
            self.pause_left -= 1
            return self._press(self.pause_buttons)
        self.pause_left = 0
        if calm and self.chance_per_frame(p.pause_per_second):
            self.pause_left = self.frames(p.pause_length)
            step_back = self.rng.random() < p.backstep_share
            self.pause_buttons = LEFT if step_back else 0
            if step_back:
                self.pause_left = min(self.pause_left, 16)
            return self._press(self.pause_buttons)

        can_jump = not self.a_was_down
        if can_jump:
            hold = None
            if pit is not None and pit <= self.jump_lead + (8 if self.run else 0):
                hold = self.frames(PIT_HOLD)
            elif wall is not None and wall <= self.jump_lead + (8 if self.run else 0):
                hold = self.frames(WALL_HOLD[min(max(wall_height, 1), 4) - 1])
            elif self.stuck >= MAX_STUCK_FRAMES:
                hold = self.frames(WALL_HOLD[3])
            elif enemy is not None:
                dx, enemy_closing, follower = enemy
                closing = enemy_closing + max(int(ram[PLAYER_X_SPEED].view(np.int8)) / 16, 0.0)
                if dx - 14 <= self.enemy_lead * max(closing, 0.5):
                    # a second enemy right behind the first needs a longer jump to clear both
                    hold = self.frames(PAIR_HOLD if follower else ENEMY_HOLD)
                    if self._lands_among_enemies(ram, hold, dx):
                        hold = self.frames(STOMP_HOLD)  # come down on the first one instead
                elif (p.waits_for_enemies and enemy_closing > 0.2 and 72 < dx < 130
                      and self.wait_left < 240):
                    # let it walk closer, then walk on to meet it at full walking speed
                    self.wait_left += 1
                    return self._press(0)
            if (hold is None and (pit is None or pit > 100) and (wall is None or wall > 48)
                    and (enemy is None or enemy[0] > 150)
                    and self.chance_per_frame(p.idle_jump_per_second)):  # a hop for the fun of it
                hold = self.frames(p.idle_jump_hold)
            if hold is not None:
                self.jump_left = hold - 1
                self.jump_lead = self.frames(p.jump_lead)
                self.enemy_lead = self.frames(p.enemy_lead)
                self.wait_left = 0
                self.stuck = 0
                return self._press(move | A)
        return self._press(move)

    def _press(self, buttons: int) -> int:
        if self.brake_left > 0 or self.chance_per_frame(self.params.brake_per_second):
            # the decision stands (a jump keeps its A), only the direction turns round
            self.brake_left = self.brake_left - 1 if self.brake_left > 0 else self.frames(self.params.brake_length) - 1
            if buttons & RIGHT:
                buttons = (buttons & ~RIGHT) | LEFT
        self.a_was_down = bool(buttons & A)
        self.pressed = buttons
        return buttons
