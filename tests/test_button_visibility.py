"""benchmarks/button_visibility.py: the counterfactual replay, on a real recording of SMB 1-1."""

from __future__ import annotations

import numpy as np

from benchmarks.button_visibility import replay_visibility
from swag.actions import BUTTONS, to_multihot
from swag.convert import convert_recording
from swag.recording import record_episode
from swag.store import open_store


def test_whole_presses_show_the_momentum_buttons_that_one_step_releases_hide(tmp_path):
    prefix = tmp_path / "1-1_speedy_000"
    record_episode("smb1", "1-1", "speedy", 0, 600, prefix, progress_bar=False)
    convert_recording(prefix, tmp_path / "ep.zarr", height=60, width=64, fps=20, progress_bar=False)
    store = open_store(tmp_path / "ep.zarr")
    held = to_multihot(np.asarray(store.actions[:])).astype(bool)
    replay = dict(store_frames=store.frames, height=store.height, width=store.width, fps=store.fps, horizon=3)
    one_step, mismatches = replay_visibility(prefix, **replay)
    whole, mismatches_whole = replay_visibility(prefix, **replay, whole_press=True)
    assert mismatches == mismatches_whole == 0  # the replays are the recording

    for button in ("right", "B"):
        pressed = held[:, BUTTONS.index(button)]
        assert pressed.mean() > 0.5  # speedy runs right from the start
        # both modes score the held frames (all but the last few, which have nothing after them)
        for effect in (one_step[button], whole[button]):
            assert np.all(effect[~pressed] == -1) and (effect[pressed] >= 0).mean() > 0.95
        # momentum: released for one store frame the run rarely shows, released whole it does
        visible_one = (one_step[button][pressed] > 0).mean()
        visible_whole = (whole[button][pressed] > 0).mean()
        assert visible_whole > 0.9 and visible_whole > visible_one
        # every scored frame of a press carries that press's one difference
        edges = np.flatnonzero(np.diff(np.concatenate([[0], pressed.astype(np.int8), [0]])))
        for start, stop in zip(edges[::2], edges[1::2]):
            scored = whole[button][start:stop]
            assert len(set(scored[scored >= 0].tolist())) <= 1
