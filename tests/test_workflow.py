"""The Snakemake workflow: lint-clean, a dry run lists the DAG, a bad config fails in one line."""

import os
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


def test_bc_fine_tuning_without_its_data_fails_with_one_line(tmp_path):
    bad = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    # (a --configfile updates the Snakefile's default config, so the set is replaced, not deleted)
    bad["recordings"]["finetune"] = [{"game": "smb1", "level": "1-3", "styles": ["speedy"], "episodes": 1,
                                      "max_frames": 600}]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = _snakemake("-n", "--configfile", str(path))
    assert result.returncode != 0
    assert (f"{path}: finetune.targets.0: bc needs labelled smb1 1-2 play in recordings.finetune "
            "(or a finetune source)") in result.stdout + result.stderr


def _sources_config(tmp_path, sources):
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    config["sources"] = sources
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_sources_make_one_job_per_file(tmp_path):
    from swag import games
    from swag.ingest.fm2 import fceux_rom_checksum

    checksum = fceux_rom_checksum(games.GAMES["smb1"].rom_path.read_bytes())
    movies = tmp_path / "movies"
    movies.mkdir()
    for name in ("run", "jump"):
        (movies / f"{name}.fm2").write_text(
            f"version 3\nromFilename smb\nguid 00000000-0000-0000-0000-000000000000\nromChecksum {checksum}\n"
            "port0 1\nport1 0\nport2 0\n" + "|0|R.......|||\n" * 10
        )
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "stream.mkv").write_bytes(b"")  # discovery goes by name; ingestion would read it
    episodes = tmp_path / "smbdataset" / "alice_1_e1_1-1_win"
    episodes.mkdir(parents=True)
    (episodes / "alice_1_e1_1-1_f1_a0_2020-01-01_00-00-00.win.png").write_bytes(b"")
    config = _sources_config(tmp_path, [
        {"kind": "fm2", "path": str(movies), "dataset": "idm"},
        {"kind": "video", "path": str(videos), "dataset": "vpt", "game": "smb1", "level": "1-1"},
        {"kind": "smbdataset", "path": str(tmp_path / "smbdataset"), "dataset": "idm"},
    ])
    result = _snakemake("-n", "--configfile", str(config))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert out.count("rule import_fm2:") == 2
    assert "results/imported/fm2/idm/smb1/fm2_jump.json" in out
    assert out.count("rule ingest_video:") == 1
    assert "results/zarr/vpt/smb1/video_stream.zarr" in out
    assert out.count("rule import_smbdataset:") == 1
    # user video has no true actions, so there is no oracle-BC to train on it
    assert "results/policies/oracle-bc/model.pt" not in out


def test_empty_source_folder_is_one_line_error(tmp_path):
    empty = tmp_path / "nothing"
    empty.mkdir()
    config = _sources_config(tmp_path, [{"kind": "fm2", "path": str(empty), "dataset": "idm"}])
    result = _snakemake("-n", "--configfile", str(config))
    assert result.returncode != 0
    assert f"{empty}: sources.0 (fm2) folder holds no input files" in result.stdout + result.stderr


def _dry_run_jobs(*args) -> list[dict]:
    """Each job of a dry run as {"rule", "threads", "priority", "wildcards"} from snakemake's listing."""
    result = _snakemake("-n", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = []
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith(("rule ", "localrule ")):
            jobs.append({"rule": line.split()[1].rstrip(":"), "threads": 1, "priority": 0, "wildcards": {}})
        elif jobs and line.startswith("    ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            if key in ("threads", "priority"):
                jobs[-1][key] = int(value)
            elif key == "wildcards":
                jobs[-1][key] = dict(pair.split("=", 1) for pair in value.split(", "))
    return jobs


def test_local_profile_runs_the_longest_chain_first_on_at_most_half_the_cores():
    jobs = _dry_run_jobs("--profile", "profiles/local", "all", "--cores", "64")
    half = max(1, len(os.sched_getaffinity(0)) // 2)
    assert max(job["threads"] for job in jobs) <= half
    assert [job["threads"] for job in jobs if job["rule"] == "train_idm"] == [min(8, half)]

    def priority(rule, **wildcards):
        found = {job["priority"] for job in jobs
                 if job["rule"] == rule and wildcards.items() <= job["wildcards"].items()}
        assert len(found) == 1, (rule, wildcards, found)
        return found.pop()

    chain = [priority("record_demonstration", dataset="idm"), priority("convert_recording", dataset="idm"),
             priority("index_dataset", dataset="idm"), priority("stage_config", stage="idm"),
             priority("train_idm"), priority("label"), priority("train_vpt", policy="vpt"),
             priority("finetune_bc"), priority("finetune_rl", method="rl")]
    off_chain = [priority("record_demonstration", dataset="vpt"), priority("train_vpt", policy="oracle-bc"),
                 priority("finetune_rl", method="rl-scratch"), priority("evaluate_vpt", policy="random")]
    assert min(chain) > max(off_chain)
