import os

import numpy as np
import pytest

from gedenb import datasets


def test_california_housing_is_shipped_and_exact():
    t = datasets.california_housing()
    assert t.data.shape == (20640, 9) and t.data.dtype == np.float64
    assert t.columns[-1] == t.target == "MedHouseVal"
    assert t.data[0].tolist() == [8.3252, 41.0, 6.984126984126984, 1.0238095238095237, 322.0,
                                  2.5555555555555554, 37.88, -122.23, 4.526]
    np.testing.assert_allclose(t.data.mean(0)[[0, 8]], [3.870671, 2.068558], atol=1e-6)
    assert t.X.shape == (20640, 8) and t.y.shape == (20640,)


def test_data_root_errors_say_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("GEDENB_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="GEDENB_DATA"):
        datasets.data_root()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        datasets.data_root(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz is missing"):
        datasets.mnist(root=tmp_path)


@pytest.mark.skipif(not os.environ.get("GEDENB_DATA"), reason="GEDENB_DATA not set (CI sets it)")
def test_mnist_and_fashion_from_gedenb_data():
    x, y = datasets.mnist(train=True)
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert abs(x.mean() - 33.318) < 1e-3
    xt, yt = datasets.mnist(train=False)
    assert xt.shape == (10000, 28, 28) and len(yt) == 10000
    f, fy = datasets.fashion_mnist(train=False)
    assert f.shape == (10000, 28, 28) and np.bincount(fy).tolist() == [1000] * 10


@pytest.mark.skipif(not os.environ.get("GEDENB_DATA"), reason="GEDENB_DATA not set (CI sets it)")
def test_cifar10_jpeg_copy_and_tabular_loaders():
    x, y = datasets.cifar10_jpeg(train=False)
    assert x.shape == (10000, 32, 32, 3) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [1000] * 10
    c = datasets.credit_default()
    assert c.data.shape == (30000, 24) and int(c.y.sum()) == 6636 and c.columns[0] == "LIMIT_BAL"
    t = datasets.ijcnn1(train=True)
    assert t.data.shape == (49990, 23) and int((t.y > 0).sum()) == 4853
