"""Write a fixed evaluation set of T_M (given its pool) or T_true (the configured prior)."""

from lrpfn import families
from lrpfn.io import write_parquet
from lrpfn.logs import log_to
from lrpfn.tasks import batch_to_frame, read_pool_tasks

with log_to(snakemake.log[0]):
    p = snakemake.params
    family = families.from_params(p)
    pool = None
    if snakemake.input.pool:  # a path for T_M, an empty list for T_true
        pool = read_pool_tasks(snakemake.input.pool, family.n_params)
    batch = family.eval_set(p.n_sequences, p.context_length, p.seed, pool)
    write_parquet(batch_to_frame(batch), snakemake.output[0])
