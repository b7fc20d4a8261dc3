from lrpfn import priors
from lrpfn.io import read_parquet
from lrpfn.logs import log_to
from lrpfn.plots import in_context_figure, save

with log_to(snakemake.log[0]):
    p = snakemake.params
    fig = in_context_figure(read_parquet(snakemake.input[0]), p.context_length, priors.bayes_name(p.get("prior")))
    save(fig, snakemake.output.png, snakemake.output.pdf)
