"""The PFN's implied prior and posteriors, read out by predictive resampling (SPEC §7).

A *target* is what gets resampled: the prior (no observed prefix) or a posterior given the
first ``prefix_length`` pairs of an evaluation sequence. Every path has ``path_length``
points in all (prefix included), so prior and posteriors use the same functional.

Sample tables have one row per path: kind ('prior' | 'posterior'), tasks ('' for the prior,
else the evaluation set the prefix came from: 'true' | 'pool'), prefix (sequence index, -1
for the prior), path, w_0..w_{D-1}.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .bayes import dmmse_posterior, ridge_posterior
from .buckets import BarDistribution
from .compare import against_atoms, against_gaussian, against_samples, nearest_atom_distance
from .model import PFN
from .resample import Resampled, resample_exact, resample_model
from .tasks import Batch, read_eval_set, w_columns

TARGET_KEYS = ["kind", "tasks", "prefix"]


@dataclass(frozen=True)
class Target:
    kind: str
    tasks: str
    prefix: int
    x: torch.Tensor | None  # (n, D) observed prefix, None for the prior
    y: torch.Tensor | None


def targets(eval_sets: dict[str, Batch], n_prefixes: int, prefix_length: int) -> list[Target]:
    """The prior, then a posterior for each of the first ``n_prefixes`` sequences of each set."""
    out = [Target("prior", "", -1, None, None)]
    for tasks, batch in eval_sets.items():
        for i in range(min(n_prefixes, batch.x.shape[0])):
            out.append(Target("posterior", tasks, i, batch.x[i, :prefix_length], batch.y[i, :prefix_length]))
    return out


def _frame(target: Target, result: Resampled) -> pd.DataFrame:
    w = result.w_hat.cpu().numpy()
    frame = pd.DataFrame(w, columns=w_columns(w.shape[1]))
    frame.insert(0, "path", np.arange(len(frame)))
    for i, key in enumerate(TARGET_KEYS):
        frame.insert(i, key, getattr(target, key))
    return frame


def _steps(target: Target, path_length: int) -> int:
    return path_length - (0 if target.x is None else target.x.shape[0])


def model_samples(
    model: PFN, bar: BarDistribution, all_targets: list[Target], n_paths: int, path_length: int, seed: int
) -> pd.DataFrame:
    """Resample every target with the PFN; the same seed for every checkpoint (common random numbers)."""
    device = next(model.parameters()).device
    frames = []
    for target in all_targets:
        generator = torch.Generator(device=device).manual_seed(seed)
        result = resample_model(model, bar, n_paths, _steps(target, path_length), target.x, target.y, generator)
        frames.append(_frame(target, result))
    return pd.concat(frames, ignore_index=True)


def reference_samples(
    pool: torch.Tensor | None,
    noise_var: float,
    dim: int,
    all_targets: list[Target],
    n_paths: int,
    path_length: int,
    seed: int,
) -> pd.DataFrame:
    """The same procedure with the exact posterior predictive of the run's prior."""
    frames = []
    for target in all_targets:
        generator = torch.Generator().manual_seed(seed)
        result = resample_exact(
            pool, noise_var, n_paths, _steps(target, path_length), target.x, target.y, generator, dim=dim
        )
        frames.append(_frame(target, result))
    return pd.concat(frames, ignore_index=True)


def statistics(
    samples: pd.DataFrame,
    reference: pd.DataFrame,
    all_targets: list[Target],
    pool: torch.Tensor | None,
    noise_var: float,
) -> pd.DataFrame:
    """Per (step, target, dim): the model's samples against the reference resampler, the exact
    Gaussian posterior (prior: N(0, I)), and for a pool prior the exact dMMSE posterior; plus
    the median distance of each ``w_hat`` to its nearest pool task."""
    dim = sum(c.startswith("w_") for c in samples.columns)
    cols = w_columns(dim)
    rows = []
    for target in all_targets:

        def select(frame: pd.DataFrame, target: Target = target) -> pd.DataFrame:
            return frame[(frame.kind == target.kind) & (frame.tasks == target.tasks) & (frame.prefix == target.prefix)]

        ref = select(reference)[cols].to_numpy()
        if target.x is None:
            mean, cov = np.zeros(dim), np.eye(dim)
            weights = None if pool is None else np.full(pool.shape[0], 1 / pool.shape[0])
        else:
            mu, s = ridge_posterior(target.x[None].double(), target.y[None].double(), noise_var)
            mean, cov = mu[0].numpy(), s[0].numpy()
            weights = (
                None if pool is None else dmmse_posterior(target.x[None], target.y[None], pool, noise_var)[0].numpy()
            )
        for step, group in select(samples).groupby("step"):
            w = group[cols].to_numpy()
            table = against_samples(w, ref).merge(against_gaussian(w, mean, cov), on="dim")
            if pool is not None:
                table = table.merge(against_atoms(w, pool.numpy().astype(np.float64), weights), on="dim")
                table["median_pool_distance"] = np.median(nearest_atom_distance(w, pool.numpy().astype(np.float64)))
            else:
                table["dmmse_energy"] = np.nan
                table["median_pool_distance"] = np.nan
            for i, key in enumerate(["step", *TARGET_KEYS]):
                table.insert(i, key, step if key == "step" else getattr(target, key))
            rows.append(table)
    return pd.concat(rows, ignore_index=True)


def targets_from_files(
    eval_true: str, eval_pool: str, pool_size: str, n_prefixes: int, prefix_length: int
) -> list[Target]:
    """Targets of a run: prefixes from T_true, and from T_M for a finite pool."""
    eval_sets = {"true": read_eval_set(eval_true)}
    if pool_size != "inf":
        eval_sets["pool"] = read_eval_set(eval_pool)
    return targets(eval_sets, n_prefixes, prefix_length)
