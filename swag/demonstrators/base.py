"""What every scripted player shares: the interface, the styles, and human timing.

A demonstrator is a small state machine that reads the emulator's RAM each frame
and answers with the pad byte a person would hold. Everything random about it
(reaction times, how long a button stays down, when it hesitates) is drawn from
one `numpy.random.Generator` seeded at construction, and the emulator is
deterministic, so a fresh demonstrator with the same seed replays the same episode.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from swag.actions import BIT

A, B, SELECT, START = BIT["A"], BIT["B"], BIT["select"], BIT["start"]
UP, DOWN, LEFT, RIGHT = BIT["up"], BIT["down"], BIT["left"], BIT["right"]

STYLES: tuple[str, ...] = ("cautious", "speedy", "jumpy", "explorer")
# the styles that play to win; "explorer" plays to show the IDM the pad (see its Style)
PLAY_STYLES: tuple[str, ...] = ("cautious", "speedy", "jumpy")


@dataclass(frozen=True)
class Style:
    """How one kind of player times things; every game reads the fields it needs.

    Ranges are (low, high) frame counts at 60 fps, drawn uniformly per event.
    """

    name: str
    reaction: tuple[int, int]  # frames between a hazard appearing and the first response
    run_share: float  # fraction of walking stretches done holding B (SMB)
    run_stretch: tuple[int, int]  # how long one walk-or-run decision lasts
    pause_per_second: float  # rate of stopping for a moment when nothing threatens
    pause_length: tuple[int, int]
    backstep_share: float  # fraction of pauses that are a small step back instead
    idle_jump_per_second: float  # jumps nobody needed
    idle_jump_hold: tuple[int, int]  # how long A stays down for those (taps are short)
    waits_for_enemies: bool  # stops and lets walking enemies come, then jumps on them
    jump_lead: tuple[int, int]  # pixels before an obstacle at which the jump starts
    enemy_lead: tuple[int, int]  # frames before touching a walking enemy at which the jump starts
    # SMB: spells of holding left instead of right, at random moments (on the ground, in the air,
    # running): the brakes and steps back that play to win makes rare and ties to a few places
    brake_per_second: float = 0.0
    brake_length: tuple[int, int] = (3, 30)


STYLE_TABLE: dict[str, Style] = {
    "cautious": Style("cautious", reaction=(16, 26), run_share=0.1, run_stretch=(60, 180),
                      pause_per_second=0.25, pause_length=(15, 50), backstep_share=0.4,
                      idle_jump_per_second=0.03, idle_jump_hold=(10, 20), waits_for_enemies=True,
                      jump_lead=(6, 16), enemy_lead=(9, 14)),
    "speedy": Style("speedy", reaction=(7, 12), run_share=0.95, run_stretch=(120, 400),
                    pause_per_second=0.02, pause_length=(6, 14), backstep_share=0.0,
                    idle_jump_per_second=0.05, idle_jump_hold=(12, 24), waits_for_enemies=False,
                    jump_lead=(14, 28), enemy_lead=(8, 12)),
    "jumpy": Style("jumpy", reaction=(11, 18), run_share=0.45, run_stretch=(40, 140),
                   pause_per_second=0.06, pause_length=(8, 24), backstep_share=0.25,
                   idle_jump_per_second=3.0, idle_jump_hold=(4, 10), waits_for_enemies=False,
                   jump_lead=(8, 22), enemy_lead=(10, 15)),
    # labelled play for the IDM rather than play to win: an inverse dynamics model can only learn
    # a button from presses it has seen, in the places they happen
    "explorer": Style("explorer", reaction=(9, 16), run_share=0.5, run_stretch=(60, 240),
                      pause_per_second=0.1, pause_length=(8, 30), backstep_share=0.3,
                      idle_jump_per_second=0.3, idle_jump_hold=(6, 20), waits_for_enemies=False,
                      jump_lead=(8, 22), enemy_lead=(9, 14), brake_per_second=0.3, brake_length=(3, 30)),
}


class Demonstrator:
    """A scripted player: `reset` at the start of an episode, then `act` once per frame.

    Subclasses set `family` and `version` (recorded as `name`, e.g. "smb-ram/1") and
    implement `_reset` and `act`. `env` is the swag wrapper from `swag.games.make`;
    RAM is `env.unwrapped.ram`, `info` is the last step's info dict.
    """

    family = "base"
    version = 1

    def __init__(self, game: str, style: str, seed: int):
        self.game = game
        self.style = style
        self.seed = int(seed)
        self.params = STYLE_TABLE[style]
        self.rng = np.random.default_rng([self.seed, _stable_hash(game), _stable_hash(style)])
        self.frame = 0

    @property
    def name(self) -> str:
        return f"{self.family}/{self.version}"

    def reset(self, env: gym.Env, info: dict) -> None:
        self.frame = 0
        self._reset(env, info)

    def _reset(self, env: gym.Env, info: dict) -> None:
        raise NotImplementedError

    def act(self, env: gym.Env, info: dict) -> int:
        raise NotImplementedError

    # --- random human timing ---------------------------------------------------------------------

    def frames(self, span: tuple[int, int]) -> int:
        """A duration drawn uniformly from [low, high] frames."""
        return int(self.rng.integers(span[0], span[1] + 1))

    def chance_per_frame(self, per_second: float) -> bool:
        """True with the probability that an event at `per_second` happens in one frame."""
        return per_second > 0 and self.rng.random() < per_second / 60.0


def _stable_hash(text: str) -> int:
    """A hash that, unlike hash(), is the same in every Python process."""
    value = 0
    for char in text.encode():
        value = (value * 131 + char) % (1 << 31)
    return value
