"""Stack every evaluation table; average over positions and over seeds; closeness, budget effect and M*."""

import pandas as pd

from lrpfn.evaluate import metric_columns
from lrpfn.io import read_parquet, write_parquet
from lrpfn.logs import log_to
from lrpfn.sweep import over_seeds, summarise, sweep_tables

with log_to(snakemake.log[0]):
    inp, out = snakemake.input, snakemake.output
    metrics = pd.concat([read_parquet(p) for p in inp.positions], ignore_index=True)
    sequences = pd.concat([read_parquet(p) for p in inp.sequences], ignore_index=True)
    short = pd.concat([read_parquet(p) for p in inp.short], ignore_index=True) if inp.short else None
    summary = summarise(metrics)
    write_parquet(metrics, out.metrics)
    write_parquet(summary, out.summary)
    write_parquet(over_seeds(summary, ["pool_size", "step", "tasks"], metric_columns(metrics)), out.summary_seeds)
    write_parquet(sequences, out.sequences)
    for name, table in sweep_tables(sequences, short).items():
        write_parquet(table, out[name])
