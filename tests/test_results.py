"""swag.results: the result table's rows, its ratios and their bootstrap intervals over episodes."""

import json
from pathlib import Path

import numpy as np
import pytest

from swag.results import build_table, ratio_interval, to_markdown


def _results(path: Path, policy: str, episodes_by_game: dict[str, list[float]]) -> Path:
    """A `swag evaluate-vpt` results file with these episodes' progress, per GAME:LEVEL."""
    games = {game: {"game": game.split(":")[0], "level": game.split(":")[1], "episodes": len(episodes),
                    "progress_mean": float(np.mean(episodes)), "progress_median": float(np.median(episodes)),
                    "progress_std": float(np.std(episodes)), "clear_mean": 0.0, "deaths_mean": 1.0,
                    "per_episode": [{"episode": i, "progress": value} for i, value in enumerate(episodes)]}
             for game, episodes in episodes_by_game.items()}
    path.write_text(json.dumps({"format": "swag-rollouts", "policy": policy, "fps": 20, "max_steps": 60,
                                "games": games}))
    return path


def test_ratios_carry_a_90_percent_interval_over_the_episodes(tmp_path):
    rng = np.random.default_rng(0)
    random_play = (0.2 + 0.02 * rng.standard_normal(8)).tolist()
    vpt_play = (0.5 + 0.25 * rng.standard_normal(8)).clip(0.05, 1).tolist()
    steady_play = [0.4] * 8
    paths = [_results(tmp_path / f"{name}.json", name, {"smb1:1-1": play})
             for name, play in (("random", random_play), ("vpt", vpt_play), ("oracle-bc", steady_play))]
    table = build_table(paths)
    point = table["ratios"]["vs random"]["smb1:1-1"]["vpt"]
    low, high = table["ratio_intervals"]["vs random"]["smb1:1-1"]["vpt"]
    assert point == pytest.approx(np.mean(vpt_play) / np.mean(random_play))
    assert low < point < high
    # the spread of vpt's episodes is most of the interval's width: wider than steady play's
    steady_low, steady_high = table["ratio_intervals"]["vs random"]["smb1:1-1"]["oracle-bc"]
    assert high - low > 3 * (steady_high - steady_low) > 0
    assert f"vpt {point:.2f}x ({low:.2f}–{high:.2f})" in to_markdown(table)
    assert "(90% interval over episodes)" in to_markdown(table)


def test_an_interval_is_left_out_where_it_cannot_be_computed():
    assert ratio_interval([0.3, 0.4], []) is None
    assert ratio_interval([0.3, 0.4], [0.0, 0.1]) is None  # a draw of the denominator's episodes can be 0
    assert ratio_interval([0.4, 0.4], [0.2, 0.2]) == pytest.approx([2.0, 2.0])


def test_result_table_orders_finetuned_rows_and_compares_them_with_vpt(tmp_path):
    paths = [_results(tmp_path / f"{name}.json", name, {"smb1:1-1": [a, a], "smb1:1-2": [b, b]}) for name, a, b in [
        ("rl-scratch-smb1-1-2", 0.1, 0.15), ("vpt-rl-ft-smb1-1-2", 0.2, 0.2), ("demonstrator", 0.9, 0.4),
        ("vpt-bc-ft-smb1-1-2", 0.25, 0.3), ("random", 0.2, 0.1), ("vpt", 0.3, 0.1)]]
    table = build_table(paths)
    assert [row["policy"] for row in table["rows"]] == [
        "random", "vpt", "demonstrator", "vpt-bc-ft-smb1-1-2", "vpt-rl-ft-smb1-1-2", "rl-scratch-smb1-1-2"]
    assert table["ratios"]["vs vpt"]["smb1:1-2"] == pytest.approx(
        {"vpt-bc-ft-smb1-1-2": 3.0, "vpt-rl-ft-smb1-1-2": 2.0, "rl-scratch-smb1-1-2": 1.5})
    assert "demonstrator" not in table["ratios"]["vs vpt"]["smb1:1-2"]
    assert table["rows"][0]["progress_episodes"] == {"smb1:1-1": [0.2, 0.2], "smb1:1-2": [0.1, 0.1]}
    assert "Mean progress relative to vpt (90% interval over episodes):" in to_markdown(table)
