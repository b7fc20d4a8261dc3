import os
import sys

# The workflow runs its own library: src/ goes on the path of this process and of every job.
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
os.environ.update(
    PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))
)

# The parse path (every cluster job repeats it) imports the config layer only: no torch.
from lrpfn import layout
from lrpfn.config import (
    checkpoint_steps,
    coverage_pool_sizes,
    execution_config,
    prepare,
    resample_path_lengths,
    pool_sizes,
    premise_steps,
    resampled_steps,
    run_config,
    runs as experiment_runs,
    shared_checkpoint_steps,
    short_run_config,
    task_family,
    trained_length,
)

# The schema's defaults and checks, the defaults that follow the experiment, the checks
# across keys: every error names the key, before any job starts.
prepare(config)

RESULTS = config["results"]
POOL_SIZES = pool_sizes(config)
# The first seed is trained at every pool size: the figures of one run show it.
SEEDS = [int(s) for s in config["seeds"]]
CHECKPOINT_STEPS = shared_checkpoint_steps(config)
RESAMPLE_STEPS = resampled_steps(config)
PREMISE_STEPS = premise_steps(config)
# Trainings, and the pools they read, go before the short read-outs that could fill the cores.
FIRST = 10
# Runs trained to completion on a shorter budget, for the budget-crossing M* (or None).
SHORT = short_run_config(config, POOL_SIZES[0], SEEDS[0])
SHORT_STEPS = checkpoint_steps(SHORT.train) if SHORT else []
EXECUTION = execution_config(config)
# The task family's non-default sections (prior, noise, features), params of the rules that
# draw or score tasks: results of configs without them keep their params (no rerun).
FAMILY = task_family(config)
FAMILY_PARAMS = FAMILY.to_params()
# What drawing tasks needs: the family's sections and, where tasks draw their own noise, its
# prior mean.
DRAW_PARAMS = FAMILY_PARAMS | (
    {} if FAMILY.noise.is_default else {"noise_var": config["noise_var"]}
)


def resample_settings(*keys):
    """The resampling settings a rule reads, and only those (plot_dims reruns no sampler).
    With ``path_length``, the final checkpoint's path length when it is longer: a config
    whose paths all have one length keeps its params."""
    settings = {key: config["resample"][key] for key in keys}
    if "path_length" in keys and len(resample_path_lengths(config)) > 1:
        settings["final_path_length"] = config["resample"]["final_path_length"]
    return settings


def premise_settings(*keys):
    """The premise settings a rule reads, and only those."""
    return {key: config["premise"][key] for key in keys}


def coverage_files():
    """The coverage tables of the runs in premise.coverage_pool_sizes."""
    return [
        path(layout.COVERAGE, M=M, seed=seed)
        for M, seed in runs()
        if M in coverage_pool_sizes(config)
    ]


# Under another family the resampling statistics also read the implied prior's mass near
# zero, with a threshold from the least-squares noise of a path (of each path length).
STATS_FAMILY_PARAMS = (
    FAMILY_PARAMS
    | {"noise_var": config["noise_var"]}
    | resample_settings("path_length")
    if FAMILY_PARAMS
    else {}
)


wildcard_constraints:
    M=r"\d+|inf",
    seed=r"\d+",
    step=r"\d{7}",


def path(template, **values):
    """An artifact's path: a template of lrpfn.layout under the results folder, the given
    wildcards filled in and the others left for Snakemake."""
    return f"{RESULTS}/{layout.fill(template, **values)}"


def run_dir(M="{M}", seed="{seed}"):
    return path(layout.RUN, M=M, seed=seed)


def short_run_dir(M="{M}", seed="{seed}"):
    return path(layout.SHORT_RUN, M=M, seed=seed)


def run_identity(wildcards):
    """The run's science (RunConfig as a dict): the only training settings a rule may
    take as params, so that execution settings (device, threads, ...) rerun nothing."""
    return run_config(config, wildcards.M, wildcards.seed).to_dict()


def short_run_identity(wildcards):
    return short_run_config(config, wildcards.M, wildcards.seed).to_dict()


def pool_file(wildcards):
    """The run's pool table, or nothing for the true prior."""
    if wildcards.M == "inf":
        return []
    return path(layout.POOL, M=wildcards.M)


def pool_eval_file(wildcards, template=layout.EVAL_SET):
    """The evaluation set of the run's own tasks (T_M; T_true for M = inf); the template
    layout.EVAL_LONG names the longer sequences of the in-context curves."""
    return path(template, tasks="true" if wildcards.M == "inf" else f"M{wildcards.M}")


def runs():
    return experiment_runs(config)


def step_name(step):
    return layout.step_name(step)


def per_run(template, steps=(None,), finite_only=False):
    """``template`` for every run (and every step of ``steps``)."""
    return [
        path(
            template,
            M=M,
            seed=seed,
            **({} if step is None else {"step": step_name(step)}),
        )
        for M, seed in runs()
        if not (finite_only and M == "inf")
        for step in steps
    ]


def short_eval_files():
    """Per-sequence tables of the shorter-budget runs' final checkpoints (none without them)."""
    return (
        per_run(layout.SHORT_EVAL_SEQUENCES, SHORT_STEPS[-1:], finite_only=True)
        if SHORT
        else []
    )


def resample_files(M, seed):
    return [
        path(layout.RESAMPLE, M=M, seed=seed, step=step_name(step))
        for step in RESAMPLE_STEPS
    ]


def train_logs():
    return [layout.fill(layout.TRAIN_LOG, run=run_dir(M, seed)) for M, seed in runs()]


def all_targets():
    return [f"{RESULTS}/{target}" for target in layout.targets(config)]
