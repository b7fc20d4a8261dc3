"""Where every artifact lives, relative to an experiment's results folder.

One home for the path templates: the rules build their inputs and outputs from them, the
default target is :func:`targets`, and the tests check :func:`outputs` — so a renamed or
added artifact is named once. Templates keep Snakemake's wildcards (``{M}``, ``{seed}``,
``{step}``, ``{tasks}``); :func:`fill` sets some of them and leaves the others. Steps in
file names are zero-padded to seven digits (:func:`step_name`). Torch-free: the Snakefile
imports it on every parse.
"""

from __future__ import annotations

import string

from .config import (
    checkpoint_steps,
    coverage_pool_sizes,
    pool_sizes,
    resampled_steps,
    run_seeds,
    shared_checkpoint_steps,
    short_run_config,
)

# tasks
POOL = "tasks/pool_M{M}.parquet"
EVAL_SET = "tasks/eval_{tasks}.parquet"  # tasks: 'true' or 'M<size>'
EVAL_LONG = "tasks/eval_long_{tasks}.parquet"
# training
RUN = "runs/M{M}_seed{seed}"
SHORT_RUN = "short_budget/runs/M{M}_seed{seed}"
CHECKPOINT = "{run}/step_{step}.pt"
TRAIN_LOG = "{run}/log.parquet"
# evaluation
EVAL = "eval/M{M}_seed{seed}/step_{step}.parquet"
EVAL_SEQUENCES = "eval/M{M}_seed{seed}/step_{step}_sequences.parquet"
IN_CONTEXT = "eval/M{M}_seed{seed}/step_{step}_in_context.parquet"
SHORT_EVAL = "short_budget/eval/M{M}_seed{seed}/step_{step}.parquet"
SHORT_EVAL_SEQUENCES = "short_budget/eval/M{M}_seed{seed}/step_{step}_sequences.parquet"
# predictive resampling
RESAMPLE = "resample/M{M}_seed{seed}/step_{step}.parquet"
REFERENCE = "resample/M{M}_reference.parquet"
RESAMPLE_STATS = "resample/M{M}_seed{seed}_stats.parquet"
# predictive densities
PREDICTIVE = "predictive/M{M}_seed{seed}.parquet"
PREDICTIVE_DENSITY = "predictive/M{M}_seed{seed}_density.parquet"
# the premise of predictive resampling: martingale, exchangeability, coverage
MARTINGALE = "premise/M{M}_seed{seed}_martingale.parquet"
EXCHANGEABILITY = "premise/M{M}_seed{seed}_exchangeability.parquet"
COVERAGE = "premise/M{M}_seed{seed}_coverage.parquet"
# what a reader looks at
TABLE = "tables/{name}.parquet"
FIGURE = "figures/{name}.{ext}"

TABLES = [
    "metrics",
    "summary",
    "summary_seeds",
    "sequences",
    "closeness",
    "budget_effect",
    "thresholds",
    "train_log",
    "resample_stats",
    "posterior_marginals",
    "posterior_summary",
    "in_context",
    "in_context_seeds",
    "predictive",
    "martingale",
    "exchangeability",
    "coverage",
    "premise_summary",
]
FIGURES = ["mask", "task_diversity", "losses", "posterior", "in_context", "martingale"]
FIGURES_PER_POOL = ["implied_prior", "posterior_marginals", "predictive_density"]
FIGURE_FORMATS = ("png", "pdf")


class _KeepMissing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, **values) -> str:
    """``template`` with the given fields set and every other field left as a wildcard."""
    return string.Formatter().vformat(template, (), _KeepMissing({k: str(v) for k, v in values.items()}))


def step_name(step: int) -> str:
    return f"{int(step):07d}"


def checkpoint(run_dir: str, step: int | str = "{step}") -> str:
    return fill(CHECKPOINT, run=run_dir, step=step if isinstance(step, str) else step_name(step))


def figures(config: dict) -> list[str]:
    """Every figure name of an experiment (without folder and format)."""
    return FIGURES + [f"{name}_M{m}" for name in FIGURES_PER_POOL for m in pool_sizes(config)]


def targets(config: dict) -> list[str]:
    """The default target, relative to the results folder: every table and every figure."""
    tables = [fill(TABLE, name=name) for name in TABLES]
    return tables + [fill(FIGURE, name=name, ext=ext) for name in figures(config) for ext in FIGURE_FORMATS]


def outputs(config: dict) -> list[str]:
    """Every file the default target makes, relative to the results folder (a completed
    config: :func:`lrpfn.config.prepare`)."""
    sizes = pool_sizes(config)
    steps, last = shared_checkpoint_steps(config), shared_checkpoint_steps(config)[-1]
    finite = [m for m in sizes if m != "inf"]
    files = [fill(POOL, M=m) for m in finite]
    sets = ["true", *(f"M{m}" for m in finite)]
    files += [fill(t, tasks=s) for s in sets for t in (EVAL_SET, EVAL_LONG)]
    short = short_run_config(config, sizes[0], run_seeds(config, sizes[0])[0])
    short_steps = checkpoint_steps(short.train) if short else []
    for m in sizes:
        files.append(fill(REFERENCE, M=m))
        for seed in run_seeds(config, m):
            run, ids = fill(RUN, M=m, seed=seed), {"M": m, "seed": seed}
            files += [fill(TRAIN_LOG, run=run), *(checkpoint(run, s) for s in steps)]
            files += [fill(t, **ids, step=step_name(s)) for s in steps for t in (EVAL, EVAL_SEQUENCES)]
            files.append(fill(IN_CONTEXT, **ids, step=step_name(last)))
            files += [fill(RESAMPLE, **ids, step=step_name(s)) for s in resampled_steps(config)]
            files += [fill(t, **ids) for t in (RESAMPLE_STATS, PREDICTIVE, PREDICTIVE_DENSITY)]
            files += [fill(t, **ids) for t in (MARTINGALE, EXCHANGEABILITY)]
            if m in coverage_pool_sizes(config):
                files.append(fill(COVERAGE, **ids))
            if short and m != "inf":
                short_run = fill(SHORT_RUN, M=m, seed=seed)
                files += [fill(TRAIN_LOG, run=short_run), *(checkpoint(short_run, s) for s in short_steps)]
                files += [fill(t, **ids, step=step_name(short_steps[-1])) for t in (SHORT_EVAL, SHORT_EVAL_SEQUENCES)]
    return files + targets(config)
