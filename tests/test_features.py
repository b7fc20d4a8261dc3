"""Nonlinear tasks: random Fourier features, exact predictors in feature space, and the exact GP."""

import math

import pytest
import torch

from lrpfn.exact import ExactPredictor, PoolBayes, Ridge
from lrpfn.features import FeatureBayes, FourierFeatures, GaussianProcess, IdentityFeatures, rbf_kernel

NOISE = 0.05


def inputs(seed: int, batch: int = 4, length: int = 12, dim: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, dim, generator=g, dtype=torch.float64)
    y = torch.sin(2 * x[..., 0]) + 0.5 * x[..., -1] + math.sqrt(NOISE) * torch.randn(batch, length, generator=g)
    return x, y.double()


def test_fourier_features_approach_the_rbf_kernel():
    features = FourierFeatures.draw(2, 20000, lengthscale=0.7, seed=0)
    a = torch.randn(30, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    error = (features.kernel(a, a) - rbf_kernel(0.7)(a, a)).abs().max().item()
    # Each entry is a mean of F terms of variance at most 1: sd <= 1/sqrt(F) = 0.007; the largest
    # of 465 distinct entries within 5 sd (measured 0.021).
    assert error < 5 / math.sqrt(20000)
    # ... and a map with few features does not (the test can fail).
    few = FourierFeatures.draw(2, 20, lengthscale=0.7, seed=0)
    assert (few.kernel(a, a) - rbf_kernel(0.7)(a, a)).abs().max().item() > 5 / math.sqrt(20000)


def test_ridge_on_features_is_the_gp_with_the_feature_kernel():
    # The same model in weight space (ridge over w in R^F) and in function space (a GP with the
    # kernel phi(x)·phi(x')): equal predictives at every position.
    features = FourierFeatures.draw(2, 16, lengthscale=0.8, seed=2)
    x, y = inputs(3)
    weights = FeatureBayes(Ridge(16, NOISE), features)
    function = GaussianProcess(2, features.kernel, NOISE)
    for a, b in zip(weights.score_sequences(x, y), function.score_sequences(x, y), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)  # measured 8e-15


@pytest.mark.parametrize("make", ["features", "gp"])
def test_fast_paths_equal_the_state_pair_by_pair(make):
    x, y = inputs(4)
    features = FourierFeatures.draw(2, 8, lengthscale=1.0, seed=5)
    tasks = torch.randn(6, 8, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    predictor = (
        FeatureBayes(PoolBayes(tasks, NOISE), features)
        if make == "features"
        else GaussianProcess(2, rbf_kernel(0.5), NOISE)
    )
    fast = predictor.score_sequences(x, y)
    state = ExactPredictor.score_sequences(predictor, x, y)
    for a, b in zip(fast, state, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)  # measured 1.4e-14


def test_identity_features_give_the_linear_numbers_exactly():
    x, y = inputs(7, dim=3)
    linear = Ridge(3, NOISE).score_sequences(x, y)
    through = FeatureBayes(Ridge(3, NOISE), IdentityFeatures(3)).score_sequences(x, y)
    assert all(torch.equal(a, b) for a, b in zip(linear, through, strict=True))


def test_a_feature_model_needs_a_base_over_its_features():
    with pytest.raises(ValueError, match="16 dimensions, phi has 8"):
        FeatureBayes(Ridge(16, NOISE), FourierFeatures.draw(2, 8, lengthscale=1.0, seed=0))
