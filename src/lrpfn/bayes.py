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
* Any Gaussian-mixture prior ``w ~ sum_c pi_c N(m_c, Sigma_c)`` (SPEC §10,
  :class:`lrpfn.priors.GaussianMixture`): per component a Gaussian posterior and its
  marginal likelihood. The two above are its special cases (one component ``N(0, I)``; M
  point masses) and keep their fast paths; the tests hold the general engine to them.
"""

from __future__ import annotations

import math

import torch

from .priors import GaussianMixture

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


class MixturePosterior:
    """The posterior of w under a Gaussian-mixture prior, for B sequences at once, one pair at
    a time (SPEC §10), float64: normalised log weights (B, C), component means (B, C, D) and
    covariances (B, C, D, D), starting from the prior.

    Per component the predictive of the next y at x is ``N(x·mu_c, x^T S_c x + noise_var)``.
    When y is observed each weight is multiplied by its component's density of y (before that
    component's own update) and renormalised in log space, and each component takes its
    rank-one update.
    """

    def __init__(self, prior: GaussianMixture, noise_var: float, batch: int, device=None):
        n_comp, dim = prior.n_components, prior.dim
        self.noise_var = noise_var
        self.log_weights = prior.log_weights.to(device).expand(batch, n_comp).clone()
        self.means = prior.means.to(device).expand(batch, n_comp, dim).clone()
        self.covariances = prior.covariances.to(device).expand(batch, n_comp, dim, dim).clone()

    def predictive(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """At inputs x (B, D): ``S_c x`` (B, C, D), and each component's predictive mean and variance (B, C)."""
        cov_x = torch.einsum("bcij,bj->bci", self.covariances, x)
        mean = torch.einsum("bci,bi->bc", self.means, x)
        return cov_x, mean, self.noise_var + torch.einsum("bci,bi->bc", cov_x, x)

    def observe(self, x: torch.Tensor, y: torch.Tensor, predictive: tuple | None = None) -> None:
        """Condition on the pairs (x, y), (B, D) and (B,); ``predictive`` is :meth:`predictive`
        at x when the caller has it already."""
        cov_x, comp_mean, comp_var = self.predictive(x) if predictive is None else predictive
        y = y.unsqueeze(-1)
        self.log_weights = torch.log_softmax(self.log_weights - gaussian_nll(y, comp_mean, comp_var), -1)
        gain = cov_x / comp_var.unsqueeze(-1)
        self.means = self.means + gain * (y - comp_mean).unsqueeze(-1)
        self.covariances = self.covariances - comp_var[..., None, None] * gain.unsqueeze(-1) * gain.unsqueeze(-2)


def _mixture_scan(x: torch.Tensor, y: torch.Tensor, prior: GaussianMixture, noise_var: float):
    """Sequential pass over positions, float64: per position the components of the mixture
    predictive of ``y_i`` (:class:`MixturePosterior` after the pairs before i) — normalised
    log weights, means and variances, each (B, K, C)."""
    batch, length, _ = x.shape
    posterior = MixturePosterior(prior, noise_var, batch, x.device)
    out = torch.empty(3, batch, length, prior.n_components, dtype=torch.float64, device=x.device)
    for i in range(length):
        predictive = posterior.predictive(x[:, i])
        out[0, :, i], out[1, :, i], out[2, :, i] = posterior.log_weights, predictive[1], predictive[2]
        posterior.observe(x[:, i], y[:, i], predictive)
    return out[0], out[1], out[2]


def mixture_components(
    x: torch.Tensor, y: torch.Tensor, prior: GaussianMixture, noise_var: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The posterior predictive of ``y_i`` given pairs ``< i`` and ``x_i`` under a Gaussian-
    mixture prior, as a mixture over y: normalised log weights, means and variances of its
    components, each (B, K, C) float64.

    Costs C x D^2 per position and sequence; batches are chunked to bound memory.
    """
    batch, length, dim = x.shape
    n_comp = prior.n_components
    out = torch.empty(3, batch, length, n_comp, dtype=torch.float64, device=x.device)
    for chunk in _batch_chunks(batch, n_comp * (dim * (dim + 3) + 3 * length)):
        out[:, chunk] = torch.stack(_mixture_scan(x[chunk].double(), y[chunk].double(), prior, noise_var))
    return out[0], out[1], out[2]


def mixture_predictive(
    x: torch.Tensor, y: torch.Tensor, prior: GaussianMixture, noise_var: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Posterior predictive of ``y_i`` given pairs ``< i`` and ``x_i`` under a Gaussian-mixture
    prior: mean, variance and the NLL (nats) of the observed ``y_i``, each (B, K) float64.

    The variance is ``sum_c pi_c (v_c + (m_c - m)^2)``, free of cancellation.
    """
    log_w, means, variances = mixture_components(x, y, prior, noise_var)
    weights = log_w.exp()
    mean = (weights * means).sum(-1)
    var = (weights * (variances + (means - mean.unsqueeze(-1)) ** 2)).sum(-1)
    nll = -torch.logsumexp(log_w - gaussian_nll(y.double().unsqueeze(-1), means, variances), -1)
    return mean, var, nll


def mixture_posterior(
    x: torch.Tensor, y: torch.Tensor, prior: GaussianMixture, noise_var: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Posterior after *all* n pairs of each sequence, in closed form (SPEC §10), float64:
    normalised log weights (B, C), means (B, C, D) and covariances (B, C, D, D).

    Per component ``G_c = X Sigma_c X^T + noise_var I``, ``mu_c = m_c + Sigma_c X^T G_c^-1
    (y - X m_c)``, ``S_c = Sigma_c - Sigma_c X^T G_c^-1 X Sigma_c`` and the weight
    ``pi_c N(y; X m_c, G_c)``: no inverse of ``Sigma_c``, so point masses are fine.
    """
    x, y = x.double(), y.double()
    batch, n, _ = x.shape
    means, covs = prior.means.to(x.device), prior.covariances.to(x.device)
    if n == 0:
        return (
            prior.log_weights.to(x.device).expand(batch, -1).clone(),
            means.expand(batch, -1, -1).clone(),
            covs.expand(batch, -1, -1, -1).clone(),
        )
    cov_xt = torch.einsum("cij,bnj->bcin", covs, x)  # Sigma_c X^T: (B, C, D, n)
    gram = x.unsqueeze(1) @ cov_xt + noise_var * torch.eye(n, dtype=torch.float64, device=x.device)
    chol = torch.linalg.cholesky(gram)
    resid = y.unsqueeze(1) - torch.einsum("bnd,cd->bcn", x, means)  # (B, C, n)
    alpha = torch.cholesky_solve(resid.unsqueeze(-1), chol).squeeze(-1)
    post_means = means + (cov_xt @ alpha.unsqueeze(-1)).squeeze(-1)
    post_covs = covs - cov_xt @ torch.cholesky_solve(cov_xt.transpose(-1, -2), chol)
    log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    log_marginal = -0.5 * (n * LOG_2PI + log_det + (resid * alpha).sum(-1))
    return torch.log_softmax(prior.log_weights.to(x.device) + log_marginal, -1), post_means, post_covs
