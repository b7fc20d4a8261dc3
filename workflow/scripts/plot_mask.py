from lrpfn.logs import log_to
from lrpfn.plots import mask_figure, save

with log_to(snakemake.log[0]):
    save(mask_figure(n_pairs=4), snakemake.output.png, snakemake.output.pdf)
