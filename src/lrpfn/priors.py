"""Task priors over w beyond the isotropic Gaussian (SPEC §10): Gaussian mixtures.

Every prior here is a :class:`GaussianMixture` ``w ~ sum_c pi_c N(m_c, Sigma_c)``, so one
exact engine (:func:`lrpfn.bayes.mixture_predictive`) serves all of them:

* ``gaussian`` — ``N(0, I_D)``, the default, one component (ridge);
* ``spike_slab`` — each coordinate 0 with probability ``p_zero``, else ``N(0, slab_var)``:
  one component per support ``s in {0,1}^D`` (``Sigma_s = slab_var diag(s)``);
* ``mixture`` — C clusters of tasks from a seeded hyperprior: equal weights, means
  ``m_c ~ N(0, separation^2 I_D)``, covariances ``cluster_var I_D``.

A pool of M tasks is uniform over M point masses, the dMMSE case of the same engine.
:meth:`GaussianMixture.moment_matched` is the Gaussian with the prior's mean and covariance:
its Bayes predictor (generalised ridge) is the best predictor linear in the data.

The config layer describes a prior as a dict (``kind`` and its parameters); ``None`` — no
``prior`` section — is the default ``N(0, I_D)``, for which every sampler keeps its
original code path, so that results of configs without a prior do not change.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from dataclasses import dataclass

import numpy as np
import torch

from .config import MAX_SPIKE_SLAB_DIM


@dataclass(frozen=True)
class GaussianMixture:
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
        """The Gaussian with this prior's mean and covariance (one component)."""
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


def gaussian(dim: int) -> GaussianMixture:
    """``N(0, I_D)``."""
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


def build(prior: dict | None, dim: int) -> GaussianMixture:
    """The mixture a config's ``prior`` section describes (``None``: the default N(0, I_D))."""
    if prior is None or prior["kind"] == "gaussian":
        return gaussian(dim)
    if prior["kind"] == "spike_slab":
        return spike_slab(dim, prior["p_zero"], prior["slab_var"])
    if prior["kind"] == "mixture":
        return clusters(dim, prior["n_components"], prior["separation"], prior["cluster_var"], prior["seed"])
    raise ValueError(f"unknown prior kind {prior['kind']!r}")


def of_run(prior: dict | None, dim: int) -> GaussianMixture | None:
    """A run's true task prior for the samplers: ``None`` for the default N(0, I_D) (their
    original code paths), else its mixture, built once per prior and dimension."""
    return None if prior is None else _cached(json.dumps(prior, sort_keys=True), dim)


@functools.lru_cache(maxsize=8)
def _cached(prior: str, dim: int) -> GaussianMixture:
    return build(json.loads(prior), dim)


def bayes_name(prior: dict | None) -> str:
    """How figures name the true prior's Bayes predictor."""
    if prior is None or prior["kind"] == "gaussian":
        return "ridge"
    return {"spike_slab": "Bayes (spike-and-slab)", "mixture": "Bayes (mixture)"}[prior["kind"]]
