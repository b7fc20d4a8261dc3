"""Nonlinear tasks through a fixed feature map: ``y = w·phi(x) + eps`` (docs/design.md §2).

The model sees x; every exact predictor of the linear family serves the nonlinear one
unchanged once it sees ``phi(x)`` instead (:class:`FeatureBayes`): ridge, pools and mixtures
over w in R^F. :class:`FourierFeatures` is the map of Rahimi & Recht (2007),
``phi(x) = sqrt(2 / F) cos(Omega x + b)`` with the rows of Omega from N(0, I / l^2) and b
uniform on [0, 2 pi): with ``w ~ N(0, I_F)`` the function ``w·phi(x)`` is a Gaussian process
whose kernel ``phi(x)·phi(x')`` tends to the RBF kernel ``exp(-|x - x'|^2 / (2 l^2))`` as F
grows. :class:`GaussianProcess` is the exact GP predictor of that limit (or of any kernel),
the reference that shows how close the finite feature prior is to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .bayes import Normal
from .exact import ExactPredictor, PosteriorState


@dataclass(frozen=True, eq=False)
class FourierFeatures:
    """``phi(x) = sqrt(2 / F) cos(Omega x + b)``: frequencies (F, D) and phases (F,), float64."""

    frequencies: torch.Tensor
    phases: torch.Tensor

    @classmethod
    def draw(cls, dim: int, n_features: int, lengthscale: float, seed: int) -> FourierFeatures:
        """The map for the RBF kernel of ``lengthscale`` in ``dim`` dimensions, from ``seed``."""
        if n_features < 1 or not lengthscale > 0:
            raise ValueError(f"need n_features >= 1 and lengthscale > 0, got {n_features}, {lengthscale}")
        g = torch.Generator().manual_seed(seed)
        frequencies = torch.randn(n_features, dim, generator=g, dtype=torch.float64) / lengthscale
        phases = 2 * math.pi * torch.rand(n_features, generator=g, dtype=torch.float64)
        return cls(frequencies, phases)

    @property
    def dim(self) -> int:
        return self.frequencies.shape[1]

    @property
    def n_features(self) -> int:
        return self.frequencies.shape[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """phi(x) for x (..., D): (..., F), in x's dtype."""
        omega = self.frequencies.to(device=x.device, dtype=x.dtype)
        phases = self.phases.to(device=x.device, dtype=x.dtype)
        return math.sqrt(2 / self.n_features) * torch.cos(x @ omega.T + phases)

    def kernel(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The finite feature kernel ``phi(a)·phi(b)``: (..., n, m) for a (..., n, D), b (..., m, D)."""
        return self(a) @ self(b).transpose(-1, -2)


@dataclass(frozen=True)
class IdentityFeatures:
    """``phi(x) = x``: the linear family as a feature model (its numbers are the linear ones)."""

    dim: int

    @property
    def n_features(self) -> int:
        return self.dim

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x


Features = FourierFeatures | IdentityFeatures


def rbf_kernel(lengthscale: float):
    """``k(a, b) = exp(-|a - b|^2 / (2 lengthscale^2))`` for a (..., n, D), b (..., m, D): (..., n, m)."""

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * torch.cdist(a, b).square() / lengthscale**2)

    return kernel


class FeatureState:
    """A posterior state in feature space behind a state of x: x is mapped before every call."""

    def __init__(self, state: PosteriorState, features: Features):
        self.state, self.features = state, features

    def predictive(self, x: torch.Tensor):
        return self.state.predictive(self.features(x))

    def observe(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.state.observe(self.features(x), y)

    def copy(self) -> FeatureState:
        return FeatureState(self.state.copy(), self.features)


@dataclass(frozen=True, eq=False)
class FeatureBayes(ExactPredictor):
    """An exact predictor over w in R^F (``base``: ridge, a pool, a mixture) applied to ``phi(x)``."""

    base: ExactPredictor
    features: Features

    def __post_init__(self):
        if self.base.dim != self.features.n_features:
            raise ValueError(
                f"the base predictor is over {self.base.dim} dimensions, phi has {self.features.n_features}"
            )

    @property
    def dim(self) -> int:
        return self.features.dim

    @property
    def noise_var(self):
        return self.base.noise_var

    def start(self, batch: int, device=None) -> FeatureState:
        return FeatureState(self.base.start(batch, device), self.features)

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def coordinate_posterior(self, x, y):
        return self.base.coordinate_posterior(self.features(x.double()), y)

    def score_sequences(self, x, y):
        return self.base.score_sequences(self.features(x.double()), y)

    def prompt_predictive(self, x, y, query):
        return self.base.prompt_predictive(self.features(x.double()), y, self.features(query.double()))

    def posterior(self, x, y):
        return self.base.posterior(self.features(x.double()), y)

    def draw_tasks(self, x, y, rows, generator=None):
        return self.base.draw_tasks(self.features(x.double()), y, rows, generator)


class GaussianProcessState:
    """The observed pairs of B sequences, x (B, n, D) and y (B, n); the predictive solves the
    n x n system afresh (an exact reference for evaluation, not for long resampled paths)."""

    def __init__(self, gp: GaussianProcess, x: torch.Tensor, y: torch.Tensor):
        self.gp, self.x, self.y = gp, x, y

    def predictive(self, x: torch.Tensor) -> Normal:
        mean, var = self.gp.predict(self.x, self.y, x.unsqueeze(-2))
        return Normal(torch.zeros_like(var), mean, var)

    def observe(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x = torch.cat([self.x, x.double().unsqueeze(1)], 1)
        self.y = torch.cat([self.y, y.double().unsqueeze(1)], 1)

    def copy(self) -> GaussianProcessState:
        return GaussianProcessState(self.gp, self.x.clone(), self.y.clone())


@dataclass(frozen=True, eq=False)
class GaussianProcess(ExactPredictor):
    """The exact predictor of ``y = f(x) + eps``, ``f ~ GP(0, kernel)``, ``eps ~ N(0, noise_var)``."""

    dim: int
    kernel: object  # (a (..., n, D), b (..., m, D)) -> (..., n, m)
    noise_var: float

    def start(self, batch: int, device=None) -> GaussianProcessState:
        empty = torch.zeros(batch, 0, dtype=torch.float64, device=device)
        return GaussianProcessState(self, empty.unsqueeze(-1).expand(-1, -1, self.dim), empty)

    def predict(self, x: torch.Tensor, y: torch.Tensor, query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictive mean and variance of y at queries (B, Q, D) after pairs x (B, n, D), y (B, n):
        ``k_*^T (K + s I)^-1 y`` and ``k(x_*, x_*) + s - k_*^T (K + s I)^-1 k_*``, (B, Q) each."""
        x, y, query = x.double(), y.double(), query.double()
        prior = torch.diagonal(self.kernel(query, query), dim1=-2, dim2=-1) + self.noise_var
        if x.shape[1] == 0:
            return torch.zeros_like(prior), prior
        gram = self.kernel(x, x) + self.noise_var * torch.eye(x.shape[1], dtype=torch.float64, device=x.device)
        chol = torch.linalg.cholesky(gram)
        cross = self.kernel(x, query)  # (B, n, Q)
        alpha = torch.cholesky_solve(y.unsqueeze(-1), chol)  # (B, n, 1)
        half = torch.linalg.solve_triangular(chol, cross, upper=False)  # L^-1 k_*
        return (cross * alpha).sum(-2), prior - half.square().sum(-2)

    def score_sequences(self, x, y):
        """Every position of each sequence from one Cholesky factor of its whole Gram matrix: the
        factor's leading i x i block is that of the first i pairs."""
        x, y = x.double(), y.double()
        gram = self.kernel(x, x) + self.noise_var * torch.eye(x.shape[1], dtype=torch.float64, device=x.device)
        chol = torch.linalg.cholesky(gram)
        # Forward substitution gives, per position i, the innovation y_i - E[y_i | y_<i] scaled
        # by the conditional sd L_ii: z = L^-1 y, so y_i's conditional mean is y_i - L_ii z_i.
        z = torch.linalg.solve_triangular(chol, y.unsqueeze(-1), upper=False).squeeze(-1)
        sd = torch.diagonal(chol, dim1=-2, dim2=-1)
        mean = y - sd * z
        nll = 0.5 * (math.log(2 * math.pi) + z.square()) + torch.log(sd)
        return mean, nll
