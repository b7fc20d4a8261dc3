import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from lrpfn.compare import against_samples, energy_distance, nearest_atom_distance
from lrpfn.exact import Ridge, distinct, references
from lrpfn.implied import REPLICAS, Target, reference_samples, sample_frame, statistics, targets
from lrpfn.priors import Pool, StandardGaussian
from lrpfn.resample import Resampled, draw_inputs, least_squares, resample_exact
from lrpfn.tasks import eval_set, master_pool


def test_same_distribution_looks_the_same_and_a_wider_one_does_not():
    rng = np.random.default_rng(0)
    n = 4000
    a, b = rng.standard_normal((n, 2)), rng.standard_normal((n, 2))
    b[:, 1] *= 1.5
    table = against_samples(a, b)
    # Std ratio of two independent samples: relative standard error sqrt(1/n) (two sds, each 1/sqrt(2n)).
    assert abs(table.std_ratio[0] - 1) < 4 / math.sqrt(n)
    assert abs(table.std_ratio[1] - 1 / 1.5) < 4 / math.sqrt(n)
    assert table.ks_pvalue[0] > 1e-3 and table.ks_pvalue[1] < 1e-6
    # scipy's energy distance is the square-root form: its noise floor falls like n^(-1/4).
    assert table.energy[1] > 5 * table.energy[0]


def test_nearest_atom_distance_matches_brute_force():
    rng = np.random.default_rng(2)
    s, atoms = rng.standard_normal((50, 3)), rng.standard_normal((7, 3))
    brute = np.sqrt(((s[:, None] - atoms[None]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(nearest_atom_distance(s, atoms, chunk=4), brute, atol=1e-10)


def test_targets_and_statistics_of_the_exact_sampler_against_itself():
    pool = master_pool(3, 0, StandardGaussian(2))
    eval_sets = {
        "true": eval_set(4, 8, 0.25, StandardGaussian(2), seed=0),
        "pool": eval_set(4, 8, 0.25, Pool(pool), seed=1),
    }
    all_targets = targets(eval_sets, n_prefixes=2, prefix_length=3)
    assert [(t.kind, t.tasks, t.prefix) for t in all_targets] == [
        ("prior", "", -1),
        ("posterior", "true", 0), ("posterior", "true", 1),
        ("posterior", "pool", 0), ("posterior", "pool", 1),
    ]  # fmt: skip
    # Under N(0, I) ridge is the true prior's Bayes predictor: one Gaussian reference, 'bayes'.
    predictors = distinct(references(StandardGaussian(2), Pool(pool), 0.25))
    assert list(predictors) == ["bayes", "dmmse"]
    ref = reference_samples(predictors, 2, all_targets, 500, [8, 12], seed=3)
    assert ref.groupby(["reference", "replica", "path_length"]).size().to_dict() == {
        (p, r, n): 500 * 5 for p in ("bayes", "dmmse") for r in range(REPLICAS) for n in (8, 12)
    }
    # An exact pool-prior sampler stands in for a model at step 100: replica 1 itself, with
    # 8-point paths; it is held against the references of its own path length only.
    on_dmmse = (ref.reference == "dmmse") & (ref.replica == 1) & (ref.path_length == 8)
    other = ref[on_dmmse].drop(columns=["reference", "replica"]).assign(step=100)
    table = statistics(other, ref, all_targets, pool)
    assert len(table) == len(all_targets) * 2 * 2  # targets x references x dims
    assert (table.path_length == 8).all()
    ref = ref[ref.path_length == 8]
    pool_ref, gauss_ref = table[table.reference == "dmmse"], table[table.reference == "bayes"]

    # Against its own prior's reference it is one of the floor's replicas ...
    def replica(r):
        return ref[(ref.reference == "dmmse") & (ref.replica == r) & (ref.kind == "prior")][["w_0", "w_1"]].to_numpy()

    floor = [against_samples(replica(r), replica(0)).energy for r in range(1, REPLICAS)]
    prior_row = pool_ref[pool_ref.kind == "prior"]
    np.testing.assert_allclose(prior_row.energy, floor[0], rtol=1e-12)
    np.testing.assert_allclose(prior_row.floor_energy, np.mean(floor, axis=0), rtol=1e-12)
    np.testing.assert_allclose(prior_row.floor_energy_sd, np.std(floor, axis=0, ddof=1), rtol=1e-12)
    # ... and from the prior or a pool prefix it is far from the Gaussian-prior reference.
    on_pool = gauss_ref[gauss_ref.tasks != "true"]
    assert on_pool.energy.mean() > 4 * on_pool.floor_energy.mean()  # measured: 6.6x
    # From the prior or a prefix drawn from the pool, w_hat (OLS on 8 points, noise sd 0.5)
    # sits near a pool task, like the pool reference's.
    assert (pool_ref[pool_ref.tasks != "true"].median_pool_distance < 0.5).all()
    assert (pool_ref[pool_ref.tasks != "true"].ref_median_pool_distance < 0.5).all()


def inflated_gaussian_resampler(noise_var, inputs, prefix_x, prefix_y, generator, scale):
    """A deliberately wrong predictive: the exact Gaussian-prior one with its variance x scale
    (posterior by direct solves, independent of the library's rank-one updates)."""
    n_paths, n_steps, dim = inputs.shape
    n = prefix_x.shape[0]
    x = torch.cat([prefix_x.double().expand(n_paths, -1, -1), inputs.double()], 1)
    y = torch.cat([prefix_y.double().expand(n_paths, -1), torch.zeros(n_paths, n_steps, dtype=torch.float64)], 1)
    for t in range(n, n + n_steps):
        xs, ys = x[:, :t], y[:, :t]
        precision = xs.transpose(1, 2) @ xs + noise_var * torch.eye(dim, dtype=torch.float64)
        mean = torch.linalg.solve(precision, xs.transpose(1, 2) @ ys.unsqueeze(-1)).squeeze(-1)
        var = noise_var + noise_var * torch.einsum("bi,bi->b", x[:, t], torch.linalg.solve(precision, x[:, t]))
        noise = torch.randn(n_paths, generator=generator, dtype=torch.float64)
        y[:, t] = (mean * x[:, t]).sum(-1) + (scale * var).sqrt() * noise
    return Resampled(w_hat=least_squares(x, y), x=x, y=y)


def test_an_exact_resampler_in_the_models_place_sits_within_the_floor_and_a_wrong_one_outside():
    # The floor's spread comes from REPLICAS - 1 exact replicas; a further exact reference is
    # exchangeable with them. Tolerances from 8 seeds of this set-up: the exact one's
    # z = (energy - floor) / floor_sd ranged over -1.6..2.9 per (target, dim), |mean| <= 0.7;
    # the predictive with 1.5x variance gave z >= 3.7 per (target, dim) and a mean >= 8.2.
    noise_var, n_paths, path_length, seed = 0.25, 2000, 16, 0
    batch = eval_set(1, 8, noise_var, StandardGaussian(2), seed=0)
    all_targets = [Target("prior", "", -1, None, None), Target("posterior", "true", 0, batch.x[0, :3], batch.y[0, :3])]
    predictors = distinct(references(StandardGaussian(2), None, noise_var))
    assert list(predictors) == ["bayes"]
    ref = reference_samples(predictors, 2, all_targets, n_paths, [path_length], seed)
    exact, wrong = [], []
    for target in all_targets:
        n = 0 if target.x is None else target.x.shape[0]
        prefix_x = torch.zeros(0, 2) if target.x is None else target.x
        prefix_y = torch.zeros(0) if target.y is None else target.y
        inputs = draw_inputs(n_paths, path_length - n, 2, torch.Generator().manual_seed(seed))  # the same x
        y_stream = torch.Generator().manual_seed(seed + 1 + REPLICAS)  # a replica beyond the floor's
        exact.append(sample_frame(target, resample_exact(Ridge(2, noise_var), inputs, target.x, target.y, y_stream)))
        bad = inflated_gaussian_resampler(noise_var, inputs, prefix_x, prefix_y, torch.Generator().manual_seed(99), 1.5)
        wrong.append(sample_frame(target, bad))
    z = {}
    for name, frames in (("exact", exact), ("wrong", wrong)):
        table = statistics(pd.concat(frames).assign(step=1, path_length=path_length), ref, all_targets, None)
        z[name] = ((table.energy - table.floor_energy) / table.floor_energy_sd).to_numpy()
    assert (np.abs(z["exact"]) < 4).all() and abs(z["exact"].mean()) < 1.5, z["exact"]
    assert (z["wrong"] > 2).all() and z["wrong"].mean() > 5, z["wrong"]


def test_energy_distance_is_scipys_in_one_dimension_and_a_metric_in_many():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((300, 1)), 0.5 + rng.standard_normal((200, 1))
    assert energy_distance(a, b) == pytest.approx(stats.energy_distance(a[:, 0], b[:, 0]), rel=1e-12)
    # In G dimensions, with the RMS norm: zero for a set against itself, and a shift of every
    # coordinate by 0.5 gives the one-dimensional distance of a 0.5 shift in the limit.
    many, shifted = rng.standard_normal((400, 8)), 0.5 + rng.standard_normal((400, 8))
    assert energy_distance(many, many) == 0
    assert energy_distance(many, shifted) > 3 * energy_distance(many, rng.standard_normal((400, 8)))
