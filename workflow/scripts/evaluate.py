"""Metrics of one checkpoint on T_M and T_true: per position, and per sequence (or, for the
in-context curves on longer sequences, per position only)."""

from lrpfn import families
from lrpfn.checkpoint import load_checkpoint
from lrpfn.config import RunConfig
from lrpfn.evaluate import evaluate_checkpoint
from lrpfn.io import write_parquet
from lrpfn.logs import log_to
from lrpfn.tasks import read_eval_set, read_run_tasks

with log_to(snakemake.log[0]):
    inp, wc, p = snakemake.input, snakemake.wildcards, snakemake.params
    ckpt = load_checkpoint(inp.checkpoint, run=p.run)
    run = RunConfig.from_dict(p.run)
    if int(wc.step) != ckpt.step:
        raise ValueError(f"{inp.checkpoint}: holds step {ckpt.step}, file name says {int(wc.step)}")
    dim = ckpt.model.config.dim
    eval_sets = {"pool": read_eval_set(inp.eval_pool), "true": read_eval_set(inp.eval_true)}
    for tasks, batch in eval_sets.items():
        if batch.x.shape[-1] != dim:
            raise ValueError(
                f"{inp['eval_' + tasks]}: sequences of dimension {batch.x.shape[-1]}, checkpoint has {dim}"
            )
    family = families.of_run(run)
    predictors = family.references(read_run_tasks(inp.pool, wc.M, family.n_params)) | family.extra_references()
    positions, sequences = evaluate_checkpoint(ckpt.model, ckpt.bar, eval_sets, predictors, family.normaliser)
    tables = {"positions": positions, "sequences": sequences}
    for name, path in snakemake.output.items():  # the in-context rule writes positions only
        table = tables[name]
        if getattr(p, "in_context", False):
            # Its sequences run past the trained lengths: positions from max_length on were never trained on.
            table.insert(table.columns.get_loc("position") + 1, "extrapolated", table.position >= run.max_length)
        table.insert(0, "step", ckpt.step)
        table.insert(0, "seed", int(wc.seed))
        table.insert(0, "pool_size", wc.M)
        write_parquet(table, path)
