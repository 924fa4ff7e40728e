"""Config validation: both shipped configs are valid; bad keys and types are named."""

from pathlib import Path

import pytest
import yaml

from swag import config
from swag.errors import SwagError

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["demo", "full"])
def test_shipped_configs_validate(name):
    path = ROOT / "config" / f"{name}.yaml"
    if not path.exists():
        pytest.skip(f"{path} not written yet")
    loaded = config.load(path)
    assert config.recordings(loaded, "idm"), "a config must ask for labelled recordings"


def with_overlays(*overlays):
    """The demo config with config/OVERLAY files merged in, in order, as `--configfile` does."""
    from snakemake.utils import update_config

    merged = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    for overlay in overlays:
        update_config(merged, yaml.safe_load((ROOT / "config" / overlay).read_text()))
    return config.validate(merged, " + ".join(f"config/{overlay}" for overlay in overlays))


def test_demo_overlay_validates_and_adds_to_the_demo():
    """config/demo-3x-play.yaml, merged into the demo as `--configfile` does, keeps the demo's
    recordings (so a demo run's stores are reused), triples the unlabelled play and trains the
    policies longer (2,400 steps, 3x the demo's)."""
    demo = config.load(ROOT / "config" / "demo.yaml")
    merged = with_overlays("demo-3x-play.yaml")

    def episodes(cfg, web):
        return {r["seed"] for r in config.recordings(cfg, "vpt") if r["web_video"] == web}

    assert episodes(demo, False) < episodes(merged, False)
    assert len(episodes(merged, False)) == 3 * len(episodes(demo, False))
    assert episodes(merged, True) == episodes(demo, True)
    assert merged["vpt"]["training"]["max_steps"] == 2400 == 3 * demo["vpt"]["training"]["max_steps"]
    assert merged["idm"] == demo["idm"] and merged["evaluation"] == demo["evaluation"]


def test_labels_overlay_quadruples_the_labelled_play_and_composes_with_the_play_overlay():
    """config/demo-4x-labels.yaml keeps the demo's labelled recordings (and so its test split),
    adds 3 recordings for each of them in the training styles, and trains the IDM 3,000 steps; with
    demo-3x-play.yaml after it, each overlay changes only its own dataset."""
    def smb1_episodes(cfg, styles):
        return {r["seed"] for r in config.recordings(cfg, "idm") if r["game"] == "smb1" and r["style"] in styles}

    demo = config.load(ROOT / "config" / "demo.yaml")
    both = with_overlays("demo-4x-labels.yaml", "demo-3x-play.yaml")
    training_styles = {"cautious", "speedy"}
    assert smb1_episodes(demo, training_styles) < smb1_episodes(both, training_styles)
    assert len(smb1_episodes(both, training_styles)) == 4 * len(smb1_episodes(demo, training_styles))
    assert smb1_episodes(both, {"jumpy"}) == smb1_episodes(demo, {"jumpy"})
    assert both["idm"]["training"]["max_steps"] == 3000 > demo["idm"]["training"]["max_steps"]
    assert both["idm"]["model"] == demo["idm"]["model"]
    play = with_overlays("demo-3x-play.yaml")
    assert config.recordings(both, "vpt") == config.recordings(play, "vpt") != config.recordings(demo, "vpt")
    assert both["vpt"] == play["vpt"]


def test_wide_idm_overlay_changes_only_the_idms_widths():
    """config/demo-wide-idm.yaml widens the IDM and leaves its data, training and the policy alone,
    so a demo run's recordings and splits are reused."""
    demo = config.load(ROOT / "config" / "demo.yaml")
    wide = with_overlays("demo-wide-idm.yaml")
    changed = {key for key in demo["idm"]["model"] if wide["idm"]["model"][key] != demo["idm"]["model"][key]}
    assert changed == {"embedding_dim", "ff_dim", "spatial_channels", "feature_channels"}
    assert wide["idm"]["model"]["embedding_dim"] > demo["idm"]["model"]["embedding_dim"]
    assert {key: value for key, value in wide.items() if key != "idm"} == \
        {key: value for key, value in demo.items() if key != "idm"}
    assert wide["idm"]["training"] == demo["idm"]["training"]


def _demo():
    return yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c["idm"]["training"].update(batch_size="eight"), "idm.training.batch_size: 'eight' is not of type 'integer'"),
        (lambda c: c["data"].update(fsp=20), "data: unknown key ('fsp' was unexpected)"),
        (lambda c: c["idm"]["model"].pop("ff_dim"), "idm.model: 'ff_dim' is a required property"),
        (lambda c: c["recordings"]["idm"][0].update(game="pacman"), "recordings.idm.0.game: unknown game 'pacman'"),
        (lambda c: c["recordings"]["idm"][0].update(level="9-1"), "recordings.idm.0.level: smb1 has no level '9-1'"),
        (lambda c: c["idm"]["model"].update(dimensions={"x": 32, "y": 30}), "idm.model.dimensions"),
        (lambda c: c["idm"]["model"].update(previous_buttons=["A"]), "idm.model.previous_buttons is for the causal policy"),
        (lambda c: c["vpt"]["model"].update(previous_buttons=["turbo"]), "vpt.model.previous_buttons.0: 'turbo' is not one of"),
    ],
)
def test_bad_config_names_the_key(mutate, expected, tmp_path):
    bad = _demo()
    mutate(bad)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(SwagError) as error:
        config.load(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_unreadable_config(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("data: [unclosed\n")
    with pytest.raises(SwagError, match="not valid YAML"):
        config.load(path)
    with pytest.raises(SwagError, match="not found"):
        config.load(tmp_path / "missing.yaml")


def test_episode_seeds_are_stable_and_distinct():
    loaded = config.load(ROOT / "config" / "demo.yaml")
    recs = config.recordings(loaded, "idm") + config.recordings(loaded, "vpt") + config.recordings(loaded, "finetune")
    seeds = [r["seed"] for r in recs]
    assert len(set(seeds)) == len(seeds)
    assert config.episode_seed("idm", "smb1", "1-1_cautious_000") == config.episode_seed("idm", "smb1", "1-1_cautious_000")
