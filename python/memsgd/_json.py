"""The one JSON writer: strict JSON (RFC 8259) everywhere.

JSON has no infinity or NaN. Python's ``json`` module writes them as the non-standard tokens
``Infinity`` / ``NaN``, which most parsers reject. memsgd writes every non-finite float as
``null`` instead (a diverged loss, an infinite batch size, an undefined exponent), so every
file and every ``--json`` output parses with any JSON reader. numpy scalars and arrays become
plain numbers and lists.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

__all__ = ["jsonable", "dumps", "write_json"]


def jsonable(x):
    """``x`` with numpy scalars/arrays turned into Python numbers/lists, tuples into lists,
    dict keys into strings and every non-finite float into ``None``."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


def dumps(obj, indent: int = 2) -> str:
    """Strict JSON text of ``obj`` (see ``jsonable``)."""
    return json.dumps(jsonable(obj), indent=indent, allow_nan=False)


def write_json(path, obj) -> None:
    """Write ``obj`` to ``path`` as strict JSON (see ``jsonable``)."""
    text = dumps(obj)
    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"   # written whole, then renamed: a kill never leaves half a file
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
