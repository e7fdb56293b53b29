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
``ColdStart`` measures it separately in a fresh interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ._common import TempDir, cache_or_skip, california, check_cache, gedenb, mixed, mnist_classes, smoke, warm_up

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


COLD_START = "import gedenb, numpy as np; gedenb.compress(np.arange(100).reshape(50, 2))"


class ColdStart:
    """A fresh interpreter: import gedenb and compress a 50 x 2 table.

    ``no-cache`` is the true cold start (every kernel on the path compiles);
    ``cache`` reuses Numba's on-disk cache (``GEDENB_NUMBA_CACHE=1``),
    populated once in ``setup``.  In smoke mode both use the cache: the
    smoke test checks the subprocess plumbing, not the compiler.
    """

    params = ["no-cache", "cache"]
    param_names = ["numba_cache"]
    number = 1
    repeat = 1
    rounds = 1
    warmup_time = 0
    timeout = 300

    def setup(self, numba_cache):
        env = dict(os.environ)
        use_cache = numba_cache == "cache" or smoke()
        env["GEDENB_NUMBA_CACHE"] = "1" if use_cache else "0"
        # the child imports the very gedenb this process benchmarks
        src = str(Path(gedenb.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join([src] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        self.env = env
        if numba_cache == "cache" and not smoke():
            self._run()  # populate the cache

    def _run(self):
        subprocess.run([sys.executable, "-c", COLD_START], env=self.env, check=True,
                       stdout=subprocess.DEVNULL)

    def time_import_and_compress(self, numba_cache):
        self._run()
