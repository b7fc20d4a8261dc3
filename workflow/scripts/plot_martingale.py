from lrpfn.io import read_parquet
from lrpfn.logs import log_to
from lrpfn.plots import save
from lrpfn.plots.premise import premise_figure

with log_to(snakemake.log[0]):
    inp = snakemake.input
    tables = {name: read_parquet(inp[name]) for name in ("martingale", "exchangeability", "coverage")}
    save(premise_figure(**tables), snakemake.output.png, snakemake.output.pdf)
