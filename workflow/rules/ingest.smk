# Real-world inputs: the public SMB dataset, FCEUX movies and unlabelled video from the config's
# `sources` folders, and the demo's web video (our recordings published as web video, so the
# unlabelled set has the domain gap real users face).


rule import_smbdataset:
    input:
        episode=source_path,
    output:
        video="results/imported/smbdataset/{dataset}/{game}/{episode}.mp4",
        actions="results/imported/smbdataset/{dataset}/{game}/{episode}.jsonl",
        meta="results/imported/smbdataset/{dataset}/{game}/{episode}.json",
    params:
        out_dir=subpath(output.meta, parent=True),
    conda:
        SWAG_ENV
    log:
        "logs/import_smbdataset/{dataset}/{game}/{episode}.log",
    shell:
        "python -m swag import-smbdataset {input.episode} {params.out_dir} --on-gap fail > {log} 2>&1"


rule import_fm2:
    input:
        movie=source_path,
    output:
        video="results/imported/fm2/{dataset}/{game}/{episode}.mp4",
        actions="results/imported/fm2/{dataset}/{game}/{episode}.jsonl",
        meta="results/imported/fm2/{dataset}/{game}/{episode}.json",
    params:
        prefix=subpath(output.meta, strip_suffix=".json"),
    conda:
        SWAG_ENV
    log:
        "logs/import_fm2/{dataset}/{game}/{episode}.log",
    shell:
        "python -m swag import-fm2 {input.movie} {params.prefix} > {log} 2>&1"


rule ingest_video:
    input:
        video=source_path,
    output:
        store=directory("results/zarr/{dataset}/{game}/{episode}.zarr"),
    wildcard_constraints:
        episode=r"video_[A-Za-z0-9_.-]+",
    params:
        level=lambda wildcards: SOURCES[(wildcards.dataset, wildcards.game, wildcards.episode)]["level"] or "",
        height=config["data"]["resolution"]["y"],
        width=config["data"]["resolution"]["x"],
        fps=config["data"]["fps"],
        chunk_frames=config["data"]["chunk_frames"],
    conda:
        SWAG_ENV
    benchmark:
        "logs/benchmarks/ingest_video/{dataset}/{game}/{episode}.tsv",
    log:
        "logs/ingest_video/{dataset}/{game}/{episode}.log",
    shell:
        "python -m swag ingest-video {input.video} {output.store} --height {params.height} --width {params.width}"
        " --fps {params.fps} --chunk-frames {params.chunk_frames} --game {wildcards.game}"
        " $([ -n '{params.level}' ] && echo --level '{params.level}') > {log} 2>&1"


rule make_web_video:
    input:
        unpack(raw_recording),
    output:
        video="results/web/{dataset}/{game}/{episode}.mp4",
        geometry="results/web/{dataset}/{game}/{episode}.web.json",
    wildcard_constraints:
        episode=r"web_[A-Za-z0-9_.-]+",
    params:
        prefix=subpath(input.meta, strip_suffix=".json"),
        seed=recording_arg("seed"),
    conda:
        SWAG_ENV
    benchmark:
        "logs/benchmarks/make_web_video/{dataset}/{game}/{episode}.tsv",
    log:
        "logs/make_web_video/{dataset}/{game}/{episode}.log",
    shell:
        "python -m swag make-web-video {params.prefix} {output.video} --seed {params.seed} > {log} 2>&1"


rule ingest_web_video:
    input:
        unpack(raw_recording),
        web="results/web/{dataset}/{game}/{episode}.mp4",
    output:
        store=directory("results/zarr/{dataset}/{game}/{episode}.zarr"),
        truth=directory("results/truth/{dataset}/{game}/{episode}.zarr"),
    wildcard_constraints:
        episode=r"web_[A-Za-z0-9_.-]+",
    params:
        prefix=subpath(input.meta, strip_suffix=".json"),
        level=lambda wildcards: recording(wildcards)["level"] or "",
        style=recording_arg("style"),
        height=config["data"]["resolution"]["y"],
        width=config["data"]["resolution"]["x"],
        fps=config["data"]["fps"],
        chunk_frames=config["data"]["chunk_frames"],
    conda:
        SWAG_ENV
    benchmark:
        "logs/benchmarks/ingest_web_video/{dataset}/{game}/{episode}.tsv",
    log:
        "logs/ingest_web_video/{dataset}/{game}/{episode}.log",
    shell:
        "python -m swag ingest-video {input.web} {output.store} --height {params.height} --width {params.width}"
        " --fps {params.fps} --chunk-frames {params.chunk_frames} --game {wildcards.game} --style {params.style}"
        " $([ -n '{params.level}' ] && echo --level '{params.level}')"
        " --truth-from {params.prefix} --truth {output.truth} > {log} 2>&1"
