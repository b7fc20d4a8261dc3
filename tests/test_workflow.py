"""Workflow tests: the whole pipeline on configs/test.yaml in a temporary directory."""

import copy
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake_interface_common.exceptions import WorkflowError

from lrpfn.config import ConfigError, check_experiment
from lrpfn.evaluate import METRICS

from helpers import REPO, RESULTS, TEST_CONFIG, expected_outputs, new_workdir, planned_jobs, snakemake

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
    mse = metrics[[c for c in METRICS if c.startswith(("mse", "delta"))]]
    assert (mse.fillna(0) >= 0).all().all() and (mse.fillna(0) < 50).all().all()
    # Ridge predicts 0 at position 0: its MSE/D there is E(w.x)^2/D ~ 1 on T_true.
    first = metrics[(metrics.position == 0) & (metrics.tasks == "true")]
    assert 0.6 < first.mse_ridge.mean() < 1.5
    # A one-task pool is learned exactly by dMMSE: zero error, the noise entropy as NLL.
    m1 = metrics[(metrics.pool_size == "1") & (metrics.tasks == "pool")]
    assert np.allclose(m1.mse_dmmse, 0)
    noise_entropy = 0.5 * math.log(2 * math.pi * math.e * TEST_CONFIG["noise_var"])
    assert abs(m1.nll_dmmse.mean() - noise_entropy) < 0.15


def test_summary_thresholds_and_logs(pipeline):
    summary = pd.read_parquet(pipeline / RESULTS / "tables/summary.parquet")
    assert len(summary) == 3 * 2 * 2  # pool sizes x checkpoints x task sets
    thresholds = pd.read_parquet(pipeline / RESULTS / "tables/thresholds.parquet")
    assert thresholds.method.tolist() == ["closer_to_ridge", "budget_crossing"]
    assert {"pool_size_star", "lower", "upper", "description"} <= set(thresholds.columns)
    log = pd.read_parquet(pipeline / RESULTS / "tables/train_log.parquet")
    assert list(log.columns) == ["step", "loss", "lr", "pool_size", "seed"]
    assert len(log) == 3 * TEST_CONFIG["train"]["steps"]
    assert np.isfinite(log.loss).all()


def test_resampling_tables(pipeline):
    settings = TEST_CONFIG["resample"]
    samples = pd.read_parquet(pipeline / RESULTS / "resample/M4_seed0/step_0000040.parquet")
    # prior + one prefix from T_true + one from T_M, n_paths each
    assert len(samples) == 3 * settings["n_paths"]
    assert list(samples.columns) == ["step", "kind", "tasks", "prefix", "path", "w_0", "w_1"]
    assert np.isfinite(samples[["w_0", "w_1"]].to_numpy()).all()
    stats = pd.read_parquet(pipeline / RESULTS / "tables/resample_stats.parquet")
    expected = {"std_ratio", "ks", "ks_pvalue", "energy", "ridge_ks", "ridge_energy", "dmmse_energy", "median_pool_distance"}
    assert expected <= set(stats.columns)
    # 3 runs x 2 checkpoints x dims, over targets: prior + 1 true prefix (+ 1 pool prefix when M is finite)
    assert len(stats) == 2 * 2 * (3 + 3 + 2)
    assert (stats.std_ratio > 0).all() and stats.ks.between(0, 1).all()
    assert stats.loc[stats.pool_size == "inf", "dmmse_energy"].isna().all()
    assert stats.loc[stats.pool_size != "inf", "dmmse_energy"].notna().all()


def test_resampling_past_the_trained_context_needs_permission():
    config = copy.deepcopy(TEST_CONFIG)
    config["resample"]["path_length"] = TEST_CONFIG["context_length"] + 1
    with pytest.raises(ConfigError, match="resample.path_length"):
        validate_config(config)
    config["resample"]["allow_extrapolation"] = True
    validate_config(config)


def test_rerun_with_nothing_changed_does_nothing(pipeline):
    result = snakemake(pipeline, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_one_pool_size_reruns_only_what_depends_on_it(pipeline, tmp_path):
    config = copy.deepcopy(TEST_CONFIG)
    config["overrides"] = {4: {"lr": 0.001}}
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(pipeline, "-n", config=path))
    assert jobs.get("train") == 1 and jobs.get("evaluate") == 2, jobs
    assert jobs.get("resample") == 2 and jobs.get("resample_stats") == 1, jobs
    assert not {"pool", "eval_set", "plot_mask", "resample_reference"} & set(jobs), jobs


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
    (lambda c: c["resample"].update(path_length=7), "resample.path_length"),  # past context_length=6
    (lambda c: c["train"].update(precision="float16"), "['precision']"),
    (lambda c: c["train"].update(compile="yes"), "['compile']"),
]


def validate_config(config: dict) -> None:
    from snakemake.utils import validate

    validate(copy.deepcopy(config), str(REPO / "workflow/schemas/config.schema.yaml"))
    check_experiment(config)


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


def test_snakemake_refuses_a_bad_config_before_any_job(tmp_path_factory):
    config = copy.deepcopy(TEST_CONFIG)
    config["model"]["n_layers"] = 0
    workdir = new_workdir(tmp_path_factory, "bad", config)
    result = snakemake(workdir, check=False)
    assert result.returncode != 0
    assert "['model']['n_layers']" in result.stdout + result.stderr
    assert not (workdir / RESULTS).exists()


def test_lint_and_format_are_clean(tmp_path):
    lint = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--snakefile", str(REPO / "Snakefile"), "--directory", str(REPO)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    fmt = subprocess.run([sys.executable, "-m", "snakefmt", "--check", str(REPO)], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stderr
