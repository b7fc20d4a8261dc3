"""The unknown-noise engine: Student-t predictive and Normal-Inverse-Gamma posterior, against
scipy and brute-force integration over the noise variance."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from lrpfn.bayes import StudentT
from lrpfn.exact import Ridge, UnknownNoiseBayes

SHAPE, SCALE = 3.0, 2.0  # prior mean of sigma^2: SCALE / (SHAPE - 1) = 1


def student(dof, loc, scale2) -> StudentT:
    return StudentT(*(torch.as_tensor(v, dtype=torch.float64) for v in (dof, loc, scale2)))


def test_student_t_matches_scipy():
    t = student([2.5, 7.0, 40.0], [0.3, -1.0, 2.0], [0.5, 2.0, 0.1])
    y = torch.tensor([-30.0, -2.0, 0.0, 0.7, 3.0, 50.0], dtype=torch.float64).unsqueeze(-1)  # (6, 1) against (3,)
    ref = stats.t(df=t.dof.numpy(), loc=t.loc.numpy(), scale=t.scale2.sqrt().numpy())
    torch.testing.assert_close(t.log_prob(y), torch.from_numpy(ref.logpdf(y.numpy())), rtol=1e-13, atol=0)
    torch.testing.assert_close(t.cdf(y), torch.from_numpy(ref.cdf(y.numpy())), rtol=1e-13, atol=1e-300)
    q = torch.tensor([1e-6, 0.1, 0.5, 0.9, 1 - 1e-6], dtype=torch.float64).unsqueeze(-1)
    torch.testing.assert_close(t.cdf(t.icdf(q)), q.expand(-1, 3), rtol=1e-10, atol=0)
    torch.testing.assert_close(t.variance, torch.from_numpy(ref.var()), rtol=1e-13, atol=0)


def test_student_t_samples_follow_its_cdf():
    t = student(torch.full((20000,), 3.0), torch.full((20000,), 0.5), torch.full((20000,), 2.0))
    draws = t.sample(torch.Generator().manual_seed(0)).numpy()
    # A fixed seed: the test is deterministic; a wrong sampler gives p-values far below 1e-3.
    assert stats.kstest(draws, stats.t(df=3.0, loc=0.5, scale=math.sqrt(2.0)).cdf).pvalue > 1e-3


def sequences(seed: int, n: int = 6, dim: int = 2):
    """A task and n pairs from the unknown-noise prior, float64."""
    g = np.random.default_rng(seed)
    noise_var = 1 / g.gamma(SHAPE, 1 / SCALE)
    w = g.normal(0, math.sqrt(noise_var * (SHAPE - 1) / SCALE), dim)
    x = g.normal(size=(n, dim))
    return x, x @ w + math.sqrt(noise_var) * g.normal(size=n)


def log_evidence(x: np.ndarray, y: np.ndarray) -> float:
    """log p(y | X) by quadrature over sigma^2 of N(y; 0, sigma^2 (I + X V_0 X^T)) InvGamma(sigma^2):
    brute force, sharing nothing with the sequential update."""
    gram = np.eye(len(y)) + x @ x.T * (SHAPE - 1) / SCALE  # V_0 = I / mean sigma^2

    def integrand(log_var: float) -> float:
        var = math.exp(log_var)
        like = stats.multivariate_normal(np.zeros(len(y)), var * gram).logpdf(y) if len(y) else 0.0
        return math.exp(like + stats.invgamma(SHAPE, scale=SCALE).logpdf(var) + log_var)

    value, _ = integrate.quad(integrand, -30, 30, epsabs=0, epsrel=1e-12, limit=500)
    return math.log(value)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sequential_posterior_gives_the_brute_force_evidence_at_every_position(seed):
    x, y = sequences(seed)
    predictor = UnknownNoiseBayes(2, SHAPE, SCALE)
    mean, nll = predictor.score_sequences(torch.from_numpy(x).unsqueeze(0), torch.from_numpy(y).unsqueeze(0))
    # The chain rule: the NLL of pairs 0..i sums to -log p(y_0..i | X). Measured at most 4e-16
    # relative; ridge with sigma^2 at its prior mean is 7-14 % off.
    evidence = [log_evidence(x[: i + 1], y[: i + 1]) for i in range(len(y))]
    torch.testing.assert_close(-nll[0].cumsum(0), torch.tensor(evidence, dtype=torch.float64), rtol=1e-12, atol=0)
    assert mean[0, 0] == 0  # the prior predictive is centred


def test_a_noise_variance_known_in_the_limit_gives_ridge():
    # shape -> inf with the prior mean fixed: sigma^2 concentrates at 0.5, the predictive is
    # ridge's Gaussian up to O(1 / shape).
    x, y = sequences(3, n=8)
    x, y = torch.from_numpy(x).unsqueeze(0), torch.from_numpy(y).unsqueeze(0)
    shape = 1e8
    limit = UnknownNoiseBayes(2, shape, 0.5 * (shape - 1)).score_sequences(x, y)
    ridge = Ridge(2, 0.5).score_sequences(x, y)
    torch.testing.assert_close(limit[0], ridge[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(limit[1], ridge[1], rtol=0, atol=1e-6)  # measured 1.3e-7; 3e-4 at shape 1e4


def test_an_improper_noise_prior_is_refused():
    with pytest.raises(ValueError, match="shape > 1"):
        UnknownNoiseBayes(2, 1.0, 1.0)


@pytest.mark.parametrize("sampler", ["step_by_step", "by_task"])
def test_exact_resampling_draws_the_posterior_of_w_and_the_noise(sampler):
    # Long paths after a prefix of 6 pairs: each path's least-squares w and residual variance
    # are its task's w and sigma^2 up to 1/N noise (N = 606: a 1 % wider spread at most), so
    # they follow the exact posterior marginals, a Student-t per coordinate and InvGamma(a_n, b_n).
    from lrpfn.resample import draw_inputs, resample_by_task, resample_exact

    x, y = (torch.from_numpy(v) for v in sequences(4))
    predictor = UnknownNoiseBayes(2, SHAPE, SCALE)
    resample = resample_exact if sampler == "step_by_step" else resample_by_task
    inputs = draw_inputs(4000, 600, 2, torch.Generator().manual_seed(8))
    out = resample(predictor, inputs, x, y, generator=torch.Generator().manual_seed(9))
    state = predictor.start(1)
    for i in range(len(y)):
        state.observe(x[i : i + 1], y[i : i + 1])
    shape, rate = state.shape.item(), state.rate.item()
    for d in range(2):
        scale = math.sqrt(rate / shape * state.scaled_cov[0, d, d].item())
        marginal = stats.t(df=2 * shape, loc=state.mean[0, d].item(), scale=scale)
        assert stats.kstest(out.w_hat[:, d].numpy(), marginal.cdf).pvalue > 1e-3
    resid = out.y - torch.einsum("bnd,bd->bn", out.x, out.w_hat)
    noise_var = (resid**2).sum(-1) / (out.y.shape[1] - 2)
    assert stats.kstest(noise_var.numpy(), stats.invgamma(shape, scale=rate).cdf).pvalue > 1e-3


# --- a pool of tasks, each with its own noise variance -----------------------------------------

POOL_W = torch.tensor([[1.5, 0.0], [0.0, 1.5], [-1.5, 0.0], [0.3, -1.2], [0.0, 0.0]], dtype=torch.float64)
POOL_VAR = torch.tensor([0.05, 0.2, 0.6, 1.5, 3.0], dtype=torch.float64)


def pool_nll_by_hand(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """-log p(y_i | pairs < i) with the weights of each task its likelihood so far, in numpy."""
    w, var = POOL_W.numpy(), POOL_VAR.numpy()
    log_w, nll = np.zeros(len(w)), []
    for xi, yi in zip(x, y, strict=True):
        log_like = stats.norm(xi @ w.T, np.sqrt(var)).logpdf(yi)
        nll.append(-(np.logaddexp.reduce(log_w + log_like) - np.logaddexp.reduce(log_w)))
        log_w = log_w + log_like
    return np.array(nll)


def test_a_pool_with_noise_per_task_scores_as_by_hand():
    from lrpfn.exact import ExactPredictor, PoolBayes

    g = torch.Generator().manual_seed(10)
    x = torch.randn(3, 7, 2, generator=g, dtype=torch.float64)
    task = torch.tensor([1, 3, 4])
    y = (x @ POOL_W[task].unsqueeze(-1)).squeeze(-1) + POOL_VAR[task].sqrt().unsqueeze(-1) * torch.randn(
        3, 7, generator=g
    )
    pool = PoolBayes(POOL_W, POOL_VAR)
    mean, nll = pool.score_sequences(x, y)  # the streaming scan
    state_mean, state_nll = ExactPredictor.score_sequences(pool, x, y)  # the state, pair by pair
    expected = torch.from_numpy(np.stack([pool_nll_by_hand(x[b].numpy(), y[b].numpy()) for b in range(3)]))
    torch.testing.assert_close(nll, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state_nll, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state_mean, mean, rtol=1e-12, atol=1e-12)
    query = torch.tensor([0.4, -0.8], dtype=torch.float64)
    at = pool.prompt_predictive(x[0, :4], y[0, :4], query)
    state = pool.start(1)
    for i in range(4):
        state.observe(x[0, i : i + 1], y[0, i : i + 1])
    grid = torch.linspace(-4, 4, 9, dtype=torch.float64)
    torch.testing.assert_close(
        at.log_density(grid), state.predictive(query[None]).log_prob(grid[:, None]).squeeze(-1), rtol=1e-12, atol=0
    )
    # A shared noise variance given per task is the shared-noise pool.
    shared = PoolBayes(POOL_W, torch.full((5,), 0.3, dtype=torch.float64)).score_sequences(x, y)
    torch.testing.assert_close(shared[1], PoolBayes(POOL_W, 0.3).score_sequences(x, y)[1], rtol=1e-13, atol=1e-13)


def test_resampling_a_pool_by_task_keeps_each_tasks_noise():
    from lrpfn.exact import PoolBayes
    from lrpfn.resample import draw_inputs, resample_by_task

    pool = PoolBayes(POOL_W, POOL_VAR)
    out = resample_by_task(pool, draw_inputs(5000, 300, 2, torch.Generator().manual_seed(11)),
                           generator=torch.Generator().manual_seed(12))  # fmt: skip
    task = torch.cdist(out.w_hat, POOL_W).argmin(-1)  # w_hat of 300 points sits on its task
    resid = out.y - torch.einsum("bnd,bd->bn", out.x, out.w_hat)
    noise_var = (resid**2).sum(-1) / (out.y.shape[1] - 2)
    for m in range(5):
        picked = noise_var[task == m]
        # Uniform prior: 1000 paths per task, within 4 binomial SEs (about 28 paths).
        assert abs(len(picked) - 1000) < 4 * math.sqrt(5000 * 0.2 * 0.8)
        # Each path's residual variance: its task's, with relative SE sqrt(2 / 298) per path.
        assert abs(picked.mean().item() / POOL_VAR[m].item() - 1) < 4 * math.sqrt(2 / 298 / len(picked))


def test_the_location_scale_heads_floor_on_student_t_predictives():
    # The default's head (128 buckets) against its KL-best fit of a Student-t (2 a_n degrees of
    # freedom: 2 a + n after n pairs). The floor does not depend on location or scale; it is
    # 1.9e-3 nats at 6 degrees of freedom and 1.8e-4 in the Gaussian limit (measured), but the
    # half-normal tails cannot follow a polynomial one: 0.016 at 4, 0.077 at 3 (choose a >= 3
    # for a floor below 0.01 nats at every position).
    from lrpfn.buckets import build_head
    from lrpfn.predictive import kl_divergence
    from lrpfn.priors import StandardGaussian

    head = build_head("location_scale", 128, 0.125, StandardGaussian(4))

    def floor(dof: float, loc: float, scale: float) -> float:
        t = student([dof], [loc], [scale**2])
        return kl_divergence(t, head, head.fit(t)[0])

    for loc, scale in ((0.0, 0.35), (-5.0, 2.0)):
        assert floor(6.0, loc, scale) < 2.5e-3
        assert floor(1000.0, loc, scale) < 2.5e-4
    assert floor(4.0, 0.0, 0.35) > 0.01
