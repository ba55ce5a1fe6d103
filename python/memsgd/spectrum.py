"""Quadratic problems as spectra (docs/math.md §0-1).

A spectrum is a list of nodes ``(lambda_k, c_k^2, m_k)``: eigenvalue of the Hessian, squared
component of the target along its eigenvector (the initial residual, since w_0 = 0), and a
weight -- 1 for a finite spectrum, a quadrature weight for the tail of an infinite one.
Every sum over k in the library carries ``m_k``.
"""
from __future__ import annotations

import math

import numpy as np

from . import random_features as _rf
from ._validation import float_array, positive_int, positive_scalar, real_scalar, require_memory

__all__ = ["Spectrum"]

# Tail quadrature for infinite power laws: Gauss-Legendre panels of this width in u = log x.
_PANEL_WIDTH = 1.0
_PANEL_NODES = 10
# The tail is integrated up to where the remaining signal and eigenvalue masses are below
# this fraction, the eigenvalue reaches _LAMBDA_FLOOR or c^2 reaches _C2_CEILING; beyond,
# one frozen node carries the exact remaining masses of lambda c^2 and lambda.
_TAIL_RTOL = 1e-18
_LAMBDA_FLOOR = 1e-280
_C2_CEILING = 1e280
_DEFAULT_HEAD = 4096


class Spectrum:
    """Eigenvalues ``lambda_k > 0``, target coefficients ``c_k^2 >= 0`` and node weights ``m_k > 0``.

    The loss is ``L(w) = 1/2 sum_k m_k lambda_k (w_k - w*_k)^2`` and ``L_0 = 1/2 sum_k m_k lambda_k c_k^2``.
    Use ``power_law`` for the paper's model problems and ``from_features`` for data.

    Examples:
        The infinite power law with ``nu = 2, kappa = 1`` has ``L_0 = (1/2) sum_k k^-2 = pi^2 / 12``:

        >>> import math, memsgd
        >>> spec = memsgd.Spectrum.power_law(nu=2.0, kappa=1.0)
        >>> abs(spec.initial_loss - math.pi ** 2 / 12) < 1e-12
        True
        >>> memsgd.Spectrum([1.0, 0.5], [2.0, 1.0]).initial_loss     # (1 * 2 + 0.5 * 1) / 2
        1.25
    """

    _lam: np.ndarray
    _c2: np.ndarray
    _m: np.ndarray
    _power_law: tuple | None
    _infinite: bool
    _head: int | None
    _quadrature_error: float

    def __init__(self, eigenvalues, coefficients2, weights=None):
        lam = float_array(eigenvalues, "eigenvalues", ndim=1, allow_empty=False)
        c2 = float_array(coefficients2, "coefficients2", ndim=1, allow_empty=False)
        if c2.shape != lam.shape:
            raise ValueError(
                f"coefficients2 must have the same length as eigenvalues ({lam.size}), got {c2.size}")
        if np.any(lam <= 0):
            raise ValueError("eigenvalues must all be > 0 (drop zero modes: they do not move)")
        if np.any(c2 < 0):
            raise ValueError("coefficients2 must all be >= 0 (they are squared coefficients)")
        if weights is None:
            m = np.ones_like(lam)
        else:
            m = float_array(weights, "weights", ndim=1)
            if m.shape != lam.shape:
                raise ValueError(f"weights must have the same length as eigenvalues ({lam.size}), got {m.size}")
            if np.any(m <= 0):
                raise ValueError("weights must all be > 0")
        for arr in (lam, c2, m):
            arr.setflags(write=False)
        self._set(_lam=lam, _c2=c2, _m=m, _power_law=None, _infinite=False, _head=None, _quadrature_error=0.0,
                  _rf=None)
        with np.errstate(over="ignore"):
            finite_loss = math.isfinite(self.initial_loss)
        if not finite_loss:
            raise ValueError("the initial loss 1/2 sum m lambda c^2 must be finite")

    def __setstate__(self, state):
        # pickle and deepcopy rebuild the arrays writeable: keep them read-only, as built
        self.__dict__.update(state)
        for arr in (self._lam, self._c2, self._m):
            arr.setflags(write=False)

    def _set(self, **fields) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    # A spectrum is a value: its nodes and its power-law parameters never change (setting
    # ``nu`` on a data spectrum would silently turn it into a power law for asymptotics).
    def __setattr__(self, name, value):
        raise AttributeError(f"Spectrum is immutable (cannot set {name!r}); build a new one")

    def __delattr__(self, name):
        raise AttributeError(f"Spectrum is immutable (cannot delete {name!r})")

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def power_law(cls, nu, kappa, size=None, scale=1.0, q=1.0, head=None) -> Spectrum:
        """Power-law problem ``lambda_k = scale k^-nu``, ``lambda_k c_k^2 = q k^-(kappa+1)`` (P.1).

        ``size=None`` gives the infinite problem: the first ``head`` terms (default 4096) exactly,
        then the tail ``k > head`` as an integral over ``u = log x`` from ``log(head + 1/2)``
        (midpoint/Euler-Maclaurin junction, error ``~ f'/24``) by Gauss-Legendre panels, with a
        final frozen node carrying the exact remaining ``int q x^-(kappa+1) dx`` and
        ``int scale x^-nu dx`` (the mass the noise sums see). Eigenvalues are kept above 1e-280
        (far beyond any step count): for a steep decay (large nu) the exact head stops where
        ``scale k^-nu`` reaches that floor and the frozen node carries the rest. ``quadrature_error``
        estimates the relative error of sums of the GD signal ``lambda c^2 exp(-2 lambda t / scale)`` for
        t in [1, 1e8]. ``head`` applies to the infinite problem only.
        """
        nu = positive_scalar(nu, "nu")
        if nu <= 1:
            raise ValueError(f"nu must be > 1 (summable eigenvalues), got {nu}")
        kappa = positive_scalar(kappa, "kappa")
        scale = positive_scalar(scale, "scale")
        q = positive_scalar(q, "q")
        if size is not None:
            size = positive_int(size, "size")
            if head is not None:
                raise ValueError("head applies to the infinite power law (size=None) only; a finite "
                                 f"power law of size {size} has every term exact")
            _check_finite_range(nu, kappa, scale, q, size)
            require_memory(_POWER_LAW_ARRAYS * 8.0 * size, f"Spectrum.power_law(size={size})")
            k = np.arange(1, size + 1, dtype=np.float64)
            lam = scale * k ** (-nu)
            spec = cls(lam, q * k ** (-kappa - 1) / lam)
        else:
            head = _DEFAULT_HEAD if head is None else positive_int(head, "head")
            head = _exact_head(nu, kappa, scale, q, head)
            require_memory(_POWER_LAW_ARRAYS * 8.0 * head, f"Spectrum.power_law(head={head})")
            k = np.arange(1, head + 1, dtype=np.float64)
            lam_head = scale * k ** (-nu)
            lam_tail, c2_tail, w_tail = _tail_nodes(nu, kappa, scale, q, head)
            if not (np.all(np.isfinite(c2_tail)) and np.all(np.isfinite(w_tail))):
                raise ValueError(f"Spectrum.power_law(nu={nu:g}, kappa={kappa:g}, scale={scale:g}, q={q:g}): the "
                                 "tail's masses leave the float range (eigenvalue mass ~ scale x^(1-nu) / (nu - 1), "
                                 "signal mass ~ q x^-kappa / kappa); use a smaller scale or q, or nu and kappa "
                                 "further from 1 and 0")
            spec = cls(np.concatenate([lam_head, lam_tail]),
                       np.concatenate([q * k ** (-kappa - 1) / lam_head, c2_tail]),
                       np.concatenate([np.ones(head), w_tail]))
            spec._set(_infinite=True, _head=head,
                      _quadrature_error=_tail_error_estimate(nu, kappa, scale, q, head))
        spec._set(_power_law=(nu, kappa, scale, q))
        return spec

    @classmethod
    def from_features(cls, x, y, rtol=1e-10) -> Spectrum:
        """Empirical spectrum of least squares on data ``(x, y)``.

        ``H = X^T X / n`` with eigenpairs ``(lambda_k, e_k)``; ``w*`` is the least-squares
        solution and ``c_k = <w*, e_k>`` (summed in squares over outputs if ``y`` is 2-d).
        Eigenvalues below ``rtol * lambda_max`` are dropped (directions the data never moves).
        The loss is the excess risk ``1/2 <w - w*, H (w - w*)>``. ``x`` and ``y`` are scaled by
        their largest entries before any product is formed, so data near the ends of the float
        range either works or fails saying which quantity overflows or underflows.
        """
        rtol = real_scalar(rtol, "rtol")
        if not 0 <= rtol < 1:
            raise ValueError(f"rtol must be in [0, 1), got {rtol}")
        X = float_array(x, "x", ndim=2, allow_empty=False)
        Y = float_array(y, "y")
        if Y.ndim not in (1, 2):
            raise ValueError(f"y must have shape ({X.shape[0]},) or ({X.shape[0]}, outputs), got {Y.shape}")
        if Y.shape[0] != X.shape[0]:   # one row per sample in both; a transposed x is the usual cause
            transposed = "; x looks transposed: pass x.T" if Y.shape[0] == X.shape[1] else ""
            raise ValueError(f"x and y must have one row per sample (x is samples x features): x has shape "
                             f"{X.shape}, y has {Y.shape[0]} rows{transposed}")
        if Y.ndim == 2 and Y.shape[1] == 0:
            raise ValueError(f"y must have at least one output column, got shape {Y.shape}")
        n = X.shape[0]
        sx = float(np.max(np.abs(X)))
        if sx == 0:
            raise ValueError("x must have at least one direction of nonzero variance (x is all zeros)")
        sy = float(np.max(np.abs(Y))) or 1.0
        Xs, Ys = X / sx, Y / sy                     # entries in [-1, 1]: no overflow below
        mu, vecs = np.linalg.eigh(Xs.T @ Xs / n)    # H = sx^2 * (Xs^T Xs / n)
        if not mu.max() > 0:
            raise ValueError("x must have at least one direction of nonzero variance (X^T X / n is zero)")
        log_lam_max = 2 * math.log(sx) + math.log(mu.max())
        if log_lam_max > _LOG_MAX:
            raise ValueError(f"x is too large: the largest variance X^T X / n ~ 1e{log_lam_max / math.log(10):.0f} "
                             "overflows float64; rescale x")
        keep = mu > rtol * mu.max()
        with np.errstate(under="ignore"):
            lam = sx * sx * mu[keep]
        if not np.all(lam > 0) or (lam.min() < _TINY_NORMAL):
            decade = (2 * math.log(sx) + math.log(mu[keep].min())) / math.log(10)
            raise ValueError(f"x is too small: variances down to ~1e{decade:.0f} "
                             "underflow float64; rescale x (or raise rtol)")
        coef = vecs.T @ np.linalg.lstsq(Xs, Ys, rcond=None)[0]      # w* = (sy / sx) * that
        c2_scaled = coef ** 2 if coef.ndim == 1 else np.sum(coef ** 2, axis=1)
        with np.errstate(over="ignore", under="ignore"):
            c2 = c2_scaled[keep] * (sy / sx) ** 2
        if not np.all(np.isfinite(c2)):
            raise ValueError("the target coefficients <w*, e_k>^2 overflow float64 (y is huge compared with x); "
                             "rescale x or y")
        order = np.argsort(-lam)
        return cls(lam[order], c2[order])

    @classmethod
    def random_features(cls, alpha, beta, d=None, v=None, *, W=None, seed=None) -> Spectrum:
        """The problem of SGD on a d-feature power-law random-features model (docs/math.md §10).

        Data ``x ~ N(0, diag(j^-2alpha))`` (j = 1..v; ``v=None``: infinitely many, needs 2 alpha > 1),
        target ``y = sum_j j^-beta x_j``, features ``W^T x``: the spectrum of ``K = W^T H W`` with
        ``c_i = v_i^T theta*``, and ``floor`` ``F0(d) = 1/2 (b^T H b - theta*^T K theta*)``, the risk
        of the best parameters; the residual acts as label noise of variance ``label_noise``
        ``= 2 F0(d)`` and the population risk is ``L_t + F0(d)``.

        ``W=`` (a ``v x d`` array): exactly that model (d and v taken from W). ``seed=``: one W with
        i.i.d. N(0, 1/d) entries (finite v). Neither: the deterministic equivalent (v = None or
        v > d), whose spectrum is given as rank-quadrature nodes with weights; details and its
        measured accuracy against sampled models: docs/scaling-laws.md.

        >>> spec = Spectrum.random_features(1.0, 0.7, d=100)
        >>> round(float(spec.weights.sum()))          # d eigenvalues in all
        100
        >>> spec.label_noise == 2 * spec.floor
        True
        """
        model = _rf.random_features(alpha, beta, d, v, W=W, seed=seed)
        spec = cls(model.eigenvalues, model.coefficients2, model.weights)
        spec._set(_rf=model.info)
        return spec

    def preconditioner_factors(self, p) -> np.ndarray:
        """``p_k = (lambda_k / lambda_max)^(-p)`` per eigenvalue: the factor by which the diagonal
        preconditioner ``P = (H / lambda_max)^(-p)`` scales the gradient along ``lambda_k``
        (docs/math.md §9; ``preconditioned``).

        Example:
            >>> import memsgd
            >>> memsgd.Spectrum([1.0, 0.25], [1.0, 1.0]).preconditioner_factors(0.5).tolist()
            [1.0, 2.0]
        """
        p = real_scalar(p, "preconditioner")
        with np.errstate(over="ignore", under="ignore"):
            return (self._lam / self.lambda_max) ** (-p)

    def preconditioned(self, p) -> Spectrum:
        """The spectrum plain SGD sees under the diagonal preconditioner ``P = (H / lambda_max)^(-p)``
        (docs/math.md §9): eigenvalues ``gamma_k = p_k lambda_k`` and coefficients ``c_k^2 / p_k``,
        ``p_k = (lambda_k / lambda_max)^(-p)``, the same weights.

        Preconditioned SGD on this spectrum and plain SGD on the result have the same loss, exactly:
        with ``X~_k = X_k / p_k`` every term of the recursion (signal, ``a_t``, noise, label noise,
        the loss ``1/2 sum m lambda X_00 = 1/2 sum m gamma X~_00``) maps onto the plain one. A power law
        ``(nu, kappa, scale, q)`` becomes the power law ``(nu (1 - p), kappa, scale, q)`` (kept as one
        when ``nu (1 - p) > 1``, the condition for a finite trace of the preconditioned Hessian).

        Example:
            >>> import memsgd
            >>> memsgd.Spectrum.power_law(2.0, 1.0, size=100).preconditioned(0.25).nu
            1.5
        """
        p = real_scalar(p, "preconditioner")
        if p == 0.0:
            return self
        lmax = self.lambda_max
        pk = self.preconditioner_factors(p)
        with np.errstate(over="ignore", under="ignore"):
            lam, c2 = self._lam * pk, self._c2 / pk
        if not (np.all(np.isfinite(lam)) and np.all(lam > 0) and np.all(np.isfinite(c2))):
            raise ValueError(f"preconditioner p = {p:g} takes this spectrum's eigenvalues (lambda / lambda_max "
                             f"down to {self._lam.min() / lmax:.3g}) out of the float range")
        out = Spectrum(lam, c2, self._m)
        if self._power_law is not None:
            nu, kappa, scale, q = self._power_law
            nu_p = nu * (1.0 - p)
            if nu_p > 1.0:
                out._set(_power_law=(nu_p, kappa, scale, q), _infinite=self._infinite, _head=self._head,
                         _quadrature_error=(_tail_error_estimate(nu_p, kappa, scale, q, self._head)
                                            if self._infinite else 0.0))
            elif self._infinite:
                raise ValueError(f"preconditioner p = {p:g} on the infinite power law nu = {nu:g} gives "
                                 f"nu (1 - p) = {nu_p:g} <= 1: the preconditioned trace is infinite")
        return out

    # -- properties ---------------------------------------------------------------------------
    @property
    def eigenvalues(self) -> np.ndarray:
        return self._lam

    @property
    def coefficients2(self) -> np.ndarray:
        return self._c2

    @property
    def weights(self) -> np.ndarray:
        return self._m

    @property
    def size(self) -> int:
        """Number of nodes (not the problem dimension for an infinite spectrum)."""
        return int(self._lam.size)

    @property
    def lambda_max(self) -> float:
        return float(self._lam.max())

    @property
    def initial_loss(self) -> float:
        return float(0.5 * np.sum(self._m * self._lam * self._c2))

    @property
    def nu(self):
        """Eigenvalue exponent of a power law, ``None`` otherwise."""
        return None if self._power_law is None else self._power_law[0]

    @property
    def kappa(self):
        """Target exponent of a power law, ``None`` otherwise."""
        return None if self._power_law is None else self._power_law[1]

    @property
    def scale(self):
        """``lambda_1`` of a power law, ``None`` otherwise."""
        return None if self._power_law is None else self._power_law[2]

    @property
    def q(self):
        """``lambda_1 c_1^2`` of a power law, ``None`` otherwise."""
        return None if self._power_law is None else self._power_law[3]

    @property
    def zeta(self):
        return None if self._power_law is None else self.kappa / self.nu

    @property
    def is_power_law(self) -> bool:
        return self._power_law is not None

    @property
    def infinite(self) -> bool:
        """True for the infinite power law (exact head plus tail quadrature)."""
        return self._infinite

    @property
    def head(self):
        """Number of exact leading terms of an infinite power law, ``None`` otherwise."""
        return self._head

    @property
    def floor(self) -> float:
        """Risk of the best parameters that the problem cannot remove: ``F0(d)`` for a random-features
        spectrum ([`random_features`][memsgd.Spectrum.random_features]), 0 otherwise (the target is representable)."""
        info = self.__dict__.get("_rf")
        return 0.0 if info is None else info.floor

    @property
    def label_noise(self) -> float:
        """``2 floor``: the variance of the residual, which acts as additive label noise in SGD."""
        return 2.0 * self.floor

    @property
    def random_features_info(self):
        """What [`random_features`][memsgd.Spectrum.random_features] built this spectrum from (a
        ``RandomFeaturesInfo``), else None."""
        return self.__dict__.get("_rf")

    @property
    def quadrature_error(self) -> float:
        """Estimated relative error of the tail quadrature (0 for a finite spectrum)."""
        return self._quadrature_error

    def __repr__(self) -> str:
        info = self.__dict__.get("_rf")
        if info is not None:
            v = "inf" if info.v is None else info.v
            return (f"Spectrum.random_features(alpha={info.alpha:g}, beta={info.beta:g}, d={info.d}, v={v}, "
                    f"{info.kind}, floor={info.floor:.3g})")
        if self.is_power_law:
            kind = "infinite" if self.infinite else f"size={self.size}"
            return (f"Spectrum.power_law(nu={self.nu:g}, kappa={self.kappa:g}, {kind}, "
                    f"scale={self.scale:g}, q={self.q:g})")
        return f"Spectrum(K={self.size}, lambda_max={self.lambda_max:.3g}, L0={self.initial_loss:.3g})"


# float64 arrays a power law of n terms holds at its peak (k, lambda, c^2 and its temporary,
# then the validated copies of lambda, c^2 and the weights).
_POWER_LAW_ARRAYS = 7
_LOG_MAX = math.log(np.finfo(float).max)
_TINY_NORMAL = np.finfo(float).tiny


def _check_finite_range(nu, kappa, scale, q, size) -> None:
    """A finite power law whose last terms leave the float range fails here, in logs, saying so."""
    log_lam = math.log(scale) - nu * math.log(size)
    log_c2 = math.log(q) - (kappa + 1) * math.log(size) - log_lam
    if log_lam < math.log(_LAMBDA_FLOOR):
        raise ValueError(f"the last eigenvalue scale * size^-nu ~ 1e{log_lam / math.log(10):.0f} is "
                         f"too small (below {_LAMBDA_FLOOR:g}): use a smaller size or nu, or the "
                         "infinite power law (size=None), which freezes such terms")
    if log_c2 > math.log(_C2_CEILING):
        raise ValueError(f"the target coefficient c_k^2 of the last term (~1e{log_c2 / math.log(10):.0f}) overflows: "
                         "use a smaller size, a larger kappa or a smaller q/scale")


def _exact_head(nu, kappa, scale, q, head) -> int:
    """``head``, shortened so that the exact terms stay inside the float range kept here
    (eigenvalues above _LAMBDA_FLOOR, c^2 below _C2_CEILING; a steep decay reaches the floor
    early: ``4096^-80 ~ 1e-289``), with room for the tail to start before the limit."""
    log_x_limit = _log_x_range(nu, kappa, scale, q)
    if log_x_limit < math.log(2.0):
        raise ValueError(f"nu = {nu:g} is too large for scale = {scale:g}, q = {q:g}: already the second term "
                         f"leaves the float range (lambda_2 = scale 2^-nu below {_LAMBDA_FLOOR:g} or c_2^2 "
                         f"above {_C2_CEILING:g})")
    return max(1, min(head, int(math.exp(min(log_x_limit, 700.0)) / 4.0)))


def _log_x_range(nu, kappa, scale, q) -> float:
    """``log x`` where ``scale x^-nu`` reaches the eigenvalue floor or ``c^2`` the ceiling."""
    log_x_lam = (math.log(scale) - math.log(_LAMBDA_FLOOR)) / nu
    p = nu - kappa - 1  # c^2 = (q / scale) x^p
    # no scale/q: it underflows
    log_x_c2 = (math.log(_C2_CEILING) + math.log(scale) - math.log(q)) / p if p > 0 else math.inf
    return min(log_x_lam, log_x_c2)


def _tail_limit(nu, kappa, scale, q, head):
    """Where the tail quadrature stops (see the module constants); computed in logs.

    Far enough that both what is left of the signal mass ``int q x^-(kappa+1)`` and of the
    eigenvalue mass ``int scale x^-nu`` (which the noise sums see, ``V ~ sum lambda``) are
    below ``_TAIL_RTOL`` of their totals, unless an eigenvalue floor or a c^2 ceiling comes first.
    """
    log_x_signal = -math.log(kappa * _TAIL_RTOL) / kappa
    log_x_noise = -math.log((nu - 1) * _TAIL_RTOL) / (nu - 1)
    log_x_range = _log_x_range(nu, kappa, scale, q)
    log_x = max(min(max(log_x_signal, log_x_noise), log_x_range), math.log(4.0 * (head + 0.5)))
    # never past the float range (the head was shortened so that this stays beyond head + 1/2)
    return math.exp(min(log_x, log_x_range, 700.0))


def _tail_nodes(nu, kappa, scale, q, head, panel_nodes=_PANEL_NODES):
    """Tail nodes ``(lambda, c^2, weight)`` for ``sum_{k > head} f(k) ~= int_{head+1/2}^inf f(x) dx``.

    Gauss-Legendre panels in ``u = log x`` up to ``x_end``, then one frozen node at
    ``lambda(x_end)`` whose weight and c^2 carry exactly the remaining eigenvalue mass
    ``int_{x_end}^inf scale x^-nu dx`` and signal mass ``int_{x_end}^inf q x^-(kappa+1) dx``.
    """
    u0 = math.log(head + 0.5)
    x_end = _tail_limit(nu, kappa, scale, q, head)
    u1 = math.log(x_end)
    panels = max(1, int(math.ceil((u1 - u0) / _PANEL_WIDTH)))
    edges = np.linspace(u0, u1, panels + 1)
    gx, gw = np.polynomial.legendre.leggauss(panel_nodes)
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    u = (mid[:, None] + half[:, None] * gx[None, :]).ravel()
    x = np.exp(u)
    w = (half[:, None] * gw[None, :]).ravel() * x  # dx = x du
    lam = scale * x ** (-nu)
    c2 = q * x ** (-kappa - 1) / lam
    lam_end = scale * x_end ** (-nu)
    lam_mass = lam_end * x_end / (nu - 1)
    signal_mass = q * x_end ** (-kappa) / kappa
    return (np.append(lam, lam_end), np.append(c2, signal_mass / lam_mass),
            np.append(w, lam_mass / lam_end))


def _tail_error_estimate(nu, kappa, scale, q, head) -> float:
    """Relative error of the tail treatment, worst over the GD signal sums
    ``sum m lambda c^2 exp(-2 (lambda / scale) t)`` for t in [1, 1e8] and the eigenvalue sum
    ``sum m lambda`` (what noise sums see).

    Compares the quadrature in use with one of twice the order per panel (whose error is far
    smaller, so the difference estimates the error of the rule in use) and adds the
    Euler-Maclaurin junction term ``|f'(head + 1/2)| / 24`` of each sum.
    """
    rules = [_tail_nodes(nu, kappa, scale, q, head), _tail_nodes(nu, kappa, scale, q, head, 2 * _PANEL_NODES)]
    k = np.arange(1, head + 1, dtype=np.float64)
    head_lam = scale * k ** (-nu)
    head_c2 = q * k ** (-kappa - 1) / head_lam
    xj, dx = head + 0.5, 1e-4 * (head + 0.5)

    def junction(f_of_x):
        return abs(f_of_x(xj + dx) - f_of_x(xj - dx)) / (2 * dx) / 24.0

    worst = 0.0
    # GD with learning rate 1/scale, so that the estimate does not depend on the units of lambda
    functionals = [(lambda lam, c2, t=t: lam * c2 * np.exp(-2.0 * (lam / scale) * t)) for t in np.logspace(0, 8, 17)]
    functionals.append(lambda lam, c2: lam)
    for f in functionals:
        on_x = lambda x, f=f: float(f(scale * x ** (-nu), q * x ** (-kappa - 1) / (scale * x ** (-nu))))
        tails = [np.sum(w * f(lam, c2)) for lam, c2, w in rules]
        total = np.sum(f(head_lam, head_c2)) + tails[0]
        worst = max(worst, (abs(tails[0] - tails[1]) + junction(on_x)) / total)
    return float(worst)
