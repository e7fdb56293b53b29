"""Checks and normal forms of the arguments of :func:`gedenb.compress` and :func:`gedenb.dask.compress`.

Tables given as DataFrames or lists of rows, columns named by index or
name, integer options: each check raises the error the user sees, so both
compressors (and :func:`gedenb.learning_set`, for column names) share them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_int", "column_list", "column_resolver", "frame_input", "target_fields"]


def frame_input(X):
    """A DataFrame / Arrow table as its physical table and frame schema; a list of rows as an array.

    Parameters
    ----------
    X : table
        Anything :func:`gedenb.compress` takes.

    Returns
    -------
    table : array or the input unchanged
        The physical table of a frame (:func:`gedenb.frames.from_frame`),
        a list of rows or an array-like as an array, anything else as given
        (:func:`gedenb.encode.as_table` checks it).
    frame : gedenb.frames.FrameSchema or None
        The schema of a frame; None otherwise.
    """
    from .frames import frame_kind, from_frame

    if frame_kind(X) is not None:
        return from_frame(X)
    if isinstance(X, (list, tuple)):
        a = np.asarray(X)
        if a.dtype == object or a.dtype.kind in "USV":
            raise TypeError(f"a list of rows must hold numbers only, got {a.dtype}; use a pandas DataFrame "
                            "for text columns")
        return a, None
    if not isinstance(X, np.ndarray) and hasattr(X, "__array__") and not hasattr(X, "keys"):
        return np.asarray(X), None
    return X, None


def column_resolver(X: np.ndarray, frame, d: int):
    """``resolve(v, what) -> physical column index`` for a column given by index or name.

    For a DataFrame both refer to its own columns (the position and the name
    of a column), mapped to the field holding its values; otherwise to the
    table's columns (names: the fields of a structured table).  ``what``
    names the argument in the error raised for a column that is not there.

    Parameters
    ----------
    X : array
        The physical table (only its dtype's field names are read).
    frame : gedenb.frames.FrameSchema or None
        Its frame schema.
    d : int
        Its number of columns.
    """
    names = frame.logical_names if frame is not None else X.dtype.names
    count = len(names) if frame is not None else d

    def resolve(v, what: str) -> int:
        if isinstance(v, str):
            if names is None or v not in names:
                raise ValueError(f"{what}: no column named {v!r}" + (f" (columns: {', '.join(names)})" if names
                                                                      else "; this table's columns have no names"))
            j = names.index(v)
        elif isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            j = int(v)
            if not -count <= j < count:
                raise ValueError(f"{what}: column {j} is out of range for {count} columns")
            j %= count
        else:
            raise TypeError(f"{what} must be a column index or name, got {v!r}")
        return frame.columns[j].field if frame is not None else j

    return resolve


def target_fields(frame, targets: tuple) -> set:
    """The targets and, in a DataFrame, their null masks.

    Parameters
    ----------
    frame : gedenb.frames.FrameSchema or None
        The table's frame schema.
    targets : tuple of int
        Physical target columns.
    """
    masks = set() if frame is None else {c.nulls for c in frame.columns if c.field in targets and c.nulls >= 0}
    return set(targets) | masks


def column_list(spec, resolve, what: str) -> tuple:
    """``spec`` as a tuple of distinct physical columns.

    Parameters
    ----------
    spec : None, int, str or a sequence of them
        The columns (None: none).
    resolve : callable
        From :func:`column_resolver`.
    what : str
        The argument's name, for the errors.
    """
    if spec is None:
        return ()
    items = [spec] if isinstance(spec, (str, int, np.integer)) else list(spec)
    out = [resolve(v, what) for v in items]
    if len(set(out)) != len(out) or not out:
        raise ValueError(f"{what}: columns must be distinct and at least one")
    return tuple(out)


def check_int(v, name: str, lo: int) -> int:
    """``v`` as an int, checked to be an integer (not a bool) of at least ``lo``.

    Parameters
    ----------
    v : object
        The value given.
    name : str
        The argument's name, for the errors.
    lo : int
        The smallest value allowed.
    """
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return int(v)
