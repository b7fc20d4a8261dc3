"""Metrics of one checkpoint on T_M and T_true: per position, and per sequence."""

from lrpfn.checkpoint import load_checkpoint
from lrpfn.evaluate import evaluate_checkpoint
from lrpfn.io import write_parquet
from lrpfn.logs import log_to
from lrpfn.tasks import read_eval_set, read_pool

with log_to(snakemake.log[0]):
    inp, wc = snakemake.input, snakemake.wildcards
    ckpt = load_checkpoint(inp.checkpoint, run=snakemake.params.run)
    if int(wc.step) != ckpt.step:
        raise ValueError(f"{inp.checkpoint}: holds step {ckpt.step}, file name says {int(wc.step)}")
    dim = ckpt.model.config.dim
    pool = None
    if inp.pool:
        pool = read_pool(inp.pool, dim, size=int(wc.M))
    eval_sets = {"pool": read_eval_set(inp.eval_pool), "true": read_eval_set(inp.eval_true)}
    for tasks, batch in eval_sets.items():
        if batch.x.shape[-1] != dim:
            raise ValueError(
                f"{inp['eval_' + tasks]}: sequences of dimension {batch.x.shape[-1]}, checkpoint has {dim}"
            )
    tables = evaluate_checkpoint(ckpt.model, ckpt.bar, eval_sets, pool, snakemake.params.noise_var)
    for table, path in zip(tables, (snakemake.output.positions, snakemake.output.sequences), strict=True):
        table.insert(0, "step", ckpt.step)
        table.insert(0, "seed", int(wc.seed))
        table.insert(0, "pool_size", wc.M)
        write_parquet(table, path)
