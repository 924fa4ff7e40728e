"""Agents that play a game in the emulator: random, the scripted demonstrator, and a trained policy.

Every agent has the same two calls:

    agent.reset(seed, env, info)          start of an episode (env and info only the demonstrator reads)
    action = agent.act(frame, info)       frame: the screen (H, W, 3) uint8 the agent sees; -> pad byte

`swag.rollout` calls `act` once per policy step (at `data.fps`, each action held for 60/fps
emulator frames), except for agents with `acts_every_frame = True` (the demonstrator, which
plays at the emulator's 60 Hz as it did when it made the data).

Agents are built inside rollout worker processes from a picklable `AgentSpec` (`make_agent`),
so a model checkpoint is loaded once per worker and no tensors cross process boundaries.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from swag.actions import BUTTONS, NUM_BUTTONS, from_multihot, to_multihot
from swag.errors import SwagError

log = logging.getLogger(__name__)

ALL_ACTIONS = tuple(range(256))


def downscale(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """(240, 256, 3) uint8 screen -> (height, width, 3) uint8, as `swag convert` makes store frames.

    cv2.INTER_AREA averages every source pixel a target pixel covers: the policy must see the
    same kind of frames it was trained on. swag.convert resizes inline with the same call; if
    it ever exposes `resize_frame(frame, width, height)`, that one is used, so there is one resize.
    """
    global _resize
    if _resize is None:
        try:
            from swag.convert import resize_frame as _resize
        except ImportError:
            _resize = _inter_area
    return _resize(frame, width, height)


def _inter_area(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    if frame.shape[:2] == (height, width):
        return frame
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


_resize = None


class Agent:
    """The interface; see the module docstring."""

    name = "agent"
    acts_every_frame = False  # True: called at every emulator frame (60 Hz), not at the policy rate

    def reset(self, seed: int, env=None, info: dict | None = None) -> None:
        raise NotImplementedError

    def act(self, frame: np.ndarray, info: dict | None = None) -> int:
        raise NotImplementedError


class RandomAgent(Agent):
    """Uniform over a set of pad bytes, drawn anew at every policy step.

    `actions=None` means all 256 bytes; `swag evaluate-vpt` passes the distinct bytes the
    demonstrators pressed in the game's labelled play instead (for SMB: right with or without A
    and B, left with or without A, nothing), so the baseline never pauses the game with Start and
    presses the buttons the game is played with: a fairer floor than mashing all 8 buttons.
    """

    def __init__(self, actions=None, name: str = "random"):
        self.actions = np.array(sorted(set(int(a) for a in (ALL_ACTIONS if actions is None else actions))),
                                dtype=np.int64)
        if len(self.actions) == 0 or self.actions.min() < 0 or self.actions.max() > 255:
            raise SwagError(f"random agent: actions must be a non-empty set of bytes, got {actions!r}")
        self.name = name
        self.rng = np.random.default_rng(0)

    def reset(self, seed, env=None, info=None):
        self.rng = np.random.default_rng([int(seed), 0x5EED])

    def act(self, frame, info=None):
        return int(self.actions[self.rng.integers(len(self.actions))])


class DemonstratorAgent(Agent):
    """The scripted player that made the data: the ceiling a cloned policy can reach.

    It reads the emulator's RAM, so it needs the env at reset, and it plays at 60 Hz, as when
    it recorded the training data (the policy only acts at `data.fps`). style "mixed" plays
    each episode in one of the styles, chosen by the episode seed, like a dataset of all styles.
    """

    acts_every_frame = True

    def __init__(self, game: str, style: str = "cautious", name: str = "demonstrator"):
        from swag.demonstrators import PLAY_STYLES, make_demonstrator

        self.game, self.style, self.name = game, style, name
        self.styles = PLAY_STYLES if style == "mixed" else (style,)
        self._make = make_demonstrator
        for each in self.styles:  # fail now, not in a worker, for an unknown game or style
            self._make(game, each, 0)
        self.demo = None
        self.env = None

    def reset(self, seed, env=None, info=None):
        if env is None:
            raise ValueError("DemonstratorAgent.reset needs the env: the player reads the game's RAM")
        self.env = env
        self.demo = self._make(self.game, self.styles[int(seed) % len(self.styles)], int(seed))
        self.demo.reset(env, info)

    def act(self, frame, info=None):
        return int(self.demo.act(self.env, info))


# --- the trained policy ----------------------------------------------------------------------------


def load_model(path, device: str = "cpu", checkpoint: dict | None = None):
    """A VPTModel in eval mode from a checkpoint or model.pt written by swag.train."""
    from swag.train import load_model as load_trained

    return load_trained(path, device, checkpoint)


class ModelAgent(Agent):
    """A causal policy checkpoint acting on a bounded context.

    context="cache" (default): keeps the embeddings of the last `sequence_length` frames in a
        ring buffer; each step runs the per-frame encoder (temporal conv -> CNN -> embedder) on
        the new frame only (it needs the last `temporal_kernel` frames) and the transformer over
        the buffer. Acting costs the same at step 10 and step 10,000.
        One difference from a training window: once the episode is longer than the window, the
        oldest `temporal_kernel - 1` frames of the window were encoded with their true history,
        where a training window replicates its first frame instead. Within the first window
        both agree exactly (tests/test_policy.py checks it).
    context="window": re-runs the whole model on the last `sequence_length` raw frames every
        step, exactly as in training; also constant per step, but `sequence_length` times the
        encoder work.

    `hold_limits` ({button: steps}; swag.train stores `swag.actions.hold_limits` of the policy's
    training labels in model.pt): a button held that many steps running is let go for one step.

    A policy with `previous_buttons` also gets, with each frame, the byte the agent held before it
    (`hold`; nothing at an episode's start), as it got the labels' previous byte in training.

    Actions are *sampled* (default), as VPT's agent does: every button independently from its
    press probability (head "buttons"), or the byte from the softmax (head "joint"). Sampling
    keeps a cloned policy from freezing where the demonstrators pressed a button < 50% of the
    time (e.g. when to jump); `greedy=True` takes the most likely action instead (probability
    > 0.5 per button, or the argmax byte). `temperature` divides the logits before sampling:
    below 1 it sharpens every probability towards its greedy choice without making play
    deterministic, so the rare wrong press or release of a small cloned policy is drawn less
    often. The per-episode random stream comes from `reset(seed)`.
    """

    def __init__(self, model, greedy: bool = False, context: str = "cache", name: str = "policy",
                 device: str = "cpu", temperature: float = 1.0, hold_limits: dict[str, int] | None = None):
        import torch

        if context not in ("cache", "window"):
            raise ValueError(f"context must be 'cache' or 'window', got {context!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        if not model.config.causal:
            raise SwagError(f"{name}: the model is not causal (an IDM?); a policy must not see the future")
        self.model = model.eval()
        self.config = model.config
        self.greedy, self.context, self.name, self.temperature = greedy, context, name, float(temperature)
        self.device = torch.device(device)
        self.width, self.height = self.config.dimensions.x, self.config.dimensions.y
        self.window = self.config.sequence_length
        self.kernel = self.config.temporal_kernel
        limits = hold_limits or {}
        unknown = set(limits) - set(BUTTONS)
        if unknown or any(int(steps) < 1 for steps in limits.values()):
            raise SwagError(f"{name}: hold limits must be {{button: steps >= 1}}, got {limits!r}")
        # (8,) steps each button may stay held, in bit order; no limit for buttons not named
        self.hold_limit = np.array([int(limits.get(b, np.iinfo(np.int64).max)) for b in BUTTONS], np.int64)
        self.rng = np.random.default_rng(0)
        self.reset(0)

    @classmethod
    def from_checkpoint(cls, path, release_held: bool = False, **kwargs) -> "ModelAgent":
        """`release_held`: apply the hold limits stored with the model (none stored: none applied)."""
        from swag.train import load_checkpoint

        device = kwargs.get("device", "cpu")
        checkpoint = load_checkpoint(path)  # read once: the weights, and the hold limits beside them
        if release_held:
            kwargs["hold_limits"] = checkpoint.get("hold_limits")
            if kwargs["hold_limits"] is None:
                log.warning("%s: no hold limits stored with the model; it holds buttons as long as it samples them", path)
        return cls(load_model(path, device, checkpoint), **kwargs)

    def reset(self, seed, env=None, info=None):
        self.rng = np.random.default_rng([int(seed), 0xA6E7])
        # raw frames: the last `kernel` (cache) or the whole window; embeddings: the window
        self.frames = deque(maxlen=self.kernel if self.context == "cache" else self.window)
        self.previous = deque(maxlen=self.window)  # the byte held before each frame in `frames`
        self.embeddings = deque(maxlen=self.window)
        self.held = 0  # the pad byte the agent holds now: nothing at the start of an episode
        self.held_steps = np.zeros(NUM_BUTTONS, np.int64)  # steps each button has been held running
        self.steps = 0

    def act(self, frame, info=None):
        probs = self.action_probs(frame)
        return self.hold(self.release_overheld(self.choose(probs)))

    def release_overheld(self, action: int) -> int:
        """The action with every button that would exceed its hold limit let go (its count restarts)."""
        pressed = to_multihot(action)  # (8,)
        held_steps = np.where(pressed, self.held_steps + 1, 0)
        over = held_steps > self.hold_limit
        self.held_steps = np.where(over, 0, held_steps)
        return int(from_multihot(pressed & ~over))

    def hold(self, action: int) -> int:
        """Note the byte the agent now holds: a policy with `previous_buttons` sees it with the next frame.
        Callers that pick the action themselves (not through `act`) tell the agent here."""
        self.held = int(action)
        return self.held

    def action_probs(self, frame) -> np.ndarray:
        """Feed one frame; the distribution over the next action, at the agent's temperature:
        (8,) per-button probabilities for head "buttons", (256,) byte probabilities for head "joint"."""
        import torch

        from swag.model import autocast

        frame = np.asarray(frame, dtype=np.uint8)
        if frame.shape != (self.height, self.width, 3):
            frame = downscale(frame, self.width, self.height)
        self.frames.append(torch.from_numpy(np.ascontiguousarray(frame)).to(self.device))
        self.previous.append(self.held)
        self.steps += 1
        with torch.no_grad(), autocast(self.device):
            if self.context == "window":
                frames = torch.stack(list(self.frames)).unsqueeze(0)  # (1, L, H, W, 3)
                previous = torch.tensor([list(self.previous)], device=self.device)  # (1, L)
                logits, _ = self.model(frames, previous=previous)
                last = logits[0, -1]  # (8 or 256,)
            else:
                previous = torch.tensor([[self.held]], device=self.device)  # (1, 1)
                self.embeddings.append(self.model.add_previous(self._encode_newest()[None, None], previous)[0, 0])
                last = self._transform(torch.stack(list(self.embeddings)).unsqueeze(0))  # (8 or 256,)
            last = last.float() / self.temperature
            if self.config.head == "buttons":
                return torch.sigmoid(last).cpu().numpy()
            return last.softmax(-1).cpu().numpy()

    def choose(self, probs: np.ndarray) -> int:
        if self.config.head == "buttons":
            pressed = probs > 0.5 if self.greedy else self.rng.random(NUM_BUTTONS) < probs
            return int(from_multihot(pressed))
        if self.greedy:
            return int(np.argmax(probs))
        probs = probs.astype(np.float64)
        return int(self.rng.choice(len(probs), p=probs / probs.sum()))

    # VPTModel.forward is head(transform(encode(frames))); the agent encodes one frame per step.
    # tests/test_policy.py checks this reproduces VPTModel.forward within the first window.

    def _encode_newest(self):
        """The embedding (E,) of the newest frame from the last `kernel` raw frames."""
        import torch

        frames = torch.stack(list(self.frames)).unsqueeze(0)  # (1, k', H, W, 3), k' <= kernel
        return self.model.encode(frames)[0, -1]  # (E,): causal, so it saw only frames <= newest

    def _transform(self, embeddings):
        """(1, L, E) embeddings of the last L frames -> logits of the action at the newest one."""
        return self.model.head(self.model.transform(embeddings)[:, -1])[0]  # (8 or 256,)


# --- agents from a picklable recipe --------------------------------------------------------------


@dataclass
class AgentSpec:
    """What to build in a worker: kind "random" | "demonstrator" | "model"."""

    kind: str
    name: str
    checkpoint: str | None = None  # kind "model"
    greedy: bool = False  # kind "model"
    temperature: float = 1.0  # kind "model": logits are divided by it before sampling
    release_held: bool = False  # kind "model": apply the hold limits stored with the model
    context: str = "cache"  # kind "model"
    actions: list[int] | dict[str, list[int]] | None = None  # kind "random": bytes to draw from, by game or not
    style: str = "cautious"  # kind "demonstrator"
    device: str = "cpu"
    extra: dict = field(default_factory=dict)  # free-form notes carried into the results


def make_agent(spec: AgentSpec, game: str) -> Agent:
    if spec.kind == "random":
        actions = spec.actions
        if isinstance(actions, dict):
            if game not in actions:
                raise SwagError(f"random agent: no action set for game {game} (it has {', '.join(actions)})")
            actions = actions[game]
        return RandomAgent(actions, name=spec.name)
    if spec.kind == "demonstrator":
        return DemonstratorAgent(game, spec.style, name=spec.name)
    if spec.kind == "model":
        if spec.checkpoint is None:
            raise SwagError(f"policy {spec.name}: no checkpoint given")
        return ModelAgent.from_checkpoint(spec.checkpoint, greedy=spec.greedy, context=spec.context,
                                          name=spec.name, device=spec.device, temperature=spec.temperature,
                                          release_held=spec.release_held)
    raise SwagError(f"policy {spec.name}: unknown agent kind {spec.kind!r} (random, demonstrator, model)")


# --- behaviour cloning: the VPT policy and its oracle baseline -------------------------------------

LABEL_WEIGHTINGS = ("confidence", "drop", "none")


def policy_labels(entries: list[dict], labels) -> list[str]:
    """Labels store per index entry: `labels="truth"` -> the entries' truth stores (oracle-BC);
    otherwise a folder of IDM labels stores laid out as `{labels}/{game}/{episode}.zarr`."""
    from pathlib import Path

    paths = []
    for entry in entries:
        if labels == "truth":
            if not entry.get("truth"):
                raise SwagError(f"{entry['path']}: the index names no truth store for it (oracle-BC needs one)")
            paths.append(entry["truth"])
        else:
            path = Path(labels) / entry["game"] / Path(entry["path"]).name
            if not path.exists():
                raise SwagError(f"{path}: labels store for {entry['path']} not found (run `swag label`)")
            paths.append(str(path))
    return paths


def frame_weights(actions: np.ndarray, confidence: np.ndarray | None, weighting: str, min_confidence: float,
                  drop_null: bool) -> np.ndarray:
    """float32 (T,) loss weight per frame.

    weighting "confidence": the IDM's confidence in its label (frames below `min_confidence` 0);
    "drop": 1 at or above `min_confidence`, else 0; "none": 1 everywhere. Without confidences
    (true labels) every frame weighs 1. `drop_null` zeroes frames whose action is no button,
    as VPT dropped null actions (a choice that suits Minecraft better than SMB, where standing
    still is often the right move; off by default).
    """
    if weighting not in LABEL_WEIGHTINGS:
        raise SwagError(f"label weighting must be one of {', '.join(LABEL_WEIGHTINGS)}, got {weighting!r}")
    weights = np.ones(len(actions), np.float32)
    if confidence is not None and weighting != "none":
        keep = confidence >= min_confidence
        weights = np.where(keep, confidence if weighting == "confidence" else 1.0, 0.0).astype(np.float32)
    if drop_null:
        weights[np.asarray(actions) == 0] = 0.0
    return weights


def weighted_labels(label_paths: list[str], out_dir, weighting: str, min_confidence: float,
                    drop_null: bool) -> tuple[list[str], dict]:
    """Write `{out_dir}/{i}_{name}` labels stores whose `confidence` is the per-frame loss weight, so
    swag.train (which weights each frame by a labels store's confidence) trains with it.
    Returns their paths and counts of kept frames."""
    from pathlib import Path

    from swag.store import open_store, write_array_store

    out_dir = Path(out_dir)
    paths, total, kept, weight_sum = [], 0, 0, 0.0
    for i, source in enumerate(label_paths):
        store = open_store(source, need_frames=False)
        if store.actions is None:
            raise SwagError(f"{source}: labels store has no actions")
        confidence = store.group["confidence"][:].astype(np.float32) if "confidence" in store.group else None
        weights = frame_weights(store.actions, confidence, weighting, min_confidence, drop_null)
        path = out_dir / f"{i:04d}_{Path(source).name}"
        write_array_store(path, {"actions": store.actions, "confidence": weights},
                          {"kind": "policy-labels", "source": str(source), "weighting": weighting,
                           "min_confidence": min_confidence, "drop_null": drop_null,
                           "frames": len(store.actions)})
        paths.append(str(path))
        total += len(weights)
        kept += int((weights > 0).sum())
        weight_sum += float(weights.sum())
    return paths, {"frames": total, "kept_frames": kept, "weight_sum": weight_sum}


def train_vpt(index_path, labels, model_config, training_config, out_dir, weighting: str = "confidence",
              min_confidence: float = 0.0, drop_null: bool = False, progress: bool = True) -> dict:
    """Behaviour cloning of the causal policy on the index's `train` recordings.

    labels: a folder of IDM labels stores (the VPT policy) or "truth" (oracle-BC: the same
    frames and code, the true actions). Fit/validation split by recording, as for the IDM.
    Frames are weighted per `frame_weights`; the model is the trunk with `causal=True`.
    """
    import dataclasses
    import json
    from pathlib import Path

    from swag.data import index_stores, read_index, split_fit_val
    from swag.store import atomic_write_text
    from swag.train import train

    out_dir = Path(out_dir)
    index = read_index(index_path)
    entries = index_stores(index, "train")
    if not entries:
        raise SwagError(f"{index_path}: no stores in the 'train' split")
    fit, val = split_fit_val(entries, training_config.test_train_split)
    fit_labels, val_labels = policy_labels(fit, labels), policy_labels(val, labels)
    model_config = dataclasses.replace(model_config, causal=True)
    oracle = labels == "truth"
    reweight = not oracle and (weighting != "confidence" or min_confidence > 0 or drop_null)
    reweight = reweight or (oracle and drop_null)
    stats = {}
    if reweight:
        fit_labels, stats["fit"] = weighted_labels(fit_labels, out_dir / "labels" / "fit", weighting,
                                                   min_confidence, drop_null)
        val_labels, stats["val"] = weighted_labels(val_labels, out_dir / "labels" / "val", weighting,
                                                   min_confidence, drop_null)
        if stats["fit"]["kept_frames"] == 0:
            raise SwagError(f"{index_path}: no training frame has label confidence >= {min_confidence}")
    use_confidence = reweight or (not oracle and weighting == "confidence")
    out_dir.mkdir(parents=True, exist_ok=True)
    source = {"index": str(index_path), "labels": str(labels), "oracle": oracle, "weighting": weighting,
              "min_confidence": min_confidence, "drop_null": drop_null, "use_confidence": use_confidence,
              "fit_labels": fit_labels, "val_labels": val_labels, "kept": stats}
    atomic_write_text(json.dumps(source, indent=1) + "\n", out_dir / "policy_labels.json")
    log.info("training the %s policy on %d recordings (%d for validation)", "oracle-BC" if oracle else "VPT",
             len(fit), len(val))
    summary = train(model_config, training_config, out_dir, [e["path"] for e in fit], [e["path"] for e in val],
                    fit_labels, val_labels, use_confidence=use_confidence, progress=progress)
    return {**summary, "labels": source}
