import pandas as pd

from lrpfn import priors
from lrpfn.io import read_parquet
from lrpfn.logs import log_to
from lrpfn.plots import implied_prior_figure, save
from lrpfn.tasks import read_pool

with log_to(snakemake.log[0]):
    inp, M, p = snakemake.input, snakemake.wildcards.M, snakemake.params
    samples = pd.concat([read_parquet(f) for f in inp.samples], ignore_index=True)
    pool = None if M == "inf" else read_pool(inp.pool, p.dim).numpy()
    prior = priors.of_run(p.get("prior"), p.dim)
    fig = implied_prior_figure(samples, read_parquet(inp.reference), pool, M, p.n_dims, p.seed, prior)
    save(fig, snakemake.output.png, snakemake.output.pdf)
