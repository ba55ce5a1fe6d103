"""Power-law random features (docs/math.md §10; Paquette, Paquette, Xiao & Pennington 2024, "4+3 phases").

Data ``x ~ N(0, H)``, ``H = diag(lambda_j)``, ``lambda_j = j^(-2 alpha)``, j = 1..v (v = inf allowed
when 2 alpha > 1); target ``y = <b, x>``, ``b_j = j^(-beta)``; model ``<theta, W^T x>`` with a
``v x d`` feature matrix W. The features ``z = W^T x`` are Gaussian with covariance ``K = W^T H W``
and the best parameters ``theta* = argmin 1/2 E (y - <theta, z>)^2`` leave the risk

    F0(d) = 1/2 (b^T H b - theta*^T K theta*).

The residual ``y - <theta*, z>`` is Gaussian and independent of z, so SGD on theta is exactly the
quadratic problem on the spectrum of K (eigenpairs ``(mu_i, v_i)``, target coefficients
``c_i = v_i^T theta*``) with additive label noise of variance ``2 F0(d)``; the population risk is
the excess risk plus ``F0(d)``.

With ``A = H^(1/2) W`` (so ``K = A^T A``) and ``g = H^(1/2) b``, the loss measure
``sum_i mu_i c_i^2 delta_(mu_i)`` is the spectral measure of ``S = A A^T`` seen by g, minus its atom
``2 F0`` at 0. The *deterministic equivalent* replaces one draw of W by its large-d limit: with
``s(z) = (1/d) Tr (K - z)^-1`` (Silverstein's equation, exact inverse)

    z(s) = -1/s + (1/d) sum_j lambda_j / (1 + lambda_j s),
    g^T (S - z)^-1 g ~= -(1/z) sum_j lambda_j b_j^2 / (1 + lambda_j s(z)),
    log det (K - z) ~= sum_j log(1 + lambda_j s) - d log s - d z s - d,

so the eigenvalue density is ``d Im s(x + i0) / pi``, the loss density
``-(1/(pi x)) Im sum_j lambda_j b_j^2 / (1 + lambda_j s(x + i0))``, the number of eigenvalues below x
is ``-(1/pi) Im[sum_j log(1 + lambda_j s) - d log s - d x s]`` (closed form, no integration), and
``F0(d) = 1/2 sum_j lambda_j b_j^2 / (1 + lambda_j s0)`` with ``z(s0) = 0``, i.e.
``(1/d) sum_j lambda_j s0 / (1 + lambda_j s0) = 1``.

The equivalent's spectrum is given as quadrature nodes in the eigenvalue rank ``q`` (q in (0, d),
counted from the top; each rank located by Newton on s for ``Im z(s) = 0`` and the closed-form
count): four nodes along the semicircle of each separated top eigenvalue and of the lowest one,
the rank midpoint ``q = i - 1/2`` for the other top and bottom ranks, Gauss-Legendre panels in
``log q`` and ``log(d - q)`` in between; each node carries its rank weight and
``c^2 = (loss density / eigenvalue density) / x``. Accuracy and speed: docs/scaling-laws.md.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ._validation import float_array, positive_int, positive_scalar, real_scalar, require_memory

__all__ = ["RandomFeaturesInfo", "RandomFeaturesModel", "random_features", "deterministic_equivalent",
           "sampled_model", "given_model"]


# Mean of the Tracy-Widom law TW1 (real Gaussian W): the extreme eigenvalue sits on average this
# many edge scales inside the support (Tracy & Widom 1996; value as evaluated by Bornemann, "On the
# numerical evaluation of distributions in random matrix theory", 2010).
_TW1_MEAN = -1.2065335745820


@dataclass(frozen=True)
class RandomFeaturesInfo:
    """What a random-features spectrum was built from (``Spectrum.random_features_info``).

    Fields:
        alpha, beta, d, v: the model (v None: infinitely many data dimensions).
        kind: ``"equivalent"`` (deterministic equivalent), ``"sampled"`` (``seed=``) or ``"given"`` (``W=``).
        floor: ``F0(d)``, the population risk of the best parameters.
        edge: lower edge ``x_min`` of the equivalent's eigenvalue support (None for a W).
        smallest: expected smallest eigenvalue: for the equivalent ``x_min + 1.2065 sigma`` with the
            soft-edge scale ``sigma = (|z''(s*)| / 2)^(1/3) d^(-2/3)`` (Tracy-Widom TW1 mean; see
            docs/scaling-laws.md); for a W its actual smallest eigenvalue.

    Examples:
        >>> import memsgd
        >>> spec = memsgd.Spectrum.random_features(1.0, 0.7, 32)
        >>> info = spec.random_features_info
        >>> info.alpha, info.beta, info.d, info.v, info.kind
        (1.0, 0.7, 32, None, 'equivalent')
        >>> info.floor == spec.floor, f"{info.floor:.4g}"
        (True, '0.002699')
    """

    alpha: float
    beta: float
    d: int
    v: Optional[int]
    kind: str
    floor: float
    edge: Optional[float]
    smallest: float


@dataclass(frozen=True)
class RandomFeaturesModel:
    """Spectrum nodes (eigenvalues, c^2, weights, as [`memsgd.Spectrum`][memsgd.Spectrum] takes them) and info."""

    eigenvalues: np.ndarray
    coefficients2: np.ndarray
    weights: np.ndarray
    info: RandomFeaturesInfo


# -- arguments --------------------------------------------------------------------------------

def _check_model(alpha, beta, d, v):
    alpha = positive_scalar(alpha, "alpha")
    beta = real_scalar(beta, "beta")
    d = positive_int(d, "d")
    if v is not None:
        v = positive_int(v, "v")
    elif 2 * alpha <= 1:
        raise ValueError(f"v must be finite when 2 alpha <= 1 (the data variance sum_j j^(-2 alpha) "
                         f"diverges), got alpha = {alpha:g} and v = None")
    elif 2 * (alpha + beta) <= 1:
        raise ValueError(f"v must be finite when 2 (alpha + beta) <= 1 (the target variance "
                         f"sum_j j^(-2 alpha - 2 beta) diverges), got alpha = {alpha:g}, beta = {beta:g}")
    return alpha, beta, d, v


def random_features(alpha, beta, d, v=None, *, W=None, seed=None) -> RandomFeaturesModel:
    """The problem of the d-feature model: ``W=`` that ``v x d`` matrix exactly, ``seed=`` one W with
    i.i.d. ``N(0, 1/d)`` entries (needs a finite v), neither: the deterministic equivalent."""
    if W is not None and seed is not None:
        raise ValueError("give at most one of W (a feature matrix) and seed (sample one)")
    if W is not None:
        W = float_array(W, "W", ndim=2, allow_empty=False)
        if v is not None and positive_int(v, "v") != W.shape[0]:
            raise ValueError(f"v must equal the number of rows of W ({W.shape[0]}), got {v}")
        if d is not None and positive_int(d, "d") != W.shape[1]:
            raise ValueError(f"d must equal the number of columns of W ({W.shape[1]}), got {d}")
        alpha, beta, d, v = _check_model(alpha, beta, W.shape[1], W.shape[0])
        return given_model(alpha, beta, W)
    alpha, beta, d, v = _check_model(alpha, beta, d, v)
    if seed is not None:
        if v is None:
            raise ValueError("seed= samples a v x d matrix W: give a finite v")
        return sampled_model(alpha, beta, d, v, seed)
    if v is not None and v <= d:
        raise ValueError(f"v must be > d for the deterministic equivalent (the features of a sampled W "
                         f"then span all of R^d), got v = {v}, d = {d}")
    return deterministic_equivalent(alpha, beta, d, v)


# -- a given or sampled W -----------------------------------------------------------------------

# Singular values of H^(1/2) W below this fraction of the largest are zero modes (they never move).
_RANK_RTOL = 1e-12


def given_model(alpha: float, beta: float, W: np.ndarray, kind: str = "given") -> RandomFeaturesModel:
    """The exact problem of the feature matrix W (v x d).

    With ``A = H^(1/2) W = U S V^T`` (thin SVD) and ``g = H^(1/2) b``: ``K = V S^2 V^T``, so the
    eigenvalues are ``mu_i = s_i^2`` and ``c_i = v_i^T theta* = (u_i^T g) / s_i``; the floor is the
    least-squares residual ``F0 = 1/2 |g - U U^T g|^2`` (computed as a residual, not as a difference of
    two nearly equal numbers). Zero modes (``s_i <= 1e-12 s_max``) are dropped, and the residual is
    taken off the modes kept.
    """
    v, d = W.shape
    require_memory(8.0 * (3 * v * d + 2 * d * d + 4 * v), f"random_features(W of shape {v} x {d})")
    j = np.arange(1, v + 1, dtype=np.float64)
    sqrt_lam = j ** (-alpha)
    g = j ** (-alpha - beta)
    A = sqrt_lam[:, None] * W
    U, S, _ = np.linalg.svd(A, full_matrices=False)
    keep = S > _RANK_RTOL * S.max() if S.size and S.max() > 0 else np.zeros(S.shape, bool)
    if not np.any(keep):
        raise ValueError("W must not be zero (H^(1/2) W has no nonzero singular value)")
    proj = U[:, keep].T @ g
    # the residual off the kept modes: sum mu c^2 + 2 F0 = |g|^2 holds with the spectrum returned
    floor = 0.5 * float(np.sum((g - U[:, keep] @ proj) ** 2))
    mu = S[keep] ** 2
    c2 = proj ** 2 / mu
    info = RandomFeaturesInfo(alpha, beta, d, v, kind, floor, None, float(mu.min()))
    return RandomFeaturesModel(mu, c2, np.ones_like(mu), info)


def sampled_model(alpha: float, beta: float, d: int, v: int, seed) -> RandomFeaturesModel:
    """One W with i.i.d. ``N(0, 1/d)`` entries from ``numpy.random.default_rng(seed)``."""
    require_memory(8.0 * 4 * v * d, f"random_features(seed=..., v={v}, d={d})")
    W = np.random.default_rng(seed).standard_normal((v, d)) / math.sqrt(d)
    return given_model(alpha, beta, W, kind="sampled")


# -- the deterministic equivalent ---------------------------------------------------------------

# Exact terms of the population sums: max(_HEAD_MIN, _HEAD_SCALE alpha sqrt(d)).
_HEAD_MIN = 512
_HEAD_SCALE = 8.0


class _Population:
    """Sums ``sum_{j=1..v} m(lambda_j)`` for the functions the equivalent needs, ``lambda_j = j^(-2 alpha)``.

    The first ``J`` terms exactly; the rest as an integral over ``u = log j`` from ``J + 1/2`` (to
    ``v + 1/2``, or to ``A`` for v = inf) by Gauss-Legendre panels, with the Euler-Maclaurin end
    corrections ``+f'(J + 1/2)/24`` (and ``-f'(v + 1/2)/24``) folded into the weights of the terms
    beside each junction (``f' ~ f(J+1) - f(J)``); for v = inf the integral beyond A by its power
    series in ``lambda s`` (A is chosen so that ``|lambda_A s| <= 1/8`` for every s the equivalent uses).
    The summands are analytic in j with their nearest singularities at distance ~ ``j Im(s)/|s|``,
    resolved by the exact head for the separated top eigenvalues (J >> sqrt(d)).
    """

    PANEL = 0.25
    NODES = 12

    def __init__(self, alpha: float, beta: float, d: int, v: Optional[int], s_max: float):
        self.alpha, self.beta, self.d, self.v = alpha, beta, d, v
        J = max(_HEAD_MIN, int(_HEAD_SCALE * alpha * math.sqrt(d)) + 1)
        if v is not None and v <= J + 2:
            J = v
        self.J = J
        jh = np.arange(1, J + 1, dtype=np.float64)
        lam = [jh ** (-2 * alpha)]
        w = [np.ones(J)]
        self.A = None
        if v is None or v > J:
            u0 = math.log(J + 0.5)
            if v is None:
                # far end: |lambda s| <= 1/8 for |s| <= s_max, and at least a few decades past d
                self.A = max(64.0 * (J + 0.5), 100.0 * d, (8.0 * s_max) ** (1.0 / (2 * alpha)))
                u1 = math.log(self.A)
            else:
                u1 = math.log(v + 0.5)
            n = max(1, int(math.ceil((u1 - u0) / self.PANEL)))
            edges = np.linspace(u0, u1, n + 1)
            gx, gw = np.polynomial.legendre.leggauss(self.NODES)
            half = 0.5 * np.diff(edges)
            mid = 0.5 * (edges[1:] + edges[:-1])
            x = np.exp((mid[:, None] + half[:, None] * gx).ravel())
            lam.append(x ** (-2 * alpha))
            w.append((half[:, None] * gw).ravel() * x)
            # Euler-Maclaurin (midpoint form): sum_{j=J+1}^{v} f(j) = int_{J+1/2}^{v+1/2} f
            # + f'(J+1/2)/24 - f'(v+1/2)/24 + ..., with f'(J+1/2) ~ f(J+1) - f(J)
            w[0][-1] -= 1.0 / 24.0
            lam.append(np.array([(J + 1.0) ** (-2 * alpha)]))
            w.append(np.array([1.0 / 24.0]))
            if v is not None:
                lam.append(np.array([float(v) ** (-2 * alpha), (v + 1.0) ** (-2 * alpha)]))
                w.append(np.array([1.0 / 24.0, -1.0 / 24.0]))
        self.lam = np.concatenate(lam)
        self.w = np.concatenate(w)
        self.bexp = 1.0 + beta / alpha        # lambda b^2 = lambda^(1 + beta/alpha)
        self._c = {"phi": self.w * self.lam, "phi2": self.w * self.lam ** 2, "phi3": self.w * self.lam ** 3,
                   "target": self.w * self.lam ** self.bexp, "log": self.w}
        self._c = {k: v.astype(np.complex128) for k, v in self._c.items()}

    # -- the far integral int_A^inf lambda(j)^p / (1 + lambda s)^k dj, as a series in lambda s --
    def _far(self, s: np.ndarray, p: float, k: int) -> np.ndarray:
        if self.A is None:
            return 0.0
        a2 = 2.0 * self.alpha
        ratio = -s * self.A ** (-a2)
        out = np.zeros_like(s)
        term = np.ones_like(s)
        binom = 1.0
        for n in range(80):
            out = out + binom * term * self.A ** (1.0 - a2 * (p + n)) / (a2 * (p + n) - 1.0)
            term = term * ratio
            binom = binom * (n + k) / (n + 1)
            if n > 4 and np.all(np.abs(term) * binom < 1e-18):
                break
        return out

    def _far_log(self, s: np.ndarray) -> np.ndarray:
        """int_A^inf log(1 + lambda s) dj = sum_{n>=1} (-1)^(n+1) s^n A^(1-2an) / (n (2an - 1))."""
        if self.A is None:
            return 0.0
        a2 = 2.0 * self.alpha
        out = np.zeros_like(s)
        term = -np.ones_like(s)
        for n in range(1, 81):
            term = term * (-s * self.A ** (-a2))
            out = out + term * self.A / (n * (a2 * n - 1.0))
            if n > 4 and np.all(np.abs(term) < 1e-18):
                break
        return out

    def sums(self, s: np.ndarray, which=("phi", "phi2")) -> dict:
        """The requested raw sums over j at complex s (1-d array): ``phi = sum lambda / (1 + lambda s)``,
        ``phi2``, ``phi3`` (powers 2 and 3 of ``lambda / (1 + lambda s)``), ``target = sum lambda b^2 /
        (1 + lambda s)`` and ``log = sum log(1 + lambda s)`` (principal branch)."""
        out = {}
        chunk = max(1, int(2e6 // self.lam.size))
        pieces = {name: [] for name in which}
        for a in range(0, s.size, chunk):
            sc = s[a:a + chunk]
            # products summed elementwise, not by BLAS: a threaded matrix-vector product this small
            # costs ~100x more than it computes when the machine is busy
            q = 1.0 + self.lam[None, :] * sc[:, None]
            inv = 1.0 / q
            if "phi" in which:
                pieces["phi"].append((inv * self._c["phi"]).sum(axis=1) + self._far(sc, 1.0, 1))
            if "phi2" in which:
                pieces["phi2"].append((inv * inv * self._c["phi2"]).sum(axis=1) + self._far(sc, 2.0, 2))
            if "phi3" in which:
                pieces["phi3"].append((inv * inv * inv * self._c["phi3"]).sum(axis=1) + self._far(sc, 3.0, 3))
            if "target" in which:
                pieces["target"].append((inv * self._c["target"]).sum(axis=1) + self._far(sc, self.bexp, 1))
            if "log" in which:
                # log |q| + i arg q on the real and imaginary parts (numpy's complex log is slow)
                logq = 0.5 * np.log(q.real ** 2 + q.imag ** 2) + 1j * np.arctan2(q.imag, q.real)
                pieces["log"].append((logq * self._c["log"]).sum(axis=1) + self._far_log(sc))
        for name in which:
            out[name] = np.concatenate(pieces[name]) if pieces[name] else np.zeros(0, complex)
        return out

    def real_sums(self, s: np.ndarray, which) -> dict:
        """Sums at real s > 0 (edges, s0)."""
        res = self.sums(s.astype(complex), which)
        return {k: v.real for k, v in res.items()}


class _Equivalent:
    """Silverstein's equation for ``s(z) = (1/d) Tr (K - z)^-1`` and what follows from it."""

    ETA_STEPS = 32
    NEWTON = 40

    def __init__(self, alpha, beta, d, v):
        self.alpha, self.beta, self.d, self.v = alpha, beta, d, v
        # provisional population to find the lower edge, then the far end sized for it
        pop = _Population(alpha, beta, d, v, s_max=1.0)
        self.pop = pop
        s_star = self._edge_s(pop)
        self.s_max = 8.0 * s_star
        self.pop = _Population(alpha, beta, d, v, s_max=self.s_max)
        self.s_star = self._edge_s(self.pop)
        self.x_min = float(self._z_real(np.array([self.s_star]))[0])

    # z(s) and derivatives
    def _z(self, s):
        r = self.pop.sums(s, ("phi", "phi2"))
        d = self.d
        return -1.0 / s + r["phi"] / d, 1.0 / s ** 2 - r["phi2"] / d

    def _z_real(self, s):
        r = self.pop.real_sums(s, ("phi",))
        return -1.0 / s + r["phi"] / self.d

    def _dz_real(self, s):
        r = self.pop.real_sums(s, ("phi2",))
        return 1.0 / s ** 2 - r["phi2"] / self.d

    def _edge_s(self, pop) -> float:
        """s* > 0 where z(s) is largest on s > 0: the lower edge x_min = z(s*) (z' = 0)."""
        self.pop = pop
        lo, hi = 1e-300, 1.0
        while self._dz_real(np.array([hi]))[0] > 0:
            lo, hi = hi, hi * 16.0
            if hi > 1e300:
                raise ArithmeticError("random_features: the lower spectral edge was not found")
        lo = max(lo, hi / 16.0)
        for _ in range(200):
            mid = math.sqrt(lo * hi)
            if self._dz_real(np.array([mid]))[0] > 0:
                lo = mid
            else:
                hi = mid
            if hi / lo - 1 < 1e-15:
                break
        return math.sqrt(lo * hi)

    def s0(self) -> float:
        """z(s0) = 0 on (0, s*): (1/d) sum lambda s0 / (1 + lambda s0) = 1."""
        lo, hi = self.s_star, self.s_star
        while self._z_real(np.array([lo]))[0] >= 0:
            lo /= 2.0
        for _ in range(200):
            mid = math.sqrt(lo * hi)
            if self._z_real(np.array([mid]))[0] < 0:
                lo = mid
            else:
                hi = mid
            if hi / lo - 1 < 1e-15:
                break
        return math.sqrt(lo * hi)

    def expected_smallest(self) -> float:
        """``x_min + |TW1 mean| sigma``: near s*, ``z(s) ~ x_min + z''(s*) (s - s*)^2 / 2``, so the count
        below x is ``(2 d / (3 pi)) sqrt(2 / |z''|) (x - x_min)^(3/2)``, i.e. the Airy edge
        ``(2 / (3 pi)) xi^(3/2)`` in ``xi = (x - x_min) / sigma`` with ``sigma = (|z''| / 2)^(1/3) d^(-2/3)``."""
        s = np.array([self.s_star])
        phi3 = self.pop.real_sums(s, ("phi3",))["phi3"][0]
        z2 = -2.0 / self.s_star ** 3 + 2.0 * phi3 / self.d
        sigma = (abs(z2) / 2.0) ** (1.0 / 3.0) * self.d ** (-2.0 / 3.0)
        return self.x_min - _TW1_MEAN * sigma

    def floor(self) -> float:
        s0 = self.s0()
        t = self.pop.real_sums(np.array([s0]), ("target",))["target"][0]
        return 0.5 * float(t)

    # s(x + i0) for real x > 0 by continuation in the imaginary part
    def solve(self, x: np.ndarray, steps: Optional[int] = None) -> np.ndarray:
        """``s(x + i0)``: Newton along ``z = x (1 + i eta)``, eta from 100 down to 1e-14 geometrically
        (``steps`` points), then at eta = 0+; points whose residual stays large are redone with four
        times as many steps."""
        x = np.asarray(x, dtype=np.float64)
        steps = steps or self.ETA_STEPS
        etas = np.logspace(2.0, -14.0, steps)
        s = -1.0 / (x + 1j * x * etas[0])
        for eta in etas:
            # intermediate points only need to stay in the basin of the next one
            s = self._newton(s, x + 1j * x * eta, iters=3)
        s = self._newton(s, x + 0j)
        with np.errstate(all="ignore"):
            resid = np.abs(self._z(s)[0] - x) / x
        bad = ~(resid <= 1e-10)
        if np.any(bad) and steps < 16 * self.ETA_STEPS:
            s[bad] = self.solve(x[bad], 4 * steps)
        return s

    def _newton(self, s, z, iters=None):
        s = s.copy()
        active = np.arange(s.size)
        for _ in range(iters or self.NEWTON):
            sa = s[active]
            f, fp = self._z(sa)
            step = (f - z[active]) / fp
            new = sa - step
            # stay in the upper half plane (the Stieltjes branch)
            bad = ~(new.imag > 0)
            if np.any(bad):
                new[bad] = sa[bad].real + 1j * sa[bad].imag * 0.25
            big = np.abs(new) > self.s_max
            if np.any(big):
                new[big] = sa[big] + 0.5 * (new[big] - sa[big]) * self.s_max / np.abs(new[big])
            s[active] = new
            active = active[np.abs(step) > 1e-14 * np.abs(sa)]
            if active.size == 0:
                break
        return s

    def count_below(self, s: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Number of eigenvalues below x = z(s) (s on the real-axis curve)."""
        r = self.pop.sums(s, ("log",))
        psi = r["log"] - self.d * np.log(s) - self.d * x * s
        return -psi.imag / math.pi

    def densities(self, s: np.ndarray, x: np.ndarray):
        """(eigenvalue count density, loss density) at x = z(s)."""
        r = self.pop.sums(s, ("target",))
        rho = self.d * s.imag / math.pi
        nu = -r["target"].imag / (math.pi * x)
        return rho, nu


# Rank quadrature of the equivalent's spectrum.
_RANK_PANEL = 0.5       # width of the Gauss panels in log q and log(d - q)
_RANK_NODES = 8
_TOP_CELLS = 48         # one node per eigenvalue for the top ranks (times the separation scale)
_BOTTOM_CELLS = 16      # ... and for the bottom ranks (the lower edge)
_TOP_SCALE = 1.0
_GAUSS_CELLS = 8       # at least this many top cells get their own rule (_cell_rule)
_GRID_PER_DECADE = 8


def _top_cells(d: int, alpha: float) -> int:
    """Top ranks given one node each: the separated eigenvalues (up to ~ 2 alpha sqrt(d/2)) and more."""
    return max(_TOP_CELLS, int(math.ceil(_TOP_SCALE * alpha * math.sqrt(d))))


def _separated(d: int, alpha: float) -> int:
    """Top eigenvalues that stay apart: their semicircles (relative width 4 / sqrt(d)) are narrower
    than the spacing ``2 alpha / i`` of the population eigenvalues for i < alpha sqrt(d) / 2."""
    return max(_GAUSS_CELLS, int(math.ceil(0.5 * alpha * math.sqrt(d))))


def _cell_rule(n: int = 4):
    """Nodes u in [0, 1] (fraction of the cell counted from its top) and weights for one top
    eigenvalue cell, integrated along a semicircle: ``u = (theta - sin(theta) cos(theta)) / pi``, the
    semicircle distribution function, so that x moves like cos(theta). For a separated eigenvalue
    (square-root edges at both ends) the integrand times ``du/dtheta = 2 sin^2(theta) / pi`` is even
    and 2 pi-periodic in theta, and the midpoint rule ``theta_k = (k - 1/2) pi / n`` converges
    geometrically (its weights sum to exactly 1). Where the top eigenvalues are only partly
    separated the cells are less regular: measured on the loss measure's total mass the rank
    quadrature is then good to about 1e-4 relative (docs/scaling-laws.md), far below the
    equivalent's own error against sampled models."""
    theta = (np.arange(n) + 0.5) * math.pi / n
    return (theta - np.sin(theta) * np.cos(theta)) / math.pi, 2.0 * np.sin(theta) ** 2 / n


def _gaps(eq: _Equivalent, n: int) -> np.ndarray:
    """``gap[j]``, j = 0..n: is there a gap in the support below the j-th eigenvalue (j = 0: above the
    first, always)? Silverstein-Choi: x is outside the support iff x = z(s) for a real s with
    z'(s) > 0; below the j-th eigenvalue s runs between the poles -1/lambda_j and -1/lambda_(j+1)
    of z, so there is a gap iff z' > 0 somewhere in that interval (sampled at 64 points)."""
    gap = np.zeros(n + 1, bool)
    gap[0] = True
    if n == 0:
        return gap
    j = np.arange(1, n + 1, dtype=np.float64)
    a2 = 2.0 * eq.alpha
    frac = (np.arange(64) + 0.5) / 64.0
    logs = a2 * (np.log(j)[:, None] + frac[None, :] * np.log1p(1.0 / j)[:, None])
    dz = eq._dz_real(-np.exp(logs).ravel()).reshape(n, 64)
    gap[1:] = dz.max(axis=1) > 0
    return gap


def _rank_nodes(d: int, alpha: float, gaps: np.ndarray):
    """Rank quadrature on (0, d): (q nodes, weights, separated flags). The first G top cells (the
    separated eigenvalues carry most of the loss) and the last one (the lower edge) get their own
    rules (``_cell_rule``), the other top cells and the bottom ones their midpoint, Gauss
    panels in log q on [H, d/2] and in log(d - q) on [d/2, d - E] between."""
    H = _top_cells(d, alpha)
    E = _BOTTOM_CELLS
    G = gaps.size - 1
    qs, ws, sep = [], [], []
    u, wu = _cell_rule()
    for i in range(1, G + 1):
        qs.append(i - 1 + u)
        ws.append(wu)
        sep.append(np.full(u.size, bool(gaps[i - 1] and gaps[i])))
    q_last, w_last = d - 1 + u, wu
    if H + E + 4 * _RANK_NODES >= d:
        mid = np.arange(G, d - 1, dtype=np.float64) + 0.5
        qs += [mid, q_last]
        ws += [np.ones(mid.size), w_last]
    else:
        gx, gw = np.polynomial.legendre.leggauss(_RANK_NODES)

        def panels(u0, u1):
            n = max(1, int(math.ceil((u1 - u0) / _RANK_PANEL)))
            e = np.linspace(u0, u1, n + 1)
            half = 0.5 * np.diff(e)
            mid = 0.5 * (e[1:] + e[:-1])
            return (mid[:, None] + half[:, None] * gx).ravel(), (half[:, None] * gw).ravel()

        qm = 0.5 * d
        u_top, w_top = panels(math.log(H), math.log(qm))
        u_bot, w_bot = panels(math.log(E), math.log(d - qm))
        qs += [np.arange(G, H) + 0.5, np.exp(u_top), d - np.exp(u_bot)[::-1], d - E + np.arange(E - 1) + 0.5,
               q_last]
        ws += [np.ones(H - G), w_top * np.exp(u_top), (w_bot * np.exp(u_bot))[::-1], np.ones(E - 1), w_last]
    q, w = np.concatenate(qs), np.concatenate(ws)
    separated = np.zeros(q.size, bool)
    if sep:
        separated[:sum(s.size for s in sep)] = np.concatenate(sep)
    return q, w, separated


@functools.lru_cache(maxsize=256)
def deterministic_equivalent(alpha: float, beta: float, d: int, v: Optional[int]) -> RandomFeaturesModel:
    """The deterministic equivalent of the d-feature model (see the module docstring). Cached: a
    frontier study builds the same (alpha, beta, d, v) once for every algorithm it compares (the
    arrays are read-only)."""
    eq = _Equivalent(alpha, beta, d, v)
    G = min(_separated(d, alpha), _top_cells(d, alpha), d - 1, eq.pop.J - 1)
    q, w, separated = _rank_nodes(d, alpha, _gaps(eq, G))
    s, x = _locate_ranks(eq, q, separated)
    rho, nu = eq.densities(s, x)
    c2 = nu / rho / x
    info = RandomFeaturesInfo(alpha, beta, d, v, "equivalent", eq.floor(), eq.x_min, float(eq.expected_smallest()))
    for arr in (x, c2, w):
        arr.setflags(write=False)
    return RandomFeaturesModel(x, c2, w, info)


def _locate_ranks(eq: _Equivalent, q: np.ndarray, separated: np.ndarray):
    """Points of the eigenvalue support with ``#{eigenvalues above x} = q``: ``(s, x)`` with
    ``x = z(s)`` real, by Newton on s in the complex plane for the two real equations
    ``Im z(s) = 0`` and ``count(s) = d - q``. Starting points: for the separated top eigenvalues the
    leading-order semicircle of the i-th one (``s = -1/lambda_i + i / (lambda_i sqrt(d))`` at its
    median), elsewhere s interpolated on a grid in log x solved by continuation; bisection on x
    (with continuation) wherever Newton fails."""
    d = eq.d
    target = d - q                       # eigenvalues below
    x_top = _upper_edge(eq)
    grid = np.exp(np.linspace(math.log(eq.x_min * (1 + 1e-6)), math.log(x_top * (1 - 1e-9)),
                              max(32, int(_GRID_PER_DECADE * math.log10(x_top / eq.x_min)))))
    sg = eq.solve(grid)
    ng = np.maximum.accumulate(eq.count_below(sg, grid))
    k = np.clip(np.searchsorted(ng, target), 1, grid.size - 1)
    frac = np.clip((target - ng[k - 1]) / np.maximum(ng[k] - ng[k - 1], 1e-300), 0.0, 1.0)
    s = sg[k - 1] + frac * (sg[k] - sg[k - 1])
    if np.any(separated):
        # the i-th eigenvalue's semicircle: s = -1/lambda_i + e^(i theta) / (lambda_i sqrt(d)) puts
        # x = centre + 2 cos(theta) lambda_i / sqrt(d); the fraction of the cell below x is the
        # semicircle distribution function of cos(theta)
        i = np.floor(q[separated]) + 1.0
        lam_i = i ** (-2 * eq.alpha)
        cos = _semicircle_quantile(q[separated] - (i - 1.0))
        s[separated] = -1.0 / lam_i + (-cos + 1j * np.sqrt(1 - cos ** 2)) / (lam_i * math.sqrt(d))
    s, ok = _newton_ranks(eq, s, target)
    if not np.all(ok):                   # again from the continued solution at the interpolated x
        x0 = np.exp(np.interp(target[~ok], ng, np.log(grid)))
        s[~ok], ok[~ok] = _newton_ranks(eq, eq.solve(x0), target[~ok])
    if not np.all(ok):
        s[~ok] = _bisect_ranks(eq, target[~ok], grid, ng)
        s[~ok], ok[~ok] = _newton_ranks(eq, s[~ok], target[~ok])
    if not np.all(ok):
        raise ArithmeticError(f"random_features: {int(np.sum(~ok))} eigenvalue ranks of the deterministic "
                              "equivalent were not located (please report this with alpha, beta, d, v)")
    x = eq._z(s)[0].real
    return s, x


def _semicircle_quantile(u: np.ndarray) -> np.ndarray:
    """c in [-1, 1] with F(c) = u for the semicircle distribution F(c) = 1/2 + (c sqrt(1-c^2) + asin c)/pi."""
    lo, hi = -np.ones_like(u), np.ones_like(u)
    for _ in range(60):
        c = 0.5 * (lo + hi)
        below = 0.5 + (c * np.sqrt(1 - c * c) + np.arcsin(c)) / math.pi < u
        lo, hi = np.where(below, c, lo), np.where(below, hi, c)
    return 0.5 * (lo + hi)


def _upper_edge(eq: _Equivalent) -> float:
    """The largest eigenvalue's upper edge: the minimum of z(s) on s in (-1/lambda_1, 0) = (-1, 0)."""
    lo, hi = -1.0 + 1e-15, -1e-15
    # z' < 0 near -1 (pole of the first term), > 0 near 0-: bisection on z'
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if eq._dz_real(np.array([mid]))[0] < 0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-16:
            break
    return float(eq._z_real(np.array([0.5 * (lo + hi)]))[0])


def _newton_ranks(eq: _Equivalent, s: np.ndarray, target: np.ndarray):
    """Newton in the complex s plane for ``Im z(s) = 0`` and ``count(s) = target`` (two real
    equations, Jacobian from the complex derivatives: ``dIm f/dRe s = Im f'``, ``dIm f/dIm s = Re f'``;
    ``G' = -d s z'`` for the log-determinant G). Returns (s, converged)."""
    d = eq.d
    s = s.astype(complex).copy()
    ok = np.zeros(s.size, bool)
    active = np.flatnonzero(np.isfinite(s) & (s.imag > 0))
    for _ in range(_NEWTON_RANKS):
        if active.size == 0:
            break
        sa = s[active]
        with np.errstate(all="ignore"):
            z, zp = eq._z(sa)
            G = eq.pop.sums(sa, ("log",))["log"] - d * np.log(sa) - d * z * sa
            Gp = -d * sa * zp
            f1 = z.imag
            f2 = G.imag + math.pi * target[active]
            a, b, c, e = zp.imag, zp.real, Gp.imag, Gp.real
            det = a * e - b * c
            step = ((f1 * e - b * f2) + 1j * (a * f2 - c * f1)) / det
        finite = np.isfinite(step)
        done = finite & (np.abs(f1) <= 1e-13 * np.abs(z)) & (np.abs(f2) <= 1e-9) \
            & (np.abs(step) <= 1e-11 * np.abs(sa))
        ok[active[done]] = True
        # damped step: at most half of |s|, staying in the upper half plane and below s_max
        with np.errstate(over="ignore"):
            scale = np.minimum(1.0, 0.5 * np.abs(sa) / np.maximum(np.abs(np.where(finite, step, 0)), 1e-300))
        new = sa - scale * np.where(finite, step, 0)
        for _ in range(60):
            bad = (new.imag <= 0) | (np.abs(new) > eq.s_max)
            if not np.any(bad):
                break
            scale[bad] *= 0.5
            new[bad] = sa[bad] - scale[bad] * step[bad]
        keep = ~done & finite
        s[active[keep]] = new[keep]
        active = active[keep]
    return s, ok


_NEWTON_RANKS = 40


def _bisect_ranks(eq: _Equivalent, target: np.ndarray, grid, ng) -> np.ndarray:
    """Robust fallback: bisection in log x on the count inside the grid cell that holds the target
    (s by continuation at each x); Newton then polishes."""
    k = np.clip(np.searchsorted(ng, target), 1, grid.size - 1)
    lo, hi = grid[k - 1].copy(), grid[k].copy()
    for _ in range(_BISECTIONS):
        mid = np.sqrt(lo * hi)
        s = eq.solve(mid)
        below = eq.count_below(s, mid) < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return eq.solve(np.sqrt(lo * hi))


_BISECTIONS = 24
