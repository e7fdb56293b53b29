"""Shared data, warm-up and timing helpers of the gedenb asv suite.

This module defines no benchmarks.  It is imported first by every benchmark
module, and it

* relies on gedenb's on-disk kernel cache (on by default): asv runs every
  benchmark in its own process, and without the cache each of them would
  spend 10-20 s recompiling the kernels in ``setup``.  Compile time is never
  timed either way (see :func:`warm_up`); it is measured on its own by
  ``bench_compress.ColdStart``;
* loads the data sets once per process (MNIST class-wise buffers, California
  Housing, the synthetic mixed-dtype table), raising :class:`NotImplementedError` -- asv's "skip" -- when the
  MNIST files are not available (``GEDENB_DATA`` unset or missing);
* shrinks every data set when ``GEDENB_BENCH_SMOKE`` is set (the pytest
  smoke test runs each benchmark once on small data that way).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import gedenb
from gedenb import datasets

__all__ = [
    "MNIST_CLASS",
    "ROW_COUNTS",
    "SEED",
    "TempDir",
    "best_of",
    "best_seconds",
    "cache_or_skip",
    "check_cache",
    "child_env",
    "california",
    "gedenb",
    "mixed",
    "mnist_class",
    "mnist_classes",
    "mnist_images",
    "random_rows",
    "smoke",
    "warm_up",
]

#: Seed of every random choice in the suite (row indices, dictionary samples).
SEED = 20240611
#: Numbers of random rows decoded by the random-access benchmarks.
ROW_COUNTS = [1, 128, 1024]
#: The MNIST class of the random-access benchmarks (any would do; digit 3 has
#: 6,131 training images).
MNIST_CLASS = 3

#: Rows kept per MNIST class / of California Housing in smoke mode.
SMOKE_MNIST_ROWS = 256
SMOKE_CALIFORNIA_ROWS = 2048
#: Rows of the synthetic mixed-dtype table (``datasets.synthetic_mixed``), full and in smoke mode.
MIXED_ROWS = 1_000_000
SMOKE_MIXED_ROWS = 4096


def smoke() -> bool:
    """True when ``GEDENB_BENCH_SMOKE`` is set (tiny data, one quick pass)."""
    return bool(os.environ.get("GEDENB_BENCH_SMOKE"))


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _mnist_train(root: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = datasets.mnist(train=True, root=root)
    return x.reshape(len(x), -1), y


def _mnist_or_skip() -> tuple[np.ndarray, np.ndarray]:
    try:
        return _mnist_train(str(datasets.data_root()))
    except (FileNotFoundError, ValueError) as e:
        raise NotImplementedError(f"MNIST benchmarks need GEDENB_DATA pointing at shared/data: {e}") from None


def mnist_class(k: int) -> np.ndarray:
    """The images of digit ``k`` from MNIST train, ``(n_k, 784)`` uint8 (see :func:`mnist_classes`)."""
    X, y = _mnist_or_skip()
    out = np.ascontiguousarray(X[y == k])
    return np.ascontiguousarray(out[:SMOKE_MNIST_ROWS]) if smoke() else out


def mnist_classes() -> list[np.ndarray]:
    """MNIST train as 10 C-contiguous ``(n_k, 784)`` uint8 buffers, class 0..9.

    Raises
    ------
    NotImplementedError
        When ``GEDENB_DATA`` is unset or does not hold MNIST (asv then
        reports the benchmark as skipped).
    """
    X, y = _mnist_or_skip()
    classes = [np.ascontiguousarray(X[y == k]) for k in range(10)]
    if smoke():
        classes = [np.ascontiguousarray(c[:SMOKE_MNIST_ROWS]) for c in classes]
    return classes


def mnist_images(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` MNIST train images ``(n, 28, 28)`` uint8 and their labels (100 in smoke mode)."""
    X, y = _mnist_or_skip()
    n = min(n, 100) if smoke() else n
    return np.ascontiguousarray(X[:n].reshape(n, 28, 28)), np.ascontiguousarray(y[:n])


def child_env() -> dict:
    """Environment of a child interpreter that imports the very gedenb this process benchmarks (its folder
    on ``PYTHONPATH`` unless it is a site folder the child finds anyway)."""
    import site

    env = dict(os.environ)
    src = Path(gedenb.__file__).resolve().parent.parent
    sites = {Path(p).resolve() for p in site.getsitepackages() + [site.getusersitepackages()]}
    if src not in sites:
        env["PYTHONPATH"] = os.pathsep.join([str(src)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


@functools.lru_cache(maxsize=None)
def _california() -> np.ndarray:
    return datasets.california_housing().data


def california() -> np.ndarray:
    """California Housing, ``(20640, 9)`` float64 (the target is the last column)."""
    X = _california()
    if smoke():
        X = X[:SMOKE_CALIFORNIA_ROWS]
    return np.ascontiguousarray(X)


@functools.lru_cache(maxsize=None)
def _mixed(n: int) -> np.ndarray:
    return datasets.synthetic_mixed(n, seed=0)


def mixed() -> np.ndarray:
    """The synthetic mixed-dtype table: 1,000,000 x 16 fields, 60 bytes per row (a structured array)."""
    return _mixed(SMOKE_MIXED_ROWS if smoke() else MIXED_ROWS)


def random_rows(n: int, k: int, seed: int = SEED) -> np.ndarray:
    """``min(k, n)`` distinct row numbers in ``[0, n)``, sorted, int64, reproducible."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(k, n), replace=False)).astype(np.int64)


# --------------------------------------------------------------------------
# warm-up: compile time is not run time
# --------------------------------------------------------------------------
def warm_up(X: np.ndarray, *, widths=("narrow",), beta=None, decompress: bool = False,
            read: bool = False, rows: int = 256) -> None:
    """Run the kernels of the measured path once on a small sample of ``X``.

    Numba compiles one specialisation per argument type, so the sample keeps
    ``X``'s dtype and is spread over the whole table (so that the column
    codecs, hence the code dtypes, match the ones of the full data).  It
    always runs compress (also with clustering when ``beta`` is given);
    ``decompress`` adds decompress, ``read`` adds save, open (with its
    verification pass) and ``read_rows`` through both the serial and the
    parallel decode kernels.  Only the kernels a benchmark needs are warmed,
    since even loading them from Numba's cache takes time in every process.
    """
    X = np.asarray(X)
    sample = np.ascontiguousarray(X[np.linspace(0, len(X) - 1, min(rows, len(X))).astype(np.int64)])
    betas = [None] if beta is None else [None, beta]
    with TempDir() as tmp:
        for w in widths:
            for b in betas:
                c = gedenb.compress(sample, beta=b, tau=10, widths=w)
                if decompress:
                    gedenb.decompress(c)
                if read:
                    path = tmp / "warm.gede"
                    gedenb.save(c, path)
                    r = gedenb.open(path)
                    r.read_rows(np.zeros(1, dtype=np.int64))  # serial kernel
                    # enough values for the parallel kernel (repeats are allowed)
                    r.read_rows(np.zeros(65536 // c.d + 1, dtype=np.int64))
                    r.close()
                del c


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def cache_or_skip(build):
    """Result of ``build()`` for a ``setup_cache``, or ``{"skip": reason}``.

    asv reports a ``setup_cache`` that raises as failed; a data set or
    library that is missing must be a skip instead, so the reason travels in
    the cache and :func:`check_cache` raises ``NotImplementedError`` in
    ``setup`` (asv's skip).
    """
    try:
        return build()
    except NotImplementedError as e:
        return {"skip": str(e)}


def check_cache(cache) -> None:
    """Skip (``NotImplementedError``) when ``setup_cache`` could not build its data."""
    if isinstance(cache, dict) and "skip" in cache:
        raise NotImplementedError(cache["skip"])


class TempDir:
    """A temporary folder as a :class:`~pathlib.Path`; removed by :meth:`cleanup`."""

    def __init__(self):
        self.path = Path(tempfile.mkdtemp(prefix="gedenb-asv-"))

    def __truediv__(self, name) -> Path:
        return self.path / name

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


def best_seconds(fn, *, sample_time: float = 2e-4, budget: float = 0.25, max_repeat: int = 200) -> float:
    """Best wall time of one call of ``fn`` (seconds), ``timeit``-style.

    One untimed call; then the calls per sample double until a sample lasts
    ``sample_time``; then as many samples as fit in ``budget`` (at least 7,
    at most ``max_repeat``) and the best one, divided by the calls per
    sample.  Many short samples make the minimum robust to other processes
    taking the CPU for a while.  Used by the ``track_`` benchmarks that
    report throughputs from one process.
    """
    fn()
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        dt = time.perf_counter() - t0
        if dt >= sample_time or number >= 1 << 20:
            break
        number *= 2
    repeat = 1 if smoke() else min(max_repeat, max(7, int(budget / max(dt, 1e-9))))
    best = dt / number
    for _ in range(repeat - 1):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def best_pair(fa, fb, rounds: int = 8) -> tuple[float, float]:
    """Best times of ``fa`` and ``fb`` (seconds), the two measured in turn for ``rounds`` rounds
    (:func:`best_seconds` with a ``1/rounds`` share of its budget each time), so that a slower or faster
    spell of a shared machine falls on both sides instead of on one of them."""
    ta = tb = float("inf")
    for _ in range(1 if smoke() else rounds):
        ta = min(ta, best_seconds(fa, budget=0.25 / rounds))
        tb = min(tb, best_seconds(fb, budget=0.25 / rounds))
    return ta, tb


def best_ratio(fa, fb, rounds: int = 8) -> float:
    """``fa``'s best time over ``fb``'s, measured in turn (:func:`best_pair`)."""
    ta, tb = best_pair(fa, fb, rounds)
    return ta / tb


def best_of(fn, repeat: int = 5) -> float:
    """Best wall time of ``repeat`` single calls of ``fn`` after one untimed call (seconds).

    For operations long enough (tenths of a second and up) that one call is
    one sample; smoke mode times a single call.
    """
    fn()
    if smoke():
        repeat = 1
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
