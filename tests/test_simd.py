"""SIMD paths: run-time dispatch, the MEMSGD_SIMD override, agreement across paths, and the proof
that no AVX instruction of the portable build lies outside the dispatched kernels.

The emulated-CPU half of the proof (qemu-x86_64 -cpu Nehalem / Haswell) is
``python bench/check_portable.py emulate`` (minutes; not run in CI).
"""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import memsgd
from memsgd import MemoryAlgorithm, Noise, Spectrum, _core, loss_curve, schedules

ROOT = Path(__file__).resolve().parents[1]
INFO = _core.build_info()
PATHS = INFO["simd_supported"]


def _check_portable():
    spec = importlib.util.spec_from_file_location("check_portable", ROOT / "bench" / "check_portable.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("objdump") is None or INFO["architecture"] != "x86_64",
                    reason="needs objdump (binutils) and an x86-64 build")
def test_no_avx_instruction_outside_the_dispatched_kernels():
    if INFO["native"]:
        pytest.skip("a MEMSGD_NATIVE=ON build is tuned for this CPU on purpose")
    violations, functions = _check_portable().scan(Path(_core.__file__))
    assert violations == []
    # the scan sees the kernels (the symbol table is kept), so an empty list means something
    for path in set(PATHS) & {"avx2", "avx512"}:
        assert any(f"memsgd::kernels::{path}::" in name for name in functions), f"no {path} kernel found"


def test_scanner_flags_avx_outside_the_kernels():
    check = _check_portable()
    assert check.classify("vmovapd", "%ymm0,%ymm1") == (True, False)
    assert check.classify("vfmadd231pd", "%zmm1,%zmm2,%zmm3") == (True, True)
    assert check.classify("vmovsd", "(%rdi),%xmm16") == (True, True)
    assert check.classify("movapd", "%xmm0,%xmm1") == (False, False)
    assert check.classify("call", "1234 <f()::{lambda()#1}>") == (False, False)
    assert check._in("void memsgd::kernels::avx2::(anonymous namespace)::step<2>(double*)", check.ALLOWED_AVX)
    assert not check._in("memsgd::evolve(memsgd::kernels::avx2::X const&)", check.ALLOWED_AVX)


def test_dispatcher_picks_the_fastest_supported_path():
    assert PATHS[0] == "baseline" and set(PATHS) <= set(INFO["simd_compiled"])
    assert _core.simd_path() == (os.environ.get("MEMSGD_SIMD") or PATHS[-1]).replace("auto", PATHS[-1])


def test_set_simd_path_refuses_unknown_paths():
    with pytest.raises(ValueError, match="SIMD path must be one of auto, baseline"):
        _core.set_simd_path("sse9")


@pytest.mark.slow
def test_environment_override_and_refusal():
    code = "import memsgd._core as c; print(c.simd_path())"
    for path in PATHS:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=dict(os.environ, MEMSGD_SIMD=path), timeout=60)
        assert out.returncode == 0 and out.stdout.strip() == path, out.stderr
    bad = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, MEMSGD_SIMD="avx1024"), timeout=60)
    assert bad.returncode != 0 and "environment variable MEMSGD_SIMD" in bad.stderr
    missing = [p for p in INFO["simd_compiled"] if p not in PATHS]
    if missing:  # a compiled path this CPU lacks is refused, not run
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=dict(os.environ, MEMSGD_SIMD=missing[-1]), timeout=60)
        assert out.returncode != 0 and "this CPU lacks it" in out.stderr


ALGOS = [memsgd.gd(0.9), memsgd.heavy_ball(0.4, 0.8), memsgd.nesterov(0.4, 0.7), schedules.am1_power_law(0.5, 0.3),
         MemoryAlgorithm(0.3, [0.2, -0.1], [0.1, 0.2], [[0.5, 0.1], [-0.1, 0.4]], [0.1, -0.2]),
         MemoryAlgorithm(0.3, [0.2, 0.1, 0.1], [0.1, 0.2, 0.1], 0.4 * np.eye(3), [0.1, 0.0, 0.2]),
         # weight decay: the affine kernels (and the preconditioner's per-node decay)
         memsgd.gd(0.9, weight_decay=0.01), memsgd.heavy_ball(0.4, 0.8, weight_decay=0.01),
         memsgd.nesterov(0.4, 0.7, weight_decay=0.01), schedules.am1_power_law(0.5, 0.3, weight_decay=0.02),
         MemoryAlgorithm(0.3, [0.2, 0.1, 0.1], [0.1, 0.2, 0.1], 0.4 * np.eye(3), [0.1, 0.0, 0.2], weight_decay=0.01),
         MemoryAlgorithm(0.2, [0.3], [0.1], [[0.5]], weight_decay=0.01, preconditioner=0.3)]


@pytest.mark.parametrize("algo", ALGOS, ids=["gd", "hb", "nesterov", "am1-schedule", "M2", "M3", "gd-wd", "hb-wd",
                                             "nesterov-wd", "am1-schedule-wd", "M3-wd", "hb-precond-wd"])
def test_paths_agree(algo):
    # Lanes and summation order are the same on every path; only fused multiply-adds differ
    # (the baseline x86-64 path has none), so AVX2 and AVX-512 agree bitwise and baseline to rounding.
    spec = Spectrum.power_law(1.5, 0.8, size=3001)
    curves = {}
    original = _core.simd_path()
    try:
        for path in PATHS:
            _core.set_simd_path(path)
            curves[path] = loss_curve(algo, spec, Noise(5), 300)
    finally:
        _core.set_simd_path(original)
    if {"avx2", "avx512"} <= set(curves):
        assert np.array_equal(curves["avx2"].loss, curves["avx512"].loss)
        assert np.array_equal(curves["avx2"].gradient_point_loss, curves["avx512"].gradient_point_loss)
    ref = curves[PATHS[-1]].loss
    for path, c in curves.items():
        np.testing.assert_allclose(c.loss, ref, rtol=1e-13, err_msg=path)


_LANES = {"xmm": 2, "ymm": 4, "zmm": 8}   # doubles per register


def _probe_loop_flops(disassembly: str, path: str):
    """Flops per pass of the loop of ``path``'s fma_probe, counted from its instructions: a
    packed-double fused multiply-add is 2 flops per lane, a packed multiply or add 1. Returns
    (flops, flops in fused multiply-adds) of the loop with the most."""
    import re
    func = re.compile(rf"^([0-9a-f]+) <memsgd::kernels::{path}::\(anonymous namespace\)::fma_probe\(unsigned long\)>:$")
    insn = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
    body, inside = [], False
    for line in disassembly.splitlines():
        if func.match(line):
            inside = True
            continue
        if inside and re.match(r"^[0-9a-f]+ <.*>:$", line):
            break
        m = insn.match(line)
        if inside and m:
            body.append((int(m.group(1), 16), m.group(2), m.group(3)))
    assert body, f"fma_probe of path {path} not found in the disassembly"
    loops = []   # (start, end) of every backward branch inside the function
    for addr, mnemonic, operands in body:
        target = re.match(r"([0-9a-f]+) <", operands)
        if mnemonic.startswith("j") and target and int(target.group(1), 16) < addr:
            loops.append((int(target.group(1), 16), addr))
    counts = []
    for start, end in loops:
        flops = fused = 0
        for addr, mnemonic, operands in body:
            if not start <= addr <= end:
                continue
            reg = re.findall(r"%([xyz]mm)\d+", operands)
            lanes = _LANES[reg[-1]] if reg else 0
            if re.match(r"v?f(n?)m(add|sub)\d*pd", mnemonic):
                flops += 2 * lanes
                fused += 2 * lanes
            elif re.match(r"v?(mul|add|sub)pd$", mnemonic):
                flops += lanes
        counts.append((flops, fused))
    return max(counts)


@pytest.mark.skipif(shutil.which("objdump") is None or INFO["architecture"] != "x86_64",
                    reason="needs objdump (binutils) and an x86-64 build")
def test_fma_probe_counts_the_flops_its_loop_does():
    # Regression: GCC proved the chain started at 1.0 a fixed point of a * m + c and hoisted it,
    # so the AVX-512 loop ran 11 FMAs (AVX2 10, baseline 2/3 of its multiply-adds) while the probe
    # counted 12: the peak was overstated and the engine's share of it understated.
    disassembly = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", _core.__file__], capture_output=True,
                                 text=True, check=True).stdout
    for path in INFO["simd_compiled"]:
        counted, fused = _probe_loop_flops(disassembly, path)
        chains = {"baseline": 3, "avx2": 6, "avx512": 12}[path]   # MEMSGD_PROBE_CHAINS of the kernel files
        assert counted == chains * 8 * 2, (path, counted)     # 8 lanes, 2 flops per multiply-add
        if path in PATHS:
            assert _core.fma_probe(path, 1) == counted, path  # what the probe claims per pass
        if path != "baseline":                                # the x86-64 baseline has no FMA
            assert fused == counted, path
