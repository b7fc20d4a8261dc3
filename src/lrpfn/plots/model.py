"""The model's attention mask."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

from ..model import interleaved_mask
from . import style


def mask_figure(n_pairs: int = 4) -> plt.Figure:
    """The attention mask in interleaved order; query rows (where the loss is taken) darker."""
    style()
    mask = interleaved_mask(n_pairs).numpy().astype(int)
    shade = mask.copy()
    shade[0::2] *= 2  # query rows: q_i sits at even indices
    labels = [f"${r}_{{{i + 1}}}$" for i in range(n_pairs) for r in ("q", "p")]
    fig, ax = plt.subplots(figsize=(3.6, 3.6))
    ax.imshow(shade, cmap=ListedColormap(["#ffffff", "#9ecae1", "#08519c"]), vmin=0, vmax=2)
    ax.set_xticks(range(2 * n_pairs), labels)
    ax.set_yticks(range(2 * n_pairs), labels)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_xticks(np.arange(-0.5, 2 * n_pairs), minor=True)
    ax.set_yticks(np.arange(-0.5, 2 * n_pairs), minor=True)
    ax.grid(which="minor", color="#cccccc", linewidth=0.5)
    ax.grid(which="major", visible=False)
    ax.set_title("Autoregressive PFN mask\n(dark rows: query tokens, where the loss is taken)", fontsize=9)
    return fig
