"""Prove that a portable build of memsgd._core runs on any x86-64 CPU.

1. ``scan``: disassembles the built module (objdump) and lists every function that contains an
   AVX instruction (VEX/EVEX: mnemonics v*, ymm/zmm/mask registers, xmm16-31). Allowed only in
   namespace ``memsgd::kernels::avx2`` (no AVX-512 there) and ``memsgd::kernels::avx512``: the
   kernels chosen at run time by CPU detection. Anything else would be an inline or template
   function compiled with -mavx2/-mavx512f in a kernel unit and kept by the linker for every
   caller (the ODR hazard), or -march=native code.
2. ``emulate``: runs Python under ``qemu-x86_64 -cpu <model>`` (apt-get install qemu-user) for a
   CPU without AVX (Nehalem), one with AVX2 but no AVX-512 (Haswell), and checks that the
   dispatcher picks baseline / avx2 there, refuses MEMSGD_SIMD=avx512, and that the engine tests
   pass on the emulated CPU (tests/test_engine.py and tests/test_per_step_batch.py by default).

    python bench/check_portable.py scan [path/to/_core*.so]
    python bench/check_portable.py emulate [--tests "test_engine.py test_per_step_batch.py"]

Exit status 1 on any violation.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALLOWED_AVX = ("memsgd::kernels::avx2::", "memsgd::kernels::avx512::")
ALLOWED_AVX512 = ("memsgd::kernels::avx512::",)
_FUNC = re.compile(r"^[0-9a-f]+ <(.+)>:$")
_INSN = re.compile(r"^\s*[0-9a-f]+:\s+(\S+)\s*(.*)$")
_AVX512_OPERAND = re.compile(r"%zmm|%k[0-7]\b|%[xy]mm(1[6-9]|2[0-9]|3[01])\b|\{%k|\{z\}|\{1to")
_SYMBOL = re.compile(r"<[^>]*>.*$|#.*$")   # jump-target names and comments are not operands


def core_module_path() -> Path:
    import memsgd._core as core
    return Path(core.__file__)


def classify(mnemonic: str, operands: str):
    """(is_avx, is_avx512) of one AT&T instruction."""
    operands = _SYMBOL.sub("", operands)
    avx512 = bool(_AVX512_OPERAND.search(operands)) or mnemonic.startswith("k")
    avx = avx512 or mnemonic.startswith("v") or "%ymm" in operands
    return avx, avx512


def _in(name: str, namespaces) -> bool:
    """The function itself is in one of ``namespaces`` (demangled names may start with a return type)."""
    qualified = name.split("(", 1)[0]
    return any(qualified.startswith(ns) or (" " + ns) in qualified for ns in namespaces)


def scan(path: Path):
    """Functions with AVX / AVX-512 instructions: returns (violations, avx_functions)."""
    if shutil.which("objdump") is None:
        raise RuntimeError("objdump not found (install binutils)")
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", str(path)], capture_output=True,
                         text=True, check=True).stdout
    functions = {}
    current = None
    for line in out.splitlines():
        m = _FUNC.match(line)
        if m:
            current = m.group(1)
            continue
        m = _INSN.match(line)
        if m and current is not None:
            avx, avx512 = classify(m.group(1), m.group(2))
            if avx:
                f = functions.setdefault(current, [False, False, m.group(1) + " " + m.group(2)])
                f[0] = True
                f[1] = f[1] or avx512
    violations = []
    for name, (avx, avx512, example) in functions.items():
        if avx512 and not _in(name, ALLOWED_AVX512):
            violations.append(f"AVX-512 outside the avx512 kernels: {name} ({example})")
        elif avx and not _in(name, ALLOWED_AVX):
            violations.append(f"AVX outside the dispatched kernels: {name} ({example})")
    return violations, functions


def cmd_scan(args) -> int:
    path = Path(args.module) if args.module else core_module_path()
    violations, functions = scan(path)
    print(f"# {path}")
    print(f"# {len(functions)} functions contain AVX instructions:")
    for name, (_avx, avx512, _example) in sorted(functions.items()):
        print(f"  {'AVX-512' if avx512 else 'AVX    '}  {name}")
    for v in violations:
        print("VIOLATION:", v)
    print(f"# violations: {len(violations)}")
    return 1 if violations else 0


PROBE = ("import memsgd, memsgd._core as c; i = c.build_info(); "
         "print(i['simd_active'], ','.join(i['simd_supported']))")


def run_emulated(cpu: str, code: str, env=None, timeout=1800):
    return subprocess.run(["qemu-x86_64", "-cpu", cpu, sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=timeout)


def cmd_emulate(args) -> int:
    if shutil.which("qemu-x86_64") is None:
        print("qemu-x86_64 not found: apt-get install qemu-user")
        return 1
    failures = 0
    expect = {"Nehalem": ("baseline", "baseline"), "Haswell": ("avx2", "baseline,avx2")}
    for cpu, (active, supported) in expect.items():
        r = run_emulated(cpu, PROBE)
        got = r.stdout.strip()
        ok = r.returncode == 0 and got == f"{active} {supported}"
        failures += not ok
        print(f"qemu -cpu {cpu:8s} dispatcher: {got!r} (expected {active!r}, supported {supported!r}) "
              f"{'ok' if ok else 'FAIL ' + r.stderr[-500:]}")
        refused = run_emulated(cpu, "import memsgd", env={"MEMSGD_SIMD": "avx512"})
        ok = refused.returncode != 0 and "MEMSGD_SIMD" in refused.stderr and "lacks it" in refused.stderr
        failures += not ok
        print(f"qemu -cpu {cpu:8s} MEMSGD_SIMD=avx512 refused: {ok} "
              f"({refused.stderr.strip().splitlines()[-1] if refused.stderr.strip() else refused.returncode})")
        code = ("import sys, pytest; sys.exit(pytest.main(['-q', '-x', '-p', 'no:cacheprovider', "
                + ", ".join(repr(str(ROOT / "tests" / t)) for t in args.tests.split()) + "]))")
        t = run_emulated(cpu, code, env={"CI": "true", "OMP_NUM_THREADS": "2"})
        last = t.stdout.strip().splitlines()[-1] if t.stdout.strip() else t.stderr[-300:]
        failures += t.returncode != 0
        print(f"qemu -cpu {cpu:8s} pytest {args.tests}: {last}")
    print(f"# failures: {failures}")
    return 1 if failures else 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("scan")
    s.add_argument("module", nargs="?", help="the _core*.so to scan (default: the imported one)")
    e = sub.add_parser("emulate")
    e.add_argument("--tests", default="test_engine.py test_per_step_batch.py")
    args = p.parse_args(argv)
    return cmd_scan(args) if args.command == "scan" else cmd_emulate(args)


if __name__ == "__main__":
    sys.exit(main())
