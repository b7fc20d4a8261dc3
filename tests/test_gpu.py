"""GPU paths (skipped without CUDA; run by benchmarks/gpu_check.sh on a GPU machine)."""

import math

import pandas as pd
import pytest
import torch

from lrpfn import train as train_module
from lrpfn.buckets import BarDistribution, prior_borders
from lrpfn.config import ExecutionConfig, ModelConfig, RunConfig, TrainConfig
from lrpfn.io import load_torch
from lrpfn.model import PFN
from lrpfn.priors import Pool, StandardGaussian
from lrpfn.resample import draw_inputs, resample_model
from lrpfn.tasks import master_pool, sample_batch
from lrpfn.train import Stepper, build, make_optimizer, train

pytestmark = pytest.mark.gpu

CONFIG = ModelConfig(dim=4, n_buckets=64, d_model=64, n_layers=2, n_heads=4, d_mlp=128)


CUDA = ExecutionConfig(device="cuda", save_every=100)


def run_config(**train) -> RunConfig:
    settings = dict(steps=300, batch_size=64, lr=3e-3, warmup=0.05, checkpoints=2) | train
    return RunConfig(
        dim=4, context_length=12, noise_var=0.25, pool_size=16, seed=0, model=CONFIG, train=TrainConfig(**settings)
    )


def test_forward_on_cuda_matches_cpu():
    torch.manual_seed(0)
    model = PFN(CONFIG)
    for p in model.parameters():  # a trained-looking model: the zero-initialised head would hide errors
        torch.nn.init.normal_(p, std=0.1)
    batch = sample_batch(32, 12, 0.25, StandardGaussian(4), torch.Generator().manual_seed(1))
    expected = model(batch.x, batch.y)
    got = model.to("cuda")(batch.x.cuda(), batch.y.cuda()).cpu()
    torch.testing.assert_close(got, expected, atol=2e-4, rtol=2e-4)


def test_a_cuda_run_sees_the_batches_of_a_cpu_run(tmp_path):
    # Batches are drawn on the CPU for every device: the same run on the GPU starts from the
    # same weights and the same data, so its losses follow the CPU run's up to float rounding.
    run, pool = run_config(steps=40), master_pool(16, 0, StandardGaussian(4))
    train(run, pool, tmp_path / "cpu", ExecutionConfig(device="cpu"), progress=False)
    train(run, pool, tmp_path / "cuda", CUDA, progress=False)
    cpu, cuda = (pd.read_parquet(tmp_path / d / "log.parquet").loss.to_numpy() for d in ("cpu", "cuda"))
    assert abs(cpu[0] - cuda[0]) < 1e-4  # one batch, one set of initial weights
    assert abs(cpu[-10:].mean() - cuda[-10:].mean()) < 0.02


def test_a_run_saved_on_the_cpu_resumes_on_the_gpu(tmp_path, monkeypatch):
    run, pool = run_config(steps=40), master_pool(16, 0, StandardGaussian(4))
    train(run, pool, tmp_path / "clean", ExecutionConfig(device="cpu"), progress=False)
    real_sample, calls = train_module.sample_batch, {"n": 0}

    def dying_sample(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 26:  # the last resume state is at step 20
            raise KeyboardInterrupt
        return real_sample(*args, **kwargs)

    monkeypatch.setattr(train_module, "sample_batch", dying_sample)
    with pytest.raises(KeyboardInterrupt):
        train(run, pool, tmp_path / "moved", ExecutionConfig(device="cpu", save_every=10), progress=False)
    monkeypatch.setattr(train_module, "sample_batch", real_sample)
    train(run, pool, tmp_path / "moved", ExecutionConfig(device="cuda", save_every=10), progress=False)
    clean, moved = (pd.read_parquet(tmp_path / d / "log.parquet").loss.to_numpy() for d in ("clean", "moved"))
    assert (clean[:20] == moved[:20]).all()  # the CPU part, restored from the resume state
    assert abs(clean[20] - moved[20]) < 1e-3  # the next batch is the one the CPU run drew
    assert abs(clean[-10:].mean() - moved[-10:].mean()) < 0.02
    assert load_torch(tmp_path / "moved" / "step_0000040.pt")["run"] == run.to_dict()


def test_training_steps_never_wait_for_the_device():
    run = run_config()
    model, bar = build(run)
    model.cuda(), bar.to("cuda")
    stepper = Stepper(model, bar, make_optimizer(model, run.train), run.train)
    generator = torch.Generator().manual_seed(0)
    pool = master_pool(16, 0, StandardGaussian(4))
    batches = [sample_batch(64, 12, 0.25, Pool(pool), generator).to("cuda") for _ in range(6)]
    stepper(batches[0], 1e-3)  # lazy initialisation may sync once
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = [stepper(batch, 1e-3) for batch in batches[1:]]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(math.isfinite(v) for v in torch.stack(losses).tolist())


@pytest.mark.parametrize("precision, compile", [("float32", False), ("bfloat16", False), ("bfloat16", True)])
def test_training_on_cuda_learns_the_pool(tmp_path, precision, compile):
    run, pool = run_config(precision=precision), master_pool(16, 0, StandardGaussian(4))
    train(run, pool, tmp_path, ExecutionConfig(device="cuda", compile=compile), progress=False)
    loss = pd.read_parquet(tmp_path / "log.parquet").loss
    # A 16-task pool is memorised quickly: the NLL falls far below that of the first steps.
    assert loss.iloc[-50:].mean() < loss.iloc[:10].mean() - 0.5


def test_cached_resampling_on_cuda_matches_cpu_in_distribution():
    torch.manual_seed(0)
    model = PFN(CONFIG)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    bar = BarDistribution(prior_borders(CONFIG.n_buckets, 0.25, StandardGaussian(4)))
    inputs = draw_inputs(4000, 8, 4, torch.Generator().manual_seed(3))
    cpu = resample_model(model, bar, inputs, generator=torch.Generator().manual_seed(4)).y
    cuda_model, cuda_bar = PFN(CONFIG).cuda(), BarDistribution(bar.borders).to("cuda")
    cuda_model.load_state_dict(model.state_dict())
    gpu = resample_model(cuda_model, cuda_bar, inputs, generator=torch.Generator(device="cuda").manual_seed(4)).y.cpu()
    # Different random streams: compare the paths' distributions, per step (means within 5 SE,
    # standard deviations within 10 %: 4000 paths give an SE of about 1.1 % on a std).
    se = (cpu.var(0) / 4000 + gpu.var(0) / 4000).sqrt()
    assert ((cpu.mean(0) - gpu.mean(0)).abs() < 5 * se).all()
    assert ((gpu.std(0) / cpu.std(0) - 1).abs() < 0.1).all()
