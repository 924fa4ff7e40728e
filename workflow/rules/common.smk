# Config validation, the recordings the config asks for, and input functions.

import json
from pathlib import Path

from swag import config as swag_config
from swag.errors import SwagError

# Every rule runs `python -m swag` in this environment (`--sw-deployment-method conda`) or in
# whatever environment snakemake itself runs in (the README's venv); the repository root is put
# on PYTHONPATH so both find this checkout's swag.
SWAG_ENV = "../../environment.yml"
shell.prefix(f"export PYTHONPATH='{workflow.basedir}':$PYTHONPATH; ")

# Name the file the user gave (--configfile) in errors, else the Snakefile's default.
CONFIG_SOURCE = ", ".join(map(str, workflow.overwrite_configfiles or workflow.configfiles)) or "config"
swag_config.validate(config, source=CONFIG_SOURCE)

DATASETS = [name for name in ("idm", "vpt", "finetune") if config["recordings"].get(name)]
RECORDINGS = {
    (rec["dataset"], rec["game"], rec["episode"]): rec
    for dataset in DATASETS
    for rec in swag_config.recordings(config, dataset)
}


def discover_sources():
    """(dataset, game, episode) -> {"kind", "path"} for every file in the config's `sources` folders."""
    from swag.ingest.fm2 import parse_fm2
    from swag.ingest.smbdataset import find_episodes

    found = {}
    for number, entry in enumerate(config.get("sources", [])):
        folder, dataset, kind = Path(entry["path"]), entry["dataset"], entry["kind"]
        if not folder.is_dir():
            raise SwagError(f"{folder}: sources.{number} folder not found")
        if kind == "recordings":
            for meta in sorted(folder.rglob("*.json")):
                header = json.loads(meta.read_text()) if not meta.name.endswith(".web.json") else {}
                if header.get("format") == "swag-recording":
                    prefix = str(meta.with_suffix(""))
                    found[(dataset, header["game"], f"rec_{meta.stem}")] = {"kind": kind, "path": prefix}
        elif kind == "smbdataset":
            for episode in find_episodes(folder):
                found[(dataset, "smb1", episode.name)] = {"kind": kind, "path": str(episode)}
        elif kind == "fm2":
            for movie in sorted(folder.rglob("*.fm2")):
                found[(dataset, parse_fm2(movie).game, f"fm2_{movie.stem}")] = {"kind": kind, "path": str(movie)}
        else:
            for video in sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".mp4", ".mkv", ".webm")):
                found[(dataset, entry["game"], f"video_{video.stem}")] = {
                    "kind": kind, "path": str(video), "level": entry.get("level")}
        if not any(source["path"].startswith(str(folder)) for source in found.values()):
            raise SwagError(f"{folder}: sources.{number} ({kind}) folder holds no input files")
    return found


SOURCES = discover_sources()
DATASETS = sorted(set(DATASETS) | {dataset for dataset, _, _ in SOURCES})
# Oracle-BC needs the true actions of every frame the policy trains on; user video has none.
VPT_HAS_TRUTH = not any(s["kind"] == "video" for (d, _, _), s in SOURCES.items() if d == "vpt")


wildcard_constraints:
    dataset="|".join(DATASETS),
    game=r"[a-z0-9-]+",
    episode=r"[A-Za-z0-9_.-]+",


# Policies in the result table; vpt (and oracle-bc) are trained by train_vpt.
POLICIES_TRAINED = ["vpt", "oracle-bc"] if VPT_HAS_TRUTH else ["vpt"]

# Fine-tuning targets, and the policies they add: policy name -> the model it plays.
FINETUNE_TARGETS = {target["name"]: target for target in config.get("finetune", {}).get("targets", [])}
FINETUNED = {}
for name, target in FINETUNE_TARGETS.items():
    if "bc" in target:
        FINETUNED[f"vpt-bc-ft-{name}"] = f"results/finetune/{name}/bc/model.pt"
    if "rl" in target:
        FINETUNED[f"vpt-rl-ft-{name}"] = f"results/finetune/{name}/rl/model.pt"
        FINETUNED[f"rl-scratch-{name}"] = f"results/finetune/{name}/rl-scratch/model.pt"
POLICIES = ["random", *POLICIES_TRAINED, "demonstrator", *FINETUNED]


# The DAG's longest chain: the labelled play, the IDM, its labels, the VPT policy and its
# fine-tunings. Its jobs go first whenever several are ready, so that the jobs off it (the other
# recordings, oracle-BC, the baselines' evaluations) fill the cores beside it instead of
# delaying it.
ON_THE_LONGEST_CHAIN = 10


def longest_chain_priority(wildcards):
    on_chain = ("idm" in (wildcards.get("dataset"), wildcards.get("stage")) or wildcards.get("policy") == "vpt"
                or wildcards.get("method") == "rl")
    return ON_THE_LONGEST_CHAIN if on_chain else 0


def check_finetune_data():
    """BC fine-tuning with no labelled play of its target to learn from is a config error, found now."""
    for number, target in enumerate(config.get("finetune", {}).get("targets", [])):
        if "bc" not in target:
            continue
        found = [
            key for key in [*RECORDINGS, *SOURCES]
            if key[0] == "finetune" and key[1] == target["game"]
            and (RECORDINGS.get(key) or SOURCES.get(key)).get("level") in (None, target.get("level"))
        ]
        if not found:
            level = f" {target['level']}" if target.get("level") else ""
            raise SwagError(f"{CONFIG_SOURCE}: finetune.targets.{number}: bc needs labelled {target['game']}{level} "
                            "play in recordings.finetune (or a finetune source)")


check_finetune_data()


def recording(wildcards):
    """The config entry behind one recording's jobs."""
    return RECORDINGS[(wildcards.dataset, wildcards.game, wildcards.episode)]


def recording_arg(key):
    """A params function reading one field of the recording; only that recording's jobs rerun when it changes."""
    return lambda wildcards: recording(wildcards)[key]


def stores(dataset):
    return [
        f"results/zarr/{dataset}/{game}/{episode}.zarr"
        for (ds, game, episode) in [*RECORDINGS, *SOURCES]
        if ds == dataset
    ]


def raw_recording(wildcards):
    """The three files of the raw recording behind a store: generated, imported or the user's own."""
    source = SOURCES.get((wildcards.dataset, wildcards.game, wildcards.episode))
    if source is None:
        prefix = f"results/raw/{wildcards.dataset}/{wildcards.game}/{wildcards.episode}"
    elif source["kind"] == "recordings":
        prefix = source["path"]
    else:
        prefix = f"results/imported/{source['kind']}/{wildcards.dataset}/{wildcards.game}/{wildcards.episode}"
    return {"video": f"{prefix}.mp4", "actions": f"{prefix}.jsonl", "meta": f"{prefix}.json"}


def source_path(wildcards):
    return SOURCES[(wildcards.dataset, wildcards.game, wildcards.episode)]["path"]


def web_stores(dataset):
    return [path for path in stores(dataset) if Path(path).name.startswith("web_")]


def get_final_outputs():
    """Every stage's report-facing outputs; stages whose data the config doesn't ask for drop out."""
    outputs = [f"results/stats/{dataset}" for dataset in DATASETS]
    outputs += ["results/idm/eval"]
    if "vpt" in DATASETS and "vpt" in config:
        outputs += ["results/idm/label_quality", "results/eval/table.md"]
        if web_stores("vpt"):
            outputs += ["results/idm/web_label_quality"]
    outputs += [str(Path(model).with_name("curves.png")) for model in FINETUNED.values()]
    return outputs


def swag_launcher(wildcards, resources):
    """`python -m swag`, or torchrun with one process per GPU the job was given (DDP)."""
    gpus = int(getattr(resources, "gpu", 0) or 0)
    if gpus > 1:
        return f"torchrun --standalone --nproc_per_node {gpus} -m swag"
    return "python -m swag"


def truth_stores(dataset):
    """Truth stores exist for every store made from a recording (not for user video)."""
    return [
        path.replace("results/zarr/", "results/truth/", 1)
        for path in stores(dataset)
        if not Path(path).name.startswith("video_")
    ]


def label_stores(dataset):
    return [path.replace("results/zarr/", "results/labels/", 1) for path in stores(dataset)]


def rollout_args():
    """`--game GAME[:LEVEL]` for every game the policies play: the evaluation's and the fine-tuning targets'."""
    games = [entry["game"] + (f":{entry['level']}" if entry.get("level") else "")
             for entry in [*config["evaluation"]["rollouts"], *FINETUNE_TARGETS.values()]]
    return " ".join(f"--game {game}" for game in dict.fromkeys(games))


def policy_label_inputs(wildcards):
    return truth_stores("vpt") if wildcards.policy == "oracle-bc" else label_stores("vpt")


def evaluation_inputs(wildcards):
    inputs = {"index": "results/index/vpt.json"}
    if wildcards.policy in POLICIES_TRAINED:
        inputs["model"] = f"results/policies/{wildcards.policy}/model.pt"
    if wildcards.policy in FINETUNED:
        inputs["model"] = FINETUNED[wildcards.policy]
    if wildcards.policy == "random":
        inputs["labelled_play"] = "results/index/idm.json"
    return inputs


def agent_args(wildcards, input):
    if wildcards.policy in POLICIES_TRAINED or wildcards.policy in FINETUNED:
        return f"--agent model --checkpoint {input.model}"
    if wildcards.policy == "random":
        return f"--agent random --actions-from {input.labelled_play}"
    return f"--agent demonstrator --style {config['evaluation']['demonstrator_style']}"


def finetune_bc_inputs(wildcards):
    return {
        "config": f"results/config/finetune/{wildcards.target}/bc.yaml",
        "checkpoint": "results/policies/vpt/model.pt",
        "index": "results/index/finetune.json",
        "stores": stores("finetune"),
    }


def finetune_rl_inputs(wildcards):
    inputs = {"config": f"results/config/finetune/{wildcards.target}/rl.yaml"}
    if wildcards.method == "rl":
        inputs["checkpoint"] = "results/policies/vpt/model.pt"
    return inputs
