from lrpfn.config import TaskFamily
from lrpfn.io import read_parquet
from lrpfn.logs import log_to
from lrpfn.plots import save
from lrpfn.plots.sweep import in_context_figure

with log_to(snakemake.log[0]):
    p = snakemake.params
    prior = TaskFamily.from_params(p)
    fig = in_context_figure(read_parquet(snakemake.input[0]), p.context_length, prior, p.max_length)
    save(fig, snakemake.output.png, snakemake.output.pdf)
