"""Memory-M algorithms in matrix form and in multistep form (docs/math.md §2).

Matrix form (P.3), state ``(w, u)`` with M auxiliary vectors::

    w_{t+1} - w_t = b^T u_t - alpha grad L(w_t + e^T u_t)
    u_{t+1}       = D u_t   - c     grad L(w_t + e^T u_t)

Along an eigenvalue ``lambda`` the state ``s = (w - w*, u)`` evolves by
``S_lambda = S0 - lambda g h^T`` with ``S0 = [[1, b^T], [0, D]]``, ``g = (alpha, c)``, ``h = (1, e)``,
and ``det(z I - S_lambda) = P(z) + lambda Q(z)`` (Theorem 1).

The affine model (docs/math.md §9) adds to an algorithm a weight decay ``rho`` (the gradient oracle
returns ``grad L + rho * weights`` at the gradient point), a readout ``r`` (the loss is measured at
``w + r^T u``) and a diagonal preconditioner ``p`` (the gradient along ``lambda`` is multiplied by
``(lambda / lambda_max)^(-p)``). The matrix-form methods (``S0``, ``char_polys``, ``alpha_eff``, ...)
describe the plain ``(alpha, b, c, D, e)``.
"""
from __future__ import annotations

import math

import numpy as np

from ._validation import float_array, nonnegative_scalar, real_scalar, warn_unstable_memory

__all__ = [
    "MemoryAlgorithm", "Multistep", "gd", "heavy_ball", "nesterov", "am1", "qhm", "dana",
]


def _adjugate_terms(D: np.ndarray):
    """Faddeev-LeVerrier: ``det(zI - D) = sum_k r_k z^(M-k)`` and ``adj(zI - D) = sum_k B_k z^(M-1-k)``.

    Returns ``(r, B)`` with ``r`` of length M+1 (r_0 = 1) and ``B`` of shape (M, M, M).
    Exact algebra on the entries of D (no eigenvalues), fine for the small M used here.
    """
    M = D.shape[0]
    r = np.zeros(M + 1)
    r[0] = 1.0
    B = np.zeros((M, M, M))
    if M == 0:
        return r, B
    Bk = np.eye(M)
    for k in range(1, M + 1):
        B[k - 1] = Bk
        DB = D @ Bk
        r[k] = -np.trace(DB) / k
        Bk = DB + r[k] * np.eye(M)
    return r, B


class MemoryAlgorithm:
    """A stationary memory-M algorithm in matrix form ``(alpha, b, c, D, e)`` (P.3).

    Args:
        alpha: learning rate of the direct gradient term.
        b: (M,) how the memory enters the parameter update.
        c: (M,) how the gradient enters the memory.
        D: (M, M) memory transition.
        e: (M,) gradient-point shift (Nesterov, schedule-free); default 0.
        weight_decay: ``rho >= 0``, L2 weight decay coupled as ``torch.optim.SGD(weight_decay=)``: the
            gradient oracle returns ``grad L(q) + rho q`` at the gradient point ``q = w + e^T u``
            (absolute weights, docs/math.md §9).
        readout: (M,) ``r``: the loss is measured at ``w + r^T u`` (default: at ``w``).
        preconditioner: ``p``: the gradient along eigenvalue ``lambda`` is multiplied by
            ``(lambda / lambda_max)^(-p)`` (a diagonal preconditioner in the eigenbasis; 0: none).

    Examples:
        >>> import memsgd
        >>> algo = memsgd.MemoryAlgorithm(0.1, [0.9], [0.1], [[0.9]], weight_decay=1e-3)
        >>> algo.weight_decay, algo.memory
        (0.001, 1)

        Heavy ball written out in matrix form (``u+ = beta u - lr g``, ``w+ = w + u+``):

        >>> import memsgd
        >>> algo = memsgd.MemoryAlgorithm(0.1, b=[0.9], c=[0.1], D=[[0.9]])
        >>> algo.memory, round(algo.alpha_eff, 12)       # alpha_eff = lr / (1 - beta)
        (1, 1.0)
        >>> memsgd.heavy_ball(0.1, 0.9).D.tolist()       # the preset builds the same matrices
        [[0.9]]
    """

    alpha: float
    b: np.ndarray
    c: np.ndarray
    D: np.ndarray
    e: np.ndarray
    weight_decay: float
    readout: np.ndarray
    preconditioner: float
    _preset: tuple | None

    def __init__(self, alpha, b, c, D, e=None, *, weight_decay=0.0, readout=None, preconditioner=0.0):
        object.__setattr__(self, "alpha", real_scalar(alpha, "alpha"))
        b = float_array(b, "b")
        if b.ndim != 1:
            raise ValueError(f"b must be 1-dimensional (length M), got shape {b.shape}")
        M = b.size
        c = float_array(c, "c")
        if c.shape != (M,):
            raise ValueError(f"c must have shape ({M},) to match b (memory M = {M}), got {c.shape}")
        D = float_array(D, "D")
        if M == 0 and D.size == 0:
            D = np.zeros((0, 0))
        if D.shape != (M, M):
            raise ValueError(f"D must have shape ({M}, {M}) to match b (memory M = {M}), got {D.shape}")
        if e is None:
            e = np.zeros(M)
        e = float_array(e, "e")
        if e.shape != (M,):
            raise ValueError(f"e must have shape ({M},) to match b (memory M = {M}), got {e.shape}")
        weight_decay = nonnegative_scalar(weight_decay, "weight_decay")
        r = np.zeros(M) if readout is None else float_array(readout, "readout")
        if r.shape != (M,):
            raise ValueError(f"readout must have shape ({M},) (one weight per auxiliary vector, memory M = {M}), "
                             f"got {r.shape}")
        preconditioner = real_scalar(preconditioner, "preconditioner")
        for arr in (b, c, D, e, r):
            arr.setflags(write=False)
        for name, value in (("b", b), ("c", c), ("D", D), ("e", e), ("weight_decay", weight_decay),
                            ("readout", r), ("preconditioner", preconditioner), ("_preset", None)):
            object.__setattr__(self, name, value)

    # An algorithm is a value (its arrays are read-only too): a changed alpha would silently
    # disagree with the preset name shown in its repr.
    def __setattr__(self, name, value):
        raise AttributeError(f"MemoryAlgorithm is immutable (cannot set {name!r}); build a new one")

    def __delattr__(self, name):
        raise AttributeError(f"MemoryAlgorithm is immutable (cannot delete {name!r})")

    def _named(self, preset: str, **arguments) -> MemoryAlgorithm:
        """Attach the preset's name and arguments, shown by ``repr`` (a zero weight decay is not shown)."""
        if not arguments.get("weight_decay", 1.0):
            del arguments["weight_decay"]
        object.__setattr__(self, "_preset", (preset, arguments))
        return self

    def __setstate__(self, state):
        # pickle and deepcopy rebuild the arrays writeable: keep them read-only, as built
        self.__dict__.update(state)
        self.__dict__.setdefault("weight_decay", 0.0)   # pickled before the affine model
        self.__dict__.setdefault("readout", np.zeros(self.b.size))
        self.__dict__.setdefault("preconditioner", 0.0)
        for arr in (self.b, self.c, self.D, self.e, self.readout):
            arr.setflags(write=False)

    @property
    def is_plain(self) -> bool:
        """True without weight decay, readout and preconditioner (the model of docs/math.md §2-§8)."""
        return self.weight_decay == 0.0 and self.preconditioner == 0.0 and not np.any(self.readout)

    @property
    def memory(self) -> int:
        return int(self.b.size)

    @property
    def g(self) -> np.ndarray:
        """How a gradient enters the state: ``(alpha, c)``."""
        return np.concatenate([[self.alpha], self.c])

    @property
    def h(self) -> np.ndarray:
        """Where the gradient is taken: ``(1, e)``."""
        return np.concatenate([[1.0], self.e])

    @property
    def S0(self) -> np.ndarray:
        M = self.memory
        S0 = np.zeros((M + 1, M + 1))
        S0[0, 0] = 1.0
        S0[0, 1:] = self.b
        S0[1:, 1:] = self.D
        return S0

    @property
    def alpha_eff(self) -> float:
        """Effective learning rate ``Q(1)/P'(1) = alpha + b^T (I - D)^-1 c`` (P.22, Theorem 4).

        Independent of e. ``inf`` when ``I - D`` is singular (e.g. a memory that never forgets).
        """
        if self.memory == 0:
            return self.alpha
        try:
            return float(self.alpha + self.b @ np.linalg.solve(np.eye(self.memory) - self.D, self.c))
        except np.linalg.LinAlgError:
            return float("inf")

    def char_polys(self):
        """``(P, Q)`` with ``det(zI - S_lambda) = P(z) + lambda Q(z)``, highest degree first.

        ``P(z) = (z - 1) det(zI - D)`` (monic, degree M+1) and
        ``Q(z) = h^T adj(zI - S0) g = alpha R(z) + b^T A(z) c + (z - 1) e^T A(z) c`` (length M+1),
        with ``R = det(zI - D)``, ``A = adj(zI - D)`` from Faddeev-LeVerrier.
        """
        M = self.memory
        r, B = _adjugate_terms(self.D)
        P = np.convolve([1.0, -1.0], r)
        Q = self.alpha * r.copy()
        if M > 0:
            bAc = np.array([self.b @ B[k] @ self.c for k in range(M)])   # z^(M-1-k)
            eAc = np.array([self.e @ B[k] @ self.c for k in range(M)])
            Q[1:] += bAc
            Q += np.convolve([1.0, -1.0], eAc)
        return P, Q

    def eigen_matrix(self, lam):
        """``S_lambda = S0 - lambda g h^T``; an array ``lam`` gives shape (n, M+1, M+1)."""
        lam_arr = float_array(lam, "lam")
        gh = np.outer(self.g, self.h)
        if lam_arr.ndim == 0:
            return self.S0 - float(lam_arr) * gh
        return self.S0[None] - lam_arr.reshape(-1)[:, None, None] * gh[None]

    def to_multistep(self) -> Multistep:
        """Multistep coefficients with the same ``P`` and ``Q`` (Theorem 1)."""
        P, Q = self.char_polys()
        r, _ = _adjugate_terms(self.D)
        return Multistep(-r[1:], Q)

    def parameters(self):
        """The matrix-form parameters as a tuple ``(alpha, b, c, D, e)``."""
        return self.alpha, self.b, self.c, self.D, self.e

    @property
    def preset(self):
        """``(name, arguments)`` of the preset that built this algorithm (e.g.
        ``("heavy_ball", {"lr": 0.1, "momentum": 0.9})``), or ``None``."""
        if self._preset is None:
            return None
        return self._preset[0], dict(self._preset[1])

    def matrix_form(self) -> str:
        """The matrix-form parameters as a constructor call, e.g.
        ``MemoryAlgorithm(alpha=0.1, b=[0.9], c=[0.1], D=[[0.9]], e=[0.0])`` (weight decay, readout
        and preconditioner appended when present)."""
        extra = ""
        if self.weight_decay:
            extra += f", weight_decay={self.weight_decay!r}"
        if np.any(self.readout):
            extra += f", readout={self.readout.tolist()}"
        if self.preconditioner:
            extra += f", preconditioner={self.preconditioner!r}"
        return (f"MemoryAlgorithm(alpha={self.alpha!r}, b={self.b.tolist()}, c={self.c.tolist()}, "
                f"D={self.D.tolist()}, e={self.e.tolist()}{extra})")

    def __repr__(self) -> str:
        """The preset call that built it (``heavy_ball(lr=0.1, momentum=0.9)``), else the matrix
        form; ``matrix_form`` always gives the matrix form."""
        if self._preset is None:
            return self.matrix_form()
        name, arguments = self._preset
        call = f"{name}({', '.join(f'{k}={v!r}' for k, v in arguments.items())})"
        return call if (self.preconditioner == 0.0 and not np.any(self.readout)) else self.matrix_form()


class Multistep:
    """Multistep form (P.9-P.10)::

        w_{t+1} = w_t + sum_{m=1}^M a_m (w_{t+1-m} - w_{t-m}) - sum_{m=0}^M alphas_m grad L(w_{t-m})

    with ``P(z) = (z-1)(z^M - sum_m a_m z^(M-m))`` and ``Q(z) = sum_m alphas_m z^(M-m)``.

    Examples:
        Heavy ball is the two-step method ``w+ = w + beta (w - w-) - lr grad``:

        >>> import memsgd
        >>> ms = memsgd.heavy_ball(0.1, 0.9).to_multistep()
        >>> ms.a.tolist(), ms.alphas.tolist()
        ([0.9], [0.1, 0.0])
        >>> round(ms.alpha_eff, 12)
        1.0
    """

    def __init__(self, a, alphas):
        a = float_array(a, "a", ndim=1)
        alphas = float_array(alphas, "alphas", ndim=1)
        if alphas.size != a.size + 1:
            raise ValueError(f"alphas must have length len(a) + 1 = {a.size + 1}, got {alphas.size}")
        a.setflags(write=False)
        alphas.setflags(write=False)
        self.a, self.alphas = a, alphas

    @property
    def memory(self) -> int:
        return int(self.a.size)

    def char_polys(self):
        R = np.concatenate([[1.0], -self.a])
        return np.convolve([1.0, -1.0], R), self.alphas.copy()

    @property
    def alpha_eff(self) -> float:
        """``Q(1) / P'(1)`` with ``P'(1) = R(1) = 1 - sum a``; ``inf`` when ``R(1) = 0`` (as
        [`MemoryAlgorithm.alpha_eff`][memsgd.MemoryAlgorithm.alpha_eff] for a singular ``I - D``), without a warning."""
        r1 = 1.0 - float(np.sum(self.a))
        if r1 == 0.0:
            return math.inf
        return float(np.sum(self.alphas)) / r1

    def to_matrix(self) -> MemoryAlgorithm:
        """Matrix form with e = 0 and the same memory (Theorem 1.2).

        ``D`` is the companion matrix of ``R(z) = z^M - sum a_m z^(M-m)`` in observer form
        (first column a, ones above the diagonal), ``b = e_1`` (so ``(D, b^T)`` is
        observable), ``alpha = q_0``, and ``c`` solves ``b^T adj(zI - D) c = Q(z) - q_0 R(z)``
        coefficient by coefficient: ``O c = n`` with rows ``O_k = b^T B_k``.
        """
        M = self.memory
        alpha = float(self.alphas[0])
        if M == 0:
            return MemoryAlgorithm(alpha, [], [], np.zeros((0, 0)))
        D = np.zeros((M, M))
        D[:, 0] = self.a
        D[np.arange(M - 1), np.arange(1, M)] = 1.0
        b = np.zeros(M)
        b[0] = 1.0
        r, B = _adjugate_terms(D)
        numerator = self.alphas - alpha * r          # degree <= M-1: numerator[0] == 0
        O = np.stack([b @ B[k] for k in range(M)])   # row k multiplies z^(M-1-k)
        c = np.linalg.solve(O, numerator[1:])
        return MemoryAlgorithm(alpha, b, c, D)

    def __repr__(self) -> str:
        return f"Multistep(a={self.a.tolist()}, alphas={self.alphas.tolist()})"


# -- presets (docs/math.md §2, presets table) ---------------------------------------------

# Every preset takes ``weight_decay`` (rho >= 0): the gradient g below is then the oracle's
# ``grad L + rho * weights`` at the gradient point (coupled L2, as torch.optim.SGD; docs/math.md §9).

def gd(lr, weight_decay=0.0) -> MemoryAlgorithm:
    """(S)GD: ``w+ = w - lr g`` (memory 0).

    Examples:
        >>> import memsgd
        >>> memsgd.gd(0.5).memory, memsgd.gd(0.5).alpha_eff
        (0, 0.5)
    """
    a, rho = nonnegative_scalar(lr, "lr"), nonnegative_scalar(weight_decay, "weight_decay")
    return MemoryAlgorithm(a, [], [], np.zeros((0, 0)), weight_decay=rho)._named("gd", lr=a, weight_decay=rho)


def heavy_ball(lr, momentum, weight_decay=0.0) -> MemoryAlgorithm:
    """Polyak's heavy ball: ``u+ = beta u - a g``, ``w+ = w + u+``.

    ``|beta| < 1`` is needed for stability (``det S_lambda = beta`` at every lambda, weight decay
    or not): other values are accepted with a warning (docs/math.md §5).

    Examples:
        >>> import memsgd
        >>> memsgd.gd(0.5).memory, memsgd.gd(0.5).alpha_eff
        (0, 0.5)
    """
    a, beta = nonnegative_scalar(lr, "lr"), real_scalar(momentum, "momentum")
    rho = nonnegative_scalar(weight_decay, "weight_decay")
    warn_unstable_memory(beta, f"heavy_ball(lr={a:g}, momentum={beta:g})")
    return MemoryAlgorithm(a, [beta], [a], [[beta]], weight_decay=rho)._named("heavy_ball", lr=a, momentum=beta,
                                                                              weight_decay=rho)


def nesterov(lr, momentum, weight_decay=0.0) -> MemoryAlgorithm:
    """Nesterov momentum: heavy ball with the gradient taken at ``w + beta u`` (e = beta).

    Without weight decay ``|beta| < 1`` is needed for stability on a power law: other values warn
    (docs/math.md §5).

    Examples:
        >>> import memsgd
        >>> algo = memsgd.nesterov(0.1, 0.9)
        >>> algo.e.tolist(), round(algo.alpha_eff, 12)           # gradient taken at w + 0.9 u
        ([0.9], 1.0)
    """
    a, beta = nonnegative_scalar(lr, "lr"), real_scalar(momentum, "momentum")
    rho = nonnegative_scalar(weight_decay, "weight_decay")
    if rho == 0:  # weight decay keeps every mode's curvature >= rho, away from lambda -> 0
        warn_unstable_memory(beta, f"nesterov(lr={a:g}, momentum={beta:g})")
    return MemoryAlgorithm(a, [beta], [a], [[beta]], [beta], weight_decay=rho)._named(
        "nesterov", lr=a, momentum=beta, weight_decay=rho)


def am1(lr, momentum, kick, weight_decay=0.0) -> MemoryAlgorithm:
    """AM1, heavy ball plus a kick: ``v+ = beta v + g``, ``w+ = w - lr v+ - kick g``.

    Matrix form with ``u = -lr v``: alpha = lr + kick, b = beta, c = lr, D = beta.
    ``alpha_eff = kick + lr / (1 - beta)``. ``lr`` and ``kick`` are learning rates (>= 0);
    without weight decay ``|beta| < 1`` is needed for stability on a power law: other values warn
    (docs/math.md §5).

    Examples:
        >>> import memsgd
        >>> round(memsgd.am1(0.1, 0.9, kick=1.0).alpha_eff, 12)  # kick + lr / (1 - momentum)
        2.0
    """
    lr, beta, eta = nonnegative_scalar(lr, "lr"), real_scalar(momentum, "momentum"), nonnegative_scalar(kick, "kick")
    rho = nonnegative_scalar(weight_decay, "weight_decay")
    if rho == 0:
        warn_unstable_memory(beta, f"am1(lr={lr:g}, momentum={beta:g}, kick={eta:g})")
    return MemoryAlgorithm(lr + eta, [beta], [lr], [[beta]], weight_decay=rho)._named(
        "am1", lr=lr, momentum=beta, kick=eta, weight_decay=rho)


def qhm(lr, momentum, nu, weight_decay=0.0) -> MemoryAlgorithm:
    """Quasi-hyperbolic momentum (Ma & Yarats 2019) with ``u = buf``::

        buf+ = beta buf + (1 - beta) g,     w+ = w - a [(1 - v) g + v buf+]

    Without weight decay ``|beta| < 1`` is needed for stability on a power law: other values warn
    (docs/math.md §5).

    Examples:
        >>> import memsgd
        >>> round(memsgd.qhm(1.0, 0.99, 0.7).alpha_eff, 12)      # QHM's alpha_eff is its lr
        1.0
    """
    a, beta, v = nonnegative_scalar(lr, "lr"), real_scalar(momentum, "momentum"), real_scalar(nu, "nu")
    rho = nonnegative_scalar(weight_decay, "weight_decay")
    if rho == 0:
        warn_unstable_memory(beta, f"qhm(lr={a:g}, momentum={beta:g}, nu={v:g})")
    return MemoryAlgorithm(a * (1 - v) + a * v * (1 - beta), [-a * v * beta], [-(1 - beta)],
                           [[beta]], weight_decay=rho)._named("qhm", lr=a, momentum=beta, nu=v, weight_decay=rho)


def dana(g1, g2, g3, delta, weight_decay=0.0) -> MemoryAlgorithm:
    """DANA (Paquette et al.) with constant ``Delta``: ``y+ = (1-Delta) y + g1 g``, ``w+ = w - (g2 g + g3 y+)``.

    ``g1, g2, g3`` are learning rates (>= 0).

    Examples:
        >>> import memsgd
        >>> round(memsgd.dana(0.1, 0.1, 0.1, 0.1).alpha_eff, 12)  # g2 + g1 g3 / delta
        0.2
    """
    g1, g2, g3 = nonnegative_scalar(g1, "g1"), nonnegative_scalar(g2, "g2"), nonnegative_scalar(g3, "g3")
    d = real_scalar(delta, "delta")
    rho = nonnegative_scalar(weight_decay, "weight_decay")
    if rho == 0:  # 0 < Delta < 2 (|1 - Delta| < 1) is needed on a power law (docs/math.md §5)
        warn_unstable_memory(1 - d, f"dana(g1={g1:g}, g2={g2:g}, g3={g3:g}, delta={d:g})", "1 - delta")
    return MemoryAlgorithm(g2 + g1 * g3, [-g3 * (1 - d)], [-g1], [[1 - d]], weight_decay=rho)._named(
        "dana", g1=g1, g2=g2, g3=g3, delta=d, weight_decay=rho)
