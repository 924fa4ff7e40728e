# Stage 2: the inverse dynamics model. Train on the labelled set, score it on held-out
# recordings (and on a demonstrator style it never saw), then label the unlabelled set.


rule train_idm:
    input:
        config="results/config/idm.yaml",
        index="results/index/idm.json",
        stores=stores("idm"),
    output:
        model="results/idm/model.pt",
        train_log="results/idm/train_log.json",
        curves=report(
            "results/idm/curves.png",
            caption="../report/idm_curves.rst",
            category="2. Inverse dynamics model",
        ),
    params:
        launcher=swag_launcher,
        out_dir=subpath(output.model, parent=True),
    threads: 8
    resources:
        gpu=0,
    priority: ON_THE_LONGEST_CHAIN
    conda:
        SWAG_ENV
    benchmark:
        "logs/benchmarks/train_idm/train_idm.tsv",
    log:
        "logs/train_idm/train_idm.log",
    shell:
        "{params.launcher} train-idm --config {input.config} --index {input.index} --out {params.out_dir}"
        " > {log} 2>&1"


rule evaluate_idm:
    input:
        model="results/idm/model.pt",
        index="results/index/idm.json",
    output:
        report(
            directory("results/idm/eval"),
            patterns=["{name}.png"],
            caption="../report/idm_eval.rst",
            category="2. Inverse dynamics model",
            labels={"figure": "{name}"},
        ),
    threads: 4
    resources:
        gpu=0,
    conda:
        SWAG_ENV
    benchmark:
        "logs/benchmarks/evaluate_idm/evaluate_idm.tsv",
    log:
        "logs/evaluate_idm/evaluate_idm.log",
    shell:
        "python -m swag evaluate-idm --model {input.model} --index {input.index} --out {output}"
        " --split test --split unseen_style > {log} 2>&1"


rule label:
    input:
        video="results/zarr/{dataset}/{game}/{episode}.zarr",
        model="results/idm/model.pt",
    output:
        labels=directory("results/labels/{dataset}/{game}/{episode}.zarr"),
    threads: 2
    resources:
        gpu=0,
    priority: ON_THE_LONGEST_CHAIN
    conda:
        SWAG_ENV
    benchmark:
        "logs/benchmarks/label/{dataset}/{game}/{episode}.tsv",
    log:
        "logs/label/{dataset}/{game}/{episode}.log",
    shell:
        "python -m swag label {input.video} --model {input.model} --out {output.labels} > {log} 2>&1"


# How good are the pseudo-labels? The IDM scored against the true actions of the unlabelled set,
# which sit in results/truth/ where no training rule reads them.
rule evaluate_labels:
    input:
        model="results/idm/model.pt",
        index="results/index/vpt.json",
        truth=truth_stores("vpt"),
    output:
        report(
            directory("results/idm/label_quality"),
            patterns=["{name}.png"],
            caption="../report/label_quality.rst",
            category="2. Inverse dynamics model",
            labels={"figure": "label quality {name}"},
        ),
    threads: 4
    resources:
        gpu=0,
    conda:
        SWAG_ENV
    benchmark:
        "logs/benchmarks/evaluate_labels/evaluate_labels.tsv",
    log:
        "logs/evaluate_labels/evaluate_labels.log",
    shell:
        "python -m swag evaluate-idm --model {input.model} --index {input.index} --out {output}"
        " --split train --split test > {log} 2>&1"


# The same measure on the part of the unlabelled set that was published as web video: how much
# the domain gap (upscaling, letterbox, 30 fps, lossy H.264) costs the IDM.
rule index_web_video:
    input:
        stores=web_stores("vpt"),
    output:
        index="results/index/vpt-web.json",
    conda:
        SWAG_ENV
    log:
        "logs/index_web_video/index_web_video.log",
    shell:
        "python -m swag index --dataset vpt-web --test-fraction 0 --out {output.index} {input.stores} > {log} 2>&1"


use rule evaluate_labels as evaluate_web_labels with:
    input:
        model="results/idm/model.pt",
        index="results/index/vpt-web.json",
    output:
        report(
            directory("results/idm/web_label_quality"),
            patterns=["{name}.png"],
            caption="../report/web_label_quality.rst",
            category="2. Inverse dynamics model",
            labels={"figure": "web video {name}"},
        ),
    benchmark:
        "logs/benchmarks/evaluate_web_labels/evaluate_web_labels.tsv",
    log:
        "logs/evaluate_web_labels/evaluate_web_labels.log",
