"""A small, printable table of results."""

from __future__ import annotations

from typing import NamedTuple


class ResultTable(NamedTuple):
    """Rows of numbers with column names, a title, notes and an optional figure.

    ``figure`` is a matplotlib Figure (or None); experiments import
    matplotlib lazily, only when asked for a figure.
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
