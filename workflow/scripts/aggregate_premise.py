"""Stack the premise read-outs of every run; one summary row per run."""

import pandas as pd

from lrpfn.io import read_parquet, write_parquet
from lrpfn.logs import log_to
from lrpfn.premise import premise_summary

with log_to(snakemake.log[0]):
    inp, out = snakemake.input, snakemake.output
    tables = {
        name: pd.concat([read_parquet(p) for p in inp[name]], ignore_index=True) if inp[name] else pd.DataFrame()
        for name in ("martingale", "exchangeability", "coverage")
    }
    for name, table in tables.items():
        write_parquet(table, out[name])
    write_parquet(premise_summary(**tables), out.summary)
