import os
import sys

from snakemake.utils import validate

# The workflow runs its own library: src/ goes on the path of this process and of every job.
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
os.environ.update(
    PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
)

from lrpfn.config import check_experiment, finite_pool_sizes, pool_sizes, run_config
from lrpfn.train import checkpoint_name, checkpoint_steps

validate(config, "../schemas/config.schema.yaml")
check_experiment(config)

RESULTS = config["results"]
POOL_SIZES = pool_sizes(config)
SEEDS = [int(s) for s in config["seeds"]]
# Checkpoint steps are shared by every run (overrides cannot change steps or checkpoints).
CHECKPOINT_STEPS = checkpoint_steps(run_config(config, POOL_SIZES[0], SEEDS[0]).train)
TRAIN_DEVICE = config["train"].get("device", "auto")


wildcard_constraints:
    M=r"\d+|inf",
    seed=r"\d+",
    step=r"\d{7}",


def run_dir(M="{M}", seed="{seed}"):
    return f"{RESULTS}/runs/M{M}_seed{seed}"


def pool_file(wildcards):
    """The run's pool table, or nothing for the true prior."""
    if wildcards.M == "inf":
        return []
    return f"{RESULTS}/tasks/pool_M{wildcards.M}.parquet"


def pool_eval_file(wildcards):
    """The evaluation set of the run's own tasks (T_M; T_true for M = inf)."""
    if wildcards.M == "inf":
        return f"{RESULTS}/tasks/eval_true.parquet"
    return f"{RESULTS}/tasks/eval_M{wildcards.M}.parquet"


def eval_files():
    return [
        f"{RESULTS}/eval/M{M}_seed{seed}/step_{step:07d}.parquet"
        for M in POOL_SIZES
        for seed in SEEDS
        for step in CHECKPOINT_STEPS
    ]


RESAMPLE_STEPS = CHECKPOINT_STEPS[-config["resample"]["checkpoints"] :]


def resample_files(M, seed):
    return [
        f"{RESULTS}/resample/M{M}_seed{seed}/step_{step:07d}.parquet"
        for step in RESAMPLE_STEPS
    ]


def resample_stats_files():
    return [
        f"{RESULTS}/resample/M{M}_seed{seed}_stats.parquet"
        for M in POOL_SIZES
        for seed in SEEDS
    ]


def train_logs():
    return [f"{run_dir(M, seed)}/log.parquet" for M in POOL_SIZES for seed in SEEDS]


FIGURES = ["mask", "task_diversity", "losses", "posterior"] + [
    f"implied_prior_M{M}" for M in POOL_SIZES
]


def all_targets():
    tables = [
        f"{RESULTS}/tables/{name}.parquet"
        for name in ("metrics", "summary", "thresholds", "train_log", "resample_stats")
    ]
    figures = [
        f"{RESULTS}/figures/{name}.{ext}" for name in FIGURES for ext in ("png", "pdf")
    ]
    return tables + figures
