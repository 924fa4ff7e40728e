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
        section=lambda wildcards: config[wildcards.stage],
    wildcard_constraints:
        stage="idm|vpt",
    log:
        "logs/stage_config/{stage}.log",
    localrule: True
    run:
        import yaml

        from swag.store import atomic_store_path

        with atomic_store_path(output[0]) as temp:
            temp.write_text(yaml.safe_dump(params.section, sort_keys=False))
