"""Issue 7: where the time of a small ``coding="entropy"`` read goes.

Prints, for one process:

* the call overhead of a Numba kernel that does nothing, by number of array
  arguments (the image decoder takes 6 arrays and 2 scalars);
* ``Reader.read_rows`` of one row of MNIST class 3 (``tau=10``, 28 x 28 image
  model), averaged over 64 distinct random rows;
* the image kernels alone on one thread, 1,024 random rows of that store:
  one row per call (the one-row kernel, called from compiled code) against
  two rows at a time (the batch kernel);
* ``Reader.read_rows`` of 1 and 64 rows of California Housing
  (``coding="entropy"``, the table scheme with the ratio transform).

Timings are the best of 7 repeats; on a shared 2-core machine single
processes differ by ~10%, so compare runs made one after the other.

Run::

    GEDENB_DATA=/work/shared/data python scripts/entropy_read_profile.py
"""

import os
import sys
import tempfile
import timeit

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import gedenb  # noqa: E402
from gedenb.entropy import deviations, image_models  # noqa: E402
from gedenb._numba import njit  # noqa: E402


def best(f, number):
    return min(timeit.repeat(f, number=number, repeat=7)) / number


def dispatch_overheads():
    arrays = [np.zeros(10, dtype=np.int64) for _ in range(15)]
    for k in (1, 4, 6, 11, 15):
        ns = {}
        exec(f"def f({', '.join(f'a{i}' for i in range(k))}):\n    return 0", ns)
        f = njit(ns["f"])
        args = arrays[:k]
        f(*args)
        print(f"no-op kernel, {k:2d} array arguments: {best(lambda: f(*args), 20000) * 1e6:.2f} us")


def _one_at_a_time(serial):
    @njit
    def one_at_a_time(rows, stream, ids, ip, limit, out, no_float):
        bad = -1
        for k in range(rows.shape[0]):
            if serial(rows[k:k + 1], stream, ids, ip, limit, False, out[k:k + 1], no_float) >= 0:
                bad = k
        return bad

    return one_at_a_time


def kernels_alone(reader, n):
    c = reader._c()
    k = c.coded
    rows = np.random.default_rng(2).integers(0, c.n, 1024).astype(np.int64)
    out = np.empty((rows.size, k.cp.shape[0]), dtype=np.uint8)
    args = (k.stream, c.records if c.records.size else deviations._EMPTY, k.ip, c.n)
    serial = image_models.image_kernels(k.ip, True)[1]
    each = _one_at_a_time(serial)
    assert each(rows, *args, out, deviations._NO_FLOAT) == -1
    assert serial(rows, *args, False, out, deviations._NO_FLOAT) == -1
    one = best(lambda: each(rows, *args, out, deviations._NO_FLOAT), n) / rows.size
    batch = best(lambda: serial(rows, *args, False, out, deviations._NO_FLOAT), n) / rows.size
    print(f"image kernels, one thread, per row: one row per call {one * 1e6:.2f} us, 1,024 rows in one call "
          f"{batch * 1e6:.2f} us")


def per_row(reader, rows, number):
    for q in rows:
        reader.read_rows(q)
    return best(lambda: [reader.read_rows(q) for q in rows], number) / len(rows)


def main():
    from asv_benchmarks._common import MNIST_CLASS, california, mnist_classes

    dispatch_overheads()
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        X = mnist_classes()[MNIST_CLASS]
        path = os.path.join(tmp, "m.gede")
        gedenb.save(gedenb.compress(X, tau=10, coding="entropy", image_shape=(28, 28)), path)
        with gedenb.open(path) as r:
            rows = [np.array([i], dtype=np.int64) for i in rng.integers(0, len(X), 64)]
            print(f"MNIST class {MNIST_CLASS}, entropy, one row: {per_row(r, rows, 200) * 1e6:.2f} us")
            kernels_alone(r, 5)
        T = california()
        path = os.path.join(tmp, "c.gede")
        gedenb.save(gedenb.compress(T, tau=10, coding="entropy"), path)
        with gedenb.open(path) as r:
            for k in (1, 64):
                rows = [rng.integers(0, len(T), k).astype(np.int64) for _ in range(16)]
                print(f"California Housing, entropy, {k} row(s): {per_row(r, rows, 50) * 1e6:.1f} us")


if __name__ == "__main__":
    main()
