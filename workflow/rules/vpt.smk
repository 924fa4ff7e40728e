# Stage 3: the VPT policy. Behaviour cloning of a causal policy on the IDM's labels, the
# oracle-BC baseline on the true actions of the same frames, and every policy's evaluation
# (random and the demonstrator need no training) in the emulator and offline.

rule train_vpt:
    input:
        config="results/config/vpt.yaml",
        index="results/index/vpt.json",
        stores=stores("vpt"),
        labels=policy_label_inputs,
    output:
        model="results/policies/{policy}/model.pt",
        curves=report(
            "results/policies/{policy}/curves.png",
            caption="../report/policy_curves.rst",
            category="3. VPT policy",
            labels={"policy": "{policy}", "figure": "training curves"},
        ),
    wildcard_constraints:
        policy="|".join(POLICIES_TRAINED),
    params:
        launcher=swag_launcher,
        out_dir=subpath(output.model, parent=True),
        labels=lambda wildcards: "truth" if wildcards.policy == "oracle-bc" else "results/labels/vpt",
        weighting=config["policy_labels"]["weighting"],
        min_confidence=config["policy_labels"]["min_confidence"],
        drop_null="--drop-null" if config["policy_labels"]["drop_null"] else "--no-drop-null",
    threads: 8
    resources:
        gpu=0,
    priority: longest_chain_priority
    conda:
        SWAG_ENV
    benchmark:
        "logs/benchmarks/train_vpt/{policy}.tsv",
    log:
        "logs/train_vpt/{policy}.log",
    shell:
        "{params.launcher} train-vpt --config {input.config} --index {input.index} --labels {params.labels}"
        " --out {params.out_dir} --weighting {params.weighting} --min-confidence {params.min_confidence}"
        " {params.drop_null} > {log} 2>&1"


rule evaluate_vpt:
    input:
        unpack(evaluation_inputs),
    output:
        results="results/eval/{policy}/{policy}.json",
        videos=report(
            directory("results/eval/{policy}/videos"),
            patterns=["{name}.mp4"],
            caption="../report/rollout_video.rst",
            category="4. Evaluation",
            subcategory="rollout videos",
            labels={"policy": "{policy}", "rollout": "{name}"},
        ),
    wildcard_constraints:
        policy="|".join(POLICIES),
    params:
        out_dir=subpath(output.results, parent=True),
        agent=agent_args,
        games=rollout_args(),
        episodes=config["evaluation"]["episodes"],
        max_steps=config["evaluation"]["max_steps"],
        fps=config["data"]["fps"],
        greedy="--greedy" if config["evaluation"].get("greedy") else "--no-greedy",
        temperature=config["evaluation"].get("temperature", 1.0),
        release_held="--release-held" if config["evaluation"].get("release_held") else "--no-release-held",
        videos=config["evaluation"].get("videos", 1),
    threads: 16
    resources:
        gpu=0,
    conda:
        SWAG_ENV
    benchmark:
        "logs/benchmarks/evaluate_vpt/{policy}.tsv",
    log:
        "logs/evaluate_vpt/{policy}.log",
    shell:
        "python -m swag evaluate-vpt {params.out_dir} --name {wildcards.policy} {params.agent} --index {input.index}"
        " {params.games} --episodes {params.episodes} --max-steps {params.max_steps} --fps {params.fps}"
        " {params.greedy} --temperature {params.temperature} {params.release_held} --videos {params.videos} --workers {threads} > {log} 2>&1"


rule results_table:
    input:
        expand("results/eval/{policy}/{policy}.json", policy=POLICIES),
    output:
        table=report(
            "results/eval/table.md",
            caption="../report/results_table.rst",
            category="4. Evaluation",
            labels={"figure": "result table"},
        ),
        plot=report(
            "results/eval/table.png",
            caption="../report/results_table.rst",
            category="4. Evaluation",
            labels={"figure": "progress by policy"},
        ),
        json="results/eval/table.json",
    params:
        prefix=subpath(output.json, strip_suffix=".json"),
    conda:
        SWAG_ENV
    log:
        "logs/results_table/results_table.log",
    shell:
        "python -m swag results-table {input} --out {params.prefix} > {log} 2>&1"
