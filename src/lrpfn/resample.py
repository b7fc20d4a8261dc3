"""Predictive resampling: the martingale posterior of a PFN (docs/design.md §7).

Given an observed prefix ``D_n`` (n may be 0), each of B independent paths takes N steps:

1. take the path's next input ``x_new ~ N(0, I_D)``;
2. sample ``y_new`` from the predictive at ``x_new`` given the path's context so far;
3. append ``(x_new, y_new)`` and repeat;

then computes the least-squares estimate ``w_hat`` on all n + N points (minimum-norm when
underdetermined). The B values of ``w_hat`` sample the implied prior (n = 0) or posterior.

The inputs of every path step come from a stream of their own (:func:`draw_inputs`) and
are passed in, so the PFN and every exact reference resample along the *same* x: they
differ only in the predictive that draws y (from ``generator``). Three samplers share one
interface:

* :func:`resample_model` — the PFN with its pair key/value cache: one query and one pair
  token per path per step, O(context) each;
* :func:`resample_reencode` — the PFN re-encoding the whole context every step (slow,
  obvious; kept for tests and the benchmark); it consumes ``generator`` as the cached one;
* :func:`resample_exact` — any exact predictor (:class:`lrpfn.exact.ExactPredictor`): what
  a perfect model would produce, step by step;
* :func:`resample_by_task` — the same distribution of paths in one draw per path: an exact
  Bayes predictor is exchangeable, so sampling its predictive step by step is sampling a task
  from its posterior given the prefix and then every y of the path from that task (de Finetti).
  Its cost does not grow with the pool or the mixture per step: the exact references use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .buckets import BarDistribution
from .exact import ExactPredictor
from .model import PFN, KVCache


@dataclass
class Resampled:
    w_hat: torch.Tensor  # (B, D) float64: least squares on all n + N points of each path
    x: torch.Tensor  # (B, n + N, D): observed prefix then imputed inputs
    y: torch.Tensor  # (B, n + N)

    def fit(self, features=None, penalty: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """The fit of each path's y on ``features(x)`` (x itself without): ``w_hat`` (B, P) and
        the residual variance ``|y - phi(X) w_hat|^2 / (N - P)`` (B,), float64 (NaN when the
        path has no more points than parameters). Least squares, or with ``penalty`` > 0 ridge
        ``(phi^T phi + penalty I)^-1 phi^T y``: the posterior mean of w under ``N(0, I)`` with
        noise variance ``penalty``, which stays finite where features are nearly collinear."""
        inputs = self.x.double() if features is None else features(self.x.double())
        if penalty > 0:
            w_hat = ridge(inputs, self.y, penalty)
        else:
            w_hat = self.w_hat if features is None else least_squares(inputs, self.y)
        residual = self.y.double() - (inputs @ w_hat.unsqueeze(-1)).squeeze(-1)
        free = inputs.shape[1] - inputs.shape[2]
        return w_hat, residual.square().sum(-1) / free if free > 0 else torch.full_like(residual[:, 0], torch.nan)


def least_squares(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Minimum-norm least squares ``w_hat = pinv(X) y`` per path, float64, (B, D)."""
    x, y = x.double(), y.double()
    return (torch.linalg.pinv(x) @ y.unsqueeze(-1)).squeeze(-1)


def ridge(x: torch.Tensor, y: torch.Tensor, penalty: float) -> torch.Tensor:
    """``w_hat = (X^T X + penalty I)^-1 X^T y`` per path, float64, (B, D)."""
    x, y = x.double(), y.double()
    gram = x.transpose(-1, -2) @ x + penalty * torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    return torch.linalg.solve(gram, x.transpose(-1, -2) @ y.unsqueeze(-1)).squeeze(-1)


def _stacked(prefix_x, prefix_y, dim: int, device, dtype):
    """An observed prefix as G stacked prefixes, (G, n, D) and (G, n): none is one of length 0."""
    if prefix_x is None:
        return torch.zeros(1, 0, dim, device=device, dtype=dtype), torch.zeros(1, 0, device=device, dtype=dtype)
    px = torch.as_tensor(prefix_x, device=device, dtype=dtype)
    py = torch.as_tensor(prefix_y, device=device, dtype=dtype)
    return (px.unsqueeze(0), py.unsqueeze(0)) if px.ndim == 2 else (px, py)


def _paths_per_prefix(n_paths: int, groups: int) -> int:
    if n_paths % groups:
        raise ValueError(f"{n_paths} paths do not split evenly over {groups} prefixes")
    return n_paths // groups


def _prefix(prefix_x, prefix_y, n_paths: int, dim: int, device, dtype):
    """Broadcast an observed prefix (n, D)/(n,) to every path; G prefixes (G, n, D)/(G, n)
    each to B / G consecutive paths."""
    px, py = _stacked(prefix_x, prefix_y, dim, device, dtype)
    if px.shape[0] in (1, n_paths):
        return px.expand(n_paths, -1, -1), py.expand(n_paths, -1)
    repeats = _paths_per_prefix(n_paths, px.shape[0])
    return px.repeat_interleave(repeats, 0), py.repeat_interleave(repeats, 0)


def _model_prefix(model: PFN, n_paths: int, prefix_x, prefix_y):
    """The observed prefix on the model's device and dtype, one copy per path."""
    param = next(model.parameters())
    return _prefix(prefix_x, prefix_y, n_paths, model.config.dim, param.device, param.dtype)


def _prefix_cache(model: PFN, n_paths: int, capacity: int, prefix_x, prefix_y) -> KVCache:
    """A pair cache for ``n_paths`` paths of up to ``capacity`` pairs holding each path's observed
    prefix: every distinct prefix is encoded once and copied to its paths (a sequence's keys and
    values do not depend on the others in the batch)."""
    param = next(model.parameters())
    px, py = _stacked(prefix_x, prefix_y, model.config.dim, param.device, param.dtype)
    if px.shape[1] == 0:
        return model.new_cache(n_paths, capacity)
    repeats = 1 if px.shape[0] == n_paths else _paths_per_prefix(n_paths, px.shape[0])
    cache = model.new_cache(px.shape[0], capacity)
    model.step(cache, x_pair=px, y_pair=py)
    return cache.repeat_interleave(repeats) if repeats > 1 else cache


def draw_inputs(n_paths: int, n_steps: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The inputs ``x_new ~ N(0, I_D)`` of every path step, (B, N, D) float32 on the CPU.

    float32, so that the PFN and the float64 exact samplers see exactly the same values.
    """
    return torch.randn(n_paths, n_steps, dim, generator=generator)


@torch.no_grad()
def resample_model(
    model: PFN,
    bar: BarDistribution,
    inputs: torch.Tensor,
    prefix_x: torch.Tensor | None = None,
    prefix_y: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Resampled:
    """Predictive resampling with the PFN along ``inputs`` (B, N, D), caching pair keys/values."""
    n_paths, n_steps, _ = inputs.shape
    px, py = _model_prefix(model, n_paths, prefix_x, prefix_y)
    device, dtype, dim, n = px.device, px.dtype, px.shape[2], px.shape[1]
    inputs = inputs.to(device=device, dtype=dtype)
    xs = torch.empty(n_paths, n + n_steps, dim, device=device, dtype=dtype)
    ys = torch.empty(n_paths, n + n_steps, device=device, dtype=dtype)
    xs[:, :n], ys[:, :n] = px, py
    cache = _prefix_cache(model, n_paths, n + n_steps, prefix_x, prefix_y)
    for t in range(n_steps):
        x_new = inputs[:, t : t + 1]
        logits = model.step(cache, x_query=x_new)[:, 0]
        y_new = bar.sample(logits, generator=generator)
        model.step(cache, x_pair=x_new, y_pair=y_new.unsqueeze(1))
        xs[:, n + t], ys[:, n + t] = x_new[:, 0], y_new
    return Resampled(w_hat=least_squares(xs, ys), x=xs, y=ys)


@torch.no_grad()
def resample_reencode(
    model: PFN,
    bar: BarDistribution,
    inputs: torch.Tensor,
    prefix_x: torch.Tensor | None = None,
    prefix_y: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Resampled:
    """Predictive resampling re-encoding the whole sequence at every step (O(N^3) overall)."""
    n_paths, n_steps, _ = inputs.shape
    xs, ys = _model_prefix(model, n_paths, prefix_x, prefix_y)
    inputs = inputs.to(device=xs.device, dtype=xs.dtype)
    for t in range(n_steps):
        x_new = inputs[:, t : t + 1]
        # The prediction at the last position sees every earlier pair and x_new; its own
        # y (a placeholder) is invisible to it by the mask.
        logits = model(torch.cat([xs, x_new], 1), torch.cat([ys, ys.new_zeros(n_paths, 1)], 1))[:, -1]
        y_new = bar.sample(logits, generator=generator)
        xs, ys = torch.cat([xs, x_new], 1), torch.cat([ys, y_new.unsqueeze(1)], 1)
    return Resampled(w_hat=least_squares(xs, ys), x=xs, y=ys)


def _exact_inputs(inputs: torch.Tensor, generator: torch.Generator | None):
    """The exact samplers work in float64 on the device of their generator (the CPU without one)."""
    device = generator.device if generator is not None else torch.device("cpu")
    return inputs.to(device=device, dtype=torch.float64), device, torch.float64


@torch.no_grad()
def resample_exact(
    predictor: ExactPredictor,
    inputs: torch.Tensor,
    prefix_x: torch.Tensor | None = None,
    prefix_y: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Resampled:
    """Predictive resampling with an exact predictor (float64) along ``inputs`` (B, N, D):
    its state observes the prefix, then at every step y is drawn from its predictive at the
    path's next x and observed — what a perfect model would produce."""
    n_paths, n_steps, dim = inputs.shape
    inputs, device, dtype = _exact_inputs(inputs, generator)
    px, py = _prefix(prefix_x, prefix_y, n_paths, dim, device, dtype)
    n = px.shape[1]
    xs = torch.empty(n_paths, n + n_steps, dim, device=device, dtype=dtype)
    ys = torch.empty(n_paths, n + n_steps, device=device, dtype=dtype)
    xs[:, :n], ys[:, :n] = px, py
    state = predictor.start(n_paths, device)
    for t in range(n):
        state.observe(px[:, t], py[:, t])
    for t in range(n_steps):
        x_new = inputs[:, t]
        y_new = state.predictive(x_new).sample(generator)
        state.observe(x_new, y_new)
        xs[:, n + t], ys[:, n + t] = x_new, y_new
    return Resampled(w_hat=least_squares(xs, ys), x=xs, y=ys)


@torch.no_grad()
def resample_by_task(
    predictor: ExactPredictor,
    inputs: torch.Tensor,
    prefix_x: torch.Tensor | None = None,
    prefix_y: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Resampled:
    """Exact predictive resampling along ``inputs`` (B, N, D), one task per path: w from the
    predictor's posterior given the prefix, with its noise level
    (:meth:`lrpfn.exact.ExactPredictor.draw_tasks`), then ``y_t = w·phi(x_t) + noise`` at every step (phi the
    predictor's features, :meth:`lrpfn.exact.ExactPredictor.phi`: x itself but on features). The paths have the
    distribution of :func:`resample_exact`'s; the random numbers differ.

    The prefix is one (n, D)/(n,) for every path, or G of them, (G, n, D)/(G, n), each the
    prefix of B / G consecutive paths (many tasks' posteriors in one call)."""
    n_paths, n_steps, dim = inputs.shape
    inputs, device, dtype = _exact_inputs(inputs, generator)
    px, py = _stacked(prefix_x, prefix_y, dim, device, dtype)
    groups = px.shape[0]
    per_group = _paths_per_prefix(n_paths, groups)
    group = torch.arange(groups, device=device).repeat_interleave(per_group)
    w, noise_sd = predictor.draw_tasks(px, py, group, generator)
    noise = torch.randn(n_paths, n_steps, generator=generator, device=device, dtype=dtype)
    y_new = (predictor.phi(inputs) @ w.unsqueeze(-1)).squeeze(-1) + _per_path(noise_sd) * noise
    xs = torch.cat([px[group], inputs], 1)
    ys = torch.cat([py[group], y_new], 1)
    return Resampled(w_hat=least_squares(xs, ys), x=xs, y=ys)


def _per_path(noise_sd: float | torch.Tensor) -> float | torch.Tensor:
    """A noise sd shared by every path as it is, one per path (B,) as a column against (B, N)."""
    return noise_sd.unsqueeze(-1) if isinstance(noise_sd, torch.Tensor) else noise_sd
