"""Write a fixed evaluation set of T_M (given its pool) or T_true (the configured prior)."""

from lrpfn import priors
from lrpfn.io import write_parquet
from lrpfn.logs import log_to
from lrpfn.tasks import batch_to_frame, eval_set, read_pool

with log_to(snakemake.log[0]):
    p = snakemake.params
    pool = None
    if snakemake.input.pool:
        path = snakemake.input.pool[0] if isinstance(snakemake.input.pool, list) else snakemake.input.pool
        pool = read_pool(path, p.dim)
    prior = priors.of_run(p.get("prior"), p.dim)
    batch = eval_set(p.n_sequences, p.context_length, p.dim, p.noise_var, pool, p.seed, prior)
    write_parquet(batch_to_frame(batch), snakemake.output[0])
