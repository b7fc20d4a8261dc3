"""The output head's floor on an experiment's true prior, without training anything.

    python examples/head_floor.py                         # config.yaml, its head
    python examples/head_floor.py --heads bar location_scale --buckets 128 256
    python examples/head_floor.py --heads location_scale --spreads 1 2
    python examples/head_floor.py --config configs/sparse.yaml --length 64

At every position of the experiment's longer evaluation set (``eval.extrapolate_to``
positions, drawn as the workflow draws ``tasks/eval_long_true.parquet``, or ``--length``), the
true prior's exact predictive is turned into its KL-best approximation by the head
(:func:`lrpfn.predictive.head_floor`). Prints, per head and number of buckets, its MSE/D as a
ratio to the exact predictor's at chosen positions, the largest ratio over all positions, and
its NLL gap averaged over the trained positions, averaged over all of them and at its largest:
where an NLL-trained PFN with this head is headed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from lrpfn import priors
from lrpfn.buckets import HEADS, SPREAD, LocationScaleBar, build_head, prior_scale, standard_borders
from lrpfn.config import prepare, run_config
from lrpfn.predictive import head_floor
from lrpfn.tasks import eval_set


def overlay(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = overlay(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="an overlay on config.yaml (default: config.yaml alone)")
    parser.add_argument("--buckets", type=int, nargs="+", help="bucket counts (default: the config's)")
    parser.add_argument("--heads", nargs="+", choices=HEADS, help="heads (default: the config's)")
    parser.add_argument(
        "--spreads", type=float, nargs="+", default=[SPREAD],
        help="location_scale: standardised borders at quantiles of N(0, spread^2) (default: the head's)",
    )  # fmt: skip
    parser.add_argument("--length", type=int, help="positions per sequence (default: eval.extrapolate_to)")
    parser.add_argument("--positions", type=int, nargs="+", help="positions to print (default: K/2, K-1, K, last)")
    args = parser.parse_args(argv)
    config = yaml.safe_load(Path("config.yaml").read_text())
    if args.config:
        config = overlay(config, yaml.safe_load(Path(args.config).read_text()))
    config = prepare(config)
    run = run_config(config, "inf", config["seeds"][0])
    prior = priors.build(run.prior, run.dim)
    predictor = prior.predictor(run.noise_var)
    k, length = run.context_length, args.length or config["eval"]["extrapolate_to"]
    positions = args.positions or sorted({k // 2, k - 1, k, length - 1})
    batch = eval_set(config["eval"]["n_sequences"], length, run.noise_var, prior, config["eval"]["seed"])
    exact_mean, exact_nll = predictor.score_sequences(batch.x, batch.y)
    target = batch.target.double()
    exact_mse = ((exact_mean - target) ** 2).mean(0)
    print(f"# {args.config or 'config.yaml'}: D={run.dim}, K={k}, {batch.x.shape[0]} sequences of {length} positions")
    heads = []
    for kind in args.heads or [run.model.head]:
        for n in args.buckets or [run.model.n_buckets]:
            if kind == "bar":
                heads.append((f"bar, {n} buckets", build_head(kind, n, run.noise_var, prior, seed=run.border_seed)))
                continue
            unit = prior_scale(run.noise_var, prior, seed=run.border_seed)
            for spread in args.spreads:
                name = f"location_scale (spread {spread:g}), {n} buckets"
                heads.append((name, LocationScaleBar(standard_borders(n, spread), unit)))
    for name, head in heads:
        mean, nll = head_floor(head, predictor, batch.x, batch.y)
        ratio = ((mean - target) ** 2).mean(0) / exact_mse
        gap = (nll - exact_nll).mean(0)
        at = ", ".join(f"{i}: {ratio[i]:.3f}x" for i in positions)
        print(
            f"{name}: MSE/D ratio at positions {at}, at most {ratio.max():.3f}x; NLL gap "
            f"{gap[:k].mean():.4f} nats over 0..{k - 1}, {gap.mean():.4f} over 0..{length - 1}, "
            f"at most {gap.max():.4f}"
        )


if __name__ == "__main__":
    main()
