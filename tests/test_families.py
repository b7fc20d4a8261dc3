"""Task families: the default family is today's linear, known-noise task bit for bit; unknown
noise and features draw what they say and are served by the predictors they name."""

import functools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from lrpfn import families, priors
from lrpfn.buckets import build_head
from lrpfn.config import ConfigError, FeaturesConfig, NoiseConfig, PriorConfig, TaskFamily
from lrpfn.exact import MixtureBayes, PoolBayes, Ridge, UnknownNoiseBayes
from lrpfn.features import FeatureBayes
from lrpfn.implied import Readout
from lrpfn.io import write_parquet
from lrpfn.premise import posterior_intervals, resampled_coverage
from lrpfn.resample import resample_by_task
from lrpfn.tasks import eval_set, master_pool, pool_to_frame, read_pool_tasks

DIM, NOISE_VAR, SHAPE = 3, 0.25, 2.5
UNKNOWN = TaskFamily(noise=NoiseConfig("inverse_gamma", (("shape", SHAPE),)))
FOURIER = TaskFamily(features=FeaturesConfig("fourier", (("n_features", 16), ("lengthscale", 0.8), ("seed", 3))))


def test_the_default_family_is_the_linear_task_bit_for_bit():
    family = families.build(TaskFamily(), DIM, NOISE_VAR)
    prior = priors.StandardGaussian(DIM)
    ours, before = family.eval_set(64, 8, seed=5), eval_set(64, 8, NOISE_VAR, prior, seed=5)
    for name in ("x", "y", "w", "target", "task"):
        assert torch.equal(getattr(ours, name), getattr(before, name)), name
    assert ours.noise_var is None and family.normaliser == DIM
    assert torch.equal(family.master_pool(9, seed=2).tasks, master_pool(9, 2, prior))
    for kind in ("bar", "location_scale"):
        head, direct = family.head(kind, 32), build_head(kind, 32, NOISE_VAR, prior)
        assert torch.equal(head.borders, direct.borders) and getattr(head, "unit", 0) == getattr(direct, "unit", 0)
    roles = family.references()
    assert isinstance(roles["bayes"], Ridge) and roles["ridge"] is roles["bayes"] and roles["dmmse"] is None


def test_unknown_noise_draws_sigma2_from_its_inverse_gamma_and_w_given_it():
    family = families.build(UNKNOWN, DIM, NOISE_VAR)
    batch = family.eval_set(4000, 6, seed=0)
    sigma2 = batch.noise_var.numpy()
    scale = NOISE_VAR * (SHAPE - 1)
    # Fixed seeds make the test deterministic; a wrong law gives p-values far below 1e-3.
    assert stats.kstest(sigma2, stats.invgamma(SHAPE, scale=scale).cdf).pvalue > 1e-3
    direction = batch.w.double().numpy() / np.sqrt(sigma2 / NOISE_VAR)[:, None]
    assert stats.kstest(direction.ravel(), stats.norm.cdf).pvalue > 1e-3
    residual = (batch.y.double() - batch.target.double()) / batch.noise_var.sqrt().unsqueeze(-1)
    assert stats.kstest(residual.numpy().ravel(), stats.norm.cdf).pvalue > 1e-3
    # w's law does not depend on the noise's mean: each coordinate is t with 2a dof, variance 1.
    t = stats.t(df=2 * SHAPE, scale=math.sqrt((SHAPE - 1) / SHAPE))
    assert stats.kstest(batch.w.double().numpy().ravel(), t.cdf).pvalue > 1e-3


def test_unknown_noise_pools_are_nested_and_round_trip_with_their_noise(tmp_path):
    family = families.build(UNKNOWN, DIM, NOISE_VAR)
    small, large = family.master_pool(5, seed=1), family.master_pool(40, seed=1)
    assert torch.equal(small.tasks, large.tasks[:5]) and torch.equal(small.noise_var, large.noise_var[:5])
    write_parquet(pool_to_frame(large.tasks, large.noise_var), tmp_path / "pool.parquet")
    read = read_pool_tasks(tmp_path / "pool.parquet", DIM, size=40)
    assert torch.equal(read.tasks, large.tasks) and torch.equal(read.noise_var, large.noise_var)
    draw = read.sample_tasks(200, torch.Generator().manual_seed(0))
    assert torch.equal(draw.noise_var, large.noise_var[draw.task]) and torch.equal(draw.w, large.tasks[draw.task])
    batch = family.eval_set(50, 4, seed=2, pool=read)
    assert torch.equal(batch.noise_var, large.noise_var[batch.task])


def test_unknown_noise_is_served_by_the_student_t_beside_ridge_at_the_mean_noise():
    family = families.build(UNKNOWN, DIM, NOISE_VAR)
    pool = family.master_pool(7, seed=0)
    roles = family.references(pool)
    assert roles["bayes"] == UnknownNoiseBayes(DIM, SHAPE, NOISE_VAR * (SHAPE - 1))
    assert roles["ridge"] == Ridge(DIM, NOISE_VAR)
    assert isinstance(roles["dmmse"], PoolBayes) and torch.equal(roles["dmmse"].noise_var, pool.noise_var)


def test_the_inverse_gamma_prior_as_a_mixture_has_the_student_t_marginal():
    mixture = priors.NormalInverseGamma(DIM, SHAPE, NOISE_VAR).as_mixture()
    grid = torch.linspace(-6, 6, 121, dtype=torch.float64)
    sd = mixture.covariances[:, 0, 0].sqrt()
    density = (mixture.weights * torch.exp(-0.5 * (grid[:, None] / sd) ** 2) / (sd * math.sqrt(2 * math.pi))).sum(-1)
    exact = stats.t(df=2 * SHAPE, scale=math.sqrt((SHAPE - 1) / SHAPE)).pdf(grid.numpy())
    # 256 equal-weight quantile nodes of sigma^2: measured 0.4 % at most, relative to the peak.
    assert np.abs(density.numpy() - exact).max() < 0.008 * exact.max()


def test_fourier_tasks_act_on_the_features_and_their_baseline_is_ridge_in_x():
    family = families.build(FOURIER, 2, NOISE_VAR)
    assert (family.dim, family.n_params, family.normaliser) == (2, 16, 1.0)
    batch = family.eval_set(32, 5, seed=0)
    assert batch.x.shape == (32, 5, 2) and batch.w.shape == (32, 16)
    torch.testing.assert_close(batch.target, torch.einsum("bkf,bf->bk", family.features(batch.x), batch.w))
    roles = family.references(family.master_pool(4, seed=0))
    assert isinstance(roles["bayes"], FeatureBayes) and isinstance(roles["bayes"].base, Ridge)
    assert isinstance(roles["dmmse"], FeatureBayes) and isinstance(roles["dmmse"].base, PoolBayes)
    assert isinstance(roles["ridge"], MixtureBayes) and roles["ridge"].dim == 2
    torch.testing.assert_close(roles["ridge"].prior.covariances[0], torch.eye(2, dtype=torch.float64) / 2)
    # The signal variance E[(w.phi(x))^2] = E|phi(x)|^2 = (2 / F) sum_f (1 + exp(-2 |omega_f|^2) cos 2 b_f) / 2
    # for these features (the RBF kernel's 1 as F grows): the sample's within 4 standard errors.
    per_sequence = family.eval_set(4000, 5, seed=1).target.double().square().mean(-1)
    omega, b = family.features.frequencies, family.features.phases
    exact = (1 + torch.exp(-2 * omega.square().sum(-1)) * torch.cos(2 * b)).mean().item()
    assert abs(per_sequence.mean().item() - exact) < 4 * per_sequence.std().item() / 4000**0.5


def test_a_prior_kind_does_not_combine_with_unknown_noise_or_features():
    sparse = PriorConfig("spike_slab", (("p_zero", 0.5), ("slab_var", 1.0)))
    with pytest.raises(ConfigError, match=r"noise\.kind: inverse_gamma does not combine with prior\.kind: spike_slab"):
        TaskFamily(sparse, UNKNOWN.noise)
    with pytest.raises(ConfigError, match=r"features\.kind: fourier does not combine"):
        TaskFamily(sparse, features=FOURIER.features)
    assert TaskFamily(noise=UNKNOWN.noise, features=FOURIER.features).title == "unknown noise, random Fourier features"


def test_exact_intervals_under_unknown_noise_cover_at_their_level():
    family = families.build(UNKNOWN, DIM, NOISE_VAR)
    batch = family.eval_set(3000, 4, seed=3)
    levels = [0.5, 0.9]
    lower, upper = posterior_intervals(family.references()["bayes"], batch.x, batch.y, levels)
    truth = batch.w.double().unsqueeze(1)
    covers = ((lower <= truth) & (truth <= upper)).double().mean((0, 2))  # per level, over tasks and coordinates
    for level, rate in zip(levels, covers.tolist(), strict=True):
        # 3 coordinates of 3000 tasks; 4 binomial SEs of 3000 draws (conservative: coordinates correlate).
        assert abs(rate - level) < 4 * math.sqrt(level * (1 - level) / 3000), (level, rate)


def test_paths_on_features_are_read_on_the_features():
    family = families.build(FOURIER, 2, NOISE_VAR)
    inputs = torch.randn(300, 200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    paths = resample_by_task(family.references()["bayes"], inputs, generator=torch.Generator().manual_seed(1))
    on_features = family.readout.columns(paths)
    assert list(on_features) == [f"w_{d}" for d in range(16)] and paths.w_hat.shape == (300, 2)
    _, residual = paths.fit(family.features)
    # 200 points, 16 features: the residual variance of a fit on phi is the noise's, a chi-square
    # with 184 dof per path (sd 10 % of the mean), so its mean over 300 paths is within 2 %.
    assert abs(residual.mean().item() / NOISE_VAR - 1) < 0.02
    _, on_x = paths.fit()
    assert on_x.mean().item() > 2 * NOISE_VAR  # a fit on x leaves the nonlinear signal in the residual


def test_short_paths_on_features_are_read_as_the_posterior_mean_of_w():
    # 16 features of a one-dimensional x and paths of 24 points: least squares is ill-conditioned
    # (nearby frequencies give nearly collinear columns), the read-out is E[w | path] under N(0, I).
    family = families.build(FOURIER, 1, NOISE_VAR)
    bayes = family.references()["bayes"]
    inputs = torch.randn(400, 24, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    paths = resample_by_task(bayes, inputs, generator=torch.Generator().manual_seed(1))
    read = np.stack(list(family.readout.columns(paths).values()), axis=1)
    _, means, _ = bayes.posterior(paths.x, paths.y)
    np.testing.assert_allclose(read, means[:, 0].numpy(), rtol=1e-9, atol=1e-12)
    # The posterior mean of w drawn from N(0, I) has variance at most 1 per coordinate (law of
    # total variance); least squares of the same paths has many times more.
    least_squares, _ = paths.fit(family.features)
    assert read.var(0).max() < 1.1 and least_squares.var(0).max() > 10


def test_coverage_on_features_reads_each_path_as_the_family_does():
    # The coverage read-out's w_hat is the family's read-out of each resampled path: on
    # features the posterior mean of w, whose intervals stay within the prior's scale, where
    # least squares of the same paths spreads far beyond it.
    family = families.build(FOURIER, 1, NOISE_VAR)
    batch = family.eval_set(40, 8, seed=2)
    sampler = functools.partial(resample_by_task, family.references()["bayes"])
    args = (batch.w, batch.x[:, :4], batch.y[:, :4], 50, 24, [0.9], 0)
    read = resampled_coverage(sampler, *args, readout=family.readout)
    least_squares = resampled_coverage(sampler, *args, readout=Readout(family.features))
    read_width, ls_width = read["width"].mean().item(), least_squares["width"].mean().item()
    # Measured 0.95 against 3e12; the prior's own 90 % width is 3.29.
    assert read_width < 2 * 1.645 and ls_width > 10 * read_width
