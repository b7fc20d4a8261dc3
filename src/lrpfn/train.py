"""Training one PFN run (docs/design.md §5): one pool size, one seed.

A run is a pure function of its :class:`RunConfig`: the learning-rate schedule, the
checkpoint steps, the initial weights and every training batch follow from it. How it is
executed (:class:`ExecutionConfig`: device, threads, resume-state interval, compilation)
changes float rounding at most. Output folder layout::

    out_dir/step_0000250.pt ...   checkpoints (weights, model config, borders, step)
    out_dir/log.parquet           per-step table: step, loss, lr
    out_dir/resume.pt             rolling resume state while the run is in progress

A killed run restarted with the same config continues from ``resume.pt`` and ends with
exactly the weights of an uninterrupted run on the same device.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from . import families, priors
from .buckets import BarDistribution
from .checkpoint import checkpoint_payload, save_checkpoint
from .config import ExecutionConfig, RunConfig, TrainConfig, checkpoint_name, checkpoint_steps
from .io import load_torch, save_torch, write_parquet
from .model import PFN
from .tasks import sample_batch

log = logging.getLogger(__name__)

_READ_EVERY = 100  # steps between reads of the loss from the device (each one waits for it)


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite."""


def learning_rate(step: int, config: TrainConfig) -> float:
    """Learning rate for optimiser step ``step`` (1-based): linear warm-up, then decay to 0."""
    warmup = int(config.warmup * config.steps)
    if step <= warmup:
        return config.lr * step / warmup
    progress = (step - warmup) / max(1, config.steps - warmup)
    if config.decay == "linear":
        return config.lr * (1 - progress)
    return config.lr * 0.5 * (1 + math.cos(math.pi * progress))


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def make_optimizer(model: PFN, config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.95))


class Stepper:
    """One optimiser step of a PFN on a batch: forward (optionally compiled and in bf16
    autocast), the head's objective in float32 (:meth:`lrpfn.buckets.BarDistribution.loss`),
    backward, clipping, AdamW. Returns the NLL, the loss that is logged.

    The returned loss stays on the device: reading it (``.item()``) waits for the device,
    so the training loop collects losses and reads them in blocks.
    """

    def __init__(
        self,
        model: PFN,
        bar: BarDistribution,
        optimizer: torch.optim.Optimizer,
        config: TrainConfig,
        compile: bool = False,
    ):
        self.model, self.bar, self.optimizer, self.config = model, bar, optimizer, config
        self.forward = torch.compile(model) if compile else model
        self.device_type = next(model.parameters()).device.type
        self.autocast = config.precision == "bfloat16"

    def __call__(self, batch, lr: float) -> torch.Tensor:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.autocast):
            logits = self.forward(batch.x, batch.y)
        objective, nll = self.bar.loss(logits.float(), batch.y)
        self.optimizer.zero_grad(set_to_none=True)
        objective.mean().backward()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return nll.mean().detach()


def training_batch(run: RunConfig, step: int, tasks: priors.Prior, generator: torch.Generator, features=None):
    """The batch of optimiser step ``step`` (1-based), drawn on the CPU from the run's task
    distribution (:func:`lrpfn.families.of_pool`) on its features (:attr:`lrpfn.families.Family.phi`):
    its sequences and length from the run's length mix (:meth:`lrpfn.config.TrainConfig.batch_shape`),
    its input dimensions from the curriculum."""
    active = run.train.active_dims(step, run.dim)
    sequences, length = run.train.batch_shape(step, run.context_length)
    return sample_batch(sequences, length, run.noise_var, tasks, generator, active, features)


def build(run: RunConfig) -> tuple[PFN, BarDistribution]:
    """The run's initial model (seeded from ``run.seed``) and its output head."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run.seed)
        model = PFN(run.model)
    bar = families.of_run(run).head(run.model.head, run.model.n_buckets, seed=run.border_seed)
    return model, bar


def train(
    run: RunConfig,
    pool: priors.Pool | torch.Tensor | None,
    out_dir: str | Path,
    execution: ExecutionConfig = ExecutionConfig(),
    progress: bool = True,
) -> list[Path]:
    """Train one run, writing checkpoints and the log table into ``out_dir``.

    ``pool`` is the run's task pool (a :class:`lrpfn.priors.Pool`, or its tasks (M, P)), or None
    for the true prior. ``execution`` says where
    and how (device, resume-state interval, compilation); it changes no number beyond float
    rounding: batches are drawn on the CPU from a generator seeded with ``run.seed`` and
    then moved to the device, so a run sees the same data on every device, and its resume
    state (whose generator state is the CPU's) can be resumed on another device. Resumes
    from ``out_dir/resume.pt`` when it holds a state of the same run config. Returns the
    checkpoint paths.
    """
    out_dir = Path(out_dir)
    cfg = run.train
    device = resolve_device(execution.device)
    tasks = families.of_pool(run, priors.Pool(pool) if isinstance(pool, torch.Tensor) else pool)
    features = families.of_run(run).phi

    model, bar = build(run)
    model.to(device)
    bar.to(device)
    optimizer = make_optimizer(model, cfg)
    generator = torch.Generator().manual_seed(run.seed)  # CPU: the same batches on every device
    history: dict[str, list] = {"step": [], "loss": [], "lr": []}
    # Checkpoints written so far travel with the resume state: a workflow manager may delete
    # the files of a killed job, and the resumed run restores them.
    written: dict[int, dict] = {}
    start = 0

    resume_path = out_dir / "resume.pt"
    if resume_path.exists():
        state = load_torch(resume_path, map_location=device)
        if state["run"] == run.to_dict():
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            generator.set_state(state["generator"].cpu())
            history = {k: list(v.tolist()) for k, v in state["history"].items()}
            written = state["checkpoints"]
            start = state["step"]
            for step, payload in written.items():
                if not (out_dir / checkpoint_name(step)).exists():
                    save_checkpoint(out_dir / checkpoint_name(step), payload)
            log.info("resuming %s from step %d", out_dir, start)
        else:
            log.warning("ignoring %s: it belongs to a different run config", resume_path)

    def save_resume(step: int):
        save_torch(
            {
                "run": run.to_dict(),
                "step": step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "generator": generator.get_state(),
                "history": {k: torch.tensor(v, dtype=torch.float64) for k, v in history.items()},
                "checkpoints": written,
            },
            resume_path,
        )

    ckpt_steps = set(checkpoint_steps(cfg))
    stepper = Stepper(model, bar, optimizer, cfg, compile=execution.compile)
    pending: list[torch.Tensor] = []  # losses not yet read back from the device

    def read_losses():
        """Move pending losses into the history (one device sync); stop on a non-finite one."""
        if not pending:
            return
        values = torch.stack(pending).tolist()
        steps = history["step"][len(history["loss"]) :]
        for step, value in zip(steps, values, strict=True):
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"non-finite loss ({value}) at step {step} of run M={run.pool_size:g} seed={run.seed} in {out_dir}"
                )
        history["loss"].extend(values)
        pending.clear()

    model.train()
    bar_iter = tqdm(
        range(start + 1, cfg.steps + 1),
        initial=start,
        total=cfg.steps,
        disable=not progress,
        desc=f"M={run.pool_size:g} seed={run.seed}",
        mininterval=2.0,
    )
    for step in bar_iter:
        lr = learning_rate(step, cfg)
        batch = training_batch(run, step, tasks, generator, features).to(device)
        pending.append(stepper(batch, lr))
        history["step"].append(step)
        history["lr"].append(lr)
        is_checkpoint = step in ckpt_steps
        is_resume_point = step % execution.save_every == 0 and step < cfg.steps
        if is_checkpoint or is_resume_point or step % _READ_EVERY == 0 or step == cfg.steps:
            read_losses()  # before anything is written: a diverged run leaves no artifact
            recent = history["loss"][-_READ_EVERY:]
            bar_iter.set_postfix(loss=f"{sum(recent) / len(recent):.4f}")
        if is_checkpoint:
            written[step] = checkpoint_payload(model, bar, run, step)
            save_checkpoint(out_dir / checkpoint_name(step), written[step])
        if is_resume_point:
            save_resume(step)

    frame = pd.DataFrame(
        {"step": pd.Series(history["step"], dtype="int64"), "loss": history["loss"], "lr": history["lr"]}
    )
    write_parquet(frame, out_dir / "log.parquet")
    resume_path.unlink(missing_ok=True)
    return [out_dir / checkpoint_name(s) for s in sorted(ckpt_steps)]
