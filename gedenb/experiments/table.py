"""A small, printable table of results."""

from __future__ import annotations

import warnings
from typing import NamedTuple

from .._optional import OptionalDependencyWarning, missing

__all__ = ["ResultTable", "no_figure_reason", "pyplot"]


def no_figure_reason() -> str | None:
    """Why no figure can be drawn (matplotlib is missing, and how to install it), or None when one can."""
    return missing("the figure", "matplotlib")


def pyplot(figure: bool):
    """``matplotlib.pyplot`` when ``figure`` is asked for and can be drawn, else None.

    An experiment calls it before its work starts; without matplotlib it
    warns (:class:`gedenb._optional.OptionalDependencyWarning`) and the
    experiment returns its table without a figure.

    Parameters
    ----------
    figure : bool
        Whether the caller draws a figure.
    """
    if not figure:
        return None
    reason = no_figure_reason()
    if reason is not None:
        warnings.warn(f"{reason}; the table comes without it", OptionalDependencyWarning, stacklevel=3)
        return None
    import matplotlib.pyplot as plt

    return plt


class ResultTable(NamedTuple):
    """Rows of numbers with column names, a title, notes and an optional figure.

    ``figure`` is a matplotlib Figure (or None); experiments import
    matplotlib lazily (:func:`pyplot`), only when asked for a figure, and
    return the table without one when matplotlib is not installed.
    """

    title: str
    columns: tuple
    rows: list
    notes: str = ""
    figure: object = None

    def to_markdown(self) -> str:
        def fmt(v):
            if isinstance(v, float):
                return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
            if isinstance(v, int):
                return f"{v:,}"
            return str(v)

        out = [f"**{self.title}**", "", "| " + " | ".join(self.columns) + " |",
               "|" + "---|" * len(self.columns)]
        out += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in self.rows]
        if self.notes:
            out += ["", self.notes]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.to_markdown()
