"""How close the M = inf PFN is to exact Bayes, per seed and as mean ± sd over seeds.

    python examples/fidelity.py results/default                  # position ranges 0..K-1, K..L-1, 0..L-1, L..2L-1
    python examples/fidelity.py results/default --ranges 0:16 16:64
    python examples/fidelity.py --checkpoint results/default/runs/Minf_seed*/step_0005000.pt --length 128

With ``--checkpoint``, evaluates those checkpoints of M = inf runs (one per seed) on 1024 new
sequences of ``--length`` pairs (drawn with ``eval.seed`` 1000 of the default) against the true
prior's exact predictor, and prints the same per-range numbers: how a checkpoint extrapolates,
without a workflow run.

Both end with the **frontier**: the longest length L for which the seeds' mean MSE/D, as a ratio
to exact Bayes, stays within ``--bound`` (1.10 x) -- averaged over positions 0..L-1, and at every
position below L; and how many trained positions the seeds' mean leaves above that bound.

Reads a results folder's tables (the workflow writes them):

* ``tables/in_context.parquet``, final checkpoints on new tasks (T_true): per position range,
  the PFN's MSE/D over the exact Bayes predictor's (ratio of the range's averages), the NLL gap
  to it, and the worst single position's MSE/D ratio; the head's floor the same way;
* ``tables/resample_stats.parquet``, final checkpoints: the implied prior's std ratio to the
  exact reference resampler per dimension (with the path length);
* ``tables/posterior_summary.parquet``, final checkpoints: the posterior energy distance to the
  exact reference, averaged over dimensions and T_true prefixes, against its floor.

K is the context length and L the longest trained length, read from the tables.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import pandas as pd

from lrpfn import families
from lrpfn.checkpoint import load_checkpoint
from lrpfn.config import RunConfig
from lrpfn.evaluate import position_metrics


def spread(values: list[float], digits: int = 4) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f}"


def position_ranges(table: pd.DataFrame, given: list[str] | None) -> list[tuple[int, int]]:
    if given:
        return [tuple(int(v) for v in text.split(":")) for text in given]
    trained = table.loc[~table.extrapolated, "position"].max() + 1
    length = table.position.max() + 1
    return [(0, 16 if trained > 16 else trained), (0, trained), (trained, length)]


def frontier(curves: pd.DataFrame, bound: float) -> tuple[int, int]:
    """The longest L at which the seeds' mean MSE/D ratio to Bayes stays within ``bound``:
    (averaged over positions 0..L-1 as the ratio of averages, at every position below L)."""
    mean = _position_means(curves)
    averaged = mean.mse_model.cumsum() / mean.mse_bayes.cumsum() <= bound
    every = mean.mse_model / mean.mse_bayes <= bound
    return _run_length(averaged), _run_length(every)


def above(curves: pd.DataFrame, bound: float) -> tuple[int, int, float, int]:
    """Over the trained positions: how many have a seeds' mean MSE/D ratio above ``bound``, of
    how many, and the largest ratio with its position."""
    mean = _position_means(curves[~curves.extrapolated])
    ratio = mean.mse_model / mean.mse_bayes
    return int((ratio > bound).sum()), len(ratio), float(ratio.max()), int(ratio.idxmax())


def _position_means(curves: pd.DataFrame) -> pd.DataFrame:
    """The seeds' mean MSE/D of the PFN and of exact Bayes per position, in position order."""
    return curves.groupby("position")[["mse_model", "mse_bayes"]].mean().sort_index()


def _run_length(within: pd.Series) -> int:
    """How many positions from the first are all within (True)."""
    return len(within) if within.all() else int(within.to_numpy().argmin())


def checkpoint_curves(path: Path, length: int) -> pd.DataFrame:
    """Per-position metrics of one checkpoint of an M = inf run on new sequences, in the
    in-context table's layout (``seed``, ``position``, ``extrapolated`` and the metrics)."""
    ckpt = load_checkpoint(path)
    run = RunConfig.from_dict(ckpt.run)
    if run.pool_size != float("inf"):
        raise SystemExit(f"{path}: a run on a pool of {run.pool_size:g} tasks; the read-out is for M = inf")
    family = families.of_run(run)
    batch = family.eval_set(1024, length, seed=1000)
    table = position_metrics(ckpt.model, ckpt.bar, batch, family.references(), family.normaliser)
    return table.assign(seed=run.seed, extrapolated=table.position >= run.max_length)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, nargs="?")
    parser.add_argument("--ranges", nargs="+", metavar="LO:HI", help="position ranges, end excluded")
    parser.add_argument("--checkpoint", type=Path, nargs="+", help="evaluate these (one per seed), not tables")
    parser.add_argument("--length", type=int, default=128, help="with --checkpoint: pairs per sequence")
    parser.add_argument("--bound", type=float, default=1.10, help="the frontier's bound on the MSE/D ratio")
    args = parser.parse_args()
    if args.checkpoint:
        parts = [checkpoint_curves(path, args.length) for path in args.checkpoint]
        seeds = [part.seed.iloc[0] for part in parts]
        if len(set(seeds)) < len(seeds):
            raise SystemExit(f"--checkpoint: one checkpoint per seed (seeds {seeds})")
        curves = pd.concat(parts, ignore_index=True)
        names = " ".join(str(path) for path in args.checkpoint)
        print(f"# {names}: new tasks, 1024 sequences of {args.length} pairs")
    else:
        curves = pd.read_parquet(args.results / "tables" / "in_context.parquet")
        curves = curves[(curves.pool_size == "inf") & (curves.tasks == "true")]
        print(f"# {args.results}: M = inf, new tasks, final checkpoint; seeds {sorted(curves.seed.unique())}")
    for lo, hi in position_ranges(curves, args.ranges):
        rows = {"mse": [], "nll": [], "worst": [], "floor_mse": [], "floor_nll": []}
        for seed, run in curves.groupby("seed"):
            part = run[(run.position >= lo) & (run.position < hi)]
            ratio = part.mse_model / part.mse_bayes
            rows["mse"].append(part.mse_model.mean() / part.mse_bayes.mean())
            rows["nll"].append((part.nll_model - part.nll_bayes).mean())
            rows["worst"].append(ratio.max())
            rows["floor_mse"].append((part.mse_floor / part.mse_bayes).max())
            rows["floor_nll"].append((part.nll_floor - part.nll_bayes).max())
            print(
                f"  seed {seed}, positions {lo}..{hi - 1}: MSE/D {rows['mse'][-1]:.4f} x Bayes, NLL gap "
                f"{rows['nll'][-1]:.4f}, worst position {ratio.max():.3f} x (at {int(part.position[ratio.idxmax()])})"
            )
        print(
            f"positions {lo}..{hi - 1}: MSE/D {spread(rows['mse'])} x Bayes; NLL gap {spread(rows['nll'])} nats; "
            f"worst position {spread(rows['worst'], 3)} x; head floor at most {max(rows['floor_mse']):.4f} x "
            f"and {max(rows['floor_nll']):.4f} nats"
        )
    averaged, every = frontier(curves, args.bound)
    length = curves.position.max() + 1
    print(
        f"frontier at {args.bound:.2f} x Bayes (seed mean, of {length} positions): averaged over 0..L-1 up to "
        f"L = {averaged}; at every position up to L = {every}"
    )
    n_above, n_trained, worst, at = above(curves, args.bound)
    print(
        f"  seeds' mean above {args.bound:.2f} x at {n_above} of the {n_trained} trained positions "
        f"(largest {worst:.3f} x, at {at})"
    )
    if args.checkpoint:
        return
    tables = args.results / "tables"
    stats = pd.read_parquet(tables / "resample_stats.parquet")
    stats = stats[stats.pool_size == "inf"]
    final = stats[stats.step == stats.step.max()]
    prior = final[(final.kind == "prior") & (final.reference == "bayes")]
    ratios = prior.pivot_table(index="seed", columns="dim", values="std_ratio")
    print(f"implied prior at the final checkpoint ({final.path_length.iloc[0]}-point paths), std ratio per dim:")
    print(ratios.round(3).to_string())
    print(f"  range over seeds and dims: {ratios.min().min():.3f} .. {ratios.max().max():.3f}")

    summary = pd.read_parquet(tables / "posterior_summary.parquet")
    final = summary[(summary.pool_size == "inf") & summary.final & (summary.reference == "bayes")]
    per_seed = final[final.seed != "mean"]
    print(
        f"posterior energy distance at the final checkpoint: {spread(per_seed.energy.tolist())} "
        f"against a floor of {final.floor_energy.iloc[0]:.4f} (sd {final.floor_energy_sd.iloc[0]:.4f}); "
        f"ratio {spread((per_seed.energy / per_seed.floor_energy).tolist(), 2)}"
    )


if __name__ == "__main__":
    main()
