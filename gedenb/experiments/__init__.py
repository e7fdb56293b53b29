"""Reproductions of the paper's experiments: functions that return tables.

Each experiment is a function returning a :class:`ResultTable`; the CLI
``python -m gedenb reproduce NAME`` prints it.  Registry: :data:`EXPERIMENTS`.
"""

from __future__ import annotations

from .storage import mnist_storage
from .table import ResultTable

#: name -> function(**kwargs) -> ResultTable
EXPERIMENTS = {
    "mnist-storage": mnist_storage,
}

__all__ = ["EXPERIMENTS", "ResultTable", "mnist_storage"]
