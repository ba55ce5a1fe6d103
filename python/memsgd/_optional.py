"""Optional dependencies: import them where a feature needs them, with a one-line message
naming the extra to install when they are missing."""
from __future__ import annotations

import importlib

__all__ = ["require", "require_all"]


def require(module: str, extra: str, feature: str = ""):
    """Import and return ``module``; if it is missing raise ``ImportError`` saying which extra
    provides it, e.g. ``require("xarray", "sweep", "sweep()")``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = f"{feature} needs" if feature else "this feature needs"
        raise ImportError(f"{what} {module.split('.')[0]}: pip install 'memsgd[{extra}]'") from exc


def require_all(modules, feature: str = ""):
    """Import several ``(module, extra)`` pairs; if any is missing raise one ``ImportError``
    naming every missing module and extra at once (``pip install 'memsgd[torch,data]'``), so a
    user fixes the environment in one go. Returns the modules in order."""
    found, missing = [], []
    for module, extra in modules:
        try:
            found.append(importlib.import_module(module))
        except ImportError:
            missing.append((module.split(".")[0], extra))
    if missing:
        what = f"{feature} needs" if feature else "this feature needs"
        extras = ",".join(dict.fromkeys(extra for _, extra in missing))
        raise ImportError(f"{what} {' and '.join(m for m, _ in missing)}: pip install 'memsgd[{extras}]'")
    return found
