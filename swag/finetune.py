"""Fine-tuning the VPT policy on a target (a game, a level): behaviour cloning or RL.

A target is one entry of the config's `finetune.targets` (workflow/schemas/config.schema.yaml);
the workflow writes each as `results/config/finetune/{name}/{bc,rl}.yaml` (see `swag.config.load_finetune`).

BC (`finetune_bc`): continues training a VPT checkpoint on the labelled recordings of an index
that match the target: its game and level, and optionally some demonstrator styles or a list of
recording ids (VPT's narrow "contractor" datasets). The loop is swag.train's (class weights,
early stopping on validation loss, checkpoint/resume, torchrun/DDP), started from the
checkpoint's weights, with the target's training settings (a lower learning rate, say) and,
optionally, the trunk frozen so only the action head learns.

RL (`swag.ppo.finetune_rl`): PPO in the emulator from the checkpoint, with a KL leash to it;
RL from scratch at the same number of environment steps is the comparison.
"""

from __future__ import annotations

import logging

from swag.errors import SwagError
from swag.model import ModelConfig
from swag.train import TrainingConfig

log = logging.getLogger(__name__)


def select_recordings(entries: list[dict], game: str, level: str | None = None, styles=None,
                      recordings=None) -> list[dict]:
    """The index entries of one target: its game and level, then (optionally) styles and episode ids."""
    chosen = [e for e in entries if e["game"] == game and (level is None or e.get("level") == level)]
    if styles:
        chosen = [e for e in chosen if e.get("style") in set(styles)]
    if recordings:
        known = {e["episode"] for e in entries}
        missing = sorted(set(recordings) - known)
        if missing:
            raise SwagError(f"recording {missing[0]!r} is not in the index (ids look like {entries[0]['episode']!r})"
                            if entries else f"recording {missing[0]!r}: the index is empty")
        chosen = [e for e in chosen if e["episode"] in set(recordings)]
    return chosen


def finetune_bc(checkpoint, index_path, target: dict, training: TrainingConfig, out_dir,
                progress: bool = True) -> dict:
    """Behaviour cloning from `checkpoint` on the target's recordings in the index's `train` split,
    split into fit/validation by recording. Writes what swag.train writes to `out_dir`."""
    from swag.data import index_stores, read_index, split_fit_val
    from swag.train import load_checkpoint, train

    settings = target.get("bc", {})
    model_config = ModelConfig.from_dict(load_checkpoint(checkpoint)["model_config"])
    if not model_config.causal:
        raise SwagError(f"{checkpoint}: the model is not causal (an IDM?); fine-tune a policy")
    entries = select_recordings(index_stores(read_index(index_path), "train"), target["game"], target.get("level"),
                                settings.get("styles"), settings.get("recordings"))
    where = f"{target['game']}" + (f" {target['level']}" if target.get("level") else "")
    if not entries:
        raise SwagError(f"{index_path}: no training recordings of fine-tuning target {target['name']} ({where})")
    missing = [e["path"] for e in entries if not e.get("has_actions")]
    if missing:
        raise SwagError(f"{missing[0]}: has no actions; BC fine-tuning needs labelled recordings")
    fit, val = split_fit_val(entries, training.test_train_split)
    log.info("BC fine-tuning %s on %d recordings of %s (%d for validation)%s", checkpoint, len(fit), where,
             len(val), ", trunk frozen" if settings.get("freeze_trunk") else "")
    summary = train(model_config, training, out_dir, [e["path"] for e in fit], [e["path"] for e in val],
                    progress=progress, init_checkpoint=checkpoint, freeze_trunk=bool(settings.get("freeze_trunk")))
    return {**summary, "target": target["name"], "recordings": [e["episode"] for e in entries]}


def finetune_configs(path, name: str | None = None) -> tuple[dict, ModelConfig, TrainingConfig | None]:
    """(target, the VPT model config, the BC training config or None) of a fine-tuning file, or of
    target `name` of a pipeline config."""
    from swag import config as swag_config

    values = swag_config.load_finetune(path, name)
    target = values["target"]
    try:
        model_config = ModelConfig.from_dict({**values["model"], "causal": True})
        training = TrainingConfig.from_dict(target["bc"]["training"]) if "bc" in target else None
    except (ValueError, TypeError) as error:
        raise SwagError(f"{path}: {error}") from None
    return target, model_config, training
