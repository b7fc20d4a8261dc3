"""The PFN's predictive density at fixed prompts against the exact ones, at every checkpoint."""

import torch

from lrpfn import families
from lrpfn.checkpoint import load_checkpoint
from lrpfn.config import RunConfig
from lrpfn.io import write_parquet
from lrpfn.logs import log_to
from lrpfn.predictive import compare, prompts
from lrpfn.tasks import read_run_eval_sets, read_run_tasks

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    inp, wc, p = snakemake.input, snakemake.wildcards, snakemake.params
    run = RunConfig.from_dict(p.run)
    eval_sets = read_run_eval_sets(inp.eval_true, inp.eval_pool, wc.M)
    all_prompts = prompts(eval_sets, p.settings["n_prompts"], p.settings["prompt_lengths"])
    predictors = families.of_run(run).references(read_run_tasks(inp.pool, wc.M, run.n_params))
    checkpoints = [load_checkpoint(path, run=p.run) for path in inp.checkpoints]
    models = {ckpt.step: ckpt.model for ckpt in checkpoints}
    # Every checkpoint of a run holds the borders of its run config: one bar serves them all.
    tables = compare(models, checkpoints[-1].bar, all_prompts, predictors)
    for frame, path in zip(tables, (snakemake.output.kl, snakemake.output.density), strict=True):
        frame.insert(0, "seed", int(wc.seed))
        frame.insert(0, "pool_size", wc.M)
        write_parquet(frame, path)
