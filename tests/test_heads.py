"""The location-scale head: exact on a grid of locations and scales, its floor, and the seams
it shares with the bar head (model outputs, checkpoints, run identity)."""

import itertools
import math

import pytest
import torch
from scipy import integrate, stats

from lrpfn.bayes import NormalMixture
from lrpfn.buckets import (
    BarDistribution,
    LocationScaleBar,
    build_head,
    from_spec,
    prior_borders,
    prior_scale,
    standard_borders,
)
from lrpfn.checkpoint import checkpoint_payload, load_checkpoint, save_checkpoint
from lrpfn.config import ModelConfig, RunConfig, TrainConfig
from lrpfn.model import PFN
from lrpfn.predictive import kl_divergence
from lrpfn.priors import StandardGaussian, spike_slab

N_BUCKETS = 24
UNIT = 2.1
# Locations and scales in units of UNIT: far off centre, and from far narrower to far wider
# than the prior predictive.
GRID = list(itertools.product([-30.0, 0.0, 7.5], [1e-3, 0.35, 20.0]))


@pytest.fixture(scope="module")
def head():
    return LocationScaleBar(standard_borders(N_BUCKETS), UNIT)


def outputs_at(loc: float, scale: float, seed: int = 0) -> torch.Tensor:
    """Outputs (n + 2,) with the given location and scale (in y) and random logits."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(N_BUCKETS, generator=g, dtype=torch.float64) * 1.5
    return torch.cat([torch.tensor([loc / UNIT, math.log(scale / UNIT)], dtype=torch.float64), logits])


def quad(f, edges, lo=-math.inf, hi=math.inf):
    """Integral from lo to hi, split at ``edges`` (the kinks) so quad sees smooth pieces."""
    points = [lo, *(e for e in edges if lo < e < hi), hi]
    return sum(integrate.quad(f, a, b, epsabs=1e-13, epsrel=1e-11, limit=200)[0] for a, b in itertools.pairwise(points))


def test_standard_borders_are_symmetric_normal_quantiles():
    b = standard_borders(128)
    assert torch.equal(b, -b.flip(0))
    levels = torch.tensor([1 / 256, 1 / 128, 0.25, 0.5], dtype=torch.float64)
    expected = 2.0 * torch.from_numpy(stats.norm.ppf(levels.numpy()))
    torch.testing.assert_close(b[[0, 1, 32, 64]], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("loc, scale", GRID)
def test_density_is_normalised_and_its_moments_and_cdf_are_exact(head, loc, scale):
    """The density integrates to one, and mean, variance and cdf equal their integrals, at
    every location and scale (independent quadrature in y, split at the head's kinks)."""
    out = outputs_at(loc, scale)
    kinks = head.kinks(out)
    # The kinks, and points through the tails so that quad finds their mass at any scale.
    tails = [kinks[0] - scale * t for t in (100, 30, 10, 3, 1)] + [kinks[-1] + scale * t for t in (1, 3, 10, 30, 100)]
    edges = sorted(float(e) for e in [*kinks, *tails])

    def density(y):
        return math.exp(head.log_prob(out, torch.tensor(y, dtype=torch.float64)).item())

    assert quad(density, edges) == pytest.approx(1.0, abs=1e-8)
    mean = quad(lambda y: y * density(y), edges)
    centred = quad(lambda y: (y - mean) ** 2 * density(y), edges)
    assert head.mean(out).item() == pytest.approx(mean, abs=1e-8 * scale + 1e-12 * abs(loc))
    assert head.variance(out).item() == pytest.approx(centred, rel=1e-7)
    for z in (-7.0, -1.3, 0.0, 0.4, 2.9, 6.0):
        y = loc + scale * z
        below = quad(density, edges, hi=y)
        assert head.cdf(out, torch.tensor(y, dtype=torch.float64)).item() == pytest.approx(below, abs=1e-9)


@pytest.mark.parametrize("loc, scale", GRID)
def test_icdf_inverts_cdf_and_samples_follow_it(head, loc, scale):
    out = outputs_at(loc, scale, seed=1)
    q = torch.tensor([1e-9, 1e-4, 0.1, 0.5, 0.77, 1 - 1e-6], dtype=torch.float64)
    torch.testing.assert_close(head.cdf(out, head.icdf(out, q)), q, rtol=1e-8, atol=1e-15)
    n = 20_000
    samples = head.sample(out.expand(n, -1), generator=torch.Generator().manual_seed(2))
    result = stats.kstest(samples.numpy(), lambda y: head.cdf(out, torch.from_numpy(y)).numpy())
    assert result.statistic < 1.95 / math.sqrt(n)  # critical KS distance at alpha = 0.001


@pytest.mark.parametrize("loc, scale", GRID)
def test_log_cdf_and_log_sf_are_the_logs_of_cdf_and_its_complement(head, loc, scale):
    out = outputs_at(loc, scale, seed=3)
    y = loc + scale * torch.tensor([-40.0, -3.0, 0.2, 3.0], dtype=torch.float64)
    cdf = head.cdf(out, y)
    torch.testing.assert_close(head.log_cdf(out, y).exp(), cdf, rtol=1e-10, atol=0)
    torch.testing.assert_close(head.log_sf(out, y[1:]).exp(), 1 - cdf[1:], rtol=1e-8, atol=0)
    assert torch.isfinite(head.log_cdf(out, y[:1])) and head.log_cdf(out, y[:1]) < -300  # cdf underflows there


def test_a_bar_head_at_location_zero_and_unit_scale_is_the_bar_distribution(head):
    logits = outputs_at(0.0, UNIT)[2:]
    out = torch.cat([torch.zeros(2, dtype=torch.float64), logits])
    bar = BarDistribution(head.borders * UNIT)
    y = torch.linspace(-30, 30, 301, dtype=torch.float64)
    shifted = logits + head.base  # the head's logits are offsets from a standard normal's masses
    torch.testing.assert_close(head.log_prob(out, y), bar.log_prob(shifted, y), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(head.cdf(out, y), bar.cdf(shifted, y), rtol=1e-12, atol=1e-14)
    assert head.mean(out).item() == pytest.approx(bar.mean(shifted).item(), abs=1e-12)


def test_zero_outputs_give_the_prior_scale_and_a_standard_normal_residual(head):
    out = torch.zeros(N_BUCKETS + 2, dtype=torch.float64)
    z = head.borders[1:-1]
    torch.testing.assert_close(head.cdf(out, UNIT * z), torch.special.ndtr(z), rtol=1e-12, atol=1e-15)


def test_broadcasts_over_batches_and_values(head):
    out = torch.stack([outputs_at(loc, scale, seed=i) for i, (loc, scale) in enumerate(GRID)]).view(3, 3, -1)
    y = torch.randn(3, 3, dtype=torch.float64)
    one_by_one = torch.tensor(
        [[head.log_prob(out[i, j], y[i, j]).item() for j in range(3)] for i in range(3)], dtype=torch.float64
    )
    torch.testing.assert_close(head.log_prob(out, y), one_by_one, rtol=1e-13, atol=1e-13)
    assert head.log_prob(out[:, :, None], torch.zeros(3, 3, 5)).shape == (3, 3, 5)
    with pytest.raises(ValueError, match="26 outputs"):
        head.log_prob(out[..., 1:], y)


def gaussian(mean: float, sd: float) -> NormalMixture:
    t = torch.tensor
    return NormalMixture(
        t([[0.0]], dtype=torch.float64), t([[mean]], dtype=torch.float64), t([[sd**2]], dtype=torch.float64)
    )


@pytest.fixture(scope="module")
def prior_bar() -> BarDistribution:
    """The bar head of the default experiment: 128 buckets at quantiles of its prior predictive."""
    return BarDistribution(prior_borders(128, 0.125, StandardGaussian(4), n_samples=1 << 18))


def test_the_floor_on_a_gaussian_is_the_same_at_every_location_and_scale(prior_bar):
    """Fit sets location and scale to the exact mean and sd: the KL from a Gaussian to its fit
    is one number whatever the Gaussian (on a grid of the default's locations and scales, and
    far outside it), its mean is exact, and at 128 buckets it is 1.8e-4
    nats (measured against an independent evaluation in docs/results.md §10). The bar head's
    floor at a narrow predictive off centre (sd 0.35 at 3) is 64 times it."""
    head = LocationScaleBar(standard_borders(128), UNIT)
    kls = []
    # The default's predictives: locations within 4 prior-predictive sds (2.03) of zero, scales
    # from the noise sd (0.35) to the prior predictive's; then far outside both ranges.
    prior_sd, noise_sd = math.sqrt(4.125), math.sqrt(0.125)
    grid = itertools.product([-4, -1.5, 0, 0.5, 4], torch.logspace(0, 1, 4, base=prior_sd / noise_sd).tolist())
    for mean, sd in [*((k * prior_sd, noise_sd * r) for k, r in grid), (-40.0, 1e-3), (0.5, 30.0)]:
        exact = gaussian(mean, sd)
        out = head.fit(exact)[0]
        kls.append(kl_divergence(exact, head, out))
        assert head.mean(out).item() == pytest.approx(mean, abs=1e-12 * max(1.0, abs(mean)) + 1e-9 * sd)
        assert head.variance(out).item() / sd**2 == pytest.approx(1.0, abs=2e-3)  # the bars' width^2 / 12
    assert max(kls) - min(kls) < 1e-9
    assert kls[0] == pytest.approx(1.81e-4, rel=0.01)  # far below the bound of 0.005 nats
    exact = gaussian(3.0, 0.35)
    assert kl_divergence(exact, prior_bar, prior_bar.fit(exact)[0]) > 50 * kls[0]


def test_the_floor_on_a_two_component_predictive_falls_as_the_square_of_the_bucket_width():
    """A spike and a slab (weights 0.6 / 0.4, sds s and 1), standardised by the mixture's own
    mean and sd: far from Gaussian. Its floor is 4.2e-4 nats at s = 0.35 and 128 buckets, and
    each doubling of the buckets divides it by 4 (measured 3.96-3.99), so a component narrower
    than the bars is resolved by more buckets at the rate a piecewise-constant density allows."""
    for s in (0.35, 0.1, 0.05):
        log_w = torch.log(torch.tensor([[0.6, 0.4]], dtype=torch.float64))
        exact = NormalMixture(log_w, torch.tensor([[1.0, 2.5]]).double(), torch.tensor([[s**2, 1.0]]).double())
        floors = []
        for n in (128, 256, 512):
            head = LocationScaleBar(standard_borders(n), UNIT)
            floors.append(kl_divergence(exact, head, head.fit(exact)[0]))
        if s == 0.35:
            assert floors[0] < 5e-4
        for coarse, fine in itertools.pairwise(floors):
            assert fine / coarse == pytest.approx(0.25, abs=0.02)


def test_the_bar_heads_objective_is_its_nll():
    bar = BarDistribution(prior_borders(16, 0.25, StandardGaussian(2), n_samples=1 << 16))
    logits, y = torch.randn(5, 16, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    objective, nll = bar.loss(logits, y)
    assert torch.equal(objective, nll) and torch.equal(nll, -bar.log_prob(logits, y))


def test_the_location_scale_objective_reports_the_nll_and_splits_the_gradients(head):
    """The reported value is the head's NLL; the logits get the NLL's gradient, location and
    log-scale the Gaussian NLL's (whose minimiser is the predictive's mean and sd)."""
    out = torch.stack([outputs_at(loc, scale, seed=i) for i, (loc, scale) in enumerate(GRID)]).requires_grad_()
    y = torch.tensor([loc + 0.7 * scale for loc, scale in GRID], dtype=torch.float64)
    objective, nll = head.loss(out, y)
    torch.testing.assert_close(nll, -head.log_prob(out, y), rtol=1e-14, atol=1e-14)
    (grad,) = torch.autograd.grad(objective.sum(), out)
    (nll_grad,) = torch.autograd.grad(-head.log_prob(out, y).sum(), out)
    torch.testing.assert_close(grad[:, 2:], nll_grad[:, 2:], rtol=1e-12, atol=1e-14)
    # Gaussian NLL with loc = u o_0, scale = u exp(o_1), r = (y - loc) / scale = 0.7:
    # d/do_0 = -u r / scale, d/do_1 = 1 - r^2.
    scales = torch.tensor([scale for _, scale in GRID], dtype=torch.float64)
    torch.testing.assert_close(grad[:, 0], -UNIT * 0.7 / scales, rtol=1e-10, atol=0)
    torch.testing.assert_close(grad[:, 1], torch.full_like(scales, 1 - 0.49), rtol=1e-10, atol=0)


def test_the_objectives_optimum_is_the_fit_of_the_empirical_distribution():
    """Minimising the mean objective over one output vector on a fixed sample (from a
    two-component mixture) gives location and scale at the sample's mean and sd (ddof 0) and
    bars at the standardised sample's bucket frequencies: the head's fit, where training heads."""
    head = LocationScaleBar(standard_borders(12), UNIT)
    g = torch.Generator().manual_seed(4)
    y = torch.where(torch.rand(4000, generator=g) < 0.3, 1.0, 3.0) + 0.5 * torch.randn(4000, generator=g)
    y = y.double()
    out = torch.zeros(14, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([out], max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-15)

    def closure():
        optimiser.zero_grad()
        loss = head.loss(out.expand(len(y), -1), y)[0].mean()
        loss.backward()
        return loss

    for _ in range(5):
        optimiser.step(closure)
    loc, scale, logits = (v.detach() for v in head.split(out))
    assert loc.item() == pytest.approx(y.mean().item(), abs=1e-7)
    assert scale.item() == pytest.approx(y.std(correction=0).item(), rel=1e-7)
    z = (y - loc) / scale
    counts = torch.bincount(torch.bucketize(z, head.borders[1:-1], right=True), minlength=12)
    torch.testing.assert_close(torch.softmax(logits, -1), counts.double() / len(y), rtol=0, atol=1e-6)


def test_fit_is_batched():
    head = LocationScaleBar(standard_borders(N_BUCKETS), UNIT)
    means = torch.tensor([[-1.0], [0.0], [4.0]], dtype=torch.float64)
    variances = torch.tensor([[0.1], [1.0], [9.0]], dtype=torch.float64)
    batch = NormalMixture(torch.zeros(3, 1, dtype=torch.float64), means, variances)
    fitted = head.fit(batch)
    assert fitted.shape == (3, N_BUCKETS + 2)
    for i in range(3):
        one = head.fit(NormalMixture(torch.zeros(1, 1, dtype=torch.float64), means[i : i + 1], variances[i : i + 1]))
        torch.testing.assert_close(fitted[i], one[0], rtol=1e-14, atol=1e-14)


def test_the_prior_scale_is_the_prior_predictive_sd():
    # Under N(0, I_D): Var y = D + noise_var.
    assert prior_scale(0.125, StandardGaussian(4)) == pytest.approx(math.sqrt(4.125), rel=2e-3)
    sparse = spike_slab(3, p_zero=0.5, slab_var=2.0)  # E|w|^2 = 3 * 0.5 * 2
    assert prior_scale(0.1, sparse) == pytest.approx(math.sqrt(3.0 + 0.1), rel=3e-3)


def test_specs_rebuild_the_head_and_unknown_heads_are_refused():
    prior = StandardGaussian(2)
    for kind in ("bar", "location_scale"):
        head = build_head(kind, 8, 0.25, prior)
        again = from_spec(head.spec())
        assert type(again) is type(head) and torch.equal(again.borders, head.borders)
    assert from_spec({"borders": torch.arange(4.0)}).kind == "bar"  # a checkpoint from before the choice
    with pytest.raises(ValueError, match="unknown head 'mdn'"):
        build_head("mdn", 8, 0.25, prior)
    with pytest.raises(ValueError, match="unit"):
        LocationScaleBar(standard_borders(8), 0.0)


def small_run(head: str) -> RunConfig:
    return RunConfig(
        dim=2, context_length=6, noise_var=0.25, pool_size=math.inf, seed=0,
        model=ModelConfig(dim=2, n_buckets=8, d_model=16, n_layers=1, n_heads=2, d_mlp=32, head=head),
        train=TrainConfig(steps=4, batch_size=4, lr=1e-3, warmup=0.25, checkpoints=2),
    )  # fmt: skip


def test_the_head_is_part_of_the_run_identity_and_the_bar_head_keeps_the_old_one():
    bar, ls = small_run("bar"), small_run("location_scale")
    assert "head" not in bar.to_dict()["model"]
    assert ls.to_dict()["model"]["head"] == "location_scale"
    assert RunConfig.from_dict(bar.to_dict()) == bar and RunConfig.from_dict(ls.to_dict()) == ls
    assert ls.model.n_outputs == 10 and bar.model.n_outputs == 8
    assert PFN(ls.model).head.out_features == 10


def test_checkpoints_of_both_heads_load_and_an_old_one_loads_as_a_bar(tmp_path):
    for kind in ("bar", "location_scale"):
        run = small_run(kind)
        torch.manual_seed(0)
        model = PFN(run.model)
        head = build_head(kind, 8, 0.25, StandardGaussian(2))
        payload = checkpoint_payload(model, head, run, step=4)
        save_checkpoint(tmp_path / f"{kind}.pt", payload)
        loaded = load_checkpoint(tmp_path / f"{kind}.pt", run=run.to_dict())
        assert type(loaded.bar) is type(head) and torch.equal(loaded.bar.borders, head.borders)
        x, y = torch.randn(2, 6, 2), torch.randn(2, 6)
        assert torch.equal(loaded.model(x, y), model(x, y))
    old = checkpoint_payload(PFN(small_run("bar").model), build_head("bar", 8, 0.25, StandardGaussian(2)), run, 4)
    del old["head"]
    old["run"]["model"].pop("head", None)
    old["model_config"].pop("head", None)
    save_checkpoint(tmp_path / "old.pt", old)
    assert load_checkpoint(tmp_path / "old.pt").bar.kind == "bar"
    mismatched = dict(payload, head="bar")  # location-scale weights with a bar head's spec
    save_checkpoint(tmp_path / "mismatched.pt", mismatched)
    with pytest.raises(Exception, match="bar head of 8 buckets, but the model has a location_scale head"):
        load_checkpoint(tmp_path / "mismatched.pt")


def test_draws_from_an_exact_predictive_are_uniform_under_its_fit(prior_bar):
    """The probability integral transform through the head's KL-best fit: draws from the exact
    predictive, pushed through the fit's cdf, are uniform. With n = 20000 a KS p-value below
    1e-3 (a false alarm at rate 1e-3) flags a cdf off by more than 1.95 / sqrt(n) = 0.014
    somewhere. The location-scale head passes on a predictive as narrow as the default's noise
    (sd 0.35) two prior sds off centre, and on a spike and slab; the bar head, whose buckets are
    set by the prior predictive, fails on the narrow one (p = 2e-47: its cdf is linear across
    buckets nearly as wide as the predictive's sd; at 3 it gives p = 0.01)."""
    n = 20_000
    narrow = gaussian(4.0, 0.35)
    log_w = torch.log(torch.tensor([[0.6, 0.4]], dtype=torch.float64))
    spike_and_slab = NormalMixture(log_w, torch.tensor([[1.0, 2.5]]).double(), torch.tensor([[0.01, 1.0]]).double())
    head = LocationScaleBar(standard_borders(128), UNIT)
    for exact, fitted, uniform in [(narrow, head, True), (spike_and_slab, head, True), (narrow, prior_bar, False)]:
        draws = NormalMixture(
            exact.log_weights.expand(n, -1), exact.means.expand(n, -1), exact.variances.expand(n, -1)
        ).sample(torch.Generator().manual_seed(5))
        pit = fitted.cdf(fitted.fit(exact)[0], draws)
        p_value = stats.kstest(pit.numpy(), "uniform").pvalue
        assert (p_value > 1e-3) if uniform else (p_value < 1e-6), (fitted, p_value)
