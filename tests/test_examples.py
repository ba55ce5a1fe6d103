"""The ``Examples`` of the API reference run: every object on docs/api.md has one, and each runs
as a doctest in the namespace of its module (the output shown is the output produced).

Docstrings are read as the docs read them (griffe, statically), so attributes such as
``memsgd.design.FAMILIES`` are covered too. An example whose module needs a missing extra is
skipped naming the extra.
"""
import doctest
import importlib
import importlib.util
import pathlib
import re

import numpy as np
import pytest

from ._extras import EXTRA_OF

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _hook():
    spec = importlib.util.spec_from_file_location("api_summary", ROOT / "docs" / "hooks" / "api_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _objects():
    """``{target: (canonical path, docstring)}`` of every object rendered on docs/api.md (a module
    directive shows the module's members: those are checked where they are listed)."""
    griffe = pytest.importorskip("griffe", reason="needs griffe (mkdocstrings): pip install 'memsgd[docs]'")
    hook = _hook()
    extension = griffe.load_extensions(str(ROOT / "docs" / "hooks" / "griffe_assigned_docstrings.py"))
    package = griffe.GriffeLoader(search_paths=[str(ROOT / "python")], extensions=extension).load("memsgd")
    out = {}
    for target in hook._objects((ROOT / "docs" / "api.md").read_text().split("\n")):
        obj = package[target[len("memsgd."):]]
        if obj.kind.value == "module":   # a module's page shows its members, which have their own examples
            continue
        out[target] = (obj.canonical_path, obj.docstring.value if obj.docstring is not None else "")
    return out


try:
    OBJECTS = _objects()
except BaseException:   # griffe missing: the tests below skip (collection must not fail)
    OBJECTS = {}


def test_every_object_of_the_api_page_has_an_example():
    if not OBJECTS:
        pytest.skip("needs griffe (mkdocstrings): pip install 'memsgd[docs]'")
    assert len(OBJECTS) > 100
    missing = [t for t, (_, doc) in OBJECTS.items()
               if not re.search(r"^\s*Examples?:", doc, re.M) or ">>>" not in doc]
    assert not missing, f"{len(missing)} objects without an Examples section: {missing}"


def _module_of(canonical: str):
    """The module defining ``canonical`` (its longest importable prefix), or a skip naming the extra."""
    parts = canonical.split(".")
    for k in range(len(parts), 0, -1):
        name = ".".join(parts[:k])
        if importlib.util.find_spec(parts[0]) is None:
            break
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            top = (exc.name or "").split(".")[0]
            if top in EXTRA_OF:
                pytest.skip(f"needs {top}: pip install 'memsgd[{EXTRA_OF[top]}]'")
            if exc.name == name:
                continue
            raise
        except ImportError as exc:   # memsgd._optional's one-line message names the extra
            pytest.skip(str(exc))
    raise AssertionError(f"cannot import a module of {canonical}")


class _Runner(doctest.DocTestRunner):
    """A missing extra met inside an example (memsgd._optional's message) skips it."""

    def report_unexpected_exception(self, out, test, example, exc_info):
        if issubclass(exc_info[0], ImportError) and "pip install 'memsgd[" in str(exc_info[1]):
            pytest.skip(str(exc_info[1]))
        super().report_unexpected_exception(out, test, example, exc_info)


# examples that take seconds (torch training, real data): in the slow half of the suite
SLOW = {"memsgd.experiments.practice.run", "memsgd.experiments.digits.run", "memsgd.experiments.mnist.run",
        "memsgd.experiments.corner.run", "memsgd.experiments.corner_training.run", "memsgd.data.load_digits"}


@pytest.mark.parametrize("target", [pytest.param(t, marks=pytest.mark.slow) if t in SLOW else t
                                    for t in sorted(OBJECTS)])
def test_example_runs(target, tmp_path, monkeypatch):
    canonical, doc = OBJECTS[target]
    test = doctest.DocTestParser().get_doctest(doc, {}, target, target, 0)
    if not test.examples:
        pytest.skip("no example (test_every_object_of_the_api_page_has_an_example reports it)")
    module = _module_of(canonical)
    for line in doc.splitlines():   # an example that needs an extra says so: `>>> import torch`
        word = line.strip().removeprefix(">>> ").split()
        if len(word) >= 2 and word[0] in ("import", "from") and word[1].split(".")[0] in EXTRA_OF:
            top = word[1].split(".")[0]
            if importlib.util.find_spec(top) is None:
                pytest.skip(f"needs {top}: pip install 'memsgd[{EXTRA_OF[top]}]'")
    monkeypatch.chdir(tmp_path)   # an example that writes files writes them here
    test.globs = dict(vars(module))
    runner = _Runner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    with np.printoptions(legacy="1.25"):
        runner.run(test, out=lambda text: pytest.fail(text, pytrace=False))
    assert runner.failures == 0
