"""The PFN's implied prior and posteriors, read out by predictive resampling (docs/design.md §7).

A *target* is what gets resampled: the prior (no observed prefix) or a posterior given the
first ``prefix_length`` pairs of an evaluation sequence. Every path has ``path_length``
points in all (prefix included), so prior and posteriors use the same functional; a run's
final checkpoint may be resampled with longer paths, so every table carries ``path_length``.

Sample tables have one row per path: kind ('prior' | 'posterior'), tasks ('' for the prior,
else the evaluation set the prefix came from: 'true' | 'pool'), prefix (sequence index, -1
for the prior), path, w_0..w_{D-1}; reference tables lead with the exact predictor's role
(``reference``: 'bayes', the true prior's; 'ridge', its moment-matched Gaussian's, when
that is another predictor; 'dmmse', the run's pool's, for a finite M; :mod:`lrpfn.roles`)
and replica (0 .. REPLICAS - 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .buckets import BarDistribution
from .compare import EnergyReference, against_samples, nearest_atom_distance
from .exact import ExactPredictor
from .model import PFN
from .resample import Resampled, draw_inputs, resample_by_task, resample_model
from .roles import EXACT
from .sweep import at_final_step, pool_size_value
from .tasks import Batch, read_run_eval_sets, w_columns

TARGET_KEYS = ["kind", "tasks", "prefix"]


@dataclass(frozen=True)
class Target:
    kind: str
    tasks: str
    prefix: int
    x: torch.Tensor | None  # (n, D) observed prefix, None for the prior
    y: torch.Tensor | None
    w: torch.Tensor | None = None  # (D,) the task that generated the prefix


def targets(eval_sets: dict[str, Batch], n_prefixes: int, prefix_length: int) -> list[Target]:
    """The prior, then a posterior for each of the first ``n_prefixes`` sequences of each set."""
    out = [Target("prior", "", -1, None, None)]
    for tasks, batch in eval_sets.items():
        for i in range(min(n_prefixes, batch.x.shape[0])):
            out.append(
                Target("posterior", tasks, i, batch.x[i, :prefix_length], batch.y[i, :prefix_length], batch.w[i])
            )
    return out


@dataclass(frozen=True)
class Readout:
    """How a resampled path is read: the fit of its y on ``features(x)`` (x itself when None) as
    columns w_0..w_{P-1} — least squares, or ridge with ``penalty`` (:meth:`Resampled.fit`) —
    and, with ``noise`` (tasks that draw their own noise variance), the fit's residual variance
    as column ``noise_var``: the implied prior over sigma^2. A task family supplies its own
    (:attr:`lrpfn.families.Family.readout`)."""

    features: object = None
    noise: bool = False
    penalty: float = 0.0

    def fit(self, result: Resampled) -> tuple[torch.Tensor, torch.Tensor]:
        """Each path's coefficients (B, P) and residual variance (B,), float64."""
        return result.fit(self.features, self.penalty)

    def columns(self, result: Resampled) -> dict[str, np.ndarray]:
        w_hat, residual_var = self.fit(result)
        w = w_hat.cpu().numpy()
        columns = {name: w[:, d] for d, name in enumerate(w_columns(w.shape[1]))}
        return columns | ({"noise_var": residual_var.cpu().numpy()} if self.noise else {})


def sample_frame(target: Target, result: Resampled, readout: Readout = Readout()) -> pd.DataFrame:
    frame = pd.DataFrame(readout.columns(result))
    frame.insert(0, "path", np.arange(len(frame)))
    for i, key in enumerate(TARGET_KEYS):
        frame.insert(i, key, getattr(target, key))
    return frame


def _steps(target: Target, path_length: int) -> int:
    return path_length - (0 if target.x is None else target.x.shape[0])


def _streams(target: Target, n_paths: int, path_length: int, dim: int, seed: int, replica: int = 0, device="cpu"):
    """The path inputs of a target, from a stream of their own (``seed``), and the generator
    of its y draws (``seed + 1 + replica``): every sampler and replica sees the same x."""
    inputs = draw_inputs(n_paths, _steps(target, path_length), dim, torch.Generator().manual_seed(seed))
    return inputs, torch.Generator(device=device).manual_seed(seed + 1 + replica)


def model_samples(
    model: PFN,
    bar: BarDistribution,
    all_targets: list[Target],
    n_paths: int,
    path_length: int,
    seed: int,
    readout: Readout = Readout(),
) -> pd.DataFrame:
    """Resample every target with the PFN; the same streams for every checkpoint (common random numbers)."""
    device = next(model.parameters()).device
    frames = []
    for target in all_targets:
        inputs, generator = _streams(target, n_paths, path_length, model.config.dim, seed, device=device)
        result = resample_model(model, bar, inputs, target.x, target.y, generator)
        frames.append(sample_frame(target, result, readout))
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "path_length", path_length)
    return table


REFERENCE_KEYS = ["reference", "replica", "path_length"]
REPLICAS = 9  # exact references per predictor: replica 0 is compared with the PFN, 1.. give the floor and its spread


def reference_samples(
    predictors: dict[str, ExactPredictor],
    dim: int,
    all_targets: list[Target],
    n_paths: int,
    path_lengths: list[int],
    seed: int,
    readout: Readout = Readout(),
) -> pd.DataFrame:
    """The same procedure with exact predictors (keyed by role, :func:`lrpfn.exact.distinct`),
    along the PFN's inputs, one task per path from the posterior given the prefix
    (:func:`lrpfn.resample.resample_by_task`: in distribution the step-by-step resampler, at a
    cost that does not grow with the pool per step); each :data:`REPLICAS` times (``replica``
    0, 1, ...: other y draws),
    so that the distance between two exact resamplers — the sampling floor — and its spread
    are known; at every path length of ``path_lengths``, along the PFN's inputs at that length."""
    frames = []
    for reference, predictor in predictors.items():
        for replica in range(REPLICAS):
            for path_length in path_lengths:
                for target in all_targets:
                    inputs, generator = _streams(target, n_paths, path_length, dim, seed, replica)
                    result = resample_by_task(predictor, inputs, target.x, target.y, generator)
                    frame = sample_frame(target, result, readout)
                    frames.append(frame.assign(reference=reference, replica=replica, path_length=path_length))
    table = pd.concat(frames, ignore_index=True)
    return table[[*REFERENCE_KEYS, *(c for c in table.columns if c not in REFERENCE_KEYS)]]


def near_zero_threshold(noise_var: float, path_length: int, dim: int) -> float:
    """Twice the least-squares noise of one coordinate of ``w_hat``: with N points and
    x ~ N(0, I_D), ``E[(X^T X)^-1] = I / (N - D - 1)``, so a coordinate that is exactly zero
    comes out within ``2 sqrt(noise_var / (N - D - 1))`` of it about 95 % of the time."""
    if path_length <= dim + 1:
        raise ValueError(f"least-squares noise needs path_length > dim + 1, got {path_length} and {dim}")
    return 2 * (noise_var / (path_length - dim - 1)) ** 0.5


def statistics(
    samples: pd.DataFrame,
    reference: pd.DataFrame,
    all_targets: list[Target],
    pool: torch.Tensor | None,
    near_zero: dict[int, float] | None = None,
    functions=None,
) -> pd.DataFrame:
    """Per (step, target, reference prior, dim): the model's samples against that exact
    reference resampler (replica 0) at the same path length, beside the floor exact replicas reach.

    Columns of :func:`lrpfn.compare.against_samples` (``std_ratio``, ``ks``, ``energy``, ...);
    ``floor_ks``, ``floor_energy`` and ``floor_energy_sd``: the mean and spread over the other
    replicas of their distance to replica 0 (what a model with the exact predictive would
    show); for a pool the median distance of each ``w_hat`` to its nearest pool task, of
    the model (``median_pool_distance``) and of the reference (``ref_median_pool_distance``);
    for a posterior the task that generated the prefix (``true_w``) and the root mean squared
    distance of the ``w_hat`` to it, of the model (``true_w_rmse``) and of the reference
    (``ref_true_w_rmse``). With ``near_zero`` (a spike-and-slab prior, :func:`near_zero_threshold`
    per path length):
    the fraction of ``|w_hat|`` below it, of the model (``mass_near_zero``) and of the
    reference (``ref_mass_near_zero``) — the implied prior's spike. Where the samples carry a
    residual variance (``noise_var``, :class:`Readout`): its median and interquartile range,
    of the model (``noise_median``, ``noise_iqr``) and of the reference (``ref_noise_median``,
    ``ref_noise_iqr``) — the implied prior or posterior over sigma^2. With ``functions`` (a map
    of w_hat (B, P) to the function it gives on a grid of inputs, (B, G): a family on features,
    :attr:`lrpfn.families.Family.functions`): the energy distance of the model's functions to the
    reference's (``function_energy``, :func:`lrpfn.compare.energy_distance`) and its floor
    (``floor_function_energy``, ``floor_function_energy_sd``) over the other replicas, as for w.
    """
    dim = sum(c.startswith("w_") for c in samples.columns)
    cols = w_columns(dim)
    atoms = None if pool is None else pool.numpy().astype(np.float64)
    rows = []
    for target in all_targets:

        def select(frame: pd.DataFrame, target: Target = target) -> pd.DataFrame:
            return frame[(frame.kind == target.kind) & (frame.tasks == target.tasks) & (frame.prefix == target.prefix)]

        model = select(samples)
        for (name, path_length), ref in select(reference).groupby(["reference", "path_length"], sort=False):
            at_length = model[model.path_length == path_length]
            if at_length.empty:
                continue
            exact = ref.loc[ref.replica == 0, cols].to_numpy()
            floor = _floor(exact, [group[cols].to_numpy() for r, group in ref.groupby("replica") if r != 0])
            ref_pool_distance = np.nan if atoms is None else np.median(nearest_atom_distance(exact, atoms))
            true_w = np.full(dim, np.nan) if target.w is None else target.w.double().numpy()
            noise = "noise_var" in ref.columns and "noise_var" in at_length.columns
            if functions is not None:
                exact_f = EnergyReference(functions(exact))
                floor_f = [exact_f.distance(functions(g[cols].to_numpy())) for r, g in ref.groupby("replica") if r != 0]
            ref_noise = _median_iqr(ref.loc[ref.replica == 0, "noise_var"]) if noise else None
            for step, group in at_length.groupby("step"):
                w = group[cols].to_numpy()
                table = against_samples(w, exact).merge(floor, on="dim")
                table["median_pool_distance"] = np.nan if atoms is None else np.median(nearest_atom_distance(w, atoms))
                table["ref_median_pool_distance"] = ref_pool_distance
                table["true_w"] = true_w
                table["true_w_rmse"] = np.sqrt(((w - true_w) ** 2).mean(0))
                table["ref_true_w_rmse"] = np.sqrt(((exact - true_w) ** 2).mean(0))
                if near_zero is not None:
                    table["near_zero"] = near_zero[path_length]
                    table["mass_near_zero"] = (np.abs(w) < near_zero[path_length]).mean(0)
                    table["ref_mass_near_zero"] = (np.abs(exact) < near_zero[path_length]).mean(0)
                if functions is not None:
                    table["function_energy"] = exact_f.distance(functions(w))
                    table["floor_function_energy"] = np.mean(floor_f)
                    table["floor_function_energy_sd"] = np.std(floor_f, ddof=1) if len(floor_f) > 1 else np.nan
                if noise:
                    table["noise_median"], table["noise_iqr"] = _median_iqr(group["noise_var"])
                    table["ref_noise_median"], table["ref_noise_iqr"] = ref_noise
                keys = [("step", step), ("path_length", path_length), *((k, getattr(target, k)) for k in TARGET_KEYS)]
                for i, (key, value) in enumerate([*keys, ("reference", name)]):
                    table.insert(i, key, value)
                rows.append(table)
    return pd.concat(rows, ignore_index=True)


def _median_iqr(values: pd.Series) -> tuple[float, float]:
    q1, median, q3 = np.quantile(values.to_numpy(), [0.25, 0.5, 0.75])
    return median, q3 - q1


def _floor(exact: np.ndarray, replicas: list[np.ndarray]) -> pd.DataFrame:
    """Per dim: the mean KS and energy distance of exact replicas to ``exact``, and the energy's spread."""
    table = pd.concat([against_samples(r, exact)[["dim", "ks", "energy"]] for r in replicas])
    return (
        table.groupby("dim")
        .agg(floor_ks=("ks", "mean"), floor_energy=("energy", "mean"), floor_energy_sd=("energy", "std"))
        .reset_index()
    )


def targets_from_files(
    eval_true: str, eval_pool: str, pool_size: str, n_prefixes: int, prefix_length: int
) -> list[Target]:
    """Targets of a run: prefixes from T_true, and from T_M for a finite pool."""
    return targets(read_run_eval_sets(eval_true, eval_pool, pool_size), n_prefixes, prefix_length)


MARGINAL_KEYS = ["pool_size", "seed", "step", "path_length", "tasks", "prefix", "dim"]
REFERENCE_ROLES = list(EXACT)


def posterior_marginals(stats: pd.DataFrame) -> pd.DataFrame:
    """The posterior rows of a statistics table, one row per (run, step, target, dim).

    Per exact reference by role (suffix ``_ridge``, ``_bayes``, ``_dmmse`` — NaN for a run
    without a pool; ``_ridge`` repeats ``_bayes`` where the two coincide, under N(0, I)): the
    PFN's energy distance to that reference resampler, its floor and the floor's spread,
    and the reference's rms distance to the true task; beside them the true task's
    coordinate (``true_w``), the PFN's rms distance to it (``true_w_rmse``) and
    ``closer_to``, the distinct reference the PFN's marginal is nearest to in energy distance
    (empty with a single one).
    """
    post = stats[stats.kind == "posterior"]
    present = [role for role in REFERENCE_ROLES if (post.reference == role).any()]
    per_reference = ["energy", "floor_energy", "floor_energy_sd", "ref_true_w_rmse"]
    table = post[post.reference == present[0]].set_index(MARGINAL_KEYS)[["true_w", "true_w_rmse"]]
    for role in REFERENCE_ROLES:
        source = role if role in present else "bayes" if role == "ridge" else role
        values = post[post.reference == source].set_index(MARGINAL_KEYS)[per_reference]
        table = table.join(values.rename(columns=lambda c, r=role: f"{c}_{r}"))
    energy = table[[f"energy_{role}" for role in present]]
    several = energy.notna().sum(axis=1) > 1
    nearest = energy.fillna(np.inf).to_numpy().argmin(axis=1)  # ties go to the first present
    table["closer_to"] = np.where(several, np.asarray(present)[nearest], "")
    return table.reset_index()


def posterior_summary(stats: pd.DataFrame) -> pd.DataFrame:
    """The resampled posteriors on new tasks, one row per (run, reference, step): the energy
    distance to each exact reference, its floor and the floor's spread, each averaged over
    dimensions and T_true prefixes (``n_rows`` of them); then per (pool size, reference,
    step) over seeds (``seed`` 'mean'). ``final`` marks each pool size's last step. What the
    posterior figure draws."""
    post = stats[(stats.kind == "posterior") & (stats.tasks == "true")]
    columns = ["energy", "floor_energy", "floor_energy_sd"]
    keys = ["pool_size", "reference", "step", "path_length"]
    per_run = post.groupby(["pool_size", "seed", "reference", "step", "path_length"], sort=False)
    runs = per_run[columns].mean().join(per_run.size().rename("n_rows")).reset_index()
    runs["seed"] = runs["seed"].astype(str)
    seeds = runs.groupby(keys, sort=False)
    mean = seeds[columns].mean().join(seeds.n_rows.sum()).reset_index().assign(seed="mean")
    table = pd.concat([runs, mean], ignore_index=True)
    table["final"] = at_final_step(table)
    table["pool_size_value"] = pool_size_value(table.pool_size)
    return table.sort_values(["pool_size_value", "reference", "seed", "step"], ignore_index=True)
