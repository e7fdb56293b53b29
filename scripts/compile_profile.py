"""Where a fresh process spends its first-run compile time: Numba compilations per kernel (self time).

    GEDENB_NUMBA_CACHE=0 python scripts/compile_profile.py table
    GEDENB_NUMBA_CACHE=0 GEDENB_DATA=../shared/data python scripts/compile_profile.py mnist-entropy

``table``: compress a 2,000 x 6 random table, save, open, read rows (the ColdStart table job).
``mnist-entropy``: the first 3,000 MNIST training images compressed class-wise with
``coding="entropy"`` (written once, before timing), then one image and a batch read in this process.
With the on-disk cache on (the default) a second run prints no compilations: that is the cache working.
"""

from __future__ import annotations

import collections
import sys
import tempfile
import time
from pathlib import Path

from numba.core import event


class _SelfTime(event.Listener):
    """Seconds per kernel spent compiling it, not counting the kernels it compiled on the way."""

    def __init__(self):
        self.stack, self.seconds, self.count = [], collections.Counter(), collections.Counter()

    def on_start(self, e):
        self.stack.append([time.perf_counter(), 0.0])

    def on_end(self, e):
        start, inner = self.stack.pop()
        total = time.perf_counter() - start
        if self.stack:
            self.stack[-1][1] += total
        f = e.data["dispatcher"].py_func
        name = f"{f.__module__}.{f.__qualname__}"
        self.seconds[name] += total - inner
        self.count[name] += 1


def main(job: str) -> None:
    import numpy as np

    import gedenb

    folder = Path(tempfile.mkdtemp(prefix="gedenb-compile-"))
    path = folder / "job.gede"
    if job == "mnist-entropy":
        import subprocess

        code = ("import sys, gedenb; from gedenb.datasets import mnist; from gedenb.images import compress_images; "
                "x, y = mnist(); gedenb.save(compress_images(x[:3000], y[:3000], coding='entropy'), sys.argv[1])")
        subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    listener = _SelfTime()
    event.register("numba:compile", listener)
    t0 = time.perf_counter()
    if job == "table":
        X = np.random.default_rng(0).random((2000, 6))
        gedenb.save(gedenb.compress(X, beta=6), path)
        with gedenb.open(path) as r:
            r.read_rows(np.array([5, 1999, 0]))
    elif job == "mnist-entropy":
        with gedenb.open(path) as r:
            r.read_images(np.array([3]))
            r.read_images(np.arange(0, len(r), 3))
    else:
        raise SystemExit(f"unknown job {job!r}: table or mnist-entropy")
    wall = time.perf_counter() - t0
    print(f"{job}: {wall:.2f} s wall, {sum(listener.seconds.values()):.2f} s compiling, "
          f"{sum(listener.count.values())} compilations")
    for name, sec in listener.seconds.most_common(15):
        print(f"  {sec:7.2f} s  {listener.count[name]:3d}x  {name}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "table")
