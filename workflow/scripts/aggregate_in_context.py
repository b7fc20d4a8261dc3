"""Stack the in-context curves (final checkpoint, positions past the trained length) of every run."""

import pandas as pd

from lrpfn.io import read_parquet, write_parquet
from lrpfn.logs import log_to

with log_to(snakemake.log[0]):
    tables = [read_parquet(path) for path in snakemake.input]
    write_parquet(pd.concat(tables, ignore_index=True), snakemake.output[0])
