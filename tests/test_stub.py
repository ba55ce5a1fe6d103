"""The checked-in type stub python/memsgd/_core.pyi matches the compiled module.

Regenerate after changing cpp/bindings.cpp:  pybind11-stubgen memsgd._core -o python
(the comparison ignores type annotations, whose spelling depends on the pybind11 version).
"""
import ast
import subprocess
import sys
from pathlib import Path

import memsgd

from ._extras import need

STUB = Path(memsgd.__file__).with_name("_core.pyi")


def _shape(source: str):
    """Names, parameters (kinds and names, which have defaults) and nesting of a stub, no annotations."""
    def args(a: ast.arguments):
        pos = [x.arg for x in a.posonlyargs + a.args]
        return (tuple(pos), len(a.defaults), tuple(x.arg for x in a.kwonlyargs),
                tuple(d is not None for d in a.kw_defaults), a.vararg is not None, a.kwarg is not None)

    def walk(body):
        out = {}
        for node in body:
            if isinstance(node, ast.FunctionDef):
                out.setdefault(node.name, []).append(("def", args(node.args)))
            elif isinstance(node, ast.ClassDef):
                out[node.name] = [("class", walk(node.body))]
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                target = node.targets[0] if isinstance(node, ast.Assign) else node.target
                if isinstance(target, ast.Name) and target.id != "__all__":
                    out[target.id] = [("attr",)]
        return {k: tuple(map(repr, v)) for k, v in out.items()}

    return walk(ast.parse(source).body)


def test_stub_matches_the_compiled_module(tmp_path):
    need("pybind11_stubgen")
    out = subprocess.run([sys.executable, "-m", "pybind11_stubgen", "memsgd._core", "-o", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    fresh = (tmp_path / "memsgd" / "_core.pyi").read_text()
    assert _shape(STUB.read_text()) == _shape(fresh), \
        "python/memsgd/_core.pyi is out of date: pybind11-stubgen memsgd._core -o python"


def test_stub_names_everything_the_module_exports():
    import memsgd._core as core
    public = {n for n in dir(core) if not n.startswith("_")}
    assert public == set(_shape(STUB.read_text()))
    assert Path(memsgd.__file__).with_name("py.typed").exists()
