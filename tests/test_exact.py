"""A predictor defined outside the library enters every read-out through the exact-predictor
protocol alone: evaluation, exact resampling and the predictive-density comparison.

The predictor here is the tempered posterior predictive of w ~ N(0, I_D): the likelihood
raised to the power TAU, so the posterior is ``N(m, S)`` with ``S^-1 = I + TAU X^T X /
noise_var`` and ``m = TAU S X^T y / noise_var``, and the predictive of y at x is
``N(m·x, noise_var + x^T S x)``. It is not a Gaussian mixture over w of any prior the
library knows, and this file implements only its state; every other method is the
protocol's default.
"""

from __future__ import annotations

import math

import pytest
import torch

from lrpfn.bayes import Normal, NormalMixture
from lrpfn.buckets import BarDistribution, prior_borders
from lrpfn.evaluate import evaluate_checkpoint
from lrpfn.exact import ExactPredictor, Ridge
from lrpfn.model import PFN, ModelConfig
from lrpfn.predictive import compare, kl_divergence, prompt_logits, prompts
from lrpfn.priors import StandardGaussian
from lrpfn.resample import draw_inputs, resample_exact
from lrpfn.tasks import eval_set

DIM, NOISE_VAR, TAU = 2, 0.25, 0.5


class TemperedState:
    def __init__(self, mean: torch.Tensor, cov: torch.Tensor):
        self.mean, self.cov = mean, cov

    def predictive(self, x: torch.Tensor) -> Normal:
        var = NOISE_VAR + torch.einsum("bi,bij,bj->b", x, self.cov, x)
        return Normal(torch.zeros_like(var)[:, None], (self.mean * x).sum(-1)[:, None], var[:, None])

    def observe(self, x: torch.Tensor, y: torch.Tensor) -> None:
        # The likelihood to the power TAU is a Gaussian likelihood of variance noise_var / TAU.
        cov_x = torch.einsum("bij,bj->bi", self.cov, x)
        s = NOISE_VAR / TAU + (cov_x * x).sum(-1)
        gain = cov_x / s[:, None]
        self.mean = self.mean + gain * (y - (self.mean * x).sum(-1))[:, None]
        self.cov = self.cov - s[:, None, None] * gain[:, :, None] * gain[:, None, :]

    def copy(self) -> TemperedState:
        return TemperedState(self.mean.clone(), self.cov.clone())


class Tempered(ExactPredictor):
    dim = DIM

    def start(self, batch: int, device=None) -> TemperedState:
        eye = torch.eye(DIM, dtype=torch.float64, device=device)
        return TemperedState(torch.zeros(batch, DIM, dtype=torch.float64, device=device), eye.repeat(batch, 1, 1))


def tempered_by_solve(x: torch.Tensor, y: torch.Tensor, query: torch.Tensor) -> tuple[float, float]:
    """The tempered predictive at ``query`` after pairs x (n, D), y (n,), by an explicit solve."""
    x, y, query = x.double(), y.double(), query.double()
    precision = torch.eye(DIM, dtype=torch.float64) + TAU * x.T @ x / NOISE_VAR
    cov = torch.linalg.inv(precision)
    mean = TAU * cov @ x.T @ y / NOISE_VAR
    return (mean @ query).item(), (NOISE_VAR + query @ cov @ query).item()


@pytest.fixture(scope="module")
def model_and_bar():
    torch.manual_seed(0)
    model = PFN(ModelConfig(dim=DIM, n_buckets=32, d_model=16, n_layers=1, n_heads=2, d_mlp=32)).eval()
    return model, BarDistribution(prior_borders(32, NOISE_VAR, StandardGaussian(DIM), n_samples=1 << 16))


def test_evaluation_scores_an_outside_predictor(model_and_bar):
    """Its columns appear beside Bayes's; its per-position NLL equals the explicit solve's, and
    on tasks from the prior it is worse than Bayes (which is optimal there)."""
    model, bar = model_and_bar
    batch = eval_set(2000, 6, NOISE_VAR, StandardGaussian(DIM), seed=3)
    predictors = {"tempered": Tempered(), "bayes": Ridge(DIM, NOISE_VAR)}
    _, sequences = evaluate_checkpoint(model, bar, {"true": batch}, predictors)
    # Bayes beats the tempered predictor in expected NLL on prior tasks (paired over sequences).
    gap = sequences.nll_tempered - sequences.nll_bayes
    assert gap.mean() > 5 * gap.std() / math.sqrt(len(gap))

    few = type(batch)(**{name: getattr(batch, name)[:40] for name in ("x", "y", "w", "target", "task")})
    positions = evaluate_checkpoint(model, bar, {"true": few}, predictors)[0].set_index("position")
    assert {"mse_tempered", "delta_tempered", "nll_tempered", "nll_tempered_se"} <= set(positions.columns)
    for i in range(6):
        nll = []
        for b in range(40):
            mean, var = tempered_by_solve(few.x[b, :i], few.y[b, :i], few.x[b, i])
            nll.append(0.5 * (math.log(2 * math.pi * var) + (few.y[b, i].item() - mean) ** 2 / var))
        assert positions.loc[i, "nll_tempered"] == pytest.approx(sum(nll) / len(nll), rel=1e-10)


def test_exact_resampling_draws_from_an_outside_predictor():
    """Every drawn y is the tempered predictive's mean plus its sd times the generator's next
    normal: the resampler asks the predictor for its predictive and nothing else."""
    n_paths, n_steps, seed = 64, 10, 11
    prefix = eval_set(1, 3, NOISE_VAR, StandardGaussian(DIM), seed=4)
    inputs = draw_inputs(n_paths, n_steps, DIM, torch.Generator().manual_seed(5))
    out = resample_exact(Tempered(), inputs, prefix.x[0], prefix.y[0], torch.Generator().manual_seed(seed))
    normals = torch.Generator().manual_seed(seed)
    n = 3
    for t in range(n_steps):
        z = torch.randn(n_paths, generator=normals, dtype=torch.float64)
        for b in (0, 17, 63):
            mean, var = tempered_by_solve(out.x[b, : n + t], out.y[b, : n + t], out.x[b, n + t])
            assert out.y[b, n + t].item() == pytest.approx(mean + math.sqrt(var) * z[b].item(), rel=1e-9, abs=1e-12)
    assert torch.equal(out.x[:, n:].float(), inputs)


def test_the_predictive_comparison_takes_an_outside_predictor(model_and_bar):
    """KL from the tempered predictive to the PFN's equals the quadrature of the explicit
    Gaussian; its density column integrates to one."""
    model, bar = model_and_bar
    batch = eval_set(2, 7, NOISE_VAR, StandardGaussian(DIM), seed=6)
    all_prompts = prompts({"true": batch}, 2, [0, 2, 6])
    table, density = compare({0: model}, bar, all_prompts, {"tempered": Tempered()})
    assert len(table) == len(all_prompts)
    for prompt, (_, row) in zip(all_prompts, table.iterrows(), strict=True):
        mean, var = tempered_by_solve(prompt.x, prompt.y, prompt.query)
        explicit = NormalMixture(*(torch.tensor([[v]], dtype=torch.float64) for v in (0.0, mean, var)))
        logits = prompt_logits(model, prompt).double()
        assert row.kl_tempered == pytest.approx(kl_divergence(explicit, bar, logits), rel=1e-9)
        assert row.mean_tempered == pytest.approx(mean, rel=1e-10, abs=1e-12)
        assert row.sd_tempered == pytest.approx(math.sqrt(var), rel=1e-10)
    for _, curve in density.groupby(["sequence", "prompt_length"]):
        y, p = torch.tensor(curve.y.to_numpy()), torch.tensor(curve.density_tempered.to_numpy())
        assert torch.trapezoid(p, y).item() == pytest.approx(1.0, abs=1e-3)
