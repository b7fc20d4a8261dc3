"""Training throughput: sequences/s, tokens/s and peak memory of full optimiser steps.

Warm-up steps are excluded. Defaults are the seed-sweep configuration (D=16, K=64,
d_model 128, 2 layers, 2 heads, MLP 256, 128 buckets, batch 1024).

    python benchmarks/bench_train.py
    python benchmarks/bench_train.py --batch-size 64 --context-length 16 --dim 4 \
        --d-model 64 --layers 3 --heads 4 --d-mlp 128
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from lrpfn.buckets import BarDistribution, prior_borders
from lrpfn.config import ModelConfig, TrainConfig
from lrpfn.model import PFN
from lrpfn.priors import StandardGaussian
from lrpfn.tasks import sample_batch
from lrpfn.train import Stepper, make_optimizer


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--context-length", type=int, default=64)
    parser.add_argument("--noise-var", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--d-mlp", type=int, default=256)
    parser.add_argument("--buckets", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps")
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--compile", action="store_true", help="torch.compile the forward pass")
    parser.add_argument(
        "--draw-on", choices=["cpu", "device"], default="cpu",
        help="where batches are drawn: cpu (what training does, then copied to the device) or the device itself",
    )  # fmt: skip
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = ModelConfig(
        dim=args.dim,
        n_buckets=args.buckets,
        d_model=args.d_model,
        n_layers=args.layers,
        n_heads=args.heads,
        d_mlp=args.d_mlp,
    )
    torch.manual_seed(0)
    model = PFN(config).to(device)
    prior = StandardGaussian(args.dim)
    bar = BarDistribution(prior_borders(args.buckets, args.noise_var, prior)).to(device)
    train_config = TrainConfig(
        steps=2, batch_size=args.batch_size, lr=1e-3, warmup=0.0, checkpoints=2, precision=args.precision
    )
    stepper = Stepper(model, bar, make_optimizer(model, train_config), train_config, compile=args.compile)
    # Training draws batches on the CPU (the same data on every device); --draw-on device
    # measures what that costs against drawing them on the GPU.
    generator = torch.Generator(device=device if args.draw_on == "device" else "cpu").manual_seed(0)

    def step():  # what one step of lrpfn.train.train does
        batch = sample_batch(args.batch_size, args.context_length, args.noise_var, prior, generator)
        return stepper(batch.to(device), 1e-3)

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    loss.item()  # wait for the device
    seconds = (time.perf_counter() - start) / args.steps
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sequences = args.batch_size / seconds
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, threads={args.threads}"
    print(f"# {config}, batch {args.batch_size}, K={args.context_length}, device={name}, "
          f"precision={args.precision}, compile={args.compile}, batches drawn on {args.draw_on}")  # fmt: skip
    print(f"{seconds:.3f} s/step  {1 / seconds:.2f} steps/s  {sequences:.0f} sequences/s  "
          f"{sequences * 2 * args.context_length:.0f} tokens/s  peak {peak:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
