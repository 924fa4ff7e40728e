"""The NES action byte: bit order, conversions and resampling."""

import numpy as np
import pytest

from swag import actions


def test_bit_order_matches_nes_py():
    # nes-py / FCEUX: A=bit0, B, Select, Start, Up, Down, Left, Right=bit7
    assert actions.from_names(["A"]) == 0b0000_0001
    assert actions.from_names(["right"]) == 0b1000_0000
    assert actions.from_names(["right", "B"]) == 0b1000_0010
    assert actions.to_names(0b0100_1001) == ["A", "start", "left"]


def test_round_trips_for_every_byte():
    every = np.arange(256, dtype=np.uint8)
    assert np.array_equal(actions.from_multihot(actions.to_multihot(every)), every)
    for byte in range(256):
        assert actions.from_names(actions.to_names(byte)) == byte


def test_bad_names_and_values():
    with pytest.raises(ValueError, match="unknown NES button"):
        actions.from_names(["turbo"])
    with pytest.raises(ValueError):
        actions.to_names(256)


def test_resample_keeps_held_buttons_and_drops_flickers():
    right, a = actions.BIT["right"], actions.BIT["A"]
    source = np.full(60, right, dtype=np.uint8)
    source[10] |= a  # one-frame tap: under half of its 3-frame step
    source[30:36] |= a  # held for two whole steps
    out = actions.resample(source, 60, 20)
    assert out.shape == (20,)
    assert np.all(out & right)
    assert [i for i in range(20) if out[i] & a] == [10, 11]


def test_frame_spans_cover_source_without_overlap():
    spans = actions.frame_spans(100, 60, 20)
    assert spans.shape == (33, 2)
    assert spans[0].tolist() == [0, 3]
    assert np.all(spans[1:, 0] == spans[:-1, 1])
    spans = actions.frame_spans(90, 60, 24)  # non-integer ratio 2.5
    assert np.all(np.diff(spans, axis=1) >= 2)
    with pytest.raises(ValueError):
        actions.frame_spans(10, 30, 60)


def test_keep_partial_adds_only_a_last_step_the_source_starts():
    assert actions.frame_spans(61, 60, 30).tolist()[-1] == [58, 60]
    assert actions.frame_spans(61, 60, 30, keep_partial=True).tolist()[-2:] == [[58, 60], [60, 61]]
    assert len(actions.frame_spans(60, 60, 30, keep_partial=True)) == 30  # nothing left over
    held = np.array([0] * 60 + [1], np.uint8)
    assert actions.resample(held, 60, 30, keep_partial=True).tolist()[-2:] == [0, 1]
