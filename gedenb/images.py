"""Class-wise compressed image stores (paper Sec. 4.2).

Images are transformed (:mod:`gedenb.transforms`), flattened to one row
each, and compressed class by class with EntroGeDe without clustering
(``m = 0``), so that each class's redundancy is exploited separately.  The
store keeps the images' original order through a label index: image ``i``
is row ``rank_i`` of its class's part, where ``rank_i`` counts the earlier
images of the same class.

Saved with :func:`gedenb.save` into one container file (``docs/FORMAT.md``)
and opened with :func:`gedenb.open`, which returns an :class:`ImageReader`
whose :meth:`~ImageReader.read_images` decodes only the requested images.
The container's pieces are checked with :mod:`gedenb.container`; its parts
are ``.gede`` tables, written and read by :mod:`gedenb.store`.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .compressed import eq1_bits
from .container import PathReader, check_padding, check_sealed, map_file, pad8, read_piece, release, row_indices, seal
from .decode import _decode_rows, decompress
from .entrogede import compress
from .errors import FormatError
from .store import parse_table, to_bytes
from .transforms import _coeff_dtypes, get_transform

__all__ = ["ImageReader", "ImageStore", "class_ranks", "compress_images", "decompress_images", "write_image_store"]


@dataclass(frozen=True, eq=False)
class ImageStore:
    """Compressed images, one EntroGeDe part per class.

    Attributes
    ----------
    parts : tuple of Compressed
        Part ``k`` holds the transformed images of class ``classes[k]`` in
        their original relative order.
    classes : (K,) int64
        The distinct labels, ascending.
    class_index : (n,) uint8 or uint16
        Index into ``classes`` of every image, in the original order.
    transform : str
        Name of the transform in :data:`gedenb.transforms.TRANSFORMS`.
    image_shape : (H, W, C)
    """

    parts: tuple
    classes: np.ndarray
    class_index: np.ndarray
    transform: str
    image_shape: tuple

    @property
    def n(self) -> int:
        return int(self.class_index.shape[0])

    @property
    def labels(self) -> np.ndarray:
        return self.classes[self.class_index]

    @property
    def raw_bytes(self) -> int:
        return self.n * int(np.prod(self.image_shape))

    def eq1_bytes(self) -> float:
        """Sum of the parts' Eq. 1 sizes plus the label index, in bytes."""
        return sum(eq1_bits(p) for p in self.parts) / 8 + self.class_index.nbytes

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return (f"ImageStore(n={self.n}, image_shape={self.image_shape}, classes={len(self.classes)}, "
                f"transform={self.transform!r}, eq1={self.eq1_bytes() / self.raw_bytes:.1%} of raw)")


def _check_images(images, labels):
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images must be a NumPy array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {images.dtype}; use .astype(np.uint8)")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[0] == 0 or 0 in images.shape[1:]:
        raise ValueError(f"images must be a non-empty (n, H, W) or (n, H, W, C) array, got shape {images.shape}")
    labels = np.asarray(labels)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got {labels.dtype}")
    return images, labels.astype(np.int64)


def class_ranks(class_index: np.ndarray, n_classes: int) -> np.ndarray:
    """Row of every image inside its class's part (stable order).

    Parameters
    ----------
    class_index : (n,) integer ndarray
        Index into the classes of every image, in the original order.
    n_classes : int
        Number of classes (parts).

    Returns
    -------
    (n,) int64
        Image ``i`` is row ``ranks[i]`` of part ``class_index[i]``.
    """
    ranks = np.empty(class_index.shape[0], dtype=np.int64)
    for k in range(n_classes):
        members = np.flatnonzero(class_index == k)
        ranks[members] = np.arange(members.size)
    return ranks


def compress_images(images, labels, transform="identity", tau: int = 10, widths: str = "narrow",
                    coding: str = "raw") -> ImageStore:
    """Compress images class by class (no clustering, m = 0).

    Parameters
    ----------
    images : (n, H, W) or (n, H, W, C) uint8
    labels : (n,) integers
    transform : str or transform object
        ``"identity"``, ``"dct"`` (the paper's, lossy by rounding) or
        ``"dct_lossless"`` (bit-exact); see :mod:`gedenb.transforms`.
    tau : int
        Plateau threshold of Algorithm 1.
    widths : {"narrow", "native"}
        Column codecs (``"native"`` is the paper's raw-pixel setting).
    coding : {"raw", "entropy"}
        Deviations as the paper's raw bits, or entropy-coded with 2-D
        neighbour contexts (``compress(..., coding="entropy",
        image_shape=...)``; see :mod:`gedenb.entropy`).

    Returns
    -------
    ImageStore
    """
    images, labels = _check_images(images, labels)
    t = get_transform(transform)
    classes, class_index = np.unique(labels, return_inverse=True)
    if len(classes) > 65535:
        raise ValueError("at most 65,535 classes are supported")
    cdt = np.uint8 if len(classes) <= 256 else np.uint16
    coeffs = t.forward(images)
    shape = tuple(int(s) for s in images.shape[1:])
    # 2-D contexts when the coefficients keep the pixels' layout (one per pixel and channel)
    extra = {"coding": coding}
    if coding == "entropy" and coeffs.shape[1] == int(np.prod(shape)):
        extra["image_shape"] = shape
    parts = tuple(
        compress(np.ascontiguousarray(coeffs[class_index == k]), beta=None, tau=tau, widths=widths, **extra)
        for k in range(len(classes))
    )
    ci = class_index.astype(cdt)
    ci.setflags(write=False)
    classes = classes.astype(np.int64)
    classes.setflags(write=False)
    return ImageStore(parts, classes, ci, t.name, tuple(int(s) for s in images.shape[1:]))


def decompress_images(store: ImageStore) -> tuple[np.ndarray, np.ndarray]:
    """All images (original order) and their labels.

    Parameters
    ----------
    store : ImageStore
        As :func:`compress_images` returns it.

    Returns
    -------
    images : (n, H, W, C) uint8
    labels : (n,) int64
    """
    t = get_transform(store.transform)
    ranks = class_ranks(store.class_index, len(store.classes))
    first = decompress(store.parts[0])
    coeffs = np.empty((store.n, first.shape[1]), dtype=first.dtype)
    for k, part in enumerate(store.parts):
        members = store.class_index == k
        coeffs[members] = (decompress(part) if k else first)[ranks[members]]
    return t.inverse(coeffs, store.image_shape), store.labels


def read_images_from_parts(parts, classes, class_index, ranks, transform, image_shape, indices, read_rows):
    """Decode images ``indices`` (any order, repeats allowed) from per-class parts.

    Parameters
    ----------
    parts : sequence of Compressed
        One part per class (used through ``read_rows``).
    classes : (K,) int64
        The labels of the parts.
    class_index : (n,) integer ndarray
        Index into ``classes`` of every image.
    ranks : (n,) int64
        Row of every image inside its part (:func:`class_ranks`).
    transform : str
        Name of the transform the parts hold coefficients of.
    image_shape : (H, W, C)
    indices : int, slice or 1-D integer array-like
        Image numbers in ``[-n, n)``, checked as :meth:`gedenb.Reader.read_rows` checks row numbers.
    read_rows : callable
        ``read_rows(k, rows)`` decodes rows ``rows`` (int64) of part ``k``.

    Returns
    -------
    images : (len(indices), H, W, C) uint8
    labels : (len(indices),) int64
    """
    idx = row_indices(indices, class_index.shape[0])
    t = get_transform(transform)
    k_of = class_index[idx]
    width = int(np.prod(image_shape))
    coeffs = None
    for k in np.unique(k_of):
        sel = np.flatnonzero(k_of == k)
        rows = read_rows(int(k), ranks[idx[sel]])
        if coeffs is None:
            coeffs = np.empty((idx.size, rows.shape[1]), dtype=rows.dtype)
        coeffs[sel] = rows
    if coeffs is None:
        coeffs = np.zeros((0, width), dtype=np.uint8)
    return t.inverse(coeffs, image_shape), classes[k_of]


# --------------------------------------------------------------------------
# the image container file
# --------------------------------------------------------------------------
#: Magic bytes of an image container (a single table starts with b"\x89GEDE").
IMAGES_MAGIC = b"\x89GEDI\r\n\x1a"
IMAGES_VERSION = (1, 0)
_CHEADER = struct.Struct("<8sHHIQQIIII12sI")
assert _CHEADER.size == 64


def write_image_store(store: ImageStore, write) -> int:
    """Stream the container file of ``store`` through ``write``; return its size.

    Layout: 64-byte sealed header | META (JSON) | INDEX (class index per image) |
    parts, each a complete single-table ``.gede`` file (:func:`gedenb.store.to_bytes`), every piece
    zero-padded to a multiple of 8 bytes (:mod:`gedenb.container`).

    Parameters
    ----------
    store : ImageStore
        The images to write.
    write : callable
        Called with the file's bytes, piece by piece, in order.
    """
    parts = [to_bytes(p) for p in store.parts]
    index = np.ascontiguousarray(store.class_index).tobytes()
    offset = _CHEADER.size
    meta = {
        "kind": "images", "transform": store.transform, "image_shape": list(store.image_shape),
        "classes": [int(c) for c in store.classes], "index_dtype": np.dtype(store.class_index.dtype).str,
    }
    # offsets depend on the META length, which depends on the offsets' digits: iterate to a fixed point
    parts_at = []
    for _ in range(4):
        meta["parts"] = parts_at
        blob = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
        start = offset + len(blob) + pad8(len(blob)) + len(index) + pad8(len(index))
        new = []
        for p in parts:
            new.append([start, len(p)])
            start += len(p) + pad8(len(p))
        if new == parts_at:
            break
        parts_at = new
    meta["parts"] = parts_at
    blob = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    total = parts_at[-1][0] + parts_at[-1][1] + pad8(parts_at[-1][1])
    raw = _CHEADER.pack(IMAGES_MAGIC, IMAGES_VERSION[0], IMAGES_VERSION[1], len(parts), store.n, total,
                        len(blob), zlib.crc32(blob), len(index), zlib.crc32(index), b"\0" * 12, 0)
    write(seal(raw))
    write(blob + b"\0" * pad8(len(blob)))
    write(index + b"\0" * pad8(len(index)))
    for p in parts:
        write(p + b"\0" * pad8(len(p)))
    return total


#: Keys of META, all required (others are ignored).
_META_KEYS = ("classes", "image_shape", "index_dtype", "kind", "parts", "transform")
_INDEX_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))


def _is_int(v) -> bool:
    """A JSON integer (a Python int, not a bool)."""
    return isinstance(v, int) and not isinstance(v, bool)


def _parse_header(head: bytes, size: int) -> tuple:
    """The checked header fields ``(major, minor, nparts, n, meta_len, meta_crc, index_len, index_crc)``.

    Parameters
    ----------
    head : bytes
        The first 64 bytes of the file.
    size : int
        Bytes in the file.
    """
    (magic, major, minor, nparts, n, total, meta_len, meta_crc, index_len, index_crc, reserved,
     _crc) = _CHEADER.unpack(head)
    if magic != IMAGES_MAGIC:
        raise FormatError("header: not a gedenb image store (bad magic bytes)")
    if major != IMAGES_VERSION[0]:
        raise FormatError(f"header: image store version {major}.{minor} is not supported; "
                          f"this gedenb reads major version {IMAGES_VERSION[0]}")
    check_sealed(head)
    if total != size:
        raise FormatError(f"header: file should have {total} bytes but has {size}")
    if minor <= IMAGES_VERSION[1] and any(reserved):  # a later minor may use them
        raise FormatError("header: reserved bytes must be zero")
    if nparts < 1:
        raise FormatError("header: an image store has at least one part (class)")
    return major, minor, nparts, n, meta_len, meta_crc, index_len, index_crc


def _parse_meta(blob: bytes, nparts: int) -> dict:
    """The fields of META, each checked for its JSON type and range (``nparts``: from the header).

    Returns
    -------
    dict
        ``image_shape`` (H, W, C) of ints, ``classes`` (K,) int64 (distinct, ascending),
        ``parts`` list of ``(offset, nbytes)``, ``index_dtype`` (uint8 or uint16) and ``transform`` (str).
    """
    try:
        meta = json.loads(blob.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # RecursionError: nested too deeply for the parser
        raise FormatError(f"META: not valid UTF-8 JSON ({type(e).__name__}: {str(e)[:80]})") from None
    if not isinstance(meta, dict):
        raise FormatError(f"META: a JSON object expected, got {type(meta).__name__}")
    missing = [k for k in _META_KEYS if k not in meta]
    if missing:
        raise FormatError(f"META: missing {', '.join(missing)}")
    if meta["kind"] != "images":
        raise FormatError(f"META: kind {reprlib.repr(meta['kind'])}, expected 'images'")
    if not isinstance(meta["transform"], str):
        raise FormatError(f"META: transform must be a name (str), got {reprlib.repr(meta['transform'])}")
    return {"image_shape": _meta_shape(meta["image_shape"]), "classes": _meta_classes(meta["classes"], nparts),
            "parts": _meta_spans(meta["parts"], nparts), "index_dtype": _meta_index_dtype(meta["index_dtype"]),
            "transform": meta["transform"]}


def _meta_shape(v) -> tuple:
    """``image_shape``: ``[H, W, C]``, positive ints below ``2**32`` (as the entropy coder's image shapes)."""
    if not (isinstance(v, list) and len(v) == 3 and all(_is_int(s) and 1 <= s < 1 << 32 for s in v)):
        raise FormatError(f"META: image_shape must be [H, W, C] of positive ints, got {reprlib.repr(v)}")
    return tuple(v)


def _meta_classes(v, nparts: int) -> np.ndarray:
    """``classes``: one int64 label per part, distinct and ascending."""
    if not (isinstance(v, list) and len(v) == nparts
            and all(_is_int(c) and -(1 << 63) <= c < 1 << 63 for c in v)):
        raise FormatError(f"META: classes must be a list of {nparts} int64 labels (one per part), "
                          f"got {reprlib.repr(v)}")
    classes = np.array(v, dtype=np.int64)
    if (np.diff(classes) <= 0).any():
        raise FormatError("META: classes must be distinct and ascending")
    return classes


def _meta_spans(v, nparts: int) -> list:
    """``parts``: ``[offset, nbytes]`` of each of the ``nparts`` parts, non-negative ints."""
    if not (isinstance(v, list) and len(v) == nparts and all(
            isinstance(s, list) and len(s) == 2 and all(_is_int(x) and x >= 0 for x in s) for s in v)):
        raise FormatError(f"META: parts must be {nparts} [offset, length] pairs of ints, got {reprlib.repr(v)}")
    return [tuple(s) for s in v]


def _meta_index_dtype(v) -> np.dtype:
    """``index_dtype``: a NumPy dtype string naming uint8 or uint16 (little-endian)."""
    try:
        dt = np.dtype(v) if isinstance(v, str) else None
    except (TypeError, ValueError):
        dt = None
    if dt is None or dt not in _INDEX_DTYPES:
        raise FormatError(f"META: index_dtype must name uint8 or uint16, got {reprlib.repr(v)}")
    return dt


def _check_meta_against_parts(meta: dict, parts: list) -> str:
    """META's image shape and transform against the parts (whose rows share one width and dtype).

    Returns
    -------
    str
        The transform's registered name.
    """
    shape, d, dtype = meta["image_shape"], parts[0].d, parts[0].dtype
    if math.prod(shape) != d:
        raise FormatError(f"META: image shape {shape} has {math.prod(shape)} values, the parts' rows {d}")
    for k, p in enumerate(parts):
        model = p.coded.model if p.coded is not None else None
        if model is not None and model.scheme != 0 and tuple(int(v) for v in model.image_shape) != shape:
            raise FormatError(f"META: image shape {shape}, but part {k} is entropy-coded as "
                              f"{tuple(int(v) for v in model.image_shape)} images")
    name = meta["transform"]
    try:
        t = get_transform(name)
    except ValueError:
        raise FormatError(f"META: unknown transform {reprlib.repr(name)} (a transform of your own must be "
                          "registered with gedenb.transforms.register_transform before the store is opened)") from None
    if dtype.kind not in "iu":
        raise FormatError(f"META: transform {t.name!r} needs integer coefficients, the parts hold {dtype}")
    allowed = _coeff_dtypes(t, shape)
    if allowed == ():
        raise FormatError(f"META: transform {t.name!r} cannot transform {shape} images")
    if allowed is not None and dtype not in allowed:
        raise FormatError(f"META: transform {t.name!r} gives {' or '.join(map(str, allowed))} coefficients for "
                          f"{shape} images, the parts hold {dtype}")
    return t.name


def _read_container(mm, verify: bool) -> tuple:
    """``(meta, index, parts, (major, minor))`` of the container in ``mm``: the header, META, INDEX and the
    parts in file order, each checked (``verify``: also the parts' stream checksums)."""
    size = len(mm)
    major, minor, nparts, n, meta_len, meta_crc, index_len, index_crc = _parse_header(bytes(mm[:_CHEADER.size]), size)
    pos = _CHEADER.size
    meta = _parse_meta(read_piece(mm, pos, meta_len, meta_crc, "META"), nparts)
    pos += meta_len + pad8(meta_len)
    index = _read_index(mm, pos, index_len, index_crc, n, nparts, meta["index_dtype"])
    pos += index_len + pad8(index_len)
    parts = _read_parts(mm, pos, meta["parts"], np.bincount(index, minlength=nparts), verify)
    return meta, index, parts, (major, minor)


def _read_index(mm, pos: int, index_len: int, index_crc: int, n: int, nparts: int, idt: np.dtype) -> np.ndarray:
    """INDEX: the class of each of the ``n`` images (a copy), every one below ``nparts``."""
    if index_len != n * idt.itemsize:
        raise FormatError(f"INDEX: {index_len} bytes, expected {n} images x {idt.itemsize}")
    index = np.frombuffer(read_piece(mm, pos, index_len, index_crc, "INDEX"), dtype=idt).copy()
    if n and int(index.max()) >= nparts:
        raise FormatError("INDEX: class index out of range")
    return index


def _read_parts(mm, pos: int, spans: list, counts: np.ndarray, verify: bool) -> list:
    """The parts (tables mapped from ``mm``), each starting where the previous piece ends, with as many rows
    as INDEX names images of its class and the rows of part 0; nothing after the last."""
    size = len(mm)
    parts = []
    view = memoryview(mm)
    try:
        for k, (start, nbytes) in enumerate(spans):
            if start != pos or nbytes + pad8(nbytes) > size - start:
                raise FormatError(f"PART {k}: misplaced or runs past the end of the file")
            try:
                c, _version = parse_table(view[start:start + nbytes], verify)
            except FormatError as e:
                raise FormatError(f"PART {k}: {e}") from None
            if c.n != counts[k] or (k and (c.d != parts[0].d or c.dtype != parts[0].dtype)):
                raise FormatError(f"PART {k}: {c.n} rows of {c.d} {c.dtype} values, the index names "
                                  f"{counts[k]} images of this class"
                                  + (f" and part 0 has rows of {parts[0].d} {parts[0].dtype}" if k else ""))
            check_padding(mm, start + nbytes, f"PART {k}")
            parts.append(c)
            pos = start + nbytes + pad8(nbytes)
    except BaseException:
        parts = view = None  # drop views of the map so that it can close
        raise
    if pos != size:
        raise FormatError("PART: unexpected bytes after the last part")
    return parts


class ImageReader(PathReader):
    """Random access to a saved :class:`ImageStore` (open with :func:`gedenb.open`).

    :meth:`read_images` decodes only the requested images, straight from
    the memory-mapped file, and returns them in the order asked for.  Picklable
    (``spawn`` DataLoader workers reopen the file, with the same ``verify``); safe after ``fork``.
    Every field of the container is checked when it is opened (``docs/FORMAT.md``, "Appendix: image
    containers"); a file that breaks a rule raises :class:`gedenb.FormatError` naming the piece
    (header, META, INDEX or PART k).

    Attributes
    ----------
    labels : (n,) int64
    classes : (K,) int64
    image_shape : (H, W, C)
    transform : str
    parts : tuple of Compressed (views of the file)
    nbytes : int
        Bytes on disk.
    """

    def __init__(self, path, verify: bool = True):
        self.path = Path(os.fspath(path))
        self._verify = bool(verify)
        self._mm = map_file(self.path, _CHEADER.size, "too short for an image store")
        try:
            meta, index, parts, self.version = _read_container(self._mm, self._verify)
            self.transform = _check_meta_against_parts(meta, parts)
        except BaseException:
            parts = None  # drop views of the map so it can close
            release(self._mm)  # a traceback frame may still view it; it closes when freed
            raise
        self.parts = tuple(parts)
        self.classes = meta["classes"]
        self.class_index = index
        self.image_shape = meta["image_shape"]
        self.nbytes = len(self._mm)
        self._ranks = class_ranks(index, len(parts))
        self._factors = [p.codecs.factor for p in parts]

    def __len__(self) -> int:
        return int(self.class_index.shape[0])

    @property
    def n(self) -> int:
        return len(self)

    @property
    def labels(self) -> np.ndarray:
        return self.classes[self.class_index]

    @property
    def stored_bytes_per_image(self) -> float:
        """Average bytes of the file an image read touches (its record and its base)."""
        touched = sum(p.n * (p.layout.record_bits + p.base_bits) if p.coded is None
                      else 8 * p.coded.stream.shape[0] + p.n * (p.id_bits + p.base_bits) for p in self.parts) / 8
        return touched / max(len(self), 1)

    def _rows(self, k: int, rows: np.ndarray) -> np.ndarray:
        p = self.parts[k]
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        try:
            return _decode_rows(p, rows, self._factors[k])
        except FormatError as e:  # a corrupt record, found when reading (the file was opened with verify=False)
            raise FormatError(f"PART {k}: {e} [{self.path}]") from None

    def read_images(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Decode images ``indices`` (any order, repeats, negatives allowed).

        Parameters
        ----------
        indices : int, slice or 1-D integer array-like
            Image numbers in ``[-n, n)``, checked as :meth:`gedenb.Reader.read_rows` checks rows.

        Returns
        -------
        images : (k, H, W, C) uint8
        labels : (k,) int64

        Raises
        ------
        TypeError
            Non-integer indices (bools, floats).
        IndexError
            An index out of range (unsigned ones too: they never wrap around).
        ValueError
            Indices that are not 1-D, or the reader is closed.
        FormatError
            A requested record is corrupt (only possible when the file was opened with ``verify=False``).
        """
        if "parts" not in self.__dict__:
            raise ValueError(f"I/O operation on a closed gedenb.ImageReader ({self.path})")
        return read_images_from_parts(self.parts, self.classes, self.class_index, self._ranks, self.transform,
                                      self.image_shape, indices, self._rows)

    def warmup(self) -> None:
        """Compile (or load from the on-disk cache) every kernel that :meth:`read_images` uses for this
        store (each class's part may have its own): one image, small and large batches, the inverse
        transform.  Processes forked afterwards (DataLoader workers) inherit them and compile nothing;
        :class:`gedenb.torch.ImageDataset` calls it in the parent."""
        from ._numba import warmup_rows

        for k in range(len(self.parts)):
            images = np.flatnonzero(self.class_index == k)
            for rows in warmup_rows(images.size, self.parts[k].d):
                self.read_images(images[rows])

    def close(self) -> None:
        """Drop this reader's parts; the map closes once no array views of it remain."""
        for name in ("parts", "_factors"):
            self.__dict__.pop(name, None)
        release(self._mm)

    def __repr__(self) -> str:
        return (f"<gedenb.ImageReader {self.path}: {len(self)} images {self.image_shape}, "
                f"{len(self.classes)} classes, transform={self.transform!r}, {self.nbytes:,} bytes>")
