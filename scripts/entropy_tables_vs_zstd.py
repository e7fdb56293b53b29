"""Issue 7, tables: gedenb ``coding="entropy"`` file bytes vs zstd -19 on the whole raw array.

The same call as the asv class ``bench_peers.EntropyTables``:
``gedenb.compress(X, coding="entropy")`` (``beta=None``, ``tau=10``) on
``datasets.NAME().data``, the ``.gede`` file bytes (``store.to_bytes``) and
``zstandard.ZstdCompressor(level=19).compress(X.tobytes())``, each over
``X.nbytes``.  Also checks the round trip bit for bit, in memory and through
a saved file read row by row.

Run::

    GEDENB_DATA=/work/shared/data python scripts/entropy_tables_vs_zstd.py [NAME ...]
"""

import os
import sys
import tempfile
import time

import numpy as np
import zstandard

import gedenb
from gedenb import datasets
from gedenb.store import to_bytes

NAMES = ["california_housing", "credit_default", "ijcnn1"]


def main(names):
    for name in names:
        X = np.ascontiguousarray(getattr(datasets, name)().data)
        t0 = time.perf_counter()
        c = gedenb.compress(X, coding="entropy")
        seconds = time.perf_counter() - t0
        gede = len(to_bytes(c))
        zstd = len(zstandard.ZstdCompressor(level=19).compress(X.tobytes()))
        assert gedenb.decompress(c).tobytes() == X.tobytes()
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "t.gede")
            gedenb.save(c, path)
            with gedenb.open(path) as r:
                rows = np.random.default_rng(0).integers(0, len(X), 1000)
                assert all(r[int(i)].tobytes() == X[i].tobytes() for i in rows[:200])
                assert r.read_rows(rows).tobytes() == X[rows].tobytes()
        what = c.predict.describe() if c.predict is not None else "no transform"
        print(f"{name} {X.shape}: gedenb {gede:,} B ({gede / X.nbytes:.4f} of raw), zstd-19 {zstd:,} B "
              f"({zstd / X.nbytes:.4f}), gedenb / zstd-19 = {gede / zstd:.4f}; compress {seconds:.1f} s; {what}",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or NAMES)
