"""Gaussian-mixture task priors (docs/design.md §9): the exact engine, the exact resampler, task draws, config."""

import copy
import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from lrpfn import priors
from lrpfn.bayes import (
    MixturePosterior,
    dmmse_nll,
    dmmse_posterior,
    dmmse_predictive,
    mixture_components,
    mixture_posterior,
    mixture_predictive,
    ridge_nll,
    ridge_posterior,
    ridge_predictive,
)
from lrpfn.config import ConfigError, PriorConfig, prepare, run_config, task_prior
from lrpfn.exact import MixtureBayes, Ridge
from lrpfn.resample import draw_inputs, least_squares, resample_exact
from lrpfn.tasks import master_pool, sample_batch

from helpers import TEST_CONFIG

NOISE_VAR = 0.5
P_ZERO, SLAB_VAR = 0.4, 1.5
# Three clusters that overlap enough for posteriors to spread over them: means (-0.97, -0.26, 2.49) in D = 1.
N_CLUSTERS, SEPARATION, CLUSTER_VAR, CLUSTER_SEED = 3, 1.5, 0.3, 4
KINDS = ["spike_slab", "mixture"]

# Float64 identities between two exact computations of O(1)–O(10) quantities: the round-off
# measured on every one of them is at most 9e-15; this is ten times that.
EXACT = 1e-13


def make_prior(kind: str, dim: int) -> priors.GaussianMixture:
    if kind == "spike_slab":
        return priors.spike_slab(dim, P_ZERO, SLAB_VAR)
    return priors.clusters(dim, N_CLUSTERS, SEPARATION, CLUSTER_VAR, CLUSTER_SEED)


def sequences(n: int, length: int, dim: int, seed: int, prior=None) -> tuple[torch.Tensor, torch.Tensor]:
    tasks = priors.StandardGaussian(dim) if prior is None else prior
    batch = sample_batch(n, length, NOISE_VAR, tasks, torch.Generator().manual_seed(seed))
    return batch.x.double(), batch.y.double()


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = EXACT) -> None:
    torch.testing.assert_close(actual, expected, rtol=0, atol=atol)


# --- the engine's special cases: ridge and dMMSE -------------------------------------------


@pytest.mark.parametrize("dim", [1, 3])
def test_one_standard_normal_component_is_ridge(dim):
    x, y = sequences(6, 10, dim, seed=dim)
    prior = priors.gaussian(dim)
    mean, var, nll = mixture_predictive(x, y, prior, NOISE_VAR)
    ridge_mean, ridge_var = ridge_predictive(x, y, NOISE_VAR)
    assert_close(mean, ridge_mean)
    assert_close(var, ridge_var)
    assert_close(nll, ridge_nll(x, y, NOISE_VAR))
    log_w, means, covs = mixture_posterior(x, y, prior, NOISE_VAR)
    ridge_mu, ridge_cov = ridge_posterior(x, y, NOISE_VAR)
    assert_close(log_w, torch.zeros(6, 1, dtype=torch.float64))
    assert_close(means[:, 0], ridge_mu)
    assert_close(covs[:, 0], ridge_cov)


@pytest.mark.parametrize("dim", [1, 3])
def test_point_masses_are_dmmse(dim):
    pool = master_pool(12, dim, priors.StandardGaussian(dim))
    prior = priors.pool_prior(pool)
    x, y = sequences(6, 10, dim, seed=10 + dim, prior=prior)
    mean, var, nll = mixture_predictive(x, y, prior, NOISE_VAR)
    assert_close(mean, dmmse_predictive(x, y, pool, NOISE_VAR))
    assert_close(nll, dmmse_nll(x, y, pool, NOISE_VAR))
    # The variance of the mixture sum_m pi_m N(w_m·x, noise_var), from dMMSE's own weights.
    for i in range(x.shape[1]):
        pi = dmmse_posterior(x[:, :i], y[:, :i], pool, NOISE_VAR)
        pred = x[:, i] @ pool.double().T
        centred = pred - mean[:, i : i + 1]
        assert_close(var[:, i], NOISE_VAR + (pi * centred**2).sum(-1))
    log_w, means, covs = mixture_posterior(x, y, prior, NOISE_VAR)
    assert_close(log_w.exp(), dmmse_posterior(x, y, pool, NOISE_VAR))
    assert torch.equal(means, pool.double().expand(6, -1, -1))
    assert torch.count_nonzero(covs) == 0  # point masses stay point masses


# --- sequential engine vs closed-form posterior ----------------------------------------------


def gram_matrices(x: torch.Tensor, prior: priors.GaussianMixture, noise_var: float) -> torch.Tensor:
    """``G_c = X Sigma_c X^T + noise_var I`` per sequence and component, float64: (B, C, n, n)."""
    x = x.double()
    cov_xt = torch.einsum("cij,bnj->bcin", prior.covariances, x)
    return x.unsqueeze(1) @ cov_xt + noise_var * torch.eye(x.shape[1], dtype=torch.float64)


def closed_form_posterior(
    x: torch.Tensor, y: torch.Tensor, prior: priors.GaussianMixture, noise_var: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The posterior after all n pairs of each sequence, solved at once (slow and obvious),
    float64: normalised log weights (B, C), means (B, C, D) and covariances (B, C, D, D).

    Per component ``G_c = X Sigma_c X^T + noise_var I``, ``mu_c = m_c + Sigma_c X^T G_c^-1
    (y - X m_c)``, ``S_c = Sigma_c - Sigma_c X^T G_c^-1 X Sigma_c`` and the weight
    ``pi_c N(y; X m_c, G_c)``, normalised; every solve through the Cholesky factor of G_c,
    which fails once G_c is singular to round-off (noise_var tiny against X Sigma_c X^T).
    """
    x, y = x.double(), y.double()
    batch, n, _ = x.shape
    means, covs = prior.means, prior.covariances
    if n == 0:
        return (
            prior.log_weights.expand(batch, -1).clone(),
            means.expand(batch, -1, -1).clone(),
            covs.expand(batch, -1, -1, -1).clone(),
        )
    cov_xt = torch.einsum("cij,bnj->bcin", covs, x)  # Sigma_c X^T: (B, C, D, n)
    chol = torch.linalg.cholesky(gram_matrices(x, prior, noise_var))
    resid = y.unsqueeze(1) - torch.einsum("bnd,cd->bcn", x, means)  # (B, C, n)
    alpha = torch.cholesky_solve(resid.unsqueeze(-1), chol).squeeze(-1)  # G_c^-1 (y - X m_c)
    post_means = means + (cov_xt @ alpha.unsqueeze(-1)).squeeze(-1)
    post_covs = covs - cov_xt @ torch.cholesky_solve(cov_xt.transpose(-1, -2), chol)
    log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    log_evidence = -0.5 * (n * math.log(2 * math.pi) + log_det + (resid * alpha).sum(-1))
    return torch.log_softmax(prior.log_weights + log_evidence, -1), post_means, post_covs


def log_marginal(x: torch.Tensor, y: torch.Tensor, prior: priors.GaussianMixture) -> np.ndarray:
    """log p(y | X) = logsumexp_c [log pi_c + log N(y; X m_c, X Sigma_c X^T + noise_var I)] per sequence, by scipy."""
    out = []
    for xs, ys in zip(x.numpy(), y.numpy(), strict=True):
        terms = [
            log_pi + stats.multivariate_normal(xs @ m, xs @ cov @ xs.T + NOISE_VAR * np.eye(len(ys))).logpdf(ys)
            for log_pi, m, cov in zip(
                prior.log_weights.numpy(), prior.means.numpy(), prior.covariances.numpy(), strict=True
            )
        ]
        out.append(logsumexp(terms))
    return np.array(out)


SEQUENTIAL_CASES = [("spike_slab", 2), ("spike_slab", 3), ("mixture", 2), ("mixture", 3)]


@pytest.mark.parametrize("kind, dim", SEQUENTIAL_CASES)
def test_sequential_predictive_equals_the_closed_form_posterior(kind, dim):
    prior = make_prior(kind, dim)
    x, y = sequences(4, 10, dim, seed=20 + dim, prior=prior)
    log_w, means, variances = mixture_components(x, y, prior, NOISE_VAR)
    for n in range(x.shape[1]):
        post_log_w, post_means, post_covs = closed_form_posterior(x[:, :n], y[:, :n], prior, NOISE_VAR)
        x_next = x[:, n]
        assert_close(log_w[:, n].exp(), post_log_w.exp())
        assert_close(means[:, n], torch.einsum("bcd,bd->bc", post_means, x_next))
        assert_close(variances[:, n], NOISE_VAR + torch.einsum("bd,bcde,be->bc", x_next, post_covs, x_next))
    # The chain rule: the per-position NLLs add up to minus the log marginal likelihood of all pairs.
    nll = mixture_predictive(x, y, prior, NOISE_VAR)[2]
    np.testing.assert_allclose(-nll.sum(-1).numpy(), log_marginal(x, y, prior), rtol=0, atol=EXACT)


@pytest.mark.parametrize("kind, dim", SEQUENTIAL_CASES)
def test_mixture_posterior_equals_the_closed_form_after_every_pair(kind, dim):
    prior = make_prior(kind, dim)
    x, y = sequences(4, 10, dim, seed=20 + dim, prior=prior)
    state = MixturePosterior(prior, NOISE_VAR, x.shape[0])
    for n in range(x.shape[1] + 1):
        ref_log_w, ref_means, ref_covs = closed_form_posterior(x[:, :n], y[:, :n], prior, NOISE_VAR)
        # The library's posterior after the first n pairs: in one call, and as the state that
        # has observed them one at a time.
        for log_w, means, covs in (
            mixture_posterior(x[:, :n], y[:, :n], prior, NOISE_VAR),
            (state.log_weights, state.means, state.covariances),
        ):
            assert_close(log_w.exp(), ref_log_w.exp())
            assert_close(means, ref_means)
            assert_close(covs, ref_covs)
        if n < x.shape[1]:
            state.observe(x[:, n], y[:, n])


TINY_NOISE = 1e-15


def noiseless_sequences(prior: priors.GaussianMixture, n: int, length: int, seed: int):
    """float64 sequences from the prior with noise variance TINY_NOISE, and their tasks."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, length, prior.dim, generator=g, dtype=torch.float64)
    uniforms = torch.rand(n, generator=g, dtype=torch.float64)
    w = prior.draw(uniforms, torch.randn(n, prior.dim, generator=g, dtype=torch.float64))
    noise = torch.randn(n, length, generator=g, dtype=torch.float64)
    return x, torch.einsum("bkd,bd->bk", x, w) + math.sqrt(TINY_NOISE) * noise, w


@pytest.mark.parametrize("kind", KINDS)
def test_mixture_posterior_stays_finite_where_the_closed_form_fails(kind):
    # n = 50 pairs in D = 3: X Sigma_c X^T has rank at most D, so n - D eigenvalues of G_c are
    # noise_var = 1e-15, below the round-off of its largest one (n eps ||G_c||, about 1e-12 here):
    # a slab's G_c is singular to working precision, and whether its Cholesky factorisation breaks down
    # or returns garbage depends on the machine's rounding. Assert the singularity, which does not.
    dim, length = 3, 50
    prior = make_prior(kind, dim)
    x, y, w = noiseless_sequences(prior, 16, length, seed=110)
    eigenvalues = torch.linalg.eigvalsh(gram_matrices(x, prior, TINY_NOISE))  # ascending
    round_off = length * torch.finfo(torch.float64).eps * eigenvalues[..., -1]
    assert (eigenvalues[..., 0] < round_off).any(-1).all()  # every sequence (a spike's G_c is fine)
    log_w, means, covs = mixture_posterior(x, y, prior, TINY_NOISE)
    finite = torch.cat([log_w, means.flatten(1), covs.flatten(1)], -1).isfinite().all(-1)  # per sequence
    assert finite.all(), f"non-finite posterior in {int((~finite).sum())} of 16 sequences"
    assert_close(log_w.exp().sum(-1), torch.ones(16, dtype=torch.float64))
    # Symmetric to a few float64 epsilons of the O(1) prior covariances the updates start from
    # (the round-off of the updates; measured at most 1.1e-16).
    assert_close(covs, covs.transpose(-1, -2), atol=4 * torch.finfo(torch.float64).eps)
    # Far more pairs than dimensions with noise sd 3e-8 pin w down: the posterior mean is the
    # task to within a few noise sds (measured: at most 1.1e-8 on the sequences kept finite).
    posterior_mean = torch.einsum("bc,bcd->bd", log_w.exp(), means)
    assert_close(posterior_mean, w, atol=1e-6)


# --- brute-force integration over w ---------------------------------------------------------

# Gauss–Legendre nodes per axis. Every integrand is a Gaussian in w (times the prior's density),
# analytic, so the rule converges exponentially: 100 nodes leave relative errors of 4e-9 in D = 2,
# 150 or more only float64 round-off (measured at most 3e-14 with 200; the bound is about 7x that).
QUADRATURE_NODES = 200
QUADRATURE_RTOL = 2e-13


def legendre_grid(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tensor-product Gauss–Legendre nodes (P, D) and weights (P,) on the box [lo, hi]."""
    t, q = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
    axes = [0.5 * (b - a) * t + 0.5 * (b + a) for a, b in zip(lo, hi, strict=True)]
    weights = [0.5 * (b - a) * q for a, b in zip(lo, hi, strict=True)]
    nodes = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))
    return nodes, np.prod(np.stack(np.meshgrid(*weights, indexing="ij")), 0).reshape(-1)


def spike_slab_parts(dim: int):
    """The spike-and-slab prior as pieces of its own dimension: the origin (a point mass), the
    axes' lines and so on up to R^D, each a quadrature over its free coordinates carrying the
    piece's probability p_zero^(zeros) (1 - p_zero)^(free) times the slab density."""
    # +-10 on every free axis is 8 slab standard deviations: the prior mass cut off is ~1e-15.
    for support in itertools.product([False, True], repeat=dim):
        free = [d for d in range(dim) if support[d]]
        mass = P_ZERO ** (dim - len(free)) * (1 - P_ZERO) ** len(free)
        if not free:
            yield np.zeros((1, dim)), np.array([mass])
            continue
        t, q = legendre_grid(np.full(len(free), -10.0), np.full(len(free), 10.0))
        nodes = np.zeros((len(t), dim))
        nodes[:, free] = t
        yield nodes, mass * q * stats.norm.pdf(t, scale=math.sqrt(SLAB_VAR)).prod(-1)


def cluster_parts(prior: priors.GaussianMixture):
    """The clusters prior as one density on a box reaching 6 beyond every cluster mean
    (11 cluster standard deviations: the mass cut off is ~1e-27)."""
    means = prior.means.numpy()
    nodes, q = legendre_grid(means.min(0) - 6.0, means.max(0) + 6.0)
    cov = CLUSTER_VAR * np.eye(prior.dim)
    density = np.mean([stats.multivariate_normal(m, cov).pdf(nodes).reshape(-1) for m in means], 0)
    yield nodes, q * density


def integrate(parts, x: np.ndarray, y: np.ndarray, x_new: np.ndarray, y_new: np.ndarray):
    """Marginal likelihood of (x, y), posterior mean and covariance of w, and the predictive
    density of each ``y_new`` at ``x_new``: sums of prior x likelihood over quadrature nodes."""
    dim = x.shape[1]
    total, first, second, density = 0.0, np.zeros(dim), np.zeros((dim, dim)), np.zeros(len(y_new))
    for nodes, weights in parts:
        resid = y - nodes @ x.T
        likelihood = np.exp(-(resid**2).sum(-1) / (2 * NOISE_VAR)) / (2 * math.pi * NOISE_VAR) ** (len(y) / 2)
        mass = weights * likelihood
        total += mass.sum()
        first += mass @ nodes
        second += (nodes * mass[:, None]).T @ nodes
        density += mass @ stats.norm.pdf(y_new, loc=(nodes @ x_new)[:, None], scale=math.sqrt(NOISE_VAR))
    mean = first / total
    return total, mean, second / total - np.outer(mean, mean), density / total


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("kind", KINDS)
def test_engine_agrees_with_brute_force_integration(kind, dim):
    prior = make_prior(kind, dim)
    rng = np.random.default_rng(30 + dim)
    x, x_new = rng.standard_normal((3, dim)), rng.standard_normal(dim)
    # Data from a w between the clusters (and off the spike): posteriors that spread over components.
    y = x @ np.full(dim, 0.5) + math.sqrt(NOISE_VAR) * rng.standard_normal(3)
    xt, yt = torch.from_numpy(x)[None], torch.from_numpy(y)[None]

    log_w, means, covs = mixture_posterior(xt, yt, prior, NOISE_VAR)
    weights = log_w.exp()[0]
    assert (weights > 0.05).sum() >= 2, weights  # a posterior worth integrating: several live components
    post_mean = weights @ means[0]
    second = torch.einsum("c,cij->ij", weights, covs[0] + means[0].unsqueeze(-1) * means[0].unsqueeze(-2))
    post_cov = second - torch.outer(post_mean, post_mean)
    log_evidence = -mixture_predictive(xt, yt, prior, NOISE_VAR)[2].sum().item()

    # The predictive at x_new: its mean and variance, then its density at points across it.
    seq_x = torch.cat([xt, torch.from_numpy(x_new)[None, None]], 1)
    seq_y = torch.cat([yt, torch.zeros(1, 1, dtype=torch.float64)], 1)
    pred_mean, pred_var, _ = (v[0, -1].item() for v in mixture_predictive(seq_x, seq_y, prior, NOISE_VAR))
    y_new = pred_mean + math.sqrt(pred_var) * np.array([-2.5, -1.0, 0.0, 0.5, 2.0])
    seq_y = torch.cat([yt.expand(len(y_new), -1), torch.from_numpy(y_new)[:, None]], 1)
    density = torch.exp(-mixture_predictive(seq_x.expand(len(y_new), -1, -1), seq_y, prior, NOISE_VAR)[2][:, -1])

    parts = spike_slab_parts(dim) if kind == "spike_slab" else cluster_parts(prior)
    evidence, mean, cov, brute_density = integrate(parts, x, y, x_new, y_new)
    rtol = QUADRATURE_RTOL
    assert math.exp(log_evidence) == pytest.approx(evidence, rel=rtol)
    np.testing.assert_allclose(post_mean.numpy(), mean, rtol=rtol, atol=rtol * np.abs(mean).max())
    np.testing.assert_allclose(post_cov.numpy(), cov, rtol=rtol, atol=rtol * np.abs(cov).max())
    assert pred_mean == pytest.approx(x_new @ mean, rel=rtol)
    assert pred_var == pytest.approx(NOISE_VAR + x_new @ cov @ x_new, rel=rtol)
    np.testing.assert_allclose(density.numpy(), brute_density, rtol=rtol)


# --- the exact resampler under a mixture prior ------------------------------------------------


def prefix_of(prior: priors.GaussianMixture, n_prefix: int, seed: int):
    """An observed prefix drawn from the prior itself, or no prefix."""
    if n_prefix == 0:
        return None, None
    x, y = sequences(1, n_prefix, prior.dim, seed, prior=prior)
    return x[0], y[0]


@pytest.mark.parametrize("n_prefix", [0, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_exact_mixture_resampler_keeps_prefix_and_inputs_and_follows_its_generator(kind, n_prefix):
    prior = make_prior(kind, 3)
    prefix_x, prefix_y = prefix_of(prior, n_prefix, seed=40)
    inputs = draw_inputs(64, 12, 3, torch.Generator().manual_seed(41))

    def run(seed):
        generator = torch.Generator().manual_seed(seed)
        return resample_exact(MixtureBayes(prior, NOISE_VAR), inputs, prefix_x, prefix_y, generator)

    out, again, other = run(42), run(42), run(43)
    assert out.x.shape == (64, n_prefix + 12, 3) and out.y.shape == (64, n_prefix + 12)
    assert out.w_hat.shape == (64, 3) and out.w_hat.dtype == torch.float64
    assert torch.equal(out.x[:, n_prefix:], inputs.double())
    if n_prefix:
        assert torch.equal(out.x[:, :n_prefix], prefix_x.expand(64, -1, -1))
        assert torch.equal(out.y[:, :n_prefix], prefix_y.expand(64, -1))
    assert torch.equal(out.w_hat, least_squares(out.x, out.y))
    assert torch.equal(out.y, again.y) and torch.equal(out.w_hat, again.w_hat)
    assert torch.equal(other.x, out.x) and not torch.equal(other.y[:, n_prefix:], out.y[:, n_prefix:])


def w_hat_pit(out, n_prefix: int, prior: priors.GaussianMixture, direction: torch.Tensor) -> np.ndarray:
    """PIT of ``direction·w_hat`` per path under its exact law given the path's inputs.

    With G = X^T X over all n + N inputs and F = X_f^T X_f over the resampled ones,
    ``w_hat = G^-1 (X_p^T y_p + F w + X_f^T eps)`` with w from the posterior after the prefix
    ``sum_c pi_c N(mu_c, S_c)``: a mixture with component means ``G^-1 (X_p^T y_p + F mu_c)``
    and covariances ``G^-1 F S_c F G^-1 + noise_var G^-1 F G^-1``.
    """
    x, y = out.x, out.y
    x_f = x[:, n_prefix:]
    gram_inv = torch.linalg.inv(x.transpose(1, 2) @ x)
    gain = gram_inv @ x_f.transpose(1, 2) @ x_f  # G^-1 F
    offset = gram_inv @ (x[:, :n_prefix].transpose(1, 2) @ y[:, :n_prefix].unsqueeze(-1))  # (B, D, 1)
    log_w, mu, cov = mixture_posterior(x[:1, :n_prefix], y[:1, :n_prefix], prior, NOISE_VAR)
    u = direction.double()
    ug = u @ gain  # (B, D): u^T G^-1 F
    loc = (u @ offset).squeeze(-1).unsqueeze(-1) + torch.einsum("bd,cd->bc", ug, mu[0])
    noise_var = NOISE_VAR * torch.einsum("bd,bde,e->b", ug, gram_inv, u)
    var = torch.einsum("bd,cde,be->bc", ug, cov[0], ug) + noise_var.unsqueeze(-1)
    z = ((out.w_hat @ u).unsqueeze(-1) - loc) / var.sqrt()
    return (log_w.exp() * torch.special.ndtr(z)).sum(-1).numpy()


def directions(dim: int) -> list[torch.Tensor]:
    """Each axis and the diagonal (which sees how coordinates go together)."""
    return [*torch.eye(dim, dtype=torch.float64), torch.ones(dim, dtype=torch.float64) / math.sqrt(dim)]


@pytest.mark.parametrize("n_prefix", [0, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_exact_mixture_resampling_samples_the_implied_prior_and_posterior(kind, n_prefix):
    dim, n_paths = 3, 4000
    prior = make_prior(kind, dim)
    prefix_x, prefix_y = prefix_of(prior, n_prefix, seed=50)
    inputs = draw_inputs(n_paths, 30, dim, torch.Generator().manual_seed(51))
    out = resample_exact(MixtureBayes(prior, NOISE_VAR), inputs, prefix_x, prefix_y, torch.Generator().manual_seed(52))
    # w_hat's exact law given each path's inputs (least-squares noise included): uniform PITs.
    # A KS p-value below 1e-3 is a false alarm at rate 1e-3 per direction.
    for u in directions(dim):
        assert stats.kstest(w_hat_pit(out, n_prefix, prior, u), "uniform").pvalue > 1e-3, u
    if n_prefix:
        return
    # The implied prior's moments: E w_hat = E w, Cov w_hat = Cov w + noise_var E (X^T X)^-1.
    w_hat = out.w_hat
    se = w_hat.std(0) / math.sqrt(n_paths)
    assert torch.all((w_hat.mean(0) - prior.mean()).abs() < 4 * se)
    centred = w_hat - w_hat.mean(0)
    products = centred.unsqueeze(-1) * centred.unsqueeze(-2)  # (B, D, D)
    gram_inv = torch.linalg.inv(out.x.transpose(1, 2) @ out.x).mean(0)
    expected = prior.covariance() + NOISE_VAR * gram_inv
    # 4 standard errors of a mean of n_paths products, from their own spread.
    assert torch.all((products.mean(0) - expected).abs() < 4 * products.std(0) / math.sqrt(n_paths))


@pytest.mark.parametrize("n_prefix", [0, 3])
def test_one_gaussian_component_resamples_like_the_gaussian_sampler(n_prefix):
    dim, n_paths = 3, 3000
    gaussian = priors.gaussian(dim)
    prefix_x, prefix_y = prefix_of(gaussian, n_prefix, seed=60)
    inputs = draw_inputs(n_paths, 30, dim, torch.Generator().manual_seed(61))
    mixture, ridge = MixtureBayes(gaussian, NOISE_VAR), Ridge(dim, NOISE_VAR)
    mixed = resample_exact(mixture, inputs, prefix_x, prefix_y, torch.Generator().manual_seed(62))
    plain = resample_exact(ridge, inputs, prefix_x, prefix_y, torch.Generator().manual_seed(63))
    # Two independent samples of one law: two-sample KS, false alarm 1e-3 per dimension and step.
    for d in range(dim):
        assert stats.ks_2samp(mixed.w_hat[:, d].numpy(), plain.w_hat[:, d].numpy()).pvalue > 1e-3, d
    for step in (n_prefix, n_prefix + 29):
        assert stats.ks_2samp(mixed.y[:, step].numpy(), plain.y[:, step].numpy()).pvalue > 1e-3, step
    # ... and each reproduces w_hat's exact law under N(0, I).
    for out in (mixed, plain):
        assert stats.kstest(w_hat_pit(out, n_prefix, gaussian, directions(dim)[-1]), "uniform").pvalue > 1e-3


def predictive_pit(x: torch.Tensor, y: torch.Tensor, prior: priors.GaussianMixture, noise_var: float) -> np.ndarray:
    """The engine's predictive CDF of each y_i given the pairs before it, (B, K)."""
    log_w, means, variances = mixture_components(x, y, prior, noise_var)
    z = (y.double().unsqueeze(-1) - means) / variances.sqrt()
    return (log_w.exp() * torch.special.ndtr(z)).sum(-1).numpy()


@pytest.mark.parametrize("n_prefix", [0, 3])
@pytest.mark.parametrize("kind, dim", [("spike_slab", 3), ("mixture", 2)])
def test_every_resampled_y_is_a_draw_from_the_engines_predictive(kind, dim, n_prefix):
    n_paths, n_steps = 2000, 20
    prior = make_prior(kind, dim)
    prefix_x, prefix_y = prefix_of(prior, n_prefix, seed=70)
    inputs = draw_inputs(n_paths, n_steps, dim, torch.Generator().manual_seed(71))
    out = resample_exact(MixtureBayes(prior, NOISE_VAR), inputs, prefix_x, prefix_y, torch.Generator().manual_seed(72))
    pit = predictive_pit(out.x, out.y, prior, NOISE_VAR)[:, n_prefix:]
    # Per step, a KS test of n_paths PITs; Bonferroni over the steps: family-wise false alarm 1e-3.
    p_values = [stats.kstest(pit[:, t], "uniform").pvalue for t in range(n_steps)]
    assert min(p_values) > 1e-3 / n_steps, np.argmin(p_values)
    # Sequential PITs of one path are independent uniforms (Rosenblatt): pool all steps.
    assert stats.kstest(pit.reshape(-1), "uniform").pvalue > 1e-3
    # The check has power: a predictive whose noise variance is 25 % too large is rejected
    # (p-values of 1e-19 and below on these paths).
    wrong = predictive_pit(out.x, out.y, prior, 1.25 * NOISE_VAR)[:, n_prefix:]
    assert stats.kstest(wrong.reshape(-1), "uniform").pvalue < 1e-6


# --- task draws -------------------------------------------------------------------------------


def mixture_marginal_cdf(prior: priors.GaussianMixture, d: int):
    """CDF of coordinate d of w under the prior."""
    weights = prior.weights.numpy()
    means = prior.means[:, d].numpy()
    sds = np.sqrt(prior.covariances[:, d, d].numpy())
    return lambda t: (weights * stats.norm.cdf(np.asarray(t)[:, None], means, sds)).sum(-1)


def assert_spike_slab_draws(w: torch.Tensor) -> None:
    """Coordinates exactly zero with frequency p_zero, independently; the rest N(0, slab_var)."""
    n = w.shape[0]
    zero = w == 0
    # Binomial(n, p): 4 standard errors.
    freq = zero.double().mean(0)
    assert torch.all((freq - P_ZERO).abs() < 4 * math.sqrt(P_ZERO * (1 - P_ZERO) / n)), freq
    both = (zero[:, 0] & zero[:, 1]).double().mean().item()
    assert abs(both - P_ZERO**2) < 4 * math.sqrt(P_ZERO**2 * (1 - P_ZERO**2) / n), both
    slab = w[~zero].double()
    # Sample variance of m Gaussians: standard error slab_var sqrt(2 / m); mean: sqrt(slab_var / m).
    assert abs(slab.var().item() - SLAB_VAR) < 4 * SLAB_VAR * math.sqrt(2 / slab.numel())
    assert abs(slab.mean().item()) < 4 * math.sqrt(SLAB_VAR / slab.numel())
    assert stats.kstest(slab.numpy(), "norm", args=(0, math.sqrt(SLAB_VAR))).pvalue > 1e-3


def assert_mixture_draws(w: torch.Tensor, prior: priors.GaussianMixture) -> None:
    """The prior's mean and covariance (4 standard errors) and its marginal laws (KS)."""
    w = w.double()
    n = w.shape[0]
    assert torch.all((w.mean(0) - prior.mean()).abs() < 4 * w.std(0) / math.sqrt(n))
    centred = w - prior.mean()
    products = centred.unsqueeze(-1) * centred.unsqueeze(-2)
    assert torch.all((products.mean(0) - prior.covariance()).abs() < 4 * products.std(0) / math.sqrt(n))
    for d in range(prior.dim):
        assert stats.kstest(w[:, d].numpy(), mixture_marginal_cdf(prior, d)).pvalue > 1e-3, d


@pytest.mark.parametrize("kind", KINDS)
def test_master_pools_under_a_prior_are_nested_and_differ_from_the_default(kind):
    prior = make_prior(kind, 3)
    small = master_pool(10, 5, prior)
    assert small.dtype == torch.float32 and small.shape == (10, 3)
    assert torch.equal(small, master_pool(1000, 5, prior)[:10])
    assert not torch.equal(small, master_pool(10, 5, priors.StandardGaussian(3)))
    assert not torch.equal(small, master_pool(10, 6, prior))


def test_master_pool_under_the_default_prior_is_the_plain_normal_draw():
    expected = np.random.default_rng(7).standard_normal((50, 3)).astype(np.float32)
    assert torch.equal(master_pool(50, 7, priors.StandardGaussian(3)), torch.from_numpy(expected))


def test_master_pool_draws_follow_the_prior():
    assert_spike_slab_draws(master_pool(20000, 8, make_prior("spike_slab", 3)))
    prior = make_prior("mixture", 2)
    assert_mixture_draws(master_pool(20000, 9, prior), prior)


def test_true_prior_batches_draw_tasks_from_the_prior():
    n, k, dim = 20000, 2, 3
    prior = make_prior("spike_slab", dim)
    batch = sample_batch(n, k, NOISE_VAR, prior, torch.Generator().manual_seed(80))
    assert batch.w.dtype == torch.float32 and batch.w.shape == (n, dim)
    assert torch.all(batch.task == -1)
    torch.testing.assert_close(batch.target, torch.einsum("bkd,bd->bk", batch.x, batch.w))
    noise = (batch.y - batch.target).double()
    assert abs(noise.var().item() - NOISE_VAR) < 4 * NOISE_VAR * math.sqrt(2 / noise.numel())
    assert_spike_slab_draws(batch.w)
    prior = make_prior("mixture", dim)
    batch = sample_batch(n, k, NOISE_VAR, prior, torch.Generator().manual_seed(81))
    assert_mixture_draws(batch.w, prior)
    again = sample_batch(n, k, NOISE_VAR, prior, torch.Generator().manual_seed(81))
    assert torch.equal(batch.w, again.w) and torch.equal(batch.y, again.y)


def test_batches_under_the_default_prior_keep_their_original_draws():
    b, k, dim, noise_var = 5, 4, 3, 0.2
    batch = sample_batch(b, k, noise_var, priors.StandardGaussian(dim), torch.Generator().manual_seed(90))
    g = torch.Generator().manual_seed(90)
    x = torch.randn((b, k, dim), generator=g)
    w = torch.randn((b, dim), generator=g)
    noise = torch.randn((b, k), generator=g)
    target = torch.einsum("bkd,bd->bk", x, w)
    assert torch.equal(batch.x, x) and torch.equal(batch.w, w) and torch.equal(batch.target, target)
    assert torch.equal(batch.y, target + math.sqrt(noise_var) * noise)
    # A prior draws its tasks differently, along the same inputs.
    other = sample_batch(b, k, noise_var, make_prior("mixture", 3), torch.Generator().manual_seed(90))
    assert torch.equal(other.x, x) and not torch.equal(other.w, w)


# --- moments of the priors -------------------------------------------------------------------


def test_moment_matched_spike_slab():
    prior = priors.spike_slab(3, P_ZERO, SLAB_VAR)
    assert prior.n_components == 8
    torch.testing.assert_close(prior.weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    matched = prior.moment_matched()
    assert matched.n_components == 1 and matched.log_weights.item() == 0
    assert_close(matched.means[0], torch.zeros(3, dtype=torch.float64))
    assert_close(matched.covariances[0], (1 - P_ZERO) * SLAB_VAR * torch.eye(3, dtype=torch.float64))


def test_moment_matched_clusters_and_their_covariance():
    prior = priors.clusters(3, 4, SEPARATION, CLUSTER_VAR, CLUSTER_SEED)
    # The documented hyperprior: row c of one seeded draw, whatever the number of clusters.
    expected_means = SEPARATION * np.random.default_rng(CLUSTER_SEED).standard_normal((4, 3))
    np.testing.assert_array_equal(prior.means.numpy(), expected_means)
    assert torch.equal(priors.clusters(3, 2, SEPARATION, CLUSTER_VAR, CLUSTER_SEED).means, prior.means[:2])
    # Law of total covariance for equal weights, by numpy.
    covariance = CLUSTER_VAR * np.eye(3) + np.cov(expected_means.T, bias=True)
    matched = prior.moment_matched()
    assert matched.n_components == 1
    np.testing.assert_allclose(matched.means[0].numpy(), expected_means.mean(0), rtol=0, atol=EXACT)
    np.testing.assert_allclose(matched.covariances[0].numpy(), covariance, rtol=0, atol=EXACT)
    np.testing.assert_allclose(prior.covariance().numpy(), covariance, rtol=0, atol=EXACT)
    # Monte Carlo: draws from the prior have that covariance (4 standard errors of each entry).
    g = torch.Generator().manual_seed(100)
    n = 100_000
    w = prior.draw(torch.rand(n, generator=g, dtype=torch.float64), torch.randn(n, 3, generator=g))
    centred = w - w.mean(0)
    products = centred.unsqueeze(-1) * centred.unsqueeze(-2)
    assert torch.all((products.mean(0) - prior.covariance()).abs() < 4 * products.std(0) / math.sqrt(n))


# --- config ------------------------------------------------------------------------------------

SPIKE_SLAB = {"kind": "spike_slab", "p_zero": 0.5, "slab_var": 2.0}
CLUSTERS = {"kind": "mixture", "n_components": 3, "separation": 1.0, "cluster_var": 0.2, "seed": 0}


def checked(prior: dict | None, **changes) -> dict:
    """The test config with a prior section, as the Snakefile sees it: schema, derived defaults, checks."""
    config = copy.deepcopy(TEST_CONFIG)
    config.update(changes)
    if prior is not None:
        config["prior"] = prior
    return prepare(config)


@pytest.mark.parametrize(
    "prior, changes, key",
    [
        ({"kind": "spike_slab", "p_zero": 0.5}, {}, r"prior\.slab_var"),
        ({**CLUSTERS, "p_zero": 0.5}, {}, r"prior\.p_zero"),
        ({"kind": "gaussian", "slab_var": 1.0}, {}, r"prior\.slab_var"),
        (SPIKE_SLAB, {"dim": 11}, r"prior\.kind"),
    ],
    ids=["spike_slab without slab_var", "mixture with p_zero", "gaussian with slab_var", "spike_slab in dim 11"],
)
def test_a_malformed_prior_is_rejected_naming_the_key(prior, changes, key):
    with pytest.raises(ConfigError, match=key):
        checked(prior, **changes)


def test_the_schema_rejects_an_unknown_prior_kind():
    with pytest.raises(ConfigError, match=r"prior\.kind: unknown prior kind 'laplace'"):
        checked({"kind": "laplace"})


def test_the_run_identity_names_the_prior_unless_it_is_gaussian():
    plain = run_config(checked(None), "inf", 0).to_dict()
    assert "prior" not in plain
    gaussian = checked({"kind": "gaussian"})
    assert task_prior(checked(None)) == PriorConfig() and task_prior(gaussian) == PriorConfig()
    assert task_prior(gaussian).is_default
    assert run_config(gaussian, "inf", 0).to_dict() == plain
    for prior in (SPIKE_SLAB, CLUSTERS):
        config = checked(prior)
        assert not task_prior(config).is_default and task_prior(config).to_dict() == prior
        identity = run_config(config, "inf", 0).to_dict()
        assert identity.pop("prior") == prior
        assert identity == plain
    checked(SPIKE_SLAB, dim=10)  # 2^10 components: the largest spike-and-slab accepted


def test_a_spike_slab_prior_without_zeros_is_the_slab_gaussian():
    """p_zero = 0 leaves one support, all coordinates active: the engine is ridge with prior N(0, slab_var I)."""
    slab_var, noise_var = 2.5, 0.2
    prior = priors.spike_slab(3, 0.0, slab_var)
    assert prior.n_components == 1 and prior.log_weights.tolist() == [0.0]
    x, y = torch.randn(8, 6, 3, dtype=torch.float64), torch.randn(8, 6, dtype=torch.float64)
    mean, var, _ = mixture_predictive(x, y, prior, noise_var)
    # Ridge with prior variance slab_var is ridge with unit prior variance on sqrt(slab_var) x.
    ridge_mean, ridge_var = ridge_predictive(x * slab_var**0.5, y, noise_var)
    torch.testing.assert_close(mean, ridge_mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(var, ridge_var, rtol=0, atol=1e-12)


def test_a_prior_says_whether_it_has_an_atom_at_zero():
    """The spike read-out follows the prior, not its kind: spike-and-slab has one (unless
    p_zero = 0), the Gaussian and clusters have none, a pool has one only where a task has a
    zero coordinate."""
    assert priors.spike_slab(3, P_ZERO, SLAB_VAR).has_atom_at_zero
    assert not priors.spike_slab(3, 0.0, SLAB_VAR).has_atom_at_zero
    assert not priors.StandardGaussian(3).has_atom_at_zero
    assert not make_prior("mixture", 3).has_atom_at_zero
    assert not priors.Pool(torch.ones(4, 2)).has_atom_at_zero
    assert priors.Pool(torch.tensor([[1.0, 0.0], [2.0, 3.0]])).has_atom_at_zero
