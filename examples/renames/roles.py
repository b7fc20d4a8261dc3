"""Rename map for ``examples/compare_results.py``: tables written before predictors were
named by role, brought to the role vocabulary (docs/design.md §10) so they compare value by
value with tables written after.

* per-predictor suffixes: ``gaussian`` -> ``ridge`` (``bayes`` where the old table has no
  true-prior predictor of its own: under N(0, I) the Gaussian reference *is* Bayes), ``pool``
  -> ``dmmse``; the resampling references' column ``prior`` -> ``reference``;
* under N(0, I) the ``bayes`` and ``ridge`` roles share a predictor: each column of one gets
  its twin of the other;
* verdicts and methods: ``ridge`` -> ``bayes`` (``closer_to_ridge`` -> ``closer_to_bayes``),
  and the same words in the thresholds' prose.
"""

from __future__ import annotations

import re

import pandas as pd

SUFFIXED = r"(kl|mean|sd|density|energy|floor_energy|floor_energy_sd|ref_true_w_rmse)"
TWIN = {"ridge": "_bayes", "bayes": "_ridge"}
METRIC = re.compile(r"^(mse|delta|nll)_(ridge|bayes)(_se|_long|_short)?$")
PROSE = [
    ("delta_ridge", "delta_bayes"),
    ("closer to ridge than to dMMSE", "closer to the true prior's Bayes predictor than to dMMSE"),
    ("closer to ridge at every", "closer to the true prior's Bayes predictor at every"),
    ("towards ridge at every", "towards the true prior's Bayes predictor at every"),
    ("away from ridge", "away from the true prior's Bayes predictor"),
]


def _has_bayes(old: pd.DataFrame) -> bool:
    if any(str(c).endswith("_bayes") or "_bayes_" in str(c) for c in old.columns):
        return True
    for column in ("prior", "reference", "closer", "closer_to", "method"):
        if column in old.columns and old[column].astype(str).str.contains("bayes").any():
            return True
    return False


def rename(path: str, old: pd.DataFrame) -> pd.DataFrame:
    """``old`` (the table at ``path``, relative to its results folder) in the role vocabulary."""
    default = not _has_bayes(old)
    role = {"gaussian": "bayes" if default else "ridge", "pool": "dmmse", "bayes": "bayes"}
    new = old.rename(columns=lambda c: re.sub(rf"^{SUFFIXED}_(gaussian|pool|bayes)$",
                                              lambda m: f"{m.group(1)}_{role[m.group(2)]}", str(c)))  # fmt: skip
    if "prior" in new.columns and path.startswith("resample/") and path.endswith("_reference.parquet"):
        new = new.rename(columns={"prior": "reference"})
    for column in ("reference", "closer_to"):
        if column in new.columns:
            new[column] = new[column].replace(role)
    if default:
        if "closer" in new.columns:
            new["closer"] = new["closer"].replace({"ridge": "bayes"})
        if "method" in new.columns:
            new["method"] = new["method"].replace({"closer_to_ridge": "closer_to_bayes"})
        for column in ("description", "reason"):
            if column in new.columns:
                for before, after in PROSE:
                    new[column] = new[column].str.replace(before, after, regex=False)
        new = new.rename(columns=lambda c: re.sub(r"^delta_ridge_(long|short)$", r"delta_bayes_\1", str(c)))
        # Under N(0, I) ridge and Bayes are one predictor: every column of one role has a twin.
        for column in list(new.columns):
            match = METRIC.match(column) or re.match(rf"^{SUFFIXED}_(ridge|bayes)$", column)
            if match and "_long" not in column and "_short" not in column:
                twin = re.sub(r"_(ridge|bayes)(?=$|_se$)", lambda m: TWIN[m.group(1)], column)
                if twin not in new.columns:
                    new[twin] = new[column]
    return new
