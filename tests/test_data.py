"""memsgd.data: IDX reader on tiny files written here, digits helper, one_hot."""
import gzip
import struct

import numpy as np
import pytest

from memsgd import data

from ._extras import need


def write_idx(path, arr, code=0x08, compress=False):
    arr = np.asarray(arr)
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    dt = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    raw = header + arr.astype(dt).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_roundtrip(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    suffix = ".gz" if compress else ""
    ip = write_idx(tmp_path / f"images-idx3-ubyte{suffix}", images, compress=compress)
    lp = write_idx(tmp_path / f"labels-idx1-ubyte{suffix}", labels, compress=compress)
    raw = data.load_idx(ip)
    assert raw.dtype == np.uint8 and np.array_equal(raw, images)
    X, y = data.load_mnist(ip, lp)
    assert X.shape == (5, 12) and X.dtype == np.float64
    np.testing.assert_array_equal(X, images.reshape(5, -1) / 255.0)
    np.testing.assert_array_equal(y, labels.astype(np.int64))
    X3, _ = data.load_mnist(str(ip), str(lp), flatten=False, scale=False)
    np.testing.assert_array_equal(X3, images)


@pytest.mark.parametrize("code, values", [(0x0D, [[1.5, -2.0]]), (0x0E, [1e300, -3.25]),
                                          (0x0B, [-300, 7]), (0x0C, [70000, -1]), (0x09, [-5, 5])])
def test_idx_other_types(tmp_path, code, values):
    p = write_idx(tmp_path / "x.idx", np.array(values), code=code)
    np.testing.assert_array_equal(data.load_idx(p), np.array(values))
    assert data.load_idx(p).dtype.byteorder in "=|"


def test_idx_gzip_detected_by_content(tmp_path):
    p = write_idx(tmp_path / "no-gz-suffix", np.arange(6, dtype=np.uint8).reshape(2, 3), compress=True)
    np.testing.assert_array_equal(data.load_idx(p), np.arange(6).reshape(2, 3))


def test_idx_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01" + struct.pack(">I", 2) + b"ab")
    with pytest.raises(ValueError, match="bad magic number"):
        data.load_idx(bad)
    bad.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"ab")
    with pytest.raises(ValueError, match="payload has 2 bytes"):
        data.load_idx(bad)
    bad.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"ab")
    with pytest.raises(ValueError, match="unknown IDX data type 0x07"):
        data.load_idx(bad)
    bad.write_bytes(b"\x00\x00\x08\x03\x00")
    with pytest.raises(ValueError, match="truncated IDX header"):
        data.load_idx(bad)
    with pytest.raises(TypeError, match="path must be a path"):
        data.load_idx(123)
    with pytest.raises(FileNotFoundError):
        data.load_idx(tmp_path / "missing")


def test_load_mnist_shape_errors(tmp_path):
    ip = write_idx(tmp_path / "i", np.zeros((3, 2, 2), np.uint8))
    lp = write_idx(tmp_path / "l", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="3 images but labels_path has 4 labels"):
        data.load_mnist(ip, lp)
    with pytest.raises(ValueError, match="images_path must hold a 3-d"):
        data.load_mnist(lp, lp)
    with pytest.raises(ValueError, match="labels_path must hold a 1-d"):
        data.load_mnist(ip, ip)


@pytest.mark.slow
def test_load_digits_standardized():
    need("sklearn")
    X, y = data.load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,) and set(np.unique(y)) == set(range(10))
    varying = X.std(axis=0) > 0
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(X.std(axis=0)[varying], 1, atol=1e-12)
    Xr, _ = data.load_digits(standardized=False)
    assert Xr.max() == 16.0


def test_one_hot():
    np.testing.assert_array_equal(data.one_hot([2, 0]), [[0, 0, 1], [1, 0, 0]])
    assert data.one_hot(np.array([1]), 10).shape == (1, 10)
    with pytest.raises(ValueError, match="num_classes must be > max label 5"):
        data.one_hot([5], 3)
    with pytest.raises(ValueError, match="y must be a 1-d array of integer labels"):
        data.one_hot([0.5])
