"""show_config / build_config, and the version's single source."""
import io
import re
import sys
from pathlib import Path

import memsgd
from memsgd import _core
from memsgd._config import build_config

ROOT = Path(__file__).resolve().parents[1]


def test_show_config_prints_the_build():
    out = io.StringIO()
    memsgd.show_config(file=out)
    text = out.getvalue()
    c = build_config()
    assert text.startswith(f"memsgd {memsgd.__version__}\n")
    for field in ("core:", "build:", "OpenMP:", "threads:", "SIMD compiled:", "SIMD supported:", "SIMD in use:"):
        assert field in text
    assert c["compiler"] in text and c["build_type"] in text
    assert f"SIMD in use:     {_core.simd_path()}" in text
    assert ("yes" in text.split("OpenMP:")[1].splitlines()[0]) == c["openmp"]
    assert c["threads"] == _core.max_threads() >= 1
    assert c["simd_in_use"] in c["simd_supported"] and set(c["simd_supported"]) <= set(c["simd_compiled"])


def test_show_config_defaults_to_stdout(capsys):
    memsgd.show_config()
    assert capsys.readouterr().out.startswith("memsgd ")


def test_one_version():
    # the core was built for this package version (CMake reads _version.py), and pyproject takes
    # its version from the same line (scikit-build-core's regex provider)
    assert build_config()["core_version"] == memsgd.__version__
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert re.search(r'\[\[tool\.dynamic-metadata\]\]\s*provider = "scikit_build_core\.metadata\.regex"\s*'
                     r'field = "version"\s*input = "python/memsgd/_version\.py"', pyproject)
    assert not re.search(r'^version\s*=', pyproject, re.MULTILINE)
    assert len(re.findall(r'^__version__ = "', (ROOT / "python/memsgd/_version.py").read_text(), re.MULTILINE)) == 1
    assert not re.search(r'^__version__ = "', (ROOT / "python/memsgd/__init__.py").read_text(), re.MULTILINE)


def test_default_build_is_portable():
    text = (ROOT / "CMakeLists.txt").read_text()
    assert re.search(r'option\(MEMSGD_NATIVE "[^"]*" OFF\)', text)
    if sys.platform.startswith("linux") and not build_config()["native"]:
        assert build_config()["simd_compiled"][0] == "baseline"
