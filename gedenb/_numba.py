"""One place for the Numba JIT options used by every kernel.

``fastmath`` is off on purpose: decoding must reproduce IEEE-754 results
bit for bit (``q / 10**k`` must not become ``q * (1 / 10**k)``).  Caching of
compiled kernels is opt-in through the environment variable
``GEDENB_NUMBA_CACHE=1`` so that importing the package never writes files.
"""

from __future__ import annotations

import os

# Numba's OpenMP threads busy-wait between parallel regions by default; on a
# machine with other work running this made batch decoding up to 30x slower
# (measured: 1,024 MNIST rows in 23 ms instead of 0.96 ms).  Waiting
# passively costs nothing measurable when the machine is idle.  A value the
# user set wins; it must be set before the OpenMP runtime loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hashlib  # noqa: E402
import importlib.util  # noqa: E402
import threading  # noqa: E402
import warnings  # noqa: E402

import numba  # noqa: E402
from numba.core import cgutils, types  # noqa: E402
from numba.core.caching import FunctionCache  # noqa: E402
from numba.core.errors import NumbaPerformanceWarning  # noqa: E402
from numba.extending import intrinsic  # noqa: E402
from numba.np.arrayobj import make_array  # noqa: E402

# Readers are used from threads and from forked DataLoader workers.  Numba's
# default OpenMP layer is GNU OpenMP here, which kills a forked child that
# runs a parallel kernel after its parent did.  Intel TBB (a dependency where
# wheels exist) is both fork- and thread-safe: ask for it unless the user
# chose a threading layer.
if "NUMBA_THREADING_LAYER" not in os.environ and importlib.util.find_spec("tbb") is not None:
    numba.config.THREADING_LAYER = "safe"

__all__ = ["PARALLEL_MIN_VALUES", "borrowed", "call_serial", "njit", "pnjit", "prange"]

_CACHE = os.environ.get("GEDENB_NUMBA_CACHE", "0") == "1"

#: Below this many values a batch is decoded on one thread (no pool start-up).  Each decoding module binds
#: this name (tests patch it there).
PARALLEL_MIN_VALUES = 1 << 16

#: Options shared by every serial kernel.
JIT_OPTIONS = dict(nogil=True, cache=_CACHE, fastmath=False, error_model="numpy")

prange = numba.prange


class _VariantCache(FunctionCache):
    """Numba's on-disk cache for a kernel that a factory makes, its entries keyed by ``variant``.

    Numba keys a closure's entries by the pickled contents of its cells.  A
    cell that holds another kernel (a dispatcher) pickles with an id drawn
    afresh in every process, so such a closure never found its entry again:
    each process compiled it anew and added a file to the cache.  ``variant``
    (a tuple of bools, ints and tuples) must name everything the factory's
    arguments select; the bytecode and the source file's time stamp are
    checked as Numba checks them.
    """

    def __init__(self, py_func, variant):
        self._variant = repr(variant).encode()
        super().__init__(py_func)

    def _index_key(self, sig, codegen):
        code = hashlib.sha256(self._py_func.__code__.co_code).hexdigest()
        return sig, codegen.magic_tuple(), (code, hashlib.sha256(self._variant).hexdigest())


def njit(func=None, variant=None, **overrides):
    """``numba.njit`` with the package's options (serial kernels).

    ``variant``: for a kernel made by a factory (a closure), a tuple of the
    factory's arguments that names the kernel in the on-disk cache
    (``GEDENB_NUMBA_CACHE=1``; :class:`_VariantCache`).
    """
    opts = {**JIT_OPTIONS, **overrides}
    if func is None:
        return lambda f: njit(f, variant, **overrides)
    kernel = numba.njit(**opts)(func)
    if variant is not None and opts["cache"]:
        kernel._cache = _VariantCache(kernel.py_func, variant)
    return kernel


def pnjit(func=None, variant=None, **overrides):
    """``numba.njit(parallel=True)`` with the package's options."""
    return njit(func, variant, parallel=True, **overrides)


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
