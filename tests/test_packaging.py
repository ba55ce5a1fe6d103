"""What a fresh install needs and shows: dependencies, extras, public names, licence, metadata."""
import importlib
import importlib.metadata
import inspect
import os
import pathlib
import pkgutil
import re
import subprocess
import sys

import pytest

import memsgd

from ._extras import EXTRA_OF

ROOT = pathlib.Path(__file__).resolve().parents[1]

try:
    import tomllib
except ImportError:  # Python < 3.11: pytest itself depends on tomli there
    import tomli as tomllib

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]

# Everything optional; "import memsgd" must work with none of it.
OPTIONAL = ["matplotlib", "tqdm", "torch", "jax", "optax", "xarray", "dask", "zarr", "sklearn", "mkdocs",
            "cloudpickle"]

_BLOCKED = f"""
import sys
for name in {OPTIONAL!r}:
    sys.modules[name] = None  # makes "import name" raise ImportError
"""


def _run(code):
    return subprocess.run([sys.executable, "-c", _BLOCKED + code], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)


def _requirement_name(req: str) -> str:
    return re.split(r"[\[<>=!~ ;]", req, maxsplit=1)[0].lower()


def test_required_dependencies_are_numpy_and_scipy():
    assert sorted(_requirement_name(r) for r in PROJECT["dependencies"]) == ["numpy", "scipy"]


def test_import_and_loss_curve_without_any_optional_dependency():
    # The README's curve goes through the engine's watched path (progress adapter, Ctrl-C); a
    # plotting call then names the extra in one line, as does a forced progress bar.
    out = _run("""
import memsgd
spec = memsgd.Spectrum.power_law(2.0, 1.0)
curve = memsgd.loss_curve(memsgd.heavy_ball(0.1, 0.9), spec, memsgd.Noise.gaussian(10), 10**4)
assert curve.diverged_at is None and 0 < curve.loss[-1] < curve.loss[0]
assert memsgd.loss_curve(memsgd.gd(0.5), spec, memsgd.Noise.gaussian(10), 100, progress=False).loss.size == 101
from memsgd import plotting
for call in (lambda: plotting.plot_curves({"a": curve.loss}, "x.png"),
             lambda: memsgd.loss_curve(memsgd.gd(0.5), spec, memsgd.Noise.none(), 10, progress=True)):
    try:
        call()
    except ImportError as exc:
        print(str(exc))
    else:
        raise SystemExit("no ImportError")
""")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines == ["plotting needs matplotlib: pip install 'memsgd[plot]'",
                     "a progress bar needs tqdm: pip install 'memsgd[progress]'"]


@pytest.mark.slow
def test_cli_names_the_missing_extra_in_one_line_before_computing(tmp_path):
    # 5e6 steps on 10^6 eigenvalues would take hours: the message must come first
    out = _run(f"""
from memsgd.cli import main
import sys
sys.exit(main(["curve", "--steps", "5e6", "--size", "1e6", "--plot", {str(tmp_path / 'c.png')!r}]))
""")
    assert out.returncode == 1
    assert out.stderr == "memsgd curve: error: --plot needs matplotlib: pip install 'memsgd[plot]'\n"
    out = _run(f"""
from memsgd.cli import main
import sys
sys.exit(main(["reproduce", "fig1", "--out", {str(tmp_path / 'o')!r}]))
""")
    assert out.returncode == 1
    assert out.stderr == "memsgd reproduce fig1: error: writing figures needs matplotlib: pip install 'memsgd[plot]'\n"
    assert not (tmp_path / "o").exists()


def test_test_extra_installs_every_extra():
    extras = PROJECT["optional-dependencies"]
    test = {_requirement_name(r) for r in extras["test"]}
    for name, reqs in extras.items():
        missing = {_requirement_name(r) for r in reqs} - test
        assert not missing, f"extra {name!r}: {missing} not in the test extra"


def test_test_extra_is_installed():
    # the suite's extra guards (tests/_extras.py) must never skip in CI: everything in .[test] is
    # there. Elsewhere (`pip install .` plus pytest and hypothesis) they skip, naming the extra.
    missing = []
    for req in PROJECT["optional-dependencies"]["test"]:
        try:
            importlib.metadata.distribution(_requirement_name(req))
        except importlib.metadata.PackageNotFoundError:
            missing.append(_requirement_name(req))
    if missing and not os.environ.get("CI"):
        pytest.skip(f"not in CI; missing from .[test]: {', '.join(missing)}")
    assert not missing


def test_every_requirement_of_every_extra_has_its_skip_message():
    # tests/_extras.py names the extra of each optional module in its skip messages
    rename = {"scikit-learn": "sklearn", "mkdocs-material": "material", "mkdocstrings": "mkdocstrings",
              "pymdown-extensions": "pymdownx", "pybind11-stubgen": "pybind11_stubgen", "clang-format": "clang_format"}
    for extra, reqs in PROJECT["optional-dependencies"].items():
        for req in reqs:
            module = rename.get(_requirement_name(req), _requirement_name(req))
            if extra == "test" and module in ("pytest", "hypothesis"):
                continue
            assert module in EXTRA_OF, f"{req} (extra {extra}) is missing from tests/_extras.py EXTRA_OF"


def test_public_modules_define_all_and_keep_helpers_private():
    problems = []
    for info in pkgutil.walk_packages(memsgd.__path__, "memsgd."):
        name = info.name
        if any(part.startswith("_") for part in name.split(".")[1:]):
            continue
        try:
            module = importlib.import_module(name)
        except ImportError as exc:   # a module of an extra that is not installed (never in CI)
            top = (getattr(exc, "name", None) or "").split(".")[0]
            if top in EXTRA_OF or "pip install 'memsgd[" in str(exc):
                continue
            raise
        names = getattr(module, "__all__", None)
        if names is None:
            problems.append(f"{name}: no __all__")
            continue
        problems += [f"{name}.__all__ lists missing {n}" for n in names if not hasattr(module, n)]
        for n, obj in vars(module).items():
            defined_here = getattr(obj, "__module__", None) == name
            if not n.startswith("_") and defined_here and (inspect.isfunction(obj) or inspect.isclass(obj)) \
                    and n not in names:
                problems.append(f"{name}.{n}: public but not in __all__ (export it or make it _private)")
    assert not problems, "\n".join(problems)


def test_licence_and_metadata():
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License") and PROJECT["license"] == {"text": "MIT"}
    assert (ROOT / "cpp" / "third_party" / "eigen" / "COPYING").exists()
    assert PROJECT["authors"] and PROJECT["urls"]


def test_gitignore_keeps_the_docs_figures():
    figures = sorted((ROOT / "docs" / "figures").glob("*.png"))
    assert figures
    out = subprocess.run(["git", "check-ignore", "--no-index", *map(str, figures)], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 1 and out.stdout == "", f"ignored: {out.stdout}{out.stderr}"  # 1: none ignored
