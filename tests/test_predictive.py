import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from lrpfn.bayes import dmmse_nll, dmmse_predictive, ridge_nll, ridge_predictive
from lrpfn.buckets import BarDistribution, prior_borders
from lrpfn.config import ModelConfig
from lrpfn.model import PFN
from lrpfn.predictive import (
    compare,
    discretised_logits,
    exact_predictives,
    kl_divergence,
    prompt_logits,
    prompts,
)
from lrpfn.tasks import eval_set, master_pool

DIM, NOISE_VAR = 2, 0.1


@pytest.fixture(scope="module")
def bar():
    return BarDistribution(prior_borders(32, DIM, NOISE_VAR, seed=0))


def test_exact_predictives_are_the_oracles_at_the_prompts_position():
    pool = master_pool(16, DIM, seed=1)
    batch = eval_set(3, 8, DIM, NOISE_VAR, pool, seed=2)
    ridge_mean, ridge_var = ridge_predictive(batch.x.double(), batch.y.double(), NOISE_VAR)
    dmmse_mean = dmmse_predictive(batch.x.double(), batch.y.double(), pool, NOISE_VAR)
    ridge_loss = ridge_nll(batch.x.double(), batch.y.double(), NOISE_VAR)
    dmmse_loss = dmmse_nll(batch.x.double(), batch.y.double(), pool, NOISE_VAR)
    for prompt in prompts({"pool": batch}, 3, [0, 1, 5, 7]):
        exact = exact_predictives(prompt, pool, NOISE_VAR)
        s, i, y = prompt.sequence, prompt.length, batch.y[prompt.sequence, prompt.length]
        assert exact["gaussian"].mean == pytest.approx(ridge_mean[s, i].item(), abs=1e-10)
        assert exact["gaussian"].variance == pytest.approx(ridge_var[s, i].item(), rel=1e-10)
        assert exact["pool"].mean == pytest.approx(dmmse_mean[s, i].item(), abs=1e-10)
        assert -exact["gaussian"].log_density(y).item() == pytest.approx(ridge_loss[s, i].item(), abs=1e-10)
        assert -exact["pool"].log_density(y).item() == pytest.approx(dmmse_loss[s, i].item(), abs=1e-10)


@pytest.mark.parametrize("prior", ["gaussian", "pool"])
def test_the_kl_to_the_own_discretisation_matches_an_independent_quadrature(bar, prior):
    # The floor a perfect PFN would show: the exact predictive against its best bar
    # approximation (each bucket gets the exact mass), by this module's quadrature and by
    # scipy's adaptive quad between consecutive borders (and out to the span's ends).
    pool = master_pool(8, DIM, seed=3)
    batch = eval_set(2, 6, DIM, NOISE_VAR, pool, seed=4)
    for prompt in prompts({"pool": batch}, 2, [0, 3]):
        exact = exact_predictives(prompt, pool, NOISE_VAR)[prior]
        logits = discretised_logits(exact, bar)
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
    pool = master_pool(8, DIM, seed=3)
    prompt = prompts({"pool": eval_set(1, 6, DIM, NOISE_VAR, pool, seed=4)}, 1, [3])[0]
    exact = exact_predictives(prompt, pool, NOISE_VAR)["gaussian"]
    floors = []
    for n in (16, 64, 256):
        fine = BarDistribution(prior_borders(n, DIM, NOISE_VAR, seed=0))
        floors.append(kl_divergence(exact, fine, discretised_logits(exact, fine)))
    assert floors[0] > floors[1] > floors[2] > 0


def test_the_mean_kl_over_prior_prompts_is_the_expected_nll_gap(bar):
    # y at every position of a T_true sequence is a draw from the exact (ridge) predictive given
    # the pairs before it, so the mean NLL gap of any model to ridge estimates the mean
    # KL(ridge || model) over the same prompts: the two read-outs must agree within the gap's
    # standard error. The model is a random PFN, far from ridge, so the KL is large.
    torch.manual_seed(0)
    model = PFN(ModelConfig(dim=DIM, n_buckets=32, d_model=16, n_layers=1, n_heads=2, d_mlp=16)).eval()
    batch = eval_set(300, 6, DIM, NOISE_VAR, None, seed=5)
    with torch.no_grad():
        logits = model(batch.x, batch.y).double()
    gaps = (-bar.log_prob(logits, batch.y.double()) - ridge_nll(batch.x.double(), batch.y.double(), NOISE_VAR)).ravel()
    kls = []
    for prompt in prompts({"true": batch}, 300, list(range(6))):
        exact = exact_predictives(prompt, None, NOISE_VAR)["gaussian"]
        kls.append(kl_divergence(exact, bar, logits[prompt.sequence, prompt.length]))
    # Sequences are independent; positions within one are not: the SE is over sequence means.
    per_sequence = gaps.reshape(300, 6).mean(1)
    se = per_sequence.std().item() / math.sqrt(300)
    assert np.mean(kls) > 0.1
    assert abs(np.mean(kls) - gaps.mean().item()) < 3 * se, (np.mean(kls), gaps.mean().item(), se)


def test_prompt_logits_are_the_full_forwards_at_the_query(bar):
    torch.manual_seed(1)
    model = PFN(ModelConfig(dim=DIM, n_buckets=32, d_model=16, n_layers=2, n_heads=2, d_mlp=16)).eval()
    batch = eval_set(2, 7, DIM, NOISE_VAR, None, seed=6)
    with torch.no_grad():
        full = model(batch.x, batch.y)
    for prompt in prompts({"true": batch}, 2, [0, 4, 6]):
        torch.testing.assert_close(prompt_logits(model, prompt), full[prompt.sequence, prompt.length])


def test_compare_tables_integrate_to_one(bar):
    torch.manual_seed(2)
    model = PFN(ModelConfig(dim=DIM, n_buckets=32, d_model=16, n_layers=1, n_heads=2, d_mlp=16)).eval()
    pool = master_pool(4, DIM, seed=7)
    batch = eval_set(1, 6, DIM, NOISE_VAR, pool, seed=8)
    table, density = compare({0: model}, bar, prompts({"pool": batch}, 1, [0, 2, 5]), pool, NOISE_VAR)
    assert len(table) == 3 and (table[["kl_gaussian", "kl_pool"]] > 0).all().all()
    for _, curve in density.groupby("prompt_length"):
        y = curve.y.to_numpy()
        h = y[1] - y[0]
        for column in ("density_model", "density_gaussian", "density_pool"):
            f = curve[column].to_numpy()
            # Trapezoid error: at most h/2 per unit of total variation for a piecewise smooth
            # density (the bar density jumps at bucket borders), plus the mass off the grid.
            bound = 0.5 * h * np.abs(np.diff(f)).sum() + 1e-4
            assert abs(np.trapezoid(f, y) - 1) < bound, column
    # The Gaussian-prior predictive at an empty prompt is N(0, |x|^2 + noise_var).
    first = table[table.prompt_length == 0].iloc[0]
    assert first.sd_gaussian == pytest.approx(math.sqrt(first.query_norm**2 + NOISE_VAR), rel=1e-9)
    assert stats.norm(0, first.sd_gaussian).pdf(0) > 0


def test_mixture_density_is_the_same_in_chunks(monkeypatch):
    from lrpfn import predictive

    pool = master_pool(64, DIM, seed=9)
    prompt = prompts({"pool": eval_set(1, 4, DIM, NOISE_VAR, pool, seed=10)}, 1, [2])[0]
    mixture = exact_predictives(prompt, pool, NOISE_VAR)["pool"]
    y = torch.linspace(-6, 6, 1001)
    whole = mixture.log_density(y)
    monkeypatch.setattr(predictive, "_CHUNK_ELEMENTS", 64 * 7)  # 7 values of y per chunk
    torch.testing.assert_close(mixture.log_density(y), whole, rtol=0, atol=0)
    # and a density: it integrates to one over its span
    lo, hi = mixture.span()
    grid = torch.linspace(lo, hi, 20001, dtype=torch.float64)
    assert torch.trapezoid(mixture.log_density(grid).exp(), grid).item() == pytest.approx(1, abs=1e-9)
