"""The affine model of docs/math.md §9 (label noise, weight decay, readout, preconditioning):
which of its features a problem uses, and the refusal of computations that do not support them.
"""
from __future__ import annotations

__all__ = ["affine_features", "refuse_affine"]


def affine_features(algorithm, noise) -> list:
    """Names of the affine-model features the problem uses (empty for the plain model)."""
    used = []
    if noise is not None and getattr(noise, "label_noise", 0.0) != 0.0:
        used.append("label noise")
    return used


def refuse_affine(algorithm, noise, what: str, instead: str) -> None:
    """One-line ValueError when ``what`` is asked of a problem with affine-model features."""
    used = affine_features(algorithm, noise)
    if used:
        raise ValueError(f"{what} does not support {' or '.join(used)} yet; {instead}")
