import os
import sys

from snakemake.utils import validate

# The workflow runs its own library: src/ goes on the path of this process and of every job.
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
os.environ.update(
    PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
)

# The parse path (every cluster job repeats it) imports the config layer only: no torch.
from lrpfn.config import (
    SCHEMA,
    check_experiment,
    checkpoint_name,
    checkpoint_steps,
    complete,
    execution_config,
    pool_sizes,
    resampled_steps,
    run_config,
    shared_checkpoint_steps,
    short_run_config,
    task_prior,
)

validate(config, str(SCHEMA))
complete(config)
check_experiment(config)

RESULTS = config["results"]
POOL_SIZES = pool_sizes(config)
SEEDS = [int(s) for s in config["seeds"]]
CHECKPOINT_STEPS = shared_checkpoint_steps(config)
RESAMPLE_STEPS = resampled_steps(config)
# Runs trained to completion on a shorter budget, for the budget-crossing M* (or None).
SHORT = short_run_config(config, POOL_SIZES[0], SEEDS[0])
SHORT_STEPS = checkpoint_steps(SHORT.train) if SHORT else []
EXECUTION = execution_config(config)
# The true task prior, a params entry of the rules that draw or score tasks only when it is
# not the default N(0, I): results of configs without a prior keep their params (no rerun).
PRIOR = task_prior(config)
PRIOR_PARAMS = {"prior": PRIOR} if PRIOR else {}
# Under a prior the resampling statistics also read the implied prior's mass near zero,
# with a threshold from the least-squares noise of a path.
STATS_PRIOR_PARAMS = (
    PRIOR_PARAMS
    | {
        "noise_var": config["noise_var"],
        "path_length": config["resample"]["path_length"],
    }
    if PRIOR
    else {}
)


wildcard_constraints:
    M=r"\d+|inf",
    seed=r"\d+",
    step=r"\d{7}",


def run_dir(M="{M}", seed="{seed}"):
    return f"{RESULTS}/runs/M{M}_seed{seed}"


def short_run_dir(M="{M}", seed="{seed}"):
    return f"{RESULTS}/short_budget/runs/M{M}_seed{seed}"


def run_identity(wildcards):
    """The run's science (RunConfig as a dict): the only training settings a rule may
    take as params, so that execution settings (device, threads, ...) rerun nothing."""
    return run_config(config, wildcards.M, wildcards.seed).to_dict()


def short_run_identity(wildcards):
    return short_run_config(config, wildcards.M, wildcards.seed).to_dict()


def resample_settings(*keys):
    """The resampling settings a rule reads, and only those (plot_dims reruns no sampler)."""
    return {key: config["resample"][key] for key in keys}


def pool_file(wildcards):
    """The run's pool table, or nothing for the true prior."""
    if wildcards.M == "inf":
        return []
    return f"{RESULTS}/tasks/pool_M{wildcards.M}.parquet"


def pool_eval_file(wildcards, kind="eval"):
    """The evaluation set of the run's own tasks (T_M; T_true for M = inf); kind 'eval_long'
    names the longer sequences of the in-context curves."""
    tasks = "true" if wildcards.M == "inf" else f"M{wildcards.M}"
    return f"{RESULTS}/tasks/{kind}_{tasks}.parquet"


def runs():
    return [(M, seed) for M in POOL_SIZES for seed in SEEDS]


def eval_files(kind=""):
    """Per-position (kind '') or per-sequence (kind '_sequences') tables of every checkpoint."""
    return [
        f"{RESULTS}/eval/M{M}_seed{seed}/step_{step:07d}{kind}.parquet"
        for M, seed in runs()
        for step in CHECKPOINT_STEPS
    ]


def in_context_files():
    """Per-position tables of every run's final checkpoint on the longer evaluation sets."""
    return [
        f"{RESULTS}/eval/M{M}_seed{seed}/step_{CHECKPOINT_STEPS[-1]:07d}_in_context.parquet"
        for M, seed in runs()
    ]


def short_eval_files():
    """Per-sequence tables of the shorter-budget runs' final checkpoints (none without them)."""
    return (
        [
            f"{RESULTS}/short_budget/eval/M{M}_seed{seed}/step_{SHORT_STEPS[-1]:07d}_sequences.parquet"
            for M, seed in runs()
            if M != "inf"
        ]
        if SHORT
        else []
    )


def resample_files(M, seed):
    return [
        f"{RESULTS}/resample/M{M}_seed{seed}/step_{step:07d}.parquet"
        for step in RESAMPLE_STEPS
    ]


def resample_stats_files():
    return [f"{RESULTS}/resample/M{M}_seed{seed}_stats.parquet" for M, seed in runs()]


def train_logs():
    return [f"{run_dir(M, seed)}/log.parquet" for M, seed in runs()]


TABLES = [
    "metrics",
    "summary",
    "sequences",
    "closeness",
    "budget_effect",
    "thresholds",
    "train_log",
    "resample_stats",
    "posterior_marginals",
    "in_context",
    "predictive",
]
FIGURES = ["mask", "task_diversity", "losses", "posterior", "in_context"] + [
    f"{name}_M{M}"
    for name in ("implied_prior", "posterior_marginals", "predictive_density")
    for M in POOL_SIZES
]


def all_targets():
    tables = [f"{RESULTS}/tables/{name}.parquet" for name in TABLES]
    figures = [
        f"{RESULTS}/figures/{name}.{ext}" for name in FIGURES for ext in ("png", "pdf")
    ]
    return tables + figures
