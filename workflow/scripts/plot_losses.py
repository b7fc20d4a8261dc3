from lrpfn.io import read_parquet
from lrpfn.logs import log_to
from lrpfn.plots import save
from lrpfn.plots.sweep import losses_figure

with log_to(snakemake.log[0]):
    fig = losses_figure(read_parquet(snakemake.input.train_log), read_parquet(snakemake.input.seeds))
    save(fig, snakemake.output.png, snakemake.output.pdf)
