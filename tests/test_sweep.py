"""The threshold M*: per-pool-size verdicts and both estimates, on tables whose answers are known by construction."""

import math

import numpy as np
import pandas as pd
import pytest

from lrpfn.sweep import (
    RESOLVED_SE,
    Budgets,
    budget_effect,
    budgets,
    closeness,
    over_seeds,
    smooth_loss,
    sweep_tables,
    threshold_budget_crossing,
    threshold_closer_to_bayes,
    thresholds,
    verdict,
)

SIZES = [1.0, 4.0, 16.0, 64.0, 256.0]


# --- builders -------------------------------------------------------------------------------------------------------


def sequence_rows(pool_size: str, diffs, seed: int = 0, step: int = 1000, tasks: str = "true") -> pd.DataFrame:
    """One row per sequence with delta_bayes - delta_dmmse = diffs[i].

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
            "delta_bayes": delta_dmmse + diffs,
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


def bayes_rows(pool_size: str, delta_bayes, seed: int = 0, step: int = 1000, tasks: str = "true") -> pd.DataFrame:
    """One row per sequence with the given delta_bayes (and delta_dmmse one above it)."""
    delta_bayes = np.asarray(delta_bayes, dtype=float)
    return pd.DataFrame(
        {
            "pool_size": pool_size,
            "seed": seed,
            "step": step,
            "tasks": tasks,
            "sequence": np.arange(len(delta_bayes)),
            "delta_dmmse": delta_bayes + 1.0,
            "delta_bayes": delta_bayes,
        }
    )


EFFECT_SIGN = {"away": 1.0, "towards": -1.0, "unresolved": 0.1}


def effects_table(effects, r=None, sizes=SIZES) -> pd.DataFrame:
    """budget_effect()-shaped rows with the given effects (r by default of the effect's sign), one per pool size."""
    sizes = sizes[: len(effects)]
    r = [EFFECT_SIGN[e] for e in effects] if r is None else r
    return pd.DataFrame(
        {"pool_size": [f"{s:g}" for s in sizes], "pool_size_value": sizes, "r": r, "effect": list(effects)}
    )


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
    [(-2.5, "bayes"), (2.5, "dmmse"), (-1.5, "unresolved"), (1.5, "unresolved")],
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
    assert verdict(-2.0001, 1.0) == "bayes"
    assert verdict(2.0001, 1.0) == "dmmse"
    # No standard error (a single sequence) or no difference: nothing is resolved.
    assert verdict(-5.0, math.nan) == "unresolved"
    assert verdict(math.nan, 1.0) == "unresolved"


def test_closeness_single_sequence_is_unresolved():
    row = closeness(sequence_rows("4", [-3.0])).iloc[0]
    assert_nan(row.diff_se)
    assert row.closer == "unresolved"


# --- M* closer to Bayes ---------------------------------------------------------------------------------------------


def test_closer_to_bayes_clean_transition():
    result = threshold_closer_to_bayes(verdicts_table(["dmmse", "dmmse", "bayes", "bayes"]))
    assert (result["pool_size_star"], result["lower"], result["upper"]) == (16.0, 4.0, 16.0)
    assert result["reason"] == ""
    assert result["method"] == "closer_to_bayes"


def test_closer_to_bayes_noisy_curve_uses_the_last_bayes_run():
    # The early 'bayes' at M=4 is not followed by bayes everywhere: M* starts the final run, at 64.
    result = threshold_closer_to_bayes(verdicts_table(["dmmse", "bayes", "dmmse", "bayes", "bayes"]))
    assert (result["pool_size_star"], result["lower"], result["upper"]) == (64.0, 16.0, 64.0)


def test_closer_to_bayes_sorts_pool_sizes_numerically():
    table = verdicts_table(["dmmse", "dmmse", "bayes", "bayes"]).iloc[[0, 2, 1, 3]]  # '1', '16', '4', '64'
    result = threshold_closer_to_bayes(table)
    assert (result["pool_size_star"], result["lower"], result["upper"]) == (16.0, 4.0, 16.0)


def test_closer_to_bayes_unresolved_just_below_the_bayes_run_gives_a_bracket():
    result = threshold_closer_to_bayes(verdicts_table(["dmmse", "unresolved", "bayes"]))
    assert_nan(result["pool_size_star"])
    assert (result["lower"], result["upper"]) == (1.0, 16.0)
    assert "M=4 not resolved" in result["reason"]


def test_closer_to_bayes_bracket_reaches_down_to_the_largest_dmmse_size():
    # M* could be 16 (if M=4 and 16 were bayes) or 64: the bracket is (1, 64], both unresolved sizes named.
    result = threshold_closer_to_bayes(verdicts_table(["dmmse", "unresolved", "unresolved", "bayes"]))
    assert_nan(result["pool_size_star"])
    assert (result["lower"], result["upper"]) == (1.0, 64.0)
    assert "M=4, 16 not resolved" in result["reason"]


def test_closer_to_bayes_unresolved_without_any_dmmse_below_has_no_lower_bound():
    result = threshold_closer_to_bayes(verdicts_table(["unresolved", "unresolved", "bayes"]))
    assert_nan(result["pool_size_star"])
    assert_nan(result["lower"])
    assert result["upper"] == 16.0


@pytest.mark.parametrize(("last", "state"), [("dmmse", "closer to dMMSE"), ("unresolved", "not resolved")])
def test_closer_to_bayes_no_crossing_when_the_largest_pool_is_not_bayes(last, state):
    result = threshold_closer_to_bayes(verdicts_table(["dmmse", "bayes", "bayes", last]))
    assert_nan(result["pool_size_star"])
    assert result["lower"] == 64.0
    assert_nan(result["upper"])
    assert state in result["reason"] and "M* > 64" in result["reason"]


def test_closer_to_bayes_all_bayes_bounds_from_above_only():
    result = threshold_closer_to_bayes(verdicts_table(["bayes", "bayes", "bayes"]))
    assert_nan(result["pool_size_star"])
    assert_nan(result["lower"])
    assert result["upper"] == 1.0
    assert "M* <= 1" in result["reason"]


def test_closer_to_bayes_without_pool_sizes():
    result = threshold_closer_to_bayes(verdicts_table([]))
    assert_nan(result["pool_size_star"])
    assert result["reason"] == "no finite pool size"


def test_closer_to_bayes_from_closeness_end_to_end():
    # Means of +3, +3, -3, -3 standard errors: dmmse, dmmse, bayes, bayes -> M* = 16.
    se = 0.01
    table = pd.concat(
        [sequence_rows(f"{m:g}", diffs_with(z * se, se)) for m, z in zip(SIZES[:4], [3, 3, -3, -3], strict=True)]
    )
    verdicts = closeness(table)
    assert verdicts.closer.to_list() == ["dmmse", "dmmse", "bayes", "bayes"]
    assert threshold_closer_to_bayes(verdicts)["pool_size_star"] == 16.0


# --- the budget effect: the paired log-ratio and its verdict --------------------------------------------------------


def test_budget_effect_r_and_se_are_the_paired_delta_method_values():
    # long a = (1, 2, 3, 6), short b = (2, 2, 4, 8): means A = 3, B = 4; var(a) = 14/3, var(b) = 8, cov = 6 (ddof=1).
    # var_r = [14/27 + 8/16 - 2 * 6/12] / 4 = 1/216. Unpaired (no covariance) it would be 55/216, and
    # r / SE = -0.57 would be unresolved; paired it is -4.2, towards Bayes.
    long = bayes_rows("4", [1.0, 2.0, 3.0, 6.0], step=1000)
    short = bayes_rows("4", [2.0, 2.0, 4.0, 8.0], step=500).iloc[::-1]  # pairs by sequence, not by row order
    row = budget_effect(long, short).iloc[0]
    assert (row.pool_size, row.long_step, row.short_step) == ("4", 1000, 500)
    assert (row.delta_bayes_long, row.delta_bayes_short) == pytest.approx((3.0, 4.0), rel=1e-12)
    assert row.r == pytest.approx(math.log(3.0 / 4.0), rel=1e-12)
    assert row.r_se == pytest.approx(math.sqrt(1.0 / 216.0), rel=1e-12)
    assert row.r_se < math.sqrt(55.0 / 216.0)
    assert row.effect == "towards"


def test_budget_effect_averages_seeds_per_sequence():
    # The seeds carry opposite noise around the values of the paired test: their per-sequence means are those values.
    a, b = np.array([1.0, 2.0, 3.0, 6.0]), np.array([2.0, 2.0, 4.0, 8.0])
    e, f = np.array([0.5, -1.0, 0.25, 2.0]), np.array([-0.75, 1.5, 0.5, -1.0])
    long = pd.concat([bayes_rows("4", a + e, seed=0), bayes_rows("4", a - e, seed=1)])
    short = pd.concat([bayes_rows("4", b + f, seed=0, step=500), bayes_rows("4", b - f, seed=1, step=500)])
    row = budget_effect(long, short).iloc[0]
    assert row.r == pytest.approx(math.log(3.0 / 4.0), rel=1e-12)
    assert row.r_se == pytest.approx(math.sqrt(1.0 / 216.0), rel=1e-12)
    # Seed 0 alone has other per-sequence values, so another SE.
    seed_0 = budget_effect(long[long.seed == 0], short[short.seed == 0]).iloc[0]
    assert seed_0.r_se != pytest.approx(row.r_se, rel=1e-3)


def test_budget_effect_ignores_the_infinite_pool_and_the_runs_own_tasks():
    def table(step, values_4, values_16):
        return pd.concat(
            [
                bayes_rows("16", values_16, step=step),
                bayes_rows("4", values_4, step=step),
                bayes_rows("4", [step / 10, 1.0, 50.0], step=step, tasks="pool"),  # would change r
                bayes_rows("inf", [9.0, 8.0, 7.0], step=step),
            ]
        )

    result = budget_effect(table(1000, [1.0, 2.0, 3.0], [1.0, 1.0, 4.0]), table(500, [2.0, 2.0, 2.0], [3.0, 4.0, 5.0]))
    # Only finite pool sizes on T_true, in numeric order ('16' sorts before '4' as a string).
    assert result.pool_size.to_list() == ["4", "16"]
    assert result.r.to_list() == pytest.approx([math.log(2.0 / 2.0), math.log(2.0 / 4.0)], rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    ("z", "expected"),
    [(2.5, "away"), (-2.5, "towards"), (1.5, "unresolved"), (-1.5, "unresolved")],
)
def test_budget_effect_resolves_beyond_two_standard_errors(z, expected):
    # long has mean 1 and SE se; short is constant exp(-z se): r = z se with r_se = se exactly.
    se = 0.04
    long = bayes_rows("4", diffs_with(1.0, se))
    short = bayes_rows("4", np.full(8, math.exp(-z * se)), step=500)
    row = budget_effect(long, short).iloc[0]
    assert row.r == pytest.approx(z * se, rel=1e-12)
    assert row.r_se == pytest.approx(se, rel=1e-12)
    assert row.effect == expected


# --- M* from the budget crossing ------------------------------------------------------------------------------------


def test_budget_crossing_exact_zero_at_a_pool_size():
    # r reaches zero exactly at M=16, the first size of the towards-run: t = 1, M* = 16.
    effects = effects_table(["away", "away", "towards", "towards"], r=[0.5, 0.3, 0.0, -0.2])
    result = threshold_budget_crossing(effects, "two budgets")
    assert result["pool_size_star"] == pytest.approx(16.0, rel=1e-12)
    assert (result["lower"], result["upper"]) == (4.0, 16.0)
    assert result["method"] == "budget_crossing"
    assert result["reason"] == ""


def test_budget_crossing_interpolates_linearly_in_log_pool_size():
    # r = +log 2 at M=4 and -log 4 at M=16: M* = 4 * 4^(1/3).
    effects = effects_table(["away", "away", "towards"], r=[1.0, math.log(2.0), -math.log(4.0)])
    result = threshold_budget_crossing(effects, "two budgets")
    assert result["pool_size_star"] == pytest.approx(4.0 * 4.0 ** (1 / 3), rel=1e-12)
    assert (result["lower"], result["upper"]) == (4.0, 16.0)


def test_budget_crossing_description_names_the_budgets():
    result = threshold_budget_crossing(effects_table(["away", "towards"]), "runs of 1000 and of 500 steps")
    assert "runs of 1000 and of 500 steps" in result["description"]


def test_budget_crossing_noisy_curve_uses_the_last_away_size():
    r = [0.5, -0.2, 0.3, -0.1, -0.4]
    result = threshold_budget_crossing(effects_table(["away", "towards", "away", "towards", "towards"], r=r), "")
    assert (result["lower"], result["upper"]) == (16.0, 64.0)
    assert result["pool_size_star"] == pytest.approx(log_linear_zero(16.0, 0.3, 64.0, -0.1), rel=1e-12)


@pytest.mark.parametrize(
    ("last", "state"), [("away", "away from the true prior's Bayes predictor"), ("unresolved", "neither way resolved")]
)
def test_budget_crossing_none_when_the_largest_pool_is_not_towards(last, state):
    result = threshold_budget_crossing(effects_table(["away", "towards", "towards", last]), "")
    assert_nan(result["pool_size_star"])
    assert result["lower"] == 64.0
    assert_nan(result["upper"])
    assert state in result["reason"] and "M* > 64" in result["reason"]


def test_budget_crossing_all_towards_bounds_from_above_only():
    result = threshold_budget_crossing(effects_table(["towards", "towards", "towards"]), "")
    assert_nan(result["pool_size_star"])
    assert_nan(result["lower"])
    assert result["upper"] == 1.0
    assert "M* <= 1" in result["reason"]


@pytest.mark.parametrize(
    ("effects", "lower", "upper", "named"),
    [
        (["away", "unresolved", "towards"], 1.0, 16.0, "M=4 not resolved"),
        (["away", "unresolved", "unresolved", "towards"], 1.0, 64.0, "M=4, 16 not resolved"),
        (["unresolved", "unresolved", "towards"], math.nan, 16.0, "M=1, 4 not resolved"),
    ],
)
def test_budget_crossing_unresolved_just_below_the_towards_run_gives_a_bracket(effects, lower, upper, named):
    result = threshold_budget_crossing(effects_table(effects), "")
    assert_nan(result["pool_size_star"])
    assert result["lower"] == lower or (math.isnan(lower) and math.isnan(result["lower"]))
    assert result["upper"] == upper
    assert named in result["reason"]


@pytest.mark.parametrize("effects", [["towards"], []])
def test_budget_crossing_needs_two_pool_sizes(effects):
    result = threshold_budget_crossing(effects_table(effects), "")
    assert_nan(result["pool_size_star"])
    assert "fewer than two" in result["reason"]


# --- the two budgets ------------------------------------------------------------------------------------------------


def checkpoints(*steps) -> pd.DataFrame:
    return pd.concat([bayes_rows("4", [1.0, 2.0], step=step) for step in steps], ignore_index=True)


def test_budgets_with_short_runs_compares_final_checkpoints_of_two_runs():
    short = bayes_rows("4", [5.0, 6.0], step=500)
    long, shorter, compared = budgets(checkpoints(1000, 100, 900), short)
    assert long.step.unique().tolist() == [1000]
    assert shorter is short
    assert compared == Budgets("runs", 1000, 500)
    label = compared.describe()
    assert label == "runs of 1000 and of 500 steps, each with its full schedule"
    assert "proxy" not in label


def test_budgets_without_short_runs_uses_the_previous_checkpoint_as_a_proxy():
    long, shorter, compared = budgets(checkpoints(1000, 100, 900), None)
    assert long.step.unique().tolist() == [1000]
    assert shorter.step.unique().tolist() == [900]
    assert compared == Budgets("checkpoints", 1000, 900)
    label = compared.describe()
    assert "checkpoints 900 and 1000" in label and "proxy" in label


def test_budgets_single_checkpoint_has_no_second_budget():
    long, shorter, compared = budgets(checkpoints(1000), None)
    assert long.step.unique().tolist() == [1000]
    assert len(shorter) == 0
    assert (compared.kind, compared.long_step) == ("none", 1000)
    assert_nan(compared.short_step)
    assert "no second budget" in compared.describe()


# --- both estimates -------------------------------------------------------------------------------------------------


def test_thresholds_uses_the_final_step_for_closer_to_bayes():
    # The final step (listed first) gives M* = 16; the earlier step alone would give no crossing, and mixing
    # the two steps would not give 16 either.
    verdicts = pd.concat(
        [
            verdicts_table(["dmmse", "dmmse", "bayes", "bayes"], step=1000),
            verdicts_table(["bayes", "bayes", "bayes", "dmmse"], step=500),
        ],
        ignore_index=True,
    )
    effects = effects_table(["away", "towards"], r=[math.log(2.0), -math.log(2.0)])
    compared = Budgets("checkpoints", 1000, 500)
    result = thresholds(verdicts, effects, compared).set_index("method")
    assert result.index.to_list() == ["closer_to_bayes", "budget_crossing"]
    assert result.baseline.to_list() == ["bayes", "bayes"]
    closer = result.loc["closer_to_bayes"]
    assert (closer.pool_size_star, closer.lower, closer.upper) == (16.0, 4.0, 16.0)
    # The closer-to-Bayes estimate reads the final checkpoint only: no second budget.
    assert (closer.budgets, closer.long_step) == ("", 1000)
    assert_nan(closer.short_step)
    crossing = result.loc["budget_crossing"]
    assert crossing.pool_size_star == pytest.approx(2.0, rel=1e-12)  # symmetric r = +-log 2: midway in log M
    assert (crossing.budgets, crossing.long_step, crossing.short_step) == ("checkpoints", 1000, 500)
    assert compared.describe() in crossing.description


# Per seed and pool size (1, 4, 16, 64): delta_bayes at the final checkpoint over the previous one. Seed 0 crosses
# between 1 and 4, seed 1 between 16 and 64; their per-sequence mean (2, 1.25, 1.25, 0.5) between 16 and 64 elsewhere.
FINAL_OVER_PREVIOUS = {0: [2.0, 0.5, 0.5, 0.5], 1: [2.0, 2.0, 2.0, 0.5]}
BASE, NOISE = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.02, -0.02, -0.02, 0.02])  # NOISE: mean 0, uncorrelated


def sweep_sequences() -> pd.DataFrame:
    """Two seeds, checkpoints 900 and 1000: log(final / previous) of the sequence means is log FINAL_OVER_PREVIOUS."""
    rows = []
    for seed, ratios in FINAL_OVER_PREVIOUS.items():
        for size, ratio in zip(SIZES[:4], ratios, strict=True):
            rows += [bayes_rows(f"{size:g}", BASE, seed, step=900)]
            rows += [bayes_rows(f"{size:g}", ratio * BASE + NOISE, seed, step=1000)]
    return pd.concat(rows, ignore_index=True)


def crossing_stars(tables: dict) -> dict:
    result = tables["thresholds"]
    return result[result.method == "budget_crossing"].set_index("seeds").pool_size_star.to_dict()


def test_sweep_tables_thresholds_for_all_seeds_and_each_seed():
    tables = sweep_tables(sweep_sequences())
    assert set(tables) == {"closeness", "budget_effect", "thresholds"}
    pairs = tables["thresholds"][["seeds", "method"]].apply(tuple, axis=1).to_list()
    assert sorted(pairs) == sorted((s, m) for s in ["all", "0", "1"] for m in ["closer_to_bayes", "budget_crossing"])
    for key in ["closeness", "budget_effect"]:
        assert set(tables[key].seeds) == {"all", "0", "1"}
    effects = tables["budget_effect"]
    for seed, ratios in FINAL_OVER_PREVIOUS.items():
        r = effects[effects.seeds == str(seed)].r.to_list()
        assert r == pytest.approx(np.log(ratios), rel=1e-12)
    stars = crossing_stars(tables)
    assert stars["0"] == pytest.approx(2.0, rel=1e-12)
    assert stars["1"] == pytest.approx(32.0, rel=1e-12)
    assert stars["all"] == pytest.approx(log_linear_zero(16.0, math.log(1.25), 64.0, math.log(0.5)), rel=1e-12)
    crossing = tables["thresholds"][tables["thresholds"].method == "budget_crossing"]
    assert all("checkpoints 900 and 1000" in d and "proxy" in d for d in crossing.description)
    assert set(crossing.budgets) == {"checkpoints"}
    assert (set(crossing.long_step), set(crossing.short_step)) == ({1000}, {900})
    assert set(tables["thresholds"].baseline) == {"bayes"}


def test_a_seed_trained_at_some_pool_sizes_only_gets_no_threshold_of_its_own():
    # Seed 1 also at the largest pool size only (extra_seeds): no sweep of its own, so the
    # per-seed groups are those of the seeds at every size, and 'all' still averages it in.
    sequences = sweep_sequences()
    extra = sequences[(sequences.seed == 1) & (sequences.pool_size == f"{SIZES[3]:g}")].assign(seed=2)
    tables = sweep_tables(pd.concat([sequences, extra], ignore_index=True))
    assert set(tables["thresholds"].seeds) == {"all", "0", "1"}
    stars, before = crossing_stars(tables), crossing_stars(sweep_tables(sequences))
    assert (stars["0"], stars["1"]) == (before["0"], before["1"])
    closeness_all = tables["closeness"].query("seeds == 'all'").set_index(["pool_size", "step"])
    assert closeness_all.loc[(f"{SIZES[3]:g}", 1000), "n_seeds"] == 3


def test_sweep_tables_with_short_runs_uses_them_instead_of_the_previous_checkpoint():
    # Short runs of 500 steps with delta_bayes BASE * SHORT[seed]; each seed's final over its short run:
    # seed 0 (2, 1/8, 1/8, 1/8), seed 1 (2, 2, 2, 1/8), per-sequence means (2, 1/2, 1/2, 1/8).
    short_over_previous = {0: [1.0, 4.0, 4.0, 4.0], 1: [1.0, 1.0, 1.0, 4.0]}
    short = pd.concat(
        [
            bayes_rows(f"{m:g}", q * BASE, seed, step=500)
            for seed, ratios in short_over_previous.items()
            for m, q in zip(SIZES[:4], ratios, strict=True)
        ]
    )
    tables = sweep_tables(sweep_sequences(), short)
    assert set(tables["budget_effect"].short_step) == {500}
    stars = crossing_stars(tables)
    assert stars["0"] == pytest.approx(math.sqrt(2.0), rel=1e-12)  # r = log 2, -3 log 2
    assert stars["1"] == pytest.approx(16.0 * math.sqrt(2.0), rel=1e-12)  # r = log 2, -3 log 2
    assert stars["all"] == pytest.approx(2.0, rel=1e-12)  # r = log 2, -log 2
    crossing = tables["thresholds"][tables["thresholds"].method == "budget_crossing"]
    assert all("runs of 1000 and of 500 steps" in d for d in crossing.description)
    assert set(crossing.budgets) == {"runs"}
    assert (set(crossing.long_step), set(crossing.short_step)) == ({1000}, {500})


def test_over_seeds_gives_each_metrics_mean_and_spread_over_seeds():
    rng = np.random.default_rng(0)
    keys = [(m, seed, step) for m in ("4", "inf") for seed in (0, 1, 2) for step in (10, 20)]
    rows = [
        {
            "pool_size": m,
            "seed": seed,
            "step": step,
            "tasks": "true",
            "mse_model": rng.random(),
            "nll_model": rng.random(),
        }
        for m, seed, step in keys
    ]
    table = pd.DataFrame(rows)
    out = over_seeds(table, ["pool_size", "step", "tasks"], ["mse_model", "nll_model"])
    assert len(out) == 4 and (out.n_seeds == 3).all()
    assert out.pool_size.tolist() == ["4", "4", "inf", "inf"] and out.final.tolist() == [False, True, False, True]
    for row in out.itertuples():
        values = table[(table.pool_size == row.pool_size) & (table.step == row.step)].mse_model.to_numpy()
        assert row.mse_model == pytest.approx(values.mean(), rel=1e-12)
        assert row.mse_model_sd == pytest.approx(values.std(ddof=1), rel=1e-12)
    one = over_seeds(table[table.seed == 0], ["pool_size", "step", "tasks"], ["mse_model"])
    assert one.mse_model_sd.isna().all() and (one.n_seeds == 1).all()


def test_smooth_loss_is_a_running_mean_over_one_percent_of_the_steps():
    log = pd.DataFrame({"step": range(1, 351), "loss": np.arange(350, dtype=float) ** 2})
    smooth = smooth_loss(log).to_numpy()  # window 3
    assert smooth[0] == 0 and smooth[1] == pytest.approx(0.5) and smooth[10] == pytest.approx((64 + 81 + 100) / 3)
    assert (smooth_loss(log.iloc[:99]) == log.loss.iloc[:99]).all()  # fewer than 100 steps: no smoothing
