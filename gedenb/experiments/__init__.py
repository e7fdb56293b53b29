"""Reproductions of the paper's experiments: functions that return tables.

Each experiment is a function ``fn(*, out_dir=None, quick=False, figure=False, **kw)``
returning a :class:`ResultTable` (with a matplotlib figure when
``figure=True``); ``out_dir`` is where it may write files, ``quick`` shrinks
it to a smoke run.  The CLI ``python -m gedenb reproduce NAME`` prints the
table and saves the figure.  Registry: :data:`EXPERIMENTS`.
"""

from __future__ import annotations

from .storage import mnist_storage
from .table import ResultTable

#: name -> function(**kwargs) -> ResultTable
EXPERIMENTS = {
    "mnist-storage": mnist_storage,
}

__all__ = ["EXPERIMENTS", "ResultTable", "mnist_storage"]
