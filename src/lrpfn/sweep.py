"""The task-diversity sweep: tidy tables over runs, and the threshold M* (docs/design.md §6).

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
  training budgets crosses: per pool size, the paired log-ratio of delta_ridge at the
  longer and the shorter budget says whether more training moves the model towards ridge
  or away from it (:func:`budget_effect`), resolved by the same rule. The two budgets are
  runs trained to completion with their own full schedules (``thresholds.short_budget``)
  or, where a config cannot afford those, the final and the previous checkpoint of one run
  (a proxy: that checkpoint's learning rate is still high); the table says which.

"Ridge" above is the generalising solution, the Bayes predictor of the true prior: ridge
under the default Gaussian prior. Tables name it by its role, ``bayes``, whatever the prior
(columns ``delta_bayes``, verdict 'bayes', method 'closer_to_bayes'); under another prior
ridge is the moment-matched Gaussian baseline, role ``ridge``. What the budget crossing
compared is in columns: ``budgets`` ('runs': two runs trained to completion;
'checkpoints': two checkpoints of one run; 'none'), ``long_step`` and ``short_step``.

:func:`sweep_tables` computes all of it, for all seeds together and for each seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .evaluate import metric_columns

KEYS = ["pool_size", "seed", "step", "tasks"]
RESOLVED_SE = 2.0  # a difference counts only beyond this many standard errors
GENERALISING = "bayes"  # the role the PFN should approach on new tasks
NAME = "the true prior's Bayes predictor"


def pool_size_value(pool_size: pd.Series) -> pd.Series:
    return pool_size.astype(float)


def at_final_step(table: pd.DataFrame) -> pd.Series:
    """Whether each row is at its pool size's last step (the final checkpoint the figures show)."""
    return table.step == table.groupby("pool_size").step.transform("max")


def summarise(per_position: pd.DataFrame) -> pd.DataFrame:
    """Average every metric over positions: one row per (pool_size, seed, step, tasks)."""
    summary = per_position.groupby(KEYS, sort=False)[metric_columns(per_position)].mean().reset_index()
    summary["pool_size_value"] = pool_size_value(summary["pool_size"])
    return summary.sort_values(["pool_size_value", "seed", "tasks", "step"], ignore_index=True)


def over_seeds(table: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """Each metric's mean and standard deviation over seeds (``<metric>``, ``<metric>_sd``;
    the sd is NaN for one seed) per ``keys``, with ``n_seeds`` and, where the table has
    steps, ``final`` (the row is at its pool size's last step): what the figures draw."""
    grouped = table.groupby(keys, sort=False)
    out = grouped[metrics].mean()
    out = out.join(grouped[metrics].std(ddof=1).rename(columns=lambda c: f"{c}_sd"))
    out.insert(0, "n_seeds", grouped.seed.nunique())
    out = out.reset_index()
    if "step" in keys:
        out["final"] = at_final_step(out)
    out["pool_size_value"] = pool_size_value(out["pool_size"])
    return out.sort_values(["pool_size_value", *(k for k in keys if k != "pool_size")], ignore_index=True)


def smooth_loss(log: pd.DataFrame) -> pd.Series:
    """One run's training loss as a running mean over 1 % of its logged steps (at least one)."""
    return log.loss.rolling(max(1, len(log) // 100), min_periods=1).mean()


def closeness(sequences: pd.DataFrame) -> pd.DataFrame:
    """Per finite pool size and step, on T_true: is the model closer to ridge or to dMMSE?

    ``sequences`` has one row per (pool_size, seed, step, tasks, sequence) with the metrics
    averaged over positions. Columns of the result: ``diff`` (mean over sequences of
    ``delta_ridge - delta_dmmse``; negative = closer to ridge), ``diff_se`` (its standard
    error over sequences, paired: both predictors see the same sequences), ``z`` and
    ``closer`` ('bayes', 'dmmse' or 'unresolved'), plus ``n_sequences`` and ``n_seeds``.
    """
    true = _on_new_tasks(sequences)
    paired = true.assign(d=true[f"delta_{GENERALISING}"] - true.delta_dmmse)
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


def verdict(diff: float, se: float, baseline: str = GENERALISING) -> str:
    """``baseline`` when ``diff`` is below zero by more than RESOLVED_SE standard errors,
    'dmmse' when above by as much, else 'unresolved'."""
    if not math.isfinite(diff) or not se >= 0:
        return "unresolved"
    if diff < -RESOLVED_SE * se:
        return baseline
    if diff > RESOLVED_SE * se:
        return "dmmse"
    return "unresolved"


def _result(method: str, description: str, star=math.nan, lower=math.nan, upper=math.nan, reason: str = "") -> dict:
    return {
        "method": method,
        "baseline": GENERALISING,
        "pool_size_star": float(star),
        "lower": float(lower),
        "upper": float(upper),
        "reason": reason,
        "description": description,
    }


def _size(value: float) -> str:
    return f"{value:g}"


def threshold_closer_to_bayes(verdicts: pd.DataFrame) -> dict:
    """M* (a) from one step's :func:`closeness` rows: the smallest finite M from which every
    larger finite M is resolved closer to the true prior's Bayes predictor, with M* in (lower, upper]."""
    baseline, method, name = GENERALISING, f"closer_to_{GENERALISING}", NAME
    description = (
        f"smallest M from which the model is closer to {name} than to dMMSE on T_true at every larger finite M, "
        f"each by more than {RESOLVED_SE:g} standard errors of the paired per-sequence difference "
        f"(final checkpoint, seeds averaged); M* lies in (lower, upper]"
    )
    table = verdicts.sort_values("pool_size_value")
    sizes, closer = table.pool_size_value.to_numpy(), table.closer.to_list()
    if len(sizes) == 0:
        return _result(method, description, reason="no finite pool size")
    if closer[-1] != baseline:
        state = "closer to dMMSE" if closer[-1] == "dmmse" else "not resolved either way"
        return _result(
            method, description, lower=sizes[-1],
            reason=f"the largest finite pool, M={_size(sizes[-1])}, is {state}: M* > {_size(sizes[-1])}",
        )  # fmt: skip
    i, j = _bracket(closer, above=baseline, below="dmmse")
    if i == 0:
        return _result(
            method, description, upper=sizes[0],
            reason=f"closer to {name} at every pool size: M* <= {_size(sizes[0])}",
        )  # fmt: skip
    if j == i - 1:
        return _result(method, description, star=sizes[i], lower=sizes[j], upper=sizes[i])
    return _unresolved(method, description, sizes, closer, i, j)


def budget_effect(long: pd.DataFrame, short: pd.DataFrame) -> pd.DataFrame:
    """Per finite pool size on T_true: does more training move the model towards ridge?

    ``long`` and ``short`` are per-sequence tables (one step per pool size each: the longer
    and the shorter budget). ``r = log(delta_ridge(long) / delta_ridge(short))`` of the means
    over sequences (seeds averaged per sequence), with its standard error by the delta
    method over the paired sequences; ``effect`` is 'away' (r > 0 by more than
    :data:`RESOLVED_SE` standard errors), 'towards' (r < 0 by as much) or 'unresolved'.
    """
    delta = f"delta_{GENERALISING}"
    rows, short = [], _on_new_tasks(short)
    for pool_size, a_table in _on_new_tasks(long).groupby("pool_size", sort=False):
        b_table = short[short.pool_size == pool_size]
        if not len(b_table):
            continue
        a = a_table.groupby("sequence")[delta].mean()
        b = b_table.groupby("sequence")[delta].mean().reindex(a.index)
        n, mean_a, mean_b = len(a), a.mean(), b.mean()
        cov = np.cov(a.to_numpy(), b.to_numpy(), ddof=1) if n > 1 else np.full((2, 2), np.nan)
        var_r = (cov[0, 0] / mean_a**2 + cov[1, 1] / mean_b**2 - 2 * cov[0, 1] / (mean_a * mean_b)) / n
        r, se = float(np.log(mean_a / mean_b)), float(np.sqrt(max(var_r, 0.0)))
        rows.append(
            {
                "pool_size": pool_size,
                "pool_size_value": float(pool_size),
                "long_step": int(a_table.step.max()),
                "short_step": int(b_table.step.max()),
                f"{delta}_long": mean_a,
                f"{delta}_short": mean_b,
                "r": r,
                "r_se": se,
                "effect": {GENERALISING: "towards", "dmmse": "away", "unresolved": "unresolved"}[verdict(r, se)],
            }
        )
    columns = ["pool_size", "pool_size_value", "long_step", "short_step", f"{delta}_long", f"{delta}_short"]
    columns += ["r", "r_se", "effect"]
    return pd.DataFrame(rows, columns=columns).sort_values("pool_size_value", ignore_index=True)


def _on_new_tasks(sequences: pd.DataFrame) -> pd.DataFrame:
    return sequences[(sequences.tasks == "true") & (sequences.pool_size != "inf")]


def threshold_budget_crossing(effects: pd.DataFrame, budgets: str) -> dict:
    """M* (b), Raventós et al.: where the distance to ridge on T_true at two training budgets crosses.

    From :func:`budget_effect`: below M* more training moves the model away from ridge, above
    it towards ridge. M* is the zero of r, interpolated linearly in log M, between the
    smallest M from which every larger finite M is resolved 'towards' and the size below
    it, provided that one is resolved 'away'; otherwise NaN with the reason and a bracket.
    ``budgets`` says what was compared, for the description.
    """
    name = NAME
    description = (
        f"M where delta_{GENERALISING} on T_true at two budgets ({budgets}) crosses, each side resolved by "
        f"{RESOLVED_SE:g} standard errors of the paired log-ratio; log-linear interpolation of the log-ratio"
    )
    table = effects.sort_values("pool_size_value")
    sizes, effect, r = table.pool_size_value.to_numpy(), table.effect.to_list(), table.r.to_numpy()
    if len(sizes) < 2:
        return _result("budget_crossing", description, reason="fewer than two finite pool sizes with two budgets")
    if effect[-1] != "towards":
        state = f"away from {name}" if effect[-1] == "away" else "neither way resolved"
        return _result(
            "budget_crossing", description, lower=sizes[-1],
            reason=f"at the largest finite pool, M={_size(sizes[-1])}, more training moved the model {state}: "
            f"M* > {_size(sizes[-1])}",
        )  # fmt: skip
    i, j = _bracket(effect, above="towards", below="away")
    if i == 0:
        return _result(
            "budget_crossing", description, upper=sizes[0],
            reason=f"more training moved the model towards {name} at every pool size: M* <= {_size(sizes[0])}",
        )  # fmt: skip
    if j == i - 1:
        lo, hi = np.log(sizes[j]), np.log(sizes[i])
        t = r[j] / (r[j] - r[i])
        return _result("budget_crossing", description, star=np.exp(lo + t * (hi - lo)), lower=sizes[j], upper=sizes[i])
    return _unresolved("budget_crossing", description, sizes, effect, i, j)


def _bracket(states: list[str], above: str, below: str) -> tuple[int, int]:
    """``i``: where the run of ``above`` states that ends at the largest size begins;
    ``j``: the largest index below ``i`` in state ``below`` (-1 if none)."""
    i = len(states)
    while i > 0 and states[i - 1] == above:
        i -= 1
    j = i - 1
    while j >= 0 and states[j] != below:
        j -= 1
    return i, j


def _unresolved(method: str, description: str, sizes, states: list[str], i: int, j: int) -> dict:
    """NaN with the bracket (sizes[j], sizes[i]] when sizes between them are unresolved."""
    lower, upper = (sizes[j] if j >= 0 else math.nan), sizes[i]
    unresolved = ", ".join(
        _size(s) for s, c in zip(sizes[j + 1 : i], states[j + 1 : i], strict=True) if c == "unresolved"
    )
    where = f"M* lies in ({_size(lower)}, {_size(upper)}]" if math.isfinite(lower) else f"M* <= {_size(upper)}"
    return _result(
        method, description, lower=lower, upper=upper,
        reason=f"M={unresolved} not resolved (|difference| <= {RESOLVED_SE:g} SE): {where}",
    )  # fmt: skip


@dataclass(frozen=True)
class Budgets:
    """What the crossing estimate compares: ``kind`` 'runs' (runs trained to completion on
    two budgets), 'checkpoints' (the final and the previous checkpoint of one run) or
    'none' (a single checkpoint), and the two steps."""

    kind: str
    long_step: int
    short_step: float  # NaN for 'none'

    def describe(self) -> str:
        if self.kind == "runs":
            return f"runs of {self.long_step} and of {self.short_step:g} steps, each with its full schedule"
        if self.kind == "checkpoints":
            return (
                f"checkpoints {self.short_step:g} and {self.long_step} of one run, a proxy for a shorter budget "
                "trained to completion"
            )
        return "a single checkpoint: no second budget"


def budgets(sequences: pd.DataFrame, short: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame, Budgets]:
    """The two budgets compared by the crossing estimate: (long, short, what they are).

    With ``short`` (the final checkpoints of runs trained to completion on a shorter budget)
    these are two budgets as Raventós et al. compared them; without, the previous checkpoint
    of the same run stands in for the shorter budget — a proxy, its learning rate still high.
    """
    steps = sorted(sequences.step.unique())
    long = sequences[sequences.step == steps[-1]]
    if short is not None:
        return long, short, Budgets("runs", int(steps[-1]), int(short.step.max()))
    if len(steps) < 2:
        return long, long.iloc[:0], Budgets("none", int(steps[-1]), math.nan)
    return long, sequences[sequences.step == steps[-2]], Budgets("checkpoints", int(steps[-1]), int(steps[-2]))


def thresholds(verdicts: pd.DataFrame, effects: pd.DataFrame, compared: Budgets) -> pd.DataFrame:
    """Both M* estimates — closer to the true prior's Bayes predictor at the final checkpoint,
    and the budget crossing — with the budgets compared as columns (``budgets``,
    ``long_step``, ``short_step``; the closer-to-Bayes row has the final step only)."""
    final = verdicts[verdicts.step == verdicts.step.max()] if len(verdicts) else verdicts
    closer = threshold_closer_to_bayes(final) | {"budgets": "", "long_step": compared.long_step, "short_step": math.nan}
    crossing = threshold_budget_crossing(effects, compared.describe()) | {
        "budgets": compared.kind, "long_step": compared.long_step, "short_step": compared.short_step,
    }  # fmt: skip
    return pd.DataFrame([closer, crossing])


def sweep_tables(sequences: pd.DataFrame, short: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """``closeness``, ``budget_effect`` and ``thresholds`` of a sweep, from its per-sequence
    tables; thresholds for all seeds together (``seeds`` 'all') and, with several seeds trained
    at every pool size, for each of them alone, so their spread shows."""
    groups = {"all": (sequences, short)}
    per_size = sequences.groupby("pool_size").seed.unique()
    seeds = sorted(set.intersection(*(set(s) for s in per_size)))
    if len(seeds) > 1:
        for seed in seeds:
            groups[str(seed)] = (
                sequences[sequences.seed == seed],
                None if short is None else short[short.seed == seed],
            )
    tables: dict[str, list[pd.DataFrame]] = {"closeness": [], "budget_effect": [], "thresholds": []}
    for name, (group, group_short) in groups.items():
        long, shorter, compared = budgets(group, group_short)
        verdicts, effects = closeness(group), budget_effect(long, shorter)
        for key, table in (("closeness", verdicts), ("budget_effect", effects)):
            tables[key].append(table.assign(seeds=name))
        table = thresholds(verdicts, effects, compared)
        tables["thresholds"].append(table.assign(seeds=name))
    return {key: pd.concat(value, ignore_index=True) for key, value in tables.items()}
