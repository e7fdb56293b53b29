"""Section MODL: a fitted model to bytes and back (``docs/FORMAT.md``).

The file stores the header, the table scheme's slot records (or, for split
image rows, the split record) and the frequency tables as a bit stream
(:func:`gedenb.entropy.coder._write_tables`); everything else derives from
the codecs and the base mask, and :func:`model_from_bytes` derives and
validates it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import FormatError
from .coder import BLOCK_ROWS, MAX_PREC, MIN_PREC, _read_tables, _table_bits, _write_tables
from .image_models import _image_layout
from .model import (
    IMAGE_SCHEMES, MAX_TABLES, RUN_SCHEMES, SCHEME_TABLE, EntropyModel, _column_masks, _frozen_model, _slots,
)
from .table_models import _table_alphabet, _table_slot_refs

__all__ = ["model_from_bytes", "model_to_bytes"]


#: Bytes of the fixed part of a serialised model (section MODL).
MODEL_HEADER_BYTES = 64
#: Bytes per slot record of the table scheme.
SLOT_RECORD_BYTES = 12
#: Versions of the MODL payload: 1, rows of one rANS chain; 2, image rows of the zero-run schemes split
#: in two chains at an image row stored after the header (see :func:`gedenb.entropy.model.split_slot`).  gedenb
#: writes 2 where a split applies and 1 elsewhere, and reads both.
MODEL_VERSION = 1
SPLIT_MODEL_VERSION = 2
#: Bytes after the header of a version-2 model: ``u32 split, u32 0``.
SPLIT_RECORD_BYTES = 8


#: One slot record of the table scheme (:data:`SLOT_RECORD_BYTES` bytes).
_SLOT_RECORD = np.dtype([("uniform", "u1"), ("nref", "u1"), ("shift0", "u1"), ("shift1", "u1"), ("ref0", "<u4"),
                         ("ref1", "<u4")])


class _Header(NamedTuple):
    """The fields of a MODL header that the reader uses (block size checked)."""

    version: int
    scheme: int
    prec: int
    off_bits: int
    n_slots: int
    n_tables: int
    shape: tuple
    e1: int
    e2: int
    table_bits: int


def _table_stream(model: EntropyModel):
    nbits = int(_table_bits(model.freqs, model.alphabet))
    return nbits, _write_tables(model.freqs, model.alphabet, nbits)


def model_to_bytes(model: EntropyModel, off_bits: int) -> bytes:
    """Section MODL of ``docs/FORMAT.md``.

    Parameters
    ----------
    model : EntropyModel
    off_bits : int
        Bits per row offset of the row index (section RIDX), stored in the header.

    Returns
    -------
    bytes
    """
    nbits, words = _table_stream(model)
    H, W, C = model.image_shape
    head = np.zeros(1, dtype=[("version", "<u4"), ("scheme", "<u4"), ("prec", "<u4"), ("block_rows", "<u4"),
                              ("off_bits", "<u4"), ("n_slots", "<u4"), ("n_tables", "<u4"), ("H", "<u4"),
                              ("W", "<u4"), ("C", "<u4"), ("e1", "<u8"), ("e2", "<u8"), ("table_bits", "<u8")])
    version = SPLIT_MODEL_VERSION if model.split else MODEL_VERSION
    head[0] = (version, model.scheme, model.prec, BLOCK_ROWS, off_bits, model.n_slots, model.n_tables, H, W, C,
               model.e1, model.e2, nbits)
    assert head.nbytes == MODEL_HEADER_BYTES
    parts = [head.tobytes()]
    if model.split:
        parts.append(np.array([model.split, 0], dtype="<u4").tobytes())
    if model.scheme == SCHEME_TABLE:
        rec = np.zeros(model.n_slots, dtype=_SLOT_RECORD)
        used = model.nlev > 1
        rec["uniform"] = model.slot_table < 0
        rec["nref"] = used.sum(axis=1)
        rec["shift0"], rec["shift1"] = model.shifts[:, 0], model.shifts[:, 1]
        rec["ref0"] = np.where(used[:, 0], model.refs[:, 0], 0)
        rec["ref1"] = np.where(used[:, 1], model.refs[:, 1], 0)
        parts.append(rec.tobytes())
        parts.append(b"\0" * (-len(parts[-1]) % 8))
    parts.append(np.ascontiguousarray(words, dtype="<u8").tobytes())
    return b"".join(parts)


def model_from_bytes(payload, widths, base_mask, d: int) -> tuple[EntropyModel, int]:
    """Parse and validate section MODL; returns ``(model, off_bits)``.

    The header is checked first (:func:`_read_header`), then the slots the
    codecs and base mask give, the scheme's part (:func:`_image_part` or
    :func:`_table_part`) and the frequency tables (:func:`_read_freqs`).

    Parameters
    ----------
    payload : bytes-like
        The section's bytes.
    widths : (d,) int
        Code widths of the columns (the table's codecs).
    base_mask : (l_t,) bool
        The table's base mask (the digits are the other bits).
    d : int
        Columns of the table.

    Returns
    -------
    model : EntropyModel
        Read-only arrays.
    off_bits : int

    Raises
    ------
    FormatError
        Anything inconsistent with the codecs and base mask, or malformed.
    """
    buf = bytes(payload)
    head = _read_header(buf)
    dmask, dshift, dw = _column_masks(widths, base_mask)
    slots = _slots(dw)
    slot_col, slot_bits, slot_low, slot_last, _slot_tix = slots
    S = slot_col.shape[0]
    if head.n_slots != S:
        raise FormatError(f"MODL: {head.n_slots} digit slots, the codecs and base mask give {S}")
    if head.scheme in IMAGE_SCHEMES:
        pos, split, layout = _image_part(buf, head, slots, d)
    else:
        pos, split, layout = _table_part(buf, head, slot_bits, d)
    refs, shifts, nlev, slot_table, alphabet = layout
    freqs = _read_freqs(buf, pos, head, alphabet)
    shape = head.shape if head.scheme in IMAGE_SCHEMES else (0, 0, 0)
    model = EntropyModel(head.scheme, shape, head.e1, head.e2, slot_col, slot_bits, slot_low, slot_last, slot_table,
                         refs, shifts, nlev, alphabet, freqs, dmask, dshift, head.prec, split)
    return _frozen_model(model), head.off_bits


def _read_header(buf: bytes) -> _Header:
    """The header of section MODL ``buf``, its version, precision, block size and scheme checked."""
    if len(buf) < MODEL_HEADER_BYTES:
        raise FormatError(f"MODL: {len(buf)} bytes, at least {MODEL_HEADER_BYTES} expected")
    h = np.frombuffer(buf[:MODEL_HEADER_BYTES], dtype="<u4", count=10)
    e1, e2, nbits = (int(v) for v in np.frombuffer(buf[40:64], dtype="<u8"))
    version, scheme, prec, block_rows, off_bits, S_file, T_file, H, W, C = (int(v) for v in h)
    if version not in (MODEL_VERSION, SPLIT_MODEL_VERSION):
        raise FormatError(f"MODL: model version {version} is not supported (this gedenb reads {MODEL_VERSION} and "
                          f"{SPLIT_MODEL_VERSION})")
    if not MIN_PREC <= prec <= MAX_PREC or block_rows != BLOCK_ROWS or off_bits > 63 \
            or scheme not in (SCHEME_TABLE,) + IMAGE_SCHEMES:
        raise FormatError("MODL: precision, block size, offset width or scheme not supported")
    if version == SPLIT_MODEL_VERSION and scheme not in RUN_SCHEMES:
        raise FormatError("MODL: split rows (model version 2) need a zero-run scheme (4 or 5)")
    return _Header(version, scheme, prec, off_bits, S_file, T_file, (H, W, C), e1, e2, nbits)


def _image_part(buf: bytes, head: _Header, slots, d: int):
    """``(position after it, split row, layout)`` of an image model's part after the header: the split
    record of model version 2, and the layout (``refs, shifts, nlev, slot_table, alphabet``) the scheme
    derives for the slots ``slots`` (:func:`gedenb.entropy.model._slots`)."""
    H, W, C = head.shape
    slot_col, slot_bits, slot_low, slot_last, slot_tix = slots
    S = slot_col.shape[0]
    if H * W * C != d or min(H, W, C) < 1 or not 0 < head.e1 < head.e2:
        raise FormatError("MODL: image shape or level thresholds inconsistent with the table")
    if head.scheme in RUN_SCHEMES and not (S and (slot_last == 1).all()):
        raise FormatError("MODL: zero runs need one digit per column")
    pos = MODEL_HEADER_BYTES
    split = 0
    if head.version == SPLIT_MODEL_VERSION:
        if len(buf) < pos + SPLIT_RECORD_BYTES:
            raise FormatError("MODL: the split record runs past the section")
        split, pad = (int(v) for v in np.frombuffer(buf, dtype="<u4", count=2, offset=pos))
        if not 0 < split < H or pad:
            raise FormatError(f"MODL: split row {split} is not in [1, {H - 1}] or its padding is not zero")
        pos += SPLIT_RECORD_BYTES
    return pos, split, _image_layout(head.shape, head.scheme, slot_col, slot_bits, slot_low, slot_tix, d)


def _table_part(buf: bytes, head: _Header, slot_bits: np.ndarray, d: int):
    """``(position after it, 0, layout)`` of a table model's slot records (see :func:`_image_part`)."""
    if any(head.shape) or head.e1 or head.e2:
        raise FormatError("MODL: image fields set in a table model")
    S = slot_bits.shape[0]
    pos = MODEL_HEADER_BYTES
    need = S * SLOT_RECORD_BYTES
    need += -need % 8
    if len(buf) < pos + need:
        raise FormatError("MODL: slot records run past the section")
    rec = np.frombuffer(buf[pos:pos + S * SLOT_RECORD_BYTES], dtype=_SLOT_RECORD)
    if any(buf[pos + S * SLOT_RECORD_BYTES:pos + need]):
        raise FormatError("MODL: padding bytes must be zero")
    uniform = rec["uniform"].astype(np.int64)
    nref = rec["nref"].astype(np.int64)
    ref = np.stack([rec["ref0"], rec["ref1"]], axis=1).astype(np.int64)
    shift = np.stack([rec["shift0"], rec["shift1"]], axis=1).astype(np.int64)
    _check_slot_records(uniform, nref, ref, shift, slot_bits)
    refs, shifts, nlev = _table_slot_refs(nref, ref, shift, slot_bits, S, d)
    slot_table, alphabet = _table_alphabet(uniform, nlev, slot_bits)
    return pos + need, 0, (refs, shifts, nlev, slot_table, alphabet)


def _check_slot_records(uniform, nref, ref, shift, slot_bits) -> None:
    """Raise :class:`FormatError` unless every slot record is well formed and refers to earlier digits only."""
    S = slot_bits.shape[0]
    idx = np.arange(S)
    if (uniform > 1).any() or (nref > 2).any() or (uniform.astype(bool) & (nref > 0)).any():
        raise FormatError("MODL: malformed slot record")
    for k in range(2):
        use = nref > k
        if (use & (ref[:, k] >= idx)).any():
            raise FormatError("MODL: a context refers to a digit not decoded before it")
        if (use & (shift[:, k] >= slot_bits[np.minimum(ref[:, k], max(S - 1, 0))])).any():
            raise FormatError("MODL: a context shift leaves no level")
        if ((~use) & ((ref[:, k] != 0) | (shift[:, k] != 0))).any():
            raise FormatError("MODL: unused context fields must be zero")


def _read_freqs(buf: bytes, pos: int, head: _Header, alphabet: np.ndarray) -> np.ndarray:
    """The frequency tables stored from byte ``pos`` on (the rest of the section), ``(T, 256)`` int32."""
    T = alphabet.shape[0]
    if head.n_tables != T or T > MAX_TABLES:
        raise FormatError(f"MODL: {head.n_tables} frequency tables, the slots give {T} (at most {MAX_TABLES})")
    nbits = head.table_bits
    nwords = (nbits + 63) // 64
    if len(buf) != pos + 8 * nwords:
        raise FormatError("MODL: table stream length does not match the section")
    words = np.frombuffer(buf, dtype="<u8", count=nwords, offset=pos).astype(np.uint64)
    if nbits % 64 and int(words[-1]) & ((1 << (64 - nbits % 64)) - 1):
        raise FormatError("MODL: padding bits of the table stream must be zero")
    freqs, used = _read_tables(words if nwords else np.zeros(1, np.uint64), nbits, alphabet, head.prec)
    if used != nbits:
        raise FormatError("MODL: malformed frequency tables")
    return freqs
