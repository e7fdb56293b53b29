"""Tables as users hold them: pandas and polars DataFrames, Arrow tables <-> gedenb's physical tables.

gedenb compresses a *physical* table: a NumPy structured array of numeric and
bool fields.  A DataFrame or an Arrow table becomes one through Arrow (pandas
and polars both convert to Arrow losslessly, their own dtypes recorded in the
schema's metadata), one logical column at a time:

=====================================  ==============================================================
logical column (Arrow type)            physical field(s)
=====================================  ==============================================================
int8 .. uint64, float16/32/64, bool    the same dtype, value for value (NaN payloads, -0.0 kept)
timestamp, date, time, duration        their integer storage (int64, or int32 for date32/time32)
dictionary (pandas/polars categorical) its indices; the dictionary (categories, in order) is stored
string, binary (any width)             int32 codes of a dictionary in first-appearance order, stored
any column with nulls                  + a bool field ``<name>.null`` (True = null; value 0 there)
=====================================  ==============================================================

A null is kept apart from a NaN (a float column can hold both).  The Arrow
schema (with pandas' / polars' metadata), the column plan and the
dictionaries form a :class:`FrameSchema`, stored in the file (section FRAM,
docs/FORMAT.md), so that a frame comes back with the same names, dtypes,
categories, time zones and nulls.  NumPy stays the default result: without
``as_frame`` gedenb returns the physical structured array.

pandas, polars and pyarrow are optional (``pip install "gedenb[frames]"``);
this module imports them only when a frame is given or asked for.
"""

from __future__ import annotations

import json
import struct
from typing import NamedTuple

import numpy as np

from .errors import FormatError

__all__ = ["FRAME_KINDS", "FrameColumn", "FrameSchema", "frame_kind", "from_frame", "plain_frame", "to_frame"]

#: What a frame can be read back as (``as_frame=``).
FRAME_KINDS = ("pandas", "polars", "arrow")
#: How a logical column is stored: ``plain`` (its values), ``dictionary`` (the indices of an Arrow dictionary
#: column), ``encoded`` (a string / binary column gedenb dictionary-encoded).
STORAGES = ("plain", "dictionary", "encoded")

_MAGIC = b"GFRM"
_VERSION = 1
_HEAD = struct.Struct("<4sIII")  # magic, version, JSON bytes, number of blobs


class FrameColumn(NamedTuple):
    """One logical column: its name, how it is stored, its physical fields and its dictionary."""

    name: str
    storage: str
    field: int  # the value field (or dictionary indices / codes)
    nulls: int  # the bool null-mask field, or -1 (no nulls in the data)
    dictionary: int  # index into FrameSchema.dictionaries, or -1


class FrameSchema(NamedTuple):
    """How a physical table maps back to the frame it came from.

    Attributes
    ----------
    kind : {"pandas", "polars", "arrow"}
        What the table was given as (the default of ``as_frame=True``).
    schema : pyarrow.Schema
        The logical schema, with pandas' or polars' metadata.
    columns : tuple of FrameColumn
        One per logical column, in the schema's order.
    dictionaries : tuple of pyarrow.Array
        The stored dictionaries (categories; values of encoded string columns).
    """

    kind: str
    schema: object
    columns: tuple
    dictionaries: tuple

    @property
    def logical_names(self) -> tuple:
        return tuple(col.name for col in self.columns)

    def feature_fields(self) -> list:
        """Physical fields that hold numbers a model can use: plain columns' values (not null masks, not
        dictionary indices or string codes)."""
        return [col.field for col in self.columns if col.storage == "plain"]

    def to_bytes(self) -> bytes:
        """The FRAM section's payload: header, JSON column plan, then the Arrow IPC schema and one Arrow IPC
        stream per dictionary, each as ``u64 length | bytes | zero padding to 8``."""
        pa = _pyarrow()
        blobs = [self.schema.serialize().to_pybytes()]
        for values in self.dictionaries:
            sink = pa.BufferOutputStream()
            table = pa.table({"values": values})
            with pa.ipc.new_stream(sink, table.schema) as w:
                w.write_table(table)
            blobs.append(sink.getvalue().to_pybytes())
        plan = json.dumps({"kind": self.kind, "columns": [list(c) for c in self.columns]},
                          separators=(",", ":"), ensure_ascii=True).encode()
        out = [_HEAD.pack(_MAGIC, _VERSION, len(plan), len(blobs)), plan, b"\0" * (-len(plan) % 8)]
        for b in blobs:
            out += [struct.pack("<Q", len(b)), b, b"\0" * (-len(b) % 8)]
        return b"".join(out)

    @classmethod
    def from_bytes(cls, raw: bytes, dtype: np.dtype) -> "FrameSchema":
        """Parse and check a FRAM payload against the physical table's ``dtype``.

        Parameters
        ----------
        raw : bytes
            The FRAM section's payload.
        dtype : numpy dtype
            The physical table's structured dtype.

        Raises
        ------
        FormatError
            Anything malformed or inconsistent with ``dtype``.
        MissingDependency
            pyarrow is not installed.
        """
        pa = _pyarrow()
        plan, blobs = _split(raw)
        try:
            kind = plan["kind"]
            columns = tuple(FrameColumn(str(c[0]), str(c[1]), int(c[2]), int(c[3]), int(c[4]))
                            for c in plan["columns"])
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise FormatError(f"FRAM: malformed column plan ({e})") from None
        if kind not in FRAME_KINDS:
            raise FormatError(f"FRAM: unknown frame kind {kind!r}")
        try:
            schema = pa.ipc.read_schema(pa.py_buffer(blobs[0]))
            dictionaries = []
            for b in blobs[1:]:
                t = pa.ipc.open_stream(pa.py_buffer(b)).read_all()
                if t.num_columns != 1:
                    raise ValueError("a dictionary stream must hold one column")
                dictionaries.append(t.column(0).combine_chunks())
        except (pa.ArrowException, ValueError, OSError) as e:
            raise FormatError(f"FRAM: malformed Arrow data ({e})") from None
        out = cls(kind, schema, columns, tuple(dictionaries))
        _check_plan(out, dtype)
        return out


def _pyarrow():
    from ._optional import require

    require("frames", "pyarrow")
    import pyarrow as pa
    import pyarrow.ipc  # noqa: F401

    return pa


def _split(raw: bytes):
    """The FRAM payload's JSON plan and blobs, with every length checked against the payload."""
    if len(raw) < _HEAD.size:
        raise FormatError("FRAM: payload too short")
    magic, version, plan_len, n_blobs = _HEAD.unpack_from(raw)
    if magic != _MAGIC:
        raise FormatError("FRAM: bad magic bytes")
    if version != _VERSION:
        raise FormatError(f"FRAM: frame schema version {version} is not supported (this gedenb reads {_VERSION})")
    pos = _HEAD.size
    if plan_len > len(raw) - pos or n_blobs < 1 or n_blobs > (len(raw) - pos) // 8:
        raise FormatError("FRAM: lengths run past the payload")
    try:
        plan = json.loads(raw[pos:pos + plan_len])
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"FRAM: malformed column plan ({e})") from None
    if not isinstance(plan, dict):
        raise FormatError("FRAM: malformed column plan")
    pos += plan_len + (-plan_len % 8)
    blobs = []
    for _ in range(n_blobs):
        if pos + 8 > len(raw):
            raise FormatError("FRAM: blob header past the payload")
        (nbytes,) = struct.unpack_from("<Q", raw, pos)
        pos += 8
        if nbytes > len(raw) - pos:
            raise FormatError("FRAM: blob runs past the payload")
        blobs.append(raw[pos:pos + nbytes])
        pos += nbytes + (-nbytes % 8)
    if pos != len(raw):
        raise FormatError("FRAM: unexpected bytes after the last blob")
    return plan, blobs


def _check_plan(fs: FrameSchema, dtype: np.dtype) -> None:
    """Every logical column maps to distinct physical fields of the right dtype, and back to its Arrow type."""
    pa = _pyarrow()
    names = dtype.names or ()
    if len(fs.columns) != len(fs.schema) or [f.name for f in fs.schema] != [c.name for c in fs.columns]:
        raise FormatError("FRAM: the column plan and the schema name different columns")
    used = set()
    for col in fs.columns:
        if col.storage not in STORAGES:
            raise FormatError(f"FRAM: column {col.name!r} has unknown storage {col.storage!r}")
        for f in (col.field,) + ((col.nulls,) if col.nulls >= 0 else ()):
            if not 0 <= f < len(names) or f in used:
                raise FormatError(f"FRAM: column {col.name!r} names field {f}, missing or used twice")
            used.add(f)
        if col.nulls >= 0 and dtype.fields[names[col.nulls]][0] != np.dtype(np.bool_):
            raise FormatError(f"FRAM: null mask of column {col.name!r} is not a bool field")
        want_dict = col.storage != "plain"
        if want_dict != (0 <= col.dictionary < len(fs.dictionaries)) or (not want_dict and col.dictionary != -1):
            raise FormatError(f"FRAM: column {col.name!r} has a bad dictionary index {col.dictionary}")
        atype = fs.schema.field(col.name).type
        try:
            expect = _field_dtype(atype, col.storage)
        except TypeError as e:
            raise FormatError(f"FRAM: column {col.name!r}: {e}") from None
        got = dtype.fields[names[col.field]][0]
        if got != expect:
            raise FormatError(f"FRAM: column {col.name!r} ({atype}) is stored as {got}, expected {expect}")
        if col.storage == "dictionary" and not fs.dictionaries[col.dictionary].type.equals(atype.value_type):
            raise FormatError(f"FRAM: the dictionary of column {col.name!r} has the wrong type")
        if col.storage == "encoded" and not (pa.types.is_string(fs.dictionaries[col.dictionary].type)
                                             or pa.types.is_large_string(fs.dictionaries[col.dictionary].type)
                                             or pa.types.is_binary(fs.dictionaries[col.dictionary].type)
                                             or pa.types.is_large_binary(fs.dictionaries[col.dictionary].type)):
            raise FormatError(f"FRAM: the dictionary of column {col.name!r} is not strings or bytes")
    if len(used) != len(names):
        raise FormatError("FRAM: some physical fields belong to no column")


# --------------------------------------------------------------------------
# frames in
# --------------------------------------------------------------------------
def frame_kind(obj) -> str | None:
    """``"pandas"``, ``"polars"`` or ``"arrow"`` for a DataFrame / Arrow table or record batch, else None
    (without importing any of those libraries).

    Parameters
    ----------
    obj : object
        Anything.
    """
    mod = type(obj).__module__.split(".")[0]
    name = type(obj).__name__
    if mod == "pandas" and name == "DataFrame":
        return "pandas"
    if mod == "polars" and name == "DataFrame":
        return "polars"
    if mod == "pyarrow" and name in ("Table", "RecordBatch"):
        return "arrow"
    return None


def _to_arrow(obj, kind: str):
    pa = _pyarrow()
    if kind == "pandas":
        if not all(isinstance(c, str) for c in obj.columns):
            raise TypeError("DataFrame column names must be strings; rename them, e.g. df.columns = "
                            "[str(c) for c in df.columns]")
        try:
            table = pa.Table.from_pandas(obj, preserve_index=None)
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise TypeError(f"cannot convert this DataFrame losslessly: {e}") from None
        # Arrow takes a NaN in a NumPy float column for a null (pandas' own reading of it); gedenb keeps the
        # NaN, payload and all: such columns go over as they are
        for name, dtype in obj.dtypes.items():
            if isinstance(dtype, np.dtype) and dtype.kind == "f":
                i = table.schema.get_field_index(name)
                table = table.set_column(i, table.schema.field(i), pa.array(obj[name].to_numpy(), from_pandas=False))
        return table
    if kind == "polars":
        return obj.to_arrow()
    if type(obj).__name__ == "RecordBatch":
        return pa.Table.from_batches([obj])
    return obj


def _field_dtype(atype, storage: str) -> np.dtype:
    """The physical field dtype of a logical column of Arrow type ``atype``."""
    pa = _pyarrow()
    t = pa.types
    if storage == "encoded":
        return np.dtype(np.int32)
    if storage == "dictionary":
        return np.dtype(atype.index_type.to_pandas_dtype())
    if t.is_boolean(atype):
        return np.dtype(np.bool_)
    if t.is_integer(atype) or t.is_floating(atype):
        return np.dtype(atype.to_pandas_dtype())
    if t.is_timestamp(atype) or t.is_duration(atype) or t.is_date64(atype) or t.is_time64(atype):
        return np.dtype(np.int64)
    if t.is_date32(atype) or t.is_time32(atype):
        return np.dtype(np.int32)
    raise TypeError(f"Arrow type {atype} is not supported")


def _storage_of(atype) -> str:
    pa = _pyarrow()
    t = pa.types
    if t.is_dictionary(atype):
        if not (t.is_integer(atype.index_type)):
            raise TypeError(f"dictionary type {atype} is not supported")
        return "dictionary"
    if t.is_string(atype) or t.is_large_string(atype) or t.is_binary(atype) or t.is_large_binary(atype) \
            or getattr(t, "is_string_view", lambda _: False)(atype) or getattr(t, "is_binary_view",
                                                                             lambda _: False)(atype):
        return "encoded"
    _field_dtype(atype, "plain")  # TypeError for anything else (decimals, lists, structs, nulls)
    return "plain"


def _fixed_values(arr, dtype: np.dtype) -> np.ndarray:
    """The values of a fixed-width Arrow array as a new NumPy array, bit for bit (also under nulls)."""
    buf = arr.buffers()[1]
    vals = np.frombuffer(buf, dtype=dtype, count=arr.offset + len(arr))[arr.offset:]
    return vals.copy()


def from_frame(obj) -> tuple[np.ndarray, FrameSchema]:
    """A DataFrame (pandas, polars) or Arrow table as a physical table and the schema to get it back.

    Parameters
    ----------
    obj : DataFrame or Arrow table
        A pandas or polars DataFrame, or a pyarrow Table or RecordBatch.

    Returns
    -------
    table : (n,) structured ndarray
        One field per logical column (named like it), plus a bool field
        ``<name>.null`` for each column with nulls.
    schema : FrameSchema

    Raises
    ------
    TypeError
        A column of an unsupported type (decimal, list, struct, all-null),
        non-string column names in pandas, or duplicate names.
    """
    kind = frame_kind(obj)
    if kind is None:
        raise TypeError(f"expected a pandas or polars DataFrame or a pyarrow Table, got {type(obj).__name__}")
    pa = _pyarrow()
    import pyarrow.compute as pc

    table = _to_arrow(obj, kind)
    names = table.column_names
    if len(set(names)) != len(names):
        raise TypeError(f"column names must be unique, got {names}")
    if table.num_rows == 0 or table.num_columns == 0:
        raise ValueError(f"expected at least one row and one column, got {table.num_rows} x {table.num_columns}")
    table = table.unify_dictionaries()
    taken = set(names)
    fields, arrays, columns, dictionaries = [], [], [], []
    for name, chunked in zip(names, table.columns):
        atype = chunked.type
        try:
            storage = _storage_of(atype)
        except TypeError as e:
            raise TypeError(f"column {name!r}: {e}; convert it (e.g. decimals to float64, lists to columns)") \
                from None
        arr = chunked.combine_chunks()
        nulls = arr.null_count > 0
        dict_index = -1
        if storage == "dictionary":
            values = _fixed_values(arr.indices, _field_dtype(atype, storage))
            dictionaries.append(arr.dictionary)
            dict_index = len(dictionaries) - 1
        elif storage == "encoded":
            if not (pa.types.is_string(atype) or pa.types.is_large_string(atype) or pa.types.is_binary(atype)
                    or pa.types.is_large_binary(atype)):
                arr = arr.cast(pa.large_binary() if "binary" in str(atype) else pa.large_string())
            enc = pc.dictionary_encode(arr)
            values = _fixed_values(enc.indices.cast(pa.int32()), np.dtype(np.int32))
            dictionaries.append(enc.dictionary)
            dict_index = len(dictionaries) - 1
        elif pa.types.is_boolean(atype):
            values = arr.fill_null(False).to_numpy(zero_copy_only=False).astype(np.bool_)
        else:
            values = _fixed_values(arr, _field_dtype(atype, storage))
        mask = None
        if nulls:
            mask = ~arr.is_valid().to_numpy(zero_copy_only=False)
            values[mask] = 0
        fields.append((name, values.dtype))
        arrays.append(values)
        null_field = -1
        if mask is not None:
            null_name = f"{name}.null"
            k = 2
            while null_name in taken:
                null_name, k = f"{name}.null{k}", k + 1
            taken.add(null_name)
            fields.append((null_name, np.dtype(np.bool_)))
            arrays.append(mask)
            null_field = len(fields) - 1
        columns.append(FrameColumn(name, storage, len(fields) - 1 - (mask is not None), null_field, dict_index))
    out = np.empty(table.num_rows, dtype=np.dtype(fields))
    for (fname, _), a in zip(fields, arrays):
        out[fname] = a
    return out, FrameSchema(kind, table.schema, tuple(columns), tuple(dictionaries))


# --------------------------------------------------------------------------
# frames out
# --------------------------------------------------------------------------
def plain_frame(values: np.ndarray, kind):
    """A NumPy table (structured: its fields; homogeneous: columns ``"0"``, ``"1"``, ...) as a frame.

    Parameters
    ----------
    values : ndarray
        Decoded rows, structured ``(n,)`` or homogeneous ``(n, d)``.
    kind : True or {"pandas", "polars", "arrow"}
        The frame library (True: pandas).
    """
    if kind is True:
        kind = "pandas"
    if kind not in FRAME_KINDS:
        raise ValueError(f"as_frame must be True or one of {FRAME_KINDS}, got {kind!r}")
    pa = _pyarrow()
    if values.dtype.names is not None:
        table = pa.table({name: values[name] for name in values.dtype.names})
    else:
        table = pa.table({str(j): np.ascontiguousarray(values[:, j]) for j in range(values.shape[1])})
    return to_frame_kind(table, kind)


def to_frame_kind(table, kind: str):
    """An Arrow table as ``kind``.

    Parameters
    ----------
    table : pyarrow.Table
        The frame as Arrow.
    kind : {"pandas", "polars", "arrow"}
        The frame library.
    """
    from ._optional import require

    if kind == "arrow":
        return table
    if kind == "polars":
        require("as_frame='polars'", "polars")
        import polars as pl

        return pl.from_arrow(table)
    require("as_frame='pandas'", "pandas")
    return table.to_pandas()


def to_frame(values: np.ndarray, schema: FrameSchema, kind=True, rows=None):
    """The physical rows ``values`` (a structured array) as the frame they came from.

    Parameters
    ----------
    values : (k,) structured ndarray
        Decoded rows of the physical table.
    schema : FrameSchema
    kind : True or {"pandas", "polars", "arrow"}
        What to return; True: the kind the table was given as.
    rows : (k,) int array, optional
        The row numbers of ``values`` (for a pandas RangeIndex: the index
        labels of those rows, as ``df.iloc[rows]`` has them).
    """
    if kind is True:
        kind = schema.kind
    if kind not in FRAME_KINDS:
        raise ValueError(f"as_frame must be True or one of {FRAME_KINDS}, got {kind!r}")
    pa = _pyarrow()
    names = values.dtype.names
    arrays = []
    for col in schema.columns:
        atype = schema.schema.field(col.name).type
        mask = values[names[col.nulls]] if col.nulls >= 0 else None
        raw = values[names[col.field]]
        if col.storage == "dictionary":
            idx = pa.array(np.where(mask, 0, raw) if mask is not None else raw, type=atype.index_type, mask=mask)
            arr = pa.DictionaryArray.from_arrays(idx, schema.dictionaries[col.dictionary], ordered=atype.ordered)
        elif col.storage == "encoded":
            idx = pa.array(raw, type=pa.int32(), mask=mask)
            arr = schema.dictionaries[col.dictionary].take(idx)
            if not arr.type.equals(atype):
                arr = arr.cast(atype)
        else:
            arr = pa.array(np.ascontiguousarray(raw), type=atype, mask=mask)
        arrays.append(arr)
    table = pa.Table.from_arrays(arrays, schema=schema.schema)
    df = to_frame_kind(table, kind)
    if kind != "pandas":
        return df
    import pandas as pd

    for col in schema.columns:  # pandas reads a NaN of an Arrow float column as NA: rebuild masked floats
        if col.storage == "plain" and isinstance(df[col.name].dtype, (pd.Float32Dtype, pd.Float64Dtype)):
            vals = values[names[col.field]].astype(df[col.name].dtype.numpy_dtype)
            mask = values[names[col.nulls]] if col.nulls >= 0 else np.zeros(len(vals), dtype=bool)
            df[col.name] = pd.arrays.FloatingArray(vals, mask.copy())
    meta = schema.schema.pandas_metadata if schema.kind == "pandas" else None
    index = (meta or {}).get("index_columns") or []
    if rows is not None and len(index) == 1 and isinstance(index[0], dict) and index[0].get("kind") == "range":
        import pandas as pd

        r = index[0]
        df.index = pd.Index(r["start"] + r["step"] * np.asarray(rows, dtype=np.int64), name=r.get("name"))
    return df
