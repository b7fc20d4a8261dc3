"""Per-dimension comparison of resampled ``w_hat`` against references (SPEC §7).

* :func:`against_samples` — another sample set (the exact reference resampler): mean, std,
  std ratio, two-sample KS statistic and p-value, energy distance;
* :func:`against_gaussian` — the exact Gaussian posterior ``N(mu_n, S_n)`` (or the prior
  ``N(0, I)``), the ridge reference: one-sample KS against its marginal, energy distance;
* :func:`against_atoms` — the exact pool posterior, a weighted set of atoms: energy distance.
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


def against_gaussian(samples: np.ndarray, mean: np.ndarray, cov: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """Each marginal against N(mean_d, cov_dd): one-sample KS, and the energy distance to as
    many exact draws (seeded) as there are samples."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(samples.shape[1]):
        sd = float(np.sqrt(cov[d, d]))
        ks = stats.kstest(samples[:, d], "norm", args=(float(mean[d]), sd))
        exact = float(mean[d]) + sd * rng.standard_normal(samples.shape[0])
        rows.append(
            {
                "dim": d,
                "ridge_mean": float(mean[d]),
                "ridge_std": sd,
                "ridge_ks": ks.statistic,
                "ridge_ks_pvalue": ks.pvalue,
                "ridge_energy": stats.energy_distance(samples[:, d], exact),
            }
        )
    return pd.DataFrame(rows)


def against_atoms(samples: np.ndarray, atoms: np.ndarray, weights: np.ndarray) -> pd.DataFrame:
    """Energy distance of each marginal to the discrete distribution sum_m weights_m delta(atoms_m)."""
    rows = []
    for d in range(samples.shape[1]):
        energy = stats.energy_distance(samples[:, d], atoms[:, d], v_weights=weights)
        rows.append({"dim": d, "dmmse_energy": energy})
    return pd.DataFrame(rows)


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
