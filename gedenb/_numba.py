"""One place for the Numba JIT options used by every kernel.

``fastmath`` is off on purpose: decoding must reproduce IEEE-754 results
bit for bit (``q / 10**k`` must not become ``q * (1 / 10**k)``).  Caching of
compiled kernels is opt-in through the environment variable
``GEDENB_NUMBA_CACHE=1`` so that importing the package never writes files.
"""

from __future__ import annotations

import os

import numba

__all__ = ["njit", "pnjit", "prange"]

_CACHE = os.environ.get("GEDENB_NUMBA_CACHE", "0") == "1"

#: Options shared by every serial kernel.
JIT_OPTIONS = dict(nogil=True, cache=_CACHE, fastmath=False, error_model="numpy")

prange = numba.prange


def njit(func=None, **overrides):
    """``numba.njit`` with the package's options (serial kernels)."""
    opts = {**JIT_OPTIONS, **overrides}
    if func is None:
        return lambda f: numba.njit(**opts)(f)
    return numba.njit(**opts)(func)


def pnjit(func=None, **overrides):
    """``numba.njit(parallel=True)`` with the package's options."""
    return njit(func, parallel=True, **overrides)
