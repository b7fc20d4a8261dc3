"""The PFN's predictive density at fixed prompts against the exact ones, at every checkpoint."""

import pandas as pd
import torch

from lrpfn.checkpoint import load_checkpoint
from lrpfn.io import write_parquet
from lrpfn.logs import log_to
from lrpfn.predictive import compare, prompts
from lrpfn.tasks import read_eval_set, read_pool

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    inp, wc, p = snakemake.input, snakemake.wildcards, snakemake.params
    eval_sets = {"true": read_eval_set(inp.eval_true)}
    if wc.M != "inf":
        eval_sets["pool"] = read_eval_set(inp.eval_pool)
    all_prompts = prompts(eval_sets, p.settings["n_prompts"], p.settings["prompt_lengths"])
    tables, densities = [], []
    for path in inp.checkpoints:
        ckpt = load_checkpoint(path, run=p.run)
        pool = None if wc.M == "inf" else read_pool(inp.pool, ckpt.model.config.dim, size=int(wc.M))
        table, density = compare(ckpt.model, ckpt.bar, all_prompts, pool, p.noise_var)
        tables.append(table.assign(step=ckpt.step))
        densities.append(density.assign(step=ckpt.step))
    for frames, path in ((tables, snakemake.output.kl), (densities, snakemake.output.density)):
        frame = pd.concat(frames, ignore_index=True)
        frame = frame[["step", *(c for c in frame.columns if c != "step")]]
        frame.insert(0, "seed", int(wc.seed))
        frame.insert(0, "pool_size", wc.M)
        write_parquet(frame, path)
