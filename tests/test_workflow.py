"""The Snakemake workflow: lint-clean, a dry run lists the DAG, a bad config fails in one line."""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def _snakemake(*args, cwd=ROOT):
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_lint_is_clean():
    result = _snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def test_dry_run_lists_every_stage():
    result = _snakemake("-n", "--quiet", "rules")
    assert result.returncode == 0, result.stderr
    for rule in ("record_demonstration", "convert_recording", "convert_unlabelled_recording", "index_dataset"):
        assert rule in result.stdout + result.stderr


def test_invalid_config_fails_with_one_line(tmp_path):
    bad = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    bad["idm"]["training"]["learning_rate"] = "fast"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = _snakemake("-n", "--configfile", str(path))
    assert result.returncode != 0
    assert f"{path}: idm.training.learning_rate: 'fast' is not of type 'number'" in result.stdout + result.stderr
