"""Stack the predictive-density comparisons (KL per prompt and checkpoint) of every run."""

import pandas as pd

from lrpfn.io import read_parquet, write_parquet
from lrpfn.logs import log_to

with log_to(snakemake.log[0]):
    write_parquet(pd.concat([read_parquet(p) for p in snakemake.input], ignore_index=True), snakemake.output[0])
