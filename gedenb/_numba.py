"""One place for the Numba JIT options used by every kernel.

``fastmath`` is off on purpose: decoding must reproduce IEEE-754 results
bit for bit (``q / 10**k`` must not become ``q * (1 / 10**k)``).

Two choices here decide how gedenb behaves on a fresh install:

* **Threading layer.**  Readers are used from threads and from forked
  DataLoader workers.  Numba's OpenMP layer is GNU OpenMP on Linux, which
  kills a forked child that runs a parallel kernel after its parent did;
  Intel TBB is both fork- and thread-safe.  The ``tbb`` wheel (a dependency
  on x86-64) puts ``libtbb.so.12`` in ``<venv>/lib``, where Numba's
  ``tbbpool`` extension (no RPATH) cannot find it, so a plain ``pip install``
  used to fall back to GNU OpenMP.  :func:`_load_tbb` loads the wheel's
  library by its full path before Numba picks a layer (the dynamic loader
  then resolves ``libtbb.so.12`` to the library already loaded) and gedenb
  asks Numba for TBB.  ``NUMBA_THREADING_LAYER`` set by the user wins.
  Where no TBB can be loaded (no wheel for the platform), Numba's default
  applies: see :func:`threading_layer_info`.
* **On-disk cache of compiled kernels**, on by default, in a per-user
  folder (:func:`kernel_cache_dir`; ``$GEDENB_CACHE/kernels`` when set):
  the first process on a machine compiles, later ones load.  The folder is
  made when the first kernel compiles, not at import; when it cannot be
  written the cache is skipped silently.  ``GEDENB_NUMBA_CACHE=0`` turns it
  off.  Entries are keyed by a hash of gedenb's source files
  (:func:`_package_stamp`), not only the kernel's own file: a kernel inlines
  kernels and constants from other modules, and Numba's own per-file stamp
  would reuse a stale entry after an upgrade that changed only those.

Under ``NUMBA_DISABLE_JIT=1`` (coverage, debuggers; the ``nojit`` pass of
``.ci/run``) :func:`njit` and :func:`pnjit` give each kernel back as plain
Python with compiled code's silent overflow (:func:`_pure_python`),
:func:`borrowed` gives its array back, ``prange`` is ``range`` and
:func:`call_serial` calls the function.
"""

from __future__ import annotations

import os
import sys

# Numba's OpenMP threads busy-wait between parallel regions by default; on a
# machine with other work running this made batch decoding up to 30x slower
# (measured: 1,024 MNIST rows in 23 ms instead of 0.96 ms).  Waiting
# passively costs nothing measurable when the machine is idle.  A value the
# user set wins; it must be set before the OpenMP runtime loads.  (Only the
# OpenMP layer reads it: the fallback where TBB cannot be loaded.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import ctypes  # noqa: E402
import functools  # noqa: E402
import hashlib  # noqa: E402
import importlib.metadata  # noqa: E402
import threading  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
from numba.core import cgutils, types  # noqa: E402
from numba.core.caching import (  # noqa: E402
    CompileResultCacheImpl,
    FunctionCache,
    NullCache,
    _Cache,
    _CacheLocator,
    _SourceFileBackedLocatorMixin,
)
from numba.core.errors import NumbaPerformanceWarning  # noqa: E402
from numba.extending import intrinsic  # noqa: E402
from numba.misc.appdirs import user_cache_dir  # noqa: E402
from numba.np.arrayobj import make_array  # noqa: E402

__all__ = ["PARALLEL_MIN_VALUES", "borrowed", "call_serial", "kernel_cache_dir", "njit", "pnjit", "prange",
           "threading_layer_info", "warmup_rows"]

#: File names of the TBB runtime that Numba's ``tbbpool`` links against, per platform.
_TBB_NAMES = {"linux": "libtbb.so.12", "darwin": "libtbb.12.dylib", "win32": "tbb12.dll"}


def _load_tbb() -> str | None:
    """Load the TBB runtime of the ``tbb`` distribution, if installed; its path, or None.

    Loading it by full path makes it the library that later loads of
    ``libtbb.so.12`` by name resolve to (Numba's version check and its
    ``tbbpool`` extension), wherever pip put it.
    """
    name = _TBB_NAMES.get(sys.platform)
    try:
        files = importlib.metadata.distribution("tbb").files or ()
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if name is not None and f.name == name:
            path = Path(f.locate()).resolve()
            try:
                ctypes.CDLL(str(path), mode=getattr(ctypes, "RTLD_GLOBAL", 0))
            except OSError:
                continue
            return str(path)
    return None


def _choose_threading_layer() -> str | None:
    """Load TBB and, unless the user chose a layer, ask Numba for it; the loaded library's path, or None."""
    path = _load_tbb()
    if path is None:
        return None
    try:
        from numba.np.ufunc import tbbpool  # noqa: F401  (fails if TBB is too old or missing a symbol)
    except ImportError:
        return None
    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "tbb"
    return path


_TBB_PATH = _choose_threading_layer()


def threading_layer_info() -> dict:
    """Which threading layer gedenb asked Numba for, and why; for bug reports and tests.

    Returns
    -------
    dict
        ``requested`` (the layer Numba will load at the first parallel
        kernel: ``"tbb"``, or the user's ``NUMBA_THREADING_LAYER``, or
        Numba's ``"default"`` order), ``tbb_library`` (path of the TBB
        runtime gedenb loaded, or None), ``in_use`` (``numba.threading_layer()``
        once a parallel kernel has run, else None) and ``fork_safe``
        (whether forked children may run parallel kernels after their parent
        did: TBB and workqueue are; GNU OpenMP is not; None before the first
        parallel kernel).
    """
    try:
        in_use = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        in_use = None
    return {"requested": str(numba.config.THREADING_LAYER), "tbb_library": _TBB_PATH, "in_use": in_use,
            "fork_safe": None if in_use is None else in_use in ("tbb", "workqueue")}


_CACHE = os.environ.get("GEDENB_NUMBA_CACHE", "1") != "0"

#: ``NUMBA_DISABLE_JIT=1``: every kernel runs as plain Python (the ``nojit`` CI pass runs the readers so).
_NO_JIT = bool(numba.config.DISABLE_JIT)

#: Below this many values a batch is decoded on one thread (no pool start-up).  Each decoding module binds
#: this name (tests patch it there).
PARALLEL_MIN_VALUES = 1 << 16

#: Options shared by every serial kernel (the on-disk cache is set up by :func:`njit`).
JIT_OPTIONS = dict(nogil=True, fastmath=False, error_model="numpy")

prange = numba.prange


def warmup_rows(n: int, d: int) -> list:
    """Row indices that make a reader run each of its decoding kernels once (for ``warmup()``): one row
    (the one-row path), two rows (serial batches) and a batch of at least ``PARALLEL_MIN_VALUES`` values
    (parallel batches), as int64 arrays over ``[0, n)``; none for an empty store, and none under
    ``NUMBA_DISABLE_JIT=1`` (nothing compiles; a batch of 2**16 values in plain Python takes minutes).

    Parameters
    ----------
    n : int
        Rows of the store.
    d : int
        Values per row.
    """
    import numpy as np

    if n <= 0 or _NO_JIT:
        return []
    k = max(2, -(-PARALLEL_MIN_VALUES // max(int(d), 1)))
    return [np.zeros(1, dtype=np.int64), np.arange(2, dtype=np.int64) % n, np.arange(k, dtype=np.int64) % n]


_PACKAGE_DIR = Path(__file__).resolve().parent


def kernel_cache_dir() -> Path:
    """The folder of gedenb's on-disk kernel cache: ``$GEDENB_CACHE/kernels``, else the platform's per-user
    cache folder (``~/.cache/gedenb/kernels`` on Linux, ``~/Library/Caches/gedenb/kernels`` on macOS,
    ``%LOCALAPPDATA%\\gedenb\\Cache\\kernels`` on Windows).  ``GEDENB_NUMBA_CACHE=0`` turns the cache off."""
    root = os.environ.get("GEDENB_CACHE") or user_cache_dir("gedenb", appauthor=False)
    return Path(root).expanduser() / "kernels"


#: Parts of the package that hold no kernels and that no kernel module imports (``test_install`` checks
#: both): their edits leave every compiled kernel as it was, so they are not in the cache's source stamp.
KERNEL_FREE = ("__main__.py", "experiments", "torch")


def _source_digest(folder: Path, skip: tuple = ()) -> str:
    """SHA-256 over the names and contents of every ``.py`` file below ``folder``, in sorted order, but for
    those under the top-level names ``skip``."""
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        rel = path.relative_to(folder)
        if rel.parts[0] in skip:
            continue
        h.update(rel.as_posix().encode() + b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def _package_stamp() -> str:
    """The source stamp of every cached kernel: a hash of gedenb's source files (all that kernels or the
    constants they read can come from)."""
    return _source_digest(_PACKAGE_DIR, KERNEL_FREE)


class _KernelLocator(_SourceFileBackedLocatorMixin, _CacheLocator):
    """Cache entries of a kernel in :func:`kernel_cache_dir`, one sub-folder per source folder (as Numba's
    own user-wide locator), stamped with :func:`_package_stamp`."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = str(kernel_cache_dir() / self.get_suitable_cache_subpath(py_file))

    def get_cache_path(self):
        return self._cache_path

    def get_source_stamp(self):
        return _package_stamp()


class _KernelCacheImpl(CompileResultCacheImpl):
    _locator_classes = [_KernelLocator]


class _KernelCache(FunctionCache):
    """Numba's on-disk cache in gedenb's folder; for a kernel that a factory makes, entries keyed by
    ``variant``.

    Numba keys a closure's entries by the pickled contents of its cells.  A
    cell that holds another kernel (a dispatcher) pickles with an id drawn
    afresh in every process, so such a closure never found its entry again:
    each process compiled it anew and added a file to the cache.  ``variant``
    (a tuple of bools, ints and tuples) must name everything the factory's
    arguments select; the bytecode is checked as Numba checks it.
    """

    _impl_class = _KernelCacheImpl

    def __init__(self, py_func, variant=None):
        self._variant = None if variant is None else repr(variant).encode()
        super().__init__(py_func)

    def _index_key(self, sig, codegen):
        if self._variant is None:
            return super()._index_key(sig, codegen)
        code = hashlib.sha256(self._py_func.__code__.co_code).hexdigest()
        return sig, codegen.magic_tuple(), (code, hashlib.sha256(self._variant).hexdigest())


class _LazyCache(_Cache):
    """A kernel's :class:`_KernelCache`, made when the kernel first compiles (importing gedenb writes
    nothing); a cache folder that cannot be made or written, or a failed read or write of an entry, means
    no caching for that kernel, silently (the kernel compiles as without a cache)."""

    def __init__(self, py_func, variant):
        self._args = (py_func, variant)
        self._cache = None
        self._enabled = True

    def _get(self):
        if self._cache is None:
            try:
                self._cache = _KernelCache(*self._args)
            except (OSError, RuntimeError):  # RuntimeError: Numba found no usable locator
                self._cache = NullCache()
            if not self._enabled:
                self._cache.disable()
        return self._cache

    @property
    def cache_path(self):
        return self._get().cache_path

    def load_overload(self, sig, target_context):
        if not self._enabled:
            return None
        try:
            return self._get().load_overload(sig, target_context)
        except (OSError, EOFError, ValueError):  # unreadable or truncated entry: compile instead
            return None

    def save_overload(self, sig, data):
        if not self._enabled:
            return
        try:
            self._get().save_overload(sig, data)
        except OSError:  # full disk, read-only folder
            pass

    def enable(self):
        self._enabled = True
        if self._cache is not None:
            self._cache.enable()

    def disable(self):
        self._enabled = False
        if self._cache is not None:
            self._cache.disable()

    def flush(self):
        self._get().flush()


def njit(func=None, variant=None, **overrides):
    """``numba.njit`` with the package's options (serial kernels) and the on-disk cache.

    ``variant``: for a kernel made by a factory (a closure), a tuple of the
    factory's arguments that names the kernel in the on-disk cache
    (:class:`_KernelCache`).  ``cache=False`` keeps a kernel out of it.
    """
    if func is None:
        return lambda f: njit(f, variant, **overrides)
    if _NO_JIT:
        return _pure_python(func)
    opts = {**JIT_OPTIONS, **overrides}
    cache = opts.pop("cache", True) and _CACHE
    kernel = numba.njit(**opts)(func)
    if cache:
        kernel._cache = _LazyCache(kernel.py_func, variant)
    return kernel


def pnjit(func=None, variant=None, **overrides):
    """``numba.njit(parallel=True)`` with the package's options."""
    return njit(func, variant, parallel=True, **overrides)


def _pure_python(func):
    """Kernel ``func`` as plain Python (``NUMBA_DISABLE_JIT=1``), with compiled code's arithmetic.

    A compiled kernel (``error_model="numpy"``) wraps integer overflow and
    divides floats by zero without a word; NumPy scalars warn instead (an
    error under ``-W error``).  The outermost kernel call runs under
    ``np.errstate(all="ignore")``; kernels it calls run as they are.
    """
    import numpy as np

    @functools.wraps(func)
    def kernel(*args, **kwargs):
        if getattr(_PURE_STATE, "inside", False):
            return func(*args, **kwargs)
        _PURE_STATE.inside = True
        try:
            with np.errstate(all="ignore"):
                return func(*args, **kwargs)
        finally:
            _PURE_STATE.inside = False

    kernel.py_func = func
    return kernel


_PURE_STATE = threading.local()


def _borrowed_python(arr):
    """:func:`borrowed` in plain Python (``NUMBA_DISABLE_JIT=1``): the array itself."""
    return arr


@intrinsic
def borrowed(typingctx, arr):
    """Inside a kernel: array ``arr`` without its reference count (same data, shape and strides; no owner).

    Numba counts references to every array a compiled function holds: one
    atomic increment and decrement per array argument of a call, per view,
    per slice, unless its pruning pass can prove them redundant, which it
    often cannot in functions with loops and many exits.  For a decoder that
    takes a dozen arrays per row this was ~0.4 us of a ~3.6 us one-row MNIST
    read (``scripts/entropy_read_profile.py``).  A borrowed array's count
    operations see no owner and do nothing.  Only for arrays that a caller
    keeps alive for the whole time the borrowed one is used: the arguments
    of the function that borrows them.  Never borrow an array the same
    function allocated (Numba may free it after its last named use, while
    the borrowed one is still read); never return one or store it.
    """
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, sig, args):
        src = make_array(arr)(context, builder, value=args[0])
        dst = make_array(arr)(context, builder)
        for name in ("nitems", "itemsize", "data", "shape", "strides"):
            setattr(dst, name, getattr(src, name))
        dst.meminfo = cgutils.get_null_value(dst.meminfo.type)
        dst.parent = cgutils.get_null_value(dst.parent.type)
        return dst._getvalue()

    return arr(arr), codegen


if _NO_JIT:  # an intrinsic has no pure-Python form
    borrowed = _borrowed_python  # noqa: F811


_SERIAL_SEEN: set = set()
_SERIAL_LOCK = threading.Lock()


def call_serial(kernel, key, *args):
    """``kernel(*args)`` for a serial loop compiled with ``parallel=True`` on purpose.

    Numba's parfor pipeline makes some plain loops several times faster, but
    warns that nothing ran in parallel whenever it compiles one.  ``key``
    names what selects a compiled version (dtypes, dimensions, writeable
    flags of the arguments): the first call with a new key compiles under a
    lock with that warning silenced, later calls go straight to the kernel.
    """
    if (kernel, key) in _SERIAL_SEEN:
        return kernel(*args)
    with _SERIAL_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaPerformanceWarning)
        out = kernel(*args)
    _SERIAL_SEEN.add((kernel, key))
    return out
