"""The NES pad: the single owner of button order and action conversions.

An action is one byte in nes-py's bit order (A = bit 0 … Right = bit 7), the
same order FCEUX uses internally. Every other module converts through here.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

BUTTONS: tuple[str, ...] = ("A", "B", "select", "start", "up", "down", "left", "right")
NUM_BUTTONS = len(BUTTONS)
BIT = {name: 1 << i for i, name in enumerate(BUTTONS)}
NOOP = 0


def to_names(action: int) -> list[str]:
    """Names of the pressed buttons, in bit order."""
    if not 0 <= int(action) <= 255:
        raise ValueError(f"action {action} is not a byte")
    return [name for i, name in enumerate(BUTTONS) if int(action) >> i & 1]


def from_names(names: Iterable[str]) -> int:
    """The action byte for a set of button names (case-insensitive)."""
    lookup = {name.lower(): bit for name, bit in BIT.items()}
    action = 0
    for name in names:
        try:
            action |= lookup[name.lower()]
        except KeyError:
            raise ValueError(f"unknown NES button {name!r}; expected one of {BUTTONS}") from None
    return action


def to_multihot(actions: np.ndarray) -> np.ndarray:
    """uint8 (...,) action bytes -> bool (..., 8) pressed flags in bit order."""
    actions = np.asarray(actions, dtype=np.uint8)
    return ((actions[..., None] >> np.arange(NUM_BUTTONS, dtype=np.uint8)) & 1).astype(bool)


def from_multihot(pressed: np.ndarray) -> np.ndarray:
    """bool/0-1 (..., 8) pressed flags -> uint8 (...,) action bytes."""
    pressed = np.asarray(pressed).astype(np.uint8)
    if pressed.shape[-1] != NUM_BUTTONS:
        raise ValueError(f"expected a last axis of {NUM_BUTTONS} buttons, got {pressed.shape}")
    return (pressed << np.arange(NUM_BUTTONS, dtype=np.uint8)).sum(axis=-1).astype(np.uint8)


def resample(actions: np.ndarray, source_fps: float, target_fps: float, keep_partial: bool = False) -> np.ndarray:
    """Actions held at source_fps -> actions held at target_fps.

    A button counts as pressed in a target step when it was held for at least
    half of the source frames that step covers, so a held button stays held and
    one-frame flickers vanish, as they would to a viewer of the slower video.
    `keep_partial`: see `frame_spans`.
    """
    actions = np.asarray(actions, dtype=np.uint8)
    spans = frame_spans(len(actions), source_fps, target_fps, keep_partial)
    if len(spans) == 0:
        return np.zeros(0, dtype=np.uint8)
    pressed = to_multihot(actions).astype(np.float32)
    cumulative = np.concatenate([np.zeros((1, NUM_BUTTONS), np.float32), np.cumsum(pressed, axis=0)])
    held = (cumulative[spans[:, 1]] - cumulative[spans[:, 0]]) / (spans[:, 1] - spans[:, 0])[:, None]
    return from_multihot(held >= 0.5)


def frame_spans(num_source: int, source_fps: float, target_fps: float, keep_partial: bool = False) -> np.ndarray:
    """int64 (T_target, 2): [start, stop) source frames covered by each target frame.

    Target frame k shows the source frame at time k / target_fps; it covers the
    source frames up to the next target frame. Only whole target steps are kept, unless
    `keep_partial`: then a last step that starts within the source but ends after it is kept
    with the frames that remain. A video sampled from the source shows that step (a 30 fps
    capture of 61 frames at 60 fps has 31 frames, the last on screen for half its step).
    """
    if target_fps > source_fps:
        raise ValueError(f"cannot upsample {source_fps} fps to {target_fps} fps")
    ratio = source_fps / target_fps
    num_target = int(np.floor(num_source / ratio + 1e-9))
    if keep_partial and np.floor(num_target * ratio + 1e-9) < num_source:
        num_target += 1
    starts = np.floor(np.arange(num_target) * ratio + 1e-9).astype(np.int64)
    stops = np.floor(np.arange(1, num_target + 1) * ratio + 1e-9).astype(np.int64)
    return np.stack([starts, np.minimum(stops, num_source)], axis=1).reshape(-1, 2)


def onsets(pressed: np.ndarray) -> np.ndarray:
    """Frame indices where a button goes from released to pressed (frame 0 counts if pressed)."""
    pressed = np.asarray(pressed, bool)
    return np.flatnonzero(pressed & ~np.concatenate([[False], pressed[:-1]]))


def press_lengths(pressed: np.ndarray) -> np.ndarray:
    """int (T,): for each pressed frame, the length of the press (run of pressed frames) it
    belongs to; 0 where released."""
    pressed = np.asarray(pressed, bool)
    lengths = np.zeros(len(pressed), np.int64)
    starts = onsets(pressed)
    stops = np.flatnonzero(pressed & ~np.concatenate([pressed[1:], [False]])) + 1  # one past each press
    for start, stop in zip(starts, stops):
        lengths[start:stop] = stop - start
    return lengths


HOLD_QUANTILE = 0.99  # a policy may hold a button as long as all but 1% of its data's presses


def hold_limits(action_runs, quantile: float = HOLD_QUANTILE) -> dict[str, int]:
    """Per button pressed in `action_runs` (pad-byte arrays, one per recording, at the policy's
    rate): the `quantile` of its press lengths in steps.

    `swag.policy.ModelAgent(hold_limits=...)` lets go of a button held longer, for one step: SMB
    jumps only when A goes down, so a clone that holds A against a pipe stands there for good,
    where its demonstrators never held A that long."""
    lengths = {name: [] for name in BUTTONS}
    for actions in action_runs:
        pressed = to_multihot(np.asarray(actions, np.uint8))  # (T, 8)
        for b, name in enumerate(BUTTONS):
            lengths[name] += list(press_lengths(pressed[:, b])[onsets(pressed[:, b])])
    return {name: int(np.ceil(np.quantile(runs, quantile))) for name, runs in lengths.items() if runs}
