"""Write pool M: the first M rows of the seeded master task draw."""

from lrpfn.io import write_parquet
from lrpfn.logs import log_to
from lrpfn.tasks import master_pool, pool_to_frame

with log_to(snakemake.log[0]):
    pool = master_pool(int(snakemake.wildcards.M), snakemake.params.dim, snakemake.params.seed)
    write_parquet(pool_to_frame(pool), snakemake.output[0])
