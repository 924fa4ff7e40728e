# The model and training sections of each stage, as files: a stage's jobs rerun when its own
# section changes (snakemake's params trigger), and only then.


rule stage_config:
    output:
        report(
            "results/config/{stage}.yaml",
            caption="../report/stage_config.rst",
            category="0. Configuration",
            labels={"stage": "{stage}"},
        ),
    params:
        # canonical JSON: reordering keys in a config file is not a change
        section=lambda wildcards: json.dumps(config[wildcards.stage], sort_keys=True),
    wildcard_constraints:
        stage="idm|vpt",
    priority: longest_chain_priority
    conda:
        SWAG_ENV
    log:
        "logs/stage_config/{stage}.log",
    localrule: True
    shell:
        "python -m swag stage-config {output} --stage {wildcards.stage} --section {params.section:q} > {log} 2>&1"
