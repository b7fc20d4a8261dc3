"""The premise read-outs (lrpfn.premise) on exact predictors, negative controls and small PFNs."""

import functools
import itertools
import math

import pytest
import torch
from scipy import integrate, stats

from lrpfn.bayes import NormalMixture, ridge_posterior
from lrpfn.buckets import build_head
from lrpfn.controls import ForgettingRidge, InflatedRidge, TemperedRidge
from lrpfn.exact import PoolBayes, Ridge
from lrpfn.model import PFN, ModelConfig
from lrpfn.premise import (
    ExactSequences,
    HeadPredictions,
    MixturePredictions,
    ModelSequences,
    exchangeability,
    interval_coverage,
    kl_on_nodes,
    martingale,
    nodes,
    posterior_intervals,
    resampled_coverage,
)
from lrpfn.priors import StandardGaussian
from lrpfn.resample import resample_by_task, resample_exact

DIM, NOISE = 4, 0.125


def prompts(seed: int, batch: int = 64, length: int = 4, queries: int = 1, dtype=torch.float64):
    """Prompts from the Gaussian prior and query inputs, with the generator that continues them."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(batch, DIM, generator=g, dtype=torch.float64)
    x = torch.randn(batch, length, DIM, generator=g, dtype=torch.float64)
    y = (x @ w.unsqueeze(-1)).squeeze(-1) + NOISE**0.5 * torch.randn(batch, length, generator=g, dtype=torch.float64)
    q = torch.randn(batch, queries, DIM, generator=g, dtype=torch.float64)
    return x.to(dtype), y.to(dtype), q.to(dtype), g


def pooled_z(drift: torch.Tensor, se: torch.Tensor) -> torch.Tensor:
    """The drift summed over independent prompts (one query each) in units of its standard error, per horizon."""
    return drift.sum((0, 1)) / se.pow(2).sum((0, 1)).sqrt()


def mixture(means, variances) -> MixturePredictions:
    means = torch.as_tensor(means, dtype=torch.float64).reshape(1, 1, 1)
    variances = torch.as_tensor(variances, dtype=torch.float64).reshape(1, 1, 1)
    return MixturePredictions(NormalMixture(torch.zeros_like(means), means, variances))


def test_quadrature_gives_the_gaussian_kl_in_closed_form():
    p, q = mixture(0.4, 0.8), mixture(-0.3, 1.7)
    points, weights = nodes(p)
    kl = kl_on_nodes(p.log_density(points), q.log_density(points), weights).item()
    exact = 0.5 * (math.log(1.7 / 0.8) + (0.8 + 0.7**2) / 1.7 - 1)
    assert kl == pytest.approx(exact, abs=1e-12)


@pytest.mark.parametrize("kind", ["bar", "location_scale"])
def test_head_densities_integrate_to_one_on_the_nodes(kind):
    head = build_head(kind, 64, NOISE, StandardGaussian(DIM))
    outputs = torch.randn(8, 3, head.n_outputs, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    predictions = HeadPredictions(head, outputs)
    points, weights = nodes(predictions)
    mass = (weights * predictions.log_density(points).exp()).sum(-1)
    # Pieces split at the bucket borders: exact but for the tails beyond 10 sd (measured 1.2e-11;
    # 256 unsplit pieces left 0.07).
    torch.testing.assert_close(mass, torch.ones_like(mass), rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", ["bar", "location_scale"])
def test_head_kl_to_an_average_is_exact_on_pieces_split_at_every_kink(kind):
    # Today's predictive against the average of three later ones, as the martingale read-out
    # compares them; the location-scale heads sit elsewhere, so their kinks are not today's.
    head = build_head(kind, 64, NOISE, StandardGaussian(DIM))
    s = 3
    outputs = torch.randn(1 + s, 1, head.n_outputs, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    if kind == "location_scale":
        outputs[1:, :, :2] += torch.tensor([0.3, -0.5], dtype=torch.float64)
    today, later = HeadPredictions(head, outputs[:1]), HeadPredictions(head, outputs[1:])
    points, weights = nodes(today, kinks=later.grouped_kinks(s))
    kl = kl_on_nodes(today.log_density(points), later.log_mean_density(s, points), weights).item()

    # Reference: adaptive quadrature of the pointwise densities between consecutive kinks of all
    # four, over the same span (today's mean +- 10 sd).
    def integrand(y: float) -> float:
        at = torch.tensor([y], dtype=torch.float64)
        log_p = head.log_prob(outputs[0, 0], at).item()
        log_q = torch.logsumexp(head.log_prob(outputs[1:, 0], at.expand(s)), 0).item() - math.log(s)
        return math.exp(log_p) * (log_p - log_q)

    mean, sd = today.mean.item(), today.variance.sqrt().item()
    lo, hi = mean - 10 * sd, mean + 10 * sd
    kinks = torch.cat([today.kinks().flatten(), later.kinks().flatten()]).tolist()
    edges = sorted({lo, hi, *(k for k in kinks if lo < k < hi)})
    exact = sum(integrate.quad(integrand, a, b, epsabs=1e-14, epsrel=1e-12)[0] for a, b in itertools.pairwise(edges))
    # Measured 2.6e-13 (bar) and 7e-14; with today's kinks alone the location-scale KL was off by 0.03.
    assert kl == pytest.approx(exact, abs=1e-12)


@pytest.mark.parametrize("noise_var", [NOISE, "per task"])
def test_a_pools_average_predictive_is_every_continuations_components_summed(noise_var):
    # A pool's continuations share their components (one per task), so their average is one
    # mixture with averaged weights; it must equal the sum over all S x C components, also far
    # out where today's predictive still has mass and a truncated mixture would not.
    g = torch.Generator().manual_seed(5)
    tasks = torch.randn(256, DIM, generator=g, dtype=torch.float64)
    if noise_var == "per task":
        noise_var = NOISE * (0.5 + torch.rand(256, generator=g, dtype=torch.float64))
    s, x, y, q, g = 16, *prompts(6, batch=3, queries=2)
    sequences = ExactSequences(PoolBayes(tasks, noise_var), 3 * s)
    sequences.observe(x.repeat_interleave(s, 0), y.repeat_interleave(s, 0))
    many = q.repeat_interleave(s, 0)
    today = sequences.predict(many).rows(slice(None, None, s))
    for _ in range(12):  # long enough that each continuation settles on a few tasks
        step_x = torch.randn(3 * s, 1, DIM, generator=g, dtype=torch.float64)
        sequences.observe(step_x, sequences.predict(step_x).sample(g))
    later = sequences.predict(many)
    points, weights = nodes(today)
    m = later.mixture
    shape = (3, s, 2, 1, -1)
    log_q = m.log_weights.reshape(shape) + torch.distributions.Normal(
        m.means.reshape(shape), m.variances.reshape(shape).sqrt()
    ).log_prob(points.unsqueeze(1).unsqueeze(-1))
    brute = torch.logsumexp(log_q, (1, -1)) - math.log(s)
    averaged = later.log_mean_density(s, points)
    # Measured 4e-15 at the points where today's density exceeds e^-30.
    held = today.log_density(points) > -30
    torch.testing.assert_close(averaged[held], brute[held], rtol=0, atol=1e-12)
    kl, exact = (kl_on_nodes(today.log_density(points), v, weights) for v in (averaged, brute))
    torch.testing.assert_close(kl, exact, rtol=0, atol=1e-14)


def test_exact_ridge_is_a_martingale_and_the_tempered_posterior_is_not():
    """Likelihood to the power 1/2: the mean moves as Bayes's (no drift), the variance does not.
    Pooled over 64 independent prompts, the exact predictor's drifts are N(0, 1) in SE units
    (|z| ≤ 2.0 over seeds 0-3); the tempered one's variance drift at k = 16 was -7.6 to -12.1 SE."""
    horizons = [1, 16]
    x, y, q, g = prompts(0)
    exact = martingale(lambda b: ExactSequences(Ridge(DIM, NOISE), b), x, y, q, 200, horizons, g)
    x, y, q, g = prompts(0)
    tempered = martingale(lambda b: ExactSequences(TemperedRidge(DIM, NOISE, 0.5), b), x, y, q, 200, horizons, g)
    assert pooled_z(exact.mean_drift, exact.mean_drift_se).abs().max() < 4
    assert pooled_z(exact.var_drift, exact.var_drift_se).abs().max() < 4
    assert pooled_z(tempered.mean_drift, tempered.mean_drift_se).abs().max() < 4
    assert pooled_z(tempered.var_drift, tempered.var_drift_se)[-1] < -5
    # The KL of the S-sample average grows with k for both (the floor); tempering adds to it.
    assert tempered.kl[..., -1].mean() > 1.5 * exact.kl[..., -1].mean()


def test_inflated_variance_is_still_a_martingale():
    """Every draw 1.5 x as noisy, the posterior over w exact: all moments scale together, so the
    read-out cannot tell it from Bayes (coverage does)."""
    x, y, q, g = prompts(1)
    inflated = martingale(lambda b: ExactSequences(InflatedRidge(DIM, NOISE, 1.5), b), x, y, q, 200, [4], g)
    assert pooled_z(inflated.var_drift, inflated.var_drift_se).abs().max() < 4
    state = Ridge(DIM, NOISE).start(64)
    for i in range(x.shape[1]):
        state.observe(x[:, i], y[:, i])
    torch.testing.assert_close(inflated.variance, 1.5 * state.predictive(q[:, 0]).variances)


def test_exact_predictor_is_exchangeable_and_forgetting_is_not():
    x, y, q, g = prompts(2, batch=16, length=8, queries=2)
    exact = exchangeability(lambda b: ExactSequences(Ridge(DIM, NOISE), b), x, y, q, 20, g)
    forgetting = exchangeability(lambda b: ExactSequences(ForgettingRidge(DIM, NOISE, 0.7), b), x, y, q, 20, g)
    assert exact.max_kl.abs().max() <= 1e-10
    assert forgetting.mean_kl.mean() > 1e-3  # measured 0.016-0.020 over three seeds
    assert (forgetting.max_kl >= forgetting.mean_kl).all()


def small_pfn(layers: int, kind: str = "location_scale"):
    torch.manual_seed(0)
    config = ModelConfig(dim=DIM, n_buckets=32, d_model=32, n_layers=layers, n_heads=2, d_mlp=64, head=kind)
    model = PFN(config).eval()
    with torch.no_grad():  # non-trivial weights, so the context matters
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model, build_head(kind, 32, NOISE, StandardGaussian(DIM))


@pytest.mark.parametrize("kind", ["bar", "location_scale"])
def test_model_sequences_predict_what_the_full_forward_does(kind):
    model, head = small_pfn(2, kind)
    x, y, q, _ = prompts(3, batch=8, length=6, queries=3, dtype=torch.float32)
    sequences = ModelSequences(model, head, 8, 6, queries=3)
    sequences.observe(x, y)
    outputs = sequences.predict(q).outputs
    for j in range(3):
        full = model(torch.cat([x, q[:, j : j + 1]], 1), torch.cat([y, torch.zeros(8, 1)], 1))[:, -1]
        torch.testing.assert_close(outputs[:, j], full, rtol=0, atol=1e-5)


def test_order_leaks_into_a_pfn_only_through_depth():
    """With one layer the query reads the pairs' embeddings, which do not depend on the order;
    from two layers on a pair token has attended to the pairs before it. In float64: a
    bar density's KL to a copy shifted by round-off is first order in the shift (its steps
    move), so float32's 1e-7 would read as a KL of 1e-7."""
    x, y, q, g = prompts(4, batch=8, length=8, queries=2)
    kl = {}
    for layers in (1, 2):
        model, head = small_pfn(layers)
        model = model.double()
        readout = exchangeability(lambda b, m=model, h=head: ModelSequences(m, h, b, 8, queries=2), x, y, q, 10, g)
        kl[layers] = readout.mean_kl.mean().item()
    assert abs(kl[1]) < 1e-14  # measured 9e-17
    assert kl[2] > 1e-4


def test_martingale_read_out_runs_a_pfn_through_its_cache():
    model, head = small_pfn(2)
    x, y, q, g = prompts(5, batch=4, length=3, queries=2, dtype=torch.float32)
    readout = martingale(lambda b: ModelSequences(model, head, b, 3 + 4, queries=2), x, y, q, 16, [1, 4], g)
    assert readout.kl.shape == readout.mean_drift.shape == (4, 2, 2)
    assert torch.isfinite(readout.var_drift).all() and (readout.kl > -1e-9).all()


def test_horizons_and_continuations_are_checked():
    x, y, q, g = prompts(6, batch=2)
    make = lambda b: ExactSequences(Ridge(DIM, NOISE), b)
    with pytest.raises(ValueError, match="horizons"):
        martingale(make, x, y, q, 8, [4, 1], g)
    with pytest.raises(ValueError, match="continuations"):
        martingale(make, x, y, q, 1, [1], g)


def coverage_tasks(seed: int, tasks: int, length: int = 4):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(tasks, DIM, generator=g, dtype=torch.float64)
    x = torch.randn(tasks, length, DIM, generator=g, dtype=torch.float64)
    y = (x @ w.unsqueeze(-1)).squeeze(-1) + NOISE**0.5 * torch.randn(tasks, length, generator=g, dtype=torch.float64)
    return w, x, y


def test_intervals_of_a_few_draws_hold_a_further_draw_of_their_law_at_the_nominal_rate():
    # 20 draws per task and the truth a 21st: central intervals at the plotting positions
    # p (P + 1) cover at the nominal rate (40000 intervals per level: SE 0.0025 and 0.0015;
    # measured 0.498 and 0.900); the (P - 1) p positions of torch.quantile gave 0.817 at 90 %.
    g = torch.Generator().manual_seed(0)
    samples = torch.randn(20000, 20, 2, generator=g, dtype=torch.float64)
    truth = torch.randn(20000, 2, generator=g, dtype=torch.float64)
    levels = torch.tensor([0.5, 0.9], dtype=torch.float64)
    covers = interval_coverage(samples, truth, levels.tolist())["covers"].double().mean((0, 2))
    se = (levels * (1 - levels) / 40000).sqrt()
    assert ((covers - levels).abs() < 4 * se).all()


def test_exact_posterior_intervals_cover_at_the_nominal_rate():
    """On 4000 tasks from the prior (16000 coordinates) a coverage's SE is 0.004 at 50 % and
    0.0024 at 90 %; the quantiles match the Gaussian's (measured 1.1e-12)."""
    w, x, y = coverage_tasks(7, 4000)
    lower, upper = posterior_intervals(Ridge(DIM, NOISE), x, y, [0.5, 0.9])
    mean, cov = ridge_posterior(x, y, NOISE)
    sd = cov.diagonal(dim1=-2, dim2=-1).sqrt()
    torch.testing.assert_close(upper[:, 1], mean + stats.norm.ppf(0.95) * sd, rtol=0, atol=1e-11)
    torch.testing.assert_close(lower[:, 0], mean - stats.norm.ppf(0.75) * sd, rtol=0, atol=1e-11)
    covers = ((lower <= w.unsqueeze(1)) & (w.unsqueeze(1) <= upper)).double().mean((0, 2))
    assert abs(covers[0] - 0.5) < 4 * 0.004 and abs(covers[1] - 0.9) < 4 * 0.0024


def test_inflated_predictive_overcovers_beyond_the_reference():
    """1.5 x the exact variance widens every resampled interval: over 500 tasks x 4 coordinates
    its 90 % coverage exceeded the reference's by 14.6-17.0 paired SE at 1000 tasks (seeds 0-2);
    the exact step-by-step resampler, the same distribution as the reference's, within 2.1 SE."""
    w, x, y = coverage_tasks(8, 500)
    args = (w, x, y, 100, 16, [0.5, 0.9])
    reference = resampled_coverage(functools.partial(resample_by_task, Ridge(DIM, NOISE)), *args, seed=3)
    inflated = resampled_coverage(functools.partial(resample_exact, InflatedRidge(DIM, NOISE, 1.5)), *args, seed=3)
    same = resampled_coverage(functools.partial(resample_exact, Ridge(DIM, NOISE)), *args, seed=3)

    def paired_z(a, b):
        diff = (a["covers"].double() - b["covers"].double())[:, 1].flatten()
        return (diff.mean() / diff.std() * len(diff) ** 0.5).item()

    assert paired_z(inflated, reference) > 5
    assert abs(paired_z(same, reference)) < 4
    assert (inflated["width"].mean() / reference["width"].mean()).item() == pytest.approx(1.5**0.5, rel=0.05)
    assert reference["spread"].shape == (500, DIM)


def test_samplers_take_one_prefix_per_group_of_paths():
    """Three prefixes, each of 400 consecutive paths: every path starts with its own, and each
    group's mean w_hat is its posterior mean (24-point paths; 4 SE)."""
    _, x, y = coverage_tasks(9, 3)
    inputs = torch.randn(1200, 20, DIM, generator=torch.Generator().manual_seed(0))
    out = resample_by_task(Ridge(DIM, NOISE), inputs, x, y, torch.Generator().manual_seed(1))
    assert torch.equal(out.x[:, :4], x.repeat_interleave(400, 0))
    w_hat = out.w_hat.reshape(3, 400, DIM)
    mean, _ = ridge_posterior(x, y, NOISE)
    se = w_hat.std(1) / 400**0.5
    assert ((w_hat.mean(1) - mean).abs() < 4 * se + 0.02).all()
    with pytest.raises(ValueError, match="split evenly"):
        resample_exact(Ridge(DIM, NOISE), inputs[:1000], x, y)
