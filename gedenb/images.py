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
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .entrogede import _decode_rows, compress, decompress, eq1_bits
from .errors import FormatError
from .layout import decode_rows
from .transforms import get_transform

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
    """Row of every image inside its class's part (stable order)."""
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
        image_shape=...)``; see :mod:`gedenb.coding`).

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
    """All images (original order) and their labels."""
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

    ``read_rows(k, rows)`` decodes rows of part ``k``.  Returns
    ``(images (len(indices), H, W, C) uint8, labels)``.
    """
    idx = np.asarray(indices)
    if idx.ndim != 1:
        raise ValueError(f"indices must be 1-D, got shape {idx.shape}")
    if idx.size and idx.dtype.kind not in "iu":
        raise TypeError(f"indices must be integers, got {idx.dtype}; use .astype(np.int64)")
    idx = idx.astype(np.int64)
    n = class_index.shape[0]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"image index out of range for {n} images")
    idx = np.where(idx < 0, idx + n, idx)
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


def _pad8(n: int) -> int:
    return -n % 8


def write_image_store(store: ImageStore, write) -> int:
    """Stream the container file of ``store`` through ``write``; return its size.

    Layout: 64-byte header | META (JSON) | INDEX (class index per image) |
    parts, each a complete single-table ``.gede`` file, 8-byte aligned.
    """
    from .store import to_bytes

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
        start = offset + len(blob) + _pad8(len(blob)) + len(index) + _pad8(len(index))
        new = []
        for p in parts:
            new.append([start, len(p)])
            start += len(p) + _pad8(len(p))
        if new == parts_at:
            break
        parts_at = new
    meta["parts"] = parts_at
    blob = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    total = parts_at[-1][0] + parts_at[-1][1] + _pad8(parts_at[-1][1])
    raw = _CHEADER.pack(IMAGES_MAGIC, IMAGES_VERSION[0], IMAGES_VERSION[1], len(parts), store.n, total,
                        len(blob), zlib.crc32(blob), len(index), zlib.crc32(index), b"\0" * 12, 0)
    write(raw[:-4] + struct.pack("<I", zlib.crc32(raw[:-4])))
    write(blob + b"\0" * _pad8(len(blob)))
    write(index + b"\0" * _pad8(len(index)))
    for p in parts:
        write(p + b"\0" * _pad8(len(p)))
    return total


class ImageReader:
    """Random access to a saved :class:`ImageStore` (open with :func:`gedenb.open`).

    :meth:`read_images` decodes only the requested images, straight from
    the memory-mapped file, and returns them in the order asked for.  Picklable
    (``spawn`` DataLoader workers reopen the file); safe after ``fork``.

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
        from .store import _parse

        self.path = Path(os.fspath(path))
        self._verify = bool(verify)
        with self.path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < _CHEADER.size:
                raise FormatError(f"header: file has {size} bytes, too short for an image store [{self.path}]")
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            head = bytes(self._mm[:_CHEADER.size])
            (magic, major, minor, nparts, n, total, meta_len, meta_crc, index_len, index_crc, _r,
             crc) = _CHEADER.unpack(head)
            if magic != IMAGES_MAGIC:
                raise FormatError("header: not a gedenb image store (bad magic bytes)")
            if major != IMAGES_VERSION[0]:
                raise FormatError(f"header: image store version {major}.{minor} is not supported; "
                                  f"this gedenb reads major version {IMAGES_VERSION[0]}")
            if zlib.crc32(head[:-4]) != crc:
                raise FormatError("header: checksum mismatch (the file is corrupt)")
            if total != size:
                raise FormatError(f"header: file should have {total} bytes but has {size}")
            pos = _CHEADER.size
            if meta_len > size - pos:
                raise FormatError("META: runs past the end of the file")
            blob = bytes(self._mm[pos:pos + meta_len])
            if zlib.crc32(blob) != meta_crc:
                raise FormatError("META: checksum mismatch (the file is corrupt)")
            try:
                meta = json.loads(blob)
                shape = tuple(int(s) for s in meta["image_shape"])
                classes = np.asarray(meta["classes"], dtype=np.int64)
                spans = [(int(a), int(b)) for a, b in meta["parts"]]
                idt = np.dtype(meta["index_dtype"])
                transform = str(meta["transform"])
            except (ValueError, KeyError, TypeError) as e:
                raise FormatError(f"META: malformed ({e})") from None
            if len(shape) != 3 or min(shape) < 1 or len(classes) != nparts or len(spans) != nparts or nparts < 1:
                raise FormatError("META: image shape, classes and parts disagree")
            if idt not in (np.dtype("uint8"), np.dtype("uint16")) or index_len != n * idt.itemsize:
                raise FormatError("INDEX: unexpected size or dtype")
            pos += meta_len + _pad8(meta_len)
            if index_len > size - pos:
                raise FormatError("INDEX: runs past the end of the file")
            index = np.frombuffer(self._mm, dtype=idt, count=n, offset=pos).copy()
            if zlib.crc32(index.tobytes()) != index_crc:
                raise FormatError("INDEX: checksum mismatch (the file is corrupt)")
            if n and int(index.max()) >= nparts:
                raise FormatError("INDEX: class index out of range")
            pos += index_len + _pad8(index_len)
            counts = np.bincount(index, minlength=nparts)
            parts = []
            view = memoryview(self._mm)
            for k, (start, nbytes) in enumerate(spans):
                if start != pos or nbytes > size - start:
                    raise FormatError(f"PART {k}: misplaced or runs past the end of the file")
                c, _version = _parse(view[start:start + nbytes], self._verify)
                if c.n != counts[k] or (k and (c.d != parts[0].d or c.dtype != parts[0].dtype)):
                    raise FormatError(f"PART {k}: {c.n} rows but the index names {counts[k]} images of this class")
                parts.append(c)
                pos = start + nbytes + _pad8(nbytes)
            if pos != size:
                raise FormatError("PART: unexpected bytes after the last part")
            self.transform = get_transform(transform).name
            if parts[0].d != int(np.prod(shape)):
                raise FormatError("PART 0: row width does not match the image shape")
        except BaseException:
            parts = view = None  # drop views of the map so it can close
            try:
                self._mm.close()
            except BufferError:  # a traceback frame still views it; it closes when freed
                pass
            raise
        self.parts = tuple(parts)
        self.classes = classes
        self.class_index = index
        self.image_shape = shape
        self.nbytes = size
        self.version = (major, minor)
        self._ranks = class_ranks(index, nparts)
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
        if p.coded is not None:
            return _decode_rows(p, rows, self._factors[k])
        return decode_rows(p.records, p.bases, p.layout, p.codecs, rows, p.dtype, p.n_bases, self._factors[k])

    def read_images(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Decode images ``indices`` (any order, repeats, negatives allowed).

        Returns ``(images (k, H, W, C) uint8, labels (k,) int64)``.
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
        for name in ("parts", "_factors"):
            self.__dict__.pop(name, None)
        try:
            self._mm.close()
        except BufferError:  # arrays handed out still view the map; it closes with them
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        return {"path": str(self.path), "verify": False}

    def __setstate__(self, state):
        self.__init__(state["path"], verify=state["verify"])

    def __repr__(self) -> str:
        return (f"<gedenb.ImageReader {self.path}: {len(self)} images {self.image_shape}, "
                f"{len(self.classes)} classes, transform={self.transform!r}, {self.nbytes:,} bytes>")
