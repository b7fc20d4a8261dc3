"""The PFN's predictive density of y against the exact ones, for fixed prompts.

A *prompt* is the first L pairs of an evaluation sequence and the query x at position L of
the same sequence (so the query is drawn once, with the evaluation set's seed). At a prompt
the PFN's predictive is its output head's distribution (:mod:`lrpfn.buckets`); an
exact predictor's (:meth:`lrpfn.exact.ExactPredictor.prompt_predictive`) is, for those of
this package, a Gaussian mixture over y: one component under a Gaussian prior (ridge), one
per pool task (dMMSE), one per prior component under a Gaussian-mixture prior.
:func:`kl_divergence` integrates ``KL(exact || PFN)`` numerically: Gauss-Legendre nodes on
pieces split at every bucket border in y (the head's ``kinks``), where the PFN's density has
its kinks, and no wider than
half the exact density's resolution (its narrowest component's sd), so both integrands are
smooth on each piece.

Averaged over prompts drawn from the prior (with their own y), ``KL(exact || PFN)`` is
the PFN's expected NLL gap to the exact predictive: the evaluation tables' ``nll_model -
nll_bayes`` estimates the same number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .bayes import NormalMixture
from .buckets import BarDistribution
from .exact import ExactPredictor
from .model import PFN
from .tasks import Batch

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(16)


def quadrature(exact: NormalMixture, kinks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights for integrals against ``exact`` over its span, split at ``kinks`` (the
    PFN's bucket borders in y, any shape) and into pieces no wider than half its resolution
    (the narrowest component's sd)."""
    lo, hi = exact.span()
    step = 0.5 * exact.resolution
    kinks = kinks.double().cpu().numpy().ravel()
    grid = np.linspace(lo, hi, max(2, math.ceil((hi - lo) / step) + 1))
    edges = np.unique(np.concatenate([grid, kinks[(kinks > lo) & (kinks < hi)]]))
    left, width = edges[:-1, None], np.diff(edges)[:, None]
    nodes = left + width * (_NODES + 1) / 2
    weights = width * _WEIGHTS / 2
    return torch.from_numpy(nodes.ravel()), torch.from_numpy(weights.ravel())


def kl_divergence(exact: NormalMixture, bar: BarDistribution, outputs: torch.Tensor) -> float:
    """``KL(exact || PFN)`` in nats for one prediction's ``outputs`` of the head ``bar``, by
    quadrature (see the module doc)."""
    nodes, weights = quadrature(exact, bar.kinks(outputs.double()))
    return _kl(nodes, weights, exact.log_density(nodes), bar, outputs)


def _kl(nodes: torch.Tensor, weights: torch.Tensor, log_p: torch.Tensor, bar: BarDistribution, outputs) -> float:
    """The quadrature of ``KL(exact || bar(outputs))`` given the exact log density at its nodes."""
    log_q = bar.log_prob(outputs.double(), nodes)
    return (weights * log_p.exp() * (log_p - log_q)).sum().item()


def head_floor(bar: BarDistribution, predictor: ExactPredictor, x: torch.Tensor, y: torch.Tensor):
    """The head's floor at every position of sequences x (B, K, D), y (B, K): the predictive
    mean and the NLL of the observed y under the head's KL-best approximation of
    ``predictor``'s exact predictive (:meth:`lrpfn.buckets.BarDistribution.fit`) — where a PFN
    trained to the NLL optimum with this head is headed. Two (B, K) float64 tensors."""
    x, y = x.double(), y.double()
    state = predictor.start(x.shape[0], x.device)
    mean, nll = torch.empty_like(y), torch.empty_like(y)
    for i in range(x.shape[1]):
        outputs = bar.fit(state.predictive(x[:, i]))
        mean[:, i], nll[:, i] = bar.mean(outputs), -bar.log_prob(outputs, y[:, i])
        state.observe(x[:, i], y[:, i])
    return mean, nll


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


def exact_predictives(prompt: Prompt, predictors: dict[str, ExactPredictor | None]) -> dict[str, NormalMixture]:
    """The exact predictives at a prompt, by role (those with a predictor), each distinct
    predictor's computed once."""
    computed: dict[int, NormalMixture] = {}
    for predictor in predictors.values():
        if predictor is not None and id(predictor) not in computed:
            computed[id(predictor)] = predictor.prompt_predictive(prompt.x, prompt.y, prompt.query)
    return {key: computed[id(p)] for key, p in predictors.items() if p is not None}


@torch.no_grad()
def prompt_logits(model: PFN, prompt: Prompt) -> torch.Tensor:
    """The PFN's outputs for y at the prompt's query, (n_outputs,)."""
    x = torch.cat([prompt.x, prompt.query.unsqueeze(0)]).unsqueeze(0)
    y = torch.cat([prompt.y, torch.zeros(1, dtype=prompt.y.dtype)]).unsqueeze(0)  # the query's y is never read
    return model(x.float(), y.float())[0, -1]


def density_grid(
    bar: BarDistribution, logits: list[torch.Tensor], exact: list[NormalMixture], n: int = 2001
) -> torch.Tensor:
    """A y grid for plotting: the exact predictives' spans and the PFN's central 1 - 2e-5."""
    lo, hi = zip(*(m.span(sds=6.0) for m in exact), strict=True)
    q = torch.tensor([1e-5, 1 - 1e-5], dtype=torch.float64)
    model_range = torch.stack([bar.icdf(lg.double(), q) for lg in logits])
    return torch.linspace(min(*lo, model_range.min().item()), max(*hi, model_range.max().item()), n)


def compare(
    models: dict[int, PFN],
    bar: BarDistribution,
    all_prompts: list[Prompt],
    predictors: dict[str, ExactPredictor | None],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per prompt and checkpoint (``models``: step -> PFN of one run, sharing the head ``bar``): the KL
    divergence from each exact predictive (by role, :func:`lrpfn.exact.references`, or any
    predictors) to the PFN's and the moments of each; and the densities of all of them on one
    grid per prompt (for the figure). A role without a predictor has NaN columns. The exact
    side — the predictives, their quadrature nodes (split at every checkpoint's kinks) and
    densities — is computed once per prompt."""
    rows, curves = [], []
    for prompt in all_prompts:
        key = {"tasks": prompt.tasks, "sequence": prompt.sequence, "prompt_length": prompt.length}
        exact = exact_predictives(prompt, predictors)
        logits = {step: prompt_logits(model.eval(), prompt).double() for step, model in models.items()}
        kinks = torch.stack([bar.kinks(step_logits) for step_logits in logits.values()])
        on_nodes = {}
        for name, mixture in exact.items():
            nodes, weights = quadrature(mixture, kinks)
            on_nodes[name] = (nodes, weights, mixture.log_density(nodes))
        grid = density_grid(bar, list(logits.values()), list(exact.values()))
        exact_density = {name: m.log_density(grid).exp().numpy() for name, m in exact.items()}
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
            for name in predictors:
                mixture = exact.get(name)
                row[f"kl_{name}"] = math.nan if mixture is None else _kl(*on_nodes[name], bar, step_logits)
                row[f"mean_{name}"] = math.nan if mixture is None else float(mixture.mean)
                row[f"sd_{name}"] = math.nan if mixture is None else math.sqrt(float(mixture.variance))
            rows.append(row)
            model_density = bar.log_prob(step_logits, grid).exp().numpy()
            densities = {f"density_{name}": exact_density.get(name, np.nan) for name in predictors}
            curves.append(
                pd.DataFrame({"y": grid.numpy(), "density_model": model_density} | densities).assign(step=step, **key)
            )
    keys = ["step", "tasks", "sequence", "prompt_length"]
    density = pd.concat(curves, ignore_index=True)
    return pd.DataFrame(rows), density[[*keys, *(c for c in density.columns if c not in keys)]]
