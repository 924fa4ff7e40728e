"""The real DAG on a live one-node SLURM cluster, through profiles/slurm.

Needs root: the module starts the test cluster with tests/slurm_cluster.sh (installing
Debian's SLURM packages if missing) and stops it afterwards if it was not already running.
CI runs it as root; elsewhere it skips, saying why.

One tiny config runs once on SLURM (with one training job preempted by SIGTERM if the DAG
has a training rule), once locally, then twice more on SLURM (nothing to do; one recording
touched), and the tests below check what sacct and the outputs say about those runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPT = ROOT / "tests" / "slurm_cluster.sh"
ACCOUNT = "swag"  # created by slurm_cluster.sh
PARTITION = "debug"
# Must agree with the GPU rules in profiles/slurm/profile.yaml.
GPU_RULES = {"train_idm", "evaluate_idm", "evaluate_labels", "evaluate_web_labels", "label", "train_vpt", "evaluate_vpt",
             "finetune_bc", "finetune_rl"}
TRAINING_RULES = ["train_idm", "train_vpt", "finetune_bc"]  # the first one in the DAG gets preempted
SACCT_FIELDS = ["JobID", "State", "ExitCode", "Submit", "WorkDir", "AllocTRES", "ReqTRES", "Comment"]
TOUCHED = ("idm", "smb1", "1-1_cautious_001")  # a training recording (tiny.yaml's train split) to touch


def tiny_config() -> dict:
    """The test DAG's tiny config, with one unlabelled recording and an IDM training long enough
    to be preempted while it runs: 250 tiny steps. On an idle fast 2-core machine a step takes
    about 0.02 s, and 25 steps ended before the SIGTERM arrived (0.5 s polling plus squeue), so
    the signal killed the job while it wrote its outputs instead of interrupting the loop."""
    path = ROOT / "tests" / "config" / "tiny.yaml"
    config = yaml.safe_load((path if path.exists() else ROOT / "config" / "demo.yaml").read_text())
    for entry in config["recordings"].get("vpt", []):
        entry["episodes"] = 1
    if "idm" in config and "training" in config["idm"]:
        config["idm"]["training"].update(epochs=1000, max_steps=250, patience=100_000, checkpoint_every=5)
    return config


def until_rules() -> list[str]:
    """Run the DAG up to the IDM stage (labels and IDM evaluation): every kind of job, GPU and
    CPU, in a few minutes. Without those rules yet, the whole DAG."""
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
                             "--list-rules"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rules = set(result.stdout.split())
    wanted = [rule for rule in ("evaluate_idm", "label") if rule in rules]
    return ["--until", *wanted] if wanted else []


# ---------------------------------------------------------------------------------------------
# helpers


def snakemake_command(workdir: Path, profile: str, *args: str) -> list[str]:
    until = json.loads((workdir / "until.json").read_text())
    # --max-threads: rules asking for more cores than the test node has would never be scheduled
    # (snakemake then wants --cores as well).
    cores = str(os.cpu_count() or 1)
    return [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
            "--directory", str(workdir), "--configfile", str(workdir / "tiny.yaml"),
            "--profile", str(ROOT / "profiles" / profile), "--cores", cores, "--max-threads", cores,
            *until, *args]


def job_environment() -> dict:
    """What the profile reads, sized for a 2-core test node; jobs inherit it (--export=ALL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWAG_SLURM_", "SLURM_"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env.update({"SWAG_SLURM_PARTITION": PARTITION, "SWAG_SLURM_ACCOUNT": ACCOUNT,
                "SWAG_SLURM_MEM_MB": "1500", "SWAG_SLURM_GPU_MEM_MB": "3000",
                "SWAG_SLURM_CPUS_PER_GPU": "1", "SWAG_SLURM_RUNTIME": "30", "SWAG_SLURM_GPU_RUNTIME": "30",
                "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    return env


# The profile waits 10 s before its first status query; 3 s is enough on a local cluster.
FAST_STATUS = ("--slurm-init-seconds-before-status-checks", "3")


def run_snakemake(workdir: Path, profile: str, *args: str, timeout: int = 420) -> subprocess.CompletedProcess:
    return subprocess.run(snakemake_command(workdir, profile, *args), env=job_environment(),
                          capture_output=True, text=True, timeout=timeout)


def planned_jobs(workdir: Path, *args: str) -> list[tuple[str, str]]:
    """A dry run's jobs as (rule, wildcards as the plugin's job comment joins them) pairs."""
    result = run_snakemake(workdir, "slurm", "--dry-run", *args, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = []
    for block in re.split(r"\n(?=rule \w+:)", result.stdout + result.stderr):
        match = re.match(r"rule (\w+):", block)
        if not match:
            continue
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.MULTILINE)
        values = "_".join(v.split("=", 1)[1] for v in wildcards.group(1).split(", ")) if wildcards else ""
        jobs.append((match.group(1), values.replace("/", "_")))
    return jobs


# When each workdir's first run began: sacct then ignores older jobs from a reused path.
FIRST_SUBMIT: dict[Path, str] = {}


def sacct_jobs(workdir: Path) -> list[dict]:
    """Every SLURM job submitted from workdir since its first run, in submission order."""
    since = FIRST_SUBMIT.get(workdir, "now-6hours")
    result = subprocess.run(["sacct", "-a", "-X", "-n", "-S", since, "--delimiter", "\x1f", "-P",
                             "-o", ",".join(f"{f}%300" for f in SACCT_FIELDS)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    jobs = []
    for line in result.stdout.splitlines():
        row = dict(zip(SACCT_FIELDS, line.split("\x1f")))
        # sacct -S also lists jobs submitted earlier that were still running at `since`.
        if Path(row["WorkDir"]) != workdir or (workdir in FIRST_SUBMIT and row["Submit"] < since):
            continue
        comment = row["Comment"].removeprefix("rule_")
        rule, _, wildcards = comment.partition("_wildcards_")
        jobs.append({**row, "id": int(row["JobID"]), "rule": rule, "wildcards": wildcards})
    return sorted(jobs, key=lambda job: job["id"])


def running_jobs(workdir: Path, rule: str | None) -> list[int]:
    """IDs of the running SLURM jobs of one rule (None: pending or running, any rule) submitted
    from workdir (sacct has no comment for a job until it ends; squeue has)."""
    states = ["-t", "RUNNING"] if rule else []
    result = subprocess.run(["squeue", "-h", *states, "-o", "%i\x1f%k\x1f%Z"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    found = []
    for line in result.stdout.splitlines():
        job_id, comment, job_workdir = line.split("\x1f")
        job_rule = comment.removeprefix("rule_").partition("_wildcards_")[0]
        if Path(job_workdir) == workdir and (rule is None or job_rule == rule):
            found.append(int(job_id))
    return found


def as_pairs(jobs: list[dict]) -> list[tuple[str, str]]:
    return sorted((job["rule"], job["wildcards"]) for job in jobs)


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def cluster():
    """A running test cluster; stopped at the end if this module started it."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("SLURM TESTS NOT RUN: they need root to start the test cluster "
                    "(CI runs them as root: tests/slurm_cluster.sh start)")
    was_running = subprocess.run([str(CLUSTER_SCRIPT), "status"], capture_output=True).returncode == 0
    started = subprocess.run([str(CLUSTER_SCRIPT), "start"], capture_output=True, text=True, timeout=600)
    if started.returncode == 3:
        pytest.skip(f"SLURM TESTS NOT RUN: SLURM packages unavailable: {started.stderr.strip()[-500:]}")
    assert started.returncode == 0, f"tests/slurm_cluster.sh start failed:\n{started.stderr}"
    yield
    if not was_running:
        subprocess.run([str(CLUSTER_SCRIPT), "stop"], capture_output=True, timeout=120)


def log_shows_training_progress(workdir: Path, rule: str) -> bool:
    """The rule's log shows a finished optimiser step (a tqdm count or a logged step)."""
    for path in (workdir / "logs" / rule).rglob("*"):
        if path.is_file() and re.search(r"\b[1-9]\d*/\d+ \[|\bstep [1-9]\d*\b", path.read_text(errors="replace")):
            return True
    return False


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The tiny DAG on SLURM; the first training job in it is sent SIGTERM mid-run."""
    workdir = tmp_path_factory.mktemp("slurm_run").resolve()
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(tiny_config()))
    (workdir / "until.json").write_text(json.dumps(until_rules()))
    plan = planned_jobs(workdir)
    planned_rules = {rule for rule, _ in plan}
    preempted_rule = next((rule for rule in TRAINING_RULES if rule in planned_rules), None)

    FIRST_SUBMIT[workdir] = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    started = time.monotonic()
    process = subprocess.Popen(snakemake_command(workdir, "slurm", *FAST_STATUS), env=job_environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output_lines: list[str] = []
    reader = threading.Thread(target=lambda: output_lines.extend(process.stdout), daemon=True)
    reader.start()
    preempted_job = None
    try:
        while process.poll() is None:
            if time.monotonic() - started > 900:  # ~17 jobs at ~5-20 s each, two at a time
                process.kill()
                for job_id in running_jobs(workdir, None):
                    subprocess.run(["scancel", str(job_id)], timeout=60)
                pytest.fail("snakemake on SLURM took over 15 minutes:\n" + "".join(output_lines[-80:]))
            if preempted_rule and preempted_job is None and log_shows_training_progress(workdir, preempted_rule):
                running = running_jobs(workdir, preempted_rule)
                if running:
                    preempted_job = running[0]
                    # What SLURM does at preemption or --signal=TERM@120 before the time limit.
                    subprocess.run(["scancel", "--signal=TERM", str(preempted_job)], check=True)
            time.sleep(0.5)
    finally:
        if process.poll() is None:
            process.kill()
        reader.join(timeout=10)
    output = "".join(output_lines)
    assert process.returncode == 0, output[-8000:]
    # A dry run does not say which rules are local; the real run does ("localrule X:"). A failed
    # SLURM job's log, which the run prints, says "localrule" too (the job ran it locally): rules
    # with a SLURM job are not local.
    jobs = sacct_jobs(workdir)
    local_rules = set(re.findall(r"^localrule (\w+):", output, re.MULTILINE)) - {job["rule"] for job in jobs}
    plan = [job for job in plan if job[0] not in local_rules]
    if preempted_rule:
        assert preempted_job is not None, f"{preempted_rule} finished before it could be preempted"
    # Later runs overwrite the rule logs: keep the retried training job's log now.
    training_log = "\n".join(p.read_text(errors="replace") for p in sorted((workdir / "logs").rglob("*.log"))
                             if preempted_rule and p.relative_to(workdir / "logs").parts[0] == preempted_rule)
    return {"workdir": workdir, "plan": plan, "local_rules": local_rules, "output": output,
            "training_log": training_log,
            "preempted_rule": preempted_rule, "preempted_job": preempted_job,
            "seconds": time.monotonic() - started, "jobs": jobs}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, slurm_run):
    workdir = tmp_path_factory.mktemp("local_run").resolve()
    for name in ("tiny.yaml", "until.json"):
        shutil.copy(slurm_run["workdir"] / name, workdir / name)
    result = run_snakemake(workdir, "local")
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
    return workdir


@pytest.fixture(scope="module")
def rerun(slurm_run):
    """A second invocation right after the first."""
    before = len(sacct_jobs(slurm_run["workdir"]))
    result = run_snakemake(slurm_run["workdir"], "slurm", *FAST_STATUS)
    return {"result": result, "new_jobs": sacct_jobs(slurm_run["workdir"])[before:]}


@pytest.fixture(scope="module")
def touched_run(slurm_run, rerun):
    """One recording's raw files touched (plan only), then re-recorded for real, then the DAG again.

    Snakemake 9 reruns a job for a newer input only when the input's content checksum changed,
    so a bare `touch` plans nothing; rewriting the metadata (as a fresh recording does, with a
    new `created` time) makes the content differ.
    """
    workdir = slurm_run["workdir"]
    dataset, game, episode = TOUCHED
    raw = sorted((workdir / "results" / "raw" / dataset / game).glob(f"{episode}.*"))
    assert len(raw) == 3, f"expected .mp4/.jsonl/.json for {TOUCHED} under {workdir}: {raw}"
    now = time.time()
    for path in raw:
        os.utime(path, (now, now))
    plan_after_touch = planned_jobs(workdir)
    meta_path = workdir / "results" / "raw" / dataset / game / f"{episode}.json"
    meta = json.loads(meta_path.read_text())
    meta["created"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    meta_path.write_text(json.dumps(meta) + "\n")
    plan = [job for job in planned_jobs(workdir) if job[0] not in slurm_run["local_rules"]]
    before = len(sacct_jobs(workdir))
    result = run_snakemake(workdir, "slurm", *FAST_STATUS)
    return {"workdir": workdir, "plan_after_touch": plan_after_touch, "plan": plan, "result": result,
            "new_jobs": sacct_jobs(workdir)[before:]}


# ---------------------------------------------------------------------------------------------
# tests


def test_every_rule_ran_as_a_slurm_job(slurm_run):
    jobs = slurm_run["jobs"]
    completed = [job for job in jobs if job["State"] == "COMPLETED"]
    # Each planned job completed exactly once as a SLURM job; only the preempted one has a
    # failed attempt besides.
    assert as_pairs(completed) == sorted(slurm_run["plan"])
    failed = [job for job in jobs if job["State"] != "COMPLETED"]
    expected_failures = [slurm_run["preempted_rule"]] if slurm_run["preempted_rule"] else []
    assert [job["rule"] for job in failed] == expected_failures, failed
    # Light bookkeeping rules (all, stage_config) may run on the submit host; real work may not.
    heavy = {"record_demonstration", "convert_recording", "convert_unlabelled_recording", "index_dataset"}
    assert not slurm_run["local_rules"] & (heavy | GPU_RULES), slurm_run["local_rules"]
    assert {"record_demonstration", "convert_recording", "index_dataset"} <= {job["rule"] for job in jobs}


def test_gpu_rules_ask_for_a_gpu_and_cpu_rules_do_not(slurm_run):
    jobs = slurm_run["jobs"]
    for job in jobs:
        asks_for_gpu = "gres/gpu=1" in job["ReqTRES"] and "gres/gpu=1" in job["AllocTRES"]
        assert asks_for_gpu == (job["rule"] in GPU_RULES), job
    if not {job["rule"] for job in jobs} & GPU_RULES:
        pytest.skip("the DAG has no GPU rule yet: only checked that CPU rules got no GPU")


def test_outputs_match_a_local_run(slurm_run, local_run):
    import zarr

    slurm_dir = slurm_run["workdir"]

    def stores(root: Path) -> list[Path]:
        return sorted(p.relative_to(root) for kind in ("zarr", "truth", "labels")
                      for p in (root / "results" / kind).glob("*/*/*.zarr"))

    assert stores(slurm_dir) == stores(local_run)
    assert any(str(p).startswith("zarr/") or "/zarr/" in str(p) for p in stores(slurm_dir))
    for relative in stores(slurm_dir):
        ours, theirs = zarr.open_group(slurm_dir / relative, mode="r"), zarr.open_group(local_run / relative, mode="r")
        for group in ("", "info"):
            ours_group = ours if not group else ours.get(group)
            theirs_group = theirs if not group else theirs.get(group)
            if ours_group is None:
                assert theirs_group is None, f"{relative}/{group}"
                continue
            names = sorted(name for name, _ in ours_group.arrays())
            assert names == sorted(name for name, _ in theirs_group.arrays()), f"{relative}/{group}"
            for name in names:
                a, b = ours_group[name][:], theirs_group[name][:]
                assert a.shape == b.shape and np.array_equal(a, b), (
                    f"{relative}/{group}/{name} differs between the SLURM and the local run"
                    f" ({int(np.sum(a != b)) if a.shape == b.shape else 'shape'} elements)")
        assert ours.attrs["swag"]["frames"] == theirs.attrs["swag"]["frames"]
    indexes = sorted(p.name for p in (slurm_dir / "results" / "index").glob("*.json"))
    assert indexes and indexes == sorted(p.name for p in (local_run / "results" / "index").glob("*.json"))
    for name in indexes:
        ours = (slurm_dir / "results" / "index" / name).read_text().replace(str(slurm_dir), "")
        theirs = (local_run / "results" / "index" / name).read_text().replace(str(local_run), "")
        assert json.loads(ours) == json.loads(theirs), name
    for jsonl in sorted((slurm_dir / "results" / "raw").rglob("*.jsonl")):
        assert jsonl.read_bytes() == (local_run / jsonl.relative_to(slurm_dir)).read_bytes(), jsonl


def test_second_invocation_submits_nothing(rerun):
    result = rerun["result"]
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    # "Nothing to be done", or with --until an empty job table: no job, local or remote, ran.
    assert re.search(r"Nothing to be done|^total\s+0$", output, re.MULTILINE), output[-3000:]
    assert not re.search(r"^(local)?rule \w+:", output, re.MULTILINE), output[-3000:]
    assert rerun["new_jobs"] == []


def test_changing_a_recording_resubmits_only_its_downstream_jobs(touched_run):
    result = touched_run["result"]
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
    dataset, game, episode = TOUCHED
    assert touched_run["plan_after_touch"] == [], "a newer mtime with the same content reran jobs"
    plan = touched_run["plan"]
    # The plan: nothing is recorded again, only the touched recording is converted, and
    # nothing of the other dataset reruns.
    assert not [job for job in plan if job[0] == "record_demonstration"], plan
    converted = [wildcards for rule, wildcards in plan if rule.startswith("convert")]
    assert converted == [f"{dataset}_{game}_{episode}"], plan
    # Per-dataset aggregates of the other dataset stay (labels of the other dataset do rerun:
    # they depend on the IDM, which trains on this one).
    other = "vpt" if dataset == "idm" else "idm"
    assert not [job for job in plan if job[0] in ("index_dataset", "data_statistics") and job[1] == other], plan
    assert ("index_dataset", dataset) in plan
    # A retrained model starts from scratch: the checkpoint of the finished run (trained on the
    # old data) must not be resumed.
    train_logs = [p for p in (touched_run["workdir"] / "logs" / "train_idm").rglob("*") if p.is_file()]
    if ("train_idm", "") in plan:
        assert train_logs
        for path in train_logs:
            assert not re.search(r"resuming\s+\S+\s+at\s+step", path.read_text(errors="replace")), (
                f"{path}: retraining on changed data resumed the previous run's checkpoint")
    # ... and exactly that plan ran, each job as one completed SLURM job.
    new_jobs = touched_run["new_jobs"]
    assert all(job["State"] == "COMPLETED" for job in new_jobs), new_jobs
    assert as_pairs(new_jobs) == sorted(plan)


def test_preempted_training_job_resumes_from_its_checkpoint(slurm_run):
    rule, job_id = slurm_run["preempted_rule"], slurm_run["preempted_job"]
    if rule is None:
        pytest.skip("the DAG has no training rule yet")
    jobs = [job for job in slurm_run["jobs"] if job["rule"] == rule]
    assert [job["State"] for job in jobs] == ["FAILED", "COMPLETED"], jobs
    assert jobs[0]["id"] == job_id
    assert jobs[0]["ExitCode"] != "0:0"
    assert "gres/gpu=1" in jobs[1]["AllocTRES"]
    output = slurm_run["output"]
    # show-failed-logs prints the interrupted attempt's log; the retry's log is the rule log now.
    interrupted = re.search(r"SIGTERM:\s+checkpoint\s+written\s+at\s+step\s+(\d+)", output)
    assert interrupted, output[-8000:]
    step = int(interrupted.group(1))
    assert step > 0
    logs = slurm_run["training_log"]
    resumed = re.search(r"resuming\s+\S+\s+at\s+step\s+(\d+)", logs)
    assert resumed, logs[-4000:]
    assert int(resumed.group(1)) == step
    # The resumed run finished the whole schedule: interrupted + resumed = the configured steps.
    summaries = list((slurm_run["workdir"] / "results").rglob("train_log.json"))
    assert summaries, "no train_log.json"
    max_steps = yaml.safe_load((slurm_run["workdir"] / "tiny.yaml").read_text())["idm"]["training"]["max_steps"]
    assert [json.loads(p.read_text())["steps"] for p in summaries] == [max_steps]
