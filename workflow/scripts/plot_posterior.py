from lrpfn.io import read_parquet
from lrpfn.logs import log_to
from lrpfn.plots import posterior_figure, save

with log_to(snakemake.log[0]):
    save(posterior_figure(read_parquet(snakemake.input.stats)), snakemake.output.png, snakemake.output.pdf)
