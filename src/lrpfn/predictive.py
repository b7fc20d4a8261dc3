"""The PFN's predictive density of y against the exact ones, for fixed prompts.

A *prompt* is the first L pairs of an evaluation sequence and the query x at position L of
the same sequence (so the query is drawn once, with the evaluation set's seed). At a prompt
the PFN's predictive is its bar distribution (:class:`lrpfn.buckets.BarDistribution`); the
exact predictives are Gaussian mixtures over y: one component under the Gaussian prior
(ridge), one per pool task under the pool prior (dMMSE, weights = the posterior over the
pool), one per prior component under a Gaussian-mixture true prior (SPEC §10; then
'gaussian' is the Gaussian with the prior's mean and covariance, 'bayes' the true prior).
:func:`kl_divergence` integrates ``KL(exact || PFN)`` numerically: Gauss-Legendre
nodes on pieces split at every bucket border, where the bar density has its kinks, and no
wider than half the narrowest component's standard deviation, so both integrands are
smooth on each piece.

Averaged over prompts drawn from the prior (with their own y), ``KL(exact || PFN)`` is
the PFN's expected NLL gap to the exact predictive: the evaluation tables' ``nll_model -
nll_ridge`` estimates the same number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .bayes import LOG_2PI, mixture_posterior
from .buckets import BarDistribution
from .model import PFN
from .priors import GaussianMixture
from .tasks import Batch

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(16)
_CHUNK_ELEMENTS = 1 << 22  # float64 scratch per chunk of a mixture density (32 MiB)


@dataclass(frozen=True)
class Mixture:
    """A Gaussian mixture over y: normalised log weights, means and variances, (C,) float64 each."""

    log_weights: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor

    def log_density(self, y: torch.Tensor) -> torch.Tensor:
        """log p(y), elementwise; in chunks of y, so that a pool of any size fits in memory."""
        y = torch.as_tensor(y, dtype=torch.float64)
        flat = y.reshape(-1, 1)
        chunk = max(1, _CHUNK_ELEMENTS // self.means.numel())
        out = torch.cat([self._log_density(flat[i : i + chunk]) for i in range(0, max(1, len(flat)), chunk)])
        return out.reshape(y.shape)

    def _log_density(self, y: torch.Tensor) -> torch.Tensor:
        log_components = -0.5 * (LOG_2PI + torch.log(self.variances) + (y - self.means) ** 2 / self.variances)
        return torch.logsumexp(self.log_weights + log_components, dim=-1)

    def span(self, sds: float = 12.0) -> tuple[float, float]:
        """An interval holding all but a negligible part of the mass: every component with
        weight above 1e-15, ``sds`` standard deviations either side."""
        keep = self.log_weights > math.log(1e-15)
        sd = self.variances[keep].sqrt()
        return (self.means[keep] - sds * sd).min().item(), (self.means[keep] + sds * sd).max().item()

    @property
    def mean(self) -> float:
        return (self.log_weights.exp() * self.means).sum().item()

    @property
    def variance(self) -> float:
        w = self.log_weights.exp()
        return (w * (self.variances + self.means**2)).sum().item() - self.mean**2


def gaussian_predictive(x: torch.Tensor, y: torch.Tensor, query: torch.Tensor, noise_var: float) -> Mixture:
    """Posterior predictive of y at ``query`` under w ~ N(0, I) given pairs x (L, D), y (L,)."""
    x, y, query = x.double(), y.double(), query.double()
    precision = x.T @ x + noise_var * torch.eye(query.shape[0], dtype=torch.float64)
    mean = query @ torch.linalg.solve(precision, x.T @ y)
    var = noise_var + noise_var * query @ torch.linalg.solve(precision, query)
    return Mixture(torch.zeros(1, dtype=torch.float64), mean.reshape(1), var.reshape(1))


def pool_predictive(
    x: torch.Tensor, y: torch.Tensor, query: torch.Tensor, pool: torch.Tensor, noise_var: float
) -> Mixture:
    """Posterior predictive of y at ``query`` under w ~ Uniform(pool) given pairs x (L, D), y (L,)."""
    x, y, query, pool = x.double(), y.double(), query.double(), pool.double()
    log_w = -((y.unsqueeze(-1) - x @ pool.T) ** 2).sum(0) / (2 * noise_var)
    return Mixture(
        torch.log_softmax(log_w, dim=0),
        pool @ query,
        torch.full((pool.shape[0],), float(noise_var), dtype=torch.float64),
    )


def prior_predictive(
    x: torch.Tensor, y: torch.Tensor, query: torch.Tensor, prior: GaussianMixture, noise_var: float
) -> Mixture:
    """Posterior predictive of y at ``query`` under a Gaussian-mixture prior given pairs x (L, D),
    y (L,): per component ``N(query·mu_c, query^T S_c query + noise_var)``, posterior weights."""
    log_w, means, covs = mixture_posterior(x.unsqueeze(0), y.unsqueeze(0), prior, noise_var)
    query = query.double()
    return Mixture(log_w[0], means[0] @ query, noise_var + torch.einsum("i,cij,j->c", query, covs[0], query))


def quadrature(bar: BarDistribution, exact: Mixture) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights for integrals against ``exact`` over its span, split at the bucket
    borders and into pieces no wider than half the narrowest component's sd."""
    lo, hi = exact.span()
    step = 0.5 * exact.variances.min().sqrt().item()
    borders = bar.borders.double().numpy()
    grid = np.linspace(lo, hi, max(2, math.ceil((hi - lo) / step) + 1))
    edges = np.unique(np.concatenate([grid, borders[(borders > lo) & (borders < hi)]]))
    left, width = edges[:-1, None], np.diff(edges)[:, None]
    nodes = left + width * (_NODES + 1) / 2
    weights = width * _WEIGHTS / 2
    return torch.from_numpy(nodes.ravel()), torch.from_numpy(weights.ravel())


def kl_divergence(exact: Mixture, bar: BarDistribution, logits: torch.Tensor) -> float:
    """``KL(exact || bar(logits))`` in nats, by quadrature (see the module doc)."""
    nodes, weights = quadrature(bar, exact)
    return _kl(nodes, weights, exact.log_density(nodes), bar, logits)


def _kl(nodes: torch.Tensor, weights: torch.Tensor, log_p: torch.Tensor, bar: BarDistribution, logits) -> float:
    """The quadrature of ``KL(exact || bar(logits))`` given the exact log density at its nodes."""
    log_q = bar.log_prob(logits.double(), nodes)
    return (weights * log_p.exp() * (log_p - log_q)).sum().item()


def discretised_logits(exact: Mixture, bar: BarDistribution) -> torch.Tensor:
    """The bar distribution closest to ``exact`` in KL: each bucket gets ``exact``'s mass in it."""
    b = bar.borders.double()
    inner = b[1:-1]
    cdf = exact.log_weights.exp() * torch.special.ndtr((inner.unsqueeze(-1) - exact.means) / exact.variances.sqrt())
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64), cdf.sum(-1), torch.ones(1, dtype=torch.float64)])
    return torch.log(cdf.diff().clamp_min(1e-300))


@dataclass(frozen=True)
class Prompt:
    tasks: str  # evaluation set: 'true' or 'pool'
    sequence: int
    length: int  # observed pairs L; the query is the sequence's x at position L
    x: torch.Tensor  # (L, D)
    y: torch.Tensor  # (L,)
    query: torch.Tensor  # (D,)


def prompts(eval_sets: dict[str, Batch], n_prompts: int, lengths: list[int]) -> list[Prompt]:
    """The first ``n_prompts`` sequences of each evaluation set, cut at each length."""
    out = []
    for tasks, batch in eval_sets.items():
        for sequence in range(min(n_prompts, batch.x.shape[0])):
            for length in lengths:
                x, y = batch.x[sequence], batch.y[sequence]
                out.append(Prompt(tasks, sequence, length, x[:length], y[:length], x[length]))
    return out


def exact_predictives(
    prompt: Prompt, pool: torch.Tensor | None, noise_var: float, prior: GaussianMixture | None = None
) -> dict[str, Mixture]:
    """The exact predictives at a prompt: 'gaussian' always (N(0, I), or the moment-matched
    Gaussian of a true ``prior``), 'bayes' under a true ``prior``, 'pool' for a finite pool."""
    if prior is None:
        out = {"gaussian": gaussian_predictive(prompt.x, prompt.y, prompt.query, noise_var)}
    else:
        out = {
            name: prior_predictive(prompt.x, prompt.y, prompt.query, p, noise_var)
            for name, p in (("gaussian", prior.moment_matched()), ("bayes", prior))
        }
    if pool is not None:
        out["pool"] = pool_predictive(prompt.x, prompt.y, prompt.query, pool, noise_var)
    return out


@torch.no_grad()
def prompt_logits(model: PFN, prompt: Prompt) -> torch.Tensor:
    """The PFN's bucket logits for y at the prompt's query, (n_buckets,)."""
    x = torch.cat([prompt.x, prompt.query.unsqueeze(0)]).unsqueeze(0)
    y = torch.cat([prompt.y, torch.zeros(1, dtype=prompt.y.dtype)]).unsqueeze(0)  # the query's y is never read
    return model(x.float(), y.float())[0, -1]


def density_grid(bar: BarDistribution, logits: list[torch.Tensor], exact: list[Mixture], n: int = 2001) -> torch.Tensor:
    """A y grid for plotting: the exact predictives' spans and the PFN's central 1 - 2e-5."""
    lo, hi = zip(*(m.span(sds=6.0) for m in exact), strict=True)
    q = torch.tensor([1e-5, 1 - 1e-5], dtype=torch.float64)
    model_range = torch.stack([bar.icdf(lg.double(), q) for lg in logits])
    return torch.linspace(min(*lo, model_range.min().item()), max(*hi, model_range.max().item()), n)


def compare(
    models: dict[int, PFN],
    bar: BarDistribution,
    all_prompts: list[Prompt],
    pool: torch.Tensor | None,
    noise_var: float,
    prior: GaussianMixture | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per prompt and checkpoint (``models``: step -> PFN of one run, sharing ``bar``): the KL
    divergence from each exact predictive to the PFN's and the moments of each; and the
    densities of all of them on one grid per prompt (for the figure). The exact side — the
    mixtures, their quadrature nodes and densities — is computed once per prompt."""
    rows, curves = [], []
    for prompt in all_prompts:
        key = {"tasks": prompt.tasks, "sequence": prompt.sequence, "prompt_length": prompt.length}
        exact = exact_predictives(prompt, pool, noise_var, prior)
        on_nodes = {}
        for name, mixture in exact.items():
            nodes, weights = quadrature(bar, mixture)
            on_nodes[name] = (nodes, weights, mixture.log_density(nodes))
        logits = {step: prompt_logits(model.eval(), prompt).double() for step, model in models.items()}
        grid = density_grid(bar, list(logits.values()), list(exact.values()))
        exact_density = {f"density_{name}": m.log_density(grid).exp().numpy() for name, m in exact.items()}
        for step, step_logits in logits.items():
            row = (
                {"step": step}
                | key
                | {
                    "query_norm": prompt.query.double().norm().item(),
                    "model_mean": bar.mean(step_logits).item(),
                    "model_sd": bar.variance(step_logits).sqrt().item(),
                }
            )
            for name, mixture in exact.items():
                row[f"kl_{name}"] = _kl(*on_nodes[name], bar, step_logits)
                row[f"mean_{name}"], row[f"sd_{name}"] = mixture.mean, math.sqrt(mixture.variance)
            rows.append(row)
            model_density = bar.log_prob(step_logits, grid).exp().numpy()
            curves.append(
                pd.DataFrame({"y": grid.numpy(), "density_model": model_density} | exact_density).assign(
                    step=step, **key
                )
            )
    table = pd.DataFrame(rows)
    if pool is None:
        table = table.assign(kl_pool=np.nan, mean_pool=np.nan, sd_pool=np.nan)
    density = pd.concat(curves, ignore_index=True)
    if pool is None:
        density["density_pool"] = np.nan
    keys = ["step", "tasks", "sequence", "prompt_length"]
    return table, density[[*keys, *(c for c in density.columns if c not in keys)]]
