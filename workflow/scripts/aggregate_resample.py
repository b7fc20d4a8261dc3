"""Stack the resampling statistics of every run; the posterior marginals and the posterior
summary (means over dimensions, prefixes and seeds) from them."""

import pandas as pd

from lrpfn.implied import posterior_marginals, posterior_summary
from lrpfn.io import read_parquet, write_parquet
from lrpfn.logs import log_to

with log_to(snakemake.log[0]):
    stats = pd.concat([read_parquet(p) for p in snakemake.input], ignore_index=True)
    write_parquet(stats, snakemake.output.stats)
    write_parquet(posterior_marginals(stats), snakemake.output.marginals)
    write_parquet(posterior_summary(stats), snakemake.output.summary)
