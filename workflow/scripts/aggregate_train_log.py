"""Stack the training logs of every run."""

import pandas as pd

from lrpfn.io import read_parquet, write_parquet
from lrpfn.logs import log_to

with log_to(snakemake.log[0]):
    logs = []
    for path in snakemake.input:
        run = path.rsplit("/", 2)[-2]  # M{M}_seed{seed}
        pool_size, seed = run[1:].split("_seed")
        logs.append(read_parquet(path, columns=["step", "loss", "lr"]).assign(pool_size=pool_size, seed=int(seed)))
    write_parquet(pd.concat(logs, ignore_index=True), snakemake.output[0])
