"""Pipeline configuration: YAML validated against workflow/schemas/config.schema.yaml.

The Snakefile and the CLI both validate through here, so a wrong key or type gets the
same one-line message everywhere: `FILE: KEY.PATH: problem`.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from swag.errors import SwagError

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


@cache
def _schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def _raise_first_error(validator: jsonschema.Validator, values: Any, source: str | Path, prefix: str = "") -> None:
    """SwagError `SOURCE: PREFIX.KEY.PATH: problem` for the shallowest schema violation, if any."""
    errors = sorted(validator.iter_errors(values), key=lambda e: (len(e.absolute_path), list(e.absolute_path)))
    if errors:
        error = errors[0]
        message = error.message.replace("Additional properties are not allowed", "unknown key")
        raise SwagError(f"{source}: {prefix}{_key_path(error)}: {message}")


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SwagError(f"{path}: config file not found") from None
    except yaml.YAMLError as error:
        raise SwagError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None


def validate(config: dict[str, Any], source: str | Path = "config") -> dict[str, Any]:
    """Raise SwagError naming the first bad key; returns the config unchanged when valid."""
    _raise_first_error(jsonschema.Draft202012Validator(_schema()), config, source)
    _check_consistency(config, source)
    return config


def _check_consistency(config: dict[str, Any], source: str | Path) -> None:
    from swag import games

    resolution = config["data"]["resolution"]
    for stage in ("idm", "vpt"):
        if stage in config and config[stage]["model"]["dimensions"] != resolution:
            raise SwagError(
                f"{source}: {stage}.model.dimensions {config[stage]['model']['dimensions']} "
                f"must equal data.resolution {resolution}"
            )
        if stage in config:
            model = config[stage]["model"]
            if model["embedding_dim"] % model["transformer_heads"]:
                raise SwagError(f"{source}: {stage}.model.embedding_dim must be divisible by transformer_heads")
            if model.get("previous_buttons") and not (stage == "vpt" or model.get("causal")):
                raise SwagError(f"{source}: {stage}.model.previous_buttons is for the causal policy, not the IDM")
    entries = [(f"recordings.{dataset}.{i}", entry) for dataset, sets in config["recordings"].items()
               for i, entry in enumerate(sets)]
    rollouts = config.get("evaluation", {}).get("rollouts", [])
    entries += [(f"sources.{i}", entry) for i, entry in enumerate(config.get("sources", []))
                if entry["kind"] == "video"]
    entries += [(f"evaluation.rollouts.{i}", entry) for i, entry in enumerate(rollouts)]
    targets = config.get("finetune", {}).get("targets", [])
    entries += [(f"finetune.targets.{i}", entry) for i, entry in enumerate(targets)]
    names = [target["name"] for target in targets]
    for i, target in enumerate(targets):
        if names.count(target["name"]) > 1:
            raise SwagError(f"{source}: finetune.targets.{i}.name: {target['name']!r} names two targets")
        steps = target.get("rl", {}).get("rollout_steps")
        length = config["vpt"]["model"]["sequence_length"]
        if steps is not None and steps % length:
            raise SwagError(f"{source}: finetune.targets.{i}.rl.rollout_steps: {steps} is not a multiple of "
                            f"vpt.model.sequence_length {length}")
    for i, entry in enumerate(config.get("sources", [])):
        if entry["dataset"] == "finetune" and entry["kind"] == "video":
            raise SwagError(f"{source}: sources.{i}: video has no actions; finetune sources must be labelled play")
    for key, entry in entries:
        where = f"{source}: {key}"
        if "game" not in entry:
            raise SwagError(f"{where}: a video source must name its game")
        try:
            spec = games.get(entry["game"])
        except games.GameError as error:
            raise SwagError(f"{where}.game: {error}") from None
        level = entry.get("level")
        if level and level not in spec.levels:
            raise SwagError(f"{where}.level: {entry['game']} has no level {level!r}")


def load(path: str | Path) -> dict[str, Any]:
    """Read and validate a config file."""
    path = Path(path)
    config = _read_yaml(path)
    if not isinstance(config, dict):
        raise SwagError(f"{path}: expected a mapping of config sections at the top level")
    return validate(config, path)


def episode_seed(dataset: str, game: str, episode: str) -> int:
    """A stable seed per recording id, so no two recordings anywhere share one."""
    digest = hashlib.sha1(f"{dataset}/{game}/{episode}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def recordings(config: dict[str, Any], dataset: str) -> list[dict[str, Any]]:
    """Every generated recording of a dataset: game, level, style, episode id, seed, max_frames."""
    found = []
    for entry in config["recordings"].get(dataset, []):
        level = entry.get("level")
        for style in entry["styles"]:
            for index in range(entry["episodes"]):
                episode = f"{level}_{style}_{index:03d}" if level else f"{style}_{index:03d}"
                if entry.get("web_video"):
                    episode = f"web_{episode}"
                found.append(
                    {
                        "dataset": dataset,
                        "game": entry["game"],
                        "level": level,
                        "style": style,
                        "episode": episode,
                        "seed": episode_seed(dataset, entry["game"], episode),
                        "max_frames": entry["max_frames"],
                        "web_video": bool(entry.get("web_video")),
                    }
                )
    return found


def load_stage(path: str | Path, stage: str) -> dict[str, Any]:
    """One stage's `{model, training}` section, from a whole pipeline config or from a stage file.

    Stage files (`results/config/{stage}.yaml`, written by the workflow) hold just that section,
    so a stage's jobs depend on their own settings and nothing else.
    """
    path = Path(path)
    values = _read_yaml(path)
    if isinstance(values, dict) and set(values) == {"model", "training"}:
        stage_schema = {**_schema()["$defs"]["stage"], "$defs": _schema()["$defs"]}
        _raise_first_error(jsonschema.Draft202012Validator(stage_schema), values, path, prefix=f"{stage}.")
        return values
    if not isinstance(values, dict):
        raise SwagError(f"{path}: expected a mapping of config sections at the top level")
    validate(values, path)
    if stage not in values:
        raise SwagError(f"{path}: no '{stage}' section")
    return values[stage]


def finetune_section(config: dict[str, Any], name: str, method: str | None = None) -> dict[str, Any]:
    """What a fine-tuning job reads (the file `results/config/finetune/{name}/{method}.yaml`): the
    target `name` of a validated pipeline config, its `bc.training` completed from `vpt.training`,
    and `vpt.model` (RL from scratch builds that model). With `method` "bc" or "rl", only that
    method's settings, so changing one method's settings never reruns the other's jobs."""
    targets = {target["name"]: target for target in config.get("finetune", {}).get("targets", [])}
    if name not in targets:
        raise SwagError(f"no fine-tuning target {name!r} (config has: {', '.join(targets) or 'none'})")
    if method not in (None, "bc", "rl"):
        raise SwagError(f"fine-tuning method must be bc or rl, got {method!r}")
    target = dict(targets[name])
    if "bc" in target:
        target["bc"] = {**target["bc"], "training": {**config["vpt"]["training"],
                                                     **target["bc"].get("training", {})}}
    if method is not None:
        other = "rl" if method == "bc" else "bc"
        target.pop(other, None)
    return {"target": target, "model": config["vpt"]["model"]}


def load_finetune(path: str | Path, name: str | None = None) -> dict[str, Any]:
    """A fine-tuning file (see `finetune_section`), or target `name` of a whole pipeline config."""
    path = Path(path)
    values = _read_yaml(path)
    if isinstance(values, dict) and set(values) == {"target", "model"}:
        schema = {"type": "object", "properties": {
            "target": {"$ref": "#/$defs/finetune_target"}, "model": {"$ref": "#/$defs/stage/properties/model"}},
            "$defs": _schema()["$defs"]}
        _raise_first_error(jsonschema.Draft202012Validator(schema), values, path)
        if "bc" in values["target"]:
            training = {"$ref": "#/$defs/stage/properties/training", "$defs": _schema()["$defs"]}
            _raise_first_error(jsonschema.Draft202012Validator(training), values["target"]["bc"]["training"], path,
                               prefix="target.bc.training.")
        return values
    if not isinstance(values, dict):
        raise SwagError(f"{path}: expected a mapping of config sections at the top level")
    validate(values, path)
    if name is None:
        raise SwagError(f"{path}: a pipeline config holds several targets; name one (--target)")
    try:
        return finetune_section(values, name)
    except SwagError as error:
        raise SwagError(f"{path}: {error}") from None
