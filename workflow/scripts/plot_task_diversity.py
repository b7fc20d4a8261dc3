from lrpfn.io import read_parquet
from lrpfn.logs import log_to
from lrpfn.plots import save, task_diversity_figure

with log_to(snakemake.log[0]):
    fig = task_diversity_figure(read_parquet(snakemake.input.summary), read_parquet(snakemake.input.thresholds))
    save(fig, snakemake.output.png, snakemake.output.pdf)
