"""gedenb compression and decompression: time, peak memory, storage ratios.

Data:

* California Housing (20,640 x 9 float64, shipped with gedenb), without
  clustering (``beta=None``) and with ``beta=12``;
* MNIST train class-wise (the paper's setting for images): the 60,000
  images as ``(n, 784)`` uint8, compressed one class at a time (ten
  tables), ``tau=10``, with the ``narrow`` and ``native`` column codecs;
* the synthetic mixed-dtype table ``datasets.synthetic_mixed()``:
  1,000,000 rows of 16 fields (int8/16/32/64, uint8/32, bool,
  float32/64; 60 MB), a structured array with one codec per field, without
  clustering and with ``beta=12``.  zstd on the same bytes is in
  ``bench_peers.ZstdMixed``.

Ratios are reported as ``track_`` benchmarks: the paper's Eq. 1 size and
the ``.gede`` bytes on disk, each divided by the raw bytes.  Every ``setup``
warms the kernels on a small sample first, so no compile time is timed;
``ColdStart`` measures a fresh interpreter (with and without the on-disk kernel cache).
"""

from __future__ import annotations

import subprocess
import sys

from ._common import (TempDir, cache_or_skip, california, check_cache, child_env, gedenb, mixed, mnist_classes,
                      mnist_images, smoke, warm_up)

TAU = 10
WIDTHS = ["narrow", "native"]
BETAS = [None, 12]


class CaliforniaCompress:
    """Compress California Housing (one table)."""

    params = BETAS
    param_names = ["beta"]

    def setup(self, beta):
        self.X = california()
        warm_up(self.X, beta=beta)

    def time_compress(self, beta):
        gedenb.compress(self.X, beta=beta, tau=TAU)

    def peakmem_compress(self, beta):
        gedenb.compress(self.X, beta=beta, tau=TAU)


class CaliforniaDecompress:
    """Decompress California Housing."""

    params = BETAS
    param_names = ["beta"]

    def setup(self, beta):
        X = california()
        warm_up(X, beta=beta, decompress=True)
        self.c = gedenb.compress(X, beta=beta, tau=TAU)

    def time_decompress(self, beta):
        gedenb.decompress(self.c)

    def peakmem_decompress(self, beta):
        gedenb.decompress(self.c)


def _sizes(tables, **kwargs):
    """(Eq. 1 bytes, file bytes, raw bytes) summed over ``tables`` compressed with ``kwargs``."""
    eq1 = disk = raw = 0
    with TempDir() as tmp:
        for k, X in enumerate(tables):
            c = gedenb.compress(X, tau=TAU, **kwargs)
            eq1 += gedenb.eq1_bits(c) / 8
            disk += gedenb.save(c, tmp / f"table-{k}.gede")
            raw += c.raw_bytes
    return eq1, disk, raw


class _Ratios:
    """``track_`` ratios over ``setup_cache``'s ``{str(param): _sizes(...)}``."""

    def track_eq1_ratio(self, sizes, param):
        eq1, _, raw = sizes[str(param)]
        return eq1 / raw

    track_eq1_ratio.unit = "Eq.1 bytes / raw bytes"

    def track_disk_ratio(self, sizes, param):
        _, disk, raw = sizes[str(param)]
        return disk / raw

    track_disk_ratio.unit = "file bytes / raw bytes"


class CaliforniaRatios(_Ratios):
    """Storage ratios of California Housing (Eq. 1 includes the m condensed rows when beta is set)."""

    params = BETAS
    param_names = ["beta"]

    def setup_cache(self):
        X = california()
        return {str(beta): _sizes([X], beta=beta) for beta in BETAS}


class MnistCompress:
    """Compress MNIST train class-wise: ten tables, one per digit."""

    params = WIDTHS
    param_names = ["widths"]
    timeout = 300

    def setup(self, widths):
        self.classes = mnist_classes()
        warm_up(self.classes[0], widths=(widths,))

    def time_compress(self, widths):
        for X in self.classes:
            gedenb.compress(X, tau=TAU, widths=widths)

    def peakmem_compress(self, widths):
        for X in self.classes:
            gedenb.compress(X, tau=TAU, widths=widths)


class MnistDecompress:
    """Decompress MNIST train class-wise (the ten tables)."""

    params = WIDTHS
    param_names = ["widths"]
    timeout = 300

    def setup(self, widths):
        classes = mnist_classes()
        warm_up(classes[0], widths=(widths,), decompress=True)
        self.compressed = [gedenb.compress(X, tau=TAU, widths=widths) for X in classes]

    def time_decompress(self, widths):
        for c in self.compressed:
            gedenb.decompress(c)

    def peakmem_decompress(self, widths):
        for c in self.compressed:
            gedenb.decompress(c)


class MnistRatios(_Ratios):
    """Storage ratios of MNIST train class-wise: sums over the ten tables / raw bytes.

    The paper reports about 58% (Eq. 1, native widths, tau = 10).
    """

    params = WIDTHS
    param_names = ["widths"]
    timeout = 300

    def setup_cache(self):
        return cache_or_skip(lambda: {w: _sizes(mnist_classes(), widths=w) for w in WIDTHS})

    def setup(self, sizes, widths):
        check_cache(sizes)


class MixedCompress:
    """Compress the synthetic 1,000,000 x 16 mixed-dtype table (a structured array)."""

    params = BETAS
    param_names = ["beta"]
    timeout = 600

    def setup(self, beta):
        self.T = mixed()
        warm_up(self.T, beta=beta, rows=4096)

    def time_compress(self, beta):
        gedenb.compress(self.T, beta=beta, tau=TAU)

    def peakmem_compress(self, beta):
        gedenb.compress(self.T, beta=beta, tau=TAU)


class MixedDecompress:
    """Decompress the synthetic mixed-dtype table back into a structured array."""

    params = BETAS
    param_names = ["beta"]
    timeout = 600

    def setup(self, beta):
        T = mixed()
        warm_up(T, beta=beta, decompress=True, rows=4096)
        self.c = gedenb.compress(T, beta=beta, tau=TAU)

    def time_decompress(self, beta):
        gedenb.decompress(self.c)

    def peakmem_decompress(self, beta):
        gedenb.decompress(self.c)


class MixedRatios(_Ratios):
    """Storage of the synthetic mixed-dtype table: ratios to its raw bytes and the file size."""

    params = BETAS
    param_names = ["beta"]
    timeout = 600

    def setup_cache(self):
        T = mixed()
        return {str(beta): _sizes([T], beta=beta) for beta in BETAS}

    def track_disk_bytes(self, sizes, beta):
        return sizes[str(beta)][1]

    track_disk_bytes.unit = "bytes"


#: What a fresh interpreter does in ``ColdStart``: argv is (job, file).
COLD_START = r"""
import sys
import numpy as np
import gedenb
job, path = sys.argv[1], sys.argv[2]
if job == "table":
    X = np.random.default_rng(0).random((2000, 6))
    gedenb.save(gedenb.compress(X, beta=6), path)
    with gedenb.open(path) as r:
        assert r.read_rows(np.array([5, 1999, 0])).tobytes() == X[[5, 1999, 0]].tobytes()
else:
    with gedenb.open(path) as r:
        r.read_images(np.array([3]))
        r.read_images(np.arange(0, len(r), 7))
"""


class ColdStart:
    """A fresh interpreter with default settings (no environment variable of gedenb's or Numba's): import
    gedenb, then ``table``: compress a 2,000 x 6 table, save, open, read 3 rows; ``entropy-images``: open
    an entropy-coded image store (1,000 MNIST images, class-wise, ``coding="entropy"``) and read one image,
    then every 7th.

    ``warm-cache`` is what every process after the first on a machine gets: the on-disk kernel cache
    (on by default, the per-user folder) filled once in ``setup``.  ``no-cache`` (``GEDENB_NUMBA_CACHE=0``,
    table only) is the true cold start: every kernel on the path compiles.  In smoke mode both use the
    cache: the smoke test checks the subprocess plumbing, not the compiler.
    """

    params = (["table", "entropy-images"], ["warm-cache", "no-cache"])
    param_names = ["job", "kernel_cache"]
    number = 1
    repeat = 1
    rounds = 1
    warmup_time = 0
    timeout = 600

    def setup(self, job, kernel_cache):
        self.tmp = None
        if job == "entropy-images" and kernel_cache == "no-cache":
            raise NotImplementedError("no-cache is measured for the table job only (images compile ~40 s)")
        env = child_env()
        for name in ("GEDENB_NUMBA_CACHE", "GEDENB_CACHE", "NUMBA_CACHE_DIR", "NUMBA_THREADING_LAYER"):
            env.pop(name, None)  # default settings
        if kernel_cache == "no-cache" and not smoke():
            env["GEDENB_NUMBA_CACHE"] = "0"
        self.env = env
        self.tmp = TempDir()
        self.path = str(self.tmp.path / "cold.gede")
        if job == "entropy-images":
            from gedenb.images import compress_images

            x, y = mnist_images(1000)
            gedenb.save(compress_images(x, y, coding="entropy"), self.path)
        if kernel_cache == "warm-cache":
            self._run(job)  # fill the cache (a no-op where it is full already)

    def teardown(self, job, kernel_cache):
        if self.tmp is not None:  # asv tears down after a skip in setup too
            self.tmp.cleanup()

    def _run(self, job):
        subprocess.run([sys.executable, "-c", COLD_START, job, self.path], env=self.env, check=True,
                       stdout=subprocess.DEVNULL)

    def time_fresh_process(self, job, kernel_cache):
        self._run(job)
