"""Workflow tests of the task families: the test config with unknown noise on random Fourier
features (configs/test-families.yaml), so that one pipeline run exercises both."""

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from lrpfn import families
from lrpfn.checkpoint import load_checkpoint
from lrpfn.config import TaskFamily
from lrpfn.tasks import read_eval_set, read_pool_tasks

from helpers import REPO, RESULTS, TEST_CONFIG, new_workdir, overlay_config, snakemake

pytestmark = pytest.mark.workflow

OVERLAY = yaml.safe_load((REPO / "configs/test-families.yaml").read_text())
FINAL = TEST_CONFIG["train"]["steps"]


def families_config() -> dict:
    """configs/test-families.yaml over the test config, in the test config's results folder."""
    return overlay_config("test-families.yaml")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """The test pipeline of the overlay (read-only)."""
    workdir = new_workdir(tmp_path_factory, "families", families_config())
    snakemake(workdir)
    return workdir / RESULTS


def family() -> families.Family:
    config = families_config()
    return families.build(TaskFamily.from_params(config), config["dim"], config["noise_var"])


def test_tasks_carry_their_noise_and_live_in_feature_space(results):
    pool = read_pool_tasks(results / "tasks/pool_M4.parquet", 4, size=4)
    assert torch.equal(pool.tasks, family().master_pool(4, TEST_CONFIG["task_seed"]).tasks)
    batch = read_eval_set(results / "tasks/eval_true.parquet")
    assert batch.x.shape[-1] == 1 and batch.w.shape == (TEST_CONFIG["eval"]["n_sequences"], 4)
    assert batch.noise_var is not None and (batch.noise_var > 0).all()
    torch.testing.assert_close(batch.target, torch.einsum("bkf,bf->bk", family().features(batch.x), batch.w))
    on_pool = read_eval_set(results / "tasks/eval_M4.parquet")
    assert torch.equal(on_pool.noise_var, pool.noise_var[on_pool.task])


def test_the_metrics_are_the_familys_exact_predictors_normalised_by_its_signal(results):
    """mse_bayes / nll_bayes are the Student-t on the features, mse_ridge ridge in x, each
    divided by the signal variance 1 (float64 sums of the same values)."""
    metrics = pd.read_parquet(results / "tables/metrics.parquet")
    row = metrics[(metrics.pool_size == "inf") & (metrics.tasks == "true") & (metrics.step == FINAL)]
    row = row.sort_values("position")
    batch = read_eval_set(results / "tasks/eval_true.parquet")
    roles = family().references()
    for name in ("bayes", "ridge"):
        mean, nll = roles[name].score_sequences(batch.x, batch.y)
        mse = (mean - batch.target.double()) ** 2
        np.testing.assert_allclose(row[f"mse_{name}"], mse.mean(0).numpy(), rtol=1e-9)
        np.testing.assert_allclose(row[f"nll_{name}"], nll.mean(0).numpy(), rtol=1e-9)
    assert row.nll_floor.notna().all()


def test_resampled_paths_are_read_on_the_features_with_their_residual_variance(results):
    samples = pd.read_parquet(results / f"resample/Minf_seed0/step_{FINAL:07d}.parquet")
    reference = pd.read_parquet(results / "resample/Minf_reference.parquet")
    for table in (samples, reference):
        assert {f"w_{d}" for d in range(4)} | {"noise_var"} <= set(table.columns)
    assert set(reference.reference) == {"ridge", "bayes"}
    stats = pd.read_parquet(results / "tables/resample_stats.parquet")
    rows = stats[(stats.pool_size == "inf") & (stats.kind == "prior") & (stats.step == FINAL)]
    exact = reference[(reference.reference == "bayes") & (reference.replica == 0) & (reference.kind == "prior")]
    exact = exact[exact.path_length == rows.path_length.iloc[0]]
    median = rows[rows.reference == "bayes"].ref_noise_median
    np.testing.assert_allclose(median, np.median(exact.noise_var))


def test_coverage_and_the_premise_read_outs_run_on_the_family(results):
    coverage = pd.read_parquet(results / "tables/coverage.parquet")
    assert set(coverage.dim) == set(range(4)) and coverage.posterior_coverage.notna().all()
    for name in ("martingale", "exchangeability"):
        assert not pd.read_parquet(results / f"tables/{name}.parquet").empty


def test_a_checkpoint_names_its_family(results):
    ckpt = load_checkpoint(results / f"runs/Minf_seed0/step_{FINAL:07d}.pt")
    assert ckpt.run["noise"] == OVERLAY["noise"] and ckpt.run["features"] == OVERLAY["features"]


def test_resampled_functions_are_compared_on_the_grid(results):
    stats = pd.read_parquet(results / "tables/resample_stats.parquet")
    assert {"function_energy", "floor_function_energy", "floor_function_energy_sd"} <= set(stats.columns)
    assert stats.function_energy.notna().all() and (stats.floor_function_energy > 0).all()
    assert (results / "figures/implied_prior_Minf.png").stat().st_size > 0


def test_the_exact_gp_is_scored_beside_the_feature_model(results):
    """The GP with the RBF kernel the features approximate is an extra reference of the evaluation,
    averaged into the summaries like the roles."""
    metrics = pd.read_parquet(results / "tables/metrics.parquet")
    row = metrics[(metrics.pool_size == "inf") & (metrics.tasks == "true") & (metrics.step == FINAL)]
    row = row.sort_values("position")
    batch = read_eval_set(results / "tasks/eval_true.parquet")
    gp = family().extra_references()["gp"]
    mean, nll = gp.score_sequences(batch.x, batch.y)
    np.testing.assert_allclose(row.mse_gp, ((mean - batch.target.double()) ** 2).mean(0).numpy(), rtol=1e-9)
    np.testing.assert_allclose(row.nll_gp, nll.mean(0).numpy(), rtol=1e-9)
    assert "nll_gp" in pd.read_parquet(results / "tables/summary_seeds.parquet").columns
