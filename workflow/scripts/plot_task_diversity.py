from lrpfn.config import TaskFamily
from lrpfn.io import read_parquet
from lrpfn.logs import log_to
from lrpfn.plots import save
from lrpfn.plots.sweep import task_diversity_figure

with log_to(snakemake.log[0]):
    inp, prior = snakemake.input, TaskFamily.from_params(snakemake.params)
    fig = task_diversity_figure(read_parquet(inp.seeds), read_parquet(inp.thresholds), prior)
    save(fig, snakemake.output.png, snakemake.output.pdf)
