"""The whole DAG on the tiny config, locally: it completes, a second run has nothing to do,
adding one recording reruns only that recording's jobs (and what depends on the data), and the
report builds with every section."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "config" / "tiny.yaml"

pytestmark = pytest.mark.slow


def snakemake(workdir: Path, configfile: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(configfile), "--profile", str(ROOT / "profiles" / "local"), "--cores", "2", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=1500)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, list[str]]:
    """rule -> the wildcards of each job a dry run plans."""
    jobs: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=rule |localrule )", result.stdout):
        match = re.match(r"(?:local)?rule (\w+):", block)
        if match:
            wildcards = re.search(r"wildcards: (.*)", block)
            jobs.setdefault(match.group(1), []).append(wildcards.group(1) if wildcards else "")
    return jobs


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pipeline")
    result = snakemake(workdir, TINY, "all")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return workdir


def test_whole_dag_produces_every_stage(tiny_run):
    results = tiny_run / "results"
    for path in ["index/idm.json", "index/vpt.json", "stats/idm/stats.json", "idm/model.pt",
                 "idm/eval/idm_eval.json", "idm/label_quality/idm_eval.json", "policies/vpt/model.pt",
                 "policies/oracle-bc/model.pt", "eval/table.md", "eval/table.json", "index/finetune.json",
                 "finetune/smb1-1-2/bc/model.pt", "finetune/smb1-1-2/rl/curves.png",
                 "finetune/smb1-1-2/rl-scratch/train_log.json"]:
        assert (results / path).exists(), path
    # the unlabelled set's stores carry no actions; its truth lives apart
    for store in (results / "zarr" / "vpt").glob("*/*.zarr"):
        assert not (store / "actions").exists()
        assert (results / "truth" / "vpt" / store.parent.name / store.name / "actions").exists()
    table = (results / "eval" / "table.md").read_text()
    for policy in ("random", "vpt", "oracle-bc", "demonstrator", "vpt-bc-ft-smb1-1-2", "vpt-rl-ft-smb1-1-2",
                   "rl-scratch-smb1-1-2"):
        assert f"| {policy} |" in table
    # every policy also plays the fine-tuning target's level
    assert "smb1:1-2 progress mean" in table


def test_second_run_has_nothing_to_do(tiny_run):
    result = snakemake(tiny_run, TINY, "-n", "all")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_adding_a_recording_reruns_only_its_jobs(tiny_run, tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["recordings"]["vpt"][0]["episodes"] += 1
    grown = tmp_path / "grown.yaml"
    grown.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(tiny_run, grown, "-n", "all"))
    new = "dataset=vpt, game=smb1, episode=1-1_speedy_003"
    assert jobs["record_demonstration"] == [new]
    assert jobs["convert_unlabelled_recording"] == [new]
    assert jobs["label"] == [new]
    # the labelled set, its index and the IDM are untouched
    assert "train_idm" not in jobs and "convert_recording" not in jobs
    assert jobs["index_dataset"] == ["dataset=vpt"]
    # fine-tuning from the retrained VPT policy reruns; RL from scratch does not depend on it
    assert jobs["finetune_bc"] == ["target=smb1-1-2"]
    assert [w for w in jobs["finetune_rl"]] == ["target=smb1-1-2, method=rl"]


def test_changing_bc_settings_reruns_only_bc_fine_tuning(tiny_run, tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["finetune"]["targets"][0]["bc"]["training"]["learning_rate"] = 0.0001
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(tiny_run, changed, "-n", "all"))
    assert jobs.pop("finetune_config") == ["target=smb1-1-2, method=bc"]
    assert jobs.pop("finetune_bc") == ["target=smb1-1-2"]
    assert jobs.pop("evaluate_vpt") == ["policy=vpt-bc-ft-smb1-1-2"]
    assert set(jobs) == {"results_table", "all"}


def test_report_builds_with_every_section(tiny_run):
    report = tiny_run / "report.html"
    result = snakemake(tiny_run, TINY, "--report", str(report))
    assert result.returncode == 0, result.stderr[-3000:]
    html = report.read_text(errors="replace")
    for entry in ["0. Configuration", "1. Data", "2. Inverse dynamics model", "3. VPT policy", "4. Evaluation",
                  "5. Fine-tuning",
                  "frames.png", "buttons.png", "confusion_test.png", "curves.png", "table.md", ".mp4"]:
        assert entry in html, entry
