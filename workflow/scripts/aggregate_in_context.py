"""Stack the in-context curves (final checkpoint, positions past the trained length) of every
run, and their means over seeds."""

import pandas as pd

from lrpfn.evaluate import metric_columns
from lrpfn.io import read_parquet, write_parquet
from lrpfn.logs import log_to
from lrpfn.sweep import over_seeds

with log_to(snakemake.log[0]):
    table = pd.concat([read_parquet(path) for path in snakemake.input], ignore_index=True)
    write_parquet(table, snakemake.output.table)
    write_parquet(over_seeds(table, ["pool_size", "tasks", "position"], metric_columns(table)), snakemake.output.seeds)
