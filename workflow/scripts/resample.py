"""Resample the implied prior and posteriors with one checkpoint (longer paths at the final one)."""

import torch

from lrpfn import families
from lrpfn.checkpoint import load_checkpoint
from lrpfn.config import RunConfig
from lrpfn.implied import model_samples, targets_from_files
from lrpfn.io import write_parquet
from lrpfn.logs import log_to

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    s, inp = snakemake.params.settings, snakemake.input
    ckpt = load_checkpoint(inp.checkpoint, run=snakemake.params.run)
    all_targets = targets_from_files(
        inp.eval_true, inp.eval_pool, snakemake.wildcards.M, s["n_prefixes"], s["prefix_length"]
    )
    # The final checkpoint's paths may be longer (resample.final_path_length).
    run = RunConfig.from_dict(snakemake.params.run)
    final = ckpt.step == run.train.steps
    length = s.get("final_path_length", s["path_length"]) if final else s["path_length"]
    readout = families.of_run(run).readout
    samples = model_samples(ckpt.model, ckpt.bar, all_targets, s["n_paths"], length, s["seed"], readout)
    samples.insert(0, "step", ckpt.step)
    write_parquet(samples, snakemake.output[0])
