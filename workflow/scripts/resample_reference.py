"""Resample every target with the exact posterior predictives: the Gaussian prior, the true
prior (when it is not N(0, I)) and the run's pool."""

import torch

from lrpfn import priors
from lrpfn.implied import reference_samples, targets_from_files
from lrpfn.io import write_parquet
from lrpfn.logs import log_to
from lrpfn.tasks import read_pool

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    p, inp, M = snakemake.params, snakemake.input, snakemake.wildcards.M
    s = p.settings
    pool = None if M == "inf" else read_pool(inp.pool, p.dim, size=int(M))
    prior = priors.of_run(p.get("prior"), p.dim)
    all_targets = targets_from_files(inp.eval_true, inp.eval_pool, M, s["n_prefixes"], s["prefix_length"])
    reference = reference_samples(
        pool, p.noise_var, p.dim, all_targets, s["n_paths"], s["path_length"], s["seed"], prior
    )
    write_parquet(reference, snakemake.output[0])
