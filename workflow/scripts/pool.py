"""Write pool M: the first M rows of the seeded master task draw from the true prior."""

from lrpfn import families
from lrpfn.io import write_parquet
from lrpfn.logs import log_to
from lrpfn.tasks import pool_to_frame

with log_to(snakemake.log[0]):
    p = snakemake.params
    pool = families.from_params(p).master_pool(int(snakemake.wildcards.M), p.seed)
    write_parquet(pool_to_frame(pool.tasks, pool.noise_var), snakemake.output[0])
