"""Train one run (pool size, seed); resumes from the run folder's resume state.

The run's identity comes from the rule's params; how it executes (device, save_every,
compile) from the config, which is not a params entry so that changing it reruns nothing.
"""

from pathlib import Path

import torch

from lrpfn.config import RunConfig, execution_config
from lrpfn.logs import log_to
from lrpfn.tasks import read_pool_tasks
from lrpfn.train import train

with log_to(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    run = RunConfig.from_dict(snakemake.params.run)
    pool = None
    if snakemake.input.pool:
        pool = read_pool_tasks(snakemake.input.pool, run.n_params, size=int(run.pool_size))
    written = train(run, pool, Path(snakemake.output.log).parent, execution_config(snakemake.config))
    expected = {Path(p) for p in snakemake.output.checkpoints}
    if set(written) != expected:
        raise RuntimeError(
            f"run wrote checkpoints {sorted(map(str, written))}, workflow expects {sorted(map(str, expected))}"
        )
