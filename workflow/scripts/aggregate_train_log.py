"""Stack the training logs of every run, each with its run's pool size and seed (from the
rule) and its smoothed loss."""

import pandas as pd

from lrpfn.io import read_parquet, write_parquet
from lrpfn.logs import log_to
from lrpfn.sweep import smooth_loss

with log_to(snakemake.log[0]):
    logs = []
    for path, run in zip(snakemake.input, snakemake.params.runs, strict=True):
        log = read_parquet(path, columns=["step", "loss", "lr"])
        logs.append(log.assign(pool_size=run["pool_size"], seed=int(run["seed"]), loss_smooth=smooth_loss(log)))
    write_parquet(pd.concat(logs, ignore_index=True), snakemake.output[0])
