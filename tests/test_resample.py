import math

import pytest
import torch
from scipy import stats

from lrpfn.bayes import dmmse_posterior, ridge_posterior
from lrpfn.buckets import build_head
from lrpfn.exact import MixtureBayes, PoolBayes, Ridge
from lrpfn.model import PFN, ModelConfig
from lrpfn.priors import StandardGaussian, clusters, spike_slab
from lrpfn.resample import (
    draw_inputs,
    least_squares,
    resample_by_task,
    resample_exact,
    resample_model,
    resample_reencode,
)
from lrpfn.tasks import sample_batch


@pytest.fixture(scope="module", params=["bar", "location_scale"])
def model_and_bar(request):
    torch.manual_seed(0)
    config = ModelConfig(dim=3, n_buckets=32, d_model=32, n_layers=2, n_heads=2, d_mlp=64, head=request.param)
    model = PFN(config).eval()
    with torch.no_grad():  # non-trivial weights, so the context matters
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model, build_head(request.param, 32, 0.25, StandardGaussian(3))


def test_cached_logits_equal_the_full_forward_at_every_step_float32(model_and_bar):
    model, _ = model_and_bar
    g = torch.Generator().manual_seed(0)
    k = 48
    x, y = torch.randn(16, k, 3, generator=g), torch.randn(16, k, generator=g) * 2
    full = model(x, y)
    cache = model.new_cache(16, k)
    for i in range(k):
        logits = model.step(cache, x_query=x[:, i : i + 1])
        torch.testing.assert_close(logits[:, 0], full[:, i], rtol=0, atol=1e-5)
        model.step(cache, x_pair=x[:, i : i + 1], y_pair=y[:, i : i + 1])


@pytest.mark.parametrize(("n_prefix", "groups"), [(0, 1), (5, 1), (5, 4)])
def test_cached_and_reencoding_samplers_draw_the_same_paths(model_and_bar, n_prefix, groups):
    # With 4 prefixes, each of 16 consecutive paths: the cached sampler encodes each prefix
    # once and copies it to its paths; the re-encoding one encodes every path's own.
    model, bar = model_and_bar
    prefix_x, prefix_y = torch.randn(groups, n_prefix, 3).squeeze(0), torch.randn(groups, n_prefix).squeeze(0)
    inputs = draw_inputs(64, 12, 3, torch.Generator().manual_seed(0))
    args = (model, bar, inputs, prefix_x, prefix_y)
    fast = resample_model(*args, generator=torch.Generator().manual_seed(1))
    slow = resample_reencode(*args, generator=torch.Generator().manual_seed(1))
    assert fast.x.shape == (64, n_prefix + 12, 3)
    assert torch.equal(fast.x, slow.x)
    torch.testing.assert_close(fast.y, slow.y, rtol=0, atol=1e-4)
    assert torch.equal(fast.x[:, :n_prefix], prefix_x.reshape(groups, n_prefix, 3).repeat_interleave(64 // groups, 0))
    assert torch.equal(fast.x[:, n_prefix:], inputs)


def test_every_sampler_resamples_along_the_inputs_it_is_given(model_and_bar):
    # The PFN and the exact references see the same x whatever their y draws consume.
    model, bar = model_and_bar
    prefix_x, prefix_y = torch.randn(2, 3), torch.randn(2)
    inputs = draw_inputs(32, 6, 3, torch.Generator().manual_seed(3))
    pool = torch.randn(4, 3)
    runs = [
        resample_model(model, bar, inputs, prefix_x, prefix_y, torch.Generator().manual_seed(4)),
        resample_exact(Ridge(3, 0.25), inputs, prefix_x, prefix_y, torch.Generator().manual_seed(5)),
        resample_exact(PoolBayes(pool, 0.25), inputs, prefix_x, prefix_y, torch.Generator().manual_seed(6)),
    ]
    for run in runs:
        assert torch.equal(run.x[:, 2:].double(), inputs.double())
        assert torch.equal(run.x[:, :2].double(), prefix_x.double().expand(32, -1, -1))
    assert not torch.equal(runs[1].y, runs[2].y)


def test_samples_come_from_the_full_bar_distribution(model_and_bar):
    model, bar = model_and_bar
    out = resample_model(model, bar, draw_inputs(2000, 1, 3), generator=torch.Generator().manual_seed(2))
    y = out.y[:, 0]
    # Continuous draws: none sit at bucket centres; and from the whole distribution, tails
    # included: the head's cdf at each draw (its probability integral transform) is uniform.
    assert y.unique().numel() == 2000
    with torch.no_grad():
        outputs = model(out.x[:, :1], out.y[:, :1])[:, 0].double()
    assert stats.kstest(bar.cdf(outputs, y.double()).numpy(), "uniform").pvalue > 1e-3


def test_least_squares_is_minimum_norm_when_underdetermined():
    x = torch.randn(5, 2, 4, dtype=torch.float64)
    y = torch.randn(5, 2, dtype=torch.float64)
    w = least_squares(x, y)
    torch.testing.assert_close(torch.einsum("bkd,bd->bk", x, w), y)  # interpolates
    # Minimum norm: w lies in the row space of X.
    proj = x.transpose(1, 2) @ torch.linalg.solve(x @ x.transpose(1, 2), x)
    torch.testing.assert_close((proj @ w.unsqueeze(-1)).squeeze(-1), w)


def test_exact_gaussian_resampling_reproduces_the_posterior():
    noise_var, n, n_paths, n_steps = 0.25, 6, 4000, 600
    batch = sample_batch(1, n, noise_var, StandardGaussian(3), torch.Generator().manual_seed(5))
    prefix_x, prefix_y = batch.x[0].double(), batch.y[0].double()
    inputs = draw_inputs(n_paths, n_steps, 3, torch.Generator().manual_seed(9))
    out = resample_exact(Ridge(3, noise_var), inputs, prefix_x, prefix_y, generator=torch.Generator().manual_seed(6))
    mu, cov = ridge_posterior(prefix_x[None], prefix_y[None], noise_var)
    for d in range(3):
        sd = cov[0, d, d].sqrt().item()
        samples = out.w_hat[:, d].numpy()
        # The OLS functional adds noise of variance ~ noise_var / (n + N): 0.4 % of sd here.
        assert stats.kstest(samples, "norm", args=(mu[0, d].item(), sd)).pvalue > 1e-3
        ratio = samples.std() / sd
        assert abs(ratio - 1) < 3 / math.sqrt(2 * n_paths) + 0.005, ratio


def test_exact_gaussian_prior_is_standard_normal():
    out = resample_exact(Ridge(2, 0.25), draw_inputs(3000, 400, 2), generator=torch.Generator().manual_seed(7))
    for d in range(2):
        assert stats.kstest(out.w_hat[:, d].numpy(), "norm").pvalue > 1e-3


def test_exact_pool_resampling_picks_tasks_with_posterior_frequencies():
    noise_var, n_paths = 1.0, 4000
    pool = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]], dtype=torch.float64)
    prefix_x = torch.tensor([[0.5, 0.4]], dtype=torch.float64)
    prefix_y = torch.tensor([0.3], dtype=torch.float64)
    inputs = draw_inputs(n_paths, 300, 2, torch.Generator().manual_seed(10))
    generator = torch.Generator().manual_seed(8)
    out = resample_exact(PoolBayes(pool, noise_var), inputs, prefix_x, prefix_y, generator=generator)
    nearest = torch.cdist(out.w_hat, pool).argmin(-1)
    counts = torch.bincount(nearest, minlength=4).numpy()
    weights = dmmse_posterior(prefix_x[None], prefix_y[None], pool, noise_var)[0].numpy()
    assert weights.min() > 0.05  # a posterior worth testing: no task negligible
    assert stats.chisquare(counts, weights * n_paths).pvalue > 1e-3
    # Each path ends near its task: OLS over 300 points with noise sd 1 is within ~0.06.
    assert torch.cdist(out.w_hat, pool).min(-1).values.max() < 0.5


def predictive_snapshot(state, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Everything a state's predictive at x says: its components, moments, density and CDF at
    y, and a seeded draw."""
    predictive = state.predictive(x)
    return [
        predictive.log_weights,
        predictive.means,
        predictive.variances,
        predictive.mean,
        predictive.variance,
        predictive.log_prob(y),
        predictive.cdf(y),
        predictive.sample(torch.Generator().manual_seed(0)),
    ]


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


EXACT_PREDICTORS = {
    "ridge": Ridge(3, 0.25),
    "pool": PoolBayes(torch.randn(5, 3, generator=torch.Generator().manual_seed(11)), 0.25),
    "spike_slab": MixtureBayes(spike_slab(3, 0.4, 1.5), 0.25),
    "clusters": MixtureBayes(clusters(3, 3, 1.5, 0.3, 4), 0.25),
}


@pytest.mark.parametrize("name", EXACT_PREDICTORS)
def test_a_copied_state_continues_independently(name):
    predictor = EXACT_PREDICTORS[name]
    g = torch.Generator().manual_seed(12)
    x, x_query = torch.randn(8, 10, 3, generator=g, dtype=torch.float64), torch.randn(8, 3, generator=g).double()
    y, y_query = torch.randn(8, 10, generator=g, dtype=torch.float64), torch.randn(8, generator=g).double()
    state = predictor.start(8)
    for i in range(4):
        # As the resampler does: the predictive at x, then the pair at the same x.
        state.predictive(x[:, i])
        state.observe(x[:, i], y[:, i])
    before = predictive_snapshot(state, x_query, y_query)
    fork = state.copy()
    for i in range(4, 10):
        fork.predictive(x[:, i])
        fork.observe(x[:, i], y[:, i])
    # The copy's further pairs leave the original as it was ...
    assert_same(predictive_snapshot(state, x_query, y_query), before)
    assert not torch.equal(predictive_snapshot(fork, x_query, y_query)[3], before[3])  # (the copy did move)
    # ... and the original, observing the same pairs as the copy, reaches the same predictive.
    for i in range(4, 10):
        state.predictive(x[:, i])
        state.observe(x[:, i], y[:, i])
    assert_same(predictive_snapshot(state, x_query, y_query), predictive_snapshot(fork, x_query, y_query))


@pytest.mark.parametrize("name", EXACT_PREDICTORS)
@pytest.mark.parametrize("n_prefix", [0, 4])
def test_resampling_by_task_draws_the_paths_of_step_by_step_resampling(name, n_prefix):
    """De Finetti: a task from the posterior given the prefix, then the path from it, is in
    distribution the exact predictive sampled step by step. Two-sample KS per coordinate of
    w_hat and of the path's last y, 4000 paths each; the critical distance at alpha = 1e-4 per
    comparison (16 configurations x 4 comparisons: a 0.6 % chance that any correct draw fails;
    the seeds are fixed, so the outcome is)."""
    predictor, n_paths = EXACT_PREDICTORS[name], 4000
    g = torch.Generator().manual_seed(13)
    task = torch.randn(3, generator=g, dtype=torch.float64)
    prefix_x = torch.randn(n_prefix, 3, generator=g, dtype=torch.float64)
    prefix_y = prefix_x @ task + 0.5 * torch.randn(n_prefix, generator=g, dtype=torch.float64)
    inputs = draw_inputs(n_paths, 8, 3, torch.Generator().manual_seed(14))
    steps = resample_exact(predictor, inputs, prefix_x, prefix_y, torch.Generator().manual_seed(15))
    by_task = resample_by_task(predictor, inputs, prefix_x, prefix_y, torch.Generator().manual_seed(16))
    assert torch.equal(by_task.x, steps.x)
    critical = math.sqrt(-math.log(1e-4 / 2) / 2) * math.sqrt(2 / n_paths)
    for a, b in [*zip(steps.w_hat.T, by_task.w_hat.T, strict=True), (steps.y[:, -1], by_task.y[:, -1])]:
        assert stats.ks_2samp(a.numpy(), b.numpy()).statistic < critical


def test_resampling_by_task_samples_the_pool_posterior_and_nothing_else():
    """Each path keeps one pool task (its w_hat is near it), chosen with the posterior's
    frequencies."""
    noise_var, n_paths = 1.0, 4000
    pool = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]], dtype=torch.float64)
    prefix_x, prefix_y = torch.tensor([[0.5, 0.4]], dtype=torch.float64), torch.tensor([0.3], dtype=torch.float64)
    inputs = draw_inputs(n_paths, 300, 2, torch.Generator().manual_seed(10))
    out = resample_by_task(PoolBayes(pool, noise_var), inputs, prefix_x, prefix_y, torch.Generator().manual_seed(8))
    counts = torch.bincount(torch.cdist(out.w_hat, pool).argmin(-1), minlength=4).numpy()
    weights = dmmse_posterior(prefix_x[None], prefix_y[None], pool, noise_var)[0].numpy()
    assert stats.chisquare(counts, weights * n_paths).pvalue > 1e-3
    assert torch.cdist(out.w_hat, pool).min(-1).values.max() < 0.5
