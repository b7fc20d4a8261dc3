# lrpfn: task-diversity sweep of autoregressive PFNs for in-context linear regression.
# Data flow: tasks -> train -> evaluate / resample / predictive -> aggregate -> plots (see README).
from snakemake.utils import min_version

min_version("8.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/tasks.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/resample.smk"
include: "workflow/rules/predictive.smk"
include: "workflow/rules/premise.smk"
include: "workflow/rules/plots.smk"


rule all:
    default_target: True
    input:
        all_targets(),
