"""Per-position metrics of one checkpoint on T_M and T_true."""

from lrpfn.checkpoint import load_checkpoint
from lrpfn.evaluate import evaluate_checkpoint
from lrpfn.io import read_parquet, write_parquet
from lrpfn.logs import log_to
from lrpfn.tasks import frame_to_batch, frame_to_pool

with log_to(snakemake.log[0]):
    inp, wc = snakemake.input, snakemake.wildcards
    ckpt = load_checkpoint(inp.checkpoint)
    if int(wc.step) != ckpt.step:
        raise ValueError(f"{inp.checkpoint}: holds step {ckpt.step}, file name says {int(wc.step)}")
    dim = ckpt.model.config.dim
    pool = None
    if inp.pool:
        pool = frame_to_pool(read_parquet(inp.pool), dim, size=int(wc.M), source=inp.pool)
    eval_sets = {"pool": frame_to_batch(read_parquet(inp.eval_pool)), "true": frame_to_batch(read_parquet(inp.eval_true))}
    for tasks, batch in eval_sets.items():
        if batch.x.shape[-1] != dim:
            raise ValueError(f"{inp['eval_' + tasks]}: sequences of dimension {batch.x.shape[-1]}, checkpoint has {dim}")
    table = evaluate_checkpoint(ckpt.model, ckpt.bar, eval_sets, pool, snakemake.params.noise_var)
    table.insert(0, "step", ckpt.step)
    table.insert(0, "seed", int(wc.seed))
    table.insert(0, "pool_size", wc.M)
    write_parquet(table, snakemake.output[0])
