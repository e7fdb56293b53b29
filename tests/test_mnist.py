"""Acceptance on real data: MNIST train, class by class, no clustering, tau = 10."""

import os

import numpy as np
import pytest

import gedenb
from gedenb.datasets import mnist

pytestmark = pytest.mark.skipif(not os.environ.get("GEDENB_DATA"), reason="GEDENB_DATA not set (CI sets it)")

PAPER_MNIST_PERCENT = 58.0  # dreaMLearning, Sec. 5: class-wise GeDe on MNIST


@pytest.fixture(scope="module")
def classes():
    x, y = mnist(train=True)
    flat = x.reshape(len(x), -1)
    return [np.ascontiguousarray(flat[y == k]) for k in range(10)]


@pytest.fixture(scope="module")
def native(classes):
    return [gedenb.compress(a, tau=10, widths="native") for a in classes]


def test_round_trip_class_by_class(classes, native, tmp_path):
    rng = np.random.default_rng(0)
    for k, (a, c) in enumerate(zip(classes, native)):
        assert np.array_equal(gedenb.decompress(c), a)
        path = tmp_path / f"class{k}.gede"
        gedenb.save(c, path)
        with gedenb.open(path) as r:
            idx = rng.integers(0, len(a), size=300)
            assert np.array_equal(r.read_rows(idx), a[idx])
            assert np.array_equal(r.read_rows(slice(None)), a)


def test_paper_storage_figure_and_disk_bytes(classes, native, tmp_path):
    raw = sum(a.nbytes for a in classes)
    eq1 = sum(gedenb.eq1_bits(c) for c in native) / 8
    percent = 100 * eq1 / raw
    assert abs(percent - PAPER_MNIST_PERCENT) <= 2.0, percent
    disk = sum(gedenb.save(c, tmp_path / f"{k}.gede") for k, c in enumerate(native))
    assert 0 <= disk - eq1 <= 0.01 * eq1, (disk, eq1)


def test_narrow_codecs_beat_the_paper_setting(classes, native):
    narrow = sum(gedenb.eq1_bits(gedenb.compress(a, tau=10)) for a in classes)
    assert narrow < sum(gedenb.eq1_bits(c) for c in native)
