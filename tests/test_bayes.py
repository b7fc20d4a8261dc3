import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from lrpfn import bayes
from lrpfn.bayes import dmmse_nll, dmmse_posterior, dmmse_predictive, ridge_nll, ridge_posterior, ridge_predictive
from lrpfn.priors import Pool, StandardGaussian
from lrpfn.tasks import master_pool, sample_batch


def slow_ridge(x, y, noise_var):
    """Per sequence, per position: numpy solve of the ridge posterior predictive."""
    b, k, d = x.shape
    mean, var = np.zeros((b, k)), np.zeros((b, k))
    for s in range(b):
        for i in range(k):
            X, Y = x[s, :i], y[s, :i]
            A = X.T @ X + noise_var * np.eye(d)
            mu = np.linalg.solve(A, X.T @ Y)
            S = noise_var * np.linalg.inv(A)
            mean[s, i] = mu @ x[s, i]
            var[s, i] = noise_var + x[s, i] @ S @ x[s, i]
    return mean, var


def slow_dmmse(x, y, pool, noise_var):
    """Per sequence, per position: explicit mixture over the pool."""
    b, k, _ = x.shape
    mean, nll = np.zeros((b, k)), np.zeros((b, k))
    for s in range(b):
        for i in range(k):
            resid = y[s, :i, None] - x[s, :i] @ pool.T  # (i, M)
            log_w = -(resid**2).sum(0) / (2 * noise_var)
            pi = np.exp(log_w - logsumexp(log_w))
            pred = pool @ x[s, i]
            mean[s, i] = pi @ pred
            log_dens = -0.5 * np.log(2 * np.pi * noise_var) - (y[s, i] - pred) ** 2 / (2 * noise_var)
            nll[s, i] = -logsumexp(log_dens, b=pi)
    return mean, nll


@pytest.fixture
def data():
    batch = sample_batch(6, 9, 0.25, StandardGaussian(3), torch.Generator().manual_seed(0))
    return batch.x.double(), batch.y.double()


def test_ridge_matches_slow_reference(data):
    x, y = data
    mean, var = ridge_predictive(x, y, 0.25)
    ref_mean, ref_var = slow_ridge(x.numpy(), y.numpy(), 0.25)
    np.testing.assert_allclose(mean.numpy(), ref_mean, rtol=0, atol=1e-8)
    np.testing.assert_allclose(var.numpy(), ref_var, rtol=0, atol=1e-8)
    nll = ridge_nll(x, y, 0.25).numpy()
    ref_nll = 0.5 * np.log(2 * np.pi * ref_var) + (y.numpy() - ref_mean) ** 2 / (2 * ref_var)
    np.testing.assert_allclose(nll, ref_nll, rtol=0, atol=1e-8)


def test_ridge_position_zero_is_the_prior_predictive(data):
    x, y = data
    mean, var = ridge_predictive(x, y, 0.25)
    assert torch.all(mean[:, 0] == 0)
    torch.testing.assert_close(var[:, 0], 0.25 + (x[:, 0] ** 2).sum(-1))


def test_ridge_posterior_agrees_with_predictive(data):
    x, y = data
    mu, cov = ridge_posterior(x[:, :-1], y[:, :-1], 0.25)
    mean, var = ridge_predictive(x, y, 0.25)
    x_last = x[:, -1]
    torch.testing.assert_close((mu * x_last).sum(-1), mean[:, -1])
    torch.testing.assert_close(0.25 + torch.einsum("bd,bde,be->b", x_last, cov, x_last), var[:, -1])


@pytest.mark.parametrize("chunk_elements", [1 << 24, 40])
def test_dmmse_matches_slow_mixture(data, monkeypatch, chunk_elements):
    # A tiny chunk budget forces many pool chunks and batch chunks: the streaming
    # logsumexp must give the same answer as the one-shot mixture.
    monkeypatch.setattr(bayes, "_CHUNK_ELEMENTS", chunk_elements)
    monkeypatch.setattr(bayes, "_MIN_POOL_CHUNK", 1)
    x, y = data
    pool = master_pool(37, 2, StandardGaussian(3)).double()
    ref_mean, ref_nll = slow_dmmse(x.numpy(), y.numpy(), pool.numpy(), 0.25)
    np.testing.assert_allclose(dmmse_predictive(x, y, pool, 0.25).numpy(), ref_mean, rtol=0, atol=1e-8)
    np.testing.assert_allclose(dmmse_nll(x, y, pool, 0.25).numpy(), ref_nll, rtol=0, atol=1e-8)


def test_dmmse_single_task_pool_predicts_that_task(data):
    x, y = data
    pool = torch.randn(1, 3, dtype=torch.float64)
    torch.testing.assert_close(dmmse_predictive(x, y, pool, 0.25), x @ pool[0])


def test_dmmse_is_safe_far_from_every_task():
    # Observations wildly off every pool member: weights underflow without logsumexp.
    x = torch.ones(1, 4, 2, dtype=torch.float64)
    y = torch.full((1, 4), 1e4, dtype=torch.float64)
    pool = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    mean = dmmse_predictive(x, y, pool, 0.01)
    assert torch.isfinite(mean).all() and torch.isfinite(dmmse_nll(x, y, pool, 0.01)).all()
    assert mean[0, -1].item() == pytest.approx(2.0)  # the nearer task takes all the weight


def test_dmmse_posterior_concentrates_on_the_true_task():
    pool = master_pool(64, 3, StandardGaussian(4))
    batch = sample_batch(32, 32, 0.25, Pool(pool), torch.Generator().manual_seed(1))
    pi = dmmse_posterior(batch.x, batch.y, pool, 0.25)
    torch.testing.assert_close(pi.sum(-1), torch.ones(32, dtype=torch.float64))
    assert torch.equal(pi.argmax(-1), batch.task)


def test_ridge_predictive_is_calibrated():
    # Under the Gaussian prior, (y - mean)/sd is exactly N(0, 1) at every position.
    # A posterior covariance missing its noise_var factor fails this at noise_var != 1.
    noise_var = 0.1
    batch = sample_batch(4000, 12, noise_var, StandardGaussian(3), torch.Generator().manual_seed(4))
    mean, var = ridge_predictive(batch.x, batch.y, noise_var)
    z2 = ((batch.y.double() - mean.double()) ** 2 / var.double()).flatten()
    # E z^2 = 1, Var z^2 = 2: standard error sqrt(2/n).
    assert abs(z2.mean().item() - 1) < 4 * math.sqrt(2 / z2.numel())
    for position in (0, 5, 11):
        z2p = ((batch.y[:, position] - mean[:, position]) ** 2 / var[:, position]).double()
        assert abs(z2p.mean().item() - 1) < 4 * math.sqrt(2 / z2p.numel())


def test_ridge_posterior_recovers_w_as_k_grows():
    errors = []
    for k in (4, 64, 1024):
        batch = sample_batch(200, k, 0.25, StandardGaussian(4), torch.Generator().manual_seed(k))
        mu, cov = ridge_posterior(batch.x, batch.y, 0.25)
        err = ((mu - batch.w.double()) ** 2).sum(-1)
        # Bayes: E ||mu - w||^2 = E tr(S_n); check the mean against it (4 standard errors).
        trace = torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1)
        assert abs(err.mean() - trace.mean()) < 4 * err.std() / math.sqrt(200)
        errors.append(err.mean().item())
    # Past K >> D the error falls like D noise_var / K: 16x from K=64 to K=1024.
    assert errors[0] > 10 * errors[1] and errors[1] > 8 * errors[2]
    assert errors[2] < 2 * 4 * 0.25 / 1024


def test_float32_inputs_give_float32_outputs(data):
    x, y = data
    mean, var = ridge_predictive(x.float(), y.float(), 0.25)
    assert mean.dtype == var.dtype == torch.float32
    assert dmmse_nll(x.float(), y.float(), torch.randn(3, 3), 0.25).dtype == torch.float32
