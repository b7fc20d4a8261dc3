"""Predictive resampling: cached pair keys/values vs re-encoding the whole context.

Same model, same seeds, same paths. For each N prints samples/s (paths x steps per second),
seconds per step, peak memory and the speed-up of the cached sampler.

    python benchmarks/bench_resample.py                     # d_model 128, 2 layers, 2 heads, D=16, B=1000
    python benchmarks/bench_resample.py --steps 16 32 --paths 200
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time

import torch

from lrpfn.buckets import BarDistribution, prior_borders
from lrpfn.model import PFN, ModelConfig
from lrpfn.priors import StandardGaussian
from lrpfn.resample import draw_inputs, resample_model, resample_reencode


def _run_in_child(queue, fn, args, kwargs):
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    seconds = time.perf_counter() - start
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    queue.put((out.x.cpu().numpy(), seconds, peak))  # numpy: no shared-memory tensor handles


def timed(fn, *args, device, **kwargs):
    """Run one sampler; return its inputs x, seconds, and peak memory it added (MB).

    On CPU it runs in a forked child, so the peak is that sampler's own, not the high-water
    mark of everything the benchmark ran before it."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        torch.cuda.synchronize()
        return out.x.cpu().numpy(), time.perf_counter() - start, torch.cuda.max_memory_allocated() / 2**20
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_run_in_child, args=(queue, fn, args, kwargs))
    child.start()
    result = queue.get()
    child.join()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--paths", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--d-mlp", type=int, default=256)
    parser.add_argument("--buckets", type=int, default=128)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--skip-reencode-above", type=int, default=128, help="largest N for the slow sampler")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    config = ModelConfig(
        dim=args.dim,
        n_buckets=args.buckets,
        d_model=args.d_model,
        n_layers=args.layers,
        n_heads=args.heads,
        d_mlp=args.d_mlp,
    )
    model = PFN(config).to(device).eval()
    bar = BarDistribution(prior_borders(args.buckets, 0.25, StandardGaussian(args.dim))).to(device)
    print(f"# {config}, B={args.paths}, device={device}, threads={args.threads}")
    print(f"{'N':>5} {'cached s':>9} {'cached samples/s':>17} {'cached s/step':>13} {'peak +MB':>8} "
          f"{'reencode s':>10} {'reencode samples/s':>19} {'peak +MB':>8} {'speed-up':>8}")  # fmt: skip
    for n_steps in args.steps:
        inputs = draw_inputs(args.paths, n_steps, args.dim, torch.Generator().manual_seed(0))

        def gen():
            return torch.Generator(device=device).manual_seed(1)

        x_fast, t_fast, m_fast = timed(resample_model, model, bar, inputs, generator=gen(), device=device)
        if n_steps <= args.skip_reencode_above:
            x_slow, t_slow, m_slow = timed(resample_reencode, model, bar, inputs, generator=gen(), device=device)
            assert (x_fast == x_slow).all(), "the samplers drew different paths"
            slow_cols = f"{t_slow:10.2f} {args.paths * n_steps / t_slow:19.0f} {m_slow:8.0f} {t_slow / t_fast:7.1f}x"
        else:
            slow_cols = f"{'-':>10} {'-':>19} {'-':>8} {'-':>8}"
        print(
            f"{n_steps:5d} {t_fast:9.2f} {args.paths * n_steps / t_fast:17.0f} {t_fast / n_steps:13.4f} "
            f"{m_fast:8.0f} {slow_cols}"
        )


if __name__ == "__main__":
    main()
