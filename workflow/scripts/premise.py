"""Martingale read-out at every resampled checkpoint, exchangeability at the final one."""

import torch

from lrpfn import families
from lrpfn.checkpoint import load_checkpoint
from lrpfn.config import RunConfig
from lrpfn.io import write_parquet
from lrpfn.logs import log_to
from lrpfn.premise import run_premise
from lrpfn.tasks import read_run_eval_sets, read_run_tasks

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    inp, wc, p = snakemake.input, snakemake.wildcards, snakemake.params
    run = RunConfig.from_dict(p.run)
    eval_sets = read_run_eval_sets(inp.eval_true, inp.eval_pool, wc.M)
    references = families.of_run(run).references(read_run_tasks(inp.pool, wc.M, run.n_params))
    checkpoints = [load_checkpoint(path, run=p.run) for path in inp.checkpoints]
    # The final checkpoint's paths may be longer (resample.final_path_length), and so its horizons.
    lengths = {
        ckpt.step: p.lengths.get("final_path_length", p.lengths["path_length"])
        if ckpt.step == run.train.steps
        else p.lengths["path_length"]
        for ckpt in checkpoints
    }
    reference = references["dmmse"] or references["bayes"]
    tables = run_premise(checkpoints, lengths, reference, eval_sets, p.settings)
    for frame, path in zip(tables, (snakemake.output.martingale, snakemake.output.exchangeability), strict=True):
        frame.insert(0, "seed", int(wc.seed))
        frame.insert(0, "pool_size", wc.M)
        write_parquet(frame, path)
