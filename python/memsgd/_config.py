"""What this installed copy of memsgd is: versions, compiler, OpenMP, SIMD paths (``show_config``)."""
from __future__ import annotations

import os
import platform
import sys

from . import _core
from ._version import __version__

__all__ = ["build_config", "show_config"]


def build_config() -> dict:
    """The build of the compiled core and the run-time choices, as a dict.

    Keys: ``version`` (the package), ``core_version`` (the version the core was built for; they
    agree in a consistent install), ``compiler``, ``build_type``, ``native`` (built with
    ``-march=native``, MEMSGD_NATIVE=ON), ``architecture``, ``openmp`` and ``openmp_version``,
    ``threads`` (the default thread count), ``simd_compiled``, ``simd_supported`` (by this CPU),
    ``simd_in_use``, ``divergence_factor``, ``python``, ``numpy``, ``scipy``.
    """
    import numpy
    import scipy

    info = _core.build_info()
    return {
        "version": __version__,
        "core_version": info["version"],
        "compiler": info["compiler"],
        "build_type": info["build_type"],
        "native": info["native"],
        "architecture": info["architecture"],
        "openmp": info["openmp"],
        "openmp_version": info["openmp_version"],
        "threads": info["max_threads"],
        "simd_compiled": list(info["simd_compiled"]),
        "simd_supported": list(info["simd_supported"]),
        "simd_in_use": _core.simd_path(),
        "divergence_factor": _core.DIVERGENCE_FACTOR,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
    }


def show_config(file=None) -> None:
    """Print the version, compiler and build type, OpenMP and threads, and the SIMD paths compiled,
    supported by this CPU and in use (environment overrides: OMP_NUM_THREADS, MEMSGD_SIMD).

    Examples:
        >>> import io, memsgd
        >>> out = io.StringIO()
        >>> memsgd.show_config(file=out)
        >>> out.getvalue().startswith("memsgd ")
        True
    """
    c = build_config()
    env = lambda name: os.environ.get(name, "unset")  # noqa: E731
    openmp = f"yes (OpenMP {c['openmp_version']})" if c["openmp"] else "no (one thread)"
    build = "native (-march=native, runs only on CPUs like the building one)" if c["native"] else \
        "portable (baseline instruction set, kernels chosen at run time)"
    lines = [
        f"memsgd {c['version']}",
        f"  core:            built for {c['core_version']}, {c['build_type']}, {c['compiler']}",
        f"  build:           {c['architecture']}, {build}",
        f"  OpenMP:          {openmp}",
        f"  threads:         {c['threads']} by default (OMP_NUM_THREADS={env('OMP_NUM_THREADS')})",
        f"  SIMD compiled:   {', '.join(c['simd_compiled'])}",
        f"  SIMD supported:  {', '.join(c['simd_supported'])} (this CPU)",
        f"  SIMD in use:     {c['simd_in_use']} (MEMSGD_SIMD={env('MEMSGD_SIMD')})",
        f"  Python {c['python']}, numpy {c['numpy']}, scipy {c['scipy']}",
    ]
    print("\n".join(lines), file=file if file is not None else sys.stdout)
