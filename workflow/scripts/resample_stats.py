"""Compare one run's resampled w_hat, checkpoint by checkpoint, with the exact references."""

import pandas as pd

from lrpfn import families
from lrpfn.implied import near_zero_threshold, statistics, targets_from_files
from lrpfn.io import read_parquet, write_parquet
from lrpfn.logs import log_to
from lrpfn.tasks import read_run_tasks

with log_to(snakemake.log[0]):
    p, inp, wc = snakemake.params, snakemake.input, snakemake.wildcards
    s = p.settings
    family = families.from_params(p)
    pool = read_run_tasks(inp.pool, wc.M, family.n_params)
    all_targets = targets_from_files(inp.eval_true, inp.eval_pool, wc.M, s["n_prefixes"], s["prefix_length"])
    samples = pd.concat([read_parquet(f) for f in inp.samples], ignore_index=True)
    # Under a prior with an atom at zero (a spike) the implied prior's mass near zero is read out too.
    near_zero = None
    if family.prior.has_atom_at_zero:
        lengths = {p.path_length, p.get("final_path_length", p.path_length)}
        near_zero = {n: near_zero_threshold(p.noise_var, n, family.n_params) for n in lengths}
    tasks = None if pool is None else pool.tasks
    table = statistics(samples, read_parquet(inp.reference), all_targets, tasks, near_zero, family.functions)
    table.insert(0, "seed", int(wc.seed))
    table.insert(0, "pool_size", wc.M)
    write_parquet(table, snakemake.output[0])
