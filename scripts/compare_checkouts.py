"""Compress and read timings of two gedenb checkouts, measured in alternating fresh processes.

For checking that a change of structure (not of algorithm) costs no speed:
each round runs one process per checkout (``PYTHONPATH`` set to it), each
process times the same jobs (best of several calls after a warm-up call),
and the report gives, per job, the best over the rounds of each checkout
and their ratio.  Alternating rounds make a slow spell of a shared machine
fall on both sides.

    GEDENB_DATA=../shared/data python scripts/compare_checkouts.py OLD_CHECKOUT NEW_CHECKOUT [--rounds 3]

Jobs: compress one MNIST class (class 3, 6,131 x 784 uint8; narrow and
native widths), California Housing (beta 12; raw bits and entropy-coded),
and random-row reads of 1 / 128 / 1,024 rows from the saved stores (MNIST
class 3 raw bits and entropy-coded, California raw and entropy-coded).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile


def _best(f, calls: int) -> float:
    import time

    f()
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(folder: str) -> dict:
    """The jobs' best times (seconds) in this process."""
    import numpy as np

    import gedenb
    from gedenb.datasets import california_housing, mnist

    x, y = mnist()
    M = x[y == 3].reshape(int((y == 3).sum()), -1)
    X = california_housing().data
    rng = np.random.default_rng(0)
    out = {}
    jobs = {"mnist3 narrow": (M, {}), "mnist3 native": (M, {"widths": "native"}),
            "mnist3 entropy": (M[:3000], {"coding": "entropy", "image_shape": (28, 28)}),
            "california raw": (X, {"beta": 12}), "california entropy": (X, {"beta": 12, "coding": "entropy"})}
    for name, (data, kw) in jobs.items():
        if name != "mnist3 entropy":
            out[f"compress {name}"] = _best(lambda: gedenb.compress(data, **kw), 10 if "entropy" not in name else 3)
        path = os.path.join(folder, name.replace(" ", "_") + ".gede")
        gedenb.save(gedenb.compress(data, **kw), path)
        reader = gedenb.open(path)
        for k in (1, 128, 1024):
            idx = rng.integers(0, len(data), k)
            out[f"read {k} {name}"] = _best(lambda: reader.read_rows(idx), 200 if k < 1024 else 50)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    runs = {"old": [], "new": []}
    for _ in range(a.rounds):
        for side in ("old", "new"):
            with tempfile.TemporaryDirectory() as tmp:
                env = dict(os.environ, PYTHONPATH=os.path.abspath(getattr(a, side)))
                code = f"import sys, json; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); " \
                       f"import compare_checkouts as c; print(json.dumps(c.measure({tmp!r})))"
                res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
                runs[side].append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(f"| job | old (best of {a.rounds}) | new (best of {a.rounds}) | new / old |\n|---|---:|---:|---:|")
    for job in runs["old"][0]:
        old = min(r[job] for r in runs["old"])
        new = min(r[job] for r in runs["new"])
        print(f"| {job} | {old * 1e3:.3f} ms | {new * 1e3:.3f} ms | {new / old:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
