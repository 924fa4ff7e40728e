"""Policy benchmarks, measured side by side in one run (absolute times are noise on a shared machine).

- bounded context: a ModelAgent's step time at step 2,000 against step 50 (goal <= 1.5);
- cached context against re-running the whole window every step (what the cache saves);
- one policy step (cached, demo-size model) against the 3 emulator frames it holds its action for;
- parallel rollouts (one emulator per worker process) against the same episodes in one process.

Run: `.venv/bin/python -m benchmarks.bench_policy`.
"""

from __future__ import annotations

import time

import numpy as np


def _demo_policy():
    """The demo config's model size (config/demo.yaml `idm.model`), causal, random weights."""
    import torch

    from swag.model import ModelConfig, VPTModel

    torch.manual_seed(0)
    config = ModelConfig(embedding_dim=128, ff_dim=256, transformer_heads=4, transformer_blocks=2,
                         dimensions={"x": 64, "y": 60}, feature_channels=[16, 32, 32], spatial_channels=16,
                         sequence_length=32, causal=True)
    return VPTModel(config).eval()


def _screens(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 240, 256, 3), dtype=np.uint8)


def bounded_context_rows() -> list[dict]:
    from swag.policy import ModelAgent

    model = _demo_policy()
    screens = _screens(64)
    agent = ModelAgent(model, context="cache")
    step_times = np.zeros(2_011)
    for step in range(2_011):
        started = time.perf_counter()
        agent.act(screens[step % len(screens)])
        step_times[step] = time.perf_counter() - started
    early = float(np.median(step_times[40:61]))  # steps 40..60, around step 50
    late = float(np.median(step_times[1_990:2_011]))  # around step 2,000
    window = ModelAgent(model, context="window")
    window_times = []
    for step in range(60):
        started = time.perf_counter()
        window.act(screens[step % len(screens)])
        window_times.append(time.perf_counter() - started)
    windowed = float(np.median(window_times[40:]))  # window full (32 frames)
    return [
        {"benchmark": "ModelAgent step time, step 2000 vs step 50 (cached context)", "measured": late * 1e3,
         "reference": early * 1e3, "ratio": late / early, "unit": "ms", "goal": "ratio <= 1.5"},
        {"benchmark": "ModelAgent step: cached context vs whole window re-run", "measured": late * 1e3,
         "reference": windowed * 1e3, "ratio": late / windowed, "unit": "ms", "goal": "ratio < 1"},
    ]


def policy_vs_emulator_row() -> dict:
    from swag import games
    from swag.policy import ModelAgent

    agent = ModelAgent(_demo_policy())
    env = games.make("smb1", "1-1")
    frame, _ = env.reset(seed=0)
    policy_times, emulator_times = [], []
    for step in range(200):
        started = time.perf_counter()
        action = agent.act(frame)
        policy_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(3):  # 60 / 20 fps
            frame, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                frame, _ = env.reset(seed=step)
        emulator_times.append(time.perf_counter() - started)
    env.close()
    policy, emulator = float(np.median(policy_times)), float(np.median(emulator_times))
    return {"benchmark": "one policy step (demo model, cached) vs the 3 emulator frames it holds",
            "measured": policy * 1e3, "reference": emulator * 1e3, "ratio": policy / emulator, "unit": "ms",
            "goal": "informative: ~1 means per-worker inference is as cheap as the emulator"}


def parallel_rollout_row() -> dict:
    from swag.policy import AgentSpec
    from swag.rollout import available_cores, evaluate_agents

    workers = max(2, available_cores())
    spec = AgentSpec("random", "random", actions=[0, 1, 2, 64, 128, 129, 130, 131])
    kwargs = dict(game_levels=[("smb1", "1-1")], episodes=2 * workers, max_steps=600, fps=20, show_progress=False)
    timings = {}
    frames = {}
    for count in (1, workers):
        started = time.perf_counter()
        result = evaluate_agents([spec], workers=count, **kwargs)
        timings[count] = time.perf_counter() - started  # includes starting the worker processes
        frames[count] = sum(e["frames"] for e in result["random"]["games"]["smb1:1-1"]["per_episode"])
    assert frames[1] == frames[workers]  # the same seeded episodes either way
    serial, parallel = frames[1] / timings[1], frames[workers] / timings[workers]
    return {"benchmark": f"rollout throughput, {workers} worker processes vs 1 (emulator frames/s, "
                         f"{2 * workers} episodes, startup included)",
            "measured": parallel, "reference": serial, "ratio": parallel / serial, "unit": "frames/s",
            "goal": f"ratio near {workers} on idle cores"}


def run() -> list[dict]:
    import torch

    torch.set_num_threads(1)
    return [*bounded_context_rows(), policy_vs_emulator_row(), parallel_rollout_row()]


if __name__ == "__main__":
    for row in run():
        print(f"{row['benchmark']}: {row['measured']:.3g} vs {row['reference']:.3g} {row['unit']} "
              f"-> ratio {row['ratio']:.2f} (goal: {row['goal']})")
