"""The read-outs a task family is held to, from the tables of a finished run of its config:
per seed at M = inf and the mean +- sd over seeds (docs/results.md §15, §16).

    python examples/family_report.py results/unknown_noise
    python examples/family_report.py results/nonlinear

At the final checkpoint, on new tasks, averaged over the context's positions:
* the gap between the baseline (role ``ridge``) and exact Bayes in normalised MSE and in NLL,
  and the share of each gap the PFN closes;
* the PFN's NLL above Bayes, and any extra reference's (e.g. the exact GP) beside Bayes's;
* the head's floor (Bayes through the trained head's family) above Bayes, largest over every
  position of the in-context curve;
* from the final resampled paths (implied prior, exact resampler as reference): the median and
  interquartile range of the residual variance over the exact resampler's, where tasks draw
  their noise; on features, the resampled functions' energy distance over its replica floor, for
  the implied prior and the posteriors from observed prefixes, and the PFN's distance to the
  baseline's exact resampler (how far a wrong reference lands).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from lrpfn.evaluate import METRICS, metric_columns

SEED_STATS = ["mean", "std"]


def final(table: pd.DataFrame, new_tasks: bool = True) -> pd.DataFrame:
    """The true prior's runs at their final checkpoint (scored on new tasks)."""
    table = table[table.pool_size == "inf"]
    if new_tasks:
        table = table[table.tasks == "true"]
    return table[table.step == table.step.max()]


def evaluation(tables: Path) -> pd.DataFrame:
    summary = final(pd.read_parquet(tables / "summary.parquet")).set_index("seed")
    out = pd.DataFrame(index=summary.index)
    for metric in ("mse", "nll"):
        bayes, ridge, model = (summary[f"{metric}_{role}"] for role in ("bayes", "ridge", "model"))
        gap = (ridge - bayes).where((ridge - bayes).abs() > 1e-9 * bayes.abs())  # none: nothing to close
        out[f"{metric}_closed"] = (ridge - model) / gap
    out["mse_ridge_over_bayes"] = summary.mse_ridge / summary.mse_bayes
    out["nll_gap"] = summary.nll_ridge - summary.nll_bayes
    out["mse_model"], out["mse_bayes"], out["mse_ridge"] = summary.mse_model, summary.mse_bayes, summary.mse_ridge
    out["nll_model_above_bayes"] = summary.nll_model - summary.nll_bayes
    # Any extra reference the runs were scored against (the exact GP on features).
    for extra in [c[4:] for c in metric_columns(summary) if c not in METRICS and c.startswith("mse_")]:
        out[f"mse_{extra}"] = summary[f"mse_{extra}"]
        out[f"nll_{extra}_above_bayes"] = summary[f"nll_{extra}"] - summary.nll_bayes
    curve = final(pd.read_parquet(tables / "in_context.parquet"))
    out["floor_max_over_positions"] = (curve.nll_floor - curve.nll_bayes).groupby(curve.seed).max()
    out["positions"] = curve.groupby("seed").position.nunique()
    return out


def implied_prior(tables: Path) -> pd.DataFrame:
    stats = final(pd.read_parquet(tables / "resample_stats.parquet"), new_tasks=False)
    stats = stats[stats.path_length == stats.path_length.max()]
    prior = stats[(stats.kind == "prior") & (stats.reference == "bayes")]
    first = prior.groupby("seed").first()  # the statistics of w's paths repeat on every dimension's row
    out = pd.DataFrame(index=first.index)
    if prior.get("noise_median") is not None and prior.noise_median.notna().any():
        out["noise_median_ratio"] = first.noise_median / first.ref_noise_median
        out["noise_iqr_ratio"] = first.noise_iqr / first.ref_noise_iqr
    if prior.get("function_energy") is not None and prior.function_energy.notna().any():
        # The implied prior, then the posteriors from the observed prefixes (mean over prefixes),
        # then the PFN's distance to the baseline's exact resampler: the read-out tells them apart.
        for name, kind, reference in (("", "prior", "bayes"), ("posterior_", "posterior", "bayes")):
            rows = stats[(stats.kind == kind) & (stats.reference == reference)]
            per_seed = rows.groupby(["seed", "prefix"]).first().groupby("seed")
            energy, floor = per_seed.function_energy.mean(), per_seed.floor_function_energy.mean()
            out[f"{name}function_energy"], out[f"{name}floor_function_energy"] = energy, floor
            out[f"{name}function_energy_over_floor"] = energy / floor
        baseline = stats[(stats.kind == "prior") & (stats.reference == "ridge")].groupby("seed").first()
        out["function_energy_to_ridge_resampler"] = baseline.function_energy
    out["path_length"] = stats.path_length.max()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="the config's results folder")
    tables = parser.parse_args().results / "tables"
    per_seed = evaluation(tables).join(implied_prior(tables))
    pd.set_option("display.width", 200)
    print(per_seed.T.to_string(float_format=lambda v: f"{v:.4f}"))
    print()
    print(per_seed.agg(SEED_STATS).T.to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
