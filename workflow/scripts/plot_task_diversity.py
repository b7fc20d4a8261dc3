from lrpfn import priors
from lrpfn.io import read_parquet
from lrpfn.logs import log_to
from lrpfn.plots import save, task_diversity_figure

with log_to(snakemake.log[0]):
    inp, bayes = snakemake.input, priors.bayes_name(snakemake.params.get("prior"))
    fig = task_diversity_figure(read_parquet(inp.summary), read_parquet(inp.thresholds), bayes)
    save(fig, snakemake.output.png, snakemake.output.pdf)
