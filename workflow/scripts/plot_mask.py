from lrpfn.logs import log_to
from lrpfn.plots import save
from lrpfn.plots.model import mask_figure

with log_to(snakemake.log[0]):
    save(mask_figure(n_pairs=4), snakemake.output.png, snakemake.output.pdf)
