from lrpfn import priors
from lrpfn.io import read_parquet
from lrpfn.logs import log_to
from lrpfn.plots import posterior_figure, save

with log_to(snakemake.log[0]):
    fig = posterior_figure(read_parquet(snakemake.input.stats), priors.bayes_name(snakemake.params.get("prior")))
    save(fig, snakemake.output.png, snakemake.output.pdf)
