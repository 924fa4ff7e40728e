"""Agents: causality and bounded context of the model-backed policy, sampling, random baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from swag.actions import to_multihot
from swag.errors import SwagError
from swag.model import ModelConfig, VPTModel
from swag.policy import AgentSpec, ModelAgent, RandomAgent, downscale, load_model, make_agent

torch.set_num_threads(1)


def tiny_model(causal=True, head="buttons", sequence_length=8, seed=0) -> VPTModel:
    torch.manual_seed(seed)
    config = ModelConfig(embedding_dim=32, ff_dim=64, transformer_heads=2, transformer_blocks=2,
                         dimensions={"x": 32, "y": 30}, feature_channels=[8, 8], spatial_channels=4,
                         sequence_length=sequence_length, causal=causal, head=head)
    return VPTModel(config).eval()


def random_frames(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 30, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("causal", [True, False])
def test_changing_a_future_frame_changes_no_earlier_output_only_when_causal(causal):
    model = tiny_model(causal=causal)
    frames = torch.from_numpy(random_frames(8))
    altered = frames.clone()
    altered[5:] = 255 - altered[5:]  # frames 5, 6, 7 are the future of step 4
    with torch.no_grad():
        logits, _ = model(frames.unsqueeze(0))
        logits_altered, _ = model(altered.unsqueeze(0))
    past_same = torch.allclose(logits[0, :5], logits_altered[0, :5], atol=1e-6)
    assert past_same == causal  # the IDM (causal=False) must see the future, or this test proves nothing
    assert not torch.allclose(logits[0, 5:], logits_altered[0, 5:], atol=1e-6)


def test_model_agent_refuses_a_non_causal_model():
    with pytest.raises(SwagError, match="not causal"):
        ModelAgent(tiny_model(causal=False))


@pytest.mark.parametrize("head", ["buttons", "joint"])
def test_cached_context_reproduces_the_model_within_the_first_window(head):
    model = tiny_model(head=head)
    cached, windowed = ModelAgent(model, context="cache"), ModelAgent(model, context="window")
    frames = random_frames(8)
    for t in range(8):
        p_cached, p_window = cached.action_probs(frames[t]), windowed.action_probs(frames[t])
        with torch.no_grad():
            logits, _ = model(torch.from_numpy(frames[: t + 1]).unsqueeze(0))
        expected = model.button_probs(logits)[0, -1] if head == "buttons" else logits[0, -1].softmax(-1)
        np.testing.assert_allclose(p_window, expected.numpy(), atol=1e-6)
        np.testing.assert_allclose(p_cached, p_window, atol=1e-5)


@pytest.mark.parametrize("context", ["cache", "window"])
def test_context_is_bounded_to_the_last_frames(context):
    model = tiny_model(sequence_length=6)
    agent_a, agent_b = ModelAgent(model, context=context), ModelAgent(model, context=context)
    # two episodes with different beginnings and the same last 6 + kernel frames
    shared = random_frames(6 + model.config.temporal_kernel, seed=1)
    episode_a = np.concatenate([random_frames(30, seed=2), shared])
    episode_b = np.concatenate([random_frames(7, seed=3), shared])
    for frame in episode_a:
        probs_a = agent_a.action_probs(frame)
    for frame in episode_b:
        probs_b = agent_b.action_probs(frame)
    np.testing.assert_allclose(probs_a, probs_b, atol=1e-5)
    assert len(agent_a.embeddings) <= 6 and len(agent_a.frames) <= 6
    # and the early frames did matter while they were inside the window
    agent_a.reset(0)
    agent_b.reset(0)
    for frame_a, frame_b in zip(episode_a[:3], episode_b[:3]):
        probs_a, probs_b = agent_a.action_probs(frame_a), agent_b.action_probs(frame_b)
    assert not np.allclose(probs_a, probs_b, atol=1e-5)


def test_agent_sees_frames_downscaled_like_convert():
    import cv2

    screen = np.random.default_rng(0).integers(0, 256, (240, 256, 3), dtype=np.uint8)
    small = downscale(screen, 32, 30)
    np.testing.assert_array_equal(small, cv2.resize(screen, (32, 30), interpolation=cv2.INTER_AREA))
    model = tiny_model()
    full, pre = ModelAgent(model), ModelAgent(model)
    np.testing.assert_allclose(full.action_probs(screen), pre.action_probs(small), atol=1e-6)


def test_sampling_is_seeded_and_follows_the_probabilities():
    model = tiny_model()
    agent = ModelAgent(model)
    probs = np.array([0.9, 0.1, 0.0, 0.0, 0.5, 0.0, 0.0, 1.0])
    agent.reset(7)
    first = [agent.choose(probs) for _ in range(2000)]
    agent.reset(7)
    assert [agent.choose(probs) for _ in range(2000)] == first
    rates = to_multihot(np.array(first, np.uint8)).mean(0)
    np.testing.assert_allclose(rates, probs, atol=0.04)
    greedy = ModelAgent(model, greedy=True)
    assert greedy.choose(probs) == int(1 | 1 << 7)  # A and right: the buttons above 0.5


def test_joint_head_samples_bytes():
    agent = ModelAgent(tiny_model(head="joint"))
    probs = np.zeros(256)
    probs[[3, 130]] = [0.25, 0.75]
    agent.reset(1)
    draws = np.array([agent.choose(probs) for _ in range(1000)])
    assert set(draws) == {3, 130}
    assert 0.68 < (draws == 130).mean() < 0.82


def test_random_agent_draws_uniformly_from_its_set():
    agent = RandomAgent([0, 128, 129, 130])
    agent.reset(3)
    draws = [agent.act(None) for _ in range(4000)]
    counts = np.bincount(draws, minlength=256)
    assert set(np.flatnonzero(counts)) == {0, 128, 129, 130}
    assert counts[[0, 128, 129, 130]].min() > 850
    with pytest.raises(SwagError):
        RandomAgent([])


def test_model_agent_from_a_train_checkpoint(tmp_path):
    model = tiny_model()
    path = tmp_path / "model.pt"
    torch.save({"model": model.state_dict(), "model_config": model.config.to_dict()}, path)
    agent = make_agent(AgentSpec("model", "vpt", checkpoint=str(path)), "smb1")
    frame = random_frames(1)[0]
    np.testing.assert_allclose(agent.action_probs(frame), ModelAgent(model).action_probs(frame), atol=1e-6)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SwagError, match="junk.pt"):
        load_model(tmp_path / "junk.pt")
