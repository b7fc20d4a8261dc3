import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from lrpfn import bayes
from lrpfn.bayes import NormalMixture, dmmse_nll, dmmse_predictive, ridge_nll, ridge_predictive
from lrpfn.buckets import BarDistribution, prior_borders
from lrpfn.config import ModelConfig
from lrpfn.exact import Ridge, references
from lrpfn.model import PFN
from lrpfn.predictive import (
    compare,
    exact_predictives,
    head_floor,
    kl_divergence,
    prompt_logits,
    prompts,
)
from lrpfn.priors import Pool, StandardGaussian
from lrpfn.tasks import eval_set, master_pool

DIM, NOISE_VAR = 2, 0.1
GAUSSIAN = StandardGaussian(DIM)


def pool_of(size: int, seed: int) -> torch.Tensor:
    return master_pool(size, seed, GAUSSIAN)


@pytest.fixture(scope="module")
def bar():
    return BarDistribution(prior_borders(32, NOISE_VAR, GAUSSIAN, seed=0))


def test_exact_predictives_are_the_oracles_at_the_prompts_position():
    pool = pool_of(16, seed=1)
    batch = eval_set(3, 8, NOISE_VAR, Pool(pool), seed=2)
    ridge_mean, ridge_var = ridge_predictive(batch.x.double(), batch.y.double(), NOISE_VAR)
    dmmse_mean = dmmse_predictive(batch.x.double(), batch.y.double(), pool, NOISE_VAR)
    ridge_loss = ridge_nll(batch.x.double(), batch.y.double(), NOISE_VAR)
    dmmse_loss = dmmse_nll(batch.x.double(), batch.y.double(), pool, NOISE_VAR)
    predictors = references(GAUSSIAN, Pool(pool), NOISE_VAR)
    for prompt in prompts({"pool": batch}, 3, [0, 1, 5, 7]):
        exact = exact_predictives(prompt, predictors)
        # Under N(0, I) ridge is the Bayes predictor: one predictive serves both roles.
        assert set(exact) == {"ridge", "bayes", "dmmse"} and exact["bayes"] is exact["ridge"]
        s, i, y = prompt.sequence, prompt.length, batch.y[prompt.sequence, prompt.length]
        assert float(exact["ridge"].mean) == pytest.approx(ridge_mean[s, i].item(), abs=1e-10)
        assert float(exact["ridge"].variance) == pytest.approx(ridge_var[s, i].item(), rel=1e-10)
        assert float(exact["dmmse"].mean) == pytest.approx(dmmse_mean[s, i].item(), abs=1e-10)
        assert -exact["ridge"].log_density(y).item() == pytest.approx(ridge_loss[s, i].item(), abs=1e-10)
        assert -exact["dmmse"].log_density(y).item() == pytest.approx(dmmse_loss[s, i].item(), abs=1e-10)


@pytest.mark.parametrize("role", ["ridge", "dmmse"])
def test_the_kl_to_the_own_discretisation_matches_an_independent_quadrature(bar, role):
    # The floor a perfect PFN would show: the exact predictive against its best bar
    # approximation (each bucket gets the exact mass), by this module's quadrature and by
    # scipy's adaptive quad between consecutive borders (and out to the span's ends).
    pool = pool_of(8, seed=3)
    batch = eval_set(2, 6, NOISE_VAR, Pool(pool), seed=4)
    for prompt in prompts({"pool": batch}, 2, [0, 3]):
        exact = exact_predictives(prompt, references(GAUSSIAN, Pool(pool), NOISE_VAR))[role]
        logits = bar.fit(exact)
        ours = kl_divergence(exact, bar, logits)

        def integrand(y, exact=exact, logits=logits):
            t = torch.tensor(y, dtype=torch.float64)
            log_p = exact.log_density(t)
            return (log_p.exp() * (log_p - bar.log_prob(logits, t))).item()

        lo, hi = exact.span()
        borders = bar.borders.numpy()
        edges = np.unique(np.concatenate([[lo, hi], borders[(borders > lo) & (borders < hi)]]))
        reference = sum(
            integrate.quad(integrand, a, b, epsabs=1e-13, epsrel=1e-10)[0] for a, b in itertools.pairwise(edges)
        )
        assert ours > 0
        assert ours == pytest.approx(reference, rel=1e-7, abs=1e-10)


def test_the_best_bar_approximation_improves_with_more_buckets():
    pool = pool_of(8, seed=3)
    prompt = prompts({"pool": eval_set(1, 6, NOISE_VAR, Pool(pool), seed=4)}, 1, [3])[0]
    exact = exact_predictives(prompt, references(GAUSSIAN, Pool(pool), NOISE_VAR))["ridge"]
    floors = []
    for n in (16, 64, 256):
        fine = BarDistribution(prior_borders(n, NOISE_VAR, GAUSSIAN, seed=0))
        floors.append(kl_divergence(exact, fine, fine.fit(exact)))
    assert floors[0] > floors[1] > floors[2] > 0


def test_the_mean_kl_over_prior_prompts_is_the_expected_nll_gap(bar):
    # y at every position of a T_true sequence is a draw from the exact (ridge) predictive given
    # the pairs before it, so the mean NLL gap of any model to ridge estimates the mean
    # KL(ridge || model) over the same prompts: the two read-outs must agree within the gap's
    # standard error. The model is a random PFN, far from ridge, so the KL is large.
    torch.manual_seed(0)
    model = PFN(ModelConfig(dim=DIM, n_buckets=32, d_model=16, n_layers=1, n_heads=2, d_mlp=16)).eval()
    batch = eval_set(300, 6, NOISE_VAR, GAUSSIAN, seed=5)
    with torch.no_grad():
        logits = model(batch.x, batch.y).double()
    gaps = (-bar.log_prob(logits, batch.y.double()) - ridge_nll(batch.x.double(), batch.y.double(), NOISE_VAR)).ravel()
    kls = []
    predictors = references(GAUSSIAN, None, NOISE_VAR)
    for prompt in prompts({"true": batch}, 300, list(range(6))):
        exact = exact_predictives(prompt, predictors)["ridge"]
        kls.append(kl_divergence(exact, bar, logits[prompt.sequence, prompt.length]))
    # Sequences are independent; positions within one are not: the SE is over sequence means.
    per_sequence = gaps.reshape(300, 6).mean(1)
    se = per_sequence.std().item() / math.sqrt(300)
    assert np.mean(kls) > 0.1
    assert abs(np.mean(kls) - gaps.mean().item()) < 3 * se, (np.mean(kls), gaps.mean().item(), se)


def test_prompt_logits_are_the_full_forwards_at_the_query(bar):
    torch.manual_seed(1)
    model = PFN(ModelConfig(dim=DIM, n_buckets=32, d_model=16, n_layers=2, n_heads=2, d_mlp=16)).eval()
    batch = eval_set(2, 7, NOISE_VAR, GAUSSIAN, seed=6)
    with torch.no_grad():
        full = model(batch.x, batch.y)
    for prompt in prompts({"true": batch}, 2, [0, 4, 6]):
        torch.testing.assert_close(prompt_logits(model, prompt), full[prompt.sequence, prompt.length])


def test_compare_tables_integrate_to_one(bar):
    torch.manual_seed(2)
    model = PFN(ModelConfig(dim=DIM, n_buckets=32, d_model=16, n_layers=1, n_heads=2, d_mlp=16)).eval()
    pool = pool_of(4, seed=7)
    batch = eval_set(1, 6, NOISE_VAR, Pool(pool), seed=8)
    predictors = references(GAUSSIAN, Pool(pool), NOISE_VAR)
    table, density = compare({0: model}, bar, prompts({"pool": batch}, 1, [0, 2, 5]), predictors)
    assert len(table) == 3 and (table[["kl_ridge", "kl_bayes", "kl_dmmse"]] > 0).all().all()
    # Under N(0, I) the ridge and Bayes roles are one predictor.
    for name in ("kl", "mean", "sd"):
        assert table[f"{name}_ridge"].equals(table[f"{name}_bayes"])
    for _, curve in density.groupby("prompt_length"):
        y = curve.y.to_numpy()
        h = y[1] - y[0]
        for column in ("density_model", "density_ridge", "density_bayes", "density_dmmse"):
            f = curve[column].to_numpy()
            # Trapezoid error: at most h/2 per unit of total variation for a piecewise smooth
            # density (the bar density jumps at bucket borders), plus the mass off the grid.
            bound = 0.5 * h * np.abs(np.diff(f)).sum() + 1e-4
            assert abs(np.trapezoid(f, y) - 1) < bound, column
    # The Gaussian-prior predictive at an empty prompt is N(0, |x|^2 + noise_var).
    first = table[table.prompt_length == 0].iloc[0]
    assert first.sd_ridge == pytest.approx(math.sqrt(first.query_norm**2 + NOISE_VAR), rel=1e-9)
    assert stats.norm(0, first.sd_ridge).pdf(0) > 0


def test_mixture_density_is_the_same_in_chunks(monkeypatch):
    pool = pool_of(64, seed=9)
    prompt = prompts({"pool": eval_set(1, 4, NOISE_VAR, Pool(pool), seed=10)}, 1, [2])[0]
    mixture = exact_predictives(prompt, references(GAUSSIAN, Pool(pool), NOISE_VAR))["dmmse"]
    y = torch.linspace(-6, 6, 1001)
    whole = mixture.log_density(y)
    monkeypatch.setattr(bayes, "_CHUNK_Y", 64 * 7)  # 7 values of y per chunk
    torch.testing.assert_close(mixture.log_density(y), whole, rtol=0, atol=0)
    # and a density: it integrates to one over its span
    lo, hi = mixture.span()
    grid = torch.linspace(lo, hi, 20001, dtype=torch.float64)
    assert torch.trapezoid(mixture.log_density(grid).exp(), grid).item() == pytest.approx(1, abs=1e-9)


def test_mixture_variance_is_free_of_cancellation():
    # Two unit-variance components at 1e8 and 1e8 + 1, equal weights: variance 1 + 1/4.
    mixture = NormalMixture(
        torch.full((1, 2), math.log(0.5), dtype=torch.float64),
        torch.tensor([[1e8, 1e8 + 1]], dtype=torch.float64),
        torch.ones(1, 2, dtype=torch.float64),
    )
    assert float(mixture.mean) == pytest.approx(1e8 + 0.5, rel=1e-15)
    assert float(mixture.variance) == pytest.approx(1.25, rel=1e-12)
    # The cancelling form E[y^2] - E[y]^2 of the same mixture loses it: both terms are near
    # 1e16, where float64 values are 2 apart, so their difference is even.
    second_moment = (mixture.log_weights.exp() * (mixture.variances + mixture.means**2)).sum(-1)
    assert abs(float(second_moment - mixture.mean**2) - 1.25) >= 0.75


MIXTURES = {  # normalised weights, means, variances
    "one component": ([1.0], [0.3], [2.0]),
    "three components": ([0.2, 0.5, 0.3], [-2.0, 0.5, 3.0], [0.25, 1.0, 0.04]),
}


@pytest.mark.parametrize("name", MIXTURES)
def test_mixture_log_prob_cdf_and_sample_agree(name):
    weights, means, variances = (torch.tensor(v, dtype=torch.float64) for v in MIXTURES[name])
    single = NormalMixture(weights.log()[None], means[None], variances[None])

    def at(y: float) -> torch.Tensor:
        return torch.tensor([y], dtype=torch.float64)

    # The cdf is the integral of exp(log_prob) (scipy's adaptive quadrature), from beyond the
    # span's lower end, through the components, to beyond its upper end.
    lo, hi = single.span()
    edges = [lo, -3.0, -2.0, 0.0, 0.6, 3.0, 4.0, hi]
    assert float(single.cdf(at(lo))) < 1e-30 and float(single.cdf(at(hi))) == pytest.approx(1, abs=1e-15)
    for a, b in itertools.pairwise(edges):
        mass = integrate.quad(lambda t: single.log_prob(at(t)).exp().item(), a, b, epsabs=1e-13, epsrel=1e-10)[0]
        assert float(single.cdf(at(b)) - single.cdf(at(a))) == pytest.approx(mass, rel=1e-9, abs=1e-12), (a, b)
    # One draw from each of n copies of the mixture: the cdf at the draws is uniform. A KS
    # p-value below 1e-3 is a false alarm at rate 1e-3; with n = 20000 it detects a cdf off by
    # more than 1.95 / sqrt(n) = 0.014 somewhere, as for the draws against a mixture with 1.5x
    # the variances (p-values of 5e-17 and below).
    n = 20000
    batch = NormalMixture(weights.log().expand(n, -1), means.expand(n, -1), variances.expand(n, -1))
    draws = batch.sample(torch.Generator().manual_seed(13))
    assert draws.shape == (n,) and draws.dtype == torch.float64
    assert stats.kstest(batch.cdf(draws).numpy(), "uniform").pvalue > 1e-3
    wider = NormalMixture(batch.log_weights, batch.means, 1.5 * batch.variances)
    assert stats.kstest(wider.cdf(draws).numpy(), "uniform").pvalue < 1e-6


def test_the_head_floor_is_the_discretised_exact_predictive_at_every_position(bar):
    """Sequence by sequence and position by position, the floor's mean and NLL are those of the
    KL-best bars of the prompt's closed-form ridge predictive."""
    batch = eval_set(6, 7, NOISE_VAR, GAUSSIAN, seed=11)
    mean, nll = head_floor(bar, Ridge(DIM, NOISE_VAR), batch.x, batch.y)
    for b in range(6):
        for i in range(7):
            exact = Ridge(DIM, NOISE_VAR).prompt_predictive(batch.x[b, :i], batch.y[b, :i], batch.x[b, i])
            logits = bar.fit(exact)[0]
            assert mean[b, i].item() == pytest.approx(bar.mean(logits).item(), rel=1e-10, abs=1e-12)
            expected = -bar.log_prob(logits, batch.y[b, i].double()).item()
            assert nll[b, i].item() == pytest.approx(expected, rel=1e-10)


def test_the_head_floors_nll_gap_is_the_expected_kl_to_its_bars(bar):
    """y at each position of a prior sequence is a draw from the exact predictive, so the mean
    NLL gap of the floor to ridge estimates the mean KL(exact || its KL-best bars) by quadrature
    over the same prompts (within 4 standard errors of the gap)."""
    batch = eval_set(4000, 4, NOISE_VAR, GAUSSIAN, seed=12)  # the gap is heavy tailed: many sequences
    _, floor_nll = head_floor(bar, Ridge(DIM, NOISE_VAR), batch.x, batch.y)
    exact_nll = ridge_nll(batch.x.double(), batch.y.double(), NOISE_VAR)
    for i in (0, 3):
        gap = (floor_nll[:, i] - exact_nll[:, i]).numpy()
        kls = []
        for b in range(len(gap)):
            exact = Ridge(DIM, NOISE_VAR).prompt_predictive(batch.x[b, :i], batch.y[b, :i], batch.x[b, i])
            kls.append(kl_divergence(exact, bar, bar.fit(exact)))
        se = gap.std(ddof=1) / math.sqrt(len(gap))
        assert abs(gap.mean() - np.mean(kls)) < 4 * se, (i, gap.mean(), np.mean(kls), se)
        assert np.mean(kls) > 0


def test_the_head_floor_falls_with_finer_buckets():
    """Paired over the same sequences: 256 buckets leave a smaller NLL gap than 32."""
    batch = eval_set(2000, 6, NOISE_VAR, GAUSSIAN, seed=13)
    exact_nll = ridge_nll(batch.x.double(), batch.y.double(), NOISE_VAR)
    gaps = []
    for n in (32, 256):
        fine = BarDistribution(prior_borders(n, NOISE_VAR, GAUSSIAN, seed=0, n_samples=1 << 18))
        gaps.append((head_floor(fine, Ridge(DIM, NOISE_VAR), batch.x, batch.y)[1] - exact_nll).mean(1).numpy())
    diff = gaps[0] - gaps[1]
    assert diff.mean() > 5 * diff.std(ddof=1) / math.sqrt(len(diff))
