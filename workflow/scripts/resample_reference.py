"""Resample every target with the run's exact predictors: the true prior's Bayes predictor,
its moment-matched Gaussian's (when that is another) and the run's pool's, at every path length
the run's checkpoints are resampled with."""

import torch

from lrpfn import families
from lrpfn.exact import distinct
from lrpfn.implied import reference_samples, targets_from_files
from lrpfn.io import write_parquet
from lrpfn.logs import log_to
from lrpfn.tasks import read_run_tasks

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    p, inp, M = snakemake.params, snakemake.input, snakemake.wildcards.M
    s = p.settings
    family = families.from_params(p)
    predictors = distinct(family.references(read_run_tasks(inp.pool, M, family.n_params)))
    all_targets = targets_from_files(inp.eval_true, inp.eval_pool, M, s["n_prefixes"], s["prefix_length"])
    lengths = sorted({s["path_length"], s.get("final_path_length", s["path_length"])})
    reference = reference_samples(predictors, p.dim, all_targets, s["n_paths"], lengths, s["seed"], family.readout)
    write_parquet(reference, snakemake.output[0])
