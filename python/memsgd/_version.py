"""The package version: its one source (read by ``memsgd.__version__``, the sweep stores'
provenance, scikit-build-core's regex for the wheel's metadata, and CMake for the core)."""
__version__ = "0.1.0"
