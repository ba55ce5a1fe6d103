"""Step time of memsgd.torch optimizers vs torch.optim.SGD(momentum, foreach=True).

10M parameters in 40 tensors (default), gradients fixed; each optimizer is timed on the same
parameters for ``--repeats`` blocks of ``--steps`` steps after warm-up, and the median block time
per step is reported. Ratios are to SGD from the same run.

    python bench/bench_torch.py [--device cpu|cuda] [--params 10000000] [--tensors 40]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from memsgd.torch import AM1, MemorySGD


def make_params(total, tensors, device, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = total // tensors
    params = []
    for _ in range(tensors):
        p = torch.nn.Parameter(torch.randn(n, generator=g, dtype=dtype).to(device))
        p.grad = torch.randn(n, generator=g, dtype=dtype).to(device) * 1e-3
        params.append(p)
    return params


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_all(cases, params, device, steps, repeats, warmup):
    """Median seconds per step of each optimizer; timed blocks are interleaved round-robin so that
    a noisy (shared) machine affects every optimizer alike."""
    opts = {label: make(params) for label, make in cases.items()}
    for opt in opts.values():
        for _ in range(warmup):
            opt.step()
    sync(device)
    per_step = {label: [] for label in opts}
    for _ in range(repeats):
        for label, opt in opts.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                opt.step()
            sync(device)
            per_step[label].append((time.perf_counter() - t0) / steps)
    return {label: statistics.median(v) for label, v in per_step.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--params", type=int, default=10_000_000, help="total parameters (default 1e7)")
    ap.add_argument("--tensors", type=int, default=40, help="number of tensors (default 40)")
    ap.add_argument("--steps", type=int, default=None, help="steps per timed block (default 20 cpu, 200 cuda)")
    ap.add_argument("--repeats", type=int, default=7, help="timed blocks; the median is reported (default 7)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--cpu-batched", action="store_true",
                    help="on CPU, run memsgd's foreach paths as batched torch._foreach_* sweeps (as on "
                         "CUDA) instead of the default cache-friendly per-tensor order")
    args = ap.parse_args(argv)
    if args.cpu_batched:
        from memsgd.torch import _am1, _memory_sgd
        _am1._CPU_PER_TENSOR = _memory_sgd._CPU_PER_TENSOR = False
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    dtype = getattr(torch, args.dtype)
    steps = args.steps or (200 if device.type == "cuda" else 10)
    warmup = max(3, steps // 5)
    params = make_params(args.params, args.tensors, device, dtype)

    cases = {
        "SGD(momentum=0.9, foreach)": lambda ps: torch.optim.SGD(ps, lr=1e-3, momentum=0.9, foreach=True),
        "AM1(kick=0.1, foreach)": lambda ps: AM1(ps, lr=1e-3, momentum=0.9, kick=0.1, foreach=True),
        "AM1(kick=0, foreach)": lambda ps: AM1(ps, lr=1e-3, momentum=0.9, kick=0.0, foreach=True),
        "MemorySGD(M=1 heavy ball, foreach)": lambda ps: MemorySGD(ps, 1e-3, [0.9], [1e-3], [[0.9]], foreach=True),
        "MemorySGD(M=2, foreach)": lambda ps: MemorySGD(ps, 1e-3, [0.9, 0.1], [1e-3, 1e-3],
                                                         [[0.9, 0.05], [0.0, 0.5]], foreach=True),
        "AM1(kick=0.1, single-tensor)": lambda ps: AM1(ps, lr=1e-3, momentum=0.9, kick=0.1, foreach=False),
        # 0-d tensor hyperparameters: read as floats eagerly (same code as above) ...
        "AM1(kick=0.1, tensor lr, foreach)": lambda ps: AM1(ps, lr=torch.tensor(1e-3), momentum=0.9,
                                                            kick=torch.tensor(0.1), foreach=True),
        # ... or kept tensors (the compile/CUDA-graph code path, here run eagerly)
        "AM1(kick=0.1, capturable, foreach)": lambda ps: AM1(ps, lr=torch.tensor(1e-3, device=ps[0].device),
                                                             momentum=0.9, kick=torch.tensor(0.1, device=ps[0].device),
                                                             capturable=True, foreach=True),
    }
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; {args.params:,} {args.dtype} parameters in {args.tensors} tensors; "
          f"median of {args.repeats} blocks x {steps} steps; torch {torch.__version__}"
          + ("; --cpu-batched" if args.cpu_batched else ""))
    results = time_all(cases, params, device, steps, args.repeats, warmup)
    base = results["SGD(momentum=0.9, foreach)"]
    print(f"{'optimizer':42s} {'ms/step':>9s} {'x SGD':>7s}")
    for label, t in results.items():
        print(f"{label:42s} {t * 1e3:9.3f} {t / base:7.3f}")
    return results


if __name__ == "__main__":
    main()
