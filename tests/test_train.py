import itertools
import math
from dataclasses import replace

import pandas as pd
import pytest
import torch

from lrpfn import train as train_module
from lrpfn.checkpoint import load_checkpoint
from lrpfn.config import ExecutionConfig, ModelConfig, PriorConfig, RunConfig, TrainConfig, checkpoint_steps
from lrpfn.io import ArtifactError, load_torch
from lrpfn.priors import StandardGaussian
from lrpfn.tasks import master_pool
from lrpfn.train import TrainingDiverged, learning_rate, train


def tiny_run(steps=40, pool_size=8, **train_kwargs) -> RunConfig:
    settings = dict(steps=steps, batch_size=16, lr=3e-3, warmup=0.05, checkpoints=3) | train_kwargs
    return RunConfig(
        dim=2,
        context_length=6,
        noise_var=0.1,
        pool_size=pool_size,
        seed=3,
        model=ModelConfig(dim=2, n_buckets=16, d_model=16, n_layers=1, n_heads=2, d_mlp=32),
        train=TrainConfig(**settings),
    )


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=1000, batch_size=8, lr=1e-3, warmup=0.1, checkpoints=2)
    lrs = [learning_rate(s, cfg) for s in range(1, 1001)]
    assert lrs[0] == pytest.approx(1e-3 / 100)  # 100 warm-up steps
    assert max(lrs) == pytest.approx(1e-3) and lrs.index(max(lrs)) == 99
    assert all(a >= b for a, b in itertools.pairwise(lrs[99:]))  # decays monotonically
    assert lrs[-1] == pytest.approx(0, abs=1e-12)
    linear = TrainConfig(steps=1000, batch_size=8, lr=1e-3, warmup=0.5, checkpoints=2, decay="linear")
    assert learning_rate(750, linear) == pytest.approx(0.5e-3)


def test_checkpoint_steps_double_up_to_the_last_step():
    assert checkpoint_steps(TrainConfig(steps=32000, batch_size=8, lr=1e-3, warmup=0.0, checkpoints=4)) == [
        4000,
        8000,
        16000,
        32000,
    ]
    assert checkpoint_steps(TrainConfig(steps=3, batch_size=8, lr=1e-3, warmup=0.0, checkpoints=5)) == [1, 2, 3]


def test_train_config_rejects_bad_values():
    with pytest.raises(ValueError, match="warmup"):
        TrainConfig(steps=10, batch_size=8, lr=1e-3, warmup=1.5, checkpoints=2)
    with pytest.raises(ValueError, match="decay"):
        TrainConfig(steps=10, batch_size=8, lr=1e-3, warmup=0.0, checkpoints=2, decay="step")


def test_the_curriculum_grows_the_active_dimensions_in_equal_stages():
    cfg = TrainConfig(steps=100, batch_size=8, lr=1e-3, warmup=0.0, checkpoints=2, curriculum=0.3)
    active = [cfg.active_dims(step, 4) for step in range(1, 101)]
    # 30 curriculum steps, three stages of 1, 2 and 3 dimensions; all 4 from step 30 on.
    assert active[:29] == [1] * 9 + [2] * 10 + [3] * 10
    assert set(active[29:]) == {4}
    assert {cfg.active_dims(step, 1) for step in range(1, 101)} == {1}
    plain = TrainConfig(steps=100, batch_size=8, lr=1e-3, warmup=0.0, checkpoints=2)
    assert {plain.active_dims(step, 4) for step in range(1, 101)} == {4}
    with pytest.raises(ValueError, match="curriculum"):
        TrainConfig(steps=10, batch_size=8, lr=1e-3, warmup=0.0, checkpoints=2, curriculum=1.0)


def test_training_draws_its_batches_with_the_curriculums_dimensions(tmp_path, monkeypatch):
    run = tiny_run(steps=20, curriculum=0.5)
    real_sample, seen = train_module.sample_batch, []

    def recording_sample(*args, **kwargs):
        batch = real_sample(*args, **kwargs)
        seen.append(int((batch.x.abs().sum(dim=(0, 1)) > 0).sum()))  # nonzero input columns
        return batch

    monkeypatch.setattr(train_module, "sample_batch", recording_sample)
    train(run, master_pool(8, 0, StandardGaussian(2)), tmp_path, progress=False)
    assert seen == [1] * 9 + [2] * 11


def test_training_cycles_through_its_lengths_at_equal_tokens(tmp_path, monkeypatch):
    run = tiny_run(steps=7, pool_size=math.inf, max_length=24)  # context 6: lengths 6, 12, 24 with 16, 8, 4 sequences
    real_sample, seen = train_module.sample_batch, []

    def recording_sample(*args, **kwargs):
        batch = real_sample(*args, **kwargs)
        seen.append(tuple(batch.y.shape))
        return batch

    monkeypatch.setattr(train_module, "sample_batch", recording_sample)
    train(run, None, tmp_path, progress=False)
    assert seen == [(16, 6), (8, 12), (4, 24)] * 2 + [(16, 6)]


def test_run_config_roundtrips_through_a_dict():
    spike_slab = PriorConfig.from_dict({"kind": "spike_slab", "p_zero": 0.5, "slab_var": 2.0})
    for pool_size in (8, math.inf):
        for prior in (PriorConfig(), spike_slab):
            run = replace(tiny_run(pool_size=pool_size), prior=prior)
            assert RunConfig.from_dict(run.to_dict()) == run


def test_run_writes_checkpoints_and_log(tmp_path):
    run = tiny_run(steps=60)
    pool = master_pool(8, 0, StandardGaussian(2))
    paths = train(run, pool, tmp_path, progress=False)
    assert [p.name for p in paths] == ["step_0000015.pt", "step_0000030.pt", "step_0000060.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in paths] + ["log.parquet"])
    log = pd.read_parquet(tmp_path / "log.parquet")
    assert list(log.columns) == ["step", "loss", "lr"] and log.step.tolist() == list(range(1, 61))
    assert log.lr.tolist() == [learning_rate(s, run.train) for s in range(1, 61)]
    assert log.loss.iloc[-10:].mean() < log.loss.iloc[:10].mean()  # it learns something
    ckpt = load_checkpoint(paths[-1])
    assert ckpt.step == 60 and ckpt.model.config == run.model and RunConfig.from_dict(ckpt.run) == run
    assert torch.equal(ckpt.bar.borders, train_module.build(run)[1].borders)


class Killed(Exception):
    pass


def test_killed_run_resumes_to_identical_weights(tmp_path, monkeypatch):
    run, every10 = tiny_run(steps=50), ExecutionConfig(device="cpu", save_every=10)
    pool = master_pool(8, 0, StandardGaussian(2))
    clean = train(run, pool, tmp_path / "clean", every10, progress=False)

    real_sample = train_module.sample_batch
    calls = {"n": 0}

    def dying_sample(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 37:  # dies mid-way through step 37; last resume state is at 30
            raise Killed
        return real_sample(*args, **kwargs)

    monkeypatch.setattr(train_module, "sample_batch", dying_sample)
    with pytest.raises(Killed):
        train(run, pool, tmp_path / "resumed", every10, progress=False)
    assert load_torch(tmp_path / "resumed" / "resume.pt")["step"] == 30
    # A workflow manager deletes the files of the killed job; the resumed run restores them.
    (tmp_path / "resumed" / "step_0000012.pt").unlink()
    monkeypatch.setattr(train_module, "sample_batch", real_sample)
    resumed = train(run, pool, tmp_path / "resumed", every10, progress=False)

    for a, b in zip(clean, resumed, strict=True):
        sa, sb = load_torch(a)["model_state"], load_torch(b)["model_state"]
        assert all(torch.equal(sa[k], sb[k]) for k in sa), a.name
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "clean/log.parquet"), pd.read_parquet(tmp_path / "resumed/log.parquet")
    )
    assert not (tmp_path / "resumed" / "resume.pt").exists()


def test_resume_state_of_another_config_is_ignored(tmp_path):
    pool = master_pool(8, 0, StandardGaussian(2))
    every10 = ExecutionConfig(device="cpu", save_every=10)
    train(tiny_run(steps=20), pool, tmp_path / "a", every10, progress=False)
    (tmp_path / "b").mkdir()
    other = tiny_run(steps=20)
    stale = load_torch(tmp_path / "a" / "step_0000020.pt")  # anything with the wrong run dict
    torch.save({**stale, "run": {"different": True}}, tmp_path / "b" / "resume.pt")
    paths = train(other, pool, tmp_path / "b", every10, progress=False)
    sa = load_torch(tmp_path / "a" / "step_0000020.pt")["model_state"]
    sb = load_torch(paths[-1])["model_state"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_nan_loss_stops_the_run_with_a_clear_error(tmp_path):
    pool = master_pool(8, 0, StandardGaussian(2))
    pool[3, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"non-finite loss .* at step \d+ of run M=8"):
        train(tiny_run(steps=30), pool, tmp_path, progress=False)
    assert not (tmp_path / "log.parquet").exists()


def test_pool_of_the_wrong_shape_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="pool has shape"):
        train(tiny_run(), master_pool(8, 0, StandardGaussian(3)), tmp_path, progress=False)


def test_checkpoint_with_another_config_is_rejected(tmp_path):
    paths = train(tiny_run(steps=5), master_pool(8, 0, StandardGaussian(2)), tmp_path, progress=False)
    other = ModelConfig(dim=2, n_buckets=16, d_model=32, n_layers=1, n_heads=2, d_mlp=32)
    with pytest.raises(ArtifactError, match=f"{paths[-1].name}.*differs"):
        load_checkpoint(paths[-1], expect=other)


def test_bfloat16_autocast_trains_like_float32(tmp_path):
    # The bf16 path (meant for GPUs) also runs on the CPU: same batches, same schedule, and the
    # loss curve stays close to the float32 one (bf16 keeps ~3 significant digits).
    losses, pool = {}, master_pool(8, 0, StandardGaussian(2))
    for precision in ("float32", "bfloat16"):
        train(tiny_run(steps=150, precision=precision), pool, tmp_path / precision, progress=False)
        losses[precision] = pd.read_parquet(tmp_path / precision / "log.parquet").loss.to_numpy()
    f32, bf16 = losses["float32"], losses["bfloat16"]
    assert f32[-20:].mean() < f32[:10].mean() - 0.3  # it learns
    assert abs(bf16[:10].mean() - f32[:10].mean()) < 0.005
    assert abs(bf16[-20:].mean() - f32[-20:].mean()) < 0.02  # measured: 2e-4
    assert not (bf16 == f32).all()  # autocast did change the arithmetic


def test_losses_are_read_in_blocks_but_logged_for_every_step(tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "_READ_EVERY", 7)
    pool = master_pool(8, 0, StandardGaussian(2))
    train(tiny_run(steps=30), pool, tmp_path, ExecutionConfig(save_every=11), progress=False)
    log = pd.read_parquet(tmp_path / "log.parquet")
    assert log.step.tolist() == list(range(1, 31)) and log.loss.notna().all()


def test_execution_settings_change_no_byte_of_a_checkpoint(tmp_path):
    # The run's identity is its science: how often the resume state is saved changes neither
    # the weights nor the run config stored with them, so the files are byte-identical.
    pool = master_pool(8, 0, StandardGaussian(2))
    run = tiny_run(steps=30)
    a = train(run, pool, tmp_path / "a", ExecutionConfig(device="cpu", save_every=7), progress=False)
    b = train(run, pool, tmp_path / "b", ExecutionConfig(device="auto", save_every=1000), progress=False)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    stored = load_torch(a[-1])["run"]
    assert set(stored["train"]) == {
        "steps",
        "batch_size",
        "lr",
        "warmup",
        "checkpoints",
        "curriculum",
        "decay",
        "weight_decay",
        "grad_clip",
        "precision",
    }
