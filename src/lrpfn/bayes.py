"""Exact Bayesian references (docs/design.md §2): the oracles every model is held against.

All functions take a batch of sequences, ``x`` (B, K, D) and ``y`` (B, K), and return the
prediction at *every* position at once: the prediction at position i uses the pairs
before i only, so position 0 is the prior predictive. Computation is in float64;
results come back in the input's floating dtype.

* Gaussian prior ``w ~ N(0, I)`` (ridge with lambda = noise_var): posterior
  ``N(mu_n, S_n)`` with ``S_n = noise_var (X^T X + noise_var I)^-1`` and
  ``mu_n = (X^T X + noise_var I)^-1 X^T y``.
* Pool prior ``w ~ Uniform{w_1..w_M}`` (dMMSE): posterior weights
  ``pi_m ∝ exp(-||y - X w_m||^2 / (2 noise_var))``.
* Any Gaussian-mixture prior ``w ~ sum_c pi_c N(m_c, Sigma_c)`` (docs/design.md §9,
  :class:`lrpfn.priors.GaussianMixture`): per component a Gaussian posterior and its
  marginal likelihood. The two above are its special cases (one component ``N(0, I)``; M
  point masses) and keep their fast paths; the tests hold the general engine to them.
* Unknown noise, ``sigma^2 ~ InvGamma(a, b)`` and ``w | sigma^2 ~ N(0, sigma^2 V_0)``: the
  posterior stays Normal-Inverse-Gamma, updated pair by pair (:func:`nig_observe`), and the
  predictive of y is a Student-t (:class:`StudentT`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
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


NoiseVar = float | torch.Tensor  # one noise variance for every task, or one per pool task (M,)


def _dmmse_scan(x: torch.Tensor, y: torch.Tensor, pool: torch.Tensor, noise_var: NoiseVar):
    """One pass over the pool (in chunks) accumulating, for every position i,

    * ``log_z``: logsumexp_m of the log posterior weight ``l_m(i)`` (pairs < i),
    * ``mean``:  sum_m pi_m(i) w_m·x_i,
    * ``log_pred``: log sum_m pi_m(i) N(y_i; w_m·x_i, noise_var_m).

    Streaming logsumexp keeps memory at O(chunk) for pools of any size. With one noise variance
    per task its log enters every pair's weight; a shared one cancels and is added at the end.
    """
    batch, length, _ = x.shape
    xd, yd, pd_ = x.double(), y.double(), pool.double().to(x.device)
    per_task = isinstance(noise_var, torch.Tensor)
    log_norm = -0.5 * LOG_2PI if per_task else -0.5 * (LOG_2PI + math.log(noise_var))
    log_z = torch.full((batch, length), -math.inf, dtype=torch.float64, device=x.device)
    log_joint = torch.full_like(log_z, -math.inf)
    mean = torch.zeros_like(log_z)
    pool_chunk = max(1, _CHUNK_ELEMENTS // max(batch * length, 1))
    for start in range(0, pd_.shape[0], pool_chunk):
        w = pd_[start : start + pool_chunk]  # (m, D)
        pred = xd @ w.T  # (B, K, m)
        if per_task:
            var = noise_var[start : start + pool_chunk].double().to(x.device)
            sq = (yd.unsqueeze(-1) - pred) ** 2 / (2 * var) + 0.5 * torch.log(var)
        else:
            sq = (yd.unsqueeze(-1) - pred) ** 2 / (2 * noise_var)
        log_w = -(torch.cumsum(sq, dim=1) - sq)  # exclusive: pairs before i
        chunk_z = torch.logsumexp(log_w, dim=-1)
        new_z = torch.logaddexp(log_z, chunk_z)
        mean = mean * torch.exp(log_z - new_z) + (torch.exp(log_w - new_z.unsqueeze(-1)) * pred).sum(-1)
        log_z = new_z
        log_joint = torch.logaddexp(log_joint, torch.logsumexp(log_w - sq, dim=-1))
    return log_z, mean, log_joint - log_z + log_norm


def dmmse_score(
    x: torch.Tensor, y: torch.Tensor, pool: torch.Tensor, noise_var: NoiseVar
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool-prior posterior mean prediction ``(sum_m pi_m w_m)·x_i`` and the exact NLL (nats) of
    each observed ``y_i`` under the pool-prior mixture predictive, both (B, K), from one pass."""
    mean = torch.empty(y.shape, dtype=torch.float64, device=x.device)
    nll = torch.empty_like(mean)
    for chunk in _batch_chunks(x.shape[0], x.shape[1] * _MIN_POOL_CHUNK):
        _, mean[chunk], log_pred = _dmmse_scan(x[chunk], y[chunk], pool, noise_var)
        nll[chunk] = -log_pred
    return mean.to(y.dtype), nll.to(y.dtype)


def dmmse_predictive(x: torch.Tensor, y: torch.Tensor, pool: torch.Tensor, noise_var: NoiseVar) -> torch.Tensor:
    """Pool-prior posterior mean prediction ``(sum_m pi_m w_m)·x_i``, (B, K)."""
    return dmmse_score(x, y, pool, noise_var)[0]


def dmmse_nll(x: torch.Tensor, y: torch.Tensor, pool: torch.Tensor, noise_var: NoiseVar) -> torch.Tensor:
    """Exact NLL (nats) of each observed ``y_i`` under the pool-prior mixture predictive, (B, K)."""
    return dmmse_score(x, y, pool, noise_var)[1]


def dmmse_posterior(x: torch.Tensor, y: torch.Tensor, pool: torch.Tensor, noise_var: NoiseVar) -> torch.Tensor:
    """Posterior weights over the pool after *all* K pairs, (B, M) float64 summing to 1."""
    return torch.softmax(pool_log_likelihood(x, y, pool, noise_var), dim=-1)


def gaussian_observe(
    mean: torch.Tensor,
    cov: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    noise_var: float,
    cov_x: torch.Tensor | None = None,
    var: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rank-one update of a Gaussian posterior ``N(mean, cov)`` over w on observing
    ``y = w·x + eps``: with ``s = noise_var + x^T cov x`` and ``g = cov x / s``,
    ``mean += g (y - mean·x)`` and ``cov -= s g g^T``.

    Shapes: mean (..., D), cov (..., D, D), x (..., D), y (...); ``cov_x`` (``cov x``) and
    ``var`` (``s``) when the caller has them from the predictive at the same x. No inverse
    of ``cov``, so point masses (cov = 0) stay put."""
    if cov_x is None:
        cov_x = torch.einsum("...ij,...j->...i", cov, x)
    if var is None:
        var = noise_var + (cov_x * x).sum(-1)
    gain = cov_x / var.unsqueeze(-1)
    mean = mean + gain * (y - (mean * x).sum(-1)).unsqueeze(-1)
    cov = cov - var[..., None, None] * gain.unsqueeze(-1) * gain.unsqueeze(-2)
    return mean, cov


def pool_log_likelihood(x: torch.Tensor, y: torch.Tensor, pool: torch.Tensor, noise_var: NoiseVar) -> torch.Tensor:
    """Log likelihood of n pairs under each pool task, up to a constant shared by the tasks:
    ``-||y - X w_m||^2 / (2 noise_var)``, minus ``n log(noise_var_m) / 2`` where each task has
    its own noise variance; (B, M) float64 for x (B, n, D), y (B, n)."""
    resid = y.double().unsqueeze(-1) - x.double() @ pool.double().to(x.device).T  # (B, n, M)
    if isinstance(noise_var, torch.Tensor):
        var = noise_var.double().to(x.device)
        return -(resid**2).sum(-2) / (2 * var) - 0.5 * x.shape[1] * torch.log(var)
    return -(resid**2).sum(-2) / (2 * noise_var)


class MixturePosterior:
    """The posterior of w under a Gaussian-mixture prior, for B sequences at once, one pair at
    a time (docs/design.md §2), float64: normalised log weights (B, C), component means
    (B, C, D) and covariances (B, C, D, D), starting from the prior.

    Per component the predictive of the next y at x is ``N(x·mu_c, x^T S_c x + noise_var)``.
    When y is observed each weight is multiplied by its component's density of y (before that
    component's own update) and renormalised in log space, and each component takes the
    rank-one update :func:`gaussian_observe`.
    """

    def __init__(self, prior: GaussianMixture, noise_var: float, batch: int, device=None):
        n_comp, dim = prior.n_components, prior.dim
        self.noise_var = noise_var
        self.log_weights = prior.log_weights.to(device).expand(batch, n_comp).clone()
        self.means = prior.means.to(device).expand(batch, n_comp, dim).clone()
        self.covariances = prior.covariances.to(device).expand(batch, n_comp, dim, dim).clone()

    def predictive(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """At inputs x (B, D): ``S_c x`` (B, C, D), and each component's predictive mean and variance (B, C)."""
        x = x.unsqueeze(-2)
        cov_x = torch.einsum("...ij,...j->...i", self.covariances, x)
        return cov_x, (self.means * x).sum(-1), self.noise_var + (cov_x * x).sum(-1)

    def observe(self, x: torch.Tensor, y: torch.Tensor, predictive: tuple | None = None) -> None:
        """Condition on the pairs (x, y), (B, D) and (B,); ``predictive`` is :meth:`predictive`
        at x when the caller has it already."""
        cov_x, comp_mean, comp_var = self.predictive(x) if predictive is None else predictive
        y = y.unsqueeze(-1)
        self.log_weights = torch.log_softmax(self.log_weights - gaussian_nll(y, comp_mean, comp_var), -1)
        self.means, self.covariances = gaussian_observe(
            self.means, self.covariances, x.unsqueeze(-2), y, self.noise_var, cov_x, comp_var
        )

    def copy(self) -> MixturePosterior:
        out = MixturePosterior.__new__(MixturePosterior)
        out.noise_var = self.noise_var
        out.log_weights, out.means, out.covariances = (
            self.log_weights.clone(), self.means.clone(), self.covariances.clone()
        )  # fmt: skip
        return out


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
    """Posterior after *all* n pairs of each sequence, in closed form (docs/design.md §2),
    float64: normalised log weights (B, C), means (B, C, D) and covariances (B, C, D, D).

    Per component, in the coordinates z of ``w = m_c + L_c z`` (``L_c L_c^T = Sigma_c``,
    z ~ N(0, I)) with ``A = X L_c`` and ``r = y - X m_c``: ``P = A^T A + noise_var I`` (D x D),
    ``mu_z = P^-1 A^T r``, ``Cov z = noise_var P^-1``, so ``mu_c = m_c + L_c mu_z`` and
    ``S_c = L_c Cov(z) L_c^T``; the weight is ``pi_c N(r; 0, A A^T + noise_var I)`` with
    ``log det = log det P + (n - D) log noise_var`` and ``r^T (.)^-1 r = (||r - A mu_z||^2 +
    noise_var ||mu_z||^2) / noise_var``. Only D x D systems, never an inverse of Sigma_c (point
    masses are fine) and P >= noise_var I, so it stays finite at any noise level."""
    x, y = x.double(), y.double()
    n, dim = x.shape[1], x.shape[2]
    means, factors = prior.means.to(x.device), prior.factors.to(x.device)
    a = torch.einsum("bnd,cdk->bcnk", x, factors)  # X L_c: (B, C, n, D)
    resid = y.unsqueeze(1) - torch.einsum("bnd,cd->bcn", x, means)  # (B, C, n)
    eye = torch.eye(dim, dtype=torch.float64, device=x.device)
    chol = torch.linalg.cholesky(a.transpose(-1, -2) @ a + noise_var * eye)
    mu_z = torch.cholesky_solve(a.transpose(-1, -2) @ resid.unsqueeze(-1), chol)  # (B, C, D, 1)
    post_means = means + (factors @ mu_z).squeeze(-1)
    post_covs = noise_var * factors @ torch.cholesky_inverse(chol) @ factors.transpose(-1, -2)
    post_covs = 0.5 * (post_covs + post_covs.transpose(-1, -2))
    mu_z = mu_z.squeeze(-1)
    misfit = resid - (a @ mu_z.unsqueeze(-1)).squeeze(-1)
    quadratic = ((misfit**2).sum(-1) + noise_var * (mu_z**2).sum(-1)) / noise_var
    log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1) + (n - dim) * math.log(noise_var)
    log_marginal = -0.5 * (n * LOG_2PI + log_det + quadratic)
    return torch.log_softmax(prior.log_weights.to(x.device) + log_marginal, -1), post_means, post_covs


_CHUNK_Y = 1 << 22  # float64 scratch per chunk of a mixture density (32 MiB)


@dataclass(frozen=True)
class NormalMixture:
    """Gaussian mixtures over y, a batch of them: normalised log weights, means and variances,
    each (..., C) float64. The exact predictives all have this form: one component under a
    Gaussian prior, one per pool task under a pool, one per prior component under a mixture.
    """

    log_weights: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor

    @property
    def mean(self) -> torch.Tensor:
        """(...)"""
        return (self.log_weights.exp() * self.means).sum(-1)

    @property
    def variance(self) -> torch.Tensor:
        """``sum_c pi_c (v_c + (m_c - m)^2)``, (...): free of the cancellation in E[y^2] - E[y]^2."""
        centred = self.means - self.mean.unsqueeze(-1)
        return (self.log_weights.exp() * (self.variances + centred**2)).sum(-1)

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """log p(y) for y (...) of the batch's shape."""
        return torch.logsumexp(self.log_weights - gaussian_nll(y.unsqueeze(-1), self.means, self.variances), -1)

    def cdf(self, y: torch.Tensor) -> torch.Tensor:
        """P(Y <= y) for y (...) of the batch's shape."""
        z = (y.unsqueeze(-1) - self.means) / self.variances.sqrt()
        return (self.log_weights.exp() * torch.special.ndtr(z)).sum(-1)

    def standardised(self, loc: torch.Tensor, scale: torch.Tensor) -> NormalMixture:
        """The distribution of ``(Y - loc) / scale``, loc and scale (...) per mixture."""
        loc, scale = loc.unsqueeze(-1), scale.unsqueeze(-1)
        return dataclasses.replace(self, means=(self.means - loc) / scale, variances=self.variances / scale**2)

    def cdf_grid(self, points: torch.Tensor) -> torch.Tensor:
        """P(Y <= p) at every point p of ``points`` (P,) for every mixture of the batch: (..., P)."""
        z = (points.unsqueeze(-1) - self.means.unsqueeze(-2)) / self.variances.sqrt().unsqueeze(-2)
        return (self.log_weights.exp().unsqueeze(-2) * torch.special.ndtr(z)).sum(-1)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw per mixture of a batch (B,): a component from the weights, then its Gaussian."""
        c = torch.multinomial(torch.softmax(self.log_weights, -1), 1, generator=generator)
        noise = torch.randn(c.shape[0], generator=generator, device=self.means.device, dtype=torch.float64)
        return self.means.gather(-1, c).squeeze(-1) + self.variances.gather(-1, c).squeeze(-1).sqrt() * noise

    # One mixture (no batch shape): densities on a grid of y, for quadrature and figures.

    def log_density(self, y: torch.Tensor) -> torch.Tensor:
        """log p(y) of a single mixture at every y (any shape); in chunks of y, so that a pool
        of any size fits in memory."""
        y = torch.as_tensor(y, dtype=torch.float64)
        flat = y.reshape(-1, 1)
        chunk = max(1, _CHUNK_Y // self.means.numel())
        parts = [self._log_density(flat[i : i + chunk]) for i in range(0, max(1, len(flat)), chunk)]
        return torch.cat(parts).reshape(y.shape)

    def _log_density(self, y: torch.Tensor) -> torch.Tensor:
        log_components = -0.5 * (LOG_2PI + torch.log(self.variances) + (y - self.means) ** 2 / self.variances)
        return torch.logsumexp(self.log_weights + log_components, dim=-1)

    def span(self, sds: float = 12.0) -> tuple[float, float]:
        """An interval holding all but a negligible part of a single mixture's mass: every
        component with weight above 1e-15, ``sds`` standard deviations either side."""
        keep = self.log_weights > math.log(1e-15)
        sd = self.variances[keep].sqrt()
        return (self.means[keep] - sds * sd).min().item(), (self.means[keep] + sds * sd).max().item()

    @property
    def resolution(self) -> float:
        """The narrowest length scale of a single mixture's density: its smallest component sd."""
        return self.variances.min().sqrt().item()


class Normal(NormalMixture):
    """A batch of Gaussians over y (one component each): a draw needs no component."""

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.means.shape[0], generator=generator, device=self.means.device, dtype=torch.float64)
        return self.means[:, 0] + self.variances[:, 0].sqrt() * noise


def categorical(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row of ``logits`` (R, n), drawn with probability softmax(logits): by the
    inverse cdf of one uniform per row (much cheaper than ``torch.multinomial``). (R,) int64."""
    cum = torch.cumsum(torch.softmax(logits, dim=-1), dim=-1)
    pick = torch.rand((cum.shape[0], 1), generator=generator, device=logits.device, dtype=logits.dtype)
    return torch.searchsorted(cum, pick * cum[:, -1:], right=True).squeeze(-1).clamp(max=logits.shape[-1] - 1)


def draw_from_mixture(
    log_weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor, rows: torch.Tensor, generator=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One w per entry of ``rows`` from the Gaussian mixture over w of that row: log weights
    (G, C), means (G, C, D), covariances (G, C, D, D); w (len(rows), D) and the component each
    came from (len(rows),). A component by the inverse
    cdf of the weights, then ``w = mean + cov^(1/2) z``; the symmetric square root serves
    singular covariances (a pool's zeros, a spike's zero rows)."""
    component = categorical(log_weights[rows], generator)
    values, vectors = torch.linalg.eigh(covs)
    roots = vectors * values.clamp_min(0).sqrt().unsqueeze(-2)
    z = torch.randn(len(rows), means.shape[-1], generator=generator, device=means.device, dtype=means.dtype)
    return means[rows, component] + (roots[rows, component] @ z.unsqueeze(-1)).squeeze(-1), component


# --- unknown noise: Normal-Inverse-Gamma posterior, Student-t predictive -----------------------


def nig_observe(
    mean: torch.Tensor,
    scaled_cov: torch.Tensor,
    shape: torch.Tensor,
    rate: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The update of a Normal-Inverse-Gamma posterior on observing ``y = w·x + eps``, ``eps ~
    N(0, sigma^2)``: ``sigma^2 ~ InvGamma(shape, rate)``, ``w | sigma^2 ~ N(mean, sigma^2
    scaled_cov)``. With ``s = 1 + x^T V x`` and the residual ``r = y - mean·x``: mean and V as
    a Gaussian posterior with unit noise (:func:`gaussian_observe`), ``shape += 1/2`` and
    ``rate += r^2 / (2 s)``. Shapes: mean (..., D), scaled_cov (..., D, D), shape and rate (...),
    x (..., D), y (...)."""
    cov_x = torch.einsum("...ij,...j->...i", scaled_cov, x)
    spread = 1 + (cov_x * x).sum(-1)
    resid = y - (mean * x).sum(-1)
    mean, scaled_cov = gaussian_observe(mean, scaled_cov, x, y, 1.0, cov_x, spread)
    return mean, scaled_cov, shape + 0.5, rate + 0.5 * resid**2 / spread


@dataclass(frozen=True)
class StudentT:
    """Student-t distributions over y, a batch: degrees of freedom, location and squared scale,
    each (...) float64. ``y = loc + scale * t_dof``: tends to ``N(loc, scale^2)`` as dof grows,
    heavier tailed than any Gaussian otherwise; mean ``loc`` (dof > 1), variance ``scale^2 dof /
    (dof - 2)`` (dof > 2, infinite otherwise). The cdf, its inverse and hence sampling go
    through scipy's incomplete beta, on the CPU."""

    dof: torch.Tensor
    loc: torch.Tensor
    scale2: torch.Tensor

    @property
    def mean(self) -> torch.Tensor:
        return torch.where(self.dof > 1, self.loc, torch.nan)

    @property
    def variance(self) -> torch.Tensor:
        return torch.where(self.dof > 2, self.scale2 * self.dof / (self.dof - 2), torch.inf)

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """log p(y) for y broadcasting against the batch."""
        nu = self.dof
        z2 = (y - self.loc) ** 2 / self.scale2
        const = torch.lgamma((nu + 1) / 2) - torch.lgamma(nu / 2) - 0.5 * torch.log(math.pi * nu * self.scale2)
        return const - (nu + 1) / 2 * torch.log1p(z2 / nu)

    def cdf(self, y: torch.Tensor) -> torch.Tensor:
        """P(Y <= y) for y broadcasting against the batch."""
        z = (y - self.loc) / self.scale2.sqrt()
        return _on_cpu("stdtr", self.dof, z)

    def icdf(self, q: torch.Tensor) -> torch.Tensor:
        """The quantile at levels q in (0, 1), broadcasting against the batch."""
        return self.loc + self.scale2.sqrt() * _on_cpu("stdtrit", self.dof, q)

    def cdf_grid(self, points: torch.Tensor) -> torch.Tensor:
        """P(Y <= p) at every point p of ``points`` (P,) for every distribution of the batch: (..., P)."""
        return StudentT(self.dof.unsqueeze(-1), self.loc.unsqueeze(-1), self.scale2.unsqueeze(-1)).cdf(points)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw per distribution, by inversion of a uniform from ``generator``."""
        u = torch.rand(self.loc.shape, generator=generator, device=self.loc.device, dtype=torch.float64)
        return self.icdf(u)

    def standardised(self, loc: torch.Tensor, scale: torch.Tensor) -> StudentT:
        """The distribution of ``(Y - loc) / scale``, loc and scale (...) per distribution."""
        return StudentT(self.dof, (self.loc - loc) / scale, self.scale2 / scale**2)

    # One distribution (a batch of one): densities on a grid of y, for quadrature and figures.

    def log_density(self, y: torch.Tensor) -> torch.Tensor:
        """log p(y) of a single distribution at every y (any shape)."""
        return self.log_prob(torch.as_tensor(y, dtype=torch.float64))

    def span(self, sds: float = 12.0) -> tuple[float, float]:
        """The central interval holding all but ``2 Phi(-sds)`` of the mass — a Gaussian's ``sds``
        sd — or all but 2e-15 where that is wider (the tails are polynomial)."""
        level = max(math.erfc(sds / math.sqrt(2)) / 2, 1e-15)
        q = torch.tensor([level, 1 - level], dtype=torch.float64)
        lo, hi = self.icdf(q).flatten().tolist()
        return lo, hi

    @property
    def resolution(self) -> float:
        """The narrowest length scale of a single distribution's density: its scale."""
        return self.scale2.min().sqrt().item()


def inverse_gamma(shape: torch.Tensor, rate: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One draw of ``InvGamma(shape, rate)`` per entry: ``rate / G`` with ``G ~ Gamma(shape, 1)``
    by the quantile of a uniform from ``generator`` (reproducible, unlike torch's gamma sampler)."""
    u = torch.rand(shape.shape, generator=generator, device=shape.device, dtype=torch.float64)
    return rate / gamma_quantile(shape, u)


def gamma_quantile(shape: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The quantile of ``Gamma(shape, 1)`` at levels u (broadcast), float64."""
    return _on_cpu("gammaincinv", shape, u)


def _on_cpu(name: str, dof: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The ufunc ``scipy.special.<name>`` of (dof, values), broadcast, on CPU float64 numpy and
    back to the device (scipy is imported here: most jobs never need it)."""
    from scipy import special

    dof, values = torch.broadcast_tensors(dof.double(), values.double())
    out = getattr(special, name)(dof.cpu().numpy(), values.cpu().numpy())
    return torch.from_numpy(out).to(values.device)
