"""Predictors that break the premise of predictive resampling on purpose: the negative controls
of :mod:`lrpfn.premise` (docs/design.md §13). Each is the ridge predictor (w ~ N(0, I_D),
known noise) with one thing changed, behind the exact-predictor protocol:

* :class:`TemperedRidge` — the likelihood raised to a power τ < 1 (a posterior too wide for
  the data). Its mean moves as Bayes's does, so the predictive mean has no drift; the
  variance does, and a martingale read-out must see it there.
* :class:`ForgettingRidge` — each pair's likelihood discounted by γ per later pair: early
  pairs count less, so the predictive depends on the order of the data (not exchangeable).
* :class:`InflatedRidge` — the exact predictive with its variance times a factor: the draws
  of a resampled path are too noisy, so resampled posteriors are too wide.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .bayes import Normal
from .exact import ExactPredictor, GaussianState, Ridge


class TemperedState(GaussianState):
    """The tempered posterior of w: updated as with noise variance ``noise_var / power``,
    predicting with the true ``noise_var``."""

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor, noise_var: float, power: float):
        super().__init__(mean, cov, noise_var / power)
        self.observation_var, self.power = noise_var, power

    def predictive(self, x: torch.Tensor) -> Normal:
        wide = super().predictive(x)
        return Normal(wide.log_weights, wide.means, wide.variances - self.noise_var + self.observation_var)

    def copy(self) -> TemperedState:
        return TemperedState(self.mean.clone(), self.cov.clone(), self.observation_var, self.power)


@dataclass(frozen=True)
class TemperedRidge(ExactPredictor):
    """``p(w | D) ∝ N(w; 0, I) * prod_i N(y_i; w·x_i, noise_var)^power``, predicting
    ``N(w·x, noise_var)`` averaged over it."""

    dim: int
    noise_var: float
    power: float

    def start(self, batch: int, device=None) -> TemperedState:
        prior = Ridge(self.dim, self.noise_var).start(batch, device)
        return TemperedState(prior.mean, prior.cov, self.noise_var, self.power)


class ForgettingState:
    """The discounted posterior in information form: precision ``I + sum_i γ^(n-i) x_i x_iᵀ /
    noise_var`` and ``h = sum_i γ^(n-i) x_i y_i / noise_var`` after n pairs."""

    def __init__(self, precision: torch.Tensor, h: torch.Tensor, noise_var: float, discount: float):
        self.precision, self.h, self.noise_var, self.discount = precision, h, noise_var, discount

    def predictive(self, x: torch.Tensor) -> Normal:
        cov_x = torch.linalg.solve(self.precision, x)
        mean = torch.linalg.solve(self.precision, self.h)
        var = self.noise_var + (x * cov_x).sum(-1)
        return Normal(torch.zeros_like(var).unsqueeze(-1), (mean * x).sum(-1).unsqueeze(-1), var.unsqueeze(-1))

    def observe(self, x: torch.Tensor, y: torch.Tensor) -> None:
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        outer = x.unsqueeze(-1) * x.unsqueeze(-2) / self.noise_var
        self.precision = eye + self.discount * (self.precision - eye) + outer
        self.h = self.discount * self.h + x * (y / self.noise_var).unsqueeze(-1)

    def copy(self) -> ForgettingState:
        return ForgettingState(self.precision.clone(), self.h.clone(), self.noise_var, self.discount)


@dataclass(frozen=True)
class ForgettingRidge(ExactPredictor):
    """Ridge with each pair's likelihood discounted by ``discount`` (γ) per later pair."""

    dim: int
    noise_var: float
    discount: float

    def start(self, batch: int, device=None) -> ForgettingState:
        eye = torch.eye(self.dim, dtype=torch.float64, device=device)
        h = torch.zeros(batch, self.dim, dtype=torch.float64, device=device)
        return ForgettingState(eye.expand(batch, -1, -1).clone(), h, self.noise_var, self.discount)


class InflatedState(GaussianState):
    """The ridge posterior, predicting with ``factor`` times its predictive variance."""

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor, noise_var: float, factor: float):
        super().__init__(mean, cov, noise_var)
        self.factor = factor

    def predictive(self, x: torch.Tensor) -> Normal:
        exact = super().predictive(x)
        return Normal(exact.log_weights, exact.means, self.factor * exact.variances)

    def copy(self) -> InflatedState:
        return InflatedState(self.mean.clone(), self.cov.clone(), self.noise_var, self.factor)


@dataclass(frozen=True)
class InflatedRidge(ExactPredictor):
    """Ridge whose predictive variance is ``factor`` times the exact one (its posterior over w,
    updated with the true noise, is exact)."""

    dim: int
    noise_var: float
    factor: float

    def start(self, batch: int, device=None) -> InflatedState:
        prior = Ridge(self.dim, self.noise_var).start(batch, device)
        return InflatedState(prior.mean, prior.cov, self.noise_var, self.factor)
