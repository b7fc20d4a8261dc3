"""Task families: what a run's tasks are, and the exact predictors that serve them (docs/design.md §2).

A family is three choices of a config (:class:`lrpfn.config.TaskFamily`): the prior of a
task's w (:mod:`lrpfn.priors`), its noise (one variance for all tasks, or one per task from
an inverse gamma) and the features w acts on (``phi(x) = x``, or random Fourier features of
x). :class:`Family` turns them into what the pipeline uses — the true prior's and a pool's
task distributions, seeded batches and pools, the output head's scale, and the exact
predictors by role — so the workflow, the read-outs and the figures never ask which family
they serve:

* ``bayes`` — Bayes under the true family: ridge, the mixture engine, the Student-t of
  unknown noise, each on phi(x) where there are features;
* ``ridge`` — the misspecified baseline: Bayes under the Gaussian with the prior's mean and
  covariance and known noise (the prior mean of sigma^2 under unknown noise); with features,
  ridge in x itself, the best predictor linear in x, its prior variance matched to the
  signal's;
* ``dmmse`` — Bayes under the run's pool (each task with its own noise where tasks drew it).

Errors are normalised by :attr:`Family.normaliser`, the prior's signal variance ``E[(w·phi(x))^2]``
for the Gaussian prior (D for linear tasks, the paper's MSE/D; 1 for Fourier features, the
RBF kernel's variance), so numbers compare across families.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from . import priors
from .buckets import BarDistribution, build_head
from .config import RunConfig, TaskFamily
from .exact import ExactPredictor, references
from .features import FeatureBayes, Features, FourierFeatures, GaussianProcess, IdentityFeatures, rbf_kernel
from .implied import Readout
from .tasks import Batch, master_tasks, sample_batch


@dataclass(frozen=True, eq=False)
class Family:
    """A task family on inputs of dimension ``dim``: tasks are w (in R^n_params) from ``prior``,
    targets ``w·phi(x)``, noise ``noise_var`` (its prior mean where tasks draw their own)."""

    config: TaskFamily
    prior: priors.Prior
    features: Features
    noise_var: float

    @property
    def dim(self) -> int:
        """The dimension of x, what the model sees."""
        return self.features.dim

    @property
    def n_params(self) -> int:
        """The dimension of a task's w."""
        return self.features.n_features

    @property
    def phi(self) -> Features | None:
        """The feature map, None for phi(x) = x (so linear paths stay as they were)."""
        return None if isinstance(self.features, IdentityFeatures) else self.features

    @property
    def normaliser(self) -> float:
        """The signal variance errors are divided by: D for linear tasks, 1 for Fourier features."""
        return float(self.dim) if self.phi is None else 1.0

    @property
    def readout(self) -> Readout:
        """How resampled paths are read: least squares on x, and the residual variance where
        tasks draw their own noise (their implied prior over sigma^2). On features, the
        posterior mean of w given the path under ``N(0, I)`` (ridge with the noise variance,
        the prior every family on features has): least squares of a path not much longer than
        F on features of a low-dimensional x is ill-conditioned, nearly collinear features
        trading huge opposite coefficients, and its functions run far off where the path has
        no inputs, for exact and PFN paths alike (docs/design.md §9.1)."""
        noise = not self.config.noise.is_default
        return Readout(self.phi, noise) if self.phi is None else Readout(self.phi, noise, self.noise_var)

    FUNCTION_GRID = np.linspace(-3, 3, 49)  # t: a task's function is read at x = t u (u the unit diagonal)

    @property
    def functions(self):
        """For a family on features, the map of w (B, P) to its function ``w·phi(t u)`` at the
        points t of :attr:`FUNCTION_GRID`, (B, G) numpy, u the unit diagonal of R^D (x = t in one
        dimension); None for linear tasks, whose w is itself the read-out."""
        if self.phi is None:
            return None
        inputs = torch.from_numpy(self.FUNCTION_GRID).unsqueeze(-1) * self.dim**-0.5 * torch.ones(self.dim)
        basis = self.phi(inputs.double()).numpy()  # (G, P)
        return lambda w: np.asarray(w, dtype=np.float64) @ basis.T

    def tasks(self, pool: priors.Pool | None = None) -> priors.Prior:
        """The distribution a run's sequences draw tasks from: its pool, or the true prior."""
        return self.prior if pool is None else pool

    def sample_batch(
        self,
        batch_size: int,
        length: int,
        generator: torch.Generator,
        pool: priors.Pool | None = None,
        active_dims: int | None = None,
    ) -> Batch:
        """Sequences of ``length`` pairs (:func:`lrpfn.tasks.sample_batch`) from the pool or the true prior."""
        return sample_batch(batch_size, length, self.noise_var, self.tasks(pool), generator, active_dims, self.phi)

    def eval_set(self, n_sequences: int, length: int, seed: int, pool: priors.Pool | None = None) -> Batch:
        """A fixed, seeded evaluation set (CPU), the same for every model evaluated on it."""
        return self.sample_batch(n_sequences, length, torch.Generator().manual_seed(seed), pool)

    def master_pool(self, size: int, seed: int) -> priors.Pool:
        """The seeded master task draw (:func:`lrpfn.tasks.master_tasks`): pool M is its first M rows."""
        return master_tasks(size, seed, self.prior)

    def head(self, kind: str, n_buckets: int, seed: int = 0) -> BarDistribution:
        """A run's output head, scaled to this family's prior predictive of y."""
        return build_head(kind, n_buckets, self.noise_var, self.prior, seed=seed, features=self.phi)

    def references(self, pool: priors.Pool | None = None) -> dict[str, ExactPredictor | None]:
        """The exact predictors of a run by role (the module doc); a predictor serving two
        roles is one object (:func:`lrpfn.exact.distinct`)."""
        roles = references(self.prior, pool, self.noise_var)
        if self.phi is None:
            return roles
        wrapped = {id(p): FeatureBayes(p, self.phi) for p in roles.values() if p is not None}
        roles = {role: None if p is None else wrapped[id(p)] for role, p in roles.items()}
        return roles | {"ridge": self.ridge_in_x()}

    def extra_references(self) -> dict[str, ExactPredictor]:
        """Exact predictors the evaluation scores beside the roles: for Fourier features the exact
        GP with the RBF kernel they approximate (``gp``), so that a reader sees how close the
        finite feature prior is to its limit; none otherwise."""
        if not isinstance(self.features, FourierFeatures):
            return {}
        lengthscale = self.config.features.parameters["lengthscale"]
        return {"gp": GaussianProcess(self.dim, rbf_kernel(lengthscale), self.noise_var)}

    def ridge_in_x(self) -> ExactPredictor:
        """Bayes under ``w ~ N(0, (s / D) I_D)`` on x itself, with s the signal variance: the
        best predictor linear in x, the baseline of a nonlinear family."""
        variance = self.normaliser / self.dim
        return priors.GaussianMixture(
            torch.zeros(1, dtype=torch.float64),
            torch.zeros(1, self.dim, dtype=torch.float64),
            variance * torch.eye(self.dim, dtype=torch.float64).unsqueeze(0),
        ).predictor(self.noise_var)


def build(config: TaskFamily, dim: int, noise_var: float) -> Family:
    """The family a config describes, on inputs of dimension ``dim``, built once per arguments."""
    return _build(config, dim, float(noise_var))


@functools.lru_cache(maxsize=8)
def _build(config: TaskFamily, dim: int, noise_var: float) -> Family:
    features = _features(config, dim)
    n_params = features.n_features
    if not config.noise.is_default:
        prior = priors.NormalInverseGamma(n_params, config.noise.parameters["shape"], noise_var)
    else:
        prior = priors.build(config.prior, n_params)
    return Family(config, prior, features, noise_var)


def _features(config: TaskFamily, dim: int) -> Features:
    if config.features.kind == "fourier":
        return FourierFeatures.draw(dim, **config.features.parameters)
    return IdentityFeatures(dim)


def of_run(run: RunConfig) -> Family:
    """The family a run (:class:`lrpfn.config.RunConfig`) trains on."""
    return build(run.family, run.dim, run.noise_var)


def from_params(params) -> Family:
    """The family of a rule's params: ``dim``, ``noise_var`` and the non-default sections. A rule
    that draws no noise may leave out ``noise_var`` where tasks share it (it is then NaN)."""
    config, noise_var = TaskFamily.from_params(params), params.get("noise_var")
    if noise_var is None:
        if not config.noise.is_default:
            raise ValueError("noise_var: tasks that draw their own noise need its prior mean")
        noise_var = math.nan
    return build(config, params.get("dim"), noise_var)


def of_pool(run: RunConfig, pool: priors.Pool | None) -> priors.Prior:
    """The task distribution a run trains on: its pool for a finite pool size (checked against
    the run), the true prior for M = inf."""
    family = of_run(run)
    if math.isinf(run.pool_size):
        if pool is not None:
            raise ValueError(f"a run on the true prior (M = inf) takes no pool, got {len(pool)} tasks")
        return family.prior
    if pool is None or (len(pool), pool.dim) != (int(run.pool_size), family.n_params):
        shape = None if pool is None else (len(pool), pool.dim)
        raise ValueError(f"pool has shape {shape}, run expects ({int(run.pool_size)}, {family.n_params})")
    return pool
