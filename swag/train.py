"""The training loop shared by the IDM and the policy: explicit and linear, CleanRL style.

    OUT/checkpoint.pt   everything needed to resume (written every `checkpoint_every` steps and on SIGTERM)
    OUT/model.pt        the best weights (lowest validation loss) with both configs; with
                        `refit_head`, their action head refit on the frozen trunk (`refit_head`)
    OUT/train_log.json  the curves and the summary;  OUT/curves.png  the same, plotted
    OUT/runs/           TensorBoard events

Interruption: SIGTERM (what SLURM sends before killing a job) makes every process finish its
current step, rank 0 writes the checkpoint, and the command exits with code 143 (128 + SIGTERM),
so SLURM/Snakemake see a failure and retry; rerunning the same command resumes from the
checkpoint at the same step, with the same optimiser, RNG and sampler state.

DDP: launch with `torchrun --nproc_per_node=N -m swag.cli train-idm ...`; RANK/WORLD_SIZE are
detected, gloo is used on CPU and nccl on GPU, `batch_size` is the global batch (split evenly
over the processes), and only rank 0 logs and writes files.
"""

from __future__ import annotations

import json
import logging
import hashlib
import math
import os
import random
import signal
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from swag.actions import hold_limits
from swag.data import (WindowDataset, augment, class_weights, random_shift, read_index, index_stores,
                       split_fit_val)
from swag.errors import EXIT_INTERRUPTED, SwagError, TrainingInterrupted
from swag.model import PRECISIONS, ModelConfig, VPTModel, autocast
from swag.store import atomic_save_figure, atomic_store_path, atomic_write_text, file_sha256

log = logging.getLogger(__name__)



@dataclass
class TrainingConfig:
    """The YAML `training` section, plus extras with defaults (marked)."""

    batch_size: int = 16  # global batch of windows, split evenly over DDP processes
    learning_rate: float = 3e-4
    weight_decay: float = 0.01  # AdamW, on matrices and conv kernels only
    patience: int = 5  # evaluations without a lower validation loss before stopping
    stride: int = 8  # frames between the starts of consecutive training windows
    test_train_split: float = 0.2  # fraction of training recordings held out for validation
    min_class_weight: float = 0.1  # class weights are clipped to [m, 1/m]; see swag.data.class_weights
    epochs: int = 10
    # extras
    max_steps: int = 0  # stop after this many optimiser steps (0: no cap)
    eval_every: int = 0  # steps between validations (0: once per epoch)
    checkpoint_every: int = 200  # steps between checkpoints
    augment: bool = False  # web-video augmentation (swag.data.augment)
    random_shift: int = 0  # pixels each way a window is shifted at random (swag.data.random_shift; 0: off)
    seed: int = 0
    num_workers: int = 0  # DataLoader worker processes per rank
    grad_clip: float = 1.0  # max gradient norm (0: off)
    lr_schedule: str = "constant"  # "constant", or "cosine": linear warmup, then cosine decay to lr/10
    warmup_steps: int = 0  # linear warmup steps of the cosine schedule
    ema_decay: float = 0.0  # validate and keep an exponential moving average of the weights (0: off)
    precision: str = "auto"  # "auto"/"bf16" (bf16 where the hardware has it) or "fp32": swag.model.uses_bf16
    refit_head: bool = False  # after training, refit the action head on the frozen trunk (see `refit_head`)

    def __post_init__(self):
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"training.lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"training.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"training.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "TrainingConfig":
        return settings_from_dict(cls, values, "training")


def learning_rate_at(config: TrainingConfig, step: int, total_steps: int) -> float:
    """The learning rate of optimiser step `step` (0-based) of `total_steps` (nanoGPT's get_lr).

    A pure function of the step, so a resumed run continues the same schedule.
    """
    if config.lr_schedule == "constant":
        return config.learning_rate
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / (config.warmup_steps + 1)
    min_lr = config.learning_rate / 10
    decay_ratio = min((step - config.warmup_steps) / max(total_steps - config.warmup_steps, 1), 1.0)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * decay_ratio)) * (config.learning_rate - min_lr)


def settings_from_dict(cls, values: dict, section: str):
    """`cls(**values)` for a settings dataclass, with a ValueError naming any unknown keys."""
    unknown = set(values) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {section} config keys: {', '.join(sorted(unknown))}")
    return cls(**values)


def atomic_torch_save(obj, path: Path) -> None:
    with atomic_store_path(path) as temp:
        torch.save(obj, temp)


def load_checkpoint(path, model_config: ModelConfig | None = None, map_location="cpu") -> dict:
    """torch.load a checkpoint or model.pt; SwagError when missing, unreadable, or (given
    `model_config`) made for a different model config."""
    path = Path(path)
    if not path.is_file():
        raise SwagError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:
        raise SwagError(f"{path}: not a readable torch checkpoint ({type(error).__name__})") from None
    if not isinstance(checkpoint, dict) or "model" not in checkpoint or "model_config" not in checkpoint:
        raise SwagError(f"{path}: not a swag checkpoint (no model/model_config)")
    if model_config is not None and checkpoint["model_config"] != model_config.to_dict():
        differing = sorted(k for k, v in model_config.to_dict().items() if checkpoint["model_config"].get(k) != v)
        raise SwagError(f"{path}: checkpoint was made for a different model config "
                        f"(differs in {', '.join(differing)})")
    return checkpoint


# Settings that only say how long or how often: changing them resumes a run instead of restarting it.
RESUMABLE_CHANGES = ("epochs", "max_steps", "patience", "eval_every", "checkpoint_every", "num_workers")


def _run_key(model_config: ModelConfig, config: TrainingConfig, fit_stores, val_stores, fit_labels, val_labels,
             use_confidence: bool, init: dict | None = None) -> str:
    """What makes a checkpoint this run's: the model, the settings that shape each step, the
    identity of every store and labels store (path, frames and provenance), and for a fine-tuning
    run the starting weights and what was frozen."""
    from swag.store import read_store_attrs

    def identity(paths):
        return [(str(path), read_store_attrs(path).get("frames"), read_store_attrs(path).get("provenance"),
                 read_store_attrs(path).get("idm_sha256")) for path in paths or []]

    training = {k: v for k, v in asdict(config).items() if k not in RESUMABLE_CHANGES}
    key = {"model": model_config.to_dict(), "training": training, "fit": identity(fit_stores),
           "val": identity(val_stores), "fit_labels": identity(fit_labels), "val_labels": identity(val_labels),
           "use_confidence": use_confidence, "init": init}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def cpu_state_dict(model: torch.nn.Module) -> dict:
    """A copy of `model`'s weights on the CPU, untouched by later training steps."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def load_model(path, device="cpu", checkpoint: dict | None = None) -> VPTModel:
    """A trained model from model.pt (or a checkpoint), in eval mode; `checkpoint`: the file's
    contents, when the caller has already read them for something else."""
    checkpoint = load_checkpoint(path) if checkpoint is None else checkpoint
    try:
        model = VPTModel(ModelConfig.from_dict(checkpoint["model_config"]))
        model.load_state_dict(checkpoint["model"])
    except (ValueError, TypeError, RuntimeError) as error:
        raise SwagError(f"{path}: weights do not fit their model config ({str(error).splitlines()[0]})") from None
    return model.to(device).eval()


def _distributed() -> tuple[int, int, int]:
    """(rank, world_size, local_rank), starting the process group under torchrun."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return 0, 1, 0
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))


def train(model_config: ModelConfig, config: TrainingConfig, out_dir, fit_stores: list, val_stores: list,
          fit_labels: list | None = None, val_labels: list | None = None, use_confidence: bool = False,
          progress: bool = True, init_checkpoint=None, freeze_trunk: bool = False) -> dict:
    """Train a model on windows of `fit_stores`, validating on `val_stores`; see the module docstring.

    `*_labels` (optional) are labels stores (from `swag label`) to train on instead of the stores'
    own actions; `use_confidence` weights each frame's loss by the label confidence.
    Fine-tuning: `init_checkpoint` (a model.pt of the same model config) gives the starting
    weights, and `freeze_trunk` trains only the action head on top of them.
    Returns the summary written to train_log.json.
    """
    out_dir = Path(out_dir)
    rank, world_size, local_rank = _distributed()
    is_main = rank == 0
    if config.batch_size % world_size:
        raise SwagError(f"training.batch_size {config.batch_size} is not divisible by {world_size} processes")
    local_batch = config.batch_size // world_size
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)

    # --- seeding: identical on every rank, so every rank builds the same model ---
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    augment_generator = torch.Generator().manual_seed(config.seed + 1000 * rank)

    # --- data ---
    width, height = model_config.dimensions.x, model_config.dimensions.y
    fit_data = WindowDataset(fit_stores, model_config.sequence_length, config.stride, width, height,
                             fit_labels, use_confidence)
    val_data = WindowDataset(val_stores, model_config.sequence_length, model_config.sequence_length, width,
                             height, val_labels, use_confidence) if val_stores else None
    if len(fit_data) < config.batch_size:
        raise SwagError(f"{out_dir}: only {len(fit_data)} training windows, fewer than batch_size {config.batch_size}")
    steps_per_epoch = len(fit_data) // config.batch_size  # drop_last: every step sees a full global batch
    eval_every = config.eval_every or steps_per_epoch
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)

    # --- model and optimiser ---
    model = VPTModel(model_config).to(device)
    init = None
    if init_checkpoint is not None:
        model.load_state_dict(load_checkpoint(init_checkpoint, model_config)["model"])
        init = {"checkpoint": file_sha256(init_checkpoint), "freeze_trunk": freeze_trunk}
    elif freeze_trunk:
        raise SwagError(f"{out_dir}: freeze_trunk needs starting weights (init_checkpoint)")
    # the loss weights are this data's, not the starting weights' (load_state_dict restored those)
    model.set_class_weights(class_weights(fit_data.all_actions(), model_config.head, config.min_class_weight).to(device))
    if freeze_trunk:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name.startswith("head."))
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.dim() >= 2]
    no_decay = [p for p in trainable if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.learning_rate)
    # The averaged weights are the ones validated and kept: they smooth the last ~1/(1 - decay)
    # steps' noise, for long runs. A short run still learning fast gains nothing: at the demo's 400
    # policy steps the average lagged and played no better (docs/experiments.md).
    ema = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema_decay)) if config.ema_decay else None

    # --- resume ---
    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best_val_loss": math.inf, "evals_since_best": 0,
             "best_model": None, "curves": [], "stopped_early": False}
    checkpoint_path = out_dir / "checkpoint.pt"
    run_key = _run_key(model_config, config, fit_stores, val_stores, fit_labels, val_labels, use_confidence, init)
    checkpoint = load_checkpoint(checkpoint_path) if checkpoint_path.exists() else None
    if checkpoint is not None and checkpoint.get("run_key") != run_key:
        # Snakemake reruns training when its config or data changed: that is a new run, not a resume.
        if is_main:
            log.warning("%s: written by a run with another model, settings or data; training afresh",
                        checkpoint_path)
        checkpoint = None
    if checkpoint is not None:
        if checkpoint["training_config"] != asdict(config) and is_main:
            log.warning("%s: step budget or schedule changed since the checkpoint; resuming with the new one",
                        checkpoint_path)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if ema is not None:
            ema.load_state_dict(checkpoint["ema"])
        for key in state:
            state[key] = checkpoint[key]
        random.setstate(checkpoint["rng"]["python"])
        np.random.set_state(checkpoint["rng"]["numpy"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if torch.cuda.is_available() and checkpoint["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(checkpoint["rng"]["cuda"], device)
        augment_generator.set_state(checkpoint["rng"]["augment"][rank % len(checkpoint["rng"]["augment"])])
        if is_main:
            log.info("resuming %s at step %d", checkpoint_path, state["step"])

    raw_model = model
    eval_model = ema.module if ema is not None else raw_model  # the weights validated and kept
    if world_size > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None)

    def save_checkpoint():
        rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
               "augment": [augment_generator.get_state()]}
        if world_size > 1:  # each rank's augmentation stream, gathered on rank 0
            gathered = [None] * world_size
            dist.all_gather_object(gathered, augment_generator.get_state())
            rng["augment"] = gathered
        if is_main:
            atomic_torch_save({"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                               "ema": ema.state_dict() if ema is not None else None,
                               "model_config": model_config.to_dict(), "training_config": asdict(config),
                               "run_key": run_key, "rng": rng, **state}, checkpoint_path)

    @torch.no_grad()
    def evaluate() -> dict:
        """Validation loss and exact-match accuracy over the whole validation set, all ranks."""
        eval_model.eval()
        totals = torch.zeros(3, dtype=torch.float64, device=device)  # weighted loss sum, weight sum, exact matches
        frames_seen = torch.zeros(1, dtype=torch.float64, device=device)
        for item in range(rank, len(val_data), world_size):
            frames, actions, weights, previous = (t.unsqueeze(0).to(device) for t in val_data[item])
            with autocast(device, config.precision):
                logits, _ = eval_model(frames, previous=previous)
            per_frame_weight = weights.sum()
            totals[0] += eval_model.loss(logits, actions, weights).double() * per_frame_weight
            totals[1] += per_frame_weight
            predicted, _ = eval_model.predict(logits)
            totals[2] += ((predicted.long() == actions).float() * (weights > 0)).sum()
            frames_seen += (weights > 0).sum()
        if world_size > 1:
            dist.all_reduce(totals)
            dist.all_reduce(frames_seen)
        eval_model.train()
        return {"val_loss": (totals[0] / totals[1].clamp_min(1e-8)).item(),
                "val_exact_match": (totals[2] / frames_seen.clamp_min(1)).item()}

    # --- logging (rank 0 only) ---
    writer = None
    if is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "runs"), purge_step=state["step"] or None)
        if state["step"] == 0:
            table = "\n".join(f"|{k}|{v}|" for k, v in {**model_config.to_dict(), **asdict(config)}.items())
            writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{table}")
        log.info("%d parameters; %d fit windows, %d val windows; %d steps per epoch on %s x%d",
                 raw_model.num_parameters(), len(fit_data), len(val_data) if val_data else 0, steps_per_epoch,
                 device, world_size)

    # SIGTERM: finish the step, checkpoint, exit 143
    interrupted = {"flag": False}
    previous_handler = signal.signal(signal.SIGTERM, lambda signum, frame: interrupted.__setitem__("flag", True))

    bar = None
    if is_main and progress:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=state["step"], desc="train", unit="step", dynamic_ncols=True)
    sampler = torch.utils.data.distributed.DistributedSampler(
        fit_data, num_replicas=world_size, rank=rank, shuffle=True, seed=config.seed, drop_last=True)
    model.train()
    running_loss, running_count, started = 0.0, 0, time.time()
    try:
        done = state["step"] >= total_steps or state["stopped_early"]
        while not done:
            # this rank's share of the epoch, skipping the batches already consumed before a resume
            sampler.set_epoch(state["epoch"])
            indices = list(sampler)[: steps_per_epoch * local_batch][state["batch_in_epoch"] * local_batch:]
            loader = torch.utils.data.DataLoader(fit_data, batch_size=local_batch, sampler=indices, drop_last=True,
                                                 num_workers=config.num_workers,
                                                 pin_memory=device.type == "cuda",
                                                 persistent_workers=False)
            for frames, actions, weights, previous in loader:
                frames = frames.to(device, non_blocking=True)
                actions = actions.to(device, non_blocking=True)
                weights = weights.to(device, non_blocking=True)
                previous = previous.to(device, non_blocking=True)
                if config.augment:
                    frames = augment(frames, augment_generator)
                if config.random_shift:
                    frames = random_shift(frames, config.random_shift, augment_generator)
                with autocast(device, config.precision):
                    logits, _ = model(frames, previous=previous)
                loss = raw_model.loss(logits, actions, weights)
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate_at(config, state["step"], total_steps)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                if ema is not None:
                    ema.update_parameters(raw_model)
                state["step"] += 1
                state["batch_in_epoch"] += 1

                loss_value = loss.detach()
                if world_size > 1:  # the global batch's loss, for the log
                    dist.all_reduce(loss_value)
                    loss_value /= world_size
                running_loss += loss_value.item()
                running_count += 1
                if bar is not None:
                    # not refresh=True: a redraw per step would fill a job's log file (update draws at its interval)
                    bar.set_postfix(loss=f"{loss_value.item():.4f}", refresh=False)
                    bar.update(1)
                if writer is not None:
                    writer.add_scalar("train/loss", loss_value.item(), state["step"])
                    writer.add_scalar("train/learning_rate", optimizer.param_groups[0]["lr"], state["step"])

                if state["step"] % eval_every == 0 or state["step"] == total_steps:
                    record = {"step": state["step"], "epoch": state["epoch"],
                              "train_loss": running_loss / max(running_count, 1),
                              "frames_per_second": running_count * config.batch_size
                              * model_config.sequence_length / max(time.time() - started, 1e-9)}
                    running_loss, running_count, started = 0.0, 0, time.time()
                    if val_data is not None and len(val_data):
                        record.update(evaluate())
                        if record["val_loss"] < state["best_val_loss"]:
                            state["best_val_loss"] = record["val_loss"]
                            state["evals_since_best"] = 0
                            state["best_model"] = cpu_state_dict(eval_model)
                        else:
                            state["evals_since_best"] += 1
                            if state["evals_since_best"] >= config.patience:
                                state["stopped_early"] = True
                    state["curves"].append(record)
                    if is_main:
                        log.info("step %d %s", state["step"],
                                 " ".join(f"{k} {v:.4f}" for k, v in record.items() if isinstance(v, float)))
                        for key, value in record.items():
                            if key not in ("step", "epoch"):
                                writer.add_scalar(("val/" if key.startswith("val") else "train/") + key,
                                                  value, state["step"])

                stop = torch.tensor([float(interrupted["flag"])], device=device)
                if world_size > 1:  # every rank stops at the same step
                    dist.all_reduce(stop, op=dist.ReduceOp.MAX)
                if stop.item() > 0:
                    save_checkpoint()
                    if is_main:
                        log.warning("SIGTERM: checkpoint written at step %d; exiting with %d",
                                    state["step"], EXIT_INTERRUPTED)
                    raise TrainingInterrupted(f"{out_dir}: interrupted at step {state['step']}")
                if state["step"] % config.checkpoint_every == 0:
                    save_checkpoint()
                if state["step"] >= total_steps or state["stopped_early"]:
                    done = True
                    break
            else:
                state["epoch"] += 1
                state["batch_in_epoch"] = 0
        save_checkpoint()
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()

    best = state["best_model"] or cpu_state_dict(eval_model)
    head_refit = None
    if is_main and config.refit_head:
        eval_model.load_state_dict(best)
        head_refit = refit_head(eval_model, fit_data, val_data, device, config.precision)
        best = cpu_state_dict(eval_model)

    summary = {"steps": state["step"], "epochs": state["epoch"], "best_val_loss": state["best_val_loss"]
               if math.isfinite(state["best_val_loss"]) else None, "stopped_early": state["stopped_early"],
               "fit_stores": [str(p) for p in fit_stores], "val_stores": [str(p) for p in val_stores],
               "model_config": model_config.to_dict(), "training_config": asdict(config),
               "parameters": raw_model.num_parameters(), "world_size": world_size, "init": init,
               "head_refit": head_refit, "curves": state["curves"]}
    if is_main:
        atomic_torch_save({"model": best, "model_config": model_config.to_dict(),
                           "training_config": asdict(config), "step": state["step"],
                           "best_val_loss": summary["best_val_loss"],
                           # how long the training labels hold each button, for a policy's rollouts
                           "hold_limits": hold_limits(source.actions for source in fit_data.sources)},
                          out_dir / "model.pt")
        atomic_write_text(json.dumps(summary, indent=1), out_dir / "train_log.json")
        plot_curves(state["curves"], out_dir / "curves.png")
    if world_size > 1:
        dist.barrier()
    return summary


REFIT_L2 = 1e-4  # the refit's L2 penalty on the head's weights: bounds them for never-pressed buttons
REFIT_FRAMES = 1 << 18  # at most this many window-frames' features (0.5 GB at embedding_dim 512)


@torch.no_grad()
def _trunk_features(model: VPTModel, dataset: WindowDataset, device, precision: str, batch_size: int = 16):
    """`dataset`'s windows (evenly spaced ones, when more than REFIT_FRAMES frames) through the
    frozen trunk: features (N, T, E) float32, targets (N, T) pad bytes and weights (N, T), on `device`."""
    every = max(1, math.ceil(len(dataset) * model.config.sequence_length / REFIT_FRAMES))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, range(0, len(dataset), every)),
                                         batch_size=batch_size)
    features, targets, weights = [], [], []
    for frames, actions, frame_weights, previous in loader:
        frames, previous = frames.to(device), previous.to(device)
        with autocast(device, precision):
            features.append(model.transform(model.add_previous(model.encode(frames), previous)).float())
        targets.append(actions.to(device))
        weights.append(frame_weights.to(device))
    return torch.cat(features), torch.cat(targets), torch.cat(weights)


def refit_head(model: VPTModel, fit_data: WindowDataset, val_data: WindowDataset | None, device,
               precision: str = "auto", max_iter: int = 500) -> dict:
    """Refit the action head of a trained `model` on its frozen trunk's features, in place.

    Training stops (early stopping, the step budget) while the trunk still learns, and by then the
    small head has not settled for the rare buttons: SMB's left is 1.4% of the frames, and its
    logit moves little per minibatch. With the trunk frozen the head's loss is convex, so L-BFGS
    over the training windows at once (every window, at every position training saw) finds its
    optimum in seconds. The refit head is kept when it labels the validation windows at least as
    well (exact match) as the trained one; without validation data it is always kept. It labels
    better at the cost of calibration: validation loss rises a little (docs/experiments.md, "The
    IDM's head, refit on its frozen trunk", has both over 3 training seeds).

    Returns {"before": {"loss", "exact_match"}, "after": {...}, "kept"} (validation figures; None
    without validation data).
    """
    model.eval()
    features, targets, weights = _trunk_features(model, fit_data, device, precision)
    validation = _trunk_features(model, val_data, device, precision) if val_data is not None and len(val_data) else None
    before = {k: v.clone() for k, v in model.head.state_dict().items()}

    @torch.no_grad()
    def validate() -> dict:
        if validation is None:
            return {"loss": None, "exact_match": None}
        val_features, val_targets, val_weights = validation
        logits = model.head(val_features)
        predicted, _ = model.predict(logits)
        scored = val_weights > 0
        return {"loss": model.loss(logits, val_targets, val_weights).item(),
                "exact_match": (predicted.long() == val_targets.long())[scored].float().mean().item()}

    before_refit = validate()
    optimizer = torch.optim.LBFGS(model.head.parameters(), max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = (model.loss(model.head(features), targets, weights)
                + 0.5 * REFIT_L2 * model.head.weight.float().pow(2).sum())
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    after_refit = validate()
    kept = validation is None or after_refit["exact_match"] >= before_refit["exact_match"]
    if not kept:
        model.head.load_state_dict(before)
    if validation is None:
        log.info("head refit on %d windows; no validation data, kept", len(features))
    else:
        log.info("head refit on %d windows: validation exact match %.4f -> %.4f, loss %.4f -> %.4f; %s",
                 len(features), before_refit["exact_match"], after_refit["exact_match"], before_refit["loss"],
                 after_refit["loss"], "kept" if kept else "discarded")
    return {"before": before_refit, "after": after_refit, "kept": kept}


def plot_curves(curves: list[dict], path: Path) -> None:
    """Training and validation loss against the step."""
    lines = {"train loss": [c["train_loss"] for c in curves]}
    if curves and "val_loss" in curves[0]:
        lines["validation loss"] = [c["val_loss"] for c in curves]
    plot_panels(path, [c["step"] for c in curves], "step", {"loss": lines})


def plot_panels(path: Path, x: list, xlabel: str, panels: dict[str, dict[str, list]]) -> None:
    """One panel per entry of `panels` ({title: {line label: values}}), side by side, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (title, lines) in zip(axes[0], panels.items()):
        for label, values in lines.items():
            ax.plot(x, values, marker="." if len(x) < 30 else None, label=label)
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        if len(lines) > 1:
            ax.legend()
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=100)
    plt.close(fig)


def train_idm(index_path, model_config: ModelConfig, config: TrainingConfig, out_dir, progress: bool = True) -> dict:
    """Train the IDM on the index's `train` split, split into fit/val by recording."""
    index = read_index(index_path)
    entries = index_stores(index, "train")
    if not entries:
        raise SwagError(f"{index_path}: no stores in the 'train' split")
    fit, val = split_fit_val(entries, config.test_train_split)
    return train(model_config, config, out_dir, [e["path"] for e in fit], [e["path"] for e in val],
                 progress=progress)


def configs_from_yaml(path, stage: str = "idm") -> tuple[ModelConfig, TrainingConfig]:
    """Model and training configs of one stage (`idm` or `vpt`) from a pipeline config or a stage file."""
    from swag import config as swag_config

    section = swag_config.load_stage(path, stage)
    try:
        return (ModelConfig.from_dict(dict(section["model"])),
                TrainingConfig.from_dict(dict(section["training"])))
    except (ValueError, TypeError) as error:
        raise SwagError(f"{path}: {stage}: {error}") from None
