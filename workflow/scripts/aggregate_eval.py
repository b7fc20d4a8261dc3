"""Stack every evaluation table; average over positions; closeness to ridge and M*."""

import pandas as pd

from lrpfn.io import read_parquet, write_parquet
from lrpfn.logs import log_to
from lrpfn.sweep import closeness, summarise, thresholds

with log_to(snakemake.log[0]):
    inp, out = snakemake.input, snakemake.output
    metrics = pd.concat([read_parquet(p) for p in inp.positions], ignore_index=True)
    sequences = pd.concat([read_parquet(p) for p in inp.sequences], ignore_index=True)
    summary = summarise(metrics)
    verdicts = closeness(sequences)
    write_parquet(metrics, out.metrics)
    write_parquet(summary, out.summary)
    write_parquet(sequences, out.sequences)
    write_parquet(verdicts, out.closeness)
    write_parquet(thresholds(summary, verdicts), out.thresholds)
