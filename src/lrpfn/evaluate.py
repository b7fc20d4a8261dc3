"""Evaluation of a model against the exact predictors of its run (docs/design.md §6).

Per position i, over a fixed evaluation set, for the model and for every exact predictor
(keyed by role, :func:`lrpfn.exact.references`, or any :class:`lrpfn.exact.ExactPredictor`):

* ``mse_<key>``: squared error of the predictive mean against the noiseless target
  ``w·phi(x_i)``, divided by the family's signal variance (D for linear tasks: the paper's
  "MSE/D"; :attr:`lrpfn.families.Family.normaliser`);
* ``delta_<key>``: mean squared difference of the model's prediction and the predictor's,
  divided alike (exact predictors only);
* ``nll_<key>``: NLL (nats) of the observed ``y_i``.

A role without a predictor (``dmmse`` on the true prior) has NaN columns, so tables keep
their columns whatever the run; a predictor serving two roles is computed once.

Beside them the head's floor (``mse_floor``, ``nll_floor``; :func:`lrpfn.predictive.head_floor`):
the true prior's exact predictive (role ``bayes``) turned into its KL-best approximation by
the run's own head (:meth:`lrpfn.buckets.BarDistribution.fit`), scored like the model. Its MSE
is where an NLL-trained PFN with this head is headed, not a bound.
"""

from __future__ import annotations

import pandas as pd
import torch

from .buckets import BarDistribution
from .exact import ExactPredictor
from .model import PFN
from .predictive import head_floor
from .roles import EXACT
from .tasks import Batch


def metric_names(keys, floor: bool = True) -> list[str]:
    """The metric columns of an evaluation against the exact predictors ``keys`` (and the
    head's floor), in order."""
    keys = list(keys)
    floors = ["floor"] if floor else []
    return [
        "mse_model", *(f"mse_{k}" for k in [*keys, *floors]),
        *(f"delta_{k}" for k in keys),
        "nll_model", *(f"nll_{k}" for k in [*keys, *floors]),
    ]  # fmt: skip


METRICS = metric_names(EXACT)  # the columns of an evaluation against a run's references


def metric_columns(table: pd.DataFrame) -> list[str]:
    """The metric columns of an evaluation table: :data:`METRICS`, then those of any extra
    reference it was scored against (the exact GP beside a family on features,
    :meth:`lrpfn.families.Family.extra_references`)."""
    extra = [c for c in table.columns if c.split("_")[0] in ("mse", "delta", "nll") and not c.endswith("_se")]
    return METRICS + [c for c in extra if c not in METRICS]


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
    predictors: dict[str, ExactPredictor | None],
    normaliser: float | None = None,
) -> dict[str, torch.Tensor]:
    """Every metric for every (sequence, position), float64 tensors of shape (B, K); squared
    errors divided by ``normaliser`` (default D, the dimension of x)."""
    dim = batch.x.shape[-1] if normaliser is None else normaliser
    x, y, target = batch.x.double(), batch.y.double(), batch.target.double()
    model_mean, model_nll = (v.double() for v in model_predictive(model, bar, batch.x, batch.y))
    out = {"mse_model": (model_mean - target) ** 2 / dim, "nll_model": model_nll}
    scored: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for key, predictor in predictors.items():
        if predictor is None:
            mean = nll = torch.full_like(target, float("nan"))
        else:
            if id(predictor) not in scored:
                scored[id(predictor)] = predictor.score_sequences(x, y)
            mean, nll = scored[id(predictor)]
        out |= {
            f"mse_{key}": (mean - target) ** 2 / dim,
            f"delta_{key}": (model_mean - mean) ** 2 / dim,
            f"nll_{key}": nll,
        }
    floor = predictors.get("bayes") is not None
    if floor:
        mean, nll = head_floor(bar, predictors["bayes"], x, y)
        out |= {"mse_floor": (mean - target) ** 2 / dim, "nll_floor": nll}
    return {name: out[name] for name in metric_names(predictors, floor)}


def evaluate_checkpoint(
    model: PFN,
    bar: BarDistribution,
    eval_sets: dict[str, Batch],
    predictors: dict[str, ExactPredictor | None],
    normaliser: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every metric on each named evaluation set, as two tables with a ``tasks`` column:

    * per position: the mean over sequences and its standard error (``<metric>_se``);
    * per sequence: the mean over positions — what a paired comparison of two predictors
      over the same sequences needs (the closer-to-Bayes threshold, :mod:`lrpfn.sweep`).
    """
    positions, sequences = [], []
    for tasks, batch in eval_sets.items():
        values = per_sequence_metrics(model, bar, batch, predictors, normaliser)
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
    model: PFN,
    bar: BarDistribution,
    batch: Batch,
    predictors: dict[str, ExactPredictor | None],
    normaliser: float | None = None,
) -> pd.DataFrame:
    """One row per position: the mean of each metric over sequences and its standard error."""
    return position_table(per_sequence_metrics(model, bar, batch, predictors, normaliser))
