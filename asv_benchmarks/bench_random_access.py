"""Random access: decode 1, 128 and 1,024 random rows.

gedenb reads from a memory-mapped ``.gede`` file written in ``setup`` to a
temporary folder (MNIST train class 3 with both codec widths, and California
Housing); the peers decode the same rows of the same bytes:

* ``NumpyFancy``: ``X[idx]`` on the uncompressed array, the physical limit;
* ``ZstdDictRows``: one zstd frame per image (trained 112 KiB dictionary,
  level 19), rows decoded frame by frame through a 4-byte-per-row offset
  table;
* ``Blosc2Rows``: a Blosc2 NDArray with 16-row blocks, each row read by
  slicing its super-chunk (``SChunk.get_slice`` into the output row).

Row indices are sorted, distinct and drawn with a fixed seed.  The
``track_gbps`` benchmarks report decoded output bytes per second (GB/s,
1e9 bytes) from the best of several timed calls in one process, so
throughputs are visible from a single (even ``--quick``) run.
``Acceptance`` holds the project's two acceptance bars.
"""

from __future__ import annotations

import numpy as np

from ._common import (
    MNIST_CLASS,
    ROW_COUNTS,
    TempDir,
    best_of,
    best_ratio,
    best_seconds,
    check_cache,
    california,
    gedenb,
    mnist_class,
    mnist_classes,
    random_rows,
    warm_up,
)
from .bench_peers import (
    _need_blosc2,
    _need_zstd,
    _ZstdDictFrames,
    blosc2_array,
    frame_reader,
    zstandard,
)

DATASETS = ["mnist3-narrow", "mnist3-native", "mnist3-entropy", "california", "california-entropy"]
TAU = 10


def _compress(X: np.ndarray, dataset: str):
    """The table of ``dataset`` as benchmarked: raw-bit (narrow/native) or entropy-coded deviations."""
    if dataset.endswith("entropy"):
        shape = (28, 28) if dataset.startswith("mnist3") else None
        return gedenb.compress(X, tau=TAU, coding="entropy", image_shape=shape)
    return gedenb.compress(X, tau=TAU, widths="native" if dataset.endswith("native") else "narrow")


def warm_up_entropy(X: np.ndarray, image_shape=None) -> None:
    """Compile the entropy-coding kernels (compress, save, open, serial and parallel reads) on a sample."""
    sample = np.ascontiguousarray(X[np.linspace(0, len(X) - 1, min(256, len(X))).astype(np.int64)])
    with TempDir() as tmp:
        gedenb.save(gedenb.compress(sample, tau=TAU, coding="entropy", image_shape=image_shape), tmp / "w.gede")
        r = gedenb.open(tmp / "w.gede")
        r.read_rows(np.zeros(1, dtype=np.int64))
        r.read_rows(np.zeros(65536 // X.shape[1] + 1, dtype=np.int64))
        r.close()


def _table(dataset: str) -> np.ndarray:
    if dataset.startswith("mnist3"):
        return mnist_class(MNIST_CLASS)
    return california()


def _gbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e9


class GedeReadRows:
    """``Reader.read_rows`` on a memory-mapped ``.gede`` file."""

    params = [DATASETS, ROW_COUNTS]
    param_names = ["dataset", "rows"]

    def setup(self, dataset, rows):
        X = _table(dataset)
        if dataset.endswith("entropy"):
            warm_up_entropy(X, (28, 28) if dataset.startswith("mnist3") else None)
        else:
            warm_up(X, widths=("native" if dataset.endswith("native") else "narrow",), read=True)
        self.tmp = TempDir()
        path = self.tmp / f"{dataset}.gede"
        gedenb.save(_compress(X, dataset), path)
        self.reader = gedenb.open(path)
        self.idx = random_rows(len(X), rows)
        self.reader.read_rows(self.idx)  # compiles the decoder variant this store and batch size use

    def teardown(self, dataset, rows):
        self.reader.close()
        self.tmp.cleanup()

    def time_read_rows(self, dataset, rows):
        self.reader.read_rows(self.idx)

    def track_gbps(self, dataset, rows):
        """Decoded output bytes per second."""
        nbytes = self.reader.read_rows(self.idx).nbytes
        return _gbps(nbytes, best_seconds(lambda: self.reader.read_rows(self.idx)))

    track_gbps.unit = "GB/s"


class GedeOpen:
    """``gedenb.open`` of the file (header, CRC-32 of every section, base-ID check)."""

    params = [["mnist3-narrow", "california"], [True, False]]
    param_names = ["dataset", "verify"]

    def setup(self, dataset, verify):
        X = _table(dataset)
        widths = "native" if dataset.endswith("native") else "narrow"
        warm_up(X, widths=(widths,), read=True)
        self.tmp = TempDir()
        self.path = self.tmp / f"{dataset}.gede"
        gedenb.save(gedenb.compress(X, tau=TAU, widths=widths), self.path)

    def teardown(self, dataset, verify):
        self.tmp.cleanup()

    def time_open(self, dataset, verify):
        gedenb.open(self.path, verify=verify).close()


class NumpyFancy:
    """``X[idx]`` on the uncompressed array: the physical limit of random access."""

    params = [["mnist3", "california"], ROW_COUNTS]
    param_names = ["dataset", "rows"]

    def setup(self, dataset, rows):
        self.X = _table(dataset)
        self.idx = random_rows(len(self.X), rows)

    def time_take(self, dataset, rows):
        self.X[self.idx]

    def track_gbps(self, dataset, rows):
        nbytes = self.X[self.idx].nbytes
        return _gbps(nbytes, best_seconds(lambda: self.X[self.idx]))

    track_gbps.unit = "GB/s"


class ZstdDictRows(_ZstdDictFrames):
    """zstd-dict, one frame per image of MNIST class 3: decode the frames of the rows."""

    params = ROW_COUNTS
    param_names = ["rows"]

    def setup(self, cache, rows):
        check_cache(cache)
        buf, offsets = cache["frames"][MNIST_CLASS]
        X = mnist_class(MNIST_CLASS)
        self.d = X.shape[1]
        self._read = frame_reader(cache["dict"], buf, offsets, self.d)
        self.idx = random_rows(len(X), rows)
        if not np.array_equal(self.read(), X[self.idx]):
            raise AssertionError("zstd-dict frames do not decode to the original rows")

    def read(self):
        return self._read(self.idx)

    def time_read_rows(self, cache, rows):
        self.read()

    def track_gbps(self, cache, rows):
        return _gbps(len(self.idx) * self.d, best_seconds(self.read))

    track_gbps.unit = "GB/s"


class Blosc2Rows:
    """Blosc2 NDArray of MNIST class 3 (16-row blocks): one ``SChunk.get_slice`` per row."""

    params = [["shuffle", "bitshuffle"], ROW_COUNTS]
    param_names = ["filter", "rows"]

    def setup(self, shuffle, rows):
        _need_blosc2()
        X = mnist_class(MNIST_CLASS)
        self.arr = blosc2_array(X, shuffle)
        self.schunk = self.arr.schunk
        self.d = X.shape[1]
        self.idx = random_rows(len(X), rows)
        if not np.array_equal(self.read(), X[self.idx]):
            raise AssertionError("blosc2 slices do not decode to the original rows")

    def read(self):
        out = np.empty((len(self.idx), self.d), dtype=np.uint8)
        d = self.d
        get = self.schunk.get_slice
        for j, i in enumerate(self.idx.tolist()):
            get(i * d, (i + 1) * d, out[j])
        return out

    def time_read_rows(self, shuffle, rows):
        self.read()

    def track_gbps(self, shuffle, rows):
        return _gbps(len(self.idx) * self.d, best_seconds(self.read))

    track_gbps.unit = "GB/s"


class Acceptance:
    """The two acceptance bars, each measured within one process.

    * compressing all of MNIST train class-wise takes at most 3x the time
      of zstd level 3 on the same ten buffers (``track_compress_*_vs_zstd3``,
      best of 5 for each side; bar: <= 3);
    * decoding 1,024 random rows of MNIST class 3 from the memory-mapped
      file gives at least 1 GB/s of decoded output (``track_read1024_*``;
      bar: >= 1), next to NumPy fancy indexing of the raw array.
    """

    timeout = 300
    repeat_compress = 5

    def setup(self):
        self.classes = mnist_classes()
        warm_up(self.classes[MNIST_CLASS], widths=("narrow", "native"), read=True)

    def _compress_vs_zstd3(self, widths):
        _need_zstd()
        cctx = zstandard.ZstdCompressor(level=3)
        buffers = [X.tobytes() for X in self.classes]

        def gede():
            for X in self.classes:
                gedenb.compress(X, tau=TAU, widths=widths)

        def zstd3():
            for b in buffers:
                cctx.compress(b)

        return best_of(gede, self.repeat_compress) / best_of(zstd3, self.repeat_compress)

    def track_compress_narrow_vs_zstd3(self):
        return self._compress_vs_zstd3("narrow")

    track_compress_narrow_vs_zstd3.unit = "gedenb time / zstd-3 time"

    def track_compress_native_vs_zstd3(self):
        return self._compress_vs_zstd3("native")

    track_compress_native_vs_zstd3.unit = "gedenb time / zstd-3 time"

    def _read1024(self, widths):
        X = self.classes[MNIST_CLASS]
        idx = random_rows(len(X), 1024)
        with TempDir() as tmp:
            gedenb.save(gedenb.compress(X, tau=TAU, widths=widths), tmp / "mnist3.gede")
            r = gedenb.open(tmp / "mnist3.gede")
            try:
                nbytes = r.read_rows(idx).nbytes
                return _gbps(nbytes, best_seconds(lambda: r.read_rows(idx)))
            finally:
                r.close()

    def track_read1024_narrow_gbps(self):
        return self._read1024("narrow")

    track_read1024_narrow_gbps.unit = "GB/s"

    def track_read1024_native_gbps(self):
        return self._read1024("native")

    track_read1024_native_gbps.unit = "GB/s"

    def _entropy_reader(self, tmp):
        X = self.classes[MNIST_CLASS]
        warm_up_entropy(X, (28, 28))
        gedenb.save(gedenb.compress(X, tau=TAU, coding="entropy", image_shape=(28, 28)), tmp / "e.gede")
        return X, gedenb.open(tmp / "e.gede")

    def track_entropy_read1024_mbps(self):
        """coding="entropy" (issue 7 bar: >= 500 MB/s): 1,024 random rows of MNIST class 3."""
        with TempDir() as tmp:
            X, r = self._entropy_reader(tmp)
            try:
                idx = random_rows(len(X), 1024)
                return r.read_rows(idx).nbytes / best_seconds(lambda: r.read_rows(idx)) / 1e6
            finally:
                r.close()

    track_entropy_read1024_mbps.unit = "MB/s"

    def track_entropy_one_row_vs_zstd_dict(self):
        """coding="entropy" one-row read / zstd-dict one-frame decode, same process (issue 7 bar: <= 2).

        Both sides go through the same kind of path: ``Reader.read_rows`` of one
        random row, and the ``ZstdDictRows.read`` loop for one row (a frame per
        image of class 3, dictionary trained as in ``bench_peers``).
        """
        _need_zstd()
        from .bench_peers import compress_frames, frame_compressor, train_mnist_dictionary

        with TempDir() as tmp:
            X, r = self._entropy_reader(tmp)
            try:
                zdict = train_mnist_dictionary(self.classes)
                read = frame_reader(zdict.as_bytes(), *compress_frames(frame_compressor(zdict, 19), X), X.shape[1])
                idx = random_rows(len(X), 1)
                assert np.array_equal(read(idx), r.read_rows(idx))
                return best_ratio(lambda: r.read_rows(idx), lambda: read(idx))
            finally:
                r.close()

    track_entropy_one_row_vs_zstd_dict.unit = "gedenb time / zstd-dict time"

    def track_read1024_numpy_gbps(self):
        X = self.classes[MNIST_CLASS]
        idx = random_rows(len(X), 1024)
        return _gbps(X[idx].nbytes, best_seconds(lambda: X[idx]))

    track_read1024_numpy_gbps.unit = "GB/s"

