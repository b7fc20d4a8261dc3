from lrpfn import priors
from lrpfn.io import read_parquet
from lrpfn.logs import log_to
from lrpfn.plots import predictive_density_figure, save

with log_to(snakemake.log[0]):
    inp, p = snakemake.input, snakemake.params
    bayes = priors.bayes_name(p.get("prior"))
    fig = predictive_density_figure(
        read_parquet(inp.density), read_parquet(inp.kl), snakemake.wildcards.M, p.seed, bayes
    )
    save(fig, snakemake.output.png, snakemake.output.pdf)
