"""Wide tables: compress time against the number of columns, entropy-coded and raw.

Data: 200 rows of ``d`` float64 columns, standard normal values rounded to
3 decimals (seed ``SEED``), ``d`` = 100, 1,000 and 10,000 (smoke mode: 40
rows, ``d / 100`` columns, at least 10).  ``coding="entropy"`` chooses every
digit's context by the size it gives at every step of the greedy base
search; since a step changes one column's digits, the context costs of the
others are kept (``gedenb.entropy.table_models._ContextCosts``), so its time grows
linearly with ``d``, as the raw coding's does (issue "Reliability round 2",
item 4: 40 x 2,500 took 128 s before).

* ``time_compress_entropy`` / ``time_compress_raw``: one ``compress`` each;
* ``track_entropy_over_raw``: the two times' ratio, measured in turn in one
  process (bar: < 10 at 10,000 columns);
* ``track_context_slots_per_column``: digit slots whose candidate contexts
  were costed during one entropy ``compress``, per column -- a count, not a
  time, that stays flat when the work is linear in ``d``.

``setup`` runs both codings once on the very table first, so no compile
time is timed.
"""

from __future__ import annotations

import time

import numpy as np

from ._common import SEED, gedenb, smoke

TAU = 10
ROWS = 200
SMOKE_ROWS = 40
COLUMNS = [100, 1000, 10000]


def wide_table(columns: int) -> np.ndarray:
    """``(200, columns)`` float64, normal values rounded to 3 decimals (smoke: ``(40, max(10, columns // 100))``)."""
    rows, d = (SMOKE_ROWS, max(10, columns // 100)) if smoke() else (ROWS, columns)
    return np.random.default_rng(SEED).normal(size=(rows, d)).round(3)


def _alternating_best(fa, fb, rounds: int = 3) -> tuple[float, float]:
    """Best single-call times of ``fa`` and ``fb`` (seconds), called in turn for ``rounds`` rounds (one in smoke
    mode), so that a slower spell of a shared machine falls on both.  For calls of a second or more, where
    ``_common.best_pair``'s many samples per round would take minutes."""
    ta = tb = float("inf")
    for _ in range(1 if smoke() else rounds):
        t0 = time.perf_counter()
        fa()
        ta = min(ta, time.perf_counter() - t0)
        t0 = time.perf_counter()
        fb()
        tb = min(tb, time.perf_counter() - t0)
    return ta, tb


class EntropyWideTables:
    """Compress a 200-row table of 100 / 1,000 / 10,000 float64 columns, ``coding="entropy"`` and ``"raw"``."""

    params = COLUMNS
    param_names = ["columns"]
    timeout = 600

    def setup(self, columns):
        self.X = wide_table(columns)
        self.entropy()  # compile every kernel either coding takes on this table (sizes pick kernels): not timed
        self.raw()

    def entropy(self):
        return gedenb.compress(self.X, tau=TAU, coding="entropy")

    def raw(self):
        return gedenb.compress(self.X, tau=TAU, coding="raw")

    def time_compress_entropy(self, columns):
        self.entropy()

    def time_compress_raw(self, columns):
        self.raw()

    def track_entropy_over_raw(self, columns):
        """Entropy-coded compress time over raw-coded compress time (bar at 10,000 columns: < 10)."""
        te, tr = _alternating_best(self.entropy, self.raw)
        return te / tr

    track_entropy_over_raw.unit = "entropy time / raw time"

    def track_context_slots_per_column(self, columns):
        """Digit slots whose candidate contexts one entropy-coded compress costs, per column."""
        from gedenb.entropy import table_models

        before = table_models._WORK["context_slots"]
        self.entropy()
        return (table_models._WORK["context_slots"] - before) / self.X.shape[1]

    track_context_slots_per_column.unit = "slots / column"
