# Config validation, the recordings the config asks for, and input functions.

import json

from swag import config as swag_config

# Every rule runs `python -m swag` in this environment (`--sw-deployment-method conda`) or in
# whatever environment snakemake itself runs in (the README's venv); the repository root is put
# on PYTHONPATH so both find this checkout's swag.
SWAG_ENV = "../../environment.yml"
shell.prefix(f"export PYTHONPATH='{workflow.basedir}':$PYTHONPATH; ")

# Name the file the user gave (--configfile) in errors, else the Snakefile's default.
CONFIG_SOURCE = ", ".join(map(str, workflow.overwrite_configfiles or workflow.configfiles)) or "config"
swag_config.validate(config, source=CONFIG_SOURCE)

DATASETS = [name for name in ("idm", "vpt") if config["recordings"].get(name)]
RECORDINGS = {
    (rec["dataset"], rec["game"], rec["episode"]): rec
    for dataset in DATASETS
    for rec in swag_config.recordings(config, dataset)
}


wildcard_constraints:
    dataset="|".join(DATASETS),
    game=r"[a-z0-9-]+",
    episode=r"[A-Za-z0-9_.-]+",


# Policies in the result table; the first two are trained by train_vpt.
POLICIES_TRAINED = ["vpt", "oracle-bc"]
POLICIES = ["random", "vpt", "oracle-bc", "demonstrator"]


def recording(wildcards):
    """The config entry behind one recording's jobs."""
    return RECORDINGS[(wildcards.dataset, wildcards.game, wildcards.episode)]


def recording_arg(key):
    """A params function reading one field of the recording; only that recording's jobs rerun when it changes."""
    return lambda wildcards: recording(wildcards)[key]


def stores(dataset):
    return [
        f"results/zarr/{dataset}/{game}/{episode}.zarr"
        for (ds, game, episode) in RECORDINGS
        if ds == dataset
    ]


def get_final_outputs():
    """Every stage's report-facing outputs; stages whose data the config doesn't ask for drop out."""
    outputs = [f"results/stats/{dataset}" for dataset in DATASETS]
    outputs += ["results/idm/eval"]
    if "vpt" in DATASETS and "vpt" in config:
        outputs += ["results/idm/label_quality", "results/eval/table.md"]
    return outputs


def swag_launcher(wildcards, resources):
    """`python -m swag`, or torchrun with one process per GPU the job was given (DDP)."""
    gpus = int(getattr(resources, "gpu", 0) or 0)
    if gpus > 1:
        return f"torchrun --standalone --nproc_per_node {gpus} -m swag"
    return "python -m swag"


def truth_stores(dataset):
    return [path.replace("results/zarr/", "results/truth/", 1) for path in stores(dataset)]


def label_stores(dataset):
    return [path.replace("results/zarr/", "results/labels/", 1) for path in stores(dataset)]


def rollout_args():
    """`--game GAME[:LEVEL]` for every game the policies play."""
    return " ".join(
        f"--game {entry['game']}" + (f":{entry['level']}" if entry.get("level") else "")
        for entry in config["evaluation"]["rollouts"]
    )


def policy_label_inputs(wildcards):
    return truth_stores("vpt") if wildcards.policy == "oracle-bc" else label_stores("vpt")


def evaluation_inputs(wildcards):
    inputs = {"index": "results/index/vpt.json"}
    if wildcards.policy in POLICIES_TRAINED:
        inputs["model"] = f"results/policies/{wildcards.policy}/model.pt"
    if wildcards.policy == "random":
        inputs["labels"] = label_stores("vpt")
    return inputs


def agent_args(wildcards, input):
    if wildcards.policy in POLICIES_TRAINED:
        return f"--agent model --checkpoint {input.model}"
    if wildcards.policy == "random":
        return "--agent random --labels results/labels/vpt"
    return f"--agent demonstrator --style {config['evaluation']['demonstrator_style']}"
