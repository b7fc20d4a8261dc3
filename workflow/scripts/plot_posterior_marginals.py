import pandas as pd

from lrpfn.config import TaskFamily
from lrpfn.io import read_parquet
from lrpfn.logs import log_to
from lrpfn.plots import save
from lrpfn.plots.resampling import posterior_marginals_figure
from lrpfn.tasks import read_eval_set

with log_to(snakemake.log[0]):
    inp, M, p = snakemake.input, snakemake.wildcards.M, snakemake.params
    samples = pd.concat([read_parquet(f) for f in inp.samples], ignore_index=True)
    # The task behind each figure's prefix: sequence 0 of each evaluation set.
    true_w = {"true": read_eval_set(inp.eval_true).w[0].numpy(), "pool": read_eval_set(inp.eval_pool).w[0].numpy()}
    prior = TaskFamily.from_params(p)
    fig = posterior_marginals_figure(samples, read_parquet(inp.reference), true_w, M, p.n_dims, p.seed, prior)
    save(fig, snakemake.output.png, snakemake.output.pdf)
