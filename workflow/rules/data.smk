# Stage 1: gameplay with known controller input -> raw recordings -> Zarr stores -> dataset index.


rule record_demonstration:
    output:
        video="results/raw/{dataset}/{game}/{episode}.mp4",
        actions="results/raw/{dataset}/{game}/{episode}.jsonl",
        meta="results/raw/{dataset}/{game}/{episode}.json",
    params:
        level=lambda wildcards: recording(wildcards)["level"] or "",
        style=recording_arg("style"),
        seed=recording_arg("seed"),
        max_frames=recording_arg("max_frames"),
        prefix=subpath(output.meta, strip_suffix=".json"),
    priority: longest_chain_priority
    conda:
        SWAG_ENV
    benchmark:
        "logs/benchmarks/record_demonstration/{dataset}/{game}/{episode}.tsv",
    log:
        "logs/record_demonstration/{dataset}/{game}/{episode}.log",
    shell:
        "python -m swag record --game {wildcards.game} --level '{params.level}' --style {params.style}"
        " --seed {params.seed} --max-frames {params.max_frames} --out {params.prefix} > {log} 2>&1"


rule convert_recording:
    input:
        unpack(raw_recording),
    output:
        store=directory("results/zarr/{dataset}/{game}/{episode}.zarr"),
    wildcard_constraints:
        dataset="idm|finetune",
        episode=r"(?!web_|video_)[A-Za-z0-9_.-]+",
    params:
        prefix=subpath(input.meta, strip_suffix=".json"),
        height=config["data"]["resolution"]["y"],
        width=config["data"]["resolution"]["x"],
        fps=config["data"]["fps"],
        chunk_frames=config["data"]["chunk_frames"],
    priority: longest_chain_priority
    conda:
        SWAG_ENV
    benchmark:
        "logs/benchmarks/convert_recording/{dataset}/{game}/{episode}.tsv",
    log:
        "logs/convert_recording/{dataset}/{game}/{episode}.log",
    shell:
        "python -m swag convert {params.prefix} {output.store} --height {params.height} --width {params.width}"
        " --fps {params.fps} --chunk-frames {params.chunk_frames} > {log} 2>&1"


# The vpt set stands in for unlabelled web video: its true actions go to a truth store that
# only evaluation reads, and the store the pipeline trains from has no actions.
rule convert_unlabelled_recording:
    input:
        unpack(raw_recording),
    output:
        store=directory("results/zarr/{dataset}/{game}/{episode}.zarr"),
        truth=directory("results/truth/{dataset}/{game}/{episode}.zarr"),
    wildcard_constraints:
        dataset="vpt",
        episode=r"(?!web_|video_)[A-Za-z0-9_.-]+",
    params:
        **rules.convert_recording.params,
    conda:
        SWAG_ENV
    benchmark:
        "logs/benchmarks/convert_unlabelled_recording/{dataset}/{game}/{episode}.tsv",
    log:
        "logs/convert_unlabelled_recording/{dataset}/{game}/{episode}.log",
    shell:
        "python -m swag convert {params.prefix} {output.store} --truth {output.truth} --height {params.height}"
        " --width {params.width} --fps {params.fps} --chunk-frames {params.chunk_frames} > {log} 2>&1"


rule index_dataset:
    input:
        stores=lambda wildcards: stores(wildcards.dataset),
    output:
        index="results/index/{dataset}.json",
    params:
        test_fraction=config["data"]["test_fraction"],
        # Only the IDM is tested on unseen players; the policy learns from every style's video.
        heldout=lambda wildcards: (
            " ".join(f"--heldout-style {style}" for style in config["data"]["heldout_styles"])
            if wildcards.dataset == "idm"
            else ""
        ),
        train_only=lambda wildcards: (
            " ".join(f"--train-only-style {style}" for style in config["data"].get("train_only_styles", []))
            if wildcards.dataset == "idm"
            else ""
        ),
    priority: longest_chain_priority
    conda:
        SWAG_ENV
    log:
        "logs/index_dataset/{dataset}.log",
    shell:
        "python -m swag index --dataset {wildcards.dataset} --test-fraction {params.test_fraction} {params.heldout}"
        " {params.train_only}"
        " --out {output.index} {input.stores} > {log} 2>&1"


rule data_statistics:
    input:
        index="results/index/{dataset}.json",
    output:
        report(
            directory("results/stats/{dataset}"),
            patterns=["{name}.png"],
            caption="../report/data_statistics.rst",
            category="1. Data",
            labels={"dataset": "{dataset}", "figure": "{name}"},
        ),
    conda:
        SWAG_ENV
    log:
        "logs/data_statistics/{dataset}.log",
    shell:
        "python -m swag data-stats {input.index} {output} > {log} 2>&1"
