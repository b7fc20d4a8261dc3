"""Workflow tests: the whole pipeline on configs/test.yaml in a temporary directory."""

import copy
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import ks_2samp
from snakemake_interface_common.exceptions import WorkflowError

from lrpfn.config import SCHEMA, ConfigError, check_experiment, complete
from lrpfn.evaluate import METRICS
from lrpfn.implied import MARGINAL_KEYS
from lrpfn.tasks import read_eval_set

from helpers import (
    REPO,
    RESULTS,
    TEST_CONFIG,
    expected_outputs,
    new_workdir,
    planned_jobs,
    planned_wildcards,
    snakemake,
    snakemake_command,
    write_config,
)

pytestmark = pytest.mark.workflow


def test_every_expected_file_is_built(pipeline):
    missing = [f for f in expected_outputs() if not (pipeline / RESULTS / f).is_file()]
    assert not missing
    # No temporary or resume files are left behind.
    leftovers = [p for p in (pipeline / RESULTS).rglob("*") if p.name.endswith(".tmp") or p.name == "resume.pt"]
    assert not leftovers


def test_metrics_table_schema_and_plausible_values(pipeline):
    metrics = pd.read_parquet(pipeline / RESULTS / "tables/metrics.parquet")
    keys = ["pool_size", "seed", "step", "tasks", "position"]
    assert set(keys + METRICS) <= set(metrics.columns)
    assert set(metrics.pool_size) == {"1", "4", "inf"} and set(metrics.tasks) == {"pool", "true"}
    assert sorted(metrics.step.unique()) == [20, 40]
    assert sorted(metrics.position.unique()) == list(range(TEST_CONFIG["context_length"]))
    assert not metrics.duplicated(keys).any()
    assert len(metrics) == 3 * 2 * 2 * TEST_CONFIG["context_length"]
    finite_pool = metrics.pool_size != "inf"
    # dMMSE is defined exactly where the run has a pool.
    assert metrics.loc[finite_pool, METRICS].notna().all().all()
    assert metrics.loc[~finite_pool, ["mse_dmmse", "delta_dmmse", "nll_dmmse"]].isna().all().all()
    values = metrics.loc[finite_pool, METRICS].to_numpy()
    assert np.isfinite(values).all()
    # Ridge predicts 0 at position 0: its MSE/D there is the evaluation set's mean of
    # (w.x_1)^2 / D, for every run and checkpoint alike (float64 sums of the same values).
    eval_true = read_eval_set(pipeline / RESULTS / "tasks/eval_true.parquet")
    expected = (eval_true.target[:, 0].double() ** 2).mean().item() / TEST_CONFIG["dim"]
    first = metrics[(metrics.position == 0) & (metrics.tasks == "true")]
    np.testing.assert_allclose(first.mse_ridge, expected, rtol=1e-12)
    # Under N(0, I) ridge is the true prior's Bayes predictor: one predictor, two roles.
    for metric in ("mse", "delta", "nll"):
        np.testing.assert_array_equal(metrics[f"{metric}_bayes"], metrics[f"{metric}_ridge"])
    assert 0.6 < expected < 1.5  # E(w.x)^2 / D = 1 under the true prior
    # A one-task pool is learned exactly by dMMSE: zero error, the noise entropy as NLL.
    m1 = metrics[(metrics.pool_size == "1") & (metrics.tasks == "pool")]
    assert np.allclose(m1.mse_dmmse, 0)
    noise_entropy = 0.5 * math.log(2 * math.pi * math.e * TEST_CONFIG["noise_var"])
    assert abs(m1.nll_dmmse.mean() - noise_entropy) < 0.15


def test_closeness_and_thresholds_follow_from_the_per_sequence_values(pipeline):
    tables = pipeline / RESULTS / "tables"
    summary = pd.read_parquet(tables / "summary.parquet")
    assert len(summary) == 3 * 2 * 2  # pool sizes x checkpoints x task sets
    sequences = pd.read_parquet(tables / "sequences.parquet")
    assert len(sequences) == 3 * 2 * 2 * TEST_CONFIG["eval"]["n_sequences"]
    closeness = pd.read_parquet(tables / "closeness.parquet")
    assert sorted(closeness.pool_size.unique()) == ["1", "4"] and sorted(closeness.step.unique()) == [20, 40]
    for row in closeness.itertuples():
        s = sequences[
            (sequences.pool_size == row.pool_size) & (sequences.step == row.step) & (sequences.tasks == "true")
        ]
        d = (s.delta_bayes - s.delta_dmmse).to_numpy()
        assert row.diff == pytest.approx(d.mean(), rel=1e-12)
        assert row.diff_se == pytest.approx(d.std(ddof=1) / math.sqrt(len(d)), rel=1e-12)
        # The per-position tables give the same mean (over sequences and positions).
        mean = summary[(summary.pool_size == row.pool_size) & (summary.step == row.step) & (summary.tasks == "true")]
        assert row.diff == pytest.approx((mean.delta_bayes - mean.delta_dmmse).item(), rel=1e-9)
    # After 40 steps a 1- or 4-task model is far closer to dMMSE on new tasks (measured z = 6.7 and 5.1).
    final = closeness[closeness.step == 40]
    assert final.closer.tolist() == ["dmmse", "dmmse"] and (final.z > 2).all()
    thresholds = pd.read_parquet(tables / "thresholds.parquet").set_index("method")
    assert thresholds.index.tolist() == ["closer_to_bayes", "budget_crossing"]
    assert (thresholds.baseline == "bayes").all()
    closer = thresholds.loc["closer_to_bayes"]
    assert math.isnan(closer.pool_size_star) and closer.lower == 4 and math.isnan(closer.upper)
    assert "M=4" in closer.reason and "dMMSE" in closer.reason
    # The budget crossing compares the final checkpoints of the 40-step runs with those of
    # runs trained to completion in 20 steps (thresholds.short_budget: 0.5), sequence by sequence.
    crossing = thresholds.loc["budget_crossing"]
    assert (crossing.budgets, crossing.long_step, crossing.short_step) == ("runs", 40, 20)
    assert "runs of 40 and of 20 steps" in crossing.description
    effect = pd.read_parquet(tables / "budget_effect.parquet")
    assert (
        effect.pool_size.tolist() == ["1", "4"] and (effect.short_step == 20).all() and (effect.long_step == 40).all()
    )
    short = pd.concat(
        pd.read_parquet(pipeline / RESULTS / f"short_budget/eval/M{m}_seed0/step_0000020_sequences.parquet")
        for m in (1, 4)
    )
    for row in effect.itertuples():
        a = sequences[(sequences.pool_size == row.pool_size) & (sequences.step == 40) & (sequences.tasks == "true")]
        b = short[(short.pool_size == row.pool_size) & (short.tasks == "true")]
        assert row.r == pytest.approx(math.log(a.delta_bayes.mean() / b.delta_bayes.mean()), rel=1e-12)
    # Measured: M=4 moves away from ridge with more training (r = 0.032, 2 SE = 0.031), M=1 is
    # unresolved. Whichever way float rounding tips M=4, no crossing lies within the pools.
    assert effect.effect.iloc[0] == "unresolved" and effect.effect.iloc[1] in ("away", "unresolved")
    assert math.isnan(crossing.pool_size_star) and crossing.lower == 4 and "M* > 4" in crossing.reason


def test_in_context_curves_run_past_the_trained_length_against_the_exact_predictors(pipeline):
    table = pd.read_parquet(pipeline / RESULTS / "tables/in_context.parquet")
    k, longest = TEST_CONFIG["context_length"], TEST_CONFIG["train"]["max_length"]
    length = 2 * longest  # eval.extrapolate_to defaults to twice the longest trained length
    assert sorted(table.position.unique()) == list(range(length))
    assert (table.extrapolated == (table.position >= longest)).all()
    assert set(table.step) == {TEST_CONFIG["train"]["steps"]} and set(table.pool_size) == {"1", "4", "inf"}
    # The exact columns past K are the exact predictors on the longer sequences: ridge
    # recomputed here by an explicit solve per sequence and position (float64).
    batch = read_eval_set(pipeline / RESULTS / "tasks/eval_long_true.parquet")
    x, y, target = (t.double().numpy() for t in (batch.x, batch.y, batch.target))
    noise_var, dim = TEST_CONFIG["noise_var"], TEST_CONFIG["dim"]
    mse, nll = np.zeros(length), np.zeros(length)
    for i in range(length):
        for s in range(x.shape[0]):
            a = x[s, :i].T @ x[s, :i] + noise_var * np.eye(dim)
            mean = x[s, i] @ np.linalg.solve(a, x[s, :i].T @ y[s, :i])
            var = noise_var + x[s, i] @ (noise_var * np.linalg.inv(a)) @ x[s, i]
            mse[i] += (mean - target[s, i]) ** 2 / dim / x.shape[0]
            nll[i] += (0.5 * np.log(2 * np.pi * var) + (y[s, i] - mean) ** 2 / (2 * var)) / x.shape[0]
    inf = table[(table.pool_size == "inf") & (table.tasks == "true")].sort_values("position")
    np.testing.assert_allclose(inf.mse_ridge, mse, rtol=1e-9)
    np.testing.assert_allclose(inf.nll_ridge, nll, rtol=1e-9)
    # Ridge keeps improving past K as Bayes does: its error at 2K is below its error at K.
    assert mse[-1] < mse[k - 1]
    # The head's floor is there at every position, finite, for every run.
    assert np.isfinite(table[["mse_floor", "nll_floor", "mse_floor_se", "nll_floor_se"]].to_numpy()).all()
    # The positions up to K are other sequences than the main evaluation's, of the same law:
    # the PFN's MSE/D there agrees with the main table's within sampling error.
    main = pd.read_parquet(pipeline / RESULTS / "tables/metrics.parquet")
    main = main[(main.step == TEST_CONFIG["train"]["steps"]) & (main.tasks == "true")]
    for pool_size in ("1", "4", "inf"):
        a = main[main.pool_size == pool_size].sort_values("position")
        b = table[(table.pool_size == pool_size) & (table.tasks == "true") & (table.position < k)]
        b = b.sort_values("position")
        se = np.hypot(a.mse_model_se.to_numpy(), b.mse_model_se.to_numpy())
        assert (np.abs(a.mse_model.to_numpy() - b.mse_model.to_numpy()) < 4 * se).all(), pool_size


def test_training_logs(pipeline):
    log = pd.read_parquet(pipeline / RESULTS / "tables/train_log.parquet")
    assert list(log.columns) == ["step", "loss", "lr", "pool_size", "seed", "loss_smooth"]
    assert len(log) == 3 * TEST_CONFIG["train"]["steps"]
    assert np.isfinite(log.loss).all()
    # Each run's identity comes from the rule, in the order of its inputs; 40 logged steps
    # smooth over a window of one.
    assert log.groupby(["pool_size", "seed"]).step.apply(list).to_dict() == {
        (m, 0): list(range(1, TEST_CONFIG["train"]["steps"] + 1)) for m in ("1", "4", "inf")
    }
    np.testing.assert_array_equal(log.loss_smooth, log.loss)


def test_resampling_tables(pipeline):
    settings = TEST_CONFIG["resample"]
    samples = pd.read_parquet(pipeline / RESULTS / "resample/M4_seed0/step_0000040.parquet")
    # prior + one prefix from T_true + one from T_M, n_paths each
    assert len(samples) == 3 * settings["n_paths"]
    assert list(samples.columns) == ["step", "path_length", "kind", "tasks", "prefix", "path", "w_0", "w_1"]
    # The final checkpoint's paths reach the longest trained length; the earlier ones keep K.
    assert (samples.path_length == TEST_CONFIG["train"]["max_length"]).all()
    first = pd.read_parquet(pipeline / RESULTS / "resample/M4_seed0/step_0000020.parquet")
    assert (first.path_length == TEST_CONFIG["context_length"]).all()
    assert np.isfinite(samples[["w_0", "w_1"]].to_numpy()).all()
    stats = pd.read_parquet(pipeline / RESULTS / "tables/resample_stats.parquet")
    expected = {"reference", "std_ratio", "ks", "energy", "floor_ks", "floor_energy", "median_pool_distance"}
    assert expected <= set(stats.columns)
    # runs x 2 checkpoints x 2 dims x references, over targets: prior + 1 true prefix, and for a
    # finite M 1 pool prefix and the pool's reference (dmmse) beside the true prior's (bayes, which
    # under N(0, I) is also ridge, resampled once).
    assert len(stats) == 2 * 2 * (3 * 2 + 3 * 2 + 2)
    assert set(stats.loc[stats.pool_size == "inf", "reference"]) == {"bayes"}
    assert set(stats.loc[stats.pool_size != "inf", "reference"]) == {"bayes", "dmmse"}
    # Each statistic is that of the sample tables it names: the implied prior of M=4 at step 40,
    # against the pool reference (replica 0), and the floor: the other replicas' distance to it.
    reference = pd.read_parquet(pipeline / RESULTS / "resample/M4_reference.parquet")
    assert set(reference.path_length) == {TEST_CONFIG["context_length"], TEST_CONFIG["train"]["max_length"]}
    model = samples[samples.kind == "prior"]
    at_length = reference.path_length == TEST_CONFIG["train"]["max_length"]
    ref = reference[(reference.kind == "prior") & (reference.reference == "dmmse") & at_length]
    for dim in (0, 1):
        select = (stats.pool_size == "4") & (stats.step == 40) & (stats.kind == "prior") & (stats.dim == dim)
        row = stats[select & (stats.reference == "dmmse")].iloc[0]
        w = model[f"w_{dim}"].to_numpy()
        r0, *others = (ref.loc[ref.replica == i, f"w_{dim}"].to_numpy() for i in sorted(ref.replica.unique()))
        assert row.std_ratio == pytest.approx(w.std(ddof=1) / r0.std(ddof=1), rel=1e-12)
        assert row.ks == pytest.approx(ks_2samp(w, r0).statistic, rel=1e-12)
        assert row.floor_ks == pytest.approx(np.mean([ks_2samp(r, r0).statistic for r in others]), rel=1e-12)


def test_premise_tables_hold_the_pfn_beside_exact_bayes(pipeline):
    tables = pipeline / RESULTS / "tables"
    martingale = pd.read_parquet(tables / "martingale.parquet")
    # Every run and resampled checkpoint; the final one's horizons reach its longer paths.
    assert set(martingale.pool_size) == {"1", "4", "inf"} and sorted(martingale.step.unique()) == [20, 40]
    final = martingale[martingale.step == 40]
    assert final.path_length.unique().tolist() == [12] and final.k.max() == 8  # 12 points after 2 pairs: k <= 10
    assert set(martingale.tasks[martingale.pool_size == "inf"]) == {"true"}
    assert set(martingale.tasks[martingale.pool_size == "4"]) == {"true", "pool"}
    assert (martingale[["model_kl", "reference_kl"]] > -1e-9).all().all()
    exchange = pd.read_parquet(tables / "exchangeability.parquet")
    assert (exchange.step == 40).all() and sorted(exchange.prompt_length.unique()) == [2, 5]
    assert exchange.reference_max_kl.abs().max() <= 1e-10  # exact Bayes ignores the order of its data
    coverage = pd.read_parquet(tables / "coverage.parquet")
    assert set(coverage.pool_size) == {"1", "inf"} and sorted(coverage.prefix_length.unique()) == [2, 3]
    assert coverage[["model_coverage", "reference_coverage", "posterior_coverage"]].stack().between(0, 1).all()
    summary = pd.read_parquet(tables / "premise_summary.parquet")
    assert len(summary) == 3 and summary.loc[summary.pool_size == "4", "model_coverage"].isna().all()


def test_posterior_marginals_name_each_reference_and_the_true_task(pipeline):
    marginals = pd.read_parquet(pipeline / RESULTS / "tables/posterior_marginals.parquet")
    stats = pd.read_parquet(pipeline / RESULTS / "tables/resample_stats.parquet")
    # runs x 2 checkpoints x 2 dims over posterior targets: 1 true prefix, and for a finite M 1 pool prefix.
    assert len(marginals) == 2 * 2 * (3 + 2)
    post = stats[stats.kind == "posterior"]
    for role in ("bayes", "dmmse"):
        merged = marginals.merge(post[post.reference == role], on=MARGINAL_KEYS)
        np.testing.assert_array_equal(merged[f"energy_{role}"], merged.energy)
    np.testing.assert_array_equal(marginals.energy_ridge, marginals.energy_bayes)  # one predictor under N(0, I)
    inf = marginals[marginals.pool_size == "inf"]
    assert inf.energy_dmmse.isna().all() and (inf.closer_to == "").all()
    finite = marginals[marginals.pool_size != "inf"]
    nearer = np.where(finite.energy_dmmse < finite.energy_bayes, "dmmse", "bayes")
    assert (finite.closer_to == nearer).all()
    # The true task is the evaluation sequence's, and the rms distance is the sample table's.
    eval_pool = read_eval_set(pipeline / RESULTS / "tasks/eval_M4.parquet")
    samples = pd.read_parquet(pipeline / RESULTS / "resample/M4_seed0/step_0000040.parquet")
    for dim in (0, 1):
        row = finite[(finite.pool_size == "4") & (finite.step == 40) & (finite.tasks == "pool") & (finite.dim == dim)]
        row = row.iloc[0]
        assert row.true_w == pytest.approx(eval_pool.w[0, dim].item(), rel=1e-6)
        w = samples.loc[(samples.kind == "posterior") & (samples.tasks == "pool"), f"w_{dim}"].to_numpy()
        assert row.true_w_rmse == pytest.approx(np.sqrt(np.mean((w - row.true_w) ** 2)), rel=1e-9)


def test_resampling_past_the_trained_context_needs_permission():
    config = copy.deepcopy(TEST_CONFIG)
    config["resample"]["path_length"] = TEST_CONFIG["train"]["max_length"] + 1
    with pytest.raises(ConfigError, match=r"resample\.path_length"):
        validate_config(config)
    config["resample"]["allow_extrapolation"] = True
    validate_config(config)


def test_rerun_with_nothing_changed_does_nothing(pipeline):
    result = snakemake(pipeline, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_one_pool_size_reruns_only_what_depends_on_it(pipeline, tmp_path):
    config = copy.deepcopy(TEST_CONFIG)
    config["overrides"] = {4: {"lr": 0.001}}
    result = snakemake(pipeline, "-n", config=write_config(tmp_path / "changed.yaml", config))
    jobs = planned_jobs(result)
    assert jobs.get("train") == 1 and jobs.get("evaluate") == 2, jobs
    assert jobs.get("resample") == 2 and jobs.get("resample_stats") == 1, jobs
    assert not {"pool", "eval_set", "plot_mask", "resample_reference"} & set(jobs), jobs
    assert {wildcards["M"] for wildcards in planned_wildcards(result, "train", "evaluate", "resample")} == {"4"}


PER_M_FIGURES = {"plot_implied_prior", "plot_posterior_marginals"}
COMPUTE_RULES = ("train", "evaluate", "resample", "resample_reference", "resample_stats")

# Settings of how jobs run, or of how figures look: none may rerun a computation.
NO_RECOMPUTE = [
    ("train.save_every", lambda c: c["train"].update(save_every=7), set()),
    ("train.threads", lambda c: c["train"].update(threads=2), set()),
    ("train.device", lambda c: c["train"].update(device="cuda"), set()),  # the dry run needs no GPU
    ("train.compile", lambda c: c["train"].update(compile=True), set()),
    ("resample.plot_dims", lambda c: c["resample"].update(plot_dims=1), {*PER_M_FIGURES, "all"}),
]


@pytest.mark.parametrize("key, change, replanned", NO_RECOMPUTE, ids=[k for k, _, _ in NO_RECOMPUTE])
def test_execution_and_plot_settings_rerun_no_computation(pipeline, tmp_path, key, change, replanned):
    config = copy.deepcopy(TEST_CONFIG)
    change(config)
    jobs = planned_jobs(snakemake(pipeline, "-n", config=write_config(tmp_path / "changed.yaml", config)))
    assert set(jobs) == replanned, jobs


def test_a_new_pool_size_plans_only_its_own_chain_and_the_aggregates(pipeline, tmp_path):
    config = copy.deepcopy(TEST_CONFIG)
    config["pool_sizes"] = [1, 4, 16, "inf"]
    result = snakemake(pipeline, "-n", config=write_config(tmp_path / "more.yaml", config))
    jobs = planned_jobs(result)
    own_chain = {
        "pool": 1,
        "eval_set": 1,
        "train": 1,
        "train_short": 1,
        "evaluate": 2,
        "evaluate_short": 1,
        "resample": 2,
        "resample_reference": 1,
        "resample_stats": 1,
    }
    own_chain |= {"eval_set_long": 1, "evaluate_long": 1, "predictive": 1, "premise": 1}
    aggregates = {
        "aggregate_eval": 1,
        "aggregate_train_log": 1,
        "aggregate_resample": 1,
        "aggregate_in_context": 1,
        "aggregate_predictive": 1,
        "aggregate_premise": 1,
    }
    figures = {
        "plot_task_diversity": 1,
        "plot_losses": 1,
        "plot_posterior": 1,
        "plot_implied_prior": 1,
        "plot_posterior_marginals": 1,
        "plot_predictive_density": 1,
        "plot_in_context": 1,
        "plot_martingale": 1,
        "all": 1,
    }
    assert jobs == own_chain | aggregates | figures
    # Every job of the chain is pool 16's (eval_set names its tasks 'M16').
    assert {w.get("M") or w["tasks"] for w in planned_wildcards(result, *own_chain)} == {"16", "M16"}


def test_extra_seeds_plan_only_their_own_runs_and_what_reads_them(pipeline, tmp_path):
    config = copy.deepcopy(TEST_CONFIG)
    config["extra_seeds"] = {"inf": [1]}
    result = snakemake(pipeline, "-n", config=write_config(tmp_path / "seeds.yaml", config))
    jobs = planned_jobs(result)
    per_run = {"train", "evaluate", "evaluate_long", "resample", "resample_stats", "predictive", "premise"}
    assert per_run <= set(jobs) and not {"pool", "eval_set", "resample_reference", "train_short"} & set(jobs), jobs
    assert {(w["M"], w["seed"]) for w in planned_wildcards(result, *per_run)} == {("inf", "1")}


def test_the_task_diversity_figure_waits_for_no_resampling(tmp_path_factory):
    workdir = new_workdir(tmp_path_factory, "figure-only")
    jobs = planned_jobs(snakemake(workdir, "-n", f"{RESULTS}/figures/task_diversity.png"))
    assert jobs.get("evaluate") == 3 * 2 and jobs.get("plot_task_diversity") == 1, jobs
    assert not [rule for rule in jobs if "resample" in rule], jobs


def test_the_parse_path_imports_no_torch(pipeline):
    check = "import lrpfn.config, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", check], check=True)
    # Nor do the figures drawn from tables alone: torch's import is most of such a job's time.
    modules = "lrpfn.plots.sweep, lrpfn.plots.predictive, lrpfn.plots.premise"
    figures = f"import {modules}, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", figures], check=True)
    # Every module a dry run imports, from Python's own import trace.
    command = snakemake_command(pipeline, "-n")
    result = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]], capture_output=True, text=True, cwd=pipeline
    )
    imported = [
        line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    ]
    assert "lrpfn.config" in imported and "snakemake" in imported
    assert not [name for name in imported if name.split(".")[0] == "torch"]


def test_one_eval_file_builds_just_its_chain(tmp_path_factory):
    workdir = new_workdir(tmp_path_factory, "one-target")
    target = f"{RESULTS}/eval/M4_seed0/step_0000020.parquet"
    jobs = planned_jobs(snakemake(workdir, "-n", target))
    assert jobs == {"pool": 1, "eval_set": 2, "train": 1, "evaluate": 1}


# --- malformed configs ----------------------------------------------------------------

BAD_CONFIGS = [
    # (change, text the error must contain)
    (lambda c: c.update(dimm=3), "dimm"),
    (lambda c: c["model"].update(d_modle=16), "d_modle"),
    (lambda c: c.update(dim=0), "['dim']"),
    (lambda c: c.update(noise_var=-0.1), "['noise_var']"),
    (lambda c: c.update(pool_sizes=[0, 4]), "['pool_sizes']"),
    (lambda c: c.update(pool_sizes=[-4, 4]), "['pool_sizes']"),
    (lambda c: c.update(pool_sizes=["many"]), "['pool_sizes']"),
    (lambda c: c.update(pool_sizes=[4, 4]), "['pool_sizes']"),
    (lambda c: c.update(seeds=[-1]), "['seeds']"),
    (lambda c: c["model"].update(n_heads=3), "model.n_heads"),
    (lambda c: c["train"].update(warmup=1.5), "['warmup']"),
    (lambda c: c["train"].update(decay="step"), "['decay']"),
    (lambda c: c["train"].update(device="tpu"), "['device']"),
    (lambda c: c["train"].update(steps=1, checkpoints=2), "train.checkpoints"),
    (lambda c: c.update(overrides={7: {"lr": 0.1}}), "overrides.7"),
    (lambda c: c.update(overrides={4: {"steps": 10}}), "'steps'"),
    (lambda c: c["eval"].pop("n_sequences"), "n_sequences"),
    (lambda c: c.pop("dim"), "'dim'"),
    (lambda c: c["resample"].update(prefix_length=6), "resample.prefix_length"),
    (lambda c: c["resample"].update(checkpoints=3), "resample.checkpoints"),
    (lambda c: c["resample"].update(n_paths=1), "['n_paths']"),
    (lambda c: c["resample"].update(path_length=13), "resample.path_length"),  # past train.max_length=12
    (lambda c: c["resample"].update(final_path_length=5), "resample.final_path_length: 5 points are fewer"),
    (lambda c: c["train"].update(max_length=10), "train.max_length: 10 is not context_length=6 times a power of 2"),
    (lambda c: c["train"].update(precision="float16"), "['precision']"),
    (lambda c: c["train"].update(compile="yes"), "['compile']"),
    (lambda c: c["resample"].update(plot_dims=3), "resample.plot_dims: 3 exceeds the 2 dimensions of w"),
    (lambda c: c.update(thresholds={"short_budget": 0.01}), "thresholds.short_budget: 0.01 of train.steps=40"),
    (lambda c: c.update(thresholds={"short_budget": 1.0}), "short_budget"),
    (lambda c: c["resample"].update(path_length=4, prefix_length=4), "within resample.path_length=4"),
    (lambda c: c["resample"].update(n_prefixes=65), "eval.n_sequences=64"),
    (lambda c: c["eval"].update(extrapolate_to=5), "eval.extrapolate_to: 5 positions are fewer than"),
    (lambda c: c.update(predictive={"prompt_lengths": [0, 6]}), "predictive.prompt_lengths: 6 pairs leave no query"),
    (lambda c: c.update(predictive={"n_prompts": 65}), "predictive.n_prompts: 65 prompts"),
    (lambda c: c.update(context_length=1, resample={**c["resample"], "prefix_length": 2}), "resample.path_length=1"),
    (lambda c: c.update(premise={"prompt_lengths": [2, 6]}), "premise.prompt_lengths: 6 pairs leave no query"),
    (lambda c: c.update(premise={"coverage_tasks": 65}), "premise.coverage_tasks: 65"),
    (lambda c: c.update(premise={"coverage_prefix_lengths": [6]}), "premise.coverage_prefix_lengths: 6 pairs"),
    (lambda c: c.update(premise={"coverage_pool_sizes": [16]}), "premise.coverage_pool_sizes: pool size 16 is not"),
    (lambda c: c.update(premise={"checkpoints": 3}), "premise.checkpoints: 3 exceeds the resample.checkpoints=2"),
    (lambda c: c.update(premise={"continuations": 1}), "['continuations']"),
    (lambda c: c.update(premise={"levels": [0.9, 1.0]}), "['levels']"),
]


def validate_config(config: dict) -> dict:
    """What the Snakefile does with a config: schema (with its defaults), derived defaults, checks."""
    from snakemake.utils import validate

    config = copy.deepcopy(config)
    validate(config, str(SCHEMA))
    complete(config)
    check_experiment(config)
    return config


@pytest.mark.parametrize("change, expected", BAD_CONFIGS, ids=[e for _, e in BAD_CONFIGS])
def test_malformed_config_is_rejected_naming_the_key(change, expected):
    config = copy.deepcopy(TEST_CONFIG)
    change(config)
    with pytest.raises((ConfigError, WorkflowError)) as info:
        validate_config(config)
    assert expected in str(info.value)


def overlay(base: dict, extra: dict) -> dict:
    """Snakemake's --configfile semantics: nested dicts merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = overlay(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def test_the_shipped_configs_are_valid():
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    validate_config(default)
    for path in sorted((REPO / "configs").glob("*.yaml")):
        validate_config(overlay(default, yaml.safe_load(path.read_text())))


# The default config with only the experiment's shape changed, below the defaults' plot_dims
# (3) and the default prefix_length (D = 4).
SMALL_SHAPE = {"dim": 2, "context_length": 4, "noise_var": 0.0625, "pool_sizes": [1, 8, "inf"]}


def test_defaults_follow_the_experiment():
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    resample = validate_config(overlay(default, SMALL_SHAPE))["resample"]
    assert (resample["path_length"], resample["prefix_length"], resample["plot_dims"], resample["checkpoints"]) == (
        4,
        2,
        2,
        4,
    )
    resample = validate_config(default)["resample"]  # D = 4, K = 16
    assert (resample["path_length"], resample["prefix_length"], resample["plot_dims"], resample["checkpoints"]) == (
        16,
        4,
        3,
        4,
    )
    few = overlay(default, {"train": {"checkpoints": 2}, "resample": {"prefix_length": 1}})
    resample = validate_config(few)["resample"]
    assert resample["checkpoints"] == 2 and resample["prefix_length"] == 1  # what the user sets stays


def test_an_overlay_of_the_experiments_shape_alone_runs_end_to_end(tmp_path_factory):
    # SMALL_SHAPE on the default config; only the sizes that set the run time are cut (steps,
    # evaluation and resampling sizes), none that the shape's defaults follow.
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    fast = {
        "results": "results/small",
        "train": {"steps": 40},
        "eval": {"n_sequences": 32},
        "resample": {"n_paths": 50},
        "premise": {"prompts": 2, "continuations": 4, "permutations": 2, "coverage_paths": 10},
    }
    workdir = new_workdir(tmp_path_factory, "small", overlay(overlay(default, SMALL_SHAPE), fast))
    snakemake(workdir)
    stats = pd.read_parquet(workdir / "results/small/tables/resample_stats.parquet")
    assert sorted(stats["dim"].unique()) == [0, 1] and sorted(stats.step.unique()) == [5, 10, 20, 40]
    samples = pd.read_parquet(workdir / "results/small/resample/M8_seed0/step_0000040.parquet")
    assert list(samples.columns[-2:]) == ["w_0", "w_1"] and len(samples) == 50 * (1 + 2 * 2)


def test_snakemake_refuses_a_bad_config_before_any_job(tmp_path_factory):
    config = copy.deepcopy(TEST_CONFIG)
    config["model"]["n_layers"] = 0
    workdir = new_workdir(tmp_path_factory, "bad", config)
    result = snakemake(workdir, check=False)
    assert result.returncode != 0
    assert "model.n_layers: 0 is less than the minimum of 1" in result.stdout + result.stderr
    assert not (workdir / RESULTS).exists()


def test_lint_and_format_are_clean(tmp_path):
    lint = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--snakefile", str(REPO / "Snakefile"), "--directory", str(REPO)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    fmt = subprocess.run([sys.executable, "-m", "snakefmt", "--check", str(REPO)], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stderr
    for check in (["check"], ["format", "--check"]):  # configured in pyproject.toml
        ruff = subprocess.run(
            [sys.executable, "-m", "ruff", *check, str(REPO)], capture_output=True, text=True, cwd=REPO
        )
        assert ruff.returncode == 0, f"ruff {' '.join(check)}:\n{ruff.stdout}{ruff.stderr}"
