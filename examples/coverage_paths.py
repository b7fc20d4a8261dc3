"""How many resampled paths does the coverage read-out need? The exact resampler's coverage of
new tasks' true w at 100, 300 and 1000 paths per task, with the read-out's quantile positions
p (P + 1) beside torch.quantile's (P - 1) p (docs/design.md §13).

    python examples/coverage_paths.py            # the default experiment: D = 4, K = 16

On the default's 1000 new tasks, prefixes of D and K/2 pairs and 16-point paths (one core, about
a minute). A path count is enough where the coverage no longer moves with it.
"""

from __future__ import annotations

import argparse

import torch

from lrpfn import families
from lrpfn.config import TaskFamily
from lrpfn.premise import central_probabilities, interval_coverage
from lrpfn.resample import resample_by_task

LEVELS = [0.5, 0.9]


def quantile_coverage(samples: torch.Tensor, truth: torch.Tensor, levels: list[float]) -> dict[str, torch.Tensor]:
    """:func:`interval_coverage` with torch.quantile's (P - 1) p positions instead."""
    q = central_probabilities(levels).to(samples.dtype)
    bounds = torch.quantile(samples, q, dim=1).transpose(0, 1)  # (T, 2L, D)
    lower, upper = bounds[:, : len(levels)], bounds[:, len(levels) :]
    truth = truth.unsqueeze(1).to(samples.dtype)
    return {"covers": (lower <= truth) & (truth <= upper), "width": upper - lower}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=4)
    parser.add_argument("--context-length", type=int, default=16)
    parser.add_argument("--noise-var", type=float, default=0.125)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--paths", type=int, nargs="+", default=[100, 300, 1000])
    args = parser.parse_args()
    torch.set_num_threads(1)
    family = families.build(TaskFamily(), args.dim, args.noise_var)
    batch = family.eval_set(args.tasks, args.context_length, seed=1000)
    bayes = family.references()["bayes"]
    print("prefix  paths  positions    coverage 50 % / 90 %    width 50 % / 90 %")
    for n in sorted({args.dim, args.context_length // 2}):
        x, y = batch.x[:, :n], batch.y[:, :n]
        for paths in args.paths:
            generator = torch.Generator().manual_seed(0)
            inputs = torch.randn(args.tasks * paths, args.context_length - n, args.dim, generator=generator)
            w_hat = resample_by_task(bayes, inputs, x, y, generator).w_hat.reshape(args.tasks, paths, -1)
            for name, rule in (("p (P + 1)", interval_coverage), ("(P - 1) p", quantile_coverage)):
                out = rule(w_hat, batch.w, LEVELS)
                cover, width = out["covers"].double().mean((0, 2)), out["width"].mean((0, 2))
                values = f"{cover[0]:.4f} / {cover[1]:.4f}      {width[0]:.4f} / {width[1]:.4f}"
                print(f"{n:6d} {paths:6d}  {name}    {values}")


if __name__ == "__main__":
    main()
