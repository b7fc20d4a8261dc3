import pandas as pd

from lrpfn import families
from lrpfn.io import read_parquet
from lrpfn.logs import log_to
from lrpfn.plots import save
from lrpfn.plots.resampling import implied_prior_figure
from lrpfn.tasks import read_run_tasks

with log_to(snakemake.log[0]):
    inp, M, p = snakemake.input, snakemake.wildcards.M, snakemake.params
    samples = pd.concat([read_parquet(f) for f in inp.samples], ignore_index=True)
    family = families.from_params(p)
    pool = read_run_tasks(inp.pool, M, family.n_params)
    # A family on features also shows the resampled functions on a grid of inputs.
    functions = family.functions
    functions = None if functions is None else (family.FUNCTION_GRID, functions)
    fig = implied_prior_figure(
        samples,
        read_parquet(inp.reference),
        None if pool is None else pool.tasks.numpy(),
        M,
        p.n_dims,
        p.seed,
        family.prior,
        functions,
    )
    save(fig, snakemake.output.png, snakemake.output.pdf)
