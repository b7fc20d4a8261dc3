from lrpfn.io import read_parquet
from lrpfn.logs import log_to
from lrpfn.plots import in_context_figure, save

with log_to(snakemake.log[0]):
    fig = in_context_figure(read_parquet(snakemake.input[0]), snakemake.params.context_length)
    save(fig, snakemake.output.png, snakemake.output.pdf)
