import math

import pytest
import torch

from lrpfn.buckets import BarDistribution, prior_borders
from lrpfn.evaluate import METRICS, per_sequence_metrics, position_metrics
from lrpfn.exact import references
from lrpfn.model import PFN, ModelConfig
from lrpfn.priors import Pool, StandardGaussian
from lrpfn.tasks import eval_set, master_pool


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = PFN(ModelConfig(dim=3, n_buckets=32, d_model=16, n_layers=1, n_heads=2, d_mlp=32)).eval()
    bar = BarDistribution(prior_borders(32, 0.25, StandardGaussian(3), n_samples=1 << 16))
    return model, bar


def test_metric_table_shape_and_nan_policy(setup):
    model, bar = setup
    prior = StandardGaussian(3)
    batch = eval_set(64, 5, 0.25, prior, seed=0)
    table = position_metrics(model, bar, batch, references(prior, None, 0.25))
    assert table.position.tolist() == list(range(5))
    assert set(METRICS) | {f"{m}_se" for m in METRICS} <= set(table.columns)
    assert table[["mse_dmmse", "delta_dmmse", "nll_dmmse"]].isna().all().all()  # no pool: no dMMSE
    # Under N(0, I) the true prior's Bayes predictor is ridge.
    for metric in ("mse", "delta", "nll"):
        assert table[f"{metric}_bayes"].equals(table[f"{metric}_ridge"])
    pool = master_pool(4, 0, prior)
    table = position_metrics(model, bar, eval_set(64, 5, 0.25, Pool(pool), seed=0), references(prior, Pool(pool), 0.25))
    assert table[METRICS].notna().all().all()


def test_metrics_mean_what_they_say(setup):
    model, bar = setup
    pool = master_pool(4, 0, StandardGaussian(3))
    batch = eval_set(4000, 4, 0.25, Pool(pool), seed=1)
    values = per_sequence_metrics(model, bar, batch, references(StandardGaussian(3), Pool(pool), 0.25))
    # The untrained model predicts the same mean m everywhere (zero head):
    # mse_model = (m - w·x)^2 / D exactly.
    m = bar.mean(torch.zeros(32)).item()
    torch.testing.assert_close(values["mse_model"], (m - batch.target.double()) ** 2 / 3)
    # Ridge at position 0 predicts 0: E[(w·x)^2]/D = E||w||^2/D, here over pool tasks.
    expected = (pool.double()[batch.task] ** 2).sum(-1) / 3
    v = values["mse_ridge"][:, 0] - (batch.target.double()[:, 0] ** 2) / 3
    assert torch.allclose(v, torch.zeros_like(v))
    z = values["mse_ridge"][:, 0] - expected
    assert abs(z.mean()) < 4 * z.std() / math.sqrt(4000)
    # dMMSE with 4 well-separated tasks identifies the task after a few pairs: its error
    # falls far below ridge's.
    assert values["mse_dmmse"][:, -1].mean() < 0.5 * values["mse_ridge"][:, -1].mean()
