"""benchmarks/motion_ceiling.py: the replayed motion and its views, on a real recording of SMB 1-1."""

from __future__ import annotations

import numpy as np

from benchmarks.motion_ceiling import CONTEXT, VIEWS, fit_and_label, replay_motion, views
from swag.convert import convert_recording
from swag.recording import record_episode
from swag.store import open_store


def test_replayed_motion_is_the_recordings_and_its_views_line_up(tmp_path):
    prefix = tmp_path / "1-1_speedy_000"
    record_episode("smb1", "1-1", "speedy", 0, 600, prefix, progress_bar=False)
    convert_recording(prefix, tmp_path / "ep.zarr", height=60, width=64, fps=20, progress_bar=False)
    store = open_store(tmp_path / "ep.zarr")
    motion = replay_motion(prefix, store.fps)
    T = len(store)
    shown = motion["starts"][:T]
    assert np.array_equal(motion["x"][shown], np.asarray(store.info["x_pos"][:T]))  # the replay is the recording
    # the speed byte moves the sub-pixel position: 16ths of a pixel per frame, a pixel being 256 sub-pixels
    fine = motion["x"] * 256 + motion["sub"]
    assert np.corrcoef(np.diff(fine), motion["speed"][:-1] * 16)[0, 1] > 0.9
    assert motion["speed"].max() > 20  # speedy runs right

    features = views(motion, T, 3)
    lo, hi = CONTEXT
    width = hi - lo + 1  # store frames of context
    assert [features[v].shape for v in VIEWS] == [(T, 2 * width + 2), (T, 2 * (3 * (hi - lo) + 1) + 2),
                                                  (T, 2 * (3 * (hi - lo) + 1) + 2), (T, 2 * (3 * (hi - lo) + 1) + 2 + hi - lo)]
    drawn_20 = features[VIEWS[0]]
    # column 2 is the x velocity into t itself; t = 0 has no frame before it, the last frames none after
    assert np.isnan(drawn_20[0, :-lo + 1]).all() and np.isfinite(drawn_20[10, :width]).all()
    assert np.array_equal(drawn_20[1:, -lo], np.diff(motion["x"][shown]))
    assert np.isnan(drawn_20[-1, -lo + 1:width]).all()
    # 60 fps over the same span: the three source steps of a store step add up to it
    drawn_60 = features[VIEWS[1]]
    into_t = drawn_60[:, -3 * lo - 2:-3 * lo + 1].sum(1)
    assert np.allclose(into_t[1:], drawn_20[1:, -lo])


def test_the_classifier_learns_a_separable_button():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    Y = np.c_[X[:, 0] > 0.5, X[:, 1] < 0]
    X[::7, 2] = np.nan  # missing context reads as the mean
    predicted = fit_and_label(X[:300], Y[:300], X[300:], seed=0, steps=300)
    assert predicted.shape == (100, 2) and (predicted == Y[300:]).mean() > 0.95
