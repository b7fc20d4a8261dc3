"""Compare two results folders: every table value and every checkpoint tensor.

    python examples/compare_results.py results/default /elsewhere/results/default
    python examples/compare_results.py OLD NEW --renames examples/renames/roles.py --rtol 1e-12

Walks the parquet tables and ``.pt`` checkpoints that both folders hold (logs, benchmarks
and figures are not compared), and reports, per file, whether every value is equal —
exactly, NaN equal to NaN — or the largest difference. Columns are matched by name; a
column only the second table has is listed as added, and so is a file only the second
folder has; a file or column only the first has is a difference. ``--renames FILE.py`` names a module
whose ``rename(path, table)`` brings each table of the first folder to the second's
vocabulary first (an explicit map: which column or value became which). ``--rtol`` counts
values equal to that relative tolerance apart, reported on their own line. A checkpoint compares its weights,
bucket borders and step; its run identity is reported separately, since a new identity key
(with the same numbers) changes it. Exits with 1 when anything differs or a file is missing
from one side.
"""

from __future__ import annotations

import argparse
import importlib.util
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


def compare_table(a: pd.DataFrame, b: pd.DataFrame, rtol: float = 0.0) -> tuple[str, str, str]:
    """(what differs, what differs only within ``rtol``, columns only ``b`` has); '' when none."""
    added = [c for c in b.columns if c not in a.columns]
    missing = [c for c in a.columns if c not in b.columns]
    if missing:
        return f"columns missing from the second: {missing}", "", ", ".join(map(str, added))
    if len(a) != len(b):
        return f"rows {len(a)} != {len(b)}", "", ", ".join(map(str, added))
    worst, close = [], []
    for column in a.columns:
        x, y = a[column].to_numpy(), b[column].to_numpy()
        if x.dtype.kind in "fc" and y.dtype.kind in "fc":
            same = (x == y) | (np.isnan(x) & np.isnan(y))
            if not same.all():
                scale = np.maximum(np.abs(x), np.abs(y))
                rel = np.nanmax(np.abs(x - y)[~same] / scale[~same])
                (close if rel <= rtol else worst).append(f"{column} (max rel. diff {rel:.3g})")
        elif not (x == y).all():
            worst.append(str(column))
    differs = "values differ in " + ", ".join(worst) if worst else ""
    return differs, ", ".join(close), ", ".join(map(str, added))


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
    parser.add_argument("--renames", type=Path, help="module with rename(path, table) for the first folder's tables")
    parser.add_argument("--rtol", type=float, default=0.0, help="relative tolerance reported separately")
    args = parser.parse_args(argv)
    rename = _load_renames(args.renames) if args.renames else (lambda path, table: table)
    failures = 0
    for suffix in (".parquet", ".pt"):
        first, second = files(args.first, suffix), files(args.second, suffix)
        for missing in sorted(first - second):
            print(f"MISSING {missing} (only in {args.first})")
            failures += 1
        for new in sorted(second - first):
            print(f"new {new} (only in {args.second})")
        equal = within = 0
        for rel in sorted(first & second):
            close = identity = added = ""
            if suffix == ".parquet":
                old = rename(rel.as_posix(), read_parquet(args.first / rel))
                problem, close, added = compare_table(old, read_parquet(args.second / rel), args.rtol)
            else:
                problem, identity = compare_checkpoint(load_torch(args.first / rel), load_torch(args.second / rel))
            if problem:
                print(f"DIFFERS {rel}: {problem}")
                failures += 1
            elif close:
                print(f"within rtol {args.rtol:g} {rel}: {close}")
                within += 1
            else:
                equal += 1
            if added:
                print(f"added {rel}: {added}")
            if identity:
                print(f"identity {rel}: {identity}")
        kind = "tables" if suffix == ".parquet" else "checkpoints"
        tolerance = f", {within} more equal within rtol {args.rtol:g}" if within else ""
        print(f"{equal} of {len(first & second)} {kind} equal in every value{tolerance}")
    return 1 if failures else 0


def _load_renames(path: Path):
    spec = importlib.util.spec_from_file_location("renames", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.rename


if __name__ == "__main__":
    sys.exit(main())
