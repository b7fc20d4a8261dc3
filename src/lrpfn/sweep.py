"""The task-diversity sweep: tidy tables over runs, and the threshold M* (SPEC §6).

Tables use one name per concept: ``pool_size`` ('1', ..., 'inf'), ``seed``, ``step``,
``tasks`` ('pool' = the run's own T_M, 'true' = T_true), ``position``, ``sequence`` and
the metric columns of :mod:`lrpfn.evaluate`.

Two estimates of M*:

* **closer to ridge** — per finite pool size, the paired per-sequence difference
  ``delta_ridge - delta_dmmse`` on T_true (each sequence's mean over positions, averaged
  over seeds) says whether the model is closer to ridge (difference below zero by more
  than :data:`RESOLVED_SE` standard errors), closer to dMMSE (above zero by as much) or
  neither resolved (:func:`closeness`). M* is the smallest M from which every larger
  finite M is closer to ridge, provided the pool size just below it is resolved closer to
  dMMSE; otherwise NaN with the reason and the bracket the data allow.
* **budget crossing** (Raventós et al.) — where the distance to ridge on T_true at two
  training budgets crosses. Here the two budgets are the final and the previous checkpoint
  of one run: a proxy, since the learning rate at that checkpoint is still high.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .evaluate import METRICS

KEYS = ["pool_size", "seed", "step", "tasks"]
RESOLVED_SE = 2.0  # a difference counts only beyond this many standard errors
CLOSER = ("ridge", "dmmse", "unresolved")


def pool_size_value(pool_size: pd.Series) -> pd.Series:
    return pool_size.astype(float)


def summarise(per_position: pd.DataFrame) -> pd.DataFrame:
    """Average every metric over positions: one row per (pool_size, seed, step, tasks)."""
    summary = per_position.groupby(KEYS, sort=False)[METRICS].mean().reset_index()
    summary["pool_size_value"] = pool_size_value(summary["pool_size"])
    return summary.sort_values(["pool_size_value", "seed", "tasks", "step"], ignore_index=True)


def closeness(sequences: pd.DataFrame) -> pd.DataFrame:
    """Per finite pool size and step, on T_true: is the model closer to ridge or to dMMSE?

    ``sequences`` has one row per (pool_size, seed, step, tasks, sequence) with the metrics
    averaged over positions. Columns of the result: ``diff`` (mean over sequences of
    ``delta_ridge - delta_dmmse``; negative = closer to ridge), ``diff_se`` (its standard
    error over sequences, paired: both predictors see the same sequences), ``z`` and
    ``closer`` ('ridge', 'dmmse' or 'unresolved'), plus ``n_sequences`` and ``n_seeds``.
    """
    true = sequences[(sequences.tasks == "true") & (sequences.pool_size != "inf")]
    paired = true.assign(d=true.delta_ridge - true.delta_dmmse)
    # Seeds see the same evaluation sequences: average them per sequence, then over sequences.
    per_sequence = paired.groupby(["pool_size", "step", "sequence"], sort=False).agg(
        d=("d", "mean"), n_seeds=("seed", "nunique")
    )
    rows = []
    for (pool_size, step), group in per_sequence.groupby(level=["pool_size", "step"], sort=False):
        d = group.d.to_numpy()
        mean, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
        rows.append(
            {
                "pool_size": pool_size,
                "pool_size_value": float(pool_size),
                "step": step,
                "n_sequences": len(d),
                "n_seeds": int(group.n_seeds.max()),
                "diff": mean,
                "diff_se": se,
                "z": _ratio(mean, se),
                "closer": verdict(mean, se),
            }
        )
    columns = ["pool_size", "pool_size_value", "step", "n_sequences", "n_seeds", "diff", "diff_se", "z", "closer"]
    return pd.DataFrame(rows, columns=columns).sort_values(["pool_size_value", "step"], ignore_index=True)


def _ratio(diff: float, se: float) -> float:
    """diff / se, with an exact difference (se = 0) at +-inf and 0 / 0 as 0."""
    if se > 0:
        return diff / se
    if se == 0:
        return math.copysign(math.inf, diff) if diff else 0.0
    return math.nan


def verdict(diff: float, se: float) -> str:
    """'ridge' when ``diff`` is below zero by more than RESOLVED_SE standard errors,
    'dmmse' when above by as much, else 'unresolved'."""
    if not math.isfinite(diff) or not se >= 0:
        return "unresolved"
    if diff < -RESOLVED_SE * se:
        return "ridge"
    if diff > RESOLVED_SE * se:
        return "dmmse"
    return "unresolved"


def _result(method: str, description: str, star=math.nan, lower=math.nan, upper=math.nan, reason: str = "") -> dict:
    return {
        "method": method,
        "pool_size_star": float(star),
        "lower": float(lower),
        "upper": float(upper),
        "reason": reason,
        "description": description,
    }


def _size(value: float) -> str:
    return f"{value:g}"


def threshold_closer_to_ridge(verdicts: pd.DataFrame) -> dict:
    """M* (a) from one step's :func:`closeness` rows: the smallest finite M from which every
    larger finite M is resolved closer to ridge, with M* in (lower, upper]."""
    description = (
        f"smallest M from which the model is closer to ridge than to dMMSE on T_true at every larger finite M, "
        f"each by more than {RESOLVED_SE:g} standard errors of the paired per-sequence difference "
        f"(final checkpoint, seeds averaged); M* lies in (lower, upper]"
    )
    table = verdicts.sort_values("pool_size_value")
    sizes, closer = table.pool_size_value.to_numpy(), table.closer.to_list()
    if len(sizes) == 0:
        return _result("closer_to_ridge", description, reason="no finite pool size")
    if closer[-1] != "ridge":
        state = "closer to dMMSE" if closer[-1] == "dmmse" else "not resolved either way"
        return _result(
            "closer_to_ridge", description, lower=sizes[-1],
            reason=f"the largest finite pool, M={_size(sizes[-1])}, is {state}: M* > {_size(sizes[-1])}",
        )  # fmt: skip
    i = len(sizes) - 1
    while i > 0 and closer[i - 1] == "ridge":
        i -= 1
    upper = sizes[i]
    if i == 0:
        return _result(
            "closer_to_ridge", description, upper=upper,
            reason=f"closer to ridge at every pool size: M* <= {_size(upper)}",
        )  # fmt: skip
    if closer[i - 1] == "dmmse":
        return _result("closer_to_ridge", description, star=upper, lower=sizes[i - 1], upper=upper)
    # The pool size just below is unresolved: M* lies between the largest size resolved closer
    # to dMMSE (if any) and `upper`, and the data do not say where.
    j = i - 1
    while j >= 0 and closer[j] != "dmmse":
        j -= 1
    lower = sizes[j] if j >= 0 else math.nan  # the largest size resolved closer to dMMSE, if any
    unresolved = ", ".join(
        _size(s) for s, c in zip(sizes[j + 1 : i], closer[j + 1 : i], strict=True) if c == "unresolved"
    )
    return _result(
        "closer_to_ridge", description, lower=lower, upper=upper,
        reason=f"M={unresolved} not resolved (|difference| <= {RESOLVED_SE:g} SE): "
        + (f"M* lies in ({_size(lower)}, {_size(upper)}]" if math.isfinite(lower) else f"M* <= {_size(upper)}"),
    )  # fmt: skip


def _final_two_budgets(summary: pd.DataFrame) -> pd.DataFrame:
    """Per finite pool size on T_true: delta_ridge at the final and the previous checkpoint, mean over seeds."""
    true = summary[(summary.tasks == "true") & (summary.pool_size != "inf")]
    rows = []
    for pool_size, group in true.groupby("pool_size", sort=False):
        by_step = group.groupby("step").delta_ridge.mean().sort_index()
        if len(by_step) < 2:
            continue
        rows.append(
            {
                "pool_size_value": float(pool_size),
                "final_step": by_step.index[-1],
                "previous_step": by_step.index[-2],
                "delta_ridge": by_step.iloc[-1],
                "delta_ridge_previous": by_step.iloc[-2],
            }
        )
    columns = ["pool_size_value", "final_step", "previous_step", "delta_ridge", "delta_ridge_previous"]
    return pd.DataFrame(rows, columns=columns).sort_values("pool_size_value", ignore_index=True)


def threshold_budget_crossing(summary: pd.DataFrame) -> dict:
    """M* (b), Raventós et al.: where the distance to ridge on T_true at two training budgets crosses.

    r(M) = log(delta_ridge(final) / delta_ridge(previous checkpoint)): below M* more training
    moves the model away from ridge (r > 0), above it towards ridge (r < 0). M* is the zero
    of r interpolated linearly in log M between the last M with r > 0 and the next one.
    """
    budgets = _final_two_budgets(summary)
    steps = (
        f"{budgets.previous_step.iloc[0]} and {budgets.final_step.iloc[0]} steps" if len(budgets) else "two checkpoints"
    )
    description = (
        f"M where delta_ridge on T_true at the checkpoints of {steps} crosses (log-linear interpolation "
        "of their log-ratio); a proxy for two budgets trained to completion: both checkpoints are of one run"
    )
    if len(budgets) < 2:
        return _result("budget_crossing", description, reason="fewer than two finite pool sizes with two checkpoints")
    sizes = budgets.pool_size_value.to_numpy()
    r = np.log(budgets.delta_ridge.to_numpy() / budgets.delta_ridge_previous.to_numpy())
    positive = np.flatnonzero(r > 0)
    if len(positive) == 0:
        return _result(
            "budget_crossing", description, upper=sizes[0],
            reason=f"more training moved the model towards ridge at every pool size: M* <= {_size(sizes[0])}",
        )  # fmt: skip
    i = positive[-1]
    if i == len(sizes) - 1:
        return _result(
            "budget_crossing", description, lower=sizes[-1],
            reason="more training moved the model away from ridge up to the largest finite pool: "
            f"M* > {_size(sizes[-1])}",
        )  # fmt: skip
    lo, hi = np.log(sizes[i]), np.log(sizes[i + 1])
    t = r[i] / (r[i] - r[i + 1])
    return _result("budget_crossing", description, star=np.exp(lo + t * (hi - lo)), lower=sizes[i], upper=sizes[i + 1])


def thresholds(summary: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """Both M* estimates: closer-to-ridge at the final checkpoint, and the budget crossing."""
    final = verdicts[verdicts.step == verdicts.step.max()] if len(verdicts) else verdicts
    return pd.DataFrame([threshold_closer_to_ridge(final), threshold_budget_crossing(summary)])
