"""Small CPU recipe: train a PFN on the true prior and hold it against the ridge oracle.

D=4, K=16, noise_var=0.25, trained on T_true; then average NLL and MSE/D on 4096 fresh
T_true sequences, model vs the exact Gaussian-prior posterior predictive (ridge). One run
per training seed (three by default); the last lines give each seed, the mean and the
spread, since a single seed's result is partly luck.

    python examples/ridge_recipe.py --out results/recipe
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import torch

from lrpfn.checkpoint import load_checkpoint
from lrpfn.config import ModelConfig, RunConfig, TrainConfig
from lrpfn.evaluate import position_metrics
from lrpfn.families import of_run
from lrpfn.train import train


def recipe(steps: int, batch_size: int = 64, lr: float = 4e-3, n_layers: int = 4, seed: int = 0) -> RunConfig:
    return RunConfig(
        dim=4,
        context_length=16,
        noise_var=0.25,
        pool_size=math.inf,
        seed=seed,
        model=ModelConfig(dim=4, n_buckets=128, d_model=64, n_layers=n_layers, n_heads=4, d_mlp=128),
        train=TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup=0.05, checkpoints=4),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/recipe", help="folder of the runs (one per seed)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=9750)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-sequences", type=int, default=4096)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    gaps, ratios = [], []
    for seed in args.seeds:
        run = recipe(args.steps, args.batch_size, args.lr, args.layers, seed)
        start = time.perf_counter()
        checkpoints = train(run, None, Path(args.out) / f"seed{seed}")
        minutes = (time.perf_counter() - start) / 60

        final = load_checkpoint(checkpoints[-1])
        # An evaluation seed unused by training (whose batches come from generators seeded with run.seed).
        family = of_run(run)  # the true prior N(0, I_D): the run trains on it (M = inf)
        batch = family.eval_set(args.eval_sequences, run.context_length, seed=12345)
        m = position_metrics(final.model, final.bar, batch, family.references()).mean()
        gaps.append(m.nll_model - m.nll_ridge)
        ratios.append(m.mse_model / m.mse_ridge)
        size = final.model.n_parameters()
        print(f"seed {seed}: trained {run.train.steps} steps in {minutes:.1f} min ({size} parameters)")
        print(f"  NLL/position  model {m.nll_model:.4f}  ridge {m.nll_ridge:.4f}  gap {gaps[-1]:+.4f} nats")
        print(f"  MSE/D         model {m.mse_model:.4f}  ridge {m.mse_ridge:.4f}  ratio {ratios[-1]:.3f}")
    seeds = " ".join(map(str, args.seeds))
    print(f"over seeds {seeds}: NLL gap {_spread(gaps, '+.4f')}, MSE/D ratio {_spread(ratios, '.3f')}")


def _spread(values: list[float], fmt: str) -> str:
    """Each value, their mean and (with two or more) their standard deviation."""
    text = f"{' / '.join(format(v, fmt) for v in values)}, mean {format(statistics.fmean(values), fmt)}"
    return text + (f" (sd {statistics.stdev(values):.4f})" if len(values) > 1 else "")


if __name__ == "__main__":
    main()
