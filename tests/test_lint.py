"""Lint: ruff over the Python (configured in pyproject.toml [tool.ruff]) and clang-format over
cpp/ (configured in .clang-format; cpp/third_party is vendored and left alone). Both tools are in
the test extra; without them these tests skip.

Both are plain tests: the tree is clean (no ruff violation, clang-format's style throughout), so
any new violation fails here as it does in CI.
"""
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _ruff():
    if shutil.which("ruff"):
        return [shutil.which("ruff")]
    try:
        import ruff  # noqa: F401  (the wheel ships the binary and `python -m ruff`)
    except ImportError:
        pytest.skip("needs ruff: pip install 'memsgd[test]'")
    return [sys.executable, "-m", "ruff"]


def _cpp_files():
    return sorted(p for p in (ROOT / "cpp").rglob("*") if p.suffix in (".cpp", ".hpp", ".h")
                  and "third_party" not in p.relative_to(ROOT).parts)


def test_ruff_check_is_clean():
    out = subprocess.run([*_ruff(), "check", "--output-format", "concise", "."], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr


def test_ruff_configuration_is_the_projects():
    # the rules CI runs live in pyproject.toml: a parse error there must not pass unnoticed
    out = subprocess.run([*_ruff(), "check", "--show-settings", "python/memsgd/__init__.py"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "line_length = 120" in out.stdout


def test_cpp_is_clang_formatted():
    tool = shutil.which("clang-format")
    if tool is None:
        pytest.skip("needs clang-format: pip install 'memsgd[test]'")
    files = _cpp_files()
    assert len(files) > 10
    out = subprocess.run([tool, "--dry-run", "--Werror", *map(str, files)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def test_clang_format_style_file_parses():
    tool = shutil.which("clang-format")
    if tool is None:
        pytest.skip("needs clang-format: pip install 'memsgd[test]'")
    out = subprocess.run([tool, "--dump-config", str(ROOT / "cpp" / "src" / "evolve.cpp")], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "ColumnLimit:     0" in out.stdout and "IncludeBlocks:   Preserve" in out.stdout
