"""Coverage of new tasks' true w by the final checkpoint's resampled posteriors."""

import functools

import torch

from lrpfn import families
from lrpfn.checkpoint import load_checkpoint
from lrpfn.config import RunConfig
from lrpfn.io import write_parquet
from lrpfn.logs import log_to
from lrpfn.premise import coverage_table
from lrpfn.resample import resample_by_task, resample_model
from lrpfn.tasks import read_eval_set, read_run_tasks

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    inp, wc, p = snakemake.input, snakemake.wildcards, snakemake.params
    run = RunConfig.from_dict(p.run)
    family = families.of_run(run)
    references = family.references(read_run_tasks(inp.pool, wc.M, run.n_params))
    ckpt = load_checkpoint(inp.checkpoint, run=p.run)
    samplers = {
        "model": functools.partial(resample_model, ckpt.model, ckpt.bar),
        "reference": functools.partial(resample_by_task, references["dmmse"] or references["bayes"]),
    }
    table = coverage_table(
        samplers,
        references["bayes"],
        read_eval_set(inp.eval_true),
        p.settings,
        p.path_length,
        p.settings["seed"],
        family.readout,
    )
    table.insert(0, "step", ckpt.step)
    table.insert(0, "seed", int(wc.seed))
    table.insert(0, "pool_size", wc.M)
    write_parquet(table, snakemake.output[0])
