"""Exceptions raised by gedenb."""

from __future__ import annotations

__all__ = ["FormatError"]


class FormatError(ValueError):
    """A ``.gede`` file (or stream in it) is malformed, truncated or corrupt.

    The message names the section where the problem was found.
    """
