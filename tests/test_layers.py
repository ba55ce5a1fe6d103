"""The import graph of python/memsgd: imports point down the layers, no cycles, and no module
imports a private name of ``dynamics`` (issue 19). Run it alone with

    python -m pytest tests/test_layers.py

It parses every module with ``ast`` (nothing is imported). An edge ``a -> b`` is any import in
``a`` of module ``b`` or of a name defined in ``b``, whether at module level or inside a function
(a lazy import): lazy imports only defer optional dependencies (matplotlib, torch, the
experiments behind a CLI command), never break a cycle, so they must point down like the others.
Importing ``memsgd.x.y`` also runs the ``__init__`` of ``memsgd`` and ``memsgd.x``; those implicit
edges are left out (Python resolves them before the module's own imports).
"""
import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "memsgd"

# Layers, lowest first; a module may import modules of its own layer (the graph stays acyclic:
# test_no_cycles) and of layers below, never above. Patterns name modules relative to memsgd;
# "x.*" is every module of the subpackage x and "x" its __init__. "" is the package root (the
# facade, importing the public API from below; nothing inside imports it).
LAYERS = [
    # leaves: the compiled core and plumbing that knows no problem objects
    ["_core", "_version", "_startup", "_optional", "_json", "_validation", "_progress", "_growth", "_steps",
     "_method", "_config", "plotting", "data",
     # the random-features model's spectra as arrays (numpy only); Spectrum.random_features wraps them
     "random_features",
     # learning-rate shapes and torch's / optax's SGD as per-step arrays (numpy; the frameworks only read)
     "lr_shapes", "_framework_sgd"],
    # the problem's objects
    ["spectrum", "noise", "algorithms", "schedules"],
    # checks and packing that need the objects (and the affine model's reductions of them, docs/math.md
    # §9); the optimizers, which need only the objects
    ["_problem", "_stationary", "_packing", "_affine", "_affine_states", "_piece_states", "_smooth_pieces",
     "_families", "optax", "torch", "torch.*"],
    # the contour view and corner algorithms (problem objects built from the modes of the secular
    # equation, no engine)
    ["_modal", "contour", "corner"],
    # the exact engine
    ["dynamics"],
    # computations on top of it
    ["long_horizon", "renewal", "simulation", "gradient", "modal"],
    # theory (stability, asymptotics, measured exponents from loss_curves and loss_at)
    ["theory", "theory.*"],
    # workflows over many configurations
    ["design", "_sweep_run", "_sweep_store", "sweeps",
     # compute-optimal frontiers: many engine runs over model sizes
     "scaling"],
    # the paper's experiments
    ["experiments", "experiments.*"],
    # the command line
    ["cli", "cli.*", "__main__"],
    # the facade
    [""],
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules():
    """{module name: (path, is package)} of every module, plus the compiled core."""
    found = {_module_name(p): (p, p.name == "__init__.py") for p in sorted(PACKAGE.rglob("*.py"))}
    found["memsgd._core"] = (PACKAGE / "_core.pyi", False)
    return found


MODULES = _modules()


def _imports(name: str):
    """``(target module, imported names or None, lazy)`` of every memsgd import in module ``name``;
    ``from . import x`` of a submodule x is an import of that submodule."""
    path, is_package = MODULES[name]
    if path.suffix == ".pyi":
        return []
    tree = ast.parse(path.read_text(), filename=str(path))
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        lazy = id(node) not in top
        if isinstance(node, ast.Import):
            out += [(a.name, None, lazy) for a in node.names if a.name.split(".")[0] == "memsgd"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "memsgd":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in MODULES:
                    out.append((sub, None, lazy))
                else:
                    out.append((target, alias.name, lazy))
    return out


GRAPH = {name: _imports(name) for name in MODULES}


def _layer(name: str) -> int:
    rel = name[len("memsgd."):] if name.startswith("memsgd.") else ""
    for i, patterns in enumerate(LAYERS):
        for pattern in patterns:
            if rel == pattern or (pattern.endswith(".*") and rel.startswith(pattern[:-1])):
                return i
    raise AssertionError(f"module {name} has no layer: add it to LAYERS in tests/test_layers.py")


def test_every_module_is_found_and_has_a_layer():
    assert {"memsgd", "memsgd.dynamics", "memsgd.sweeps", "memsgd.cli.curve", "memsgd.theory._measured"} <= set(MODULES)
    for name in MODULES:
        _layer(name)


def test_no_private_names_of_dynamics():
    bad = []
    for name, edges in GRAPH.items():
        bad += [f"{name} imports dynamics.{n}" for target, n, _ in edges
                if target == "memsgd.dynamics" and n is not None and n.startswith("_")]
        # and no attribute access dynamics._x on an imported module object
        path, _ = MODULES[name]
        if path.suffix == ".py":
            text = path.read_text()
            bad += [f"{name} uses dynamics.{m}" for m in re.findall(r"\bdynamics\.(_\w+)", text)]
    assert not bad, "; ".join(bad)


def test_imports_point_down_the_layers():
    upward = [f"{name} (layer {_layer(name)}) imports {target} (layer {_layer(target)})"
              + (" lazily" if lazy else "")
              for name, edges in GRAPH.items() for target, _, lazy in edges
              if target in MODULES and _layer(target) > _layer(name)]
    assert not upward, "\n".join(upward)


def test_no_module_imports_the_package_root():
    # the root only re-exports; a module importing it depends on everything
    offenders = [name for name, edges in GRAPH.items() for target, _, _ in edges
                 if target == "memsgd" and name != "memsgd"]
    assert not offenders, offenders


def test_no_cycles():
    edges = {name: sorted({t for t, _, _ in GRAPH[name] if t in MODULES and t != name}) for name in MODULES}
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in edges[node]:
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for name in MODULES:
        if name not in state:
            visit(name)


def test_the_checker_sees_what_it_must():
    # the parser resolves relative imports, submodule imports and lazy imports
    assert ("memsgd._core", None, False) in GRAPH["memsgd.dynamics"]
    assert any(t == "memsgd.theory" and not lazy for t, _, lazy in GRAPH["memsgd.cli.theory"])
    assert any(t == "memsgd.plotting" and lazy for t, _, lazy in GRAPH["memsgd.cli.curve"])
    assert _layer("memsgd.dynamics") > _layer("memsgd._packing") > _layer("memsgd.algorithms")
