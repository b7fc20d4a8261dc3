"""Write pool M: the first M rows of the seeded master task draw from the true prior."""

from lrpfn import priors
from lrpfn.io import write_parquet
from lrpfn.logs import log_to
from lrpfn.tasks import master_pool, pool_to_frame

with log_to(snakemake.log[0]):
    p = snakemake.params
    prior = priors.of_run(p.get("prior"), p.dim)
    pool = master_pool(int(snakemake.wildcards.M), p.dim, p.seed, prior)
    write_parquet(pool_to_frame(pool), snakemake.output[0])
