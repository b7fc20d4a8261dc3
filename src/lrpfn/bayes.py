"""Exact Bayesian references (SPEC §2): the oracles every model is held against.

All functions take a batch of sequences, ``x`` (B, K, D) and ``y`` (B, K), and return the
prediction at *every* position at once: the prediction at position i uses the pairs
before i only, so position 0 is the prior predictive. Computation is in float64;
results come back in the input's floating dtype.

* Gaussian prior ``w ~ N(0, I)`` (ridge with lambda = noise_var): posterior
  ``N(mu_n, S_n)`` with ``S_n = noise_var (X^T X + noise_var I)^-1`` and
  ``mu_n = (X^T X + noise_var I)^-1 X^T y``.
* Pool prior ``w ~ Uniform{w_1..w_M}`` (dMMSE): posterior weights
  ``pi_m ∝ exp(-||y - X w_m||^2 / (2 noise_var))``.
"""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)

# Elements of float64 scratch per chunk (about 128 MiB): bounds memory for any B, K, D, M.
_CHUNK_ELEMENTS = 1 << 24
# Batch chunks leave room for at least this many pool rows per scan step.
_MIN_POOL_CHUNK = 256


def gaussian_nll(y: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Negative log density of ``y`` under ``N(mean, var)``, elementwise."""
    return 0.5 * (LOG_2PI + torch.log(var) + (y - mean) ** 2 / var)


def _batch_chunks(n: int, per_item: int):
    size = max(1, _CHUNK_ELEMENTS // max(per_item, 1))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def ridge_posterior(x: torch.Tensor, y: torch.Tensor, noise_var: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior of w after *all* K pairs: mean (B, D) and covariance (B, D, D), float64."""
    x, y = x.double(), y.double()
    dim = x.shape[-1]
    precision = x.transpose(-1, -2) @ x + noise_var * torch.eye(dim, dtype=x.dtype, device=x.device)
    chol = torch.linalg.cholesky(precision)
    mean = torch.cholesky_solve((x.transpose(-1, -2) @ y.unsqueeze(-1)), chol).squeeze(-1)
    cov = noise_var * torch.cholesky_inverse(chol)
    return mean, cov


def ridge_predictive(x: torch.Tensor, y: torch.Tensor, noise_var: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian-prior posterior predictive of ``y_i`` given pairs ``< i`` and ``x_i``.

    Returns mean and variance, each (B, K): ``mean = mu·x_i`` (the ridge prediction),
    ``var = noise_var + x_i^T S x_i``.
    """
    batch, length, dim = x.shape
    mean = torch.empty(batch, length, dtype=torch.float64, device=x.device)
    var = torch.empty_like(mean)
    eye = torch.eye(dim, dtype=torch.float64, device=x.device)
    for chunk in _batch_chunks(batch, length * dim * (dim + 2)):
        xc, yc = x[chunk].double(), y[chunk].double()
        outer = xc.unsqueeze(-1) * xc.unsqueeze(-2)  # (b, K, D, D)
        # Exclusive prefix sums: position i sees pairs 0..i-1.
        gram = torch.cumsum(outer, dim=1) - outer
        xty = torch.cumsum(xc * yc.unsqueeze(-1), dim=1) - xc * yc.unsqueeze(-1)
        chol = torch.linalg.cholesky(gram + noise_var * eye)
        rhs = torch.stack([xty, xc], dim=-1)  # (b, K, D, 2)
        sol = torch.cholesky_solve(rhs, chol)
        mean[chunk] = (sol[..., 0] * xc).sum(-1)
        var[chunk] = noise_var * (1.0 + (sol[..., 1] * xc).sum(-1))
    dtype = x.dtype if x.is_floating_point() else torch.float64
    return mean.to(dtype), var.to(dtype)


def ridge_nll(x: torch.Tensor, y: torch.Tensor, noise_var: float) -> torch.Tensor:
    """Exact NLL (nats) of each observed ``y_i`` under the Gaussian-prior predictive, (B, K)."""
    mean, var = ridge_predictive(x.double(), y.double(), noise_var)
    return gaussian_nll(y.double(), mean, var).to(y.dtype)


def _dmmse_scan(x: torch.Tensor, y: torch.Tensor, pool: torch.Tensor, noise_var: float):
    """One pass over the pool (in chunks) accumulating, for every position i,

    * ``log_z``: logsumexp_m of the log posterior weight ``l_m(i)`` (pairs < i),
    * ``mean``:  sum_m pi_m(i) w_m·x_i,
    * ``log_pred``: log sum_m pi_m(i) N(y_i; w_m·x_i, noise_var).

    Streaming logsumexp keeps memory at O(chunk) for pools of any size.
    """
    batch, length, _ = x.shape
    xd, yd, pd_ = x.double(), y.double(), pool.double().to(x.device)
    log_norm = -0.5 * (LOG_2PI + math.log(noise_var))
    log_z = torch.full((batch, length), -math.inf, dtype=torch.float64, device=x.device)
    log_joint = torch.full_like(log_z, -math.inf)
    mean = torch.zeros_like(log_z)
    pool_chunk = max(1, _CHUNK_ELEMENTS // max(batch * length, 1))
    for start in range(0, pd_.shape[0], pool_chunk):
        w = pd_[start : start + pool_chunk]  # (m, D)
        pred = xd @ w.T  # (B, K, m)
        sq = (yd.unsqueeze(-1) - pred) ** 2 / (2 * noise_var)
        log_w = -(torch.cumsum(sq, dim=1) - sq)  # exclusive: pairs before i
        chunk_z = torch.logsumexp(log_w, dim=-1)
        new_z = torch.logaddexp(log_z, chunk_z)
        mean = mean * torch.exp(log_z - new_z) + (torch.exp(log_w - new_z.unsqueeze(-1)) * pred).sum(-1)
        log_z = new_z
        log_joint = torch.logaddexp(log_joint, torch.logsumexp(log_w - sq, dim=-1))
    return log_z, mean, log_joint - log_z + log_norm


def dmmse_predictive(x: torch.Tensor, y: torch.Tensor, pool: torch.Tensor, noise_var: float) -> torch.Tensor:
    """Pool-prior posterior mean prediction ``(sum_m pi_m w_m)·x_i``, (B, K)."""
    out = torch.empty(y.shape, dtype=torch.float64, device=x.device)
    for chunk in _batch_chunks(x.shape[0], x.shape[1] * _MIN_POOL_CHUNK):
        out[chunk] = _dmmse_scan(x[chunk], y[chunk], pool, noise_var)[1]
    return out.to(y.dtype)


def dmmse_nll(x: torch.Tensor, y: torch.Tensor, pool: torch.Tensor, noise_var: float) -> torch.Tensor:
    """Exact NLL (nats) of each observed ``y_i`` under the pool-prior mixture predictive, (B, K)."""
    out = torch.empty(y.shape, dtype=torch.float64, device=x.device)
    for chunk in _batch_chunks(x.shape[0], x.shape[1] * _MIN_POOL_CHUNK):
        out[chunk] = -_dmmse_scan(x[chunk], y[chunk], pool, noise_var)[2]
    return out.to(y.dtype)


def dmmse_posterior(x: torch.Tensor, y: torch.Tensor, pool: torch.Tensor, noise_var: float) -> torch.Tensor:
    """Posterior weights over the pool after *all* K pairs, (B, M) float64 summing to 1."""
    resid = y.double().unsqueeze(-1) - x.double() @ pool.double().to(x.device).T  # (B, K, M)
    log_w = -(resid**2).sum(1) / (2 * noise_var)
    return torch.softmax(log_w, dim=-1)
