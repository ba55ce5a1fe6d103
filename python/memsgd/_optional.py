"""Optional dependencies: import them where a feature needs them, with a one-line message
naming the extra to install when they are missing."""
from __future__ import annotations

import importlib

__all__ = ["require"]


def require(module: str, extra: str, feature: str = ""):
    """Import and return ``module``; if it is missing raise ``ImportError`` saying which extra
    provides it, e.g. ``require("xarray", "sweep", "sweep()")``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = f"{feature} needs" if feature else "this feature needs"
        raise ImportError(f"{what} {module.split('.')[0]}: pip install 'memsgd[{extra}]'") from exc
