"""Workflow tests under a true prior other than N(0, I): the test config with a spike-and-slab prior."""

import numpy as np
import pandas as pd
import pytest
import yaml

from lrpfn import priors
from lrpfn.bayes import mixture_predictive
from lrpfn.config import PriorConfig, run_config, task_prior
from lrpfn.implied import near_zero_threshold
from lrpfn.premise import ExactSequences, martingale_table
from lrpfn.tasks import read_eval_set, read_pool

from helpers import (
    REPO,
    RESULTS,
    TEST_CONFIG,
    experiment,
    new_workdir,
    overlay_config,
    planned_jobs,
    snakemake,
    write_config,
)

pytestmark = pytest.mark.workflow

OVERLAY = yaml.safe_load((REPO / "configs/test-sparse.yaml").read_text())
PRIOR = OVERLAY["prior"]


def sparse_config() -> dict:
    """configs/test-sparse.yaml over the test config, in the test config's results folder."""
    return overlay_config("test-sparse.yaml")


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    """The test pipeline under the spike-and-slab prior (read-only)."""
    workdir = new_workdir(tmp_path_factory, "sparse", sparse_config())
    snakemake(workdir)
    return workdir / RESULTS


def prior_mixture():
    return priors.build(PriorConfig.from_dict(PRIOR), TEST_CONFIG["dim"])


def test_tasks_are_drawn_from_the_prior(sparse):
    """Pool and T_true tasks: each coordinate exactly zero with probability p_zero."""
    w = np.concatenate(
        [read_eval_set(sparse / "tasks/eval_true.parquet").w.numpy(), read_pool(sparse / "tasks/pool_M4.parquet", 2)]
    )
    zero = (w == 0).mean()
    # 64 + 4 tasks x 2 coordinates, Binomial(136, 1/2): 4 standard errors.
    assert abs(zero - PRIOR["p_zero"]) < 4 * np.sqrt(0.25 / w.size)
    assert np.var(w[w != 0]) == pytest.approx(PRIOR["slab_var"], rel=0.5)  # 68 slab draws: the spread is wide


def test_the_bayes_columns_are_the_exact_engine_and_ridge_is_moment_matched(sparse):
    """On T_true at the final checkpoint: mse_bayes / nll_bayes are the mixture engine's on the
    evaluation set, mse_ridge the moment-matched Gaussian's (float64 sums of the same values)."""
    metrics = pd.read_parquet(sparse / "tables/metrics.parquet")
    final = metrics[(metrics.pool_size == "inf") & (metrics.tasks == "true") & (metrics.step == 40)]
    row = final.sort_values("position")
    batch = read_eval_set(sparse / "tasks/eval_true.parquet")
    x, y, target = batch.x.double(), batch.y.double(), batch.target.double()
    dim = x.shape[-1]
    prior = prior_mixture()
    assert isinstance(prior, priors.GaussianMixture)
    for name, mixture in (("bayes", prior), ("ridge", prior.moment_matched())):
        mean, _, nll = mixture_predictive(x, y, mixture, TEST_CONFIG["noise_var"])
        np.testing.assert_allclose(row[f"mse_{name}"], (((mean - target) ** 2) / dim).mean(0).numpy(), rtol=1e-9)
        np.testing.assert_allclose(row[f"nll_{name}"], nll.mean(0).numpy(), rtol=1e-9)
    # Spike-and-slab Bayes beats the best linear predictor on average (64 sequences; the gap is ~10 SE).
    assert row.mse_bayes.mean() < row.mse_ridge.mean()


def test_thresholds_and_closeness_are_against_the_true_priors_bayes_predictor(sparse):
    closeness = pd.read_parquet(sparse / "tables/closeness.parquet")
    assert set(closeness.closer) <= {"bayes", "dmmse", "unresolved"}
    sequences = pd.read_parquet(sparse / "tables/sequences.parquet")
    true = sequences[(sequences.tasks == "true") & (sequences.pool_size == "4") & (sequences.step == 40)]
    row = closeness[(closeness.pool_size == "4") & (closeness.step == 40) & (closeness.seeds == "all")].iloc[0]
    assert row["diff"] == pytest.approx((true.delta_bayes - true.delta_dmmse).mean(), rel=1e-12)
    thresholds = pd.read_parquet(sparse / "tables/thresholds.parquet")
    assert set(thresholds.method) == {"closer_to_bayes", "budget_crossing"}
    assert {"delta_bayes_long", "delta_bayes_short"} <= set(pd.read_parquet(sparse / "tables/budget_effect.parquet"))


def test_references_resample_under_every_prior_and_the_spike_is_read_out(sparse):
    for pool_size, expected in (("4", {"ridge", "bayes", "dmmse"}), ("inf", {"ridge", "bayes"})):
        reference = pd.read_parquet(sparse / f"resample/M{pool_size}_reference.parquet")
        assert set(reference.reference) == expected
    reference = pd.read_parquet(sparse / "resample/Minf_reference.parquet")
    stats = pd.read_parquet(sparse / "tables/resample_stats.parquet")
    # Step 40 is the final checkpoint: its paths, and the threshold, are of the longest trained length.
    length = TEST_CONFIG["train"]["max_length"]
    threshold = near_zero_threshold(TEST_CONFIG["noise_var"], length, TEST_CONFIG["dim"])
    prior_rows = stats[(stats.pool_size == "inf") & (stats.kind == "prior") & (stats.step == 40)]
    assert (prior_rows.path_length == length).all() and (prior_rows.near_zero == threshold).all()
    reference = reference[reference.path_length == length]
    for role, rows in prior_rows.groupby("reference"):
        exact = reference[(reference.reference == role) & (reference.replica == 0) & (reference.kind == "prior")]
        for _, row in rows.iterrows():
            assert row.ref_mass_near_zero == (exact[f"w_{row.dim}"].abs() < threshold).mean()
    # The moment-matched Gaussian has no spike: its exact reference puts less mass near zero
    # (4000 paths in all, over two dims; the spike's mass is ~p_zero, the Gaussian's ~0.1).
    mass = prior_rows.groupby("reference").ref_mass_near_zero.mean()
    assert mass["bayes"] > mass["ridge"] + 0.1


def test_the_premise_read_outs_hold_the_pfn_against_the_true_priors_bayes(sparse):
    """At M = inf the martingale read-out's reference is the spike-and-slab Bayes predictor (its
    rows are that predictor's read-out, recomputed here), not the moment-matched Gaussian; and
    it is exchangeable to float precision."""
    settings = experiment(sparse_config())["premise"]
    martingale = pd.read_parquet(sparse / "tables/martingale.parquet")
    final = martingale[(martingale.pool_size == "inf") & (martingale.step == 40)]
    eval_sets = {"true": read_eval_set(sparse / "tasks/eval_true.parquet")}
    bayes = prior_mixture().predictor(TEST_CONFIG["noise_var"])
    makers = {"reference": lambda b: ExactSequences(bayes, b)}
    here = martingale_table(makers, eval_sets, settings, int(final.path_length.iloc[0]), settings["seed"])
    both = final.merge(here, on=["tasks", "prompt_length", "k"], suffixes=("", "_here"))
    assert len(both) == len(final) == len(here)
    for column in ("reference_kl", "reference_mean_drift", "reference_var_drift"):
        np.testing.assert_allclose(both[column], both[f"{column}_here"], rtol=1e-12, atol=1e-15)
    exchangeability = pd.read_parquet(sparse / "tables/exchangeability.parquet")
    assert set(exchangeability.pool_size) == {"4", "inf"} and (exchangeability.reference_max_kl <= 1e-10).all()


def test_read_outs_name_the_true_prior(sparse):
    marginals = pd.read_parquet(sparse / "tables/posterior_marginals.parquet")
    assert {"energy_bayes", "floor_energy_bayes"} <= set(marginals.columns)
    finite = marginals[marginals.pool_size == "4"]
    energy = finite[["energy_ridge", "energy_bayes", "energy_dmmse"]].to_numpy()
    nearest = np.array(["ridge", "bayes", "dmmse"])[energy.argmin(1)]
    assert (finite.closer_to == nearest).all()
    predictive = pd.read_parquet(sparse / "tables/predictive.parquet")
    assert predictive.kl_bayes.notna().all() and predictive.kl_ridge.notna().all()
    # With no pair observed, the exact predictive's variance is the prior's x^T Sigma x + noise_var
    # under both the true prior and its moment-matched Gaussian.
    empty = predictive[predictive.prompt_length == 0]
    np.testing.assert_allclose(empty.sd_bayes, empty.sd_ridge, rtol=1e-9)


def test_a_prior_is_part_of_the_identity_of_everything_it_draws(sparse, tmp_path):
    """Changing the prior replans the tasks, every training run and what follows; the plain
    test config's run identity has no prior at all."""
    assert task_prior(TEST_CONFIG).is_default and "prior" not in run_config(experiment(), "inf", 0).to_dict()
    config = sparse_config()
    config["prior"] = dict(PRIOR, p_zero=0.25)
    workdir = sparse.parent
    overlay = write_config(tmp_path / "changed.yaml", yaml.safe_load(yaml.safe_dump(config)))
    jobs = planned_jobs(snakemake(workdir, "-n", config=overlay))
    assert jobs["pool"] == 1 and jobs["eval_set"] == 2 and jobs["train"] == 2 and jobs["resample_reference"] == 2
