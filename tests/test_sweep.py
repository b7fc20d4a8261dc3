"""The threshold M*: per-pool-size verdicts and both estimates, on tables whose answers are known by construction."""

import math

import numpy as np
import pandas as pd
import pytest

from lrpfn.sweep import (
    RESOLVED_SE,
    closeness,
    threshold_budget_crossing,
    threshold_closer_to_ridge,
    thresholds,
    verdict,
)

SIZES = [1.0, 4.0, 16.0, 64.0, 256.0]


# --- builders -------------------------------------------------------------------------------------------------------


def sequence_rows(pool_size: str, diffs, seed: int = 0, step: int = 1000, tasks: str = "true") -> pd.DataFrame:
    """One row per sequence with delta_ridge - delta_dmmse = diffs[i].

    delta_dmmse varies a lot between sequences, so only a paired difference recovers ``diffs``'s spread.
    """
    diffs = np.asarray(diffs, dtype=float)
    delta_dmmse = 10.0 + 5.0 * np.arange(len(diffs))
    return pd.DataFrame(
        {
            "pool_size": pool_size,
            "seed": seed,
            "step": step,
            "tasks": tasks,
            "sequence": np.arange(len(diffs)),
            "delta_dmmse": delta_dmmse,
            "delta_ridge": delta_dmmse + diffs,
        }
    )


def diffs_with(mean: float, se: float, n: int = 8) -> np.ndarray:
    """n per-sequence differences whose mean is ``mean`` and whose standard error is ``se``."""
    z = np.arange(n) - (n - 1) / 2
    z = z / z.std(ddof=1)  # sample mean 0, sample std 1
    return mean + se * math.sqrt(n) * z


def verdicts_table(closer, sizes=SIZES, step: int = 1000) -> pd.DataFrame:
    """closeness()-shaped rows with the given verdicts, one per pool size."""
    sizes = sizes[: len(closer)]
    return pd.DataFrame(
        {
            "pool_size": [f"{s:g}" for s in sizes],
            "pool_size_value": sizes,
            "step": step,
            "closer": list(closer),
        }
    )


def summary_rows(budgets: dict, seed: int = 0, tasks: str = "true", steps=(900, 1000)) -> pd.DataFrame:
    """Summary rows from {pool_size: (delta_ridge at the previous checkpoint, at the final one)}.

    An early checkpoint (step 100) with an extreme value is added: only the last two checkpoints may count.
    """
    rows = []
    for pool_size, (previous, final) in budgets.items():
        for step, value in [(100, 1e6), (steps[0], previous), (steps[1], final)]:
            row = {"pool_size": pool_size, "seed": seed, "step": step, "tasks": tasks, "delta_ridge": value}
            rows.append(row | {"delta_dmmse": 1.0})
    return pd.DataFrame(rows)


def budgets_from_r(r_values, sizes=SIZES) -> dict:
    """{pool_size: (1, e^r)}: log(final / previous) = r at each pool size."""
    return {f"{s:g}": (1.0, math.exp(r)) for s, r in zip(sizes[: len(r_values)], r_values, strict=True)}


def log_linear_zero(m1: float, r1: float, m2: float, r2: float) -> float:
    """The zero of r, linear in log M, through (m1, r1) and (m2, r2)."""
    return math.exp(math.log(m1) + r1 / (r1 - r2) * (math.log(m2) - math.log(m1)))


def assert_nan(value: float):
    assert math.isnan(value), value


# --- closeness: the paired difference and its verdict ---------------------------------------------------------------


def test_closeness_diff_and_se_are_the_paired_mean_and_standard_error():
    diffs = np.array([0.3, -0.1, 0.7, 0.2, -0.4, 0.9])
    row = closeness(sequence_rows("4", diffs)).iloc[0]
    assert row["diff"] == pytest.approx(diffs.mean(), rel=1e-12)
    # The SE of the difference; an unpaired SE would include delta_dmmse's spread of 5 per sequence.
    assert row.diff_se == pytest.approx(diffs.std(ddof=1) / math.sqrt(len(diffs)), rel=1e-12)
    assert row.z == pytest.approx(row["diff"] / row.diff_se, rel=1e-12)
    assert (row.n_sequences, row.n_seeds) == (6, 1)


def test_closeness_averages_seeds_per_sequence_before_the_standard_error():
    # Per sequence the seeds share a signal (1, 3) and carry opposite noise (+-e): their mean is exactly the
    # signal, whose SE over two sequences is |3 - 1| / 2 = 1. Seed 0 alone has differences (6, -4), SE 5;
    # seed 1 alone (-4, 10), SE 7.
    signal, noise = np.array([1.0, 3.0]), np.array([5.0, -7.0])
    table = pd.concat([sequence_rows("4", signal + noise, seed=0), sequence_rows("4", signal - noise, seed=1)])
    row = closeness(table).iloc[0]
    assert row["diff"] == pytest.approx(2.0, rel=1e-12)
    assert row.diff_se == pytest.approx(1.0, rel=1e-12)
    assert (row.n_sequences, row.n_seeds) == (2, 2)
    for seed, se_alone in [(0, 5.0), (1, 7.0)]:
        assert closeness(table[table.seed == seed]).iloc[0].diff_se == pytest.approx(se_alone, rel=1e-12)


def test_closeness_ignores_the_infinite_pool_and_the_runs_own_tasks():
    true_4, true_16 = [0.1, 0.2, 0.6], [-0.5, -0.3, -0.4]
    table = pd.concat(
        [
            sequence_rows("16", true_16),
            sequence_rows("4", true_4),
            sequence_rows("4", [100.0, 200.0, 300.0], tasks="pool"),
            sequence_rows("inf", [-9.0, -8.0, -7.0]),
        ]
    )
    result = closeness(table)
    # Only finite pool sizes, in numeric order ('16' sorts before '4' as a string).
    assert result.pool_size.to_list() == ["4", "16"]
    assert result["diff"].to_list() == pytest.approx([np.mean(true_4), np.mean(true_16)], rel=1e-12)


def test_closeness_keeps_steps_apart():
    table = pd.concat([sequence_rows("4", [1.0, 2.0], step=500), sequence_rows("4", [-1.0, -3.0], step=1000)])
    result = closeness(table)
    assert result.step.to_list() == [500, 1000]
    assert result["diff"].to_list() == pytest.approx([1.5, -2.0], rel=1e-12)


@pytest.mark.parametrize(
    ("z", "expected"),
    [(-2.5, "ridge"), (2.5, "dmmse"), (-1.5, "unresolved"), (1.5, "unresolved")],
)
def test_closeness_verdict_resolves_beyond_two_standard_errors(z, expected):
    se = 0.04
    row = closeness(sequence_rows("4", diffs_with(z * se, se))).iloc[0]
    # The table really has the intended mean and SE, so the verdict is decided by z alone.
    assert row["diff"] == pytest.approx(z * se, rel=1e-12)
    assert row.diff_se == pytest.approx(se, rel=1e-12)
    assert row.closer == expected


def test_verdict_boundary_and_degenerate_inputs():
    assert RESOLVED_SE == 2.0
    # Exactly at the threshold is not beyond it.
    assert verdict(-2.0, 1.0) == "unresolved"
    assert verdict(2.0, 1.0) == "unresolved"
    assert verdict(-2.0001, 1.0) == "ridge"
    assert verdict(2.0001, 1.0) == "dmmse"
    # No standard error (a single sequence) or no difference: nothing is resolved.
    assert verdict(-5.0, math.nan) == "unresolved"
    assert verdict(math.nan, 1.0) == "unresolved"


def test_closeness_single_sequence_is_unresolved():
    row = closeness(sequence_rows("4", [-3.0])).iloc[0]
    assert_nan(row.diff_se)
    assert row.closer == "unresolved"


# --- M* closer to ridge ---------------------------------------------------------------------------------------------


def test_closer_to_ridge_clean_transition():
    result = threshold_closer_to_ridge(verdicts_table(["dmmse", "dmmse", "ridge", "ridge"]))
    assert (result["pool_size_star"], result["lower"], result["upper"]) == (16.0, 4.0, 16.0)
    assert result["reason"] == ""
    assert result["method"] == "closer_to_ridge"


def test_closer_to_ridge_noisy_curve_uses_the_last_ridge_run():
    # The early 'ridge' at M=4 is not followed by ridge everywhere: M* starts the final run, at 64.
    result = threshold_closer_to_ridge(verdicts_table(["dmmse", "ridge", "dmmse", "ridge", "ridge"]))
    assert (result["pool_size_star"], result["lower"], result["upper"]) == (64.0, 16.0, 64.0)


def test_closer_to_ridge_sorts_pool_sizes_numerically():
    table = verdicts_table(["dmmse", "dmmse", "ridge", "ridge"]).iloc[[0, 2, 1, 3]]  # '1', '16', '4', '64'
    result = threshold_closer_to_ridge(table)
    assert (result["pool_size_star"], result["lower"], result["upper"]) == (16.0, 4.0, 16.0)


def test_closer_to_ridge_unresolved_just_below_the_ridge_run_gives_a_bracket():
    result = threshold_closer_to_ridge(verdicts_table(["dmmse", "unresolved", "ridge"]))
    assert_nan(result["pool_size_star"])
    assert (result["lower"], result["upper"]) == (1.0, 16.0)
    assert "M=4 not resolved" in result["reason"]


def test_closer_to_ridge_bracket_reaches_down_to_the_largest_dmmse_size():
    # M* could be 16 (if M=4 and 16 were ridge) or 64: the bracket is (1, 64], both unresolved sizes named.
    result = threshold_closer_to_ridge(verdicts_table(["dmmse", "unresolved", "unresolved", "ridge"]))
    assert_nan(result["pool_size_star"])
    assert (result["lower"], result["upper"]) == (1.0, 64.0)
    assert "M=4, 16 not resolved" in result["reason"]


def test_closer_to_ridge_unresolved_without_any_dmmse_below_has_no_lower_bound():
    result = threshold_closer_to_ridge(verdicts_table(["unresolved", "unresolved", "ridge"]))
    assert_nan(result["pool_size_star"])
    assert_nan(result["lower"])
    assert result["upper"] == 16.0


@pytest.mark.parametrize(("last", "state"), [("dmmse", "closer to dMMSE"), ("unresolved", "not resolved")])
def test_closer_to_ridge_no_crossing_when_the_largest_pool_is_not_ridge(last, state):
    result = threshold_closer_to_ridge(verdicts_table(["dmmse", "ridge", "ridge", last]))
    assert_nan(result["pool_size_star"])
    assert result["lower"] == 64.0
    assert_nan(result["upper"])
    assert state in result["reason"] and "M* > 64" in result["reason"]


def test_closer_to_ridge_all_ridge_bounds_from_above_only():
    result = threshold_closer_to_ridge(verdicts_table(["ridge", "ridge", "ridge"]))
    assert_nan(result["pool_size_star"])
    assert_nan(result["lower"])
    assert result["upper"] == 1.0
    assert "M* <= 1" in result["reason"]


def test_closer_to_ridge_without_pool_sizes():
    result = threshold_closer_to_ridge(verdicts_table([]))
    assert_nan(result["pool_size_star"])
    assert result["reason"] == "no finite pool size"


def test_closer_to_ridge_from_closeness_end_to_end():
    # Means of +3, +3, -3, -3 standard errors: dmmse, dmmse, ridge, ridge -> M* = 16.
    se = 0.01
    table = pd.concat(
        [sequence_rows(f"{m:g}", diffs_with(z * se, se)) for m, z in zip(SIZES[:4], [3, 3, -3, -3], strict=True)]
    )
    verdicts = closeness(table)
    assert verdicts.closer.to_list() == ["dmmse", "dmmse", "ridge", "ridge"]
    assert threshold_closer_to_ridge(verdicts)["pool_size_star"] == 16.0


# --- M* from the budget crossing ------------------------------------------------------------------------------------


def test_budget_crossing_exact_zero_at_a_pool_size():
    # r = +, 0, -: the previous and final delta_ridge are equal at M=4, so r crosses zero exactly there.
    summary = summary_rows({"1": (1.0, 2.0), "4": (3.0, 3.0), "16": (2.0, 1.0)})
    result = threshold_budget_crossing(summary)
    assert result["pool_size_star"] == pytest.approx(4.0, rel=1e-12)
    assert (result["lower"], result["upper"]) == (1.0, 4.0)
    assert result["method"] == "budget_crossing"


def test_budget_crossing_interpolates_linearly_in_log_pool_size():
    # r = +a at M=4 and -b at M=16 with a = log 2, b = log 4: M* = 4 * 4^(1/3).
    summary = summary_rows({"1": (1.0, 5.0), "4": (1.0, 2.0), "16": (1.0, 0.25)})
    a, b = math.log(2.0), math.log(4.0)
    expected = math.exp(math.log(4.0) + a / (a + b) * (math.log(16.0) - math.log(4.0)))
    result = threshold_budget_crossing(summary)
    assert result["pool_size_star"] == pytest.approx(expected, rel=1e-12)
    assert result["pool_size_star"] == pytest.approx(4.0 * 4.0 ** (1 / 3), rel=1e-12)
    assert (result["lower"], result["upper"]) == (4.0, 16.0)
    assert result["reason"] == ""


def test_budget_crossing_uses_the_last_two_checkpoints():
    summary = summary_rows({"1": (1.0, 2.0), "4": (2.0, 1.0)}, steps=(900, 1000))
    result = threshold_budget_crossing(summary)
    assert result["pool_size_star"] == pytest.approx(2.0, rel=1e-12)  # symmetric r = +-log 2: midway in log M
    assert "900 and 1000 steps" in result["description"]


def test_budget_crossing_noisy_curve_uses_the_last_positive_r():
    r = [0.5, -0.2, 0.3, -0.1, -0.4]
    result = threshold_budget_crossing(summary_rows(budgets_from_r(r)))
    assert (result["lower"], result["upper"]) == (16.0, 64.0)
    assert result["pool_size_star"] == pytest.approx(log_linear_zero(16.0, 0.3, 64.0, -0.1), rel=1e-12)


def test_budget_crossing_none_when_r_is_positive_up_to_the_largest_pool():
    result = threshold_budget_crossing(summary_rows(budgets_from_r([0.4, -0.1, 0.2])))
    assert_nan(result["pool_size_star"])
    assert result["lower"] == 16.0
    assert_nan(result["upper"])
    assert "M* > 16" in result["reason"]


def test_budget_crossing_none_when_r_is_never_positive():
    # r = 0 exactly counts as "not away from ridge".
    result = threshold_budget_crossing(summary_rows({"1": (2.0, 2.0), "4": (1.0, 0.5), "16": (1.0, 0.9)}))
    assert_nan(result["pool_size_star"])
    assert_nan(result["lower"])
    assert result["upper"] == 1.0
    assert "M* <= 1" in result["reason"]


def test_budget_crossing_ignores_the_infinite_pool_and_the_runs_own_tasks():
    true = {"1": (1.0, 2.0), "4": (1.0, 0.5)}
    clean = threshold_budget_crossing(summary_rows(true))
    noisy = pd.concat(
        [
            summary_rows(true),
            summary_rows({"inf": (1.0, 10.0)}),  # r > 0 at the largest size would mean no crossing
            summary_rows({"1": (1.0, 0.1), "4": (1.0, 10.0)}, tasks="pool"),  # the opposite curve
        ]
    )
    result = threshold_budget_crossing(noisy)
    assert result["pool_size_star"] == pytest.approx(2.0, rel=1e-12)
    assert result == clean


def test_budget_crossing_averages_seeds_before_the_ratio():
    # At M=4 seed 0 has r = log 2 and seed 1 has r = log 0.6: seed 0 alone, or the mean of the two logs
    # (log 1.2 / 2), is > 0 and gives no crossing. The seed means, 5.5 then 4, give r = log(8/11) < 0.
    summary = pd.concat(
        [
            summary_rows({"1": (1.0, 2.0), "4": (1.0, 2.0)}, seed=0),
            summary_rows({"1": (1.0, 2.0), "4": (10.0, 6.0)}, seed=1),
        ]
    )
    r1, r4 = math.log(2.0), math.log(8.0 / 11.0)
    result = threshold_budget_crossing(summary)
    assert result["pool_size_star"] == pytest.approx(log_linear_zero(1.0, r1, 4.0, r4), rel=1e-12)
    assert (result["lower"], result["upper"]) == (1.0, 4.0)


def test_budget_crossing_needs_two_pool_sizes_with_two_checkpoints():
    one_checkpoint = summary_rows({"4": (1.0, 0.5)})
    one_checkpoint = one_checkpoint[one_checkpoint.step == 1000]
    summary = pd.concat([summary_rows({"1": (1.0, 2.0)}), one_checkpoint])
    result = threshold_budget_crossing(summary)
    assert_nan(result["pool_size_star"])
    assert "fewer than two" in result["reason"]


# --- both estimates -------------------------------------------------------------------------------------------------


def test_thresholds_uses_the_final_step_for_closer_to_ridge():
    # The final step (listed first) gives M* = 16; the earlier step alone would give no crossing, and mixing
    # the two steps would not give 16 either.
    verdicts = pd.concat(
        [
            verdicts_table(["dmmse", "dmmse", "ridge", "ridge"], step=1000),
            verdicts_table(["ridge", "ridge", "ridge", "dmmse"], step=500),
        ],
        ignore_index=True,
    )
    summary = summary_rows({"1": (1.0, 2.0), "4": (2.0, 1.0)})
    result = thresholds(summary, verdicts).set_index("method")
    assert result.index.to_list() == ["closer_to_ridge", "budget_crossing"]
    closer = result.loc["closer_to_ridge"]
    assert (closer.pool_size_star, closer.lower, closer.upper) == (16.0, 4.0, 16.0)
    assert result.loc["budget_crossing"].pool_size_star == pytest.approx(2.0, rel=1e-12)
