from lrpfn.io import read_parquet
from lrpfn.logs import log_to
from lrpfn.plots import predictive_density_figure, save

with log_to(snakemake.log[0]):
    inp = snakemake.input
    fig = predictive_density_figure(
        read_parquet(inp.density), read_parquet(inp.kl), snakemake.wildcards.M, snakemake.params.seed
    )
    save(fig, snakemake.output.png, snakemake.output.pdf)
