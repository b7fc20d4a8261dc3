import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

from lrpfn.buckets import BarDistribution, build_head, prior_borders
from lrpfn.priors import StandardGaussian

N_BUCKETS = 16


@pytest.fixture(scope="module")
def borders():
    return prior_borders(N_BUCKETS, noise_var=0.25, prior=StandardGaussian(4), seed=0, n_samples=1 << 18)


@pytest.fixture(scope="module")
def bar(borders):
    return BarDistribution(borders)


@pytest.fixture(scope="module")
def logits():
    # Peaked somewhere inside, with real mass in both tails.
    g = torch.Generator().manual_seed(0)
    return torch.randn(N_BUCKETS, generator=g, dtype=torch.float64) * 1.5


def density(bar, logits, y):
    return math.exp(bar.log_prob(logits, torch.tensor(y, dtype=torch.float64)).item())


def quad(f, bar, lo=-math.inf, hi=math.inf):
    """Integrate over the real line, split at every border so quad sees smooth pieces."""
    b = bar.borders.tolist()
    edges = [lo] + [e for e in b[1:-1] if lo < e < hi] + [hi]
    return sum(integrate.quad(f, a, c, epsabs=1e-12, epsrel=1e-10, limit=200)[0] for a, c in itertools.pairwise(edges))


def test_borders_are_prior_quantiles(borders):
    n = N_BUCKETS
    assert torch.all(borders.diff() > 0)
    torch.testing.assert_close(borders, -borders.flip(0))  # symmetric prior
    rng = np.random.default_rng(99)
    m = 200_000
    y = np.einsum("nd,nd->n", rng.standard_normal((m, 4)), rng.standard_normal((m, 4)))
    y += 0.5 * rng.standard_normal(m)
    levels = np.r_[1 / (2 * n), np.arange(1, n) / n, 1 - 1 / (2 * n)]
    for border, level in zip(borders.numpy(), levels, strict=True):
        frac = (y < border).mean()
        assert abs(frac - level) < 4 * math.sqrt(level * (1 - level) / m) + 2e-3


def test_density_integrates_to_one_tails_included(bar, logits):
    total = quad(lambda y: density(bar, logits, y), bar)
    assert total == pytest.approx(1.0, abs=1e-8)
    p = torch.softmax(logits, -1)
    left = quad(lambda y: density(bar, logits, y), bar, hi=bar.borders[1].item())
    right = quad(lambda y: density(bar, logits, y), bar, lo=bar.borders[-2].item())
    assert left == pytest.approx(p[0].item(), abs=1e-9)
    assert right == pytest.approx(p[-1].item(), abs=1e-9)


def test_tail_holds_half_its_mass_inside_its_bucket(bar):
    logits = torch.zeros(N_BUCKETS, dtype=torch.float64)
    b0, b1 = bar.borders[0].item(), bar.borders[1].item()
    inside = quad(lambda y: density(bar, logits, y), bar, lo=b0, hi=b1)
    assert inside == pytest.approx(0.5 / N_BUCKETS, rel=1e-8)


def test_mean_and_variance_match_numerical_integration(bar, logits):
    mean = quad(lambda y: y * density(bar, logits, y), bar)
    second = quad(lambda y: y * y * density(bar, logits, y), bar)
    assert bar.mean(logits).item() == pytest.approx(mean, abs=1e-8)
    assert bar.variance(logits).item() == pytest.approx(second - mean**2, abs=1e-7)


def test_cdf_is_the_integral_of_the_density(bar, logits):
    for y in (-30.0, -4.0, bar.borders[1].item(), -0.3, 0.0, 2.2, bar.borders[-2].item(), 9.0, 25.0):
        expected = quad(lambda t: density(bar, logits, t), bar, hi=y)
        assert bar.cdf(logits, torch.tensor(y, dtype=torch.float64)).item() == pytest.approx(expected, abs=1e-9)


def test_icdf_inverts_cdf_everywhere(bar, logits):
    # The right tail stops at y = 9: beyond it 1 - cdf(y) < 1e-13 and float64 cannot hold cdf(y) apart from 1.
    y = torch.linspace(-25, 9, 2001, dtype=torch.float64)
    back = bar.icdf(logits, bar.cdf(logits, y))
    torch.testing.assert_close(back, y, rtol=0, atol=1e-8)
    q = torch.tensor([1e-12, 1e-6, 0.01, 0.5, 0.99, 1 - 1e-9], dtype=torch.float64)
    torch.testing.assert_close(bar.cdf(logits, bar.icdf(logits, q)), q, rtol=1e-8, atol=1e-15)


def test_samples_follow_the_cdf(bar, logits):
    n = 100_000
    g = torch.Generator().manual_seed(1)
    samples = bar.sample(logits.expand(n, -1), generator=g)
    assert samples.shape == (n,)
    result = stats.kstest(samples.numpy(), lambda y: bar.cdf(logits, torch.from_numpy(y)).numpy())
    # Critical KS distance at alpha = 0.001 is 1.95/sqrt(n).
    assert result.statistic < 1.95 / math.sqrt(n)
    # Continuous, not bucket centres.
    assert samples.unique().numel() > n - 10
    # Each tail's sampled mass matches its probability within 4 binomial standard errors.
    p = torch.softmax(logits, -1)
    for frac, prob in (
        ((samples < bar.borders[1]).double().mean(), p[0]),
        ((samples >= bar.borders[-2]).double().mean(), p[-1]),
    ):
        assert abs(frac - prob) < 4 * math.sqrt(prob * (1 - prob) / n)
    # Beyond the outer borders: exactly half of each tail's mass.
    beyond = (samples > bar.borders[-1]).double().mean()
    assert abs(beyond - p[-1] / 2) < 4 * math.sqrt(p[-1] / 2 / n)


def test_nothing_is_clipped(bar):
    logits = torch.zeros(N_BUCKETS, dtype=torch.float64)
    ys = torch.tensor([-1e3, -50.0, 50.0, 1e3], dtype=torch.float64)
    lp = bar.log_prob(logits, ys)
    assert torch.all(torch.isfinite(lp))
    assert torch.all(lp < bar.log_prob(logits, ys / 2))
    assert lp[0] < lp[1] and lp[3] < lp[2]  # further out is less likely
    # cdf itself saturates here (exactly 0 at -1e3, exactly 1 at 50); its logs must not.
    log_cdf = bar.log_cdf(logits, ys[:2])
    log_sf = bar.log_sf(logits, ys[2:].flip(0))
    assert torch.all(torch.isfinite(log_cdf)) and torch.all(torch.isfinite(log_sf))
    assert log_cdf[0] < log_cdf[1] < -600  # -1e3 is further out than -50
    assert log_sf[0] < log_sf[1] < -600  # 1e3 is further out than 50


# Bucket masses: a random spread, and ones that put most of the mass in a tail so the
# complement is taken on the other side of 1/2 there.
LOGIT_CASES = {
    "spread": torch.randn(N_BUCKETS, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1.5,
    "left_heavy": torch.cat([torch.tensor([5.0]), torch.zeros(N_BUCKETS - 1)]).double(),
    "right_heavy": torch.cat([torch.zeros(N_BUCKETS - 1), torch.tensor([5.0])]).double(),
}


@pytest.fixture(scope="module", params=["prior", "skewed"])
def any_bar(request, bar):
    """The prior's symmetric borders, and lopsided ones whose two tails have different scales."""
    if request.param == "prior":
        return bar
    widths = torch.linspace(0.2, 1.5, N_BUCKETS, dtype=torch.float64)
    return BarDistribution(torch.cat([torch.zeros(1, dtype=torch.float64), widths.cumsum(0)]) - 4.0)


def _tail_scales(bar):
    """Tail scales from the borders and scipy's Phi^-1(3/4), independent of the module's constants."""
    b = bar.borders.numpy()
    return (b[1] - b[0]) / stats.norm.ppf(0.75), (b[-1] - b[-2]) / stats.norm.ppf(0.75)


@pytest.mark.parametrize("case", list(LOGIT_CASES))
def test_log_cdf_and_log_sf_agree_with_cdf(any_bar, case):
    bar = any_bar
    logits = LOGIT_CASES[case]
    b = bar.borders
    s_left, s_right = _tail_scales(bar)
    # Both tails out to 30 scales (cdf ~ 1e-198, still representable), every inner bucket, every border.
    y = torch.cat(
        [
            torch.linspace(b[1] - 30 * s_left, b[1], 1000, dtype=torch.float64),
            torch.linspace(b[1], b[-2], 2000, dtype=torch.float64),
            torch.linspace(b[-2], b[-2] + 30 * s_right, 1000, dtype=torch.float64),
            b,
        ]
    )
    cdf = bar.cdf(logits, y)
    log_cdf, log_sf = bar.log_cdf(logits, y), bar.log_sf(logits, y)
    assert torch.all(torch.isfinite(log_cdf)) and torch.all(torch.isfinite(log_sf))
    assert torch.all(log_cdf <= 0) and torch.all(log_sf <= 0)
    # Compare where float64 holds cdf and 1 - cdf to a few ulp relative: cdf not subnormal, and
    # 1 - cdf >= 1e-4 (cdf carries ~1e-16 absolute error, so log(cdf) near 0 is good to ~1e-12
    # relative there). Taking a complement of a log of size L costs L * 2.2e-16 <~ 1e-13 more.
    # rtol 1e-10 sits well above that, and far below any real error (a lost factor 2 shifts a log by 0.69).
    ok = (cdf > 1e-290) & (1 - cdf >= 1e-4)
    assert ok.sum() > 3000  # the left tail and inner buckets; the far right is left to the scipy test
    torch.testing.assert_close(log_cdf[ok], torch.log(cdf[ok]), rtol=1e-10, atol=0)
    torch.testing.assert_close(log_sf[ok], torch.log1p(-cdf[ok]), rtol=1e-10, atol=0)
    # The two are complementary everywhere, the far tails included (there one is exactly 1).
    torch.testing.assert_close(log_cdf.exp() + log_sf.exp(), torch.ones_like(y), rtol=0, atol=1e-12)
    # Monotone: log_cdf non-decreasing and log_sf non-increasing in y.
    order = torch.argsort(y)
    assert torch.all(log_cdf[order].diff() >= 0) and torch.all(log_sf[order].diff() <= 0)


@pytest.mark.parametrize("case", list(LOGIT_CASES))
def test_far_tails_match_scipy(any_bar, case):
    bar = any_bar
    logits = LOGIT_CASES[case]
    log_p = special.log_softmax(logits.numpy())
    b = bar.borders.numpy()
    s_left, s_right = _tail_scales(bar)

    def at(fn, y):
        return fn(logits, torch.tensor(y, dtype=torch.float64)).item()

    # Beyond z scales from its anchor a tail holds 2 Phi(-z) = halfnorm.sf(z) of its bucket's mass.
    # (halfnorm.logsf is log(sf) and underflows past z ~ 38, so take norm's log-space tails.)
    assert stats.halfnorm.logsf(10.0) == pytest.approx(math.log(2) + stats.norm.logsf(10.0), rel=1e-12)
    for z in (3.0, 10.0, 40.0, 300.0):
        left = log_p[0] + math.log(2) + stats.norm.logcdf(-z)
        right = log_p[-1] + math.log(2) + stats.norm.logsf(z)
        assert at(bar.log_cdf, b[1] - z * s_left) == pytest.approx(left, rel=1e-10)
        assert at(bar.log_sf, b[-2] + z * s_right) == pytest.approx(right, rel=1e-10)
    left = log_p[0] + math.log(2) + stats.norm.logcdf((-1e3 - b[1]) / s_left)
    right = log_p[-1] + math.log(2) + stats.norm.logsf((1e3 - b[-2]) / s_right)
    assert at(bar.log_cdf, -1e3) == pytest.approx(left, rel=1e-10)
    assert at(bar.log_sf, 1e3) == pytest.approx(right, rel=1e-10)
    # The complement beyond 10 scales, ~ -1e-23: only a log1p of the tail mass resolves it.
    sf_left = math.exp(log_p[0]) * stats.halfnorm.sf(10.0)
    sf_right = math.exp(log_p[-1]) * stats.halfnorm.sf(10.0)
    assert at(bar.log_sf, b[1] - 10 * s_left) == pytest.approx(math.log1p(-sf_left), rel=1e-10)
    assert at(bar.log_cdf, b[-2] + 10 * s_right) == pytest.approx(math.log1p(-sf_right), rel=1e-10)


@pytest.mark.parametrize("kind", ["bar", "location_scale"])
def test_mean_density_is_the_average_of_the_heads_densities(kind):
    head = build_head(kind, 64, 0.125, StandardGaussian(4))
    outputs = torch.randn(2, 5, head.n_outputs, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y = torch.linspace(-1e3, 1e3, 20001, dtype=torch.float64).flip(0).expand(2, -1)  # any order
    got = head.log_mean_density(outputs, y)
    pointwise = head.log_prob_grid(outputs, y.unsqueeze(1).expand(2, 5, -1))
    expected = torch.logsumexp(pointwise, 1) - math.log(5)
    # The step part is a cumulative sum of jumps: round-off relative to the largest density
    # (measured 1.1e-15); in log space, relative 1e-12 even at -1e3 (far tails in log space).
    scale = expected.exp().amax(-1, keepdim=True)
    torch.testing.assert_close(got.exp() / scale, expected.exp() / scale, rtol=0, atol=1e-14)
    torch.testing.assert_close(got, expected, rtol=1e-11, atol=0)


def test_vectorised_over_batch_shapes(bar):
    logits = torch.randn(2, 3, N_BUCKETS, dtype=torch.float64)
    y = torch.randn(2, 3, dtype=torch.float64) * 3
    lp = bar.log_prob(logits, y)
    assert lp.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert lp[i, j] == bar.log_prob(logits[i, j], y[i, j])
            assert bar.cdf(logits, y)[i, j] == bar.cdf(logits[i, j], y[i, j])
            assert bar.log_cdf(logits, y)[i, j] == bar.log_cdf(logits[i, j], y[i, j])
            assert bar.log_sf(logits, y)[i, j] == bar.log_sf(logits[i, j], y[i, j])
    assert bar.log_cdf(logits[0, 0], y).shape == bar.log_sf(logits, torch.tensor(0.5)).shape == (2, 3)
    assert bar.log_prob(logits, torch.tensor(0.5)).shape == (2, 3)  # scalar y broadcasts
    assert bar.mean(logits).shape == bar.variance(logits).shape == (2, 3)
    assert bar.icdf(logits, torch.full((2, 3), 0.3, dtype=torch.float64)).shape == (2, 3)
    assert bar.sample(logits).shape == (2, 3)


def test_float32_log_prob_agrees_with_float64(bar):
    logits = torch.randn(100, N_BUCKETS, dtype=torch.float64)
    y = torch.randn(100, dtype=torch.float64) * 4
    torch.testing.assert_close(
        bar.log_prob(logits.float(), y.float()).double(), bar.log_prob(logits, y), atol=1e-4, rtol=1e-5
    )


def test_bad_borders_are_rejected():
    with pytest.raises(ValueError):
        BarDistribution(torch.tensor([0.0, 1.0, 1.0, 2.0]))
    with pytest.raises(ValueError):
        prior_borders(1, 0.25, StandardGaussian(4))


@pytest.mark.gpu
def test_cuda_matches_cpu(bar, logits):
    cuda = BarDistribution(bar.borders).to("cuda")
    y = torch.linspace(-20, 20, 101, dtype=torch.float64)
    torch.testing.assert_close(cuda.log_prob(logits.cuda(), y.cuda()).cpu(), bar.log_prob(logits, y))
    torch.testing.assert_close(cuda.cdf(logits.cuda(), y.cuda()).cpu(), bar.cdf(logits, y))
    g = torch.Generator(device="cuda").manual_seed(0)
    s = cuda.sample(logits.cuda().expand(50_000, -1), generator=g).cpu()
    assert stats.kstest(s.numpy(), lambda v: bar.cdf(logits, torch.from_numpy(v)).numpy()).statistic < 1.95 / math.sqrt(
        50_000
    )
