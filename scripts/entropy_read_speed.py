"""Issue 7, images: size and read speed of a ``coding="entropy"`` store of MNIST class 3.

The same data, rows and peer as the asv ``Acceptance`` benchmarks: the store
of ``gedenb.compress(X, tau=10, coding="entropy", image_shape=(28, 28))``
saved and memory-mapped; one random row through ``Reader.read_rows`` against
one zstd-19 frame decoded with a trained dictionary; 1,024 random rows in
MB/s. ``--image-prec P`` quantises image models to ``P`` bits instead of
``gedenb.entropy.image_models.IMAGE_PREC`` (set before any kernel compiles), which is how the
precision was chosen. Run each setting in its own process, several times and
alternating: on a shared 2-core machine single runs differ by ~10%.

Run::

    GEDENB_DATA=/work/shared/data python scripts/entropy_read_speed.py [--image-prec P]
"""

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import gedenb  # noqa: E402
from gedenb.entropy import coder, image_models  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image-prec", type=int, default=image_models.IMAGE_PREC)
    args = ap.parse_args()
    if not coder.MIN_PREC <= args.image_prec <= coder.MAX_PREC:
        ap.error(f"--image-prec must be in [{coder.MIN_PREC}, {coder.MAX_PREC}]")
    image_models.IMAGE_PREC, image_models.IMAGE_M = args.image_prec, 1 << args.image_prec  # read when the kernels compile

    from asv_benchmarks._common import MNIST_CLASS, best_pair, best_seconds, mnist_classes, random_rows
    from asv_benchmarks.bench_peers import compress_frames, frame_compressor, frame_reader, train_mnist_dictionary
    from asv_benchmarks.bench_random_access import warm_up_entropy

    classes = mnist_classes()
    X = classes[MNIST_CLASS]
    warm_up_entropy(X, (28, 28))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "e.gede")
        nbytes = gedenb.save(gedenb.compress(X, tau=10, coding="entropy", image_shape=(28, 28)), path)
        r = gedenb.open(path)
        try:
            zdict = train_mnist_dictionary(classes)
            read = frame_reader(zdict.as_bytes(), *compress_frames(frame_compressor(zdict, 19), X), X.shape[1])
            one = random_rows(len(X), 1)
            d = X.shape[1]
            assert np.array_equal(read(one), r.read_rows(one))
            g1, z1 = best_pair(lambda: r.read_rows(one), lambda: read(one))  # in turn, as asv Acceptance
            many = random_rows(len(X), 1024)
            assert r.read_rows(many).tobytes() == X[many].tobytes()
            t = best_seconds(lambda: r.read_rows(many))
        finally:
            r.close()
    print(f"image prec {args.image_prec}: {nbytes:,} B ({nbytes / X.nbytes:.4f} of raw); one row {g1 * 1e6:.2f} us "
          f"vs zstd-dict {z1 * 1e6:.2f} us ({g1 / z1:.2f}x); 1,024 rows {t * 1e3:.3f} ms = "
          f"{many.size * d / t / 1e6:.0f} MB/s")


if __name__ == "__main__":
    main()
