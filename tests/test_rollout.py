"""Online evaluation in the real emulator: every game runs and reports its progress measure,
the policy acts at the pipeline's frame rate, results are seeded and independent of workers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from swag import actions
from swag.errors import SwagError
from swag.policy import Agent, AgentSpec, RandomAgent
from swag.rollout import (Episode, evaluate_agents, hold_lengths, parse_game, read_results, run_episode,
                          summarize)

torch.set_num_threads(1)

RIGHT_RUN_JUMP = actions.from_names(["right", "B", "A"])
RIGHT_RUN = actions.from_names(["right", "B"])


class CountingAgent(Agent):
    """Runs right and jumps now and then; remembers what it was shown."""

    name = "counting"

    def reset(self, seed, env=None, info=None):
        self.calls, self.shapes = 0, set()

    def act(self, frame, info=None):
        self.calls += 1
        self.shapes.add(frame.shape)
        return RIGHT_RUN_JUMP if self.calls % 8 < 4 else RIGHT_RUN


@pytest.mark.parametrize("fps", [20, 24, 60, 7.5])
def test_hold_lengths_match_the_conversion_spans(fps):
    holds = hold_lengths(100, fps)
    spans = actions.frame_spans(int(np.ceil(100 * 60 / fps)) + 1, 60, fps)[:100]
    np.testing.assert_array_equal(holds, spans[:, 1] - spans[:, 0])
    assert abs(holds.mean() - 60 / fps) < 0.05


def test_policy_acts_once_per_step_at_the_pipeline_rate():
    agent = CountingAgent()
    episode = Episode(AgentSpec("random", "unused"), "smb1", "1-1", 0, seed=5, max_steps=120, fps=20)
    seen = []
    result = run_episode(episode, agent=agent, on_frame=lambda action, info: seen.append((action, info["x_pos"])))
    assert agent.calls == result["steps"]
    assert agent.shapes == {(240, 256, 3)}
    assert len(seen) == result["frames"]  # on_frame: once per emulator frame, with the byte held
    assert [action for action, _x in seen[:3]] == [RIGHT_RUN_JUMP] * 3 and seen[12][0] == RIGHT_RUN
    assert max(x for _action, x in seen) == result["x_max"]
    if not result["ended"]:
        assert result["steps"] == 120 and result["frames"] == 360
    assert result["x_max"] > 300  # running right for 6 s gets somewhere
    assert result["button_rates"]["right"] == 1.0 and result["button_rates"]["left"] == 0.0


@pytest.mark.parametrize("game, level, measures", [
    ("smb1", "1-1", {"x_max", "clear", "deaths"}),
    ("smb-lost-levels", "1-1", {"x_max", "clear", "deaths"}),
    ("tetris-a", None, {"lines", "score"}),
    ("zelda", None, {"screens"}),
])
def test_a_rollout_on_each_game_reports_its_progress_measure(game, level, measures):
    steps = 60 if game == "zelda" else 200  # zelda's emulator is ~8x slower per frame
    agent = RandomAgent([0, *(actions.BIT[b] for b in ("A", "B", "up", "down", "left", "right")), RIGHT_RUN])
    episode = Episode(AgentSpec("random", "random"), game, level, 0, seed=1, max_steps=steps, fps=20)
    result = run_episode(episode, agent=agent)
    assert measures <= set(result)
    assert 0 < result["steps"] <= steps
    assert result["frames"] == sum(hold_lengths(result["steps"], 20)) or result["ended"]
    if game.startswith("smb"):
        assert 0 < result["progress"] <= 1 and result["x_max"] > 0
    else:
        assert result["progress"] >= (1 if game == "zelda" else 0)


def test_parallel_rollouts_equal_serial_ones_and_write_results(tmp_path):
    specs = [AgentSpec("random", "random", actions=[RIGHT_RUN, RIGHT_RUN_JUMP, 0]),
             AgentSpec("demonstrator", "demonstrator", style="speedy")]
    kwargs = dict(game_levels=[parse_game("smb1:1-1")], episodes=2, max_steps=100, fps=20, show_progress=False)
    serial = evaluate_agents(specs, workers=1, **kwargs)
    parallel = evaluate_agents(specs, workers=2, out_dir=tmp_path, videos=1, **kwargs)
    for name in ("random", "demonstrator"):
        a, b = serial[name]["games"]["smb1:1-1"], parallel[name]["games"]["smb1:1-1"]
        assert [e["x_max"] for e in a["per_episode"]] == [e["x_max"] for e in b["per_episode"]]
        assert a["progress_mean"] == b["progress_mean"]
        assert read_results(tmp_path / f"{name}.json")["games"]["smb1:1-1"]["progress_mean"] == b["progress_mean"]
        assert len(b["videos"]) == 1
    # the two episodes of a game differ in seed, the same seed for every policy
    seeds = [e["seed"] for e in parallel["random"]["games"]["smb1:1-1"]["per_episode"]]
    assert len(set(seeds)) == 2
    assert seeds == [e["seed"] for e in parallel["demonstrator"]["games"]["smb1:1-1"]["per_episode"]]
    assert parallel["demonstrator"]["games"]["smb1:1-1"]["progress_mean"] > \
        parallel["random"]["games"]["smb1:1-1"]["progress_mean"] * 0.5
    import av

    with av.open(parallel["random"]["games"]["smb1:1-1"]["videos"][0]) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 256, 240)
    assert frames == parallel["random"]["games"]["smb1:1-1"]["per_episode"][0]["frames"] + 1
    assert not list(tmp_path.rglob("*.tmp-*"))


def test_summary_aggregates_every_measure():
    episodes = [{"progress": p, "x_max": 100.0 * p, "clear": float(p == 1), "deaths": 1.0 - p, "episode": i,
                 "seed": i, "steps": 10, "frames": 30, "ended": True, "video": None,
                 "button_rates": {b: 0.5 for b in actions.BUTTONS}} for i, p in enumerate([0.2, 0.4, 1.0])]
    summary = summarize(episodes)
    assert summary["progress_mean"] == pytest.approx(1.6 / 3)
    assert summary["progress_median"] == pytest.approx(0.4)
    assert summary["clear_mean"] == pytest.approx(1 / 3)
    assert summary["deaths_mean"] == pytest.approx(1.4 / 3)
    assert summary["episodes"] == 3


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(SwagError, match="unknown game"):
        parse_game("pacman")
    with pytest.raises(SwagError, match="no level"):
        parse_game("smb1:9-9")
    with pytest.raises(SwagError, match="checkpoint"):
        evaluate_agents([AgentSpec("model", "vpt", checkpoint=str(tmp_path / "none.pt"))],
                        [("smb1", "1-1")], 1, 10, 20, workers=1, show_progress=False)
    (tmp_path / "x.json").write_text(json.dumps({"format": "something"}))
    with pytest.raises(SwagError, match="x.json"):
        read_results(tmp_path / "x.json")
