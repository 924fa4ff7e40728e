"""benchmarks/policy_ratios.py: the ratios and their bootstrap intervals, on made-up episodes."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.policy_ratios import markdown, table


def test_ratios_to_random_and_oracle_with_intervals_around_them():
    rng = np.random.default_rng(1)
    progress = {
        "random": rng.uniform(0.15, 0.25, 48),    # mean ~0.2
        "vpt": rng.uniform(0.5, 0.9, 48),         # mean ~0.7: ~3.5x random, clearly over 3x
        "oracle-bc": rng.uniform(0.2, 0.4, 48),   # mean ~0.3: ~1.5x random, clearly under 3x
    }
    rows = {row["policy"]: row for row in table(progress)}
    vpt, oracle = rows["vpt"], rows["oracle-bc"]
    assert vpt["episodes"] == 48
    assert vpt["vs_random"]["ratio"] == pytest.approx(progress["vpt"].mean() / progress["random"].mean())
    low, high = vpt["vs_random"]["interval_90"]
    assert low < vpt["vs_random"]["ratio"] < high and high - low < 0.6
    assert vpt["vs_random"]["p_at_target"] > 0.95
    assert oracle["vs_random"]["p_at_target"] == 0.0
    assert vpt["vs_oracle-bc"]["ratio"] > 2 and vpt["vs_oracle-bc"]["p_at_target"] == 1.0
    # the baselines get no ratio to themselves or to each other
    assert "vs_random" not in rows["random"] and "vs_oracle-bc" not in rows["random"]
    assert "vs_oracle-bc" not in oracle
    assert "| vpt | 48 |" in markdown(list(rows.values()))


def test_trainings_of_one_policy_pool_and_their_spread_widens_the_interval():
    rng = np.random.default_rng(2)
    random = rng.uniform(0.15, 0.25, 48)
    # three trainings that play alike within each one but differ from each other, as seeds do
    trainings = [rng.uniform(centre - 0.05, centre + 0.05, 48) for centre in (0.3, 0.6, 0.9)]
    pooled = {row["policy"]: row for row in table({"random": random, "vpt": trainings})}["vpt"]
    as_one = {row["policy"]: row for row in table({"random": random, "vpt": np.concatenate(trainings)})}["vpt"]
    assert pooled["episodes"] == 144
    assert pooled["training_means"] == pytest.approx([t.mean() for t in trainings])
    assert pooled["mean"] == pytest.approx(np.mean([t.mean() for t in trainings]))
    assert pooled["vs_random"]["ratio"] == pytest.approx(as_one["vs_random"]["ratio"])
    low, high = pooled["vs_random"]["interval_90"]
    one_low, one_high = as_one["vs_random"]["interval_90"]
    # resampling trainings as well as episodes: the seeds' spread shows in the interval
    assert high - low > 3 * (one_high - one_low)
    assert " / ".join(f"{t.mean():.3f}" for t in trainings) in markdown([pooled])
