import math

import numpy as np

from lrpfn.compare import against_samples, nearest_atom_distance
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
    assert ref.groupby(["prior", "replica"]).size().to_dict() == {
        (p, r): 500 * 5 for p in ("gaussian", "pool") for r in (0, 1)
    }
    # Other y draws, the same inputs x: an exact sampler stands in for a model at step 100.
    other = reference_samples(pool, 0.25, 2, all_targets, 500, 8, seed=3)
    other = other[(other.prior == "pool") & (other.replica == 1)].drop(columns=["prior", "replica"]).assign(step=100)
    table = statistics(other, ref, all_targets, pool)
    assert len(table) == len(all_targets) * 2 * 2  # targets x references x dims
    pool_ref, gauss_ref = table[table.reference == "pool"], table[table.reference == "gaussian"]
    # Against its own prior's reference it sits exactly on the floor (it is replica 1) ...
    np.testing.assert_array_equal(pool_ref.energy.to_numpy(), pool_ref.floor_energy.to_numpy())
    # ... and from the prior or a pool prefix it is far from the Gaussian-prior reference.
    on_pool = gauss_ref[gauss_ref.tasks != "true"]
    assert on_pool.energy.mean() > 4 * on_pool.floor_energy.mean()  # measured: 6.6x
    # From the prior or a prefix drawn from the pool, w_hat (OLS on 8 points, noise sd 0.5)
    # sits near a pool task, like the pool reference's; a Gaussian reference's does not.
    assert (pool_ref[pool_ref.tasks != "true"].median_pool_distance < 0.5).all()
    assert (pool_ref[pool_ref.tasks != "true"].ref_median_pool_distance < 0.5).all()
