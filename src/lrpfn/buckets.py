"""The bar distribution with full support (SPEC §4).

``n`` buckets between borders ``b_0 < ... < b_n``. Inner buckets ``1..n-2`` have uniform
density on ``[b_k, b_{k+1}]``. The two outer buckets are half-normal tails anchored at
``b_1`` (extending to -inf) and ``b_{n-1}`` (extending to +inf); a tail's scale is chosen
so that it holds half its mass inside its bucket, ``s = (b_1 - b_0) / Phi^-1(3/4)``.
Every real y has positive density, nothing is clipped.

All methods take logits of shape (..., n) and are exact and vectorised over the batch
shape ``...``; ``y`` and ``q`` broadcast against it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Phi^-1(3/4): a half-normal of scale s puts half its mass within 0.6745 s of its anchor.
_HALF_NORMAL_MEDIAN = 0.6744897501960817
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_LOG_2_OVER_SQRT_2PI = math.log(2 / math.sqrt(2 * math.pi))


def prior_borders(n_buckets: int, dim: int, noise_var: float, seed: int = 0, n_samples: int = 1 << 21) -> torch.Tensor:
    """Bucket borders at quantiles of the ``T_true`` prior predictive of y, (n_buckets + 1,) float64.

    ``y = w·x + eps`` with w, x ~ N(0, I_D): symmetric, variance D + noise_var, heavy
    tailed. Interior borders ``b_i = Q(i/n)``; outer borders ``Q(1/(2n))`` and
    ``Q(1 - 1/(2n))``. The sample is symmetrised (y and -y), so borders are symmetric.
    """
    if n_buckets < 2:
        raise ValueError(f"n_buckets must be >= 2, got {n_buckets}")
    rng = np.random.default_rng(seed)
    half = n_samples // 2
    x = rng.standard_normal((half, dim))
    w = rng.standard_normal((half, dim))
    y = np.einsum("nd,nd->n", x, w) + math.sqrt(noise_var) * rng.standard_normal(half)
    y = np.concatenate([y, -y])
    levels = np.arange(n_buckets + 1) / n_buckets
    levels[0], levels[-1] = 1 / (2 * n_buckets), 1 - 1 / (2 * n_buckets)
    borders = np.quantile(y, levels)
    if np.any(np.diff(borders) <= 0):
        raise ValueError(f"{n_buckets} buckets is too many for {n_samples} prior samples: borders collide")
    return torch.from_numpy(borders)


class BarDistribution(torch.nn.Module):
    """Piecewise-uniform density with half-normal tails, parametrised by bucket logits."""

    def __init__(self, borders: torch.Tensor):
        super().__init__()
        borders = torch.as_tensor(borders, dtype=torch.float64)
        if borders.ndim != 1 or borders.numel() < 3 or torch.any(borders.diff() <= 0):
            raise ValueError("borders must be a strictly increasing 1-d tensor with at least 3 entries")
        self.register_buffer("borders", borders)

    @property
    def n_buckets(self) -> int:
        return self.borders.numel() - 1

    def _geometry(self, dtype):
        b = self.borders.to(dtype)
        widths = b.diff()
        left_scale = widths[0] / _HALF_NORMAL_MEDIAN
        right_scale = widths[-1] / _HALF_NORMAL_MEDIAN
        return b, widths, left_scale, right_scale

    def _bucket_index(self, y: torch.Tensor) -> torch.Tensor:
        """Bucket of each y: 0 below b_1, n-1 at or above b_{n-1}."""
        inner = self.borders[1:-1].to(y.dtype)
        return torch.bucketize(y.contiguous(), inner, right=True)

    def log_prob(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Log density at y, shape broadcast(logits.shape[:-1], y.shape)."""
        b, widths, s_left, s_right = self._geometry(logits.dtype)
        logits, y = _broadcast(logits, y)
        log_p = torch.log_softmax(logits, dim=-1)
        idx = self._bucket_index(y)
        log_p_bucket = log_p.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        n = self.n_buckets
        inner = -torch.log(widths)[idx]
        left = _LOG_2_OVER_SQRT_2PI - torch.log(s_left) - 0.5 * ((b[1] - y) / s_left) ** 2
        right = _LOG_2_OVER_SQRT_2PI - torch.log(s_right) - 0.5 * ((y - b[n - 1]) / s_right) ** 2
        shape = torch.where(idx == 0, left, torch.where(idx == n - 1, right, inner))
        return log_p_bucket + shape

    def _bucket_moments(self, dtype):
        """Mean and variance of y within each bucket, (n,) each."""
        b, widths, s_left, s_right = self._geometry(dtype)
        means = 0.5 * (b[:-1] + b[1:])
        variances = widths**2 / 12
        half_normal_var = 1 - 2 / math.pi
        means = torch.cat([(b[1] - s_left * _SQRT_2_OVER_PI).view(1), means[1:-1], (b[-2] + s_right * _SQRT_2_OVER_PI).view(1)])
        variances = torch.cat(
            [(s_left**2 * half_normal_var).view(1), variances[1:-1], (s_right**2 * half_normal_var).view(1)]
        )
        return means, variances

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        means, _ = self._bucket_moments(logits.dtype)
        return torch.softmax(logits, dim=-1) @ means

    def variance(self, logits: torch.Tensor) -> torch.Tensor:
        """Law of total variance over buckets (stable: no E[y^2] - E[y]^2 cancellation)."""
        means, variances = self._bucket_moments(logits.dtype)
        p = torch.softmax(logits, dim=-1)
        mean = p @ means
        return p @ variances + (p * (means - mean.unsqueeze(-1)) ** 2).sum(-1)

    def cdf(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, widths, s_left, s_right = self._geometry(logits.dtype)
        logits, y = _broadcast(logits, y)
        p = torch.softmax(logits, dim=-1)
        before = torch.cumsum(p, dim=-1) - p  # mass of the buckets below each bucket
        idx = self._bucket_index(y)
        n = self.n_buckets
        p_k = p.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        c_k = before.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        inner = c_k + p_k * ((y - b[idx]) / widths[idx]).clamp(0, 1)
        left = p[..., 0] * 2 * _normal_lower_tail((y - b[1]) / s_left)
        right = 1 - p[..., -1] * 2 * _normal_lower_tail((b[n - 1] - y) / s_right)
        return torch.where(idx == 0, left, torch.where(idx == n - 1, right, inner))

    def icdf(self, logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Quantile function: the y with ``cdf(y) = q`` for q in (0, 1)."""
        b, widths, s_left, s_right = self._geometry(logits.dtype)
        logits, q = _broadcast(logits, q)
        p = torch.softmax(logits, dim=-1)
        cum = torch.cumsum(p, dim=-1)
        n = self.n_buckets
        idx = torch.searchsorted(cum[..., :-1].contiguous(), q.unsqueeze(-1).contiguous()).squeeze(-1)
        p_k = p.gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        c_k = (cum - p).gather(-1, idx.unsqueeze(-1)).squeeze(-1)
        inner = b[idx] + widths[idx] * ((q - c_k) / p_k).clamp(0, 1)
        left = b[1] + s_left * torch.special.ndtri((q / (2 * p[..., 0])).clamp(max=0.5))
        right = b[n - 1] - s_right * torch.special.ndtri(((1 - q) / (2 * p[..., -1])).clamp(max=0.5))
        return torch.where(idx == 0, left, torch.where(idx == n - 1, right, inner))

    def sample(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One exact draw per batch element, shape logits.shape[:-1].

        Draws the bucket from its probability, then y within it: uniform inside inner
        buckets, anchor -/+ scale * |N(0, 1)| in the tails. Samples are continuous.
        """
        b, widths, s_left, s_right = self._geometry(logits.dtype)
        batch_shape = logits.shape[:-1]
        # Bucket by inverse cdf of the bucket probabilities (much cheaper than multinomial).
        cum = torch.cumsum(torch.softmax(logits.reshape(-1, self.n_buckets), dim=-1), dim=-1)
        pick = torch.rand((cum.shape[0], 1), generator=generator, device=logits.device, dtype=logits.dtype)
        idx = torch.searchsorted(cum, pick * cum[:, -1:], right=True).squeeze(-1).clamp(max=self.n_buckets - 1)
        u = torch.rand(idx.shape, generator=generator, device=logits.device, dtype=logits.dtype)
        z = torch.randn(idx.shape, generator=generator, device=logits.device, dtype=logits.dtype).abs()
        n = self.n_buckets
        y = torch.where(idx == 0, b[1] - s_left * z, torch.where(idx == n - 1, b[n - 1] + s_right * z, b[idx] + widths[idx] * u))
        return y.reshape(batch_shape)


def _normal_lower_tail(z: torch.Tensor) -> torch.Tensor:
    """Phi(z) for z <= 0 via erfc: keeps relative precision far into the tail (ndtr underflows at z < -8)."""
    return 0.5 * torch.special.erfc(-z / math.sqrt(2))


def _broadcast(logits: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    values = torch.as_tensor(values, dtype=logits.dtype, device=logits.device)
    shape = torch.broadcast_shapes(logits.shape[:-1], values.shape)
    return logits.expand(*shape, logits.shape[-1]), values.expand(shape)
