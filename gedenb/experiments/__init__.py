"""Reproductions of the paper's experiments: functions that return tables.

Each experiment is a function ``fn(*, out_dir=None, quick=False, figure=False, **kw)``
returning a :class:`ResultTable` (with a matplotlib figure when
``figure=True`` and matplotlib is installed; without it the experiment warns
and returns the table alone); ``out_dir`` is where it may write files,
``quick`` shrinks it to a smoke run.  The CLI ``python -m gedenb reproduce
NAME`` prints the table and saves the figure; the options it offers for
``**kw`` are declared beside each function with
:func:`gedenb.experiments.options.experiment` (``reproduce NAME --help``
lists them).  Registry: :data:`EXPERIMENTS`.
"""

from __future__ import annotations

from .images import image_storage, table1
from .logistic import fig11
from .regression import fig3, fig5a, fig5b, fig9, fig10
from .scatter import fig3b
from .storage import mnist_storage
from .table import ResultTable

#: name -> function(**kwargs) -> ResultTable
EXPERIMENTS = {
    "mnist-storage": mnist_storage,
    "fig3": fig3,
    "fig3b": fig3b,
    "fig5a": fig5a,
    "fig5b": fig5b,
    "fig9": fig9,
    "fig10": fig10,
    "fig11": fig11,
    "table1": table1,
    "image-storage": image_storage,
}

__all__ = ["EXPERIMENTS", "ResultTable", "fig3", "fig3b", "fig5a", "fig5b", "fig9", "fig10", "fig11", "mnist_storage",
           "table1", "image_storage"]
