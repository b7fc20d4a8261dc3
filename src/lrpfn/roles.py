"""The roles of the predictors a run is compared with: one key, one label, one colour each.

Tables name predictors by role — the column suffix ``mse_<role>``, the ``reference`` column
of the resampling tables — so their columns stay the same whatever the true prior:

* ``model`` — the PFN;
* ``dmmse`` — Bayes under the run's pool (uniform over M tasks);
* ``ridge`` — Bayes under the Gaussian with the true prior's mean and covariance: the best
  predictor linear in the data, the misspecified baseline;
* ``bayes`` — Bayes under the true prior: the generalising solution;
* ``floor`` — not a predictor of its own: the true prior's Bayes predictive turned into its
  KL-best distribution on the run's output head (the head's floor).

Under the default prior N(0, I) ridge *is* the true prior's Bayes predictor; the two roles
then share one predictor (computed once) and figures draw it once, as ridge. Labels follow
the task family (:class:`lrpfn.config.TaskFamily`: its prior's, noise's or features' title in
the schema). Torch-free, like :mod:`lrpfn.config`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import TaskFamily


@dataclass(frozen=True)
class Role:
    key: str
    colour: str
    linestyle: str
    short: str  # a panel's annotation, e.g. "KL(Bayes)"


ROLES = {
    "model": Role("model", "#1f4e99", "-", "PFN"),
    "dmmse": Role("dmmse", "#d95f02", ":", "dMMSE"),
    "ridge": Role("ridge", "#1b9e77", "--", "ridge"),
    "bayes": Role("bayes", "#7b3294", "-.", "Bayes"),
    "floor": Role("floor", "#7f7f7f", ":", "floor"),
}
EXACT = ("ridge", "bayes", "dmmse")  # the exact predictors' roles, in table order


def shown(prior: TaskFamily) -> list[str]:
    """The roles a figure draws: one line for ridge and Bayes when they coincide."""
    return ["model", "dmmse", "ridge"] if prior.is_default else ["model", "dmmse", "ridge", "bayes"]


def exact_shown(prior: TaskFamily) -> list[str]:
    return [role for role in shown(prior) if role != "model"]


def label(role: str, prior: TaskFamily) -> str:
    """How figures name a role's predictor under ``prior``."""
    if role == "bayes":
        return "ridge" if prior.is_default else f"Bayes ({prior.title})"
    if role == "ridge" and not prior.is_default:
        return prior.ridge_labels[0]
    return {"model": "PFN", "dmmse": "dMMSE", "ridge": "ridge", "floor": "head's floor (Bayes, KL-best bars)"}[role]


def reference_label(role: str, prior: TaskFamily) -> str:
    """How figures name an exact reference resampler or predictive of a role."""
    if role == "dmmse":
        return "exact, pool prior"
    if role == "ridge" and not prior.is_default:
        return prior.ridge_labels[1]
    if role == "bayes" and not prior.is_default:
        return f"exact, {prior.title} prior"
    return "exact, Gaussian prior"


def style(role: str, prior: TaskFamily) -> tuple[str, str, str]:
    """(colour, line style, label) of a role's predictor."""
    return ROLES[role].colour, ROLES[role].linestyle, label(role, prior)


def reference_style(role: str, prior: TaskFamily) -> tuple[str, str, str]:
    """(colour, line style, label) of a role's exact reference; under N(0, I) Bayes looks like ridge."""
    drawn = "ridge" if role == "bayes" and prior.is_default else role
    return ROLES[drawn].colour, ROLES[drawn].linestyle, reference_label(role, prior)
