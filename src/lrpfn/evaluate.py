"""Evaluation of a model against the exact Bayes references (SPEC §6).

Per position i, over a fixed evaluation set:

* ``mse_model``, ``mse_dmmse``, ``mse_ridge``: squared error of the predictive mean against
  the noiseless target ``w·x_i``, divided by D (the paper's "MSE/D");
* ``delta_dmmse``, ``delta_ridge``: mean squared difference of the model's prediction and
  the dMMSE / ridge prediction, divided by D;
* ``nll_model``, ``nll_dmmse``, ``nll_ridge``: NLL (nats) of the observed ``y_i``.

dMMSE columns use the run's own pool; they are NaN for a run on the true prior.

Under a true prior other than ``N(0, I)`` (SPEC §10, ``prior`` given), ``*_ridge`` is the
moment-matched Gaussian baseline — the Bayes predictor of the Gaussian with the prior's
mean and covariance, the best predictor linear in the data — and ``mse_bayes``,
``delta_bayes``, ``nll_bayes`` add the true prior's exact Bayes predictor. Under the
default prior the two coincide and the tables keep their original columns.
"""

from __future__ import annotations

import pandas as pd
import torch

from .bayes import dmmse_nll, dmmse_predictive, mixture_predictive, ridge_nll, ridge_predictive
from .buckets import BarDistribution
from .model import PFN
from .priors import GaussianMixture
from .tasks import Batch

METRICS = [
    "mse_model", "mse_dmmse", "mse_ridge",
    "delta_dmmse", "delta_ridge",
    "nll_model", "nll_dmmse", "nll_ridge",
]  # fmt: skip
BAYES_METRICS = ["mse_bayes", "delta_bayes", "nll_bayes"]  # under a prior other than N(0, I)


@torch.no_grad()
def model_predictive(model: PFN, bar: BarDistribution, x: torch.Tensor, y: torch.Tensor, chunk: int = 1024):
    """Model predictive mean and NLL of y at every position, (B, K) each, on x's device."""
    device = next(model.parameters()).device
    means, nlls = [], []
    for start in range(0, x.shape[0], chunk):
        xb, yb = x[start : start + chunk].to(device), y[start : start + chunk].to(device)
        logits = model(xb, yb)
        means.append(bar.mean(logits).cpu())
        nlls.append(-bar.log_prob(logits, yb).cpu())
    return torch.cat(means), torch.cat(nlls)


def per_sequence_metrics(
    model: PFN,
    bar: BarDistribution,
    batch: Batch,
    pool: torch.Tensor | None,
    noise_var: float,
    prior: GaussianMixture | None = None,
) -> dict[str, torch.Tensor]:
    """Every metric for every (sequence, position), float64 tensors of shape (B, K)."""
    dim = batch.x.shape[-1]
    x, y, target = batch.x.double(), batch.y.double(), batch.target.double()
    model_mean, model_nll = model_predictive(model, bar, batch.x, batch.y)
    model_mean, model_nll = model_mean.double(), model_nll.double()
    if prior is None:
        ridge_mean, ridge_nll_ = ridge_predictive(x, y, noise_var)[0], ridge_nll(x, y, noise_var)
    else:
        ridge_mean, _, ridge_nll_ = mixture_predictive(x, y, prior.moment_matched(), noise_var)
    out = {
        "mse_model": (model_mean - target) ** 2 / dim,
        "mse_ridge": (ridge_mean - target) ** 2 / dim,
        "delta_ridge": (model_mean - ridge_mean) ** 2 / dim,
        "nll_model": model_nll,
        "nll_ridge": ridge_nll_,
    }
    if pool is None:
        nan = torch.full_like(target, float("nan"))
        out.update(mse_dmmse=nan, delta_dmmse=nan, nll_dmmse=nan)
    else:
        dmmse_mean = dmmse_predictive(x, y, pool, noise_var)
        out.update(
            mse_dmmse=(dmmse_mean - target) ** 2 / dim,
            delta_dmmse=(model_mean - dmmse_mean) ** 2 / dim,
            nll_dmmse=dmmse_nll(x, y, pool, noise_var),
        )
    if prior is None:
        return {name: out[name] for name in METRICS}
    bayes_mean, _, bayes_nll = mixture_predictive(x, y, prior, noise_var)
    out.update(
        mse_bayes=(bayes_mean - target) ** 2 / dim,
        delta_bayes=(model_mean - bayes_mean) ** 2 / dim,
        nll_bayes=bayes_nll,
    )
    return {name: out[name] for name in METRICS + BAYES_METRICS}


def evaluate_checkpoint(
    model: PFN,
    bar: BarDistribution,
    eval_sets: dict[str, Batch],
    pool: torch.Tensor | None,
    noise_var: float,
    prior: GaussianMixture | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every metric on each named evaluation set, as two tables with a ``tasks`` column:

    * per position: the mean over sequences and its standard error (``<metric>_se``);
    * per sequence: the mean over positions — what a paired comparison of two predictors
      over the same sequences needs (the closer-to-ridge threshold, :mod:`lrpfn.sweep`).
    """
    positions, sequences = [], []
    for tasks, batch in eval_sets.items():
        values = per_sequence_metrics(model, bar, batch, pool, noise_var, prior)
        positions.append(position_table(values).assign(tasks=tasks))
        sequences.append(sequence_table(values).assign(tasks=tasks))
    return _tasks_first(positions), _tasks_first(sequences)


def _tasks_first(tables: list[pd.DataFrame]) -> pd.DataFrame:
    table = pd.concat(tables, ignore_index=True)
    return table[["tasks", *(c for c in table.columns if c != "tasks")]]


def position_table(values: dict[str, torch.Tensor]) -> pd.DataFrame:
    """One row per position: the mean of each (B, K) metric over sequences and its standard error."""
    n, k = next(iter(values.values())).shape
    frame = pd.DataFrame({"position": range(k)})
    for name, v in values.items():
        frame[name] = v.mean(0).numpy()
        frame[f"{name}_se"] = (v.std(0) / n**0.5).numpy()
    return frame


def sequence_table(values: dict[str, torch.Tensor]) -> pd.DataFrame:
    """One row per sequence: each (B, K) metric averaged over positions."""
    n, _ = next(iter(values.values())).shape
    frame = pd.DataFrame({"sequence": range(n)})
    for name, v in values.items():
        frame[name] = v.mean(1).numpy()
    return frame


def position_metrics(
    model: PFN, bar: BarDistribution, batch: Batch, pool: torch.Tensor | None, noise_var: float
) -> pd.DataFrame:
    """One row per position: the mean of each metric over sequences and its standard error."""
    return position_table(per_sequence_metrics(model, bar, batch, pool, noise_var))
