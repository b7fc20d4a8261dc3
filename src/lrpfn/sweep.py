"""The task-diversity sweep: one tidy table over runs, and the threshold M* (SPEC §6).

Tables use one name per concept: ``pool_size`` ('1', ..., 'inf'), ``seed``, ``step``,
``tasks`` ('pool' = the run's own T_M, 'true' = T_true), ``position`` and the metric
columns of :mod:`lrpfn.evaluate`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .evaluate import METRICS

KEYS = ["pool_size", "seed", "step", "tasks"]


def pool_size_value(pool_size: pd.Series) -> pd.Series:
    return pool_size.astype(float)


def summarise(per_position: pd.DataFrame) -> pd.DataFrame:
    """Average every metric over positions: one row per (pool_size, seed, step, tasks)."""
    summary = per_position.groupby(KEYS, sort=False)[METRICS].mean().reset_index()
    summary["pool_size_value"] = pool_size_value(summary["pool_size"])
    return summary.sort_values(["pool_size_value", "seed", "tasks", "step"], ignore_index=True)


def _final_two_budgets(summary: pd.DataFrame) -> pd.DataFrame:
    """Per pool size on T_true: delta_ridge at the final and the previous checkpoint, mean over seeds."""
    true = summary[summary.tasks == "true"]
    rows = []
    for pool_size, group in true.groupby("pool_size", sort=False):
        steps = sorted(group.step.unique())
        by_step = group.groupby("step")[["delta_ridge", "delta_dmmse"]].mean()
        final = by_step.loc[steps[-1]]
        rows.append(
            {
                "pool_size": pool_size,
                "pool_size_value": float(pool_size),
                "final_step": steps[-1],
                "delta_ridge": final.delta_ridge,
                "delta_dmmse": final.delta_dmmse,
                "previous_step": steps[-2] if len(steps) > 1 else np.nan,
                "delta_ridge_previous": by_step.loc[steps[-2]].delta_ridge if len(steps) > 1 else np.nan,
            }
        )
    return pd.DataFrame(rows).sort_values("pool_size_value", ignore_index=True)


def threshold_closer_to_ridge(budgets: pd.DataFrame) -> dict:
    """M* (a): the smallest finite M from which every larger finite M is closer to ridge than to dMMSE on T_true."""
    finite = budgets[np.isfinite(budgets.pool_size_value)]
    closer = (finite.delta_ridge < finite.delta_dmmse).to_numpy()
    sizes = finite.pool_size_value.to_numpy()
    # Walk down from the largest pool while the model stays closer to ridge.
    star, lower = math.inf, sizes[-1] if len(sizes) else np.nan
    for i in range(len(sizes) - 1, -1, -1):
        if not closer[i]:
            break
        star, lower = sizes[i], sizes[i - 1] if i > 0 else np.nan
    return {
        "method": "closer_to_ridge",
        "pool_size_star": star,
        "lower": lower,
        "upper": star,
        "description": "smallest M from which the model's predictions on T_true are closer to ridge than to dMMSE "
        "(final checkpoint, mean over seeds and positions); M* lies in (lower, upper]",
    }


def threshold_budget_crossing(budgets: pd.DataFrame) -> dict:
    """M* (b), Raventós et al.: where the distance to ridge on T_true at two training budgets crosses.

    r(M) = log(delta_ridge(final) / delta_ridge(previous checkpoint)): below M* more training
    moves the model away from ridge (r > 0), above it towards ridge (r < 0). M* is the zero
    of r interpolated linearly in log M between the last M with r > 0 and the next one.
    """
    finite = budgets[np.isfinite(budgets.pool_size_value)].dropna(subset=["delta_ridge_previous"])
    sizes = finite.pool_size_value.to_numpy()
    r = np.log(finite.delta_ridge.to_numpy() / finite.delta_ridge_previous.to_numpy())
    result = {
        "method": "budget_crossing",
        "pool_size_star": np.nan,
        "lower": np.nan,
        "upper": np.nan,
        "description": "M where delta_ridge on T_true at the final and the previous checkpoint cross "
        "(log-linear interpolation of their log-ratio); NaN when they do not cross",
    }
    positive = np.flatnonzero(r > 0)
    if len(positive) == 0 or positive[-1] == len(sizes) - 1:
        return result
    i = positive[-1]
    lo, hi = np.log(sizes[i]), np.log(sizes[i + 1])
    t = r[i] / (r[i] - r[i + 1])
    result.update(pool_size_star=float(np.exp(lo + t * (hi - lo))), lower=sizes[i], upper=sizes[i + 1])
    return result


def thresholds(summary: pd.DataFrame) -> pd.DataFrame:
    budgets = _final_two_budgets(summary)
    return pd.DataFrame([threshold_closer_to_ridge(budgets), threshold_budget_crossing(budgets)])
