# Stage 4: fine-tuning the VPT policy on named targets (config `finetune.targets`): behaviour
# cloning on the target's labelled recordings, PPO in the emulator with a KL leash to the VPT
# policy, and PPO from scratch at the same environment-step budget. evaluate_vpt plays the results.


rule finetune_config:
    output:
        "results/config/finetune/{target}/{method}.yaml",
    params:
        # canonical JSON of one method's settings (plus vpt.model and vpt.training): changing the
        # BC settings never reruns RL, and the other way round
        section=lambda wildcards: json.dumps(
            swag_config.finetune_section(config, wildcards.target, wildcards.method), sort_keys=True
        ),
    wildcard_constraints:
        target="|".join(FINETUNE_TARGETS) or "(?!)",
        method="bc|rl",
    conda:
        SWAG_ENV
    log:
        "logs/finetune_config/{target}/{method}.log",
    localrule: True
    shell:
        "python -m swag stage-config {output} --stage finetune --section {params.section:q} > {log} 2>&1"


rule finetune_bc:
    input:
        unpack(finetune_bc_inputs),
    output:
        model="results/finetune/{target}/bc/model.pt",
        curves=report(
            "results/finetune/{target}/bc/curves.png",
            caption="../report/finetune_curves.rst",
            category="5. Fine-tuning",
            labels={"target": "{target}", "method": "BC", "figure": "training curves"},
        ),
    wildcard_constraints:
        target="|".join(FINETUNE_TARGETS) or "(?!)",
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
        "logs/benchmarks/finetune_bc/{target}.tsv",
    log:
        "logs/finetune_bc/{target}.log",
    shell:
        "{params.launcher} finetune --mode bc --config {input.config} --checkpoint {input.checkpoint}"
        " --index {input.index} --out {params.out_dir} > {log} 2>&1"


rule finetune_rl:
    input:
        unpack(finetune_rl_inputs),
    output:
        model="results/finetune/{target}/{method}/model.pt",
        curves=report(
            "results/finetune/{target}/{method}/curves.png",
            caption="../report/finetune_curves.rst",
            category="5. Fine-tuning",
            labels={"target": "{target}", "method": "{method}", "figure": "RL curves"},
        ),
    wildcard_constraints:
        target="|".join(FINETUNE_TARGETS) or "(?!)",
        method="rl|rl-scratch",
    params:
        out_dir=subpath(output.model, parent=True),
        start=lambda wildcards, input: (
            f"--checkpoint {input.checkpoint}" if wildcards.method == "rl" else "--from-scratch"
        ),
        fps=config["data"]["fps"],
    # the training process plus one emulator process per env
    threads: lambda wildcards: 1 + FINETUNE_TARGETS[wildcards.target].get("rl", {}).get("envs", 4)
    resources:
        gpu=0,
    priority: longest_chain_priority
    conda:
        SWAG_ENV
    benchmark:
        "logs/benchmarks/finetune_rl/{target}/{method}.tsv",
    log:
        "logs/finetune_rl/{target}/{method}.log",
    shell:
        "python -m swag finetune --mode rl --config {input.config} {params.start} --fps {params.fps}"
        " --out {params.out_dir} > {log} 2>&1"
