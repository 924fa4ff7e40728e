"""RL fine-tuning (swag.ppo): the loss terms by hand, acting = learning, resume, and a tiny run that learns."""

import json
import math
import os
import signal
import threading
import time

import numpy as np
import pytest
import torch

from swag.errors import TrainingInterrupted
from swag.model import ModelConfig, VPTModel
from swag.ppo import (ActorCritic, Actor, RLConfig, clipped_policy_loss, entropy, finetune_rl, gae, gather,
                      kl_divergence, log_prob, segments)

TINY = dict(embedding_dim=16, ff_dim=32, transformer_heads=2, transformer_blocks=1, dimensions={"x": 32, "y": 30},
            feature_channels=[4, 8], spatial_channels=4, sequence_length=8, causal=True)


@pytest.mark.parametrize("head, size", [("buttons", 8), ("joint", 256)])
def test_kl_is_zero_for_equal_policies_and_positive_otherwise(head, size):
    logits = torch.randn(5, size, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(kl_divergence(logits, logits.clone(), head), torch.zeros(5), atol=1e-6)
    other = logits + torch.randn(5, size, generator=torch.Generator().manual_seed(1))
    assert (kl_divergence(logits, other, head) > 1e-3).all()
    assert (kl_divergence(other, logits, head) > 1e-3).all()


def test_log_prob_and_entropy_agree_with_torch_distributions():
    logits = torch.randn(6, 8, generator=torch.Generator().manual_seed(2))
    actions = torch.tensor([0, 1, 128, 255, 3, 64])
    bits = ((actions.unsqueeze(-1) >> torch.arange(8)) & 1).float()
    bernoulli = torch.distributions.Bernoulli(logits=logits)
    assert torch.allclose(log_prob(logits, actions, "buttons"), bernoulli.log_prob(bits).sum(-1), atol=1e-5)
    assert torch.allclose(entropy(logits, "buttons"), bernoulli.entropy().sum(-1), atol=1e-5)
    joint = torch.randn(6, 256, generator=torch.Generator().manual_seed(3))
    categorical = torch.distributions.Categorical(logits=joint)
    assert torch.allclose(log_prob(joint, actions, "joint"), categorical.log_prob(actions), atol=1e-5)
    assert torch.allclose(entropy(joint, "joint"), categorical.entropy(), atol=1e-5)
    other = torch.randn(6, 256, generator=torch.Generator().manual_seed(4))
    expected = torch.distributions.kl_divergence(categorical, torch.distributions.Categorical(logits=other))
    assert torch.allclose(kl_divergence(joint, other, "joint"), expected, atol=1e-5)


def test_clipped_loss_on_a_hand_checked_batch():
    # ratios 1.5, 0.5, 1.1, 0.7 with advantages +1, +1, -1, -1 and clip 0.2:
    #   max(-1.5, -1.2) = -1.2 (clipped), max(-0.5, -0.8) = -0.5, max(1.1, 1.1) = 1.1, max(0.7, 0.8) = 0.8 (clipped)
    #   mean = (-1.2 - 0.5 + 1.1 + 0.8) / 4 = 0.05
    new = torch.tensor([1.5, 0.5, 1.1, 0.7]).log().requires_grad_()
    old = torch.zeros(4)
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0])
    loss = clipped_policy_loss(new, old, advantages, clip=0.2)
    assert loss.item() == pytest.approx(0.05, abs=1e-6)
    loss.backward()
    # d/d(log r) of -A r / 4 where unclipped, 0 where the clip is the max
    assert new.grad.tolist() == pytest.approx([0.0, -0.5 / 4, 1.1 / 4, 0.0], abs=1e-6)


def test_gae_by_hand():
    rewards = np.array([[1.0], [1.0]], np.float32)
    values = np.array([[0.5], [0.0]], np.float32)
    dones = np.array([[0.0], [1.0]], np.float32)
    advantages, returns = gae(rewards, values, dones, np.array([5.0], np.float32), gamma=0.5, lam=1.0)
    # t=1 ends the episode: delta = 1 - 0 = 1; t=0: delta = 1 + 0.5 * 0 - 0.5 = 0.5, adv = 0.5 + 0.5 * 1 = 1.0
    assert advantages[:, 0].tolist() == pytest.approx([1.0, 1.0])
    assert returns[:, 0].tolist() == pytest.approx([1.5, 1.0])


def test_segments_cut_at_context_length_and_episode_starts():
    starts = np.zeros((8, 2), bool)
    starts[::4] = True  # context length 4
    starts[6, 1] = True  # env 1's episode ended at step 5
    assert segments(starts) == [(0, 0, 4), (0, 4, 4), (1, 0, 4), (1, 4, 2), (1, 6, 2)]
    array = np.arange(16).reshape(8, 2)
    assert gather(array, [(1, 4, 2)], 4, fill=-1).tolist() == [[9, 11, -1, -1]]


@pytest.mark.parametrize("previous_buttons", [[], ["A", "B"]])
def test_acting_one_frame_at_a_time_matches_learning_on_whole_segments(previous_buttons):
    torch.manual_seed(0)
    agent = ActorCritic(VPTModel(ModelConfig(**TINY, previous_buttons=previous_buttons))).eval()
    torch.nn.init.normal_(agent.value.weight)  # a non-zero critic, so values are compared too
    rng = np.random.default_rng(0)
    T, N, L = 12, 2, 8
    obs = rng.integers(0, 256, (T, N, 30, 32, 3), dtype=np.uint8)
    starts = np.zeros((T, N), bool)
    starts[0] = starts[8] = True
    starts[3, 0] = True  # env 0 starts a new episode at step 3
    previous = rng.integers(0, 256, (T, N))  # the byte held before each step (arbitrary here)
    actor = Actor(agent, N)
    acted_logits, acted_values = np.zeros((T, N, 8), np.float32), np.zeros((T, N), np.float32)
    for t in range(T):
        for env in np.flatnonzero(starts[t]):
            actor.start_segment(env)
        logits, values = actor.step(obs[t], previous[t])
        acted_logits[t], acted_values[t] = logits.numpy(), values.numpy()
    chosen = segments(starts)
    with torch.no_grad():
        logits, values = agent(torch.from_numpy(gather(obs, chosen, L)), torch.from_numpy(gather(previous, chosen, L)))
    valid = gather(np.ones((T, N), bool), chosen, L, fill=False)
    np.testing.assert_allclose(logits.numpy()[valid], gather(acted_logits, chosen, L)[valid], atol=1e-4)
    np.testing.assert_allclose(values.numpy()[valid], gather(acted_values, chosen, L)[valid], atol=1e-4)


def _config(**overrides) -> RLConfig:
    values = dict(iterations=3, envs=2, rollout_steps=16, epochs=2, minibatches=2, learning_rate=1e-3,
                  async_envs=False, seed=0)
    values.update(overrides)
    return RLConfig(**values)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A 'pretrained' policy checkpoint: random weights of the tiny causal config."""
    torch.manual_seed(1)
    model = VPTModel(ModelConfig(**TINY))
    path = tmp_path_factory.mktemp("pretrained") / "model.pt"
    torch.save({"model": model.state_dict(), "model_config": model.config.to_dict()}, path)
    return path


def test_run_writes_a_playable_policy_and_curves(pretrained, tmp_path):
    from swag.policy import ModelAgent

    summary = finetune_rl(tmp_path / "rl", "smb1", "1-1", _config(iterations=2), fps=20, checkpoint=pretrained,
                          progress=False)
    for name in ("model.pt", "checkpoint.pt", "train_log.json", "curves.png"):
        assert (tmp_path / "rl" / name).is_file(), name
    assert [c["iteration"] for c in summary["curves"]] == [1, 2]
    assert summary["env_steps"] == 2 * 2 * 16
    first = summary["curves"][0]
    # before the first update the policy is the pretrained one: the KL starts near zero and grows
    assert 0 <= first["kl_pretrained"] < 0.05
    assert summary["curves"][1]["kl_coef"] == pytest.approx(0.2 * 0.9995)
    agent = ModelAgent.from_checkpoint(tmp_path / "rl" / "model.pt")
    agent.reset(0)
    assert 0 <= agent.act(np.zeros((240, 256, 3), np.uint8)) < 256


def test_sigterm_then_rerun_matches_an_uninterrupted_run(pretrained, tmp_path):
    config = _config(iterations=3)
    finetune_rl(tmp_path / "straight", "smb1", "1-1", config, fps=20, checkpoint=pretrained, progress=False)

    out = tmp_path / "interrupted"
    checkpoint = out / "checkpoint.pt"

    def terminate_after_first_iteration():
        while not checkpoint.exists():
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # a late signal must not kill pytest
    try:
        threading.Thread(target=terminate_after_first_iteration, daemon=True).start()
        with pytest.raises(TrainingInterrupted):
            finetune_rl(out, "smb1", "1-1", config, fps=20, checkpoint=pretrained, progress=False)
        assert torch.load(checkpoint, weights_only=False)["state"]["iteration"] == 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    resumed = finetune_rl(out, "smb1", "1-1", config, fps=20, checkpoint=pretrained, progress=False)
    assert resumed["iterations"] == 3
    straight = torch.load(tmp_path / "straight" / "model.pt", weights_only=False)["model"]
    again = torch.load(out / "model.pt", weights_only=False)["model"]
    for name in straight:
        assert torch.equal(straight[name], again[name]), name


@pytest.mark.slow
def test_sigterm_to_the_whole_job_exits_143_and_the_rerun_resumes(tmp_path):
    """SLURM signals every process of the job, emulator workers included (AsyncVectorEnv)."""
    import subprocess
    import sys
    from pathlib import Path

    tiny = Path(__file__).parent / "config" / "tiny.yaml"
    out = tmp_path / "rl"
    command = [sys.executable, "-m", "swag", "finetune", "--mode", "rl", "--from-scratch", "--config", str(tiny),
               "--target", "smb1-1-2", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out / "checkpoint.pt").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-2000:]
    assert "rerun the same command to resume" in stderr
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming" in rerun.stdout + rerun.stderr
    assert json.loads((out / "train_log.json").read_text())["iterations"] == 2


def test_rollout_steps_must_be_whole_contexts(pretrained, tmp_path):
    from swag.errors import SwagError

    with pytest.raises(SwagError, match="multiple of the policy's sequence_length"):
        finetune_rl(tmp_path, "smb1", "1-1", _config(rollout_steps=12), fps=20, checkpoint=pretrained,
                    progress=False)


@pytest.mark.slow
def test_a_tiny_run_from_scratch_learns_to_move_right(tmp_path):
    """The first 32 steps of SMB 1-1, reward = progress: the return rises within a few iterations."""
    config = _config(iterations=8, envs=2, rollout_steps=32, epochs=4, minibatches=2, learning_rate=3e-3,
                     scratch_entropy_coef=0.0)
    summary = finetune_rl(tmp_path, "smb1", "1-1", config, fps=20, model_config=ModelConfig(**TINY), progress=False)
    returns = [c["episode_return"] for c in summary["curves"]]
    assert all(math.isfinite(r) for r in returns)
    assert np.mean(returns[-2:]) > 1.3 * np.mean(returns[:2]), returns
