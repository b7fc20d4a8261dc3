"""Task distributions for in-context linear regression (docs/design.md §1).

A task is a weight vector ``w`` in R^D; a sequence is K pairs ``(x_i, y_i)`` with
``x_i ~ N(0, I_D)`` and ``y_i = w·x_i + eps_i``, ``eps_i ~ N(0, noise_var)``. Tasks come
from a prior object (:mod:`lrpfn.priors`): the true prior ``T_true`` (``N(0, I_D)`` by
default) or a pool ``T_M`` (:class:`lrpfn.priors.Pool`, uniform over M fixed tasks).

Pools are nested: :func:`master_pool` draws rows sequentially from one seeded stream, so
pool M is the first M rows of *any* master draw with at least M rows and the same seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .io import read_parquet
from .priors import Pool, Prior


def master_tasks(max_size: int, seed: int, prior: Prior) -> Pool:
    """The seeded master draw from ``prior`` as a pool: w (max_size, D) float32 and, where tasks
    draw their own, their noise variances (max_size,) float64.

    numpy's generator fills rows in order, so the first m rows of a draw of m tasks equal those
    of a draw of any n >= m with the same seed: pools are nested whatever M_max is.
    """
    if max_size < 1:
        raise ValueError(f"master_tasks needs max_size >= 1, got {max_size}")
    w, noise_var = prior.draw_pool(np.random.default_rng(seed), max_size)
    return Pool(w.float(), noise_var)


def master_pool(max_size: int, seed: int, prior: Prior) -> torch.Tensor:
    """The task vectors of :func:`master_tasks`, (max_size, D) float32."""
    return master_tasks(max_size, seed, prior).tasks


def pool_slice(master: torch.Tensor, pool_size: float) -> torch.Tensor | None:
    """Pool M as the first M rows of the master draw; ``None`` for M = inf (the true prior)."""
    if math.isinf(pool_size):
        return None
    m = int(pool_size)
    if m != pool_size or m < 1:
        raise ValueError(f"pool size must be a positive integer or inf, got {pool_size!r}")
    if m > master.shape[0]:
        raise ValueError(f"pool size {m} exceeds the master pool's {master.shape[0]} rows")
    return master[:m]


@dataclass
class Batch:
    """One batch of sequences: x (B, K, D), y (B, K), w (B, P), target = w·phi(x) (B, K), with
    phi(x) = x (P = D) unless the tasks act on features of x."""

    x: torch.Tensor
    y: torch.Tensor
    w: torch.Tensor
    target: torch.Tensor
    task: torch.Tensor  # (B,) pool index of each sequence, -1 for the true prior
    noise_var: torch.Tensor | None = None  # (B,) each sequence's noise variance, None when shared

    def to(self, device) -> Batch:
        """The batch on ``device`` (the same tensors when they are there already).

        The copy does not wait for the device's queued work, so drawing the next batch on
        the CPU overlaps with the GPU computing the current step.
        """
        names = ("x", "y", "w", "target", "task", "noise_var")
        return Batch(
            **{
                name: None if getattr(self, name) is None else getattr(self, name).to(device, non_blocking=True)
                for name in names
            }
        )


def sample_batch(
    batch_size: int,
    context_length: int,
    noise_var: float,
    tasks: Prior,
    generator: torch.Generator,
    active_dims: int | None = None,
    features=None,
) -> Batch:
    """Draw a batch of sequences whose tasks come from ``tasks`` (a prior or a pool).

    Every random number comes from ``generator`` — x, then the tasks, then the noise — so a
    batch is a pure function of its state; tensors live on the generator's device.
    ``active_dims`` < D zeroes the later coordinates of x (a training curriculum); the
    generator advances exactly as without it. ``features`` (a map phi of x, :mod:`lrpfn.features`)
    makes the target ``w·phi(x)``; the noise has variance ``noise_var`` unless the tasks
    drew their own.
    """
    device = generator.device
    dim = tasks.dim if features is None else features.dim
    x = torch.randn((batch_size, context_length, dim), generator=generator, device=device)
    if active_dims is not None and active_dims < dim:
        x[..., active_dims:] = 0
    draw = tasks.sample_tasks(batch_size, generator)
    inputs = x if features is None else features(x)
    target = torch.einsum("bkd,bd->bk", inputs, draw.w)
    noise = torch.randn(target.shape, generator=generator, device=device)
    if draw.noise_var is None:
        y = target + math.sqrt(noise_var) * noise
    else:
        y = target + draw.noise_var.sqrt().unsqueeze(-1).to(noise.dtype) * noise
    return Batch(x=x, y=y, w=draw.w, target=target, task=draw.task, noise_var=draw.noise_var)


def eval_set(n_sequences: int, context_length: int, noise_var: float, tasks: Prior, seed: int, features=None) -> Batch:
    """A fixed, seeded evaluation set (CPU), the same for every model evaluated on it."""
    generator = torch.Generator().manual_seed(seed)
    return sample_batch(n_sequences, context_length, noise_var, tasks, generator, features=features)


def x_columns(dim: int) -> list[str]:
    return [f"x_{d}" for d in range(dim)]


def w_columns(dim: int) -> list[str]:
    return [f"w_{d}" for d in range(dim)]


def batch_to_frame(batch: Batch) -> pd.DataFrame:
    """Tidy long table, one row per (sequence, position).

    Columns: sequence, position, task, x_0..x_{D-1}, y, target, w_0..w_{P-1}, and
    ``noise_var`` where sequences differ in it.
    """
    n, k, d = batch.x.shape
    frame = pd.DataFrame(
        {
            "sequence": np.repeat(np.arange(n, dtype=np.int64), k),
            "position": np.tile(np.arange(k, dtype=np.int64), n),
            "task": np.repeat(batch.task.cpu().numpy().astype(np.int64), k),
        }
    )
    x = batch.x.cpu().numpy().reshape(n * k, d)
    w = np.repeat(batch.w.cpu().numpy(), k, axis=0)
    columns = {name: x[:, j] for j, name in enumerate(x_columns(d))}
    columns["y"] = batch.y.cpu().numpy().reshape(-1)
    columns["target"] = batch.target.cpu().numpy().reshape(-1)
    columns.update({name: w[:, j] for j, name in enumerate(w_columns(w.shape[1]))})
    if batch.noise_var is not None:
        columns["noise_var"] = np.repeat(batch.noise_var.cpu().numpy(), k)
    return pd.concat([frame, pd.DataFrame(columns)], axis=1)


def frame_to_batch(frame: pd.DataFrame) -> Batch:
    """Inverse of :func:`batch_to_frame`; checks the table is complete and rectangular."""
    dim = sum(1 for c in frame.columns if c.startswith("x_"))
    n_params = sum(1 for c in frame.columns if c.startswith("w_"))
    required = ["sequence", "position", "task", "y", "target", *x_columns(dim), *w_columns(n_params)]
    missing = [c for c in required if c not in frame.columns]
    if dim == 0 or n_params == 0 or missing:
        raise ValueError(f"evaluation table lacks columns {missing or ['x_0' if dim == 0 else 'w_0']}")
    frame = frame.sort_values(["sequence", "position"], kind="stable")
    n = frame["sequence"].nunique()
    k = frame["position"].nunique()
    if len(frame) != n * k:
        raise ValueError(f"evaluation table is ragged: {len(frame)} rows for {n} sequences x {k} positions")

    def tensor(columns, shape):
        return torch.from_numpy(frame[columns].to_numpy(np.float32, copy=True).reshape(shape))

    noise_var = None
    if "noise_var" in frame.columns:
        noise_var = torch.from_numpy(frame["noise_var"].to_numpy(np.float64).reshape(n, k)[:, 0].copy())
    return Batch(
        x=tensor(x_columns(dim), (n, k, dim)),
        y=tensor("y", (n, k)),
        target=tensor("target", (n, k)),
        w=tensor(w_columns(n_params), (n, k, n_params))[:, 0],
        task=torch.from_numpy(frame["task"].to_numpy(np.int64).reshape(n, k)[:, 0].copy()),
        noise_var=noise_var,
    )


def pool_to_frame(pool: torch.Tensor, noise_var: torch.Tensor | None = None) -> pd.DataFrame:
    """Pool table: one row per task, columns task, w_0..w_{D-1}, and ``noise_var`` where the
    tasks drew their own."""
    frame = pd.DataFrame(pool.numpy(), columns=w_columns(pool.shape[1]))
    frame.insert(0, "task", np.arange(pool.shape[0], dtype=np.int64))
    if noise_var is not None:
        frame["noise_var"] = noise_var.double().numpy()
    return frame


def frame_to_pool(frame: pd.DataFrame, dim: int, size: int | None = None, source: str = "pool table") -> torch.Tensor:
    """Inverse of :func:`pool_to_frame`, checking the dimension (and size, when given)."""
    found = sum(1 for c in frame.columns if c.startswith("w_"))
    if found != dim or any(c not in frame.columns for c in w_columns(dim)):
        raise ValueError(f"{source}: tasks of dimension {found}, expected {dim}")
    if size is not None and len(frame) != size:
        raise ValueError(f"{source}: {len(frame)} tasks, expected {size}")
    frame = frame.sort_values("task")
    return torch.from_numpy(frame[w_columns(dim)].to_numpy(np.float32, copy=True))


def read_pool(path, dim: int, size: int | None = None) -> torch.Tensor:
    """The task vectors of a pool table (:func:`read_pool_tasks`), (M, D)."""
    return read_pool_tasks(path, dim, size=size).tasks


def read_pool_tasks(path, dim: int, size: int | None = None) -> Pool:
    """A pool table written by :func:`pool_to_frame` as the prior of its tasks
    (:class:`lrpfn.priors.Pool`), checking dimension and size: w and, where the table has them,
    each task's noise variance."""
    frame = read_parquet(path)
    tasks = frame_to_pool(frame, dim, size=size, source=str(path))
    noise_var = None
    if "noise_var" in frame.columns:
        noise_var = torch.from_numpy(frame.sort_values("task")["noise_var"].to_numpy(np.float64, copy=True))
        if not bool((noise_var > 0).all()):
            raise ValueError(f"{path}: noise variances must be positive")
    return Pool(tasks, noise_var)


def read_run_tasks(paths, pool_size: str, dim: int) -> Pool | None:
    """A run's pool from its rule's input (a path, or an empty list at M = inf) as a
    :class:`lrpfn.priors.Pool` of M tasks in R^dim, or None for a run on the true prior."""
    if pool_size == "inf":
        return None
    path = paths[0] if isinstance(paths, list | tuple) else paths
    return read_pool_tasks(path, dim, size=int(pool_size))


def read_run_pool(paths, pool_size: str, dim: int) -> torch.Tensor | None:
    """The task vectors of a run's pool (:func:`read_run_tasks`), (M, D), or None for a run on
    the true prior."""
    pool = read_run_tasks(paths, pool_size, dim)
    return None if pool is None else pool.tasks


def read_run_eval_sets(eval_true, eval_pool, pool_size: str) -> dict[str, Batch]:
    """A run's evaluation sets by name: ``true`` (new tasks) and, for a finite pool, ``pool``
    (its own tasks T_M)."""
    eval_sets = {"true": read_eval_set(eval_true)}
    if pool_size != "inf":
        eval_sets["pool"] = read_eval_set(eval_pool)
    return eval_sets


def read_eval_set(path) -> Batch:
    """Load an evaluation table written by :func:`batch_to_frame`; errors name the file."""
    try:
        return frame_to_batch(read_parquet(path))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
