import math

import numpy as np
import pytest
import torch

from lrpfn.io import read_parquet, write_parquet
from lrpfn.priors import Pool, StandardGaussian
from lrpfn.tasks import (
    batch_to_frame,
    eval_set,
    frame_to_batch,
    master_pool,
    pool_slice,
    pool_to_frame,
    read_run_pool,
    sample_batch,
)


def test_pools_are_nested_whatever_the_master_size():
    small = master_pool(8, 5, StandardGaussian(3))
    large = master_pool(1000, 5, StandardGaussian(3))
    assert torch.equal(small, large[:8])
    assert not torch.equal(master_pool(8, 6, StandardGaussian(3)), small)


def test_pool_slice():
    master = master_pool(16, 0, StandardGaussian(2))
    assert pool_slice(master, math.inf) is None
    assert torch.equal(pool_slice(master, 4), master[:4])
    for bad in (0, -1, 2.5, 17):
        with pytest.raises(ValueError):
            pool_slice(master, bad)


def test_true_prior_batch_statistics():
    n, k, d, noise_var = 4096, 8, 3, 0.3
    batch = sample_batch(n, k, noise_var, StandardGaussian(d), torch.Generator().manual_seed(0))
    assert batch.x.shape == (n, k, d) and batch.y.shape == (n, k) and batch.w.shape == (n, d)
    assert torch.allclose(batch.target, torch.einsum("bkd,bd->bk", batch.x, batch.w))
    noise = (batch.y - batch.target).double()
    # Sample variance of n*k Gaussians has relative standard error sqrt(2/(n*k)).
    se = noise_var * math.sqrt(2 / noise.numel())
    assert abs(noise.var().item() - noise_var) < 4 * se
    assert abs(batch.w.var().item() - 1) < 4 * math.sqrt(2 / batch.w.numel())
    assert torch.all(batch.task == -1)


def test_pool_batch_uses_pool_rows_uniformly():
    pool = master_pool(4, 1, StandardGaussian(2))
    batch = sample_batch(8000, 2, 0.1, Pool(pool), torch.Generator().manual_seed(0))
    assert torch.equal(batch.w, pool[batch.task])
    counts = torch.bincount(batch.task, minlength=4).double()
    # Binomial(8000, 1/4): sd = sqrt(8000 * 3/16) ~ 38.7.
    assert torch.all((counts - 2000).abs() < 4 * 38.8)


def test_batches_are_a_function_of_the_generator():
    a = sample_batch(5, 4, 0.1, StandardGaussian(2), torch.Generator().manual_seed(3))
    b = sample_batch(5, 4, 0.1, StandardGaussian(2), torch.Generator().manual_seed(3))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_a_curriculum_batch_zeroes_the_inactive_inputs_and_draws_the_same_stream():
    full_gen, curr_gen = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    full = sample_batch(6, 5, 0.1, StandardGaussian(4), full_gen)
    curr = sample_batch(6, 5, 0.1, StandardGaussian(4), curr_gen, active_dims=2)
    assert torch.all(curr.x[..., 2:] == 0) and torch.equal(curr.x[..., :2], full.x[..., :2])
    assert torch.equal(curr.w, full.w)
    # Targets use only the active coordinates; the noise is the same draw.
    assert torch.allclose(curr.target, torch.einsum("bkd,bd->bk", full.x[..., :2], full.w[:, :2]), atol=1e-6)
    assert torch.allclose(curr.y - curr.target, full.y - full.target, atol=1e-6)
    # The generator advanced exactly as without the curriculum: later batches are unchanged.
    assert torch.equal(full_gen.get_state(), curr_gen.get_state())


def test_eval_set_roundtrips_through_parquet(tmp_path):
    pool = master_pool(16, 0, StandardGaussian(3))
    batch = eval_set(7, 5, 0.25, Pool(pool), seed=9)
    path = tmp_path / "eval.parquet"
    write_parquet(batch_to_frame(batch), path)
    frame = read_parquet(path)
    assert list(frame.columns[:3]) == ["sequence", "position", "task"]
    back = frame_to_batch(frame.sample(frac=1.0, random_state=0))  # row order must not matter
    for name in ("x", "y", "w", "target", "task"):
        assert torch.equal(getattr(back, name), getattr(batch, name)), name


def test_ragged_eval_table_is_rejected():
    frame = batch_to_frame(eval_set(3, 4, 0.1, StandardGaussian(2), seed=0))
    with pytest.raises(ValueError, match="ragged"):
        frame_to_batch(frame.iloc[:-1])
    with pytest.raises(ValueError, match="target"):
        frame_to_batch(frame.drop(columns="target"))


def test_the_default_prior_draws_plain_standard_normals():
    # The master pool is the rows of numpy's seeded standard normals; a batch draws x, then w,
    # then the noise from the generator's standard normals.
    expected = np.random.default_rng(3).standard_normal((5, 2)).astype(np.float32)
    assert torch.equal(master_pool(5, 3, StandardGaussian(2)), torch.from_numpy(expected))
    batch = sample_batch(4, 3, 0.1, StandardGaussian(2), torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    x, w = torch.randn((4, 3, 2), generator=generator), torch.randn((4, 2), generator=generator)
    noise = torch.randn((4, 3), generator=generator)
    assert torch.equal(batch.x, x) and torch.equal(batch.w, w)
    assert torch.equal(batch.y, batch.target + math.sqrt(0.1) * noise)


def test_a_runs_pool_is_read_from_its_rules_input(tmp_path):
    pool = master_pool(8, 0, StandardGaussian(2))[:4]
    path = tmp_path / "pool_M4.parquet"
    write_parquet(pool_to_frame(pool), path)
    assert torch.equal(read_run_pool([path], "4", 2), pool)
    assert torch.equal(read_run_pool(path, "4", 2), pool)
    assert read_run_pool([], "inf", 2) is None  # a run on the true prior has no pool
    with pytest.raises(ValueError, match="expected 8"):
        read_run_pool([path], "8", 2)
    with pytest.raises(ValueError, match="expected 3"):
        read_run_pool([path], "4", 3)
