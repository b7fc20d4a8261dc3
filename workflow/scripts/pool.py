"""Write pool M: the first M rows of the seeded master task draw from the true prior."""

from lrpfn import priors
from lrpfn.config import PriorConfig
from lrpfn.io import write_parquet
from lrpfn.logs import log_to
from lrpfn.tasks import master_pool, pool_to_frame

with log_to(snakemake.log[0]):
    p = snakemake.params
    prior = priors.build(PriorConfig.from_dict(p.get("prior")), p.dim)
    write_parquet(pool_to_frame(master_pool(int(snakemake.wildcards.M), p.seed, prior)), snakemake.output[0])
