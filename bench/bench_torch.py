"""Step time of memsgd.torch optimizers against torch.optim.SGD(momentum), eager and compiled.

10M float32 parameters in 40 tensors (default), gradients fixed. Every optimizer steps its own
copy of the parameters; timed blocks of ``--steps`` steps run round-robin over all optimizers
(``--rounds`` rounds, so that a loaded machine slows every optimizer alike), and the minimum
block time per step is reported. Ratios are to the baseline of the same run and table:

- eager: ``torch.optim.SGD(momentum=0.9, fused=True)``; target AM1(kick > 0, fused=True) <= 1.1x;
- compiled (``--compiled``): ``torch.compile(SGD(momentum=0.9, lr=tensor).step)``; target
  compiled AM1 with tensor lr, momentum and kick <= 1.1x.

    python bench/bench_torch.py [--device cpu|cuda] [--params 10000000] [--tensors 40] [--threads N] [--compiled]

The fused AM1 step reads p, g and v and writes p and v once (SGD(fused=True)'s five streams);
on a loaded machine torch's per-tensor parallel regions wait for descheduled threads far more
often than the core's one region per step, which flatters the ratio: compare on a quiet machine
or with --threads 1.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time

import torch

from memsgd.torch import AM1, MemorySGD

SGD_FUSED = "SGD(momentum=0.9, fused)"
SGD_COMPILED = "compiled SGD(momentum=0.9, tensor lr)"


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


def time_all(steppers, device, steps, rounds):
    """Minimum seconds per step of each stepper over ``rounds`` interleaved blocks."""
    best = {label: float("inf") for label in steppers}
    for _ in range(rounds):
        for label, step in steppers.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            sync(device)
            best[label] = min(best[label], (time.perf_counter() - t0) / steps)
    return best


def eager_cases(device):
    def t(x):
        return torch.tensor(x, device=device)
    return {
        SGD_FUSED: lambda ps: torch.optim.SGD(ps, lr=1e-3, momentum=0.9, fused=True),
        "SGD(momentum=0.9, foreach)": lambda ps: torch.optim.SGD(ps, lr=1e-3, momentum=0.9, foreach=True),
        "AM1(kick=0.1, fused)": lambda ps: AM1(ps, lr=1e-3, momentum=0.9, kick=0.1, fused=True),
        "AM1(kick=0, fused)": lambda ps: AM1(ps, lr=1e-3, momentum=0.9, kick=0.0, fused=True),
        "AM1(kick=0.1, schedule, fused)": lambda ps: AM1(ps, schedule=lambda s: (1e-3, 0.9, 0.1), fused=True),
        "AM1(kick=0.1, foreach)": lambda ps: AM1(ps, lr=1e-3, momentum=0.9, kick=0.1, foreach=True),
        "AM1(kick=0.1, single-tensor)": lambda ps: AM1(ps, lr=1e-3, momentum=0.9, kick=0.1, foreach=False),
        "AM1(kick=0.1, capturable)": lambda ps: AM1(ps, lr=t(1e-3), momentum=0.9, kick=t(0.1),
                                                    capturable=True, foreach=True),
        "MemorySGD(M=1 heavy ball, fused)": lambda ps: MemorySGD(ps, 1e-3, [0.9], [1e-3], [[0.9]], fused=True),
        "MemorySGD(M=2, fused)": lambda ps: MemorySGD(ps, 1e-3, [0.9, 0.1], [1e-3, 1e-3],
                                                      [[0.9, 0.05], [0.0, 0.5]], fused=True),
        "MemorySGD(M=2, foreach)": lambda ps: MemorySGD(ps, 1e-3, [0.9, 0.1], [1e-3, 1e-3],
                                                        [[0.9, 0.05], [0.0, 0.5]], foreach=True),
    }


def compiled_cases():
    # tensor hyperparameters: a new value (an lr schedule) needs no new graph, for both
    def t(x):
        return torch.tensor(x, dtype=torch.float64)
    return {
        SGD_COMPILED: lambda ps: torch.optim.SGD(ps, lr=t(1e-3), momentum=0.9, foreach=True),
        "compiled AM1(kick=0.1, tensor lr/momentum/kick)": lambda ps: AM1(ps, lr=t(1e-3), momentum=t(0.9),
                                                                          kick=t(0.1)),
        "compiled AM1(kick=0.1, fused)": lambda ps: AM1(ps, lr=t(1e-3), momentum=t(0.9), kick=t(0.1), fused=True),
        "compiled AM1(schedule)": lambda ps: AM1(ps, schedule=lambda s: (1e-3, 0.9, 0.1)),
        "compiled MemorySGD(M=2, tensor lr)": lambda ps: MemorySGD(ps, 1e-3, [0.9, 0.1], [1e-3, 1e-3],
                                                                   [[0.9, 0.05], [0.0, 0.5]], lr=t(1.0)),
    }


def report(title, results, base_label):
    base = results[base_label]
    print(f"\n{title}")
    print(f"{'optimizer':50s} {'ms/step':>9s} {'x base':>7s}")
    for label, t in results.items():
        print(f"{label:50s} {t * 1e3:9.3f} {t / base:7.3f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--params", type=int, default=10_000_000, help="total parameters (default 1e7)")
    ap.add_argument("--tensors", type=int, default=40, help="number of tensors (default 40)")
    ap.add_argument("--steps", type=int, default=None, help="steps per timed block (default 5 cpu, 100 cuda)")
    ap.add_argument("--rounds", type=int, default=9, help="interleaved rounds; the minimum is reported (>= 7)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads for the run (default: torch's; 1 is steadier on a loaded machine)")
    ap.add_argument("--compiled", action="store_true",
                    help="also time torch.compile(opt.step) (inductor; compiling takes minutes on CPU)")
    args = ap.parse_args(argv)
    if args.rounds < 7:
        ap.error("--rounds must be >= 7")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    dtype = getattr(torch, args.dtype)
    steps = args.steps or (100 if device.type == "cuda" else 5)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"command: python bench/bench_torch.py {shlex.join(sys.argv[1:] if argv is None else argv)}")
    print(f"device: {name}; {args.params:,} {args.dtype} parameters in {args.tensors} tensors; minimum of "
          f"{args.rounds} interleaved rounds x {steps} steps; torch {torch.__version__}")

    def steppers(cases, compiled):
        out = {}
        for label, make in cases.items():
            opt = make(make_params(args.params, args.tensors, device, dtype))
            step = torch.compile(opt.step) if compiled else opt.step
            for _ in range(3):                  # first steps: buffers, compilation
                step()
            out[label] = step
        return out

    results = {}
    eager = time_all(steppers(eager_cases(device), False), device, steps, args.rounds)
    report("eager", eager, SGD_FUSED)
    results.update(eager)
    if args.compiled:
        compiled = time_all(steppers(compiled_cases(), True), device, steps, args.rounds)
        report("compiled (torch.compile(opt.step), inductor)", compiled, SGD_COMPILED)
        results.update(compiled)
    print("\ntargets (<= 1.1):")
    print(f"  AM1(kick=0.1, fused) / {SGD_FUSED}: {eager['AM1(kick=0.1, fused)'] / eager[SGD_FUSED]:.3f}")
    if args.compiled:
        ratio = compiled["compiled AM1(kick=0.1, tensor lr/momentum/kick)"] / compiled[SGD_COMPILED]
        print(f"  compiled AM1 / {SGD_COMPILED}: {ratio:.3f}")
    return results


if __name__ == "__main__":
    main()
