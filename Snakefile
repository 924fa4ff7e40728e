# swag: Video PreTraining for NES games.
# Data flows one way: raw recordings -> Zarr stores -> IDM -> labels -> policy -> evaluation -> report.
# Run `snakemake --profile profiles/local all` (demo scale) or `--profile profiles/slurm` on a cluster.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/demo.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/stage_config.smk"
include: "workflow/rules/idm.smk"
include: "workflow/rules/vpt.smk"
include: "workflow/rules/finetune.smk"


rule all:
    input:
        get_final_outputs(),
    default_target: True
