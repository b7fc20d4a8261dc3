from lrpfn.config import TaskFamily
from lrpfn.io import read_parquet
from lrpfn.logs import log_to
from lrpfn.plots import save
from lrpfn.plots.resampling import posterior_figure

with log_to(snakemake.log[0]):
    prior = TaskFamily.from_params(snakemake.params)
    save(posterior_figure(read_parquet(snakemake.input.summary), prior), snakemake.output.png, snakemake.output.pdf)
