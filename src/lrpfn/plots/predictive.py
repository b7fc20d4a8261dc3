"""The PFN's predictive density at fixed prompts against the exact ones."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .. import roles
from ..config import TaskFamily
from . import COLORS, finish_checkpoint_grid, pool_label, style


def predictive_density_figure(
    density: pd.DataFrame, kl: pd.DataFrame, pool_size: str, seed: int, prior: TaskFamily
) -> plt.Figure:
    """Rows: prompts (evaluation set, sequence, observed pairs); columns: checkpoints. The
    PFN's bar-distribution density of y at the prompt's query beside the exact predictives
    under the Gaussian prior, (under another true prior) the true prior and (finite M) the
    pool prior, with KL(exact || PFN) in each panel."""
    style()
    exact = [name for name in ("ridge", "bayes", "dmmse") if name in roles.exact_shown(prior)]
    exact = [name for name in exact if density[f"density_{name}"].notna().any()]
    styles = {name: roles.reference_style(name, prior) for name in exact}
    keys = ["tasks", "sequence", "prompt_length"]
    prompt_list = list(
        density[keys].drop_duplicates().sort_values(keys, ascending=[False, True, True]).itertuples(index=False)
    )
    steps = sorted(density.step.unique())
    fig, axes = plt.subplots(
        len(prompt_list), len(steps), figsize=(2.8 * len(steps), 1.9 * len(prompt_list)), squeeze=False
    )
    lines = [("model", COLORS["model"], "-", "PFN"), *((name, *styles[name]) for name in exact)]
    for row, (tasks, sequence, length) in enumerate(prompt_list):
        at_prompt = density[
            (density.tasks == tasks) & (density.sequence == sequence) & (density.prompt_length == length)
        ]
        for col, step in enumerate(steps):
            ax = axes[row, col]
            curve = at_prompt[at_prompt.step == step]
            shown = curve[[f"density_{name}" for name, *_ in lines]].max(axis=1)
            visible = curve.y[shown > 1e-3 * shown.max()]
            for name, color, ls, label in lines:
                if curve[f"density_{name}"].notna().any():
                    ax.plot(curve.y, curve[f"density_{name}"], color=color, ls=ls, lw=1.1, label=label)
            ax.set_xlim(visible.min(), visible.max())
            row_kl = kl[
                (kl.tasks == tasks) & (kl.sequence == sequence) & (kl.prompt_length == length) & (kl.step == step)
            ]
            text = "\n".join(
                f"KL({roles.ROLES[name].short}) {row_kl[f'kl_{name}'].iloc[0]:.3f}"
                for name in exact
                if row_kl[f"kl_{name}"].notna().all()
            )
            ax.text(0.02, 0.97, text, transform=ax.transAxes, va="top", fontsize=6)
            if col == 0:
                where = "$T_{true}$" if tasks == "true" else "$T_M$"
                ax.set_ylabel(f"{where} #{sequence}, {length} pairs", fontsize=7)
    title = f"Predictive density of y at fixed prompts, PFN trained on M = {pool_label(pool_size)} tasks (seed {seed})"
    return finish_checkpoint_grid(fig, axes, steps, "y", title)
