"""Stack every evaluation table and training log; average over positions; estimate M*."""

import pandas as pd

from lrpfn.io import read_parquet, write_parquet
from lrpfn.logs import log_to
from lrpfn.sweep import summarise, thresholds

with log_to(snakemake.log[0]):
    metrics = pd.concat([read_parquet(p) for p in snakemake.input.evals], ignore_index=True)
    logs = []
    for path in snakemake.input.logs:
        run = path.rsplit("/", 2)[-2]  # M{M}_seed{seed}
        pool_size, seed = run[1:].split("_seed")
        logs.append(read_parquet(path, columns=["step", "loss", "lr"]).assign(pool_size=pool_size, seed=int(seed)))
    summary = summarise(metrics)
    write_parquet(metrics, snakemake.output.metrics)
    write_parquet(summary, snakemake.output.summary)
    write_parquet(thresholds(summary), snakemake.output.thresholds)
    write_parquet(pd.concat(logs, ignore_index=True), snakemake.output.train_log)
    resample = pd.concat([read_parquet(p) for p in snakemake.input.resample_stats], ignore_index=True)
    write_parquet(resample, snakemake.output.resample_stats)
