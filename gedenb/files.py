"""``gedenb.open`` and ``gedenb.save``: the reader chosen by what is at the path, the writer by the object.

:func:`open` hands a folder holding a ``manifest.json`` (or files named as
a sharded store's) to :class:`gedenb.sharded.ShardedReader`, a file starting
with the image container's magic bytes to :class:`gedenb.images.ImageReader`
and anything else to :class:`gedenb.Reader` (which refuses what is not a
``.gede`` file).  :func:`save` writes a :class:`gedenb.Compressed` table
(:mod:`gedenb.store`) or a :class:`gedenb.images.ImageStore`
(:mod:`gedenb.images`) atomically.  This module sits above the three
readers; none of them imports it.
"""

from __future__ import annotations

import builtins
import errno
import os
import stat
import tempfile
import threading
from pathlib import Path

from .compressed import Compressed
from .store import MAGIC, Reader, table_writer

__all__ = ["open", "save"]

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    try:  # Linux >= 4.7: read it without changing it
        with builtins.open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _serializer(obj):
    """``write_to(write) -> size`` for a Compressed table or a :class:`gedenb.images.ImageStore`."""
    if isinstance(obj, Compressed):
        return table_writer(obj)
    if type(obj).__name__ == "ImageStore":  # imported only when needed
        from .images import ImageStore, write_image_store

        if isinstance(obj, ImageStore):
            return lambda write: write_image_store(obj, write)
    raise TypeError(f"expected a gedenb.Compressed result or a gedenb.images.ImageStore, got {type(obj).__name__}")


def save(c, path) -> int:
    """Write ``c`` to ``path`` atomically; return the bytes written.

    The file is written to a temporary file ``.NAME.XXXXXXXX.tmp`` in the
    same folder, flushed and fsync'ed, then renamed over ``path``: an
    exception, ``KeyboardInterrupt`` or full disk during the save leaves any
    previous file at ``path`` intact and removes the temporary file.  Only a
    process killed outright (SIGKILL, power loss) can leave the temporary
    file behind -- never a partial file at ``path``.  The new file gets the
    permission bits of the file it replaces, or ``0o666 & ~umask``.  The
    same result always gives the same bytes.

    ``c`` may also be a :class:`gedenb.images.ImageStore`; it is written as
    an image container (one ``.gede`` table per class) the same way.

    Parameters
    ----------
    c : Compressed or gedenb.images.ImageStore
        What to write: a table (as :func:`gedenb.compress` returns it) or an image store.
    path : str or os.PathLike
        The file to write; its folder must exist.

    Raises
    ------
    TypeError
        ``c`` is neither a :class:`gedenb.Compressed` nor an image store.
    FileNotFoundError
        The folder of ``path`` does not exist.
    OSError
        Writing failed (the previous file is intact).
    """
    write_to = _serializer(c)
    path = Path(os.fspath(path))
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"folder {folder} does not exist", str(path))
    size = _replace(path, folder, write_to)
    try:  # make the rename itself durable where the platform allows it
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return size
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
    return size


def _replace(path: Path, folder: Path, write_to) -> int:
    """Write a temporary file in ``folder`` through ``write_to``, fsync it and rename it over ``path``."""
    try:
        st = os.stat(path)
        mode = stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else None
    except OSError:
        mode = None
    if mode is None:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            size = write_to(f.write)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return size


def open(path, verify: bool = True) -> Reader:  # noqa: A001 - mirrors the builtin on purpose
    """Open a ``.gede`` file for random access.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.gede`` file, an image container, or the folder of a sharded store.
    verify : bool, default True
        Check every section's CRC-32 and every record's base ID at open
        (one sequential pass over the file).  ``False`` checks the header,
        the small sections (codecs, masks, beta positions) and every size,
        but not the checksums of the bases, records and weights: decoding
        still never crashes, and a record naming a base ID out of range
        raises :class:`FormatError` when it is read, but other flipped bits
        in those streams go unnoticed.

    Raises
    ------
    FormatError
        The file is not a valid ``.gede`` file; the message names the section.
    FileNotFoundError
        No such file.
    IsADirectoryError
        ``path`` is a folder.

    Returns
    -------
    Reader
        Or a :class:`gedenb.images.ImageReader` when the file is an image
        container written from a :class:`gedenb.images.ImageStore`, or a
        :class:`gedenb.sharded.ShardedReader` when ``path`` is the folder of
        a sharded store (written by :func:`gedenb.dask.compress`).
    """
    p = Path(os.fspath(path))
    if p.is_dir():
        from .sharded import MANIFEST, ShardedReader, looks_like_a_store

        if (p / MANIFEST).exists() or looks_like_a_store(p):
            return ShardedReader(p, verify=verify)  # FormatError for a store without its manifest
        raise IsADirectoryError(errno.EISDIR, "is a folder, neither a .gede file nor a sharded store (no "
                                "manifest.json)", str(p))
    if p.is_file():
        from .images import IMAGES_MAGIC

        with p.open("rb") as f:
            magic = f.read(len(MAGIC))
        if magic == IMAGES_MAGIC:
            from .images import ImageReader

            return ImageReader(p, verify=verify)
    return Reader(p, verify=verify)
