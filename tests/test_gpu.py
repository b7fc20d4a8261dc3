"""GPU paths (skipped without CUDA; run by benchmarks/gpu_check.sh on a GPU machine)."""

import math

import pandas as pd
import pytest
import torch

from lrpfn.buckets import BarDistribution, prior_borders
from lrpfn.model import PFN, ModelConfig
from lrpfn.resample import resample_model
from lrpfn.tasks import master_pool, sample_batch
from lrpfn.train import RunConfig, Stepper, TrainConfig, build, make_optimizer, train

pytestmark = pytest.mark.gpu

CONFIG = ModelConfig(dim=4, n_buckets=64, d_model=64, n_layers=2, n_heads=4, d_mlp=128)


def run_config(**train) -> RunConfig:
    settings = dict(steps=300, batch_size=64, lr=3e-3, checkpoints=2, save_every=100, device="cuda") | train
    return RunConfig(dim=4, context_length=12, noise_var=0.25, pool_size=16, seed=0, model=CONFIG, train=TrainConfig(**settings))


def test_forward_on_cuda_matches_cpu():
    torch.manual_seed(0)
    model = PFN(CONFIG)
    for p in model.parameters():  # a trained-looking model: the zero-initialised head would hide errors
        torch.nn.init.normal_(p, std=0.1)
    batch = sample_batch(32, 12, 4, 0.25, None, torch.Generator().manual_seed(1))
    expected = model(batch.x, batch.y)
    got = model.to("cuda")(batch.x.cuda(), batch.y.cuda()).cpu()
    torch.testing.assert_close(got, expected, atol=2e-4, rtol=2e-4)


def test_training_steps_never_wait_for_the_device():
    run = run_config()
    model, bar = build(run)
    model.cuda(), bar.to("cuda")
    stepper = Stepper(model, bar, make_optimizer(model, run.train), run.train)
    generator = torch.Generator(device="cuda").manual_seed(0)
    pool = master_pool(16, 4, seed=0).cuda()
    stepper(sample_batch(64, 12, 4, 0.25, pool, generator), 1e-3)  # lazy initialisation may sync once
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = [stepper(sample_batch(64, 12, 4, 0.25, pool, generator), 1e-3) for _ in range(5)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(math.isfinite(v) for v in torch.stack(losses).tolist())


@pytest.mark.parametrize("precision, compile", [("float32", False), ("bfloat16", False), ("bfloat16", True)])
def test_training_on_cuda_learns_the_pool(tmp_path, precision, compile):
    run = run_config(precision=precision, compile=compile)
    train(run, master_pool(16, 4, seed=0), tmp_path, progress=False)
    loss = pd.read_parquet(tmp_path / "log.parquet").loss
    # A 16-task pool is memorised quickly: the NLL falls far below that of the first steps.
    assert loss.iloc[-50:].mean() < loss.iloc[:10].mean() - 0.5


def test_cached_resampling_on_cuda_matches_cpu_in_distribution():
    torch.manual_seed(0)
    model = PFN(CONFIG)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    bar = BarDistribution(prior_borders(CONFIG.n_buckets, 4, 0.25))
    cpu = resample_model(model, bar, 4000, 8, generator=torch.Generator().manual_seed(4)).y
    cuda_model, cuda_bar = PFN(CONFIG).cuda(), BarDistribution(bar.borders).to("cuda")
    cuda_model.load_state_dict(model.state_dict())
    gpu = resample_model(cuda_model, cuda_bar, 4000, 8, generator=torch.Generator(device="cuda").manual_seed(4)).y.cpu()
    # Different random streams: compare the paths' distributions, per step (means within 5 SE,
    # standard deviations within 10 %: 4000 paths give an SE of about 1.1 % on a std).
    se = (cpu.var(0) / 4000 + gpu.var(0) / 4000).sqrt()
    assert ((cpu.mean(0) - gpu.mean(0)).abs() < 5 * se).all()
    assert ((gpu.std(0) / cpu.std(0) - 1).abs() < 0.1).all()
