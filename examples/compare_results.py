"""Compare two results folders: every table value and every checkpoint tensor.

    python examples/compare_results.py results/default /elsewhere/results/default

Walks the parquet tables and ``.pt`` checkpoints that both folders hold (logs, benchmarks
and figures are not compared), and reports, per file, whether every value is equal —
exactly, NaN equal to NaN — or the largest difference. A checkpoint compares its weights,
bucket borders and step; its run identity is reported separately, since a new identity key
(with the same numbers) changes it. Exits with 1 when anything differs or a file is missing
from one side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lrpfn.checkpoint import config_differences
from lrpfn.io import load_torch, read_parquet

SKIPPED = {"logs", "benchmarks", "figures", ".snakemake"}


def files(root: Path, suffix: str) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob(f"*{suffix}") if not SKIPPED & set(p.relative_to(root).parts[:-1])}


def compare_table(a: pd.DataFrame, b: pd.DataFrame) -> str:
    """'' when equal, else what differs."""
    if list(a.columns) != list(b.columns):
        return f"columns differ: {sorted(set(a.columns) ^ set(b.columns))}"
    if a.shape != b.shape:
        return f"shape {a.shape} != {b.shape}"
    worst = []
    for column in a.columns:
        x, y = a[column].to_numpy(), b[column].to_numpy()
        if x.dtype.kind in "fc":
            same = (x == y) | (np.isnan(x) & np.isnan(y))
            if not same.all():
                worst.append(f"{column} (max |diff| {np.nanmax(np.abs(x - y)):.3g})")
        elif not (x == y).all():
            worst.append(column)
    return "values differ in " + ", ".join(worst) if worst else ""


def compare_checkpoint(a: dict, b: dict) -> tuple[str, str]:
    """(what differs in the numbers, what differs in the run identity)."""
    numbers = []
    if a["model_state"].keys() != b["model_state"].keys():
        numbers.append("weight names")
    else:
        numbers += [name for name, t in a["model_state"].items() if not torch.equal(t, b["model_state"][name])]
    if not torch.equal(a["borders"], b["borders"]):
        numbers.append("borders")
    if a["step"] != b["step"]:
        numbers.append("step")
    return ", ".join(numbers), "; ".join(config_differences(a["run"], b["run"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    args = parser.parse_args(argv)
    failures = 0
    for suffix in (".parquet", ".pt"):
        first, second = files(args.first, suffix), files(args.second, suffix)
        for missing in sorted(first ^ second):
            print(f"MISSING {missing} (only in {args.first if missing in first else args.second})")
            failures += 1
        equal = 0
        for rel in sorted(first & second):
            if suffix == ".parquet":
                problem, identity = compare_table(read_parquet(args.first / rel), read_parquet(args.second / rel)), ""
            else:
                problem, identity = compare_checkpoint(load_torch(args.first / rel), load_torch(args.second / rel))
            if problem:
                print(f"DIFFERS {rel}: {problem}")
                failures += 1
            else:
                equal += 1
            if identity:
                print(f"identity {rel}: {identity}")
        kind = "tables" if suffix == ".parquet" else "checkpoints"
        print(f"{equal} of {len(first & second)} {kind} equal in every value")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
