"""The premise of predictive resampling, measured: is a predictor's sequence of predictives a
martingale, and is it exchangeable in the data? (docs/design.md §13)

Predictive resampling reads a prior or a posterior out of a predictor only if, at a fixed query
x*, the predictive expected after one more sampled pair equals today's: ``E[q_{n+k}(. | x*)] =
q_n(. | x*)`` when the pairs n+1 … n+k are drawn from the predictor itself (x ~ N(0, I), y from
its predictive). Exact Bayes satisfies it by construction and its predictive does not depend
on the order of the data; a trained PFN satisfies neither by construction. The read-outs here
run any predictor through one interface, :class:`Sequences` — the PFN through its pair cache
(:class:`ModelSequences`), an exact predictor through its posterior state
(:class:`ExactSequences`) — so the PFN and its exact reference are measured by the same code:

* :func:`martingale` — for each prompt and query, S continuations of k pairs: the drift of the
  predictive mean, ``mean_S(m_{n+k}) - m_n``; the drift of the variance, ``mean_S(v_{n+k} +
  (m_{n+k} - m_n)^2) - v_n`` (the variance of the continuations' average predictive about
  today's mean; zero in expectation for a martingale), each with its standard error over the
  continuations; and ``KL(q_n || mean_S q_{n+k})`` by quadrature. The average of S densities
  stands in for the expectation, which biases the KL upwards; the exact predictor's value from
  the same S is that bias's floor.
* :func:`exchangeability` — ``KL(q(. | prompt) || q(. | permuted prompt))`` for random
  permutations of each prompt's pairs: zero to float precision for an exact predictor.

Densities are compared on Gauss–Legendre nodes over today's predictive's span, split at the
kinks of every density compared (:func:`nodes`), so the same quadrature serves every head and
every exact predictive.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .bayes import LOG_2PI, NormalMixture, StudentT, categorical
from .buckets import BarDistribution
from .exact import ExactPredictor
from .implied import Readout
from .model import PFN
from .tasks import Batch

__all__ = [
    "ExactSequences",
    "Exchangeability",
    "HeadPredictions",
    "Martingale",
    "MixturePredictions",
    "ModelSequences",
    "Predictions",
    "Sequences",
    "StudentTPredictions",
    "central_probabilities",
    "contraction_slope",
    "coverage_table",
    "exchangeability",
    "exchangeability_table",
    "horizons",
    "interval_coverage",
    "kl_on_nodes",
    "martingale",
    "martingale_table",
    "nodes",
    "posterior_intervals",
    "premise_summary",
    "query_inputs",
    "resampled_coverage",
    "run_premise",
]

_NODES, _WEIGHTS = (torch.from_numpy(v) for v in np.polynomial.legendre.leggauss(4))
_ELEMENTS = 1 << 24  # the largest (rows x nodes x components) block a mixture density evaluates at once


# --- predictives at a batch of queries ------------------------------------------------------------


class Predictions(ABC):
    """Predictive distributions over y for a batch of (sequence, query), batch shape (B, Q)."""

    @property
    @abstractmethod
    def mean(self) -> torch.Tensor: ...

    @property
    @abstractmethod
    def variance(self) -> torch.Tensor: ...

    @abstractmethod
    def log_density(self, y: torch.Tensor) -> torch.Tensor:
        """log q(y) at points y (B, Q, G) of each prediction's own grid: (B, Q, G) float64."""

    @abstractmethod
    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw per prediction, (B, Q)."""

    def kinks(self) -> torch.Tensor | None:
        """Where each density jumps, (B, Q, J), or None where it is smooth."""
        return None

    @abstractmethod
    def rows(self, index: slice | torch.Tensor) -> Predictions:
        """The predictions of the sequences ``index`` (a slice or indices) selects."""

    def grouped_kinks(self, groups: int) -> torch.Tensor | None:
        """The kinks of every run of ``groups`` consecutive sequences together, (B / groups, Q, groups J)."""
        kinks = self.kinks()
        if kinks is None:
            return None
        b, q, j = kinks.shape
        return kinks.reshape(b // groups, groups, q, j).transpose(1, 2).reshape(b // groups, q, groups * j)

    def log_mean_density(self, groups: int, y: torch.Tensor) -> torch.Tensor:
        """log of the average density of every run of ``groups`` consecutive sequences at points
        y (B / groups, Q, G): (B / groups, Q, G) float64; in chunks of runs, so that the
        (runs, groups, Q, G) densities fit in memory."""
        runs, per_run = y.shape[0], groups * y[0].numel()
        chunk = max(1, _ELEMENTS // per_run)
        parts = []
        for i in range(0, runs, chunk):
            stop = min(runs, i + chunk)
            at = y[i:stop].repeat_interleave(groups, 0)
            log_q = self.rows(slice(i * groups, stop * groups)).log_density(at).reshape(-1, groups, *at.shape[1:])
            parts.append(torch.logsumexp(log_q, 1) - math.log(groups))
        return torch.cat(parts)


@dataclass(frozen=True)
class HeadPredictions(Predictions):
    """A PFN's predictives: its output head applied to outputs (B, Q, n_outputs)."""

    head: BarDistribution
    outputs: torch.Tensor

    @property
    def mean(self) -> torch.Tensor:
        return self.head.mean(self.outputs.double())

    @property
    def variance(self) -> torch.Tensor:
        return self.head.variance(self.outputs.double())

    def log_density(self, y: torch.Tensor) -> torch.Tensor:
        return self.head.log_prob_grid(self.outputs.double(), y.double())

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.head.sample(self.outputs, generator=generator)

    def kinks(self) -> torch.Tensor:
        return self.head.kinks(self.outputs.double())

    def rows(self, index: slice | torch.Tensor) -> HeadPredictions:
        return HeadPredictions(self.head, self.outputs[index])

    def log_mean_density(self, groups: int, y: torch.Tensor) -> torch.Tensor:
        """Exact, through the head's step-function mixture (:meth:`BarDistribution.log_mean_density`),
        in chunks of runs as memory allows."""
        b, q, n = self.outputs.shape
        outputs = self.outputs.double().reshape(b // groups, groups, q, n).transpose(1, 2)  # (runs, Q, groups, n)
        chunk = max(1, _ELEMENTS // (2 * groups * y[0].numel()))  # the tails: (runs, Q, 2 groups, G)
        return torch.cat(
            [self.head.log_mean_density(outputs[i : i + chunk], y[i : i + chunk]) for i in range(0, y.shape[0], chunk)]
        )


@dataclass(frozen=True)
class MixturePredictions(Predictions):
    """Exact predictives: Gaussian mixtures over y with (B, Q, C) log weights, means and variances."""

    mixture: NormalMixture

    @property
    def mean(self) -> torch.Tensor:
        return self.mixture.mean

    @property
    def variance(self) -> torch.Tensor:
        return self.mixture.variance

    def log_density(self, y: torch.Tensor) -> torch.Tensor:
        return _mixture_log_density(_significant(self.mixture), y)

    def rows(self, index: slice | torch.Tensor) -> MixturePredictions:
        m = self.mixture
        return MixturePredictions(NormalMixture(m.log_weights[index], m.means[index], m.variances[index]))

    def log_mean_density(self, groups: int, y: torch.Tensor) -> torch.Tensor:
        """As :meth:`Predictions.log_mean_density`; where every run of ``groups`` mixtures has the
        same components (a pool's predictive at one query: one component per pool task, only
        the weights move with the data), their average is one mixture with the averaged
        weights, evaluated once instead of ``groups`` times."""
        m = self.mixture
        shape = (m.means.shape[0] // groups, groups, *m.means.shape[1:])
        means, variances = m.means.reshape(shape), m.variances.reshape(shape)
        if groups == 1 or not (_constant_in_groups(means) and _constant_in_groups(variances)):
            return super().log_mean_density(groups, y)
        log_weights = torch.logsumexp(m.log_weights.reshape(shape), 1) - math.log(groups)
        return _mixture_log_density(NormalMixture(log_weights, means[:, 0], variances[:, 0]), y)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        m = self.mixture
        shape = m.means.shape[:-1]
        component = categorical(m.log_weights.reshape(-1, m.means.shape[-1]), generator).reshape(shape).unsqueeze(-1)
        noise = torch.randn(shape, generator=generator, device=m.means.device, dtype=torch.float64)
        return m.means.gather(-1, component).squeeze(-1) + m.variances.gather(-1, component).squeeze(-1).sqrt() * noise


@dataclass(frozen=True)
class StudentTPredictions(Predictions):
    """Exact Student-t predictives (unknown noise): dof, location and squared scale (B, Q)."""

    t: StudentT

    @property
    def mean(self) -> torch.Tensor:
        return self.t.mean

    @property
    def variance(self) -> torch.Tensor:
        return self.t.variance

    def log_density(self, y: torch.Tensor) -> torch.Tensor:
        t = self.t
        return StudentT(t.dof.unsqueeze(-1), t.loc.unsqueeze(-1), t.scale2.unsqueeze(-1)).log_prob(y.double())

    def rows(self, index: slice | torch.Tensor) -> StudentTPredictions:
        return StudentTPredictions(StudentT(self.t.dof[index], self.t.loc[index], self.t.scale2[index]))

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.t.sample(generator)


def _mixture_log_density(m: NormalMixture, y: torch.Tensor) -> torch.Tensor:
    """log of every mixture of ``m`` (B, Q, C) at its points y (B, Q, G), over all its
    components, in chunks of rows as memory allows: (B, Q, G) float64."""
    rows = y.shape[0]
    chunk = max(1, _ELEMENTS // max(1, y[0].numel() * m.means.shape[-1]))
    # log w_c N(y; mu_c, v_c) = offset_c + curvature_c (y - mu_c)^2, constants per component
    offset = (m.log_weights - 0.5 * (LOG_2PI + m.variances.log())).unsqueeze(-2)
    curvature, means = (-0.5 / m.variances).unsqueeze(-2), m.means.unsqueeze(-2)
    parts = []
    for i in range(0, rows, chunk):
        rows_i = slice(i, i + chunk)
        square = (y[rows_i].double().unsqueeze(-1) - means[rows_i]).square_()
        parts.append(torch.logsumexp(square.mul_(curvature[rows_i]).add_(offset[rows_i]), -1))
    return torch.cat(parts)


def _constant_in_groups(values: torch.Tensor) -> bool:
    """Whether ``values`` (runs, groups, ...) are equal, element by element, across each run's groups."""
    return torch.equal(values, values[:, :1].expand_as(values))


_NEGLIGIBLE = 1e-12  # the mixture mass a density evaluation may leave out


def _significant(mixture: NormalMixture) -> NormalMixture:
    """The fewest largest-weight components that hold all but ``_NEGLIGIBLE`` of every
    mixture's mass (the same number for all), weights as they were: a pool's posterior after a
    few pairs puts almost all its mass on a few tasks."""
    components = mixture.log_weights.shape[-1]
    if components <= 8:
        return mixture
    ordered, index = mixture.log_weights.sort(-1, descending=True)
    held = torch.logcumsumexp(ordered, -1) - torch.logsumexp(ordered, -1, keepdim=True)
    keep = int((held < math.log1p(-_NEGLIGIBLE)).sum(-1).max()) + 1
    if keep >= components:
        return mixture
    index = index[..., :keep]
    return NormalMixture(ordered[..., :keep], mixture.means.gather(-1, index), mixture.variances.gather(-1, index))


# --- a predictor over a batch of growing sequences ------------------------------------------------


class Sequences(ABC):
    """A predictor conditioned on a batch of B sequences, pair by pair."""

    @abstractmethod
    def observe(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Append pairs x (B, P, D), y (B, P) to every sequence, in order."""

    @abstractmethod
    def predict(self, query: torch.Tensor) -> Predictions:
        """The predictive at each query (B, Q, D) given each sequence's pairs so far."""


class ModelSequences(Sequences):
    """A PFN over a batch of sequences through its pair key/value cache: up to ``capacity``
    pairs per sequence, predictions at up to ``queries`` queries per call."""

    def __init__(self, model: PFN, head: BarDistribution, batch: int, capacity: int, queries: int = 1):
        self.model, self.head = model.eval(), head
        self.cache = model.new_cache(batch, capacity, queries)
        self.dtype = next(model.parameters()).dtype

    @torch.no_grad()
    def observe(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.model.step(self.cache, x_pair=x.to(self.dtype), y_pair=y.to(self.dtype))

    @torch.no_grad()
    def predict(self, query: torch.Tensor) -> HeadPredictions:
        return HeadPredictions(self.head, self.model.step(self.cache, x_query=query.to(self.dtype)))


class ExactSequences(Sequences):
    """An exact predictor over a batch of sequences through its posterior state (float64)."""

    def __init__(self, predictor: ExactPredictor, batch: int):
        self.state = predictor.start(batch)

    def observe(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = x.double(), y.double()
        for i in range(x.shape[1]):
            self.state.observe(x[:, i], y[:, i])

    def predict(self, query: torch.Tensor) -> MixturePredictions | StudentTPredictions:
        """The state's predictives at each query, stacked: Gaussian mixtures, or Student-t's."""
        parts = [self.state.predictive(query[:, q].double()) for q in range(query.shape[1])]
        if isinstance(parts[0], StudentT):
            return StudentTPredictions(StudentT(*(torch.stack([getattr(p, f) for p in parts], 1) for f in _T_FIELDS)))
        return MixturePredictions(
            NormalMixture(*(torch.stack([getattr(p, name) for p in parts], 1) for name in _FIELDS))
        )


_FIELDS = ("log_weights", "means", "variances")
_T_FIELDS = ("dof", "loc", "scale2")


# --- quadrature -----------------------------------------------------------------------------------


def nodes(
    predictions: Predictions, pieces: int = 64, sds: float = 10.0, kinks: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss–Legendre nodes and weights over each prediction's span, mean ± ``sds`` sd, in
    ``pieces`` equal pieces further split at the density's kinks and at ``kinks`` (B, Q, K)
    (those of the densities it is compared with), so that every density compared is smooth
    on every piece; 4 nodes each: two (B, Q, G) float64 tensors."""
    mean, sd = predictions.mean.double(), predictions.variance.double().sqrt()
    lo, hi = (mean - sds * sd).unsqueeze(-1), (mean + sds * sd).unsqueeze(-1)
    edges = lo + (hi - lo) * torch.linspace(0, 1, pieces + 1, dtype=torch.float64)
    splits = [k for k in (predictions.kinks(), kinks) if k is not None]
    if splits:  # kinks outside the span become empty pieces at its ends
        splits = torch.cat([k.double().expand(*edges.shape[:-1], -1) for k in splits], -1)
        edges = torch.sort(torch.cat([edges, torch.minimum(torch.maximum(splits, lo), hi)], -1), -1).values
    left, width = edges[..., :-1, None], edges.diff(dim=-1).unsqueeze(-1)
    points = left + width * (_NODES + 1) / 2
    weights = (width * _WEIGHTS / 2).expand_as(points)
    return points.flatten(-2), weights.flatten(-2)


def kl_on_nodes(log_p: torch.Tensor, log_q: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``KL(p || q) = ∫ p (log p - log q)`` from log densities on quadrature nodes (..., G)."""
    return (weights * log_p.exp() * (log_p - log_q)).sum(-1)


# --- the read-outs --------------------------------------------------------------------------------


@dataclass
class Martingale:
    """Per prompt (B), query (Q) and horizon k (H): the drifts, their standard errors over the
    S continuations, and the KL from today's predictive to the continuations' average."""

    horizons: list[int]
    mean_drift: torch.Tensor  # (B, Q, H)
    mean_drift_se: torch.Tensor
    var_drift: torch.Tensor
    var_drift_se: torch.Tensor
    kl: torch.Tensor
    mean: torch.Tensor  # (B, Q): today's predictive mean and variance
    variance: torch.Tensor


def martingale(
    make: Callable[[int], Sequences],
    prompt_x: torch.Tensor,
    prompt_y: torch.Tensor,
    queries: torch.Tensor,
    continuations: int,
    horizons: list[int],
    generator: torch.Generator | None = None,
    pieces: int = 64,
) -> Martingale:
    """The martingale read-out of the predictor ``make(batch) -> Sequences`` at prompts x (B, n, D),
    y (B, n) and queries (B, Q, D), with ``continuations`` (S) sampled continuations per prompt
    and the predictives compared after each horizon k of ``horizons`` (sorted, each ≥ 1).

    Each continuation draws x ~ N(0, I_D) and y from the predictor's own predictive at x, pair by
    pair, from ``generator``; the read-out is the module doc's."""
    if not horizons or sorted(horizons) != list(horizons) or horizons[0] < 1:
        raise ValueError(f"horizons must be increasing positive integers, got {horizons}")
    b, n, d = prompt_x.shape
    s = continuations
    if s < 2:
        raise ValueError(f"continuations must be at least 2 (standard errors), got {s}")
    sequences = make(b * s)
    if n:
        sequences.observe(prompt_x.repeat_interleave(s, 0), prompt_y.repeat_interleave(s, 0))
    many = queries.repeat_interleave(s, 0)
    today = sequences.predict(many).rows(slice(None, None, s))  # every continuation starts at the prompt
    mean0, var0 = today.mean, today.variance
    out = {key: [] for key in ("mean_drift", "mean_drift_se", "var_drift", "var_drift_se", "kl")}
    step = 0
    for k in horizons:
        while step < k:
            x = torch.randn(b * s, 1, d, generator=generator, dtype=prompt_x.dtype)
            y = sequences.predict(x).sample(generator)
            sequences.observe(x, y)
            step += 1
        later = sequences.predict(many)
        mean, var = later.mean.reshape(b, s, -1), later.variance.reshape(b, s, -1)
        shift = mean - mean0.unsqueeze(1)
        spread = var + shift**2 - var0.unsqueeze(1)
        out["mean_drift"].append(shift.mean(1))
        out["mean_drift_se"].append(shift.std(1) / math.sqrt(s))
        out["var_drift"].append(spread.mean(1))
        out["var_drift_se"].append(spread.std(1) / math.sqrt(s))
        points, weights = nodes(today, pieces, kinks=later.grouped_kinks(s))
        out["kl"].append(kl_on_nodes(today.log_density(points), later.log_mean_density(s, points), weights))
    return Martingale(list(horizons), **{key: torch.stack(v, -1) for key, v in out.items()}, mean=mean0, variance=var0)


@dataclass
class Exchangeability:
    """Per prompt (B) and query (Q): the mean and largest KL over the permutations."""

    mean_kl: torch.Tensor  # (B, Q)
    max_kl: torch.Tensor


def exchangeability(
    make: Callable[[int], Sequences],
    prompt_x: torch.Tensor,
    prompt_y: torch.Tensor,
    queries: torch.Tensor,
    permutations: int,
    generator: torch.Generator | None = None,
    pieces: int = 64,
) -> Exchangeability:
    """``KL(q(. | prompt) || q(. | permuted prompt))`` at queries (B, Q, D) for ``permutations``
    random orders of each prompt's pairs x (B, n, D), y (B, n) (the predictor ``make(batch) ->
    Sequences``, as for :func:`martingale`)."""
    b, n, _ = prompt_x.shape
    p = permutations
    order = torch.stack([torch.randperm(n, generator=generator) for _ in range(b * p)]).reshape(b, p, n)
    order = torch.cat([torch.arange(n).expand(b, 1, n), order], 1)  # the given order first
    index = order.reshape(b * (p + 1), n)
    x = prompt_x.repeat_interleave(p + 1, 0).gather(1, index.unsqueeze(-1).expand(-1, -1, prompt_x.shape[2]))
    y = prompt_y.repeat_interleave(p + 1, 0).gather(1, index)
    sequences = make(b * (p + 1))
    sequences.observe(x, y)
    predictions = sequences.predict(queries.repeat_interleave(p + 1, 0))
    # Each permutation's KL on nodes split at the kinks of both densities: (B, P, Q) pairs.
    given = predictions.rows(torch.arange(b * (p + 1)).div(p + 1, rounding_mode="floor") * (p + 1))
    points, weights = nodes(given, pieces, kinks=predictions.kinks())
    log_all = predictions.log_density(points)
    log_given = given.log_density(points)
    kl = kl_on_nodes(log_given, log_all, weights).reshape(b, p + 1, -1)[:, 1:]  # (B, P, Q)
    return Exchangeability(mean_kl=kl.mean(1), max_kl=kl.max(1).values)


# --- coverage of the true task by resampled posteriors ---------------------------------------------


def central_probabilities(levels: list[float]) -> torch.Tensor:
    """The lower then the upper probability of each central interval, (2L,) float64."""
    probs = [(1 - level) / 2 for level in levels] + [(1 + level) / 2 for level in levels]
    return torch.tensor(probs, dtype=torch.float64)


def interval_coverage(samples: torch.Tensor, truth: torch.Tensor, levels: list[float]) -> dict[str, torch.Tensor]:
    """Central intervals of ``samples`` (T, P, D) at each level: whether each holds ``truth``
    (T, D), and its width; two (T, L, D) tensors.

    The quantile at probability p is read at the plotting position p (P + 1) of the sorted
    samples (Hyndman & Fan's type 6), interpolating between neighbours: an interval between the
    i-th and j-th of P draws holds a further draw from their law with probability (j - i) / (P + 1),
    so a sampler whose law is the truth's covers at the nominal rate at any P. The common
    ``(P - 1) p`` position narrows every interval by about two draws' share: at 100 paths it read
    the exact resampler's 90 % coverage 2 points under its value at 1000 paths (docs/design.md §13)."""
    p = samples.shape[1]
    position = ((p + 1) * central_probabilities(levels) - 1).clamp(0, p - 1)  # 0-based, (2L,)
    below = position.floor().long()
    above = (below + 1).clamp(max=p - 1)
    ordered = samples.sort(1).values
    share = (position - below).to(samples.dtype).view(1, -1, 1)
    bounds = ordered[:, below] * (1 - share) + ordered[:, above] * share  # (T, 2L, D)
    lower, upper = bounds[:, : len(levels)], bounds[:, len(levels) :]
    truth = truth.unsqueeze(1).to(samples.dtype)
    return {"covers": (lower <= truth) & (truth <= upper), "width": upper - lower}


def posterior_intervals(predictor: ExactPredictor, x: torch.Tensor, y: torch.Tensor, levels: list[float]):
    """Central intervals of each coordinate of w under ``predictor``'s exact posterior given each
    prefix x (T, n, D), y (T, n): lower and upper, (T, L, D) each. A coordinate's marginal is a
    Gaussian mixture; its quantiles are found by bisection of the mixture's cdf (to 1e-10 of
    its span), unless the predictor gives the marginals in closed form
    (:meth:`lrpfn.exact.ExactPredictor.coordinate_posterior`, a Student-t under unknown noise)."""
    marginals = predictor.coordinate_posterior(x.double(), y.double())
    if marginals is not None:
        probs = central_probabilities(levels)[: len(levels)].view(-1, 1, 1)
        lower = marginals.icdf(probs).transpose(0, 1)  # (T, L, D)
        upper = marginals.icdf(1 - probs).transpose(0, 1)
        return lower, upper
    log_weights, means, covs = predictor.posterior(x.double(), y.double())
    sds = covs.diagonal(dim1=-2, dim2=-1).clamp_min(1e-300).sqrt()  # (T, C, D)
    weights = log_weights.exp().unsqueeze(-1)  # (T, C, 1)
    probs = central_probabilities(levels)
    span = (means.abs() + 40 * sds).amax(1)  # (T, D): every component's mass inside ±span
    lo = (-span).unsqueeze(1).expand(-1, len(probs), -1).clone()
    hi = span.unsqueeze(1).expand(-1, len(probs), -1).clone()
    target = probs.view(1, -1, 1)
    means, sds, weights = means.unsqueeze(1), sds.unsqueeze(1), weights.unsqueeze(1)  # (T, 1, C, D)
    for _ in range(200):
        mid = (lo + hi) / 2
        cdf = (weights * torch.special.ndtr((mid.unsqueeze(2) - means) / sds)).sum(2)
        below = cdf < target
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        if ((hi - lo) <= 1e-13 * span.unsqueeze(1)).all():
            break
    bounds = (lo + hi) / 2
    return bounds[:, : len(levels)], bounds[:, len(levels) :]


def resampled_coverage(
    sampler: Callable,
    w: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    n_paths: int,
    path_length: int,
    levels: list[float],
    seed: int,
    chunk: int = 20_000,
    readout: Readout | None = None,
) -> dict[str, torch.Tensor]:
    """Resample the posterior of each of T tasks from its prefix x (T, n, D), y (T, n) with
    ``n_paths`` paths of ``path_length`` points and read the central intervals of ``w_hat`` at
    each level against the task's true w (T, D): ``covers`` and ``width`` (T, L, D) as
    :func:`interval_coverage`, and ``spread``, the sd of ``w_hat`` per task and coordinate
    (T, D).

    ``sampler(inputs, prefix_x, prefix_y, generator)`` is a resampler of :mod:`lrpfn.resample`
    with its predictor bound, taking one prefix per group of ``n_paths`` consecutive paths.
    The inputs come from ``seed`` alone, so two samplers given the same seed resample along the
    same x (like for like: ``w_hat`` of a finite path carries least-squares noise of its own);
    the y are drawn from a generator seeded with ``seed + 1``. Tasks go through in chunks of
    at most ``chunk`` paths. ``w_hat`` is each path's fit as the family reads it (``readout``;
    least squares on x without one, the posterior mean of w on a family's features)."""
    readout = readout or Readout()
    tasks, n, dim = x.shape
    if path_length <= n:
        raise ValueError(f"path_length {path_length} leaves no step after a prefix of {n} pairs")
    inputs = torch.randn(tasks * n_paths, path_length - n, dim, generator=torch.Generator().manual_seed(seed))
    generator = torch.Generator().manual_seed(seed + 1)
    per_chunk = max(1, chunk // n_paths)
    w_hat = []
    for start in range(0, tasks, per_chunk):
        stop = min(tasks, start + per_chunk)
        rows = slice(start * n_paths, stop * n_paths)
        result = sampler(inputs[rows], x[start:stop], y[start:stop], generator)
        w_hat.append(readout.fit(result)[0].cpu())
    samples = torch.cat(w_hat).reshape(tasks, n_paths, w.shape[-1])
    return interval_coverage(samples, w, levels) | {"spread": samples.std(1)}


# --- the read-outs of one run, as tables ----------------------------------------------------------

PREDICTORS = ("model", "reference")


def horizons(path_length: int, prompt_length: int) -> list[int]:
    """k = 1, 2, 4, ... up to the pairs a path of ``path_length`` points adds to the prompt."""
    steps = path_length - prompt_length
    return [2**i for i in range(steps.bit_length()) if 2**i <= steps]


def query_inputs(prompts: int, queries: int, dim: int, seed: int) -> torch.Tensor:
    """The fixed query inputs x* ~ N(0, I_D) of every prompt, (prompts, Q, D) float32."""
    return torch.randn(prompts, queries, dim, generator=torch.Generator().manual_seed(seed))


def _per_prompt(values: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error over prompts of values (B, Q) averaged over each prompt's queries."""
    per_prompt = values.double().mean(-1)
    se = per_prompt.std().item() / math.sqrt(len(per_prompt)) if len(per_prompt) > 1 else math.nan
    return per_prompt.mean().item(), se


def martingale_table(
    makers: dict[str, Callable[[int], Sequences]],
    eval_sets: dict[str, Batch],
    settings: dict,
    path_length: int,
    seed: int,
) -> pd.DataFrame:
    """The martingale read-out of each predictor of ``makers`` (``model``, ``reference``) at the
    first ``settings["prompts"]`` sequences of each evaluation set cut at each of
    ``settings["prompt_lengths"]``, ``settings["queries"]`` queries each, ``settings["continuations"]``
    continuations, every horizon a path of ``path_length`` points reaches (:func:`horizons`).
    One row per evaluation set, prompt length and horizon; per predictor the mean drift, the
    variance drift relative to today's variance and the KL, each averaged over the prompts'
    queries and then over prompts, with its standard error over prompts."""
    rows = []
    for tasks, batch in eval_sets.items():
        count = min(settings["prompts"], batch.x.shape[0])
        queries = query_inputs(count, settings["queries"], batch.x.shape[2], seed)
        for length in settings["prompt_lengths"]:
            ks = horizons(path_length, length)
            x, y = batch.x[:count, :length], batch.y[:count, :length]
            row = {name: {} for name in makers}
            for name, make in makers.items():
                readout = martingale(
                    make, x, y, queries, settings["continuations"], ks, torch.Generator().manual_seed(seed)
                )
                for j, k in enumerate(ks):
                    values = {
                        "mean_drift": readout.mean_drift[..., j],
                        "var_drift": readout.var_drift[..., j] / readout.variance,
                        "kl": readout.kl[..., j],
                    }
                    for key, value in values.items():
                        mean, se = _per_prompt(value)
                        row[name].setdefault(k, {})[f"{name}_{key}"] = mean
                        row[name][k][f"{name}_{key}_se"] = se
            for k in ks:
                cells = {"tasks": tasks, "prompt_length": length, "k": k}
                rows.append(cells | {key: v for name in makers for key, v in row[name][k].items()})
    return pd.DataFrame(rows)


def exchangeability_table(
    makers: dict[str, Callable[[int], Sequences]], eval_sets: dict[str, Batch], settings: dict, seed: int
) -> pd.DataFrame:
    """The exchangeability read-out of each predictor at the martingale's prompts (those of at
    least two pairs), ``settings["permutations"]`` orders each: one row per evaluation set and
    prompt length with each predictor's mean and largest KL over prompts, queries and orders."""
    rows = []
    for tasks, batch in eval_sets.items():
        count = min(settings["prompts"], batch.x.shape[0])
        queries = query_inputs(count, settings["queries"], batch.x.shape[2], seed)
        for length in (n for n in settings["prompt_lengths"] if n >= 2):
            x, y = batch.x[:count, :length], batch.y[:count, :length]
            row = {"tasks": tasks, "prompt_length": length}
            for name, make in makers.items():
                readout = exchangeability(
                    make, x, y, queries, settings["permutations"], torch.Generator().manual_seed(seed)
                )
                row[f"{name}_mean_kl"], row[f"{name}_mean_kl_se"] = _per_prompt(readout.mean_kl)
                row[f"{name}_max_kl"] = readout.max_kl.max().item()
            rows.append(row)
    return pd.DataFrame(rows)


def coverage_table(
    samplers: dict[str, Callable],
    posterior: ExactPredictor,
    batch: Batch,
    settings: dict,
    path_length: int,
    seed: int,
    readout: Readout | None = None,
) -> pd.DataFrame:
    """Coverage of the true w of the first ``settings["coverage_tasks"]`` sequences of ``batch``
    (new tasks) by the resampled posteriors of each sampler (``model``, ``reference``; the same
    inputs x for both) from prefixes of each of ``settings["coverage_prefix_lengths"]`` pairs,
    and by ``posterior``'s exact intervals. One row per prefix length, level and coordinate:
    coverage with its binomial standard error, mean width, and each sampler's mean spread.
    ``readout`` (the family's, :attr:`lrpfn.families.Family.readout`) is how ``w_hat`` is read
    off a path."""
    count = min(settings["coverage_tasks"], batch.x.shape[0])
    levels = settings["levels"]
    w = batch.w[:count].double()
    rows = []
    for n in settings["coverage_prefix_lengths"]:
        x, y = batch.x[:count, :n], batch.y[:count, :n]
        lower, upper = posterior_intervals(posterior, x, y, levels)
        truth = w.unsqueeze(1)
        results = {"posterior": {"covers": (lower <= truth) & (truth <= upper), "width": upper - lower}}
        for name, sampler in samplers.items():
            results[name] = resampled_coverage(
                sampler, w, x, y, settings["coverage_paths"], path_length, levels, seed, readout=readout
            )
        for j, level in enumerate(levels):
            for d in range(w.shape[1]):
                row = {"prefix_length": n, "level": level, "dim": d}
                for name, result in results.items():
                    p = result["covers"][:, j, d].double().mean().item()
                    row[f"{name}_coverage"] = p
                    row[f"{name}_coverage_se"] = math.sqrt(p * (1 - p) / count)
                    row[f"{name}_width"] = result["width"][:, j, d].mean().item()
                    if "spread" in result:
                        row[f"{name}_spread"] = result["spread"][:, d].mean().item()
                rows.append(row)
    return pd.DataFrame(rows)


def contraction_slope(table: pd.DataFrame, name: str) -> float:
    """The log-log slope of a sampler's mean spread against the prefix length (least squares
    over the prefix lengths of a coverage table): -1/2 for a posterior contracting as 1/sqrt(n)."""
    spread = table.groupby("prefix_length")[f"{name}_spread"].mean()
    if len(spread) < 2:
        return math.nan
    return float(np.polyfit(np.log(spread.index.to_numpy(float)), np.log(spread.to_numpy()), 1)[0])


MARTINGALE_KEYS = ["tasks", "prompt_length", "k"]


def run_premise(
    checkpoints: list, lengths: dict[int, int], reference: ExactPredictor, eval_sets: dict[str, Batch], settings: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The martingale read-out of every checkpoint (:class:`lrpfn.checkpoint.Checkpoint`; its
    horizons reach its path length ``lengths[step]``) beside ``reference``'s, computed once per
    path length, and the exchangeability read-out of the last checkpoint beside it."""
    seed, queries = settings["seed"], settings["queries"]

    def model(ckpt, capacity):
        return {"model": lambda b: ModelSequences(ckpt.model, ckpt.bar, b, capacity, queries)}

    exact = {"reference": lambda b: ExactSequences(reference, b)}
    references = {n: martingale_table(exact, eval_sets, settings, n, seed) for n in sorted(set(lengths.values()))}
    frames = []
    for ckpt in checkpoints:
        n = lengths[ckpt.step]
        table = martingale_table(model(ckpt, n), eval_sets, settings, n, seed).merge(references[n], on=MARTINGALE_KEYS)
        frames.append(table.assign(step=ckpt.step, path_length=n))
    martingales = pd.concat(frames, ignore_index=True)
    martingales = martingales[["step", "path_length", *(c for c in martingales if c not in ("step", "path_length"))]]
    final = checkpoints[-1]
    exchange = exchangeability_table(model(final, lengths[final.step]) | exact, eval_sets, settings, seed)
    exchange.insert(0, "step", final.step)
    return martingales, exchange


def premise_summary(martingale: pd.DataFrame, exchangeability: pd.DataFrame, coverage: pd.DataFrame) -> pd.DataFrame:
    """One row per run (pool size, seed) at its final checkpoint: the one-step and longest-k
    KL and variance drift (averaged over evaluation sets and prompt lengths), the
    exchangeability KL, the coverage of the central 90 % interval (or the widest level) at the
    shortest prefix with its width, and the contraction slopes — PFN beside reference."""
    rows = []
    for (pool_size, seed), runs in martingale.groupby(["pool_size", "seed"], sort=False):
        final = runs[runs.step == runs.step.max()]
        longest = final[final.k == final.groupby(["tasks", "prompt_length"]).k.transform("max")]
        row = {"pool_size": pool_size, "seed": seed, "step": int(final.step.iloc[0])}
        row["path_length"] = int(final.path_length.iloc[0])
        for name in PREDICTORS:
            row[f"{name}_one_step_kl"] = final.loc[final.k == 1, f"{name}_kl"].mean()
            row[f"{name}_longest_kl"] = longest[f"{name}_kl"].mean()
            row[f"{name}_longest_var_drift"] = longest[f"{name}_var_drift"].mean()
        exchange = exchangeability[(exchangeability.pool_size == pool_size) & (exchangeability.seed == seed)]
        for name in PREDICTORS:
            row[f"{name}_exchangeability_kl"] = exchange[f"{name}_mean_kl"].mean()
        cover = coverage[(coverage.pool_size == pool_size) & (coverage.seed == seed)] if len(coverage) else coverage
        if len(cover):
            level = 0.9 if (cover.level == 0.9).any() else cover.level.max()
            at = cover[(cover.level == level) & (cover.prefix_length == cover.prefix_length.min())]
            row["coverage_level"], row["coverage_prefix_length"] = level, int(at.prefix_length.iloc[0])
            for name in (*PREDICTORS, "posterior"):
                row[f"{name}_coverage"] = at[f"{name}_coverage"].mean()
                row[f"{name}_width"] = at[f"{name}_width"].mean()
            for name in PREDICTORS:
                row[f"{name}_contraction_slope"] = contraction_slope(cover, name)
        rows.append(row)
    return pd.DataFrame(rows)
