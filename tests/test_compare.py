import math

import numpy as np

from lrpfn.compare import against_atoms, against_gaussian, against_samples, nearest_atom_distance
from lrpfn.implied import reference_samples, statistics, targets
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


def test_against_gaussian_and_atoms():
    rng = np.random.default_rng(1)
    mean, cov = np.array([1.0, -2.0]), np.diag([0.25, 4.0])
    samples = mean + rng.standard_normal((3000, 2)) * np.sqrt(np.diag(cov))
    table = against_gaussian(samples, mean, cov)
    assert (table.ridge_ks_pvalue > 1e-3).all()
    assert np.allclose(table.ridge_std, [0.5, 2.0])
    atoms = np.array([[0.0, 0.0], [3.0, 3.0]])
    on_atoms = atoms[rng.choice(2, size=3000, p=[0.2, 0.8])]
    right = against_atoms(on_atoms, atoms, np.array([0.2, 0.8])).dmmse_energy
    wrong = against_atoms(on_atoms, atoms, np.array([0.8, 0.2])).dmmse_energy
    assert (wrong > 5 * right).all()


def test_nearest_atom_distance_matches_brute_force():
    rng = np.random.default_rng(2)
    s, atoms = rng.standard_normal((50, 3)), rng.standard_normal((7, 3))
    brute = np.sqrt(((s[:, None] - atoms[None]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(nearest_atom_distance(s, atoms, chunk=4), brute, atol=1e-10)


def test_targets_and_statistics_of_the_exact_sampler_against_itself():
    pool = master_pool(3, 2, seed=0)
    eval_sets = {"true": eval_set(4, 8, 2, 0.25, None, seed=0), "pool": eval_set(4, 8, 2, 0.25, pool, seed=1)}
    all_targets = targets(eval_sets, n_prefixes=2, prefix_length=3)
    assert [(t.kind, t.tasks, t.prefix) for t in all_targets] == [
        ("prior", "", -1),
        ("posterior", "true", 0), ("posterior", "true", 1),
        ("posterior", "pool", 0), ("posterior", "pool", 1),
    ]  # fmt: skip
    ref = reference_samples(pool, 0.25, 2, all_targets, 500, 8, seed=3)
    other = reference_samples(pool, 0.25, 2, all_targets, 500, 8, seed=4).assign(step=100)
    table = statistics(other, ref, all_targets, pool, 0.25)
    assert len(table) == len(all_targets) * 2
    # Two independent runs of the exact sampler agree.
    assert (table.ks_pvalue > 1e-4).all()
    # From the prior or a prefix drawn from the pool, w_hat (OLS on 8 points, noise sd 0.5)
    # sits near a pool task; a T_true prefix pulls it off the pool.
    on_pool = table[table.tasks != "true"]
    assert (on_pool.median_pool_distance < 0.5).all()
