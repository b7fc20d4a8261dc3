"""The output heads: the bar distribution with full support, and bars on a location-scale
residual (docs/design.md §4).

``n`` buckets between borders ``b_0 < ... < b_n``. Inner buckets ``1..n-2`` have uniform
density on ``[b_k, b_{k+1}]``. The two outer buckets are half-normal tails anchored at
``b_1`` (extending to -inf) and ``b_{n-1}`` (extending to +inf); a tail's scale is chosen
so that it holds half its mass inside its bucket, ``s = (b_1 - b_0) / Phi^-1(3/4)``.
Every real y has positive density, nothing is clipped.

All methods take the network's outputs of shape (..., n_outputs) and are exact and
vectorised over the batch shape ``...``; ``y`` and ``q`` broadcast against it.

* :class:`BarDistribution` (head ``bar``): the outputs are n logits over borders fixed per
  run, quantiles of the prior predictive of y. Its resolution is the prior's, so a narrow
  posterior predictive away from zero falls into a few wide buckets.
* :class:`LocationScaleBar` (head ``location_scale``): the outputs are a location, a
  log-scale and n logits; the bars live on the standardised residual ``z = (y - loc) / scale``,
  so the resolution follows the predictive. Its standardised borders are quantiles of
  N(0, 2^2) (:func:`standard_borders`).

Both give the KL-best approximation of an exact predictive (:meth:`BarDistribution.fit`):
the head's floor.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from .bayes import categorical
from .priors import Prior

HEADS = ("bar", "location_scale")

# Phi^-1(3/4): a half-normal of scale s puts half its mass within 0.6745 s of its anchor.
_HALF_NORMAL_MEDIAN = 0.6744897501960817
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_LOG_2 = math.log(2)
_LOG_2_OVER_SQRT_2PI = math.log(2 / math.sqrt(2 * math.pi))
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def prior_borders(
    n_buckets: int,
    noise_var: float,
    prior: Prior,
    seed: int = 0,
    n_samples: int = 1 << 21,
    features=None,
) -> torch.Tensor:
    """Bucket borders at quantiles of the ``T_true`` prior predictive of y, (n_buckets + 1,) float64.

    ``y = w·x + eps`` with x ~ N(0, I_D) and w from ``prior``: symmetric, variance D +
    noise_var under N(0, I_D), heavy tailed. Interior borders ``b_i = Q(i/n)``; outer borders
    ``Q(1/(2n))`` and ``Q(1 - 1/(2n))``. y is symmetric about 0 under any prior over w (x and -x are
    equally likely); the sample is symmetrised (y and -y), so borders are exactly symmetric.
    """
    if n_buckets < 2:
        raise ValueError(f"n_buckets must be >= 2, got {n_buckets}")
    y = _prior_predictive_draws(noise_var, prior, seed, n_samples // 2, features)
    y = np.concatenate([y, -y])
    borders = np.quantile(y, _border_levels(n_buckets))
    if np.any(np.diff(borders) <= 0):
        raise ValueError(f"{n_buckets} buckets is too many for {n_samples} prior samples: borders collide")
    return torch.from_numpy(borders)


@dataclasses.dataclass(frozen=True)
class Steps:
    """A head's density over y as a step function plus two half-normal tails, batch shape (...):
    the inner kinks (..., n - 1), the flat densities between them (..., n - 2), and per tail
    (left, right) its log mass, anchor and scale (...), the left one supported below its
    anchor, the right one at and above it."""

    kinks: torch.Tensor
    densities: torch.Tensor
    tails: tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], ...]


class BarDistribution(torch.nn.Module):
    """Piecewise-uniform density with half-normal tails, parametrised by bucket logits."""

    def __init__(self, borders: torch.Tensor):
        super().__init__()
        borders = torch.as_tensor(borders, dtype=torch.float64)
        if borders.ndim != 1 or borders.numel() < 3 or torch.any(borders.diff() <= 0):
            raise ValueError("borders must be a strictly increasing 1-d tensor with at least 3 entries")
        self.register_buffer("borders", borders)

    kind = "bar"

    @property
    def n_buckets(self) -> int:
        return self.borders.numel() - 1

    @property
    def n_outputs(self) -> int:
        """Outputs the network gives per prediction."""
        return self.n_buckets

    def kinks(self, outputs: torch.Tensor) -> torch.Tensor:
        """The bucket borders in y, where the density has its kinks: (..., n + 1)."""
        return self.borders.to(outputs.dtype).expand(*outputs.shape[:-1], -1)

    def fit(self, exact) -> torch.Tensor:
        """The outputs closest to ``exact`` in KL: each bucket gets ``exact``'s mass in it.

        ``exact`` is a batch of predictives over y with ``cdf_grid`` (a
        :class:`lrpfn.bayes.NormalMixture`, (...) mixtures); returns logits (..., n_buckets).
        """
        return _bucket_log_masses(exact, self.borders)

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training objective per prediction and the NLL it reports: here both the NLL."""
        nll = -self.log_prob(outputs, y)
        return nll, nll

    def spec(self) -> dict:
        """What a checkpoint stores to rebuild the head (:func:`from_spec`)."""
        return {"head": self.kind, "borders": self.borders.cpu()}

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
        logits, y = _broadcast(logits, y)
        log_p = torch.log_softmax(logits, dim=-1)
        idx = self._bucket_index(y)
        return log_p.gather(-1, idx.unsqueeze(-1)).squeeze(-1) + self._log_shape(idx, y)

    def log_prob_grid(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Log density at every point of a grid per prediction: y (..., G) for logits (..., n),
        (..., G); the bucket probabilities are normalised once per prediction, not per point."""
        idx = self._bucket_index(y)
        return torch.log_softmax(logits, dim=-1).gather(-1, idx) + self._log_shape(idx, y)

    def _log_shape(self, idx: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The log density of y within its bucket ``idx``, given the bucket."""
        b, widths, s_left, s_right = self._geometry(y.dtype)
        n = self.n_buckets
        inner = -torch.log(widths)[idx]
        left = _LOG_2_OVER_SQRT_2PI - torch.log(s_left) - 0.5 * ((b[1] - y) / s_left) ** 2
        right = _LOG_2_OVER_SQRT_2PI - torch.log(s_right) - 0.5 * ((y - b[n - 1]) / s_right) ** 2
        return torch.where(idx == 0, left, torch.where(idx == n - 1, right, inner))

    def steps(self, logits: torch.Tensor) -> Steps:
        """The density as steps and two tails (:class:`Steps`), in y."""
        b, widths, s_left, s_right = self._geometry(logits.dtype)
        log_p = torch.log_softmax(logits, dim=-1)
        shape = logits.shape[:-1]
        return Steps(
            kinks=b[1:-1].expand(*shape, -1),
            densities=(log_p[..., 1:-1] - torch.log(widths[1:-1])).exp(),
            tails=(
                (log_p[..., 0], b[1].expand(shape), s_left.expand(shape)),
                (log_p[..., -1], b[-2].expand(shape), s_right.expand(shape)),
            ),
        )

    def log_mean_density(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Log density of the equal-weight mixture of the predictions outputs (..., S, n_outputs)
        at points y (..., G): (..., G), exact.

        Evaluating S heads at G points costs S G bucket look-ups. The mixture's inner part is
        one step function, so it is built once from the S (n - 1) jumps at the sorted kinks
        (a cumulative sum) and read off at each point by one binary search; only the tails,
        smooth and cheap, are evaluated per head and point, in log space so that no far tail
        underflows."""
        steps = self.steps(outputs)
        d = steps.densities
        jumps = torch.cat([d[..., :1], d.diff(dim=-1), -d[..., -1:]], -1).flatten(-2)
        kinks, order = steps.kinks.flatten(-2).sort(-1)
        level = jumps.gather(-1, order).cumsum(-1)
        # Level 0 left of every kink and, exactly, right of every kink (the jumps sum to zero
        # only up to round-off); round-off between kinks is clamped at zero.
        zero = torch.zeros_like(level[..., :1])
        level = torch.cat([zero, level[..., :-1].clamp_min(0), zero], -1)
        y = y.to(outputs.dtype)
        step = level.gather(-1, torch.searchsorted(kinks, y.contiguous(), right=True))
        # Each tail at the points it covers only (those below a left tail's anchor, at or above
        # a right one's): with the points sorted, a run of them per head, about a tenth of all
        # (head, point) pairs in the martingale read-out.
        if bool((y[..., 1:] >= y[..., :-1]).all()):  # quadrature nodes come sorted
            log_tail = _log_tail_sums(y, steps.tails)
        else:
            sorted_y, order = y.sort(-1)
            log_tail = _log_tail_sums(sorted_y, steps.tails)
            log_tail = torch.empty_like(log_tail).scatter_(-1, order, log_tail)
        return torch.logaddexp(torch.log(step), log_tail) - math.log(outputs.shape[-2])

    def _bucket_moments(self, dtype):
        """Mean and variance of y within each bucket, (n,) each."""
        b, widths, s_left, s_right = self._geometry(dtype)
        means = 0.5 * (b[:-1] + b[1:])
        variances = widths**2 / 12
        half_normal_var = 1 - 2 / math.pi
        means = torch.cat(
            [(b[1] - s_left * _SQRT_2_OVER_PI).view(1), means[1:-1], (b[-2] + s_right * _SQRT_2_OVER_PI).view(1)]
        )
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

    def log_cdf(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log P(Y <= y), shape broadcast(logits.shape[:-1], y.shape).

        Finite everywhere and accurate in log space: far into the left tail, where ``cdf``
        underflows to 0, and in the right tail, where ``cdf`` rounds to 1 but this returns
        log1p(-P(Y > y)) to near full relative precision.
        """
        log_cdf, log_sf = self._log_cdf_sf(logits, y)
        return torch.where(log_sf < -_LOG_2, _log1mexp(log_sf), log_cdf)

    def log_sf(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log P(Y > y), shape broadcast(logits.shape[:-1], y.shape); the mirror image of ``log_cdf``."""
        log_cdf, log_sf = self._log_cdf_sf(logits, y)
        return torch.where(log_cdf < -_LOG_2, _log1mexp(log_cdf), log_sf)

    def _log_cdf_sf(self, logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log P(Y <= y) and log P(Y > y), each a log of a sum of positive terms, broadcast shape.

        Each is exact to a few ulp relative to its own probability; a log near 0 (probability
        near 1) is then only absolutely accurate, which the public methods repair through the
        complement.
        """
        b, widths, s_left, s_right = self._geometry(logits.dtype)
        log_p = torch.log_softmax(logits, dim=-1)
        # log of the mass strictly below / strictly above each bucket, by logcumsumexp so that
        # small masses keep their relative precision (1 - cumsum would cancel).
        empty = torch.full_like(log_p[..., :1], -math.inf)
        log_below = torch.cat([empty, torch.logcumsumexp(log_p, dim=-1)[..., :-1]], dim=-1)
        log_above = torch.cat([torch.logcumsumexp(log_p.flip(-1), dim=-1).flip(-1)[..., 1:], empty], dim=-1)
        log_p, y = _broadcast(log_p, y)
        shape = y.shape
        log_below, log_above = log_below.expand(*shape, -1), log_above.expand(*shape, -1)
        n = self.n_buckets
        idx = self._bucket_index(y)

        def at(table, k):
            return table.gather(-1, k.unsqueeze(-1)).squeeze(-1)

        left, right = idx == 0, idx == n - 1
        # Each branch sees y only where torch.where keeps it and a harmless stand-in elsewhere,
        # so discarded branches hold no inf/NaN that would poison gradients.
        k = idx.clamp(1, n - 2)
        y_inner = torch.where(left | right, 0.5 * (b[k] + b[k + 1]), y)
        z_left = (b[1] - torch.where(left, y, b[1] - s_left)) / s_left
        z_right = (torch.where(right, y, b[n - 1] + s_right) - b[n - 1]) / s_right
        # Inner bucket k: uniform, P(Y <= y) = below_k + p_k (y - b_k) / w_k.
        log_p_k, log_w_k = at(log_p, k), torch.log(widths)[k]
        inner_cdf = torch.logaddexp(at(log_below, k), log_p_k + torch.log(y_inner - b[k]) - log_w_k)
        inner_sf = torch.logaddexp(at(log_above, k), log_p_k + torch.log(b[k + 1] - y_inner) - log_w_k)
        # Tails: a half-normal holds 2 Phi(-z) of its mass beyond z scales from its anchor and
        # erf(z / sqrt 2) between the anchor and there. log_ndtr stays finite for any z.
        left_cdf = log_p[..., 0] + _LOG_2 + torch.special.log_ndtr(-z_left)
        left_sf = torch.logaddexp(log_above[..., 0], log_p[..., 0] + torch.log(torch.erf(z_left / math.sqrt(2))))
        right_sf = log_p[..., -1] + _LOG_2 + torch.special.log_ndtr(-z_right)
        right_cdf = torch.logaddexp(log_below[..., -1], log_p[..., -1] + torch.log(torch.erf(z_right / math.sqrt(2))))
        log_cdf = torch.where(left, left_cdf, torch.where(right, right_cdf, inner_cdf))
        log_sf = torch.where(left, left_sf, torch.where(right, right_sf, inner_sf))
        return log_cdf, log_sf

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
        idx = categorical(logits.reshape(-1, self.n_buckets), generator)
        u = torch.rand(idx.shape, generator=generator, device=logits.device, dtype=logits.dtype)
        z = torch.randn(idx.shape, generator=generator, device=logits.device, dtype=logits.dtype).abs()
        n = self.n_buckets
        y = torch.where(
            idx == 0, b[1] - s_left * z, torch.where(idx == n - 1, b[n - 1] + s_right * z, b[idx] + widths[idx] * u)
        )
        return y.reshape(batch_shape)


class LocationScaleBar(BarDistribution):
    """Bars on the standardised residual of a location and a scale the network predicts.

    Outputs (..., n + 2): ``loc = unit * o_0``, ``scale = unit * exp(o_1)`` and n logits of a
    :class:`BarDistribution` over ``z = (y - loc) / scale`` on standardised ``borders``, as
    offsets from the log-masses of N(0, 1) in its buckets; the density of y is
    ``p_bar(z) / scale``. ``unit`` (the prior predictive sd of y) sets the start: zero outputs
    give loc 0, scale ``unit`` and a residual that is standard normal up to the bars. Every
    method is the bar's, transformed exactly: a location-scale map keeps full support, the
    tails and every closed form. Training uses :meth:`loss`, not the NLL alone.
    """

    kind = "location_scale"

    def __init__(self, borders: torch.Tensor, unit: float):
        super().__init__(borders)
        if not (math.isfinite(unit) and unit > 0):
            raise ValueError(f"unit must be a positive number, got {unit}")
        self.register_buffer("unit", torch.tensor(float(unit), dtype=torch.float64))
        # The logits are offsets from a standard normal's bucket masses: zero outputs give a
        # Gaussian residual, so the head starts as N(0, unit^2) and the bars learn corrections.
        edges = torch.special.ndtr(self.borders[1:-1])
        masses = torch.cat([edges[:1], edges.diff(), 1 - edges[-1:]])
        self.register_buffer("base", torch.log(masses))

    @property
    def n_outputs(self) -> int:
        return self.n_buckets + 2

    def split(self, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Location (...), scale (...) and logits (..., n) of outputs (..., n + 2)."""
        if outputs.shape[-1] != self.n_outputs:
            raise ValueError(f"expected {self.n_outputs} outputs per prediction, got {outputs.shape[-1]}")
        unit = self.unit.to(outputs.dtype)
        log_scale = outputs[..., 1].clamp(-_MAX_LOG_SCALE, _MAX_LOG_SCALE)
        return unit * outputs[..., 0], unit * torch.exp(log_scale), outputs[..., 2:] + self.base.to(outputs.dtype)

    def _standardise(self, outputs: torch.Tensor, y: torch.Tensor):
        loc, scale, logits = self.split(outputs)
        y = torch.as_tensor(y, dtype=outputs.dtype, device=outputs.device)
        return (y - loc) / scale, scale, logits

    def log_prob(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z, scale, logits = self._standardise(outputs, y)
        return super().log_prob(logits, z) - torch.log(scale)

    def log_prob_grid(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loc, scale, logits = self.split(outputs)
        z = (torch.as_tensor(y, dtype=outputs.dtype, device=outputs.device) - loc.unsqueeze(-1)) / scale.unsqueeze(-1)
        return super().log_prob_grid(logits, z) - torch.log(scale).unsqueeze(-1)

    def cdf(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z, _, logits = self._standardise(outputs, y)
        return super().cdf(logits, z)

    def log_cdf(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z, _, logits = self._standardise(outputs, y)
        return super().log_cdf(logits, z)

    def log_sf(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z, _, logits = self._standardise(outputs, y)
        return super().log_sf(logits, z)

    def icdf(self, outputs: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        loc, scale, logits = self.split(outputs)
        return loc + scale * super().icdf(logits, q)

    def sample(self, outputs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        loc, scale, logits = self.split(outputs)
        return loc + scale * super().sample(logits, generator=generator)

    def mean(self, outputs: torch.Tensor) -> torch.Tensor:
        loc, scale, logits = self.split(outputs)
        return loc + scale * super().mean(logits)

    def variance(self, outputs: torch.Tensor) -> torch.Tensor:
        _, scale, logits = self.split(outputs)
        return scale**2 * super().variance(logits)

    def steps(self, outputs: torch.Tensor) -> Steps:
        loc, scale, logits = self.split(outputs)
        standard = super().steps(logits)
        return Steps(
            kinks=loc.unsqueeze(-1) + scale.unsqueeze(-1) * standard.kinks,
            densities=standard.densities / scale.unsqueeze(-1),
            tails=tuple((log_mass, loc + scale * anchor, scale * s) for log_mass, anchor, s in standard.tails),
        )

    def kinks(self, outputs: torch.Tensor) -> torch.Tensor:
        loc, scale, _ = self.split(outputs)
        return loc.unsqueeze(-1) + scale.unsqueeze(-1) * self.borders.to(outputs.dtype)

    def fit(self, exact) -> torch.Tensor:
        """Location and scale at ``exact``'s mean and sd, bars KL-best on the standardised scale:
        outputs (..., n + 2) for a batch of predictives (:class:`lrpfn.bayes.NormalMixture`,
        :class:`lrpfn.bayes.StudentT`: anything with mean, variance, ``standardised`` and
        ``cdf_grid``)."""
        mean, sd = exact.mean, exact.variance.sqrt()
        standard = exact.standardised(mean, sd)
        unit = self.unit.to(mean.dtype)
        logits = _bucket_log_masses(standard, self.borders) - self.base
        return torch.cat([(mean / unit).unsqueeze(-1), torch.log(sd / unit).unsqueeze(-1), logits], -1)

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training objective per prediction, and the NLL it reports.

        The bar density is flat inside each bucket, so its NLL has no gradient in the location
        and scale except through the tails: trained on the NLL alone, they barely move. The
        objective splits the work instead. The bars take the NLL's gradient with location and
        scale held fixed; location and scale take the gradient of a Gaussian NLL, whose
        minimiser for any predictive is its mean and sd. At the optimum the head is therefore
        :meth:`fit` of the true predictive — location and scale at its mean and sd, bars
        KL-best on the standardised scale — the floor the evaluation reports.
        """
        loc, scale, logits = self.split(outputs)
        y = torch.as_tensor(y, dtype=outputs.dtype, device=outputs.device)
        fixed_loc, fixed_scale = loc.detach(), scale.detach()
        nll = torch.log(fixed_scale) - BarDistribution.log_prob(self, logits, (y - fixed_loc) / fixed_scale)
        gaussian = torch.log(scale) + 0.5 * ((y - loc) / scale) ** 2 + _HALF_LOG_2PI
        return nll + gaussian, nll

    def spec(self) -> dict:
        return super().spec() | {"unit": self.unit.item()}


# exp(±30) spans 1e-13..1e13 units of scale: never reached by a trained network, but it keeps
# an untrained or diverging one from overflowing to inf/0.
_MAX_LOG_SCALE = 30.0

# The standardised residual's borders: quantiles of N(0, SPREAD^2), so the bars reach ±5.3 sd
# at 128 buckets and a Gaussian predictive's floor is 2e-4 nats (docs/results.md §10).
SPREAD = 2.0


def standard_borders(n_buckets: int, spread: float = SPREAD) -> torch.Tensor:
    """Borders of the standardised residual: quantiles of N(0, spread^2) at the levels of
    :func:`prior_borders` (interior i/n, outer 1/(2n) and 1 - 1/(2n)), exactly symmetric."""
    if n_buckets < 2:
        raise ValueError(f"n_buckets must be >= 2, got {n_buckets}")
    quantiles = spread * torch.special.ndtri(torch.from_numpy(_border_levels(n_buckets)))
    return (quantiles - quantiles.flip(0)) / 2  # the mirror images average to exact symmetry


def prior_scale(noise_var: float, prior: Prior, seed: int = 0, n_samples: int = 1 << 21, features=None) -> float:
    """The sd of the prior predictive of y, by Monte Carlo as in :func:`prior_borders`."""
    y = _prior_predictive_draws(noise_var, prior, seed, n_samples, features)
    return float(np.sqrt(np.mean(y**2)))  # y is symmetric about 0


def _prior_predictive_draws(noise_var: float, prior: Prior, seed: int, n: int, features=None) -> np.ndarray:
    """n seeded draws of ``y = w·phi(x) + eps``, x ~ N(0, I_D), w (and, where tasks draw their own,
    the noise variance) from ``prior``, phi the identity unless ``features`` is given: (n,) float64."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, prior.dim if features is None else features.dim))
    w, task_noise = prior.draw_pool(rng, n)
    inputs = x if features is None else features(torch.from_numpy(x)).numpy()
    sd = math.sqrt(noise_var) if task_noise is None else task_noise.sqrt().numpy()
    return np.einsum("nd,nd->n", inputs, w.numpy()) + sd * rng.standard_normal(n)


def _border_levels(n_buckets: int) -> np.ndarray:
    """Quantile levels of n buckets' borders: interior i/n, outer 1/(2n) and 1 - 1/(2n)."""
    levels = np.arange(n_buckets + 1) / n_buckets
    levels[0], levels[-1] = 1 / (2 * n_buckets), 1 - 1 / (2 * n_buckets)
    return levels


def build_head(
    kind: str, n_buckets: int, noise_var: float, prior: Prior, seed: int = 0, features=None
) -> BarDistribution:
    """A run's output head: ``bar`` on the prior predictive's quantile borders, or
    ``location_scale`` (its scale the prior predictive's sd)."""
    if kind == "bar":
        return BarDistribution(prior_borders(n_buckets, noise_var, prior, seed=seed, features=features))
    if kind == "location_scale":
        scale = prior_scale(noise_var, prior, seed=seed, features=features)
        return LocationScaleBar(standard_borders(n_buckets), scale)
    raise ValueError(f"unknown head {kind!r} (known: {', '.join(HEADS)})")


def from_spec(spec: dict) -> BarDistribution:
    """The head a checkpoint stored (:meth:`BarDistribution.spec`); a spec without ``head`` is a
    bar distribution, as every checkpoint written before there was a choice."""
    kind = spec.get("head", "bar")
    if kind == "bar":
        return BarDistribution(spec["borders"])
    if kind == "location_scale":
        return LocationScaleBar(spec["borders"], spec["unit"])
    raise ValueError(f"unknown head {kind!r} (known: {', '.join(HEADS)})")


def _bucket_log_masses(exact, borders: torch.Tensor) -> torch.Tensor:
    """log of ``exact``'s mass in each bucket of ``borders`` (outer buckets to ±inf): (..., n)."""
    cdf = exact.cdf_grid(borders.double()[1:-1])
    edges = torch.cat([torch.zeros_like(cdf[..., :1]), cdf, torch.ones_like(cdf[..., :1])], -1)
    return torch.log(edges.diff(dim=-1).clamp_min(1e-300))


def _log_tail_sums(y: torch.Tensor, tails) -> torch.Tensor:
    """log of the summed half-normal tails of S heads at sorted points y (..., G): (..., G),
    -inf where none covers. ``tails`` is :attr:`Steps.tails` for heads (..., S). Every (head,
    point) pair a tail covers is evaluated once, as one flat list; the sum per point is a
    scattered logsumexp."""
    batch, g = y.shape[:-1], y.shape[-1]
    flat_y = y.reshape(-1, g)
    rows = flat_y.shape[0]
    points = flat_y.flatten()
    values, targets = [], []
    for side, (log_mass, anchor, scale) in zip(("left", "right"), tails, strict=True):
        anchor, scale = anchor.reshape(rows, -1), scale.reshape(rows, -1)
        log_peak = (log_mass.reshape(rows, -1) + _LOG_2_OVER_SQRT_2PI - torch.log(scale)).flatten()
        below = torch.searchsorted(flat_y, anchor.contiguous())  # points < anchor, per head
        count = (below if side == "left" else g - below).flatten()
        first = (torch.zeros_like(below) if side == "left" else below) + g * torch.arange(rows).unsqueeze(1)
        heads = torch.repeat_interleave(count)
        ends = count.cumsum(0)
        # Each head's run of points, as flat indices into y: its first point, then one by one.
        target = torch.arange(len(heads), device=y.device) + (first.flatten() - (ends - count)).repeat_interleave(count)
        z = (points[target] - anchor.flatten()[heads]) / scale.flatten()[heads]
        values.append(log_peak[heads] - 0.5 * z * z)
        targets.append(target)
    value, target = torch.cat(values), torch.cat(targets)
    peak = torch.full((rows * g,), -torch.inf, dtype=y.dtype, device=y.device).scatter_reduce(0, target, value, "amax")
    total = torch.zeros_like(peak).index_add_(0, target, torch.exp(value - peak[target]))
    return (torch.log(total) + peak).reshape(*batch, g)


def _normal_lower_tail(z: torch.Tensor) -> torch.Tensor:
    """Phi(z) for z <= 0 via erfc: keeps relative precision far into the tail (ndtr underflows at z < -8)."""
    return 0.5 * torch.special.erfc(-z / math.sqrt(2))


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < -log 2, where log1p is exact (Maechler 2012); larger x is clamped."""
    return torch.log1p(-torch.exp(x.clamp(max=-_LOG_2)))


def _broadcast(logits: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    values = torch.as_tensor(values, dtype=logits.dtype, device=logits.device)
    shape = torch.broadcast_shapes(logits.shape[:-1], values.shape)
    return logits.expand(*shape, logits.shape[-1]), values.expand(shape)
