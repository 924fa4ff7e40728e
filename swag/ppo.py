"""RL fine-tuning in the real emulator: PPO with a KL leash to the pretrained policy.

One file, read top to bottom like CleanRL's ppo.py, adapted to a causal transformer over frames:

    policy, value head <- the VPT checkpoint (or fresh weights: RL from scratch); reference <- a frozen copy
    for iteration in range(iterations):
        reset every env, seeded by (seed, iteration, env)      a resumed run replays exactly these episodes
        roll out `rollout_steps` policy steps in `envs` emulators in parallel (gymnasium vector env)
        advantages by GAE(gamma, gae_lambda) from the value head
        `epochs` passes over the rollout's context segments in `minibatches` minibatches:
            loss = clipped policy loss + value_coef * value loss
                   + kl_coef * KL(pi || pi_pretrained) - entropy_coef * entropy
        kl_coef *= kl_decay                                     VPT: 0.2, decayed by 0.9995 per iteration
        log to TensorBoard, write the checkpoint

The KL term replaces the entropy bonus (VPT's finding: without it the agent forgets its pretrained
skills); RL from scratch has no reference, so it gets the usual entropy bonus instead.

Why not a library: Stable-Baselines3 and friends expect a feed-forward or LSTM policy over single
observations; ours is a causal transformer over a window of frames, with a frozen copy of itself
as the KL reference. Fitting that into their policy classes would be more code than this file,
which uses gymnasium's vector envs for the parallel emulators and nothing else outside torch.

Context. The policy sees at most L = sequence_length frames. In a rollout each env's context starts
afresh at every multiple of L steps and at every episode start, which cuts the rollout into
"segments" of <= L consecutive steps. Acting encodes one new frame per step and runs the transformer
over the segment so far; learning runs the model once over each whole segment (right-padded; the
model is causal, so padding never reaches a real step). Both compute the same numbers, so the
update's log-probabilities are the ones the actions were sampled with (tests check this), and a
step costs the same at step 10 and step 10,000. BC trained the policy on windows that start
anywhere, so every position 0..L-1 is one it knows. `swag evaluate-vpt` plays the result like
any policy, with a sliding window of L frames.

Reward (TaskEnv): `progress` x the rise of the game's progress measure (swag.games: for SMB the
furthest x as a fraction of the level, so a whole level is worth `progress`), plus `clear` on
clearing the level, minus `death` per life lost.

Files in OUT: model.pt (the policy, loadable like any swag policy, plus the value head),
checkpoint.pt (resume state, written after every iteration), train_log.json and curves.png
(return, KL to the pretrained policy, clear rate per iteration), runs/ (TensorBoard).
SIGTERM stops at the next env step or minibatch and exits 143 (swag.errors.TrainingInterrupted);
rerunning resumes from the last finished iteration.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from swag.actions import BIT, BUTTONS
from swag.errors import SwagError, TrainingInterrupted
from swag.model import NUM_BUTTONS, ModelConfig, VPTModel
from swag.store import atomic_write_text
from swag.train import atomic_torch_save, load_checkpoint, plot_panels, settings_from_dict

log = logging.getLogger(__name__)


@dataclass
class RewardConfig:
    progress: float = 100.0  # per unit of the progress measure (SMB: per whole level)
    clear: float = 10.0  # once, on clearing the level
    death: float = 5.0  # per life lost


@dataclass
class RLConfig:
    """The `rl` settings of a fine-tuning target (workflow/schemas/config.schema.yaml)."""

    iterations: int = 20
    envs: int = 4  # emulators stepping in parallel
    rollout_steps: int = 128  # policy steps per env per iteration; a multiple of sequence_length
    epochs: int = 4  # passes over each rollout
    minibatches: int = 4  # per pass
    learning_rate: float = 1e-4
    clip: float = 0.2  # PPO's ratio clip
    gamma: float = 0.99
    gae_lambda: float = 0.95
    value_coef: float = 0.5
    kl_coef: float = 0.2  # KL(pi || pretrained) weight (VPT: 0.2) ...
    kl_decay: float = 0.9995  # ... multiplied by this after every iteration (VPT: 0.9995)
    entropy_coef: float = 0.0  # entropy bonus with a pretrained policy (the KL term replaces it)
    scratch_entropy_coef: float = 0.01  # entropy bonus for RL from scratch (no KL term)
    max_grad_norm: float = 0.5
    seed: int = 0
    async_envs: bool = True  # emulators in subprocesses (gymnasium AsyncVectorEnv); False: in this process
    # Buttons the agent may press. start and select pause the game or open menus: a policy from
    # scratch would press them half the time, and a pretrained one has learned not to.
    buttons: list[str] = field(default_factory=lambda: ["A", "B", "up", "down", "left", "right"])
    reward: RewardConfig = field(default_factory=RewardConfig)

    def __post_init__(self):
        if isinstance(self.reward, dict):
            self.reward = RewardConfig(**self.reward)
        unknown = set(self.buttons) - set(BUTTONS)
        if unknown or not self.buttons:
            raise ValueError(f"rl.buttons must be a non-empty list of {', '.join(BUTTONS)}; got {self.buttons}")

    @classmethod
    def from_dict(cls, values: dict) -> "RLConfig":
        return settings_from_dict(cls, values, "rl")


# Settings that only say how long: changing them resumes a run instead of restarting it.
RESUMABLE_CHANGES = ("iterations",)


# --- the environment: one policy step = the action held for 60/fps emulator frames ------------------


class TaskEnv(gym.Env):
    """A game (and level) as a gymnasium env at the policy's frame rate, with the shaped reward.

    Observation: the screen downscaled to the policy's input size (H, W, 3) uint8, as `swag convert`
    makes store frames. Action: a pad byte, held for the emulator frames of one policy step (the
    same split as swag.rollout). Built inside each vector-env worker, so the emulator never crosses
    a process boundary.
    """

    def __init__(self, game: str, level: str | None, width: int, height: int, fps: float,
                 reward: RewardConfig | dict, max_steps: int):
        from swag import games  # the emulator: only where an env is built
        from swag.rollout import hold_lengths

        self.env = games.make(game, level)
        self.width, self.height = width, height
        self.holds = hold_lengths(max_steps, fps)  # emulator frames of each policy step of an episode
        self.reward_config = RewardConfig(**reward) if isinstance(reward, dict) else reward
        self.observation_space = gym.spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(256)
        self.steps = 0
        self.last = {}

    def _observe(self, frame) -> np.ndarray:
        from swag.policy import downscale

        return np.ascontiguousarray(downscale(frame, self.width, self.height))

    def _info(self, info) -> dict:
        summary = info["progress"]
        return {"progress": float(summary["progress"]), "clear": float(summary.get("clear", 0.0)),
                "deaths": float(summary.get("deaths", 0.0))}

    def reset(self, *, seed=None, options=None):
        frame, info = self.env.reset(seed=seed)
        self.steps = 0
        self.last = self._info(info)
        return self._observe(frame), dict(self.last)

    def step(self, action):
        terminated = truncated = False
        for _ in range(self.holds[self.steps]):
            frame, _, terminated, truncated, info = self.env.step(int(action))
            if terminated or truncated:
                break
        self.steps += 1
        now = self._info(info)
        reward = (self.reward_config.progress * (now["progress"] - self.last["progress"])
                  + self.reward_config.clear * (now["clear"] - self.last["clear"])
                  - self.reward_config.death * (now["deaths"] - self.last["deaths"]))
        self.last = now
        return self._observe(frame), float(reward), bool(terminated), bool(truncated), dict(now)

    def close(self):
        self.env.close()


def _worker_env(*args) -> TaskEnv:
    """A TaskEnv; in a vector-env worker process, one that leaves SIGTERM to the trainer. SLURM
    signals every process of a job: the trainer stops at its next step and closes the workers,
    which must still be alive to be closed (rather than die mid-step and turn a clean exit 143
    into a crash)."""
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return TaskEnv(*args)


def make_envs(game: str, level: str | None, count: int, width: int, height: int, fps: float,
              reward: RewardConfig, max_steps: int, asynchronous: bool = True):
    """`count` TaskEnvs in a gymnasium vector env that resets an env in the step its episode ends;
    an episode lasts at most `max_steps` policy steps (a rollout resets every env first)."""
    import functools

    make = functools.partial(_worker_env, game, level, width, height, fps, asdict(reward), max_steps)
    mode = gym.vector.AutoresetMode.SAME_STEP
    if asynchronous and count > 1:
        return gym.vector.AsyncVectorEnv([make] * count, context="spawn", autoreset_mode=mode)
    return gym.vector.SyncVectorEnv([make] * count, autoreset_mode=mode)


# --- the agent: the policy plus a value head ---------------------------------------------------------


class ActorCritic(nn.Module):
    """A VPTModel policy and a linear value head on the same transformer features."""

    def __init__(self, policy: VPTModel):
        super().__init__()
        self.policy = policy
        self.value = nn.Linear(policy.config.embedding_dim, 1)
        nn.init.zeros_(self.value.weight)  # start from "no idea": the policy's first update is not
        nn.init.zeros_(self.value.bias)  # pushed around by a random critic

    def forward(self, frames, previous=None):
        """frames (S, L, H, W, 3) uint8 segments, previous (S, L) the byte held before each frame ->
        logits (S, L, 8 or 256), values (S, L)."""
        features = self.policy.transform(self.policy.add_previous(self.policy.encode(frames), previous))  # (S, L, E)
        return self.policy.head(features), self.value(features).squeeze(-1)


def block_buttons(policy: VPTModel, buttons: list[str]) -> None:
    """Make the policy never press a button outside `buttons`, in its weights: the head's outputs
    for those buttons (head "buttons") or for bytes using them (head "joint") get zero weights and
    a bias of -1e4, so their probability is 0, their gradient is 0, and the saved policy plays the
    same way in `swag evaluate-vpt`."""
    allowed = sum(BIT[name] for name in buttons)
    if policy.config.head == "buttons":
        blocked = torch.tensor([not (allowed >> bit) & 1 for bit in range(NUM_BUTTONS)])
    else:
        blocked = (torch.arange(256) & ~allowed) != 0
    with torch.no_grad():
        policy.head.weight[blocked] = 0.0
        policy.head.bias[blocked] = -1e4


# --- distributions over pad bytes, for both action heads ---------------------------------------------


def _bits(actions):
    """(...) pad bytes -> (..., 8) float pressed bits in swag.actions order."""
    return ((actions.long().unsqueeze(-1) >> torch.arange(NUM_BUTTONS, device=actions.device)) & 1).float()


def log_prob(logits, actions, head: str):
    """(...) log-probability of each pad byte under the logits (..., 8 or 256)."""
    logits = logits.float()
    if head == "buttons":  # 8 independent Bernoulli buttons
        return -F.binary_cross_entropy_with_logits(logits, _bits(actions), reduction="none").sum(-1)
    return F.log_softmax(logits, -1).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def entropy(logits, head: str):
    """(...) entropy of the action distribution."""
    logits = logits.float()
    if head == "buttons":
        p = torch.sigmoid(logits)
        return F.binary_cross_entropy_with_logits(logits, p, reduction="none").sum(-1)
    return -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1)


def kl_divergence(logits, reference_logits, head: str):
    """(...) KL(pi || pi_reference) between the action distributions of two logits tensors."""
    logits, reference_logits = logits.float(), reference_logits.float()
    if head == "buttons":  # a sum over buttons of Bernoulli KLs
        p = torch.sigmoid(logits)
        return (p * (F.logsigmoid(logits) - F.logsigmoid(reference_logits))
                + (1 - p) * (F.logsigmoid(-logits) - F.logsigmoid(-reference_logits))).sum(-1)
    log_p, log_q = logits.log_softmax(-1), reference_logits.log_softmax(-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def sample(logits, head: str, generator: torch.Generator):
    """(...) pad bytes drawn from the logits (..., 8 or 256)."""
    logits = logits.float()
    if head == "buttons":
        pressed = torch.rand(logits.shape, generator=generator) < torch.sigmoid(logits)
        return (pressed.long() << torch.arange(NUM_BUTTONS)).sum(-1)
    flat = logits.reshape(-1, logits.shape[-1]).softmax(-1)
    return torch.multinomial(flat, 1, generator=generator).view(logits.shape[:-1])


def clipped_policy_loss(new_log_prob, old_log_prob, advantages, clip: float):
    """PPO's clipped surrogate, as a loss: mean over steps of max(-A r, -A clip(r, 1-c, 1+c))."""
    ratio = (new_log_prob - old_log_prob).exp()
    return torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip)).mean()


def gae(rewards, values, dones, next_value, gamma: float, lam: float):
    """Advantages and returns (T, N) by generalised advantage estimation.

    dones[t]: the episode ended with step t (the next observation starts a new one, whose value
    must not leak back). next_value (N,): the value of the observation after the last step.
    """
    T = len(rewards)
    advantages = np.zeros_like(rewards)
    last = np.zeros_like(next_value)
    for t in reversed(range(T)):
        following = next_value if t == T - 1 else values[t + 1]
        alive = 1.0 - dones[t]
        delta = rewards[t] + gamma * following * alive - values[t]
        advantages[t] = last = delta + gamma * lam * alive * last
    return advantages, advantages + values


# --- acting: one frame per env per step, context cut into segments -----------------------------------


class Actor:
    """Keeps each env's current segment (its frames' embeddings) and acts on all envs at once."""

    def __init__(self, agent: ActorCritic, envs: int):
        self.agent = agent
        self.config = agent.policy.config
        self.frames = [[] for _ in range(envs)]  # the last `temporal_kernel` frames of each segment
        self.embeddings = [[] for _ in range(envs)]  # (E,) per step of each segment

    def start_segment(self, env: int) -> None:
        self.frames[env], self.embeddings[env] = [], []

    @torch.no_grad()
    def step(self, observations: np.ndarray, previous: np.ndarray):
        """observations (N, H, W, 3) uint8, each the next frame of its env's segment, and previous
        (N,) the byte each env held before it -> logits (N, 8 or 256) and values (N,) for the
        action at that frame."""
        policy, kernel = self.agent.policy, self.config.temporal_kernel
        batch = []
        for env, frame in enumerate(observations):
            self.frames[env] = (self.frames[env] + [torch.from_numpy(np.ascontiguousarray(frame))])[-kernel:]
            recent = self.frames[env]
            batch.append(torch.stack([recent[0]] * (kernel - len(recent)) + recent))  # (k, H, W, 3)
        # left-padding with the segment's first frame = the model's own replicate padding
        new = policy.encode(torch.stack(batch))[:, -1]  # (N, E)
        new = policy.add_previous(new[:, None], torch.from_numpy(previous)[:, None])[:, 0]  # (N, E)
        lengths = []
        for env in range(len(observations)):
            self.embeddings[env].append(new[env])
            lengths.append(len(self.embeddings[env]))
        padded = torch.zeros(len(observations), max(lengths), new.shape[-1])  # (N, Lmax, E)
        for env, embeddings in enumerate(self.embeddings):
            padded[env, : lengths[env]] = torch.stack(embeddings)
        features = policy.transform(padded)  # (N, Lmax, E); causal: padding never reaches a real step
        last = features[torch.arange(len(lengths)), torch.tensor(lengths) - 1]  # (N, E)
        return policy.head(last), self.agent.value(last).squeeze(-1)


# --- learning: segments of the rollout ---------------------------------------------------------------


def segments(starts: np.ndarray) -> list[tuple[int, int, int]]:
    """(env, first step, length) of every segment; starts (T, N) bool marks steps that begin one."""
    T, N = starts.shape
    found = []
    for env in range(N):
        begins = [t for t in range(T) if starts[t, env]] + [T]
        found += [(env, a, b - a) for a, b in zip(begins[:-1], begins[1:])]
    return found


def gather(array: np.ndarray, chosen: list[tuple[int, int, int]], length: int, fill=0):
    """(T, N, ...) per-step array -> (S, length, ...) of the chosen segments, right-padded with `fill`."""
    out = np.full((len(chosen), length, *array.shape[2:]), fill, dtype=array.dtype)
    for i, (env, first, size) in enumerate(chosen):
        out[i, :size] = array[first:first + size, env]
    return out


# --- the run -----------------------------------------------------------------------------------------


def _run_key(model_config: ModelConfig, config: RLConfig, game: str, level: str | None, init: str) -> str:
    settings = {k: v for k, v in asdict(config).items() if k not in RESUMABLE_CHANGES}
    key = {"model": model_config.to_dict(), "rl": settings, "game": game, "level": level, "init": init}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def finetune_rl(out_dir, game: str, level: str | None, config: RLConfig, fps: float,
                checkpoint=None, model_config: ModelConfig | None = None, progress: bool = True) -> dict:
    """PPO from the policy in `checkpoint` (a swag model.pt) with the KL leash, or, with
    `checkpoint=None`, from fresh weights of `model_config` (RL from scratch: entropy bonus, no KL).
    Returns the summary written to train_log.json; see the module docstring for the files."""
    from swag.store import file_sha256

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    if checkpoint is not None:
        saved = load_checkpoint(checkpoint)
        model_config = ModelConfig.from_dict(saved["model_config"])
        policy = VPTModel(model_config)
        policy.load_state_dict(saved["model"])
        init = file_sha256(checkpoint)
        hold_limits = saved.get("hold_limits")  # the pretrained policy's data's; RL adds no labelled play
        kl_coef, entropy_coef = config.kl_coef, config.entropy_coef
    elif model_config is not None:
        policy = VPTModel(model_config)
        init = "scratch"
        hold_limits = None
        kl_coef, entropy_coef = 0.0, config.scratch_entropy_coef
    else:
        raise SwagError(f"{out_dir}: RL fine-tuning needs a checkpoint or, from scratch, a model config")
    if not model_config.causal:
        raise SwagError(f"{checkpoint}: the model is not causal (an IDM?); a policy must not see the future")
    L, head = model_config.sequence_length, model_config.head
    if config.rollout_steps % L:
        raise SwagError(f"{out_dir}: rl.rollout_steps {config.rollout_steps} must be a multiple of the "
                        f"policy's sequence_length {L}")
    block_buttons(policy, config.buttons)
    agent = ActorCritic(policy)
    reference = copy.deepcopy(policy).eval().requires_grad_(False) if kl_coef > 0 else None
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.learning_rate, eps=1e-5)

    # --- resume ---
    state = {"iteration": 0, "kl_coef": kl_coef, "env_steps": 0, "curves": []}
    run_key = _run_key(model_config, config, game, level, init)
    checkpoint_path = out_dir / "checkpoint.pt"
    if checkpoint_path.exists():
        saved = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        if saved.get("run_key") == run_key:
            agent.load_state_dict(saved["agent"])
            optimizer.load_state_dict(saved["optimizer"])
            state = saved["state"]
            log.info("resuming %s at iteration %d", checkpoint_path, state["iteration"])
        else:
            log.warning("%s: written by a run with another start, settings or game; training afresh",
                        checkpoint_path)

    def save_checkpoint():
        atomic_torch_save({"agent": agent.state_dict(), "optimizer": optimizer.state_dict(), "state": state,
                           "run_key": run_key, "model_config": model_config.to_dict(), "rl_config": asdict(config)},
                          checkpoint_path)

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out_dir / "runs"), purge_step=state["iteration"] or None)
    if state["iteration"] == 0:
        table = "\n".join(f"|{k}|{v}|" for k, v in {**asdict(config), "game": game, "level": level,
                                                     "init": init}.items())
        writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}")
    interrupted = {"flag": False}
    previous_handler = signal.signal(signal.SIGTERM, lambda signum, frame: interrupted.__setitem__("flag", True))

    def check_interrupt():
        if interrupted["flag"]:
            log.warning("SIGTERM: stopping; the checkpoint of iteration %d stays", state["iteration"])
            raise TrainingInterrupted(f"{out_dir}: interrupted in iteration {state['iteration'] + 1}")

    H, W, N, T = model_config.dimensions.y, model_config.dimensions.x, config.envs, config.rollout_steps
    envs = make_envs(game, level, N, W, H, fps, config.reward, T, config.async_envs)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.iterations, initial=state["iteration"], desc="ppo", unit="iteration")
    try:
        while state["iteration"] < config.iterations:
            iteration, started = state["iteration"], time.time()
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + iteration)
            shuffle = np.random.default_rng([config.seed, iteration])

            # --- rollout: every env starts a fresh, seeded episode ---
            obs = np.zeros((T, N, H, W, 3), np.uint8)
            actions = np.zeros((T, N), np.int64)
            previous = np.zeros((T, N), np.int64)  # the byte each env held before step t: none at an episode's start
            log_probs, values, rewards, dones = (np.zeros((T, N), np.float32) for _ in range(4))
            starts = np.zeros((T, N), bool)
            seeds = [int.from_bytes(hashlib.sha1(f"{config.seed}/{iteration}/{env}".encode()).digest()[:4], "little")
                     & 0x7FFFFFFF for env in range(N)]
            observation, _ = envs.reset(seed=seeds)
            actor = Actor(agent, N)
            new_episode = np.ones(N, bool)
            episode_return = np.zeros(N)
            finished = []  # (return, progress, clear) per episode
            agent.eval()
            for t in range(T):
                starts[t] = new_episode | (t % L == 0)
                for env in np.flatnonzero(starts[t]):
                    actor.start_segment(env)
                obs[t] = observation
                if t > 0:
                    previous[t] = np.where(new_episode, 0, actions[t - 1])
                logits, value = actor.step(observation, previous[t])
                action = sample(logits, head, generator)
                log_probs[t] = log_prob(logits, action, head).numpy()
                values[t], actions[t] = value.numpy(), action.numpy()
                observation, reward, terminated, truncated, info = envs.step(action.numpy())
                rewards[t] = reward
                dones[t] = new_episode = terminated | truncated
                episode_return += reward
                for env in np.flatnonzero(new_episode):
                    final = info["final_info"]
                    finished.append((episode_return[env], final["progress"][env], final["clear"][env]))
                    episode_return[env] = 0.0
                check_interrupt()
            for env in np.flatnonzero(~new_episode):  # episodes the rollout cut short count as they stand
                finished.append((episode_return[env], info["progress"][env], info["clear"][env]))
            for env in range(N):  # the observation after the last step begins a new segment (T % L == 0)
                actor.start_segment(env)
            next_value = actor.step(observation, np.where(new_episode, 0, actions[-1]))[1].numpy()
            advantages, returns = gae(rewards, values, dones, next_value, config.gamma, config.gae_lambda)

            # --- learning, on whole segments ---
            chosen = segments(starts)
            seg_obs = torch.from_numpy(gather(obs, chosen, L))  # (S, L, H, W, 3)
            seg_previous = torch.from_numpy(gather(previous, chosen, L))  # (S, L)
            seg = {name: torch.from_numpy(gather(array, chosen, L)) for name, array in
                   (("actions", actions), ("log_probs", log_probs), ("advantages", advantages),
                    ("returns", returns), ("values", values))}
            seg["valid"] = torch.from_numpy(gather(np.ones((T, N), bool), chosen, L, fill=False))  # (S, L)
            if reference is not None:
                with torch.no_grad():
                    seg["reference"] = torch.cat([reference(seg_obs[i:i + 64], previous=seg_previous[i:i + 64])[0]
                                                  for i in range(0, len(chosen), 64)])
            agent.train()
            stats = {k: [] for k in ("policy_loss", "value_loss", "kl_pretrained", "entropy", "approx_kl",
                                     "clip_fraction")}
            for _ in range(config.epochs):
                order = shuffle.permutation(len(chosen))
                for batch in np.array_split(order, min(config.minibatches, len(chosen))):
                    batch = torch.from_numpy(batch)
                    valid = seg["valid"][batch]  # (B, L)
                    logits, value = agent(seg_obs[batch], seg_previous[batch])  # (B, L, A), (B, L)
                    logits, value = logits[valid], value[valid]  # (n, A), (n,)
                    new_log_prob = log_prob(logits, seg["actions"][batch][valid], head)
                    old_log_prob = seg["log_probs"][batch][valid]
                    advantage = seg["advantages"][batch][valid]
                    advantage = (advantage - advantage.mean()) / (advantage.std(unbiased=False) + 1e-8)
                    policy_loss = clipped_policy_loss(new_log_prob, old_log_prob, advantage, config.clip)
                    value_loss = 0.5 * (value - seg["returns"][batch][valid]).pow(2).mean()
                    step_entropy = entropy(logits, head).mean()
                    kl = (kl_divergence(logits, seg["reference"][batch][valid], head).mean()
                          if reference is not None else torch.zeros(()))
                    loss = (policy_loss + config.value_coef * value_loss + state["kl_coef"] * kl
                            - entropy_coef * step_entropy)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(agent.parameters(), config.max_grad_norm)
                    optimizer.step()
                    with torch.no_grad():
                        log_ratio = new_log_prob - old_log_prob
                        stats["approx_kl"].append(((log_ratio.exp() - 1) - log_ratio).mean().item())
                        stats["clip_fraction"].append(((log_ratio.exp() - 1).abs() > config.clip).float().mean().item())
                    stats["policy_loss"].append(policy_loss.item())
                    stats["value_loss"].append(value_loss.item())
                    stats["kl_pretrained"].append(kl.item())
                    stats["entropy"].append(step_entropy.item())
                    check_interrupt()

            # --- bookkeeping ---
            returns_, progress_, clears = (np.array(column, np.float64) for column in zip(*finished))
            record = {"iteration": iteration + 1, "env_steps": state["env_steps"] + T * N,
                      "episodes": len(finished), "episode_return": float(returns_.mean()),
                      "progress": float(progress_.mean()), "clear_rate": float(clears.mean()),
                      "kl_coef": state["kl_coef"], "entropy_coef": entropy_coef,
                      **{k: float(np.mean(v)) for k, v in stats.items()},
                      "steps_per_second": T * N / max(time.time() - started, 1e-9)}
            state["iteration"] = iteration + 1
            state["env_steps"] = record["env_steps"]
            state["kl_coef"] *= config.kl_decay
            state["curves"].append(record)
            save_checkpoint()
            for key, value in record.items():
                if key not in ("iteration",):
                    writer.add_scalar(("charts/" if key in ("episode_return", "progress", "clear_rate", "env_steps",
                                                            "episodes", "steps_per_second", "kl_coef", "entropy_coef")
                                       else "losses/") + key, value, record["iteration"])
            log.info("iteration %d: return %.2f progress %.3f clear %.2f kl %.4f", record["iteration"],
                     record["episode_return"], record["progress"], record["clear_rate"], record["kl_pretrained"])
            if bar is not None:
                bar.set_postfix(ret=f"{record['episode_return']:.2f}", kl=f"{record['kl_pretrained']:.3f}", refresh=False)
                bar.update(1)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        envs.close()
        writer.close()
        if bar is not None:
            bar.close()

    summary = {"mode": "rl", "game": game, "level": level, "init": init, "iterations": state["iteration"],
               "env_steps": state["env_steps"], "model_config": model_config.to_dict(), "rl_config": asdict(config),
               "curves": state["curves"]}
    atomic_torch_save({"model": agent.policy.state_dict(), "model_config": model_config.to_dict(),
                       "value_head": agent.value.state_dict(), "hold_limits": hold_limits,
                       "finetune": {k: v for k, v in summary.items() if k != "curves"}}, out_dir / "model.pt")
    atomic_write_text(json.dumps(summary, indent=1), out_dir / "train_log.json")
    curves = state["curves"]
    plot_panels(out_dir / "curves.png", [c["iteration"] for c in curves], "iteration", {
        "episode return": {"return": [c["episode_return"] for c in curves]},
        "KL to the pretrained policy": {"KL": [c["kl_pretrained"] for c in curves]},
        "clear rate / progress": {"clear rate": [c["clear_rate"] for c in curves],
                                  "progress": [c["progress"] for c in curves]},
    })
    return summary
