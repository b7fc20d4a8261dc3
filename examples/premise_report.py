"""The premise read-outs of a finished run, as docs/results.md §13 quotes them: the PFN beside
its exact reference at the final checkpoint, per pool size, with mean +- sd over seeds where a
pool size has several.

    python examples/premise_report.py results/default

* the reference as a check of the machinery: its mean and variance drifts in units of their
  standard errors (worst |z| over its N distinct rows, against sqrt(2 ln N), what the largest of
  N standard normals stays below), its largest exchangeability KL, and the exact posterior's
  coverage against the nominal level in binomial standard errors;
* martingale: KL, variance drift and mean drift at k = 1 and at the longest horizon;
* exchangeability: the mean KL and each run's largest, over prompts, queries and orders;
* coverage: the central intervals' coverage of the true w and their width (mean over
  coordinates) for the PFN, the exact resampler along the same inputs and the exact posterior,
  and the contraction slopes;
* the job time of the premise and coverage jobs, from their benchmark files.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

RUN = ["pool_size", "seed"]


def final(table: pd.DataFrame) -> pd.DataFrame:
    return table[table.step == table.groupby(RUN).step.transform("max")]


def spread(values: pd.Series, digits: int = 4) -> str:
    """mean +- sd over seeds (the value alone for one seed)."""
    if len(values) == 1:
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} +- {values.std():.{digits}f}"


def worst_z(values: pd.Series, se: pd.Series) -> str:
    """The largest |value / se| over N rows, beside sqrt(2 ln N)."""
    z = (values / se).abs()
    n = int(z.notna().sum())
    return f"worst |z| {z.max():.2f} over {n} rows (sqrt(2 ln N) = {math.sqrt(2 * math.log(n)):.2f})"


def reference_checks(martingale: pd.DataFrame, exchangeability: pd.DataFrame, coverage: pd.DataFrame) -> None:
    print("The exact reference, as a check of the machinery")
    keys = ["pool_size", "path_length", "tasks", "prompt_length", "k"]
    rows = martingale.drop_duplicates(keys)
    for drift in ("mean_drift", "var_drift"):
        print(f"  {drift}: {worst_z(rows[f'reference_{drift}'], rows[f'reference_{drift}_se'])}")
    print(f"  exchangeability: largest KL {exchangeability.reference_max_kl.max():.2g} nats")
    if len(coverage):
        rows = coverage.drop_duplicates(["prefix_length", "level", "dim"])
        miss = rows.posterior_coverage - rows.level
        print(f"  exact posterior coverage: {worst_z(miss, rows.posterior_coverage_se)}")


def martingale_table(martingale: pd.DataFrame) -> None:
    print("\nMartingale at the final checkpoint (PFN: mean +- sd over seeds, (SE) of one run)")
    table = final(martingale)
    longest = table.groupby(["pool_size", "tasks", "prompt_length"]).k.transform("max")
    table = table[(table.k == 1) | (table.k == longest)]
    for (pool_size, tasks, length, k), rows in table.groupby(["pool_size", "tasks", "prompt_length", "k"], sort=False):
        first = rows.iloc[0]
        print(
            f"  M={pool_size} {tasks} n={length} k={k}:"
            f" KL {spread(rows.model_kl)} (SE {rows.model_kl_se.mean():.4f}) | exact {first.reference_kl:.4f};"
            f" var drift {spread(rows.model_var_drift, 3)} (SE {rows.model_var_drift_se.mean():.3f})"
            f" | exact {first.reference_var_drift:+.3f} (SE {first.reference_var_drift_se:.3f});"
            f" mean drift {spread(rows.model_mean_drift, 3)} | exact {first.reference_mean_drift:+.3f}"
        )


def exchangeability_table(exchangeability: pd.DataFrame) -> None:
    print("\nExchangeability at the final checkpoint (mean KL; largest single order, mean over seeds)")
    groups = exchangeability.groupby(["pool_size", "tasks", "prompt_length"], sort=False)
    for (pool_size, tasks, length), rows in groups:
        print(
            f"  M={pool_size} {tasks} n={length}: {spread(rows.model_mean_kl)} nats,"
            f" largest {rows.model_max_kl.mean():.3f} | exact largest {rows.reference_max_kl.max():.2g}"
        )


def coverage_table(coverage: pd.DataFrame, summary: pd.DataFrame) -> None:
    if not len(coverage):
        return
    print("\nCoverage of the true w (mean over coordinates): PFN | exact resampler | exact posterior")
    per_run = coverage.groupby([*RUN, "prefix_length", "level"], sort=False).mean(numeric_only=True).reset_index()
    for (pool_size, length, level), rows in per_run.groupby(["pool_size", "prefix_length", "level"], sort=False):
        first = rows.iloc[0]
        print(
            f"  M={pool_size} n={length} {level:.0%}: {spread(rows.model_coverage, 3)}"
            f" | {first.reference_coverage:.3f} | {first.posterior_coverage:.3f};"
            f" widths {spread(rows.model_width, 3)} | {first.reference_width:.3f} | {first.posterior_width:.3f}"
        )
    slopes = summary.dropna(subset=["model_contraction_slope"])
    for pool_size, rows in slopes.groupby("pool_size", sort=False):
        print(
            f"  M={pool_size} contraction slope: {spread(rows.model_contraction_slope, 3)}"
            f" | exact resampler {rows.reference_contraction_slope.iloc[0]:.3f}"
        )


def job_times(results: Path) -> None:
    files = sorted((results / "benchmarks" / "premise").glob("*.tsv"))
    if not files:
        return
    seconds = {f.stem: pd.read_csv(f, sep="\t").s.iloc[-1] for f in files}
    coverage = {k: v for k, v in seconds.items() if k.endswith("_coverage")}
    premise = {k: v for k, v in seconds.items() if k not in coverage}
    print(
        f"\nJob time: {sum(premise.values()):.0f} s for {len(premise)} premise jobs"
        f" ({min(premise.values()):.0f}-{max(premise.values()):.0f} s each),"
        f" {sum(coverage.values()):.0f} s for {len(coverage)} coverage jobs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    results = parser.parse_args().results
    tables = {
        name: pd.read_parquet(results / "tables" / f"{name}.parquet")
        for name in ("martingale", "exchangeability", "coverage", "premise_summary")
    }
    reference_checks(tables["martingale"], tables["exchangeability"], tables["coverage"])
    martingale_table(tables["martingale"])
    exchangeability_table(tables["exchangeability"])
    coverage_table(tables["coverage"], tables["premise_summary"])
    job_times(results)


if __name__ == "__main__":
    main()
