from lrpfn.config import TaskFamily
from lrpfn.io import read_parquet
from lrpfn.logs import log_to
from lrpfn.plots import save
from lrpfn.plots.predictive import predictive_density_figure

with log_to(snakemake.log[0]):
    inp, p = snakemake.input, snakemake.params
    prior = TaskFamily.from_params(p)
    fig = predictive_density_figure(
        read_parquet(inp.density), read_parquet(inp.kl), snakemake.wildcards.M, p.seed, prior
    )
    save(fig, snakemake.output.png, snakemake.output.pdf)
