"""Task priors: what a task's w is drawn from, and which exact predictor serves it.

A prior is an object, never ``None`` (docs/design.md §9). Every prior draws tasks and
names its exact Bayes predictor (:mod:`lrpfn.exact`), which picks the fast path:

* :class:`StandardGaussian` — ``N(0, I_D)``, the default: ridge;
* :class:`GaussianMixture` — ``w ~ sum_c pi_c N(m_c, Sigma_c)``: the sequential mixture
  engine. The built-in kinds ``spike_slab`` (each coordinate 0 with probability
  ``p_zero``, else ``N(0, slab_var)``: one component per support ``s in {0,1}^D``) and
  ``mixture`` (C clusters, equal weights, means ``m_c ~ N(0, separation^2 I_D)`` from a
  seeded hyperprior, covariances ``cluster_var I_D``) are mixtures, and so is the
  moment-matched Gaussian of any prior (:meth:`moment_matched`), whose Bayes predictor —
  generalised ridge — is the best predictor linear in the data;
* :class:`Pool` — uniform over the M tasks of a pool: dMMSE (the tasks' noise shared, or
  one variance per task);
* :class:`NormalInverseGamma` — each task draws its own noise variance ``sigma^2 ~
  InvGamma(shape, scale)`` and ``w | sigma^2 ~ N(0, (sigma^2 / s) I_D)`` with s the prior mean
  of sigma^2: the Student-t predictor of unknown noise.

A task is w and, where tasks differ in it, its noise variance: :meth:`Prior.sample_tasks`
returns a :class:`TaskDraw`, and a prior with shared noise leaves its ``noise_var`` None.

A config names its prior by kind (``PriorConfig``); :data:`KINDS` maps each kind to its
builder, and the schema (``config.schema.yaml``) declares its parameters: adding a kind
touches this module and the schema.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from .bayes import gamma_quantile
from .config import MAX_SPIKE_SLAB_DIM, PriorConfig
from .exact import ExactPredictor, MixtureBayes, PoolBayes, Ridge, UnknownNoiseBayes


class TaskDraw(NamedTuple):
    """Tasks as a batch uses them: w (n, D) float32, the pool index of each (n,) (-1 off a pool)
    and, where tasks differ in it, each one's noise variance (n,) float64 (else None: shared)."""

    w: torch.Tensor
    task: torch.Tensor
    noise_var: torch.Tensor | None = None


class Prior:
    """What every task prior offers (subclasses implement each)."""

    dim: int

    def sample_tasks(self, n: int, generator: torch.Generator) -> TaskDraw:
        """n tasks, every random number from ``generator``, on its device."""
        raise NotImplementedError

    def draw_rows(self, rng: np.random.Generator, n: int) -> torch.Tensor:
        """n tasks (n, D) float64 from a numpy stream, row by row (so draws are nested in n)."""
        raise NotImplementedError(f"{type(self).__name__} does not draw from a numpy stream")

    def draw_pool(self, rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """n tasks from a numpy stream, row by row: w (n, D) float64 and each task's noise
        variance (n,) float64, or None where the noise is shared."""
        return self.draw_rows(rng, n), None

    def predictor(self, noise_var: float) -> ExactPredictor:
        """The exact Bayes predictor of y under this prior."""
        raise NotImplementedError

    def moment_matched(self) -> Prior:
        """The Gaussian with this prior's mean and covariance."""
        raise NotImplementedError

    def as_mixture(self) -> GaussianMixture:
        """This prior as a Gaussian mixture over w (for its marginals in figures)."""
        raise NotImplementedError

    @property
    def has_atom_at_zero(self) -> bool:
        """Whether some coordinate of w is exactly zero with positive probability (a spike,
        which the implied-prior read-out then measures)."""
        mixture = self.as_mixture()
        variances = torch.diagonal(mixture.covariances, dim1=-2, dim2=-1)
        return bool(((variances == 0) & (mixture.means == 0)).any())


@dataclass(frozen=True, eq=False)
class GaussianMixture(Prior):
    """``w ~ sum_c exp(log_weights[c]) N(means[c], covariances[c])``; float64, C components in R^D."""

    log_weights: torch.Tensor  # (C,), normalised
    means: torch.Tensor  # (C, D)
    covariances: torch.Tensor  # (C, D, D), positive semi-definite (zero for a point mass)

    def __post_init__(self):
        c, d = self.means.shape
        if self.log_weights.shape != (c,) or self.covariances.shape != (c, d, d):
            raise ValueError(
                f"mixture shapes disagree: weights {tuple(self.log_weights.shape)}, means {tuple(self.means.shape)}, "
                f"covariances {tuple(self.covariances.shape)}"
            )

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def weights(self) -> torch.Tensor:
        return self.log_weights.exp()

    def mean(self) -> torch.Tensor:
        return self.weights @ self.means

    def covariance(self) -> torch.Tensor:
        """Law of total covariance: ``sum_c pi_c (Sigma_c + (m_c - m)(m_c - m)^T)``."""
        centred = self.means - self.mean()
        spread = centred.unsqueeze(-1) * centred.unsqueeze(-2)
        return torch.einsum("c,cij->ij", self.weights, self.covariances + spread)

    def moment_matched(self) -> GaussianMixture:
        """The Gaussian with this prior's mean and covariance (one component, served by the
        mixture engine like the prior itself)."""
        return GaussianMixture(
            torch.zeros(1, dtype=torch.float64), self.mean().unsqueeze(0), self.covariance().unsqueeze(0)
        )

    @functools.cached_property
    def factors(self) -> torch.Tensor:
        """``L_c`` with ``L_c L_c^T = Sigma_c`` (C, D, D): the square root of a diagonal
        covariance (so a spike-and-slab draw is exactly zero off its support), else the
        eigen-factor, which also serves a singular covariance. Computed once per prior, not
        per batch of draws."""
        cov = self.covariances
        diagonal = torch.diagonal(cov, dim1=-2, dim2=-1)
        if torch.equal(torch.diag_embed(diagonal), cov):
            return torch.diag_embed(diagonal.clamp_min(0).sqrt())
        values, vectors = torch.linalg.eigh(cov)
        return vectors * values.clamp_min(0).sqrt().unsqueeze(-2)

    def draw(self, uniforms: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
        """Tasks from the prior given their randomness: a uniform (n,) that picks each
        task's component and standard normals (n, D): ``w = m_c + L_c z``, float64."""
        cumulative = torch.cumsum(self.weights, 0)
        component = torch.searchsorted(cumulative, uniforms.double() * cumulative[-1], right=True)
        component = component.clamp(max=self.n_components - 1)
        return self.means[component] + torch.einsum("nij,nj->ni", self.factors[component], normals.double())

    def sample_tasks(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        device = generator.device
        uniforms = torch.rand(n, generator=generator, device=device)
        normals = torch.randn((n, self.dim), generator=generator, device=device)
        w = self.draw(uniforms.cpu(), normals.cpu()).to(device=device, dtype=torch.float32)
        return TaskDraw(w, torch.full((n,), -1, dtype=torch.long, device=device))

    def draw_rows(self, rng: np.random.Generator, n: int) -> torch.Tensor:
        """Each row takes D + 1 standard normals: the first, through the normal cdf, picks
        the row's component, the others its draw within it."""
        normals = torch.from_numpy(rng.standard_normal((n, self.dim + 1)))
        return self.draw(torch.special.ndtr(normals[:, 0]), normals[:, 1:])

    def predictor(self, noise_var: float) -> MixtureBayes:
        return MixtureBayes(self, noise_var)

    def as_mixture(self) -> GaussianMixture:
        return self


@dataclass(frozen=True)
class StandardGaussian(Prior):
    """``w ~ N(0, I_D)``, the default prior: served by ridge."""

    dim: int

    def sample_tasks(self, n: int, generator: torch.Generator) -> TaskDraw:
        device = generator.device
        w = torch.randn((n, self.dim), generator=generator, device=device)
        return TaskDraw(w, torch.full((n,), -1, dtype=torch.long, device=device))

    def draw_rows(self, rng: np.random.Generator, n: int) -> torch.Tensor:
        return torch.from_numpy(rng.standard_normal((n, self.dim)))

    def predictor(self, noise_var: float) -> Ridge:
        return Ridge(self.dim, noise_var)

    def moment_matched(self) -> StandardGaussian:
        return self

    def as_mixture(self) -> GaussianMixture:
        return gaussian(self.dim)


@dataclass(frozen=True, eq=False)
class Pool(Prior):
    """``w`` uniform over the rows of ``tasks`` (M, D): served by dMMSE. Each task's noise
    variance is ``noise_var`` (M,) where tasks drew their own, else the run's."""

    tasks: torch.Tensor
    noise_var: torch.Tensor | None = None

    def __post_init__(self):
        if self.noise_var is not None and self.noise_var.shape != self.tasks.shape[:1]:
            raise ValueError(
                f"a pool of {self.tasks.shape[0]} tasks with {tuple(self.noise_var.shape)} noise variances"
            )

    @property
    def dim(self) -> int:
        return self.tasks.shape[1]

    def __len__(self) -> int:
        return self.tasks.shape[0]

    def sample_tasks(self, n: int, generator: torch.Generator) -> TaskDraw:
        device = generator.device
        task = torch.randint(len(self), (n,), generator=generator, device=device)
        noise_var = None if self.noise_var is None else self.noise_var.to(device, torch.float64)[task]
        return TaskDraw(self.tasks.to(device)[task], task, noise_var)

    def predictor(self, noise_var: float) -> PoolBayes:
        """dMMSE with the tasks' own noise variances, or ``noise_var`` shared."""
        return PoolBayes(self.tasks, noise_var if self.noise_var is None else self.noise_var.double())

    def moment_matched(self) -> GaussianMixture:
        return self.as_mixture().moment_matched()

    def as_mixture(self) -> GaussianMixture:
        return pool_prior(self.tasks)


@dataclass(frozen=True)
class NormalInverseGamma(Prior):
    """Unknown noise: ``sigma^2 ~ InvGamma(shape, scale)`` per task, with ``scale = noise_var
    (shape - 1)`` so that ``noise_var`` is the prior mean of sigma^2, and ``w | sigma^2 ~
    N(0, (sigma^2 / noise_var) I_D)``, so that w has covariance I (the moment-matched Gaussian
    is N(0, I)). Served by the Student-t predictor (:class:`lrpfn.exact.UnknownNoiseBayes`)."""

    dim: int
    shape: float
    noise_var: float

    def __post_init__(self):
        if not (self.shape > 1 and self.noise_var > 0):
            raise ValueError(f"need shape > 1 and noise_var > 0, got {self.shape}, {self.noise_var}")

    @property
    def scale(self) -> float:
        return self.noise_var * (self.shape - 1)

    def _tasks(self, normals: torch.Tensor, uniforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """w (n, D) and sigma^2 (n,), float64, from standard normals (n, D) and uniforms (n,)."""
        shape = torch.full_like(uniforms, self.shape, dtype=torch.float64)
        noise_var = self.scale / gamma_quantile(shape, uniforms.double())
        return normals.double() * (noise_var / self.noise_var).sqrt().unsqueeze(-1), noise_var

    def sample_tasks(self, n: int, generator: torch.Generator) -> TaskDraw:
        """w's normals, then sigma^2's uniforms, from ``generator``."""
        device = generator.device
        normals = torch.randn((n, self.dim), generator=generator, device=device)
        uniforms = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        w, noise_var = self._tasks(normals, uniforms)
        return TaskDraw(w.float(), torch.full((n,), -1, dtype=torch.long, device=device), noise_var)

    def draw_pool(self, rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row takes D + 1 standard normals: D for w's direction, the last (through the
        normal cdf) for sigma^2."""
        normals = torch.from_numpy(rng.standard_normal((n, self.dim + 1)))
        return self._tasks(normals[:, :-1], torch.special.ndtr(normals[:, -1]))

    def draw_rows(self, rng: np.random.Generator, n: int) -> torch.Tensor:
        return self.draw_pool(rng, n)[0]

    def predictor(self, noise_var: float) -> UnknownNoiseBayes:
        """The Student-t predictor; ``noise_var`` must be the prior mean this prior was built with."""
        if noise_var != self.noise_var:
            raise ValueError(f"this prior's mean noise variance is {self.noise_var}, not {noise_var}")
        return UnknownNoiseBayes(self.dim, self.shape, self.scale)

    def moment_matched(self) -> StandardGaussian:
        return StandardGaussian(self.dim)

    def as_mixture(self, n_components: int = 256) -> GaussianMixture:
        """w's law (a multivariate Student-t) as an equal-weight mixture over ``n_components``
        quantiles of sigma^2, at levels (i + 1/2) / n: for figures' marginals and ranges."""
        levels = (torch.arange(n_components, dtype=torch.float64) + 0.5) / n_components
        shape = torch.full_like(levels, self.shape)
        noise_var = self.scale / gamma_quantile(shape, levels)
        eye = torch.eye(self.dim, dtype=torch.float64)
        return GaussianMixture(
            torch.full((n_components,), -math.log(n_components), dtype=torch.float64),
            torch.zeros(n_components, self.dim, dtype=torch.float64),
            (noise_var / self.noise_var).reshape(-1, 1, 1) * eye,
        )

    @property
    def has_atom_at_zero(self) -> bool:
        return False


def gaussian(dim: int) -> GaussianMixture:
    """``N(0, I_D)`` as a one-component mixture (served by the mixture engine, unlike
    :class:`StandardGaussian`; the tests hold the two to each other)."""
    return GaussianMixture(
        torch.zeros(1, dtype=torch.float64),
        torch.zeros(1, dim, dtype=torch.float64),
        torch.eye(dim, dtype=torch.float64).unsqueeze(0),
    )


def spike_slab(dim: int, p_zero: float, slab_var: float) -> GaussianMixture:
    """Each coordinate 0 with probability ``p_zero``, else ``N(0, slab_var)``: 2^D supports."""
    if dim > MAX_SPIKE_SLAB_DIM:
        raise ValueError(f"spike-and-slab has 2^dim components; dim {dim} exceeds {MAX_SPIKE_SLAB_DIM}")
    if not 0 <= p_zero < 1 or slab_var <= 0:
        raise ValueError(f"spike-and-slab needs 0 <= p_zero < 1 and slab_var > 0, got {p_zero}, {slab_var}")
    supports = torch.tensor(list(itertools.product([0.0, 1.0], repeat=dim)), dtype=torch.float64)
    if p_zero == 0:
        supports = supports[-1:]  # the all-ones support carries all the mass: N(0, slab_var I)
    active = supports.sum(-1)
    zeros = (dim - active) * math.log(p_zero) if p_zero > 0 else torch.zeros_like(active)
    log_weights = zeros + active * math.log1p(-p_zero)
    return GaussianMixture(
        torch.log_softmax(log_weights, 0),
        torch.zeros(len(supports), dim, dtype=torch.float64),
        torch.diag_embed(slab_var * supports),
    )


def clusters(dim: int, n_components: int, separation: float, cluster_var: float, seed: int) -> GaussianMixture:
    """C equally weighted clusters: means ``m_c ~ N(0, separation^2 I_D)`` from a seeded
    hyperprior (row c of one draw, so the first clusters do not depend on C), covariances
    ``cluster_var I_D``."""
    means = separation * np.random.default_rng(seed).standard_normal((n_components, dim))
    return GaussianMixture(
        torch.full((n_components,), -math.log(n_components), dtype=torch.float64),
        torch.from_numpy(means),
        cluster_var * torch.eye(dim, dtype=torch.float64).expand(n_components, dim, dim).clone(),
    )


def pool_prior(pool: torch.Tensor) -> GaussianMixture:
    """Uniform over the rows of ``pool`` (M, D): M point masses (the dMMSE prior)."""
    m, d = pool.shape
    return GaussianMixture(
        torch.full((m,), -math.log(m), dtype=torch.float64),
        pool.double(),
        torch.zeros(m, d, d, dtype=torch.float64),
    )


KINDS: dict[str, Callable[..., Prior]] = {
    "gaussian": StandardGaussian,
    "spike_slab": spike_slab,
    "mixture": clusters,
}


def build(prior: PriorConfig, dim: int) -> Prior:
    """The prior a config describes (:class:`lrpfn.config.PriorConfig`), built once per
    config and dimension."""
    if prior.kind not in KINDS:
        raise ValueError(f"prior.kind: unknown prior kind {prior.kind!r} (known: {sorted(KINDS)})")
    return _build(prior, dim)


@functools.lru_cache(maxsize=8)
def _build(prior: PriorConfig, dim: int) -> Prior:
    return KINDS[prior.kind](dim, **prior.parameters)
