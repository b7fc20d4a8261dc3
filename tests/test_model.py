from dataclasses import replace

import pytest
import torch

from lrpfn.model import PFN, ModelConfig, attention_mask, interleaved_mask

CONFIG = ModelConfig(dim=3, n_buckets=12, d_model=32, n_layers=2, n_heads=4, d_mlp=64)


@pytest.fixture(scope="module", params=["bar", "location_scale"])
def model(request):
    torch.manual_seed(0)
    m = PFN(replace(CONFIG, head=request.param)).double().eval()
    # Initialisation leaves the head at zero; give every weight some size so that a
    # leak anywhere would move the logits.
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    return m


def test_mask_matches_the_worked_example():
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0],  # q1
            [0, 1, 0, 0, 0, 0],  # p1
            [0, 1, 1, 0, 0, 0],  # q2
            [0, 1, 0, 1, 0, 0],  # p2
            [0, 1, 0, 1, 1, 0],  # q3
            [0, 1, 0, 1, 0, 1],  # p3
        ],
        dtype=torch.bool,
    )
    assert torch.equal(interleaved_mask(3), expected)
    # Nothing attends to a query but itself, for any length.
    mask = attention_mask(7)
    assert torch.equal(mask[:, 7:], torch.cat([torch.zeros(7, 7, dtype=torch.bool), torch.eye(7, dtype=torch.bool)]))


def test_no_leakage_from_the_future(model):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 8, 3, generator=g, dtype=torch.float64)
    y = torch.randn(1, 8, generator=g, dtype=torch.float64)
    base = model(x, y)
    for i in range(8):
        for j in range(8):
            x2, y2 = x.clone(), y.clone()
            y2[0, j] += 1.0
            changed_y = not torch.allclose(model(x, y2)[0, i], base[0, i], rtol=0, atol=1e-12)
            assert changed_y == (j < i), f"y_{j} {'moves' if changed_y else 'does not move'} prediction {i}"
            x2[0, j] += 1.0
            changed_x = not torch.allclose(model(x2, y)[0, i], base[0, i], rtol=0, atol=1e-12)
            assert changed_x == (j <= i), f"x_{j} {'moves' if changed_x else 'does not move'} prediction {i}"


def test_sequences_in_a_batch_are_independent(model):
    x = torch.randn(4, 5, 3, dtype=torch.float64)
    y = torch.randn(4, 5, dtype=torch.float64)
    together = model(x, y)
    for b in range(4):
        torch.testing.assert_close(model(x[b : b + 1], y[b : b + 1])[0], together[b])


def test_pair_with_zero_y_differs_from_a_query(model):
    x = torch.randn(2, 3, dtype=torch.float64)
    assert not torch.allclose(model._pairs(x, torch.zeros(2, dtype=torch.float64)), model._queries(x))


@pytest.mark.parametrize("prefix", [0, 1, 4])
def test_cached_steps_equal_the_full_forward(model, prefix):
    g = torch.Generator().manual_seed(2)
    k = 9
    x = torch.randn(3, k, 3, generator=g, dtype=torch.float64)
    y = torch.randn(3, k, generator=g, dtype=torch.float64)
    full = model(x, y)
    cache = model.new_cache(3, k)
    if prefix:
        model.step(cache, x_pair=x[:, :prefix], y_pair=y[:, :prefix])
    for i in range(prefix, k):
        logits = model.step(cache, x_query=x[:, i : i + 1], x_pair=x[:, i : i + 1], y_pair=y[:, i : i + 1])
        torch.testing.assert_close(logits[:, 0], full[:, i], rtol=0, atol=1e-10)
    assert cache.length == k
    # Several queries against one cache: each is predicted from the cached pairs alone.
    cache = model.new_cache(3, k)
    model.step(cache, x_pair=x[:, :4], y_pair=y[:, :4])
    many = model.step(cache, x_query=x[:, 4:])
    x_same = torch.cat([x[:, :4], x[:, 4:5].expand(-1, 1, -1)], 1)
    torch.testing.assert_close(many[:, 0], model(x_same, y[:, :5])[:, 4], rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="overflows"):
        model.step(cache, x_pair=x, y_pair=y)


def test_initial_model_predicts_uniform_buckets():
    m = PFN(CONFIG)
    logits = m(torch.randn(2, 4, 3), torch.randn(2, 4))
    assert torch.equal(logits, torch.zeros_like(logits))


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(dim=3, n_buckets=8, d_model=30, n_layers=1, n_heads=4, d_mlp=8)
    with pytest.raises(ValueError, match="n_layers"):
        ModelConfig(dim=3, n_buckets=8, d_model=32, n_layers=0, n_heads=4, d_mlp=8)
