"""Per-dimension comparison of resampled ``w_hat`` against references (docs/design.md §7).

* :func:`against_samples` — another sample set (an exact reference resampler): mean, std,
  std ratio, two-sample KS statistic and p-value, energy distance;
* :func:`nearest_atom_distance` — how far each ``w_hat`` lies from its nearest pool task;
* :func:`energy_distance`, :class:`EnergyReference` — the energy distance of two sample sets in any dimension (functions
  on a grid of inputs, for a family on features).

Samples are compared with samples of the identical procedure, never with the exact
posterior itself: ``w_hat`` carries the least-squares noise of a finite path, which only a
reference resampler shares.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def against_samples(samples: np.ndarray, reference: np.ndarray) -> pd.DataFrame:
    """samples (B, D), reference (B', D) -> one row per dimension."""
    rows = []
    for d in range(samples.shape[1]):
        s, r = samples[:, d], reference[:, d]
        ks = stats.ks_2samp(s, r)
        rows.append(
            {
                "dim": d,
                "mean": s.mean(),
                "std": s.std(ddof=1),
                "ref_mean": r.mean(),
                "ref_std": r.std(ddof=1),
                "std_ratio": s.std(ddof=1) / r.std(ddof=1),
                "ks": ks.statistic,
                "ks_pvalue": ks.pvalue,
                "energy": stats.energy_distance(s, r),
            }
        )
    return pd.DataFrame(rows)


def energy_distance(samples: np.ndarray, reference: np.ndarray) -> float:
    """The energy distance of samples (B, G) and reference (B', G) in the RMS norm over the G
    coordinates, ``sqrt(2 E|X - Y| - E|X - X'| - E|Y - Y'|)`` over the empirical distributions (in
    one dimension :func:`scipy.stats.energy_distance`'s). Against one reference many times,
    :class:`EnergyReference` computes its own term once."""
    return EnergyReference(reference).distance(samples)


class EnergyReference:
    """A reference sample (B', G) for :func:`energy_distance`, its ``E|Y - Y'|`` computed once."""

    def __init__(self, reference: np.ndarray):
        self.points = _tensor(reference)
        self.spread = _mean_distance(self.points, self.points)

    def distance(self, samples: np.ndarray) -> float:
        a = _tensor(samples)
        energy = 2 * _mean_distance(a, self.points) - _mean_distance(a, a) - self.spread
        return max(0.0, energy / self.points.shape[1] ** 0.5) ** 0.5


def _tensor(values: np.ndarray):
    import torch  # the pairwise distances of a few thousand samples: cdist in blocks

    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))


def _mean_distance(u, v, rows: int = 512) -> float:
    """The mean Euclidean distance over all pairs of rows of u and v, ``rows`` rows of u at a time
    (a few thousand squared distances at once are bound by memory, not arithmetic)."""
    import torch

    total = sum(torch.cdist(u[i : i + rows], v).sum().item() for i in range(0, u.shape[0], rows))
    return total / (u.shape[0] * v.shape[0])


def nearest_atom_distance(samples: np.ndarray, atoms: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Euclidean distance of each sample to its nearest atom, (B,)."""
    out = np.empty(samples.shape[0])
    for start in range(0, samples.shape[0], chunk):
        s = samples[start : start + chunk]
        best = np.full(s.shape[0], np.inf)
        for a in range(0, atoms.shape[0], chunk):
            block = atoms[a : a + chunk]
            d2 = (s**2).sum(1)[:, None] - 2 * s @ block.T + (block**2).sum(1)[None, :]
            best = np.minimum(best, d2.min(1))
        out[start : start + chunk] = np.sqrt(np.maximum(best, 0))
    return out
