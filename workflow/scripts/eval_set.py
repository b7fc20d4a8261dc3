"""Write a fixed evaluation set of T_M (given its pool) or T_true (the configured prior)."""

from lrpfn import priors
from lrpfn.config import PriorConfig
from lrpfn.io import write_parquet
from lrpfn.logs import log_to
from lrpfn.tasks import batch_to_frame, eval_set, read_pool

with log_to(snakemake.log[0]):
    p = snakemake.params
    if snakemake.input.pool:  # a path for T_M, an empty list for T_true
        tasks = priors.Pool(read_pool(snakemake.input.pool, p.dim))
    else:
        tasks = priors.build(PriorConfig.from_dict(p.get("prior")), p.dim)
    batch = eval_set(p.n_sequences, p.context_length, p.noise_var, tasks, p.seed)
    write_parquet(batch_to_frame(batch), snakemake.output[0])
