"""Exact predictors: the Bayes predictive of y under a known prior, behind one protocol.

Evaluation, exact predictive resampling and the predictive-density read-out use an exact
predictor only through :class:`ExactPredictor`, never by asking its kind:

* ``start(batch)`` — a :class:`PosteriorState` for ``batch`` sequences at the prior, which
  ``observe(x, y)`` conditions on one pair per sequence, whose ``predictive(x)`` is a
  distribution over the next y (``mean``, ``variance``, ``log_prob``, ``cdf``, ``sample``)
  and which ``copy()`` forks (a continuation that leaves the original untouched);
* ``score_sequences(x, y)`` — the predictive mean and the NLL of the observed y at every
  position of a batch of sequences (the default runs the state; fast paths override it);
* ``prompt_predictive(x, y, query)`` — the predictive at one prompt as a distribution with
  ``log_density``, ``cdf``, ``span``, ``resolution``, ``mean`` and ``variance``;
* ``posterior(x, y)`` — the posterior over the task's parameters, where defined.

A new predictor — a tempered posterior, another noise model, a regression on features of x
— is one class that implements ``start`` (and ``dim``); everything else has a default.
The predictors here are the exact Bayes predictors of the priors in :mod:`lrpfn.priors`
(``prior.predictor(noise_var)``): :class:`Ridge` (``N(0, I)``), :class:`PoolBayes` (uniform
over M tasks, dMMSE) and :class:`MixtureBayes` (any Gaussian mixture); the formulas are in
:mod:`lrpfn.bayes` (docs/design.md §2).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from .bayes import (
    MixturePosterior,
    NoiseVar,
    Normal,
    NormalMixture,
    StudentT,
    dmmse_posterior,
    dmmse_score,
    draw_from_mixture,
    gaussian_observe,
    inverse_gamma,
    mixture_posterior,
    mixture_predictive,
    nig_observe,
    pool_log_likelihood,
    ridge_nll,
    ridge_posterior,
    ridge_predictive,
)

if TYPE_CHECKING:
    from .priors import GaussianMixture


class Predictive(Protocol):
    """A batch of predictive distributions over y, batch shape (B,)."""

    mean: torch.Tensor
    variance: torch.Tensor

    def log_prob(self, y: torch.Tensor) -> torch.Tensor: ...
    def cdf(self, y: torch.Tensor) -> torch.Tensor: ...
    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor: ...


class PosteriorState(Protocol):
    """The posterior of B sequences after the pairs observed so far."""

    def predictive(self, x: torch.Tensor) -> Predictive: ...
    def observe(self, x: torch.Tensor, y: torch.Tensor) -> None: ...
    def copy(self) -> PosteriorState: ...


class ExactPredictor(ABC):
    """The exact predictive of y under a known prior (the module doc gives the protocol).

    Subclasses set ``dim`` (the dimension of x) and implement :meth:`start`."""

    dim: int

    @abstractmethod
    def start(self, batch: int, device=None) -> PosteriorState:
        """The state of ``batch`` sequences before any pair, on ``device``."""

    def score_sequences(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictive mean and NLL (nats) of ``y_i`` given the pairs before i and ``x_i``, at
        every position of x (B, K, D), y (B, K): two (B, K) float64 tensors."""
        x, y = x.double(), y.double()
        state = self.start(x.shape[0], x.device)
        mean, nll = torch.empty_like(y), torch.empty_like(y)
        for i in range(x.shape[1]):
            predictive = state.predictive(x[:, i])
            mean[:, i], nll[:, i] = predictive.mean, -predictive.log_prob(y[:, i])
            state.observe(x[:, i], y[:, i])
        return mean, nll

    def prompt_predictive(self, x: torch.Tensor, y: torch.Tensor, query: torch.Tensor):
        """The predictive of y at ``query`` (D,) after the pairs x (L, D), y (L,): a batch of
        one distribution (a :class:`lrpfn.bayes.NormalMixture` for the predictors here)."""
        state = self.start(1)
        x, y = x.double(), y.double()
        for i in range(x.shape[0]):
            state.observe(x[i : i + 1], y[i : i + 1])
        return state.predictive(query.double().unsqueeze(0))

    def coordinate_posterior(self, x: torch.Tensor, y: torch.Tensor):
        """Each coordinate's posterior marginal after the pairs of each sequence, as a distribution
        with ``icdf`` of batch shape (B, D), where it has a closed form other than the Gaussian
        mixture of :meth:`posterior`; None otherwise."""
        return None

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        """What a task's w acts on: x itself, or its features for a predictor on features."""
        return x

    def posterior(self, x: torch.Tensor, y: torch.Tensor):
        """The posterior over the task's parameters after all pairs of each sequence."""
        raise NotImplementedError(f"{type(self).__name__} defines no posterior over task parameters")

    def draw_tasks(
        self, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, float | torch.Tensor]:
        """Tasks from the posterior after the pairs x (G, n, D), y (G, n), one per entry of
        ``rows`` (indices into G): w (len(rows), D) and the noise sd of y given w, a float shared
        by all or one per task. The default serves predictors with a Gaussian-mixture
        :meth:`posterior` over w and a ``noise_var``, one for all or one per component (a pool's
        tasks with their own noise)."""
        log_weights, means, covs = (v.to(rows.device) for v in self.posterior(x, y))
        w, component = draw_from_mixture(log_weights, means, covs, rows, generator)
        if isinstance(self.noise_var, torch.Tensor):
            return w, self.noise_var.double().to(rows.device)[component].sqrt()
        return w, self.noise_var**0.5


class _CachedPredictive:
    """A state mixin: the predictive computed at x serves the update at the same x (the
    resampler draws y from it, then observes y there)."""

    _at: tuple | None = None

    def _reuse(self, x: torch.Tensor):
        at, self._at = self._at, None
        return at[1] if at is not None and at[0] is x else None


# --- w ~ N(0, I_D): ridge -------------------------------------------------------------------


class GaussianState(_CachedPredictive):
    """``N(mean, cov)`` over w per sequence, mean (B, D), cov (B, D, D)."""

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor, noise_var: float):
        self.mean, self.cov, self.noise_var = mean, cov, noise_var

    def predictive(self, x: torch.Tensor) -> Normal:
        self._at = (x, torch.einsum("...ij,...j->...i", self.cov, x))
        var = self.noise_var + torch.einsum("...i,...ij,...j->...", x, self.cov, x)
        return Normal(torch.zeros_like(var).unsqueeze(-1), (self.mean * x).sum(-1).unsqueeze(-1), var.unsqueeze(-1))

    def observe(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.mean, self.cov = gaussian_observe(self.mean, self.cov, x, y, self.noise_var, self._reuse(x))

    def copy(self) -> GaussianState:
        return GaussianState(self.mean.clone(), self.cov.clone(), self.noise_var)


@dataclass(frozen=True)
class Ridge(ExactPredictor):
    """The Bayes predictor of ``w ~ N(0, I_D)``: ridge regression with lambda = noise_var."""

    dim: int
    noise_var: float

    def start(self, batch: int, device=None) -> GaussianState:
        mean = torch.zeros(batch, self.dim, dtype=torch.float64, device=device)
        cov = torch.eye(self.dim, dtype=torch.float64, device=device).expand(batch, self.dim, self.dim).clone()
        return GaussianState(mean, cov, self.noise_var)

    def score_sequences(self, x, y):
        x, y = x.double(), y.double()
        return ridge_predictive(x, y, self.noise_var)[0], ridge_nll(x, y, self.noise_var)

    def prompt_predictive(self, x, y, query) -> NormalMixture:
        x, y, query = x.double(), y.double(), query.double()
        precision = x.T @ x + self.noise_var * torch.eye(query.shape[0], dtype=torch.float64)
        mean = query @ torch.linalg.solve(precision, x.T @ y)
        var = self.noise_var + self.noise_var * query @ torch.linalg.solve(precision, query)
        return NormalMixture(torch.zeros(1, 1, dtype=torch.float64), mean.reshape(1, 1), var.reshape(1, 1))

    def posterior(self, x, y):
        mean, cov = ridge_posterior(x, y, self.noise_var)
        return torch.zeros(mean.shape[0], 1, dtype=torch.float64), mean.unsqueeze(1), cov.unsqueeze(1)


# --- w uniform over a pool of M tasks: dMMSE --------------------------------------------------


@dataclass(frozen=True)
class PoolDraw(NormalMixture):
    """The pool's predictive at x: one component per task (weights ∝ its likelihood so far).
    A draw picks a task from the weights, then adds noise to its prediction."""

    tasks: torch.Tensor | None = None  # (M, D)
    x: torch.Tensor | None = None  # (B, D)
    noise_var: NoiseVar = 0.0  # shared, or per task (M,)
    unnormalised: torch.Tensor | None = None  # (B, M) log weights before normalising

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        m = torch.multinomial(torch.softmax(self.unnormalised, -1), 1, generator=generator).squeeze(-1)
        noise = torch.randn(len(m), generator=generator, device=self.x.device, dtype=torch.float64)
        sd = self.noise_var[m].sqrt() if isinstance(self.noise_var, torch.Tensor) else self.noise_var**0.5
        return (self.tasks[m] * self.x).sum(-1) + sd * noise


class PoolState(_CachedPredictive):
    """Log posterior weights over the pool per sequence, (B, M), kept in range by
    subtracting the largest after each update; the noise variance shared or per task (M,)."""

    def __init__(self, tasks: torch.Tensor, noise_var: NoiseVar, log_w: torch.Tensor):
        self.tasks, self.noise_var, self.log_w = tasks, noise_var, log_w

    def predictive(self, x: torch.Tensor) -> PoolDraw:
        means = x @ self.tasks.T
        self._at = (x, means)
        variances = (
            self.noise_var.expand_as(means)
            if isinstance(self.noise_var, torch.Tensor)
            else torch.full_like(means, self.noise_var)
        )
        return PoolDraw(
            torch.log_softmax(self.log_w, -1), means, variances,
            tasks=self.tasks, x=x, noise_var=self.noise_var, unnormalised=self.log_w,
        )  # fmt: skip

    def observe(self, x: torch.Tensor, y: torch.Tensor) -> None:
        means = self._reuse(x)
        means = x @ self.tasks.T if means is None else means
        log_w = self.log_w - (y.unsqueeze(-1) - means) ** 2 / (2 * self.noise_var)
        if isinstance(self.noise_var, torch.Tensor):
            log_w = log_w - 0.5 * torch.log(self.noise_var)
        self.log_w = log_w - log_w.max(-1, keepdim=True).values

    def copy(self) -> PoolState:
        return PoolState(self.tasks, self.noise_var, self.log_w.clone())


@dataclass(frozen=True, eq=False)
class PoolBayes(ExactPredictor):
    """The Bayes predictor of ``w ~ Uniform{w_1..w_M}`` (dMMSE); the noise variance shared by the
    tasks, or one per task (M,) when each task drew its own."""

    tasks: torch.Tensor  # (M, D)
    noise_var: NoiseVar

    @property
    def dim(self) -> int:
        return self.tasks.shape[1]

    def start(self, batch: int, device=None) -> PoolState:
        tasks = self.tasks.to(device=device, dtype=torch.float64)
        noise_var = self.noise_var
        if isinstance(noise_var, torch.Tensor):
            noise_var = noise_var.to(device=device, dtype=torch.float64)
        return PoolState(tasks, noise_var, torch.zeros(batch, len(tasks), dtype=torch.float64, device=device))

    def score_sequences(self, x, y):
        x, y = x.double(), y.double()
        return dmmse_score(x, y, self.tasks, self.noise_var)

    def prompt_predictive(self, x, y, query) -> NormalMixture:
        tasks = self.tasks.double()
        log_w = pool_log_likelihood(x.unsqueeze(0), y.unsqueeze(0), tasks, self.noise_var)[0]
        variances = (
            self.noise_var.double().reshape(1, -1) if isinstance(self.noise_var, torch.Tensor)
            else torch.full((1, len(tasks)), float(self.noise_var), dtype=torch.float64)
        )  # fmt: skip
        return NormalMixture(
            torch.log_softmax(log_w, dim=0).unsqueeze(0), (tasks @ query.double()).unsqueeze(0), variances
        )

    def posterior(self, x, y):
        weights = dmmse_posterior(x, y, self.tasks, self.noise_var)
        batch, (m, d) = weights.shape[0], self.tasks.shape
        means = self.tasks.double().expand(batch, m, d)
        return weights.log(), means, torch.zeros(batch, m, d, d, dtype=torch.float64)


# --- w from a Gaussian mixture ----------------------------------------------------------------


class MixtureState(_CachedPredictive):
    """A :class:`lrpfn.bayes.MixturePosterior` behind the state protocol."""

    def __init__(self, posterior: MixturePosterior):
        self.posterior = posterior

    def predictive(self, x: torch.Tensor) -> NormalMixture:
        at = self.posterior.predictive(x)
        self._at = (x, at)
        return NormalMixture(self.posterior.log_weights, at[1], at[2])

    def observe(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.posterior.observe(x, y, self._reuse(x))

    def copy(self) -> MixtureState:
        return MixtureState(self.posterior.copy())


@dataclass(frozen=True, eq=False)
class MixtureBayes(ExactPredictor):
    """The Bayes predictor of a Gaussian-mixture prior over w."""

    prior: GaussianMixture
    noise_var: float

    @property
    def dim(self) -> int:
        return self.prior.dim

    def start(self, batch: int, device=None) -> MixtureState:
        return MixtureState(MixturePosterior(self.prior, self.noise_var, batch, device))

    def score_sequences(self, x, y):
        mean, _, nll = mixture_predictive(x, y, self.prior, self.noise_var)
        return mean, nll

    def prompt_predictive(self, x, y, query) -> NormalMixture:
        log_w, means, covs = mixture_posterior(x.unsqueeze(0), y.unsqueeze(0), self.prior, self.noise_var)
        query = query.double()
        variances = self.noise_var + torch.einsum("i,cij,j->c", query, covs[0], query)
        return NormalMixture(log_w, (means[0] @ query).unsqueeze(0), variances.unsqueeze(0))

    def posterior(self, x, y):
        return mixture_posterior(x, y, self.prior, self.noise_var)


# --- unknown noise: sigma^2 ~ InvGamma(a, b), w | sigma^2 ~ N(0, sigma^2 V_0) -------------------


class NormalInverseGammaState:
    """A Normal-Inverse-Gamma posterior per sequence: ``sigma^2 ~ InvGamma(shape, rate)`` and ``w |
    sigma^2 ~ N(mean, sigma^2 scaled_cov)``; mean (B, D), scaled_cov (B, D, D), shape and rate (B,)."""

    def __init__(self, mean: torch.Tensor, scaled_cov: torch.Tensor, shape: torch.Tensor, rate: torch.Tensor):
        self.mean, self.scaled_cov, self.shape, self.rate = mean, scaled_cov, shape, rate

    def predictive(self, x: torch.Tensor) -> StudentT:
        """``t_{2 shape}(mean·x, (rate / shape) (1 + x^T V x))``."""
        spread = 1 + torch.einsum("...i,...ij,...j->...", x, self.scaled_cov, x)
        return StudentT(2 * self.shape, (self.mean * x).sum(-1), self.rate / self.shape * spread)

    def observe(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.mean, self.scaled_cov, self.shape, self.rate = nig_observe(
            self.mean, self.scaled_cov, self.shape, self.rate, x, y
        )

    def copy(self) -> NormalInverseGammaState:
        state = self.mean, self.scaled_cov, self.shape, self.rate
        return NormalInverseGammaState(*(t.clone() for t in state))


@dataclass(frozen=True)
class UnknownNoiseBayes(ExactPredictor):
    """The Bayes predictor when each task draws its own noise variance: ``sigma^2 ~
    InvGamma(shape, scale)`` (shape > 1) and ``w | sigma^2 ~ N(0, sigma^2 I / s)``, with ``s =
    scale / (shape - 1)`` the prior mean of sigma^2, so that w has covariance I marginally and
    fixing sigma^2 at s gives :class:`Ridge` with noise_var s. The predictive is a Student-t
    with 2 shape_n degrees of freedom."""

    dim: int
    shape: float
    scale: float

    def __post_init__(self):
        if not (self.shape > 1 and self.scale > 0):
            raise ValueError(
                f"need shape > 1 and scale > 0 (a finite prior mean of sigma^2), got {self.shape}, {self.scale}"
            )

    @property
    def mean_noise_var(self) -> float:
        return self.scale / (self.shape - 1)

    def _state(self, x: torch.Tensor, y: torch.Tensor, device=None) -> NormalInverseGammaState:
        state = self.start(x.shape[0], device)
        for i in range(x.shape[1]):
            state.observe(x[:, i].double(), y[:, i].double())
        return state

    def coordinate_posterior(self, x, y) -> StudentT:
        """``w_d ~ t_{2 a_n}(mu_d, (b_n / a_n) V_dd)``: the Normal-Inverse-Gamma posterior's marginals."""
        state = self._state(x, y, x.device)
        spread = state.rate / state.shape
        variances = spread.unsqueeze(-1) * torch.diagonal(state.scaled_cov, dim1=-2, dim2=-1)
        return StudentT((2 * state.shape).unsqueeze(-1).expand_as(variances), state.mean, variances)

    def draw_tasks(self, x, y, rows, generator=None):
        """``sigma^2 ~ InvGamma(a_n, b_n)``, then ``w ~ N(mu_n, sigma^2 V_n)``; the noise sd is sigma."""
        state = self._state(x, y, rows.device)
        noise_var = inverse_gamma(state.shape[rows], state.rate[rows], generator)
        values, vectors = torch.linalg.eigh(state.scaled_cov)
        roots = (vectors * values.clamp_min(0).sqrt().unsqueeze(-2))[rows]
        z = torch.randn(len(rows), self.dim, generator=generator, device=rows.device, dtype=torch.float64)
        w = state.mean[rows] + noise_var.sqrt().unsqueeze(-1) * (roots @ z.unsqueeze(-1)).squeeze(-1)
        return w, noise_var.sqrt()

    def start(self, batch: int, device=None) -> NormalInverseGammaState:
        def full(value: float) -> torch.Tensor:
            return torch.full((batch,), value, dtype=torch.float64, device=device)

        eye = torch.eye(self.dim, dtype=torch.float64, device=device) / self.mean_noise_var
        mean = torch.zeros(batch, self.dim, dtype=torch.float64, device=device)
        return NormalInverseGammaState(mean, eye.expand(batch, -1, -1).clone(), full(self.shape), full(self.scale))


# --- the roles of a run -----------------------------------------------------------------------


def references(prior, pool, noise_var: float) -> dict[str, ExactPredictor | None]:
    """The exact predictors a run is held against, by role (:mod:`lrpfn.roles`):

    * ``dmmse`` — Bayes under the run's pool (a :class:`lrpfn.priors.Pool`), None at M = inf;
    * ``ridge`` — Bayes under the Gaussian with the true prior's mean and covariance, the
      best predictor linear in the data (the misspecified baseline);
    * ``bayes`` — Bayes under the true prior.

    Under N(0, I) the true prior is its own moment-matched Gaussian: ``ridge`` and ``bayes``
    are then the same object, which consumers compute once.
    """
    bayes = prior.predictor(noise_var)
    matched = prior.moment_matched()
    return {
        "ridge": bayes if matched is prior else matched.predictor(noise_var),
        "bayes": bayes,
        "dmmse": None if pool is None else pool.predictor(noise_var),
    }


def distinct(predictors: dict[str, ExactPredictor | None]) -> dict[str, ExactPredictor]:
    """The predictors of ``predictors`` that are not None, each once: a predictor that serves
    several roles keeps the last of them (``bayes`` over ``ridge``, in the order of
    :func:`references`)."""
    last = {id(p): role for role, p in predictors.items() if p is not None}
    return {role: p for role, p in predictors.items() if p is not None and last[id(p)] == role}
