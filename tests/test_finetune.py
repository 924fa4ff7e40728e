"""Fine-tuning targets: config, recording selection, BC from a checkpoint (frozen trunk or not), the CLI.
The result table's fine-tuned rows are tested in test_results.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from swag import config as swag_config
from swag.errors import SwagError
from swag.finetune import finetune_bc, finetune_configs, select_recordings
from swag.model import ModelConfig, VPTModel

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "config" / "tiny.yaml"
TINY_POLICY = dict(embedding_dim=16, ff_dim=32, transformer_heads=2, transformer_blocks=1,
                   dimensions={"x": 32, "y": 30}, feature_channels=[4, 8], spatial_channels=4, sequence_length=8,
                   causal=True)


def _tiny_config() -> dict:
    return yaml.safe_load(TINY.read_text())


def test_finetune_section_completes_bc_training_from_vpt_training():
    config = swag_config.validate(_tiny_config())
    target = config["finetune"]["targets"][0]
    section = swag_config.finetune_section(config, target["name"])
    assert section["model"] == config["vpt"]["model"]
    training = section["target"]["bc"]["training"]
    assert training == {**config["vpt"]["training"], **target["bc"].get("training", {})}
    with pytest.raises(SwagError, match="no fine-tuning target 'nope'"):
        swag_config.finetune_section(config, "nope")
    # one method's file carries only that method's settings, so the other's jobs never rerun for it
    assert "rl" not in swag_config.finetune_section(config, target["name"], "bc")["target"]
    rl = swag_config.finetune_section(config, target["name"], "rl")["target"]
    assert "bc" not in rl and rl["rl"] == target["rl"]


@pytest.mark.parametrize("mutate, expected", [
    (lambda t: t["rl"].update(rollout_steps=12), "finetune.targets.0.rl.rollout_steps: 12 is not a multiple"),
    (lambda t: t.update(level="9-9"), "finetune.targets.0.level: smb1 has no level '9-9'"),
    (lambda t: t["rl"].update(buttons=["turbo"]), "finetune.targets.0.rl.buttons.0"),
    (lambda t: t["bc"].update(training={"learning_rate": -1}), "finetune.targets.0.bc.training.learning_rate"),
    (lambda t: t.update(name="Bad Name"), "finetune.targets.0.name"),
])
def test_bad_finetune_targets_are_named(mutate, expected, tmp_path):
    config = _tiny_config()
    mutate(config["finetune"]["targets"][0])
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(SwagError) as error:
        swag_config.load(path)
    assert str(error.value).startswith(f"{path}: ") and expected in str(error.value)


def test_finetune_file_round_trips_and_a_pipeline_config_needs_a_target(tmp_path):
    config = swag_config.validate(_tiny_config())
    name = config["finetune"]["targets"][0]["name"]
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(swag_config.finetune_section(config, name)))
    target, model_config, training = finetune_configs(path)
    assert target["name"] == name and model_config.causal and training.max_steps == target["bc"]["training"]["max_steps"]
    assert finetune_configs(TINY, name)[0] == target
    with pytest.raises(SwagError, match="name one"):
        finetune_configs(TINY)


def test_select_recordings_by_level_style_and_id():
    entries = [{"episode": f"smb1/{level}_{style}_000", "game": "smb1", "level": level, "style": style}
               for level in ("1-1", "1-2") for style in ("cautious", "speedy")]
    entries.append({"episode": "tetris-a/speedy_000", "game": "tetris-a", "level": None, "style": "speedy"})
    assert [e["episode"] for e in select_recordings(entries, "smb1", "1-2")] == [
        "smb1/1-2_cautious_000", "smb1/1-2_speedy_000"]
    assert [e["episode"] for e in select_recordings(entries, "smb1", "1-2", styles=["speedy"])] == [
        "smb1/1-2_speedy_000"]
    assert [e["episode"] for e in select_recordings(entries, "smb1", None, recordings=["smb1/1-1_speedy_000"])] == [
        "smb1/1-1_speedy_000"]
    assert len(select_recordings(entries, "tetris-a")) == 1
    with pytest.raises(SwagError, match="'smb1/9-9_x' is not in the index"):
        select_recordings(entries, "smb1", recordings=["smb1/9-9_x"])


@pytest.fixture(scope="module")
def finetune_data(tmp_path_factory):
    """Labelled SMB 1-2 play (3 short recordings), its index, and a 'VPT' checkpoint to start from."""
    from swag.convert import convert_recording
    from swag.index import build_index, write_index
    from swag.recording import record_episode

    root = tmp_path_factory.mktemp("finetune")
    stores = []
    for i, style in enumerate(["cautious", "speedy", "speedy"]):
        prefix = root / "raw" / f"1-2_{style}_{i:03d}"
        record_episode("smb1", "1-2", style, i, 150, prefix, progress_bar=False)
        store = root / "zarr" / "smb1" / f"{prefix.name}.zarr"
        convert_recording(prefix, store, height=30, width=32, fps=20, chunk_frames=16, progress_bar=False)
        stores.append(store)
    index = build_index("finetune", stores, test_fraction=0.0)
    write_index(index, root / "index.json")
    torch.manual_seed(0)
    model = VPTModel(ModelConfig(**TINY_POLICY))
    torch.save({"model": model.state_dict(), "model_config": model.config.to_dict()}, root / "vpt.pt")
    return root


def _target(**bc) -> dict:
    return {"name": "smb1-1-2", "game": "smb1", "level": "1-2", "bc": bc}


def _training():
    from swag.train import TrainingConfig

    return TrainingConfig(batch_size=2, learning_rate=3e-3, stride=4, epochs=20, max_steps=6, eval_every=3,
                          patience=10, test_train_split=0.34, min_class_weight=0.2)


@pytest.mark.slow
@pytest.mark.parametrize("freeze", [False, True])
def test_bc_starts_from_the_checkpoint_and_freezes_the_trunk_on_request(finetune_data, tmp_path, freeze):
    start = torch.load(finetune_data / "vpt.pt", weights_only=False)["model"]
    summary = finetune_bc(finetune_data / "vpt.pt", finetune_data / "index.json", _target(freeze_trunk=freeze),
                          _training(), tmp_path, progress=False)
    assert summary["steps"] == 6 and summary["init"]["freeze_trunk"] is freeze
    assert len(summary["recordings"]) == 3
    after = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]
    changed = {name for name in start if name not in ("button_weights", "class_weights")
               and not torch.equal(start[name], after[name])}
    assert {"head.weight", "head.bias"} <= changed
    if freeze:
        assert changed == {"head.weight", "head.bias"}
    else:
        assert "embed.weight" in changed and "temporal.conv.weight" in changed


@pytest.mark.slow
def test_bc_with_no_matching_recordings_or_an_idm_checkpoint_is_refused(finetune_data, tmp_path):
    with pytest.raises(SwagError, match="no training recordings of fine-tuning target smb1-1-2"):
        finetune_bc(finetune_data / "vpt.pt", finetune_data / "index.json", _target(styles=["jumpy"]), _training(),
                    tmp_path, progress=False)
    idm = VPTModel(ModelConfig(**{**TINY_POLICY, "causal": False}))
    torch.save({"model": idm.state_dict(), "model_config": idm.config.to_dict()}, tmp_path / "idm.pt")
    with pytest.raises(SwagError, match="not causal"):
        finetune_bc(tmp_path / "idm.pt", finetune_data / "index.json", _target(), _training(), tmp_path / "out",
                    progress=False)


def test_cli_errors_are_one_line(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "swag", "finetune", "--mode", "dance", "--config", str(TINY),
                             "--target", "smb1-1-2", "--out", str(tmp_path)], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == "swag: error: finetune: --mode must be bc or rl, got 'dance'"
    result = subprocess.run([sys.executable, "-m", "swag", "finetune", "--mode", "rl", "--config", str(TINY),
                             "--target", "smb1-1-2", "--out", str(tmp_path)], capture_output=True, text=True, env=env)
    assert result.returncode == 1 and "needs --checkpoint, or --from-scratch" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
