"""Image transforms applied before compression (paper Sec. 4.2.1).

A transform maps a batch of ``uint8`` images to the 2-D integer table that
EntroGeDe compresses row by row (one image per row) and back:

``identity``
    the pixels themselves, flattened, ``uint8``; exact.
``dct``
    the paper's transform: RGB -> YCbCr (JPEG/JFIF full-range BT.601, no
    chroma subsampling), a 2-D orthonormal DCT-II of every channel over the
    whole image, coefficients rounded to integers (``int16``).  Lossy:
    measured with :func:`roundtrip_error`, grey images (MNIST) come back
    within 1-2 grey levels (mean 0.05), RGB within 3-4 (mean 0.3: the
    colour inverse amplifies the rounding error of Cb and Cr by up to
    1.77).
``dct_lossless``
    not in the paper: the reversible YCoCg-R colour transform and an
    integer-to-integer 2-D DCT built from lifting steps.  The inverse gives
    back the images bit for bit; the coefficients differ from the rounded
    orthonormal DCT of the same colour planes by 1.75 units RMS.  Costs a
    few points of compression against ``dct`` (no information is lost).

Images are ``(N, H, W, C)`` arrays with ``C = 1`` (grey) or ``C = 3`` (RGB);
``(N, H, W)`` is read as ``C = 1``.  Every ``forward`` returns an
``(N, H*W*C)`` table whose column ``(u*W + v)*C + c`` holds pixel (or
frequency) ``(u, v)`` of channel ``c``, i.e. the image layout flattened in C
order.  ``inverse(coeffs, shape)`` takes ``shape = (H, W, C)`` (returns
``(N, H, W, C)``) or ``shape = (H, W)`` (returns ``(N, H, W)``).

Registry: :data:`TRANSFORMS` maps names to :class:`Transform` objects;
:func:`get_transform` accepts a name or a transform object and
:func:`register_transform` adds one.

Integer lifting DCT
-------------------
The orthonormal ``n``-point DCT-II matrix is written as a product of plane
rotations and exact signed permutations, for any ``n`` (not only powers of
two): even lengths split exactly into ``n/2`` butterflies, a DCT-II of half
length (recursively) and a DCT-IV of half length; odd lengths and the
DCT-IV blocks are factored by Givens QR (``G_K ... G_1 M = diag(1, ..., 1,
det M)``, so ``M = G_1^T ... G_K^T D``).  For ``n = 28`` that is 157 steps
instead of the 378 of a Givens QR of the whole matrix (``n = 32``: 187 vs
496), which halves the run time and the rounding noise.  Each rotation by
``t`` is reduced to ``t' = t - q pi/2`` with ``|t'| <= pi/4`` and an exact
quarter turn ``q`` (a swap with a sign change, or a negation of both
coordinates, so ``|p|`` never blows up near ``t = pi``); the rotation by
``t'`` is three lifting steps ::

    x += r(p*y);  y += r(u*x);  x += r(p*y),   p = -tan(t'/2) = (cos t' - 1)/sin t', u = sin t'

with ``r(v) = floor(v + 0.5)``, so ``|p| <= 0.42`` and ``|u| <= 0.71``.  The
inverse subtracts the same rounded quantities, computed from the same
integers by the same code, in reverse order, which undoes every step
exactly.  The columns (all at once, every channel) and then the rows of an
image are transformed separably; the plan is computed once per length by
:func:`lifting_plan`.

Measured against ``np.rint`` of the float orthonormal DCT of the same
(YCoCg-R) planes, the integer coefficients differ by 1.3 on average (RMS
1.75) on random and CIFAR-10 images (MNIST: 1.15, RMS 1.5); the largest
difference is about 10 on random images and on MNIST, and about 30 on
CIFAR-10, where rounding errors of flat regions are the same in many
columns and add up in the lowest frequencies.
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
import scipy.fft

from ._numba import njit, pnjit, prange

__all__ = [
    "TRANSFORMS",
    "LiftingPlan",
    "Transform",
    "dct_matrix",
    "get_transform",
    "lifting_plan",
    "register_transform",
    "rgb_to_ycbcr",
    "rgb_to_ycocg_r",
    "roundtrip_error",
    "ycbcr_to_rgb",
    "ycocg_r_to_rgb",
]

#: JPEG/JFIF full-range BT.601 RGB -> YCbCr (rows Y, Cb, Cr; offsets 0, 128, 128).
YCBCR_MATRIX = np.array(
    [
        [0.299, 0.587, 0.114],
        [-0.168736, -0.331264, 0.5],
        [0.5, -0.418688, -0.081312],
    ]
)
YCBCR_MATRIX.setflags(write=False)
#: The exact inverse of :data:`YCBCR_MATRIX` (JFIF quotes it rounded: 1.402, 0.344136, ...).
YCBCR_INVERSE = np.linalg.inv(YCBCR_MATRIX)
YCBCR_INVERSE.setflags(write=False)
_YCBCR_OFFSET = np.array([0.0, 128.0, 128.0])

_INT16_MAX = int(np.iinfo(np.int16).max)
_INT32_MAX = int(np.iinfo(np.int32).max)
#: Images per block in the floating-point DCT (bounds the float64 scratch memory).
_BLOCK = 2048


# --------------------------------------------------------------------------
# the Transform object and the registry
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Transform:
    """A named, invertible map between ``uint8`` image batches and integer tables.

    Attributes
    ----------
    name : str
        Registry key.
    forward : callable
        ``forward(images) -> coeffs``: ``(N, H, W, C)`` or ``(N, H, W)``
        ``uint8`` images to an ``(N, H*W*C)`` integer table.
    inverse : callable
        ``inverse(coeffs, shape) -> images``: ``shape`` is ``(H, W, C)`` or
        ``(H, W)``; returns ``uint8`` images of shape ``(N, *shape)``.
    lossless : bool
        ``inverse(forward(x), x.shape[1:])`` equals ``x`` bit for bit.
    description : str
        One line for listings.
    """

    name: str
    forward: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    inverse: Callable[[np.ndarray, tuple], np.ndarray] = field(repr=False)
    lossless: bool
    description: str = field(default="", repr=False)


def _check_transform_like(t) -> None:
    name = getattr(t, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"a transform needs a non-empty str `name`, got {name!r}")
    for attr in ("forward", "inverse"):
        if not callable(getattr(t, attr, None)):
            raise TypeError(f"transform {name!r} needs a callable `{attr}`")
    if not isinstance(getattr(t, "lossless", None), bool):
        raise TypeError(f"transform {name!r} needs a bool `lossless`")


def register_transform(t, *, overwrite: bool = False):
    """Add a transform to :data:`TRANSFORMS` under ``t.name``.

    Parameters
    ----------
    t : Transform or any object with ``name``, ``forward``, ``inverse``, ``lossless``
    overwrite : bool, default False
        Replace an existing transform of the same name.

    Returns
    -------
    t
        The transform, unchanged.

    Raises
    ------
    TypeError
        ``t`` lacks one of the attributes.
    ValueError
        The name is taken (and ``overwrite`` is False).

    Examples
    --------
    >>> import numpy as np
    >>> from gedenb.transforms import Transform, register_transform, get_transform, TRANSFORMS
    >>> neg = Transform("negative", lambda x: (255 - x).reshape(len(x), -1),
    ...                 lambda c, s: (255 - c).astype(np.uint8).reshape(len(c), *s), True)
    >>> register_transform(neg) is get_transform("negative")
    True
    >>> del TRANSFORMS["negative"]
    """
    _check_transform_like(t)
    old = TRANSFORMS.get(t.name)
    if old is not None and old is not t and not overwrite:
        raise ValueError(f"a transform named {t.name!r} is already registered; pass overwrite=True to replace it")
    TRANSFORMS[t.name] = t
    return t


def get_transform(transform):
    """A transform by name (see :data:`TRANSFORMS`), or a transform object passed through.

    Parameters
    ----------
    transform : str or transform object
        A name in :data:`TRANSFORMS`, or an object with ``name``, ``forward``, ``inverse`` and ``lossless``.

    Raises
    ------
    ValueError
        Unknown name (the message lists the registered ones).
    TypeError
        Neither a string nor an object with ``name``/``forward``/``inverse``/``lossless``.

    Examples
    --------
    >>> from gedenb.transforms import get_transform
    >>> get_transform("dct").lossless, get_transform("dct_lossless").lossless
    (False, True)
    """
    if isinstance(transform, str):
        try:
            return TRANSFORMS[transform]
        except KeyError:
            raise ValueError(
                f"unknown transform {transform!r}; choose from {sorted(TRANSFORMS)} or pass a Transform"
            ) from None
    _check_transform_like(transform)
    return transform


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------
def _check_images(images) -> np.ndarray:
    """``(N, H, W, C)`` C-contiguous uint8 view of a batch of images."""
    if not isinstance(images, np.ndarray):
        raise TypeError(f"expected a NumPy array of images, got {type(images).__name__}; use np.asarray(images)")
    if images.dtype != np.uint8:
        raise TypeError(
            f"expected uint8 images, got dtype {images.dtype}; convert with "
            "images.astype(np.uint8) after scaling/clipping the values to [0, 255]"
        )
    if images.ndim == 3:
        images = images[..., None]
    elif images.ndim != 4:
        raise ValueError(
            f"expected images of shape (N, H, W, C) or (N, H, W), got {images.ndim}-D with shape {images.shape}"
        )
    n, h, w, c = images.shape
    if c not in (1, 3):
        raise ValueError(f"expected 1 (grey) or 3 (RGB) channels, got C = {c} (shape {images.shape})")
    if h == 0 or w == 0:
        raise ValueError(f"images must have at least one pixel, got shape {images.shape}")
    return np.ascontiguousarray(images)


def _check_coeffs(coeffs, shape):
    """Validated ``(N, H*W*C)`` integer table, ``(H, W, C)`` and the output shape."""
    if not isinstance(coeffs, np.ndarray):
        raise TypeError(f"expected a NumPy array of coefficients, got {type(coeffs).__name__}; use np.asarray(coeffs)")
    if coeffs.dtype.kind not in "iu":
        raise TypeError(
            f"expected an integer coefficient table, got dtype {coeffs.dtype}; "
            "convert with coeffs.astype(np.int32) (values must be integers)"
        )
    if coeffs.ndim != 2:
        raise ValueError(f"expected a 2-D table (N, H*W*C), got {coeffs.ndim}-D with shape {coeffs.shape}")
    try:
        dims = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise ValueError(f"shape must be (H, W, C) or (H, W) of ints, got {shape!r}") from None
    if len(dims) not in (2, 3):
        raise ValueError(f"shape must be (H, W, C) or (H, W), got {shape!r}")
    h, w = dims[:2]
    c = dims[2] if len(dims) == 3 else 1
    if h < 1 or w < 1:
        raise ValueError(f"shape must have positive H and W, got {shape!r}")
    if c not in (1, 3):
        raise ValueError(f"expected 1 (grey) or 3 (RGB) channels, got C = {c} in shape {shape!r}")
    if coeffs.shape[1] != h * w * c:
        raise ValueError(
            f"coefficient rows have {coeffs.shape[1]} values but shape {tuple(shape)} needs H*W*C = {h * w * c}"
        )
    out_shape = (coeffs.shape[0], *dims)
    return np.ascontiguousarray(coeffs), (h, w, c), out_shape


def _signed_dtype(bound: float) -> np.dtype:
    """int16 when ``|values| <= bound`` fits it, else int32 (``ValueError`` beyond)."""
    if bound <= _INT16_MAX:
        return np.dtype(np.int16)
    if bound <= _INT32_MAX:
        return np.dtype(np.int32)
    raise ValueError("images too large: DCT coefficients could exceed the int32 range")


def _dct_dtype(h: int, w: int) -> np.dtype:
    """Coefficient dtype of ``dct`` for ``H x W`` images (see :func:`_dct_forward`)."""
    return _signed_dtype(128.0 * math.sqrt(h * w) + 1.0)


def _dct_lossless_dtype(h: int, w: int, c: int) -> np.dtype:
    """Coefficient dtype of ``dct_lossless`` for ``H x W x C`` images (see :func:`_dct_lossless_forward`)."""
    return _signed_dtype((255.0 if c == 3 else 128.0) * math.sqrt(h * w) + 1024.0)


def _coeff_dtypes(t, shape) -> tuple | None:
    """The coefficient dtypes the built-in transform ``t`` gives for images of ``shape`` ``(H, W, C)``.

    Parameters
    ----------
    t : Transform
    shape : (H, W, C) of ints

    Returns
    -------
    tuple of numpy.dtype or None
        What ``t.forward`` can return for such images (``dct_lossless``: also ``int32``, its fallback);
        ``()`` when ``t`` cannot transform them (``C`` not 1 or 3, or too many pixels); ``None`` when ``t``
        is not a built-in transform (its coefficients are its own business).
    """
    rule = _COEFF_DTYPES.get(t.forward)
    if rule is None:
        return None
    h, w, c = (int(v) for v in shape)
    if h < 1 or w < 1 or c not in (1, 3):
        return ()
    try:
        return tuple(dict.fromkeys(rule(h, w, c)))
    except ValueError:  # too many pixels for int32 coefficients
        return ()


# --------------------------------------------------------------------------
# identity
# --------------------------------------------------------------------------
def _identity_forward(images: np.ndarray) -> np.ndarray:
    """Pixels flattened to ``(N, H*W*C)`` ``uint8`` (a copy)."""
    x = _check_images(images)
    n, h, w, c = x.shape
    return x.reshape(n, h * w * c).copy()


def _identity_inverse(coeffs: np.ndarray, shape) -> np.ndarray:
    """The images back from a flattened ``uint8`` (or in-range integer) table."""
    coeffs, _, out_shape = _check_coeffs(coeffs, shape)
    if coeffs.dtype != np.uint8 and coeffs.size and (coeffs.min() < 0 or coeffs.max() > 255):
        raise ValueError("identity coefficients are pixels and must lie in [0, 255]")
    return coeffs.astype(np.uint8).reshape(out_shape)


# --------------------------------------------------------------------------
# colour transforms
# --------------------------------------------------------------------------
def rgb_to_ycbcr(rgb) -> np.ndarray:
    """JPEG/JFIF full-range YCbCr (BT.601, float64) of RGB values in [0, 255].

    ``Y = 0.299 R + 0.587 G + 0.114 B``, ``Cb = 128 + 0.5 (B - Y) / 0.886``,
    ``Cr = 128 + 0.5 (R - Y) / 0.701``; the last axis holds the channels.

    Parameters
    ----------
    rgb : array_like, last axis R, G, B
        Values in [0, 255].

    Examples
    --------
    >>> from gedenb.transforms import rgb_to_ycbcr
    >>> rgb_to_ycbcr([255, 255, 255]).round(6).tolist()
    [255.0, 128.0, 128.0]
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    return rgb @ YCBCR_MATRIX.T + _YCBCR_OFFSET


def ycbcr_to_rgb(ycc) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr` (float64, not rounded or clipped).

    Parameters
    ----------
    ycc : array_like, last axis Y, Cb, Cr
        As :func:`rgb_to_ycbcr` gives them.
    """
    ycc = np.asarray(ycc, dtype=np.float64)
    return (ycc - _YCBCR_OFFSET) @ YCBCR_INVERSE.T


@njit(inline="always")
def _ycocg_r(r, g, b):
    co = r - b
    t = b + (co >> 1)
    cg = g - t
    return t + (cg >> 1), co, cg


@njit(inline="always")
def _ycocg_r_inv(y, co, cg):
    t = y - (cg >> 1)
    g = cg + t
    b = t - (co >> 1)
    return b + co, g, b


@pnjit
def _ycocg_r_array(x, out):
    n = x.shape[0]
    for i in prange(n):
        y, co, cg = _ycocg_r(np.int64(x[i, 0]), np.int64(x[i, 1]), np.int64(x[i, 2]))
        out[i, 0] = y
        out[i, 1] = co
        out[i, 2] = cg


@pnjit
def _ycocg_r_inv_array(x, out):
    n = x.shape[0]
    for i in prange(n):
        r, g, b = _ycocg_r_inv(np.int64(x[i, 0]), np.int64(x[i, 1]), np.int64(x[i, 2]))
        out[i, 0] = r
        out[i, 1] = g
        out[i, 2] = b


def rgb_to_ycocg_r(rgb) -> np.ndarray:
    """Reversible YCoCg-R colour transform of integer RGB (last axis), as int64.

    Lifting form (Malvar & Sullivan): ``Co = R - B``, ``t = B + (Co >> 1)``,
    ``Cg = G - t``, ``Y = t + (Cg >> 1)``.  For 8-bit RGB, ``Y`` lies in
    [0, 255] and ``Co``, ``Cg`` in [-255, 255]; :func:`ycocg_r_to_rgb`
    inverts it exactly.  The same inline code runs inside the image kernels.

    Parameters
    ----------
    rgb : integer array_like, last axis R, G, B
        The pixels.

    Examples
    --------
    >>> from gedenb.transforms import rgb_to_ycocg_r, ycocg_r_to_rgb
    >>> rgb_to_ycocg_r([200, 100, 50]).tolist()
    [112, 150, -25]
    >>> ycocg_r_to_rgb([112, 150, -25]).tolist()
    [200, 100, 50]
    """
    return _apply_triples(_ycocg_r_array, rgb, "rgb")


def ycocg_r_to_rgb(ycocg) -> np.ndarray:
    """Exact inverse of :func:`rgb_to_ycocg_r` (int64, last axis Y, Co, Cg).

    Parameters
    ----------
    ycocg : integer array_like, last axis Y, Co, Cg
        As :func:`rgb_to_ycocg_r` gives them.
    """
    return _apply_triples(_ycocg_r_inv_array, ycocg, "ycocg")


def _apply_triples(kernel, a, name) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "biu":
        raise TypeError(f"{name} must hold integers, got dtype {a.dtype}; use .astype(np.int64)")
    if a.ndim == 0 or a.shape[-1] != 3:
        raise ValueError(f"{name} needs a last axis of length 3, got shape {a.shape}")
    flat = np.ascontiguousarray(a.reshape(-1, 3).astype(np.int64, copy=False))
    out = np.empty_like(flat)
    kernel(flat, out)
    return out.reshape(a.shape)


# --------------------------------------------------------------------------
# the paper's floating-point DCT
# --------------------------------------------------------------------------
def _planes_float(x: np.ndarray) -> np.ndarray:
    """Centred float64 colour planes ``(n, H, W, C)``: Y-128, Cb-128, Cr-128 (or grey-128)."""
    f = x.astype(np.float64)
    f -= 128.0
    if x.shape[3] == 3:
        # The Y row of the matrix sums to 1 and the Cb, Cr rows to 0, so
        # M (rgb - 128) = (Y - 128, Cb - 128, Cr - 128).
        f = f @ YCBCR_MATRIX.T
    return f


def _dct_forward(images: np.ndarray) -> np.ndarray:
    """``rint`` of the orthonormal 2-D DCT-II of the centred YCbCr planes, ``int16``.

    Every centred plane value ``v`` has ``|v| <= 128``, and one orthonormal
    DCT coefficient of an ``H x W`` plane is bounded by ``128 * sqrt(H*W)``
    (Cauchy-Schwarz over a unit-norm basis vector), so ``int16`` holds
    every coefficient while ``H*W <= 65,025`` (up to 255 x 255 pixels);
    larger images get ``int32``.  The range is checked again at run time.
    """
    x = _check_images(images)
    n, h, w, c = x.shape
    dtype = _dct_dtype(h, w)
    lim = np.iinfo(dtype).max
    out = np.empty((n, h * w * c), dtype=dtype)
    for s in range(0, n, _BLOCK):
        f = scipy.fft.dctn(_planes_float(x[s:s + _BLOCK]), type=2, norm="ortho", axes=(1, 2), overwrite_x=True)
        np.rint(f, out=f)
        if f.size and np.abs(f).max() > lim:  # pragma: no cover - excluded by the bound above
            raise AssertionError("DCT coefficient outside its dtype range; please report this bug")
        out[s:s + _BLOCK] = f.reshape(len(f), -1)
    return out


def _dct_inverse(coeffs: np.ndarray, shape) -> np.ndarray:
    """Inverse DCT, YCbCr -> RGB, ``rint``, clip to [0, 255], ``uint8``."""
    coeffs, (h, w, c), out_shape = _check_coeffs(coeffs, shape)
    n = coeffs.shape[0]
    out = np.empty((n, h, w, c), dtype=np.uint8)
    for s in range(0, n, _BLOCK):
        f = coeffs[s:s + _BLOCK].reshape(-1, h, w, c).astype(np.float64)
        f = scipy.fft.idctn(f, type=2, norm="ortho", axes=(1, 2), overwrite_x=True)
        if c == 3:
            f = f @ YCBCR_INVERSE.T
        f += 128.0
        np.rint(f, out=f)
        np.clip(f, 0.0, 255.0, out=f)
        out[s:s + _BLOCK] = f
    return out.reshape(out_shape)


# --------------------------------------------------------------------------
# integer lifting DCT
# --------------------------------------------------------------------------
class LiftingPlan(NamedTuple):
    """Integer-to-integer ``n``-point DCT-II as lifted plane rotations (see the module notes).

    Step ``k`` acts on the pair ``(x, y) = (v[a[k]], v[b[k]])``: three rounded
    lifting steps with ``p[k]`` and ``u[k]`` (a rotation by ``angle[k]``,
    ``|angle| <= pi/4``), then the exact signed permutation
    ``E = e[k].reshape(2, 2)`` (entries 0 or +-1: a quarter turn, a
    reflection or the identity).  After the last step coefficient ``j``
    sits in ``v[perm[j]]``.

    Attributes
    ----------
    n : int
    a, b : (K,) int64
    p, u : (K,) float64
    e : (K, 4) float64
    perm : (n,) int64
    """

    n: int
    a: np.ndarray
    b: np.ndarray
    p: np.ndarray
    u: np.ndarray
    e: np.ndarray
    perm: np.ndarray

    @property
    def angles(self) -> np.ndarray:
        """Angle of each lifted rotation, in [-pi/4, pi/4]."""
        return -2.0 * np.arctan(self.p)

    def matrix(self) -> np.ndarray:
        """The real ``n x n`` matrix the plan realises without rounding (equals :func:`dct_matrix`)."""
        m = np.eye(self.n)
        for a, b, t, e in zip(self.a, self.b, self.angles, self.e):
            c, s = math.cos(t), math.sin(t)
            m[[a, b]] = e.reshape(2, 2) @ np.array([[c, -s], [s, c]]) @ m[[a, b]]
        return m[self.perm]


def dct_matrix(n: int) -> np.ndarray:
    """The orthonormal ``n``-point DCT-II matrix (scipy's ``dct(..., norm="ortho")``).

    Parameters
    ----------
    n : int
        Points of the transform.

    Examples
    --------
    >>> import numpy as np, scipy.fft
    >>> from gedenb.transforms import dct_matrix
    >>> x = np.arange(5.0)
    >>> bool(np.allclose(dct_matrix(5) @ x, scipy.fft.dct(x, norm="ortho")))
    True
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


def _dct4_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return np.cos(np.pi * (2 * i + 1) * (2 * k + 1) / (4 * n)) * math.sqrt(2.0 / n)


_E_REFLECT = (1.0, 0.0, 0.0, -1.0)  # negates y


def _rotation_step(a: int, b: int, theta: float):
    """Rotation of ``(v[a], v[b])`` by ``theta``: lifted part ``|t| <= pi/4`` and an exact quarter turn."""
    q = int(round(theta / (math.pi / 2)))  # -2..2
    t = theta - q * (math.pi / 2)
    cq = (1.0, 0.0, -1.0, 0.0)[q % 4]
    sq = (0.0, 1.0, 0.0, -1.0)[q % 4]
    return a, b, -math.tan(t / 2.0), math.sin(t), (cq, -sq, sq, cq)


def _givens_steps(matrix: np.ndarray, idx: list):
    """Steps realising the orthogonal ``matrix`` on the positions ``idx`` (output in place).

    Givens QR: ``G_K ... G_1 M = D = diag(1, ..., 1, +-1)``, so
    ``M = G_1^T ... G_K^T D``: the sign of ``D`` first, then the transposed
    rotations in reverse order.  Rotations by less than ``1e-13`` rad (exact
    zeros of the matrix up to round-off) are left out.
    """
    A = np.array(matrix, dtype=np.float64)
    n = len(A)
    rots = []
    for j in range(n - 1):
        for i in range(j + 1, n):
            theta = math.atan2(A[i, j], A[j, j])
            if abs(theta) < 1e-13:
                continue
            c, s = math.cos(theta), math.sin(theta)
            rj, ri = A[j, j:].copy(), A[i, j:].copy()
            A[j, j:] = c * rj + s * ri
            A[i, j:] = c * ri - s * rj
            A[i, j] = 0.0
            rots.append((j, i, theta))
    d = np.diag(A)
    if not (np.allclose(A, np.diag(d), atol=1e-10) and np.allclose(d[:-1], 1.0, atol=1e-10)
            and abs(abs(d[-1]) - 1.0) < 1e-10):  # pragma: no cover - holds for every orthogonal matrix
        raise AssertionError("Givens reduction failed; please report this bug")
    steps = []
    if d[-1] < 0:  # n >= 2 here: det of a 1 x 1 DCT is +1
        steps.append((idx[-2], idx[-1], 0.0, 0.0, _E_REFLECT))
    steps += [_rotation_step(idx[j], idx[i], theta) for j, i, theta in reversed(rots)]
    return steps, list(idx)


def _dct_steps(idx: list):
    """Steps of the DCT-II on positions ``idx`` and where each coefficient ends up.

    Even lengths split (exactly, in orthonormal form) into ``n/2`` butterflies
    ``u_i, v_i = (x_i + x_{n-1-i}) / sqrt 2, (x_i - x_{n-1-i}) / sqrt 2``, a
    DCT-II of ``u`` (the even coefficients, recursively) and a DCT-IV of ``v``
    (the odd ones, by Givens rotations); odd lengths use Givens rotations
    of the whole matrix.  The split needs about ``n**2 / 8 + n**2 / 32 + ...``
    rotations instead of ``n (n - 1) / 2``, so fewer roundings.
    """
    n = len(idx)
    if n % 2 or n < 2:
        return _givens_steps(dct_matrix(n), idx)
    m = n // 2
    # diag(1, -1) R(-pi/4) maps (x, y) to ((x + y) / sqrt 2, (x - y) / sqrt 2).
    steps = [(idx[i], idx[n - 1 - i], -math.tan(-math.pi / 8), math.sin(-math.pi / 4), _E_REFLECT)
             for i in range(m)]
    even, even_out = _dct_steps(idx[:m])
    odd, odd_out = _givens_steps(_dct4_matrix(m), [idx[n - 1 - i] for i in range(m)])
    out = [None] * n
    out[0::2], out[1::2] = even_out, odd_out
    return steps + even + odd, out


@functools.lru_cache(maxsize=None)
def lifting_plan(n: int) -> LiftingPlan:
    """The lifting plan of the ``n``-point DCT-II (computed once per ``n``; arrays read-only).

    Parameters
    ----------
    n : int
        Points of the transform.

    Examples
    --------
    >>> import numpy as np
    >>> from gedenb.transforms import dct_matrix, lifting_plan
    >>> plan = lifting_plan(28)
    >>> len(plan.a), bool(np.allclose(plan.matrix(), dct_matrix(28), atol=1e-12))
    (157, True)
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    steps, out = _dct_steps(list(range(n)))
    K = len(steps)
    a = np.array([s[0] for s in steps], dtype=np.int64).reshape(K)
    b = np.array([s[1] for s in steps], dtype=np.int64).reshape(K)
    p = np.array([s[2] for s in steps], dtype=np.float64).reshape(K)
    u = np.array([s[3] for s in steps], dtype=np.float64).reshape(K)
    e = np.array([s[4] for s in steps], dtype=np.float64).reshape(K, 4)
    perm = np.array(out, dtype=np.int64)
    for arr in (a, b, p, u, e, perm):
        arr.setflags(write=False)
    return LiftingPlan(n, a, b, p, u, e, perm)


@njit(inline="always")
def _rnd(v):
    # floor(v + 0.5): the one rounding used by both directions.
    return np.floor(v + 0.5)


@njit
def _lift_forward(M, a, b, p, u, e):
    """Integer DCT along axis 0 of ``M`` (every column at once), in place."""
    V = M.shape[1]
    for k in range(a.shape[0]):
        ra = a[k]
        rb = b[k]
        pk = p[k]
        uk = u[k]
        e00 = e[k, 0]
        e01 = e[k, 1]
        e10 = e[k, 2]
        e11 = e[k, 3]
        for v in range(V):
            x = M[ra, v]
            y = M[rb, v]
            x += _rnd(pk * y)
            y += _rnd(uk * x)
            x += _rnd(pk * y)
            M[ra, v] = e00 * x + e01 * y
            M[rb, v] = e10 * x + e11 * y


@njit
def _lift_inverse(M, a, b, p, u, e):
    """Exact inverse of :func:`_lift_forward`, in place (``E`` is orthogonal: ``E^-1 = E^T``)."""
    V = M.shape[1]
    for k in range(a.shape[0] - 1, -1, -1):
        ra = a[k]
        rb = b[k]
        pk = p[k]
        uk = u[k]
        e00 = e[k, 0]
        e01 = e[k, 1]
        e10 = e[k, 2]
        e11 = e[k, 3]
        for v in range(V):
            xq = M[ra, v]
            yq = M[rb, v]
            x = e00 * xq + e10 * yq
            y = e01 * xq + e11 * yq
            x -= _rnd(pk * y)
            y -= _rnd(uk * x)
            x -= _rnd(pk * y)
            M[ra, v] = x
            M[rb, v] = y


@pnjit
def _int_dct_forward(x, ha, hb, hp, hu, he, hperm, wa, wb, wp, wu, we, wperm, out, maxabs):
    """Colour transform + integer 2-D DCT of every image; ``maxabs[i]`` = largest |coefficient|."""
    n, H, W, C = x.shape
    for i in prange(n):
        S = np.empty((H, W * C))  # S[h, w*C + c]
        T = np.empty((W, H * C))  # T[w, h*C + c]
        for h in range(H):
            for w in range(W):
                if C == 3:
                    y, co, cg = _ycocg_r(np.int64(x[i, h, w, 0]), np.int64(x[i, h, w, 1]), np.int64(x[i, h, w, 2]))
                    S[h, w * 3] = y - 128
                    S[h, w * 3 + 1] = co
                    S[h, w * 3 + 2] = cg
                else:
                    S[h, w] = np.int64(x[i, h, w, 0]) - 128
        _lift_forward(S, ha, hb, hp, hu, he)  # along H, all columns and channels at once
        for h in range(H):
            for w in range(W):
                for c in range(C):
                    T[w, h * C + c] = S[hperm[h], w * C + c]
        _lift_forward(T, wa, wb, wp, wu, we)  # along W
        m = 0.0
        for h in range(H):
            for w in range(W):
                tw = wperm[w]
                for c in range(C):
                    v = T[tw, h * C + c]
                    m = max(m, abs(v))
                    out[i, (h * W + w) * C + c] = np.int64(v)
        maxabs[i] = m


@pnjit
def _int_dct_inverse(coeffs, ha, hb, hp, hu, he, hperm, wa, wb, wp, wu, we, wperm, out):
    """Exact inverse of :func:`_int_dct_forward`; values outside [0, 255] are clipped."""
    n, H, W, C = out.shape
    for i in prange(n):
        S = np.empty((H, W * C))
        T = np.empty((W, H * C))
        for h in range(H):
            for w in range(W):
                tw = wperm[w]
                for c in range(C):
                    T[tw, h * C + c] = coeffs[i, (h * W + w) * C + c]
        _lift_inverse(T, wa, wb, wp, wu, we)
        for h in range(H):
            for w in range(W):
                for c in range(C):
                    S[hperm[h], w * C + c] = T[w, h * C + c]
        _lift_inverse(S, ha, hb, hp, hu, he)
        for h in range(H):
            for w in range(W):
                if C == 3:
                    r, g, b = _ycocg_r_inv(np.int64(S[h, w * 3]) + 128, np.int64(S[h, w * 3 + 1]),
                                           np.int64(S[h, w * 3 + 2]))
                    out[i, h, w, 0] = min(max(r, 0), 255)
                    out[i, h, w, 1] = min(max(g, 0), 255)
                    out[i, h, w, 2] = min(max(b, 0), 255)
                else:
                    out[i, h, w, 0] = min(max(np.int64(S[h, w]) + 128, 0), 255)


def _plan_args(h: int, w: int):
    ph, pw = lifting_plan(h), lifting_plan(w)
    return (ph.a, ph.b, ph.p, ph.u, ph.e, ph.perm, pw.a, pw.b, pw.p, pw.u, pw.e, pw.perm)

def _dct_lossless_forward(images: np.ndarray) -> np.ndarray:
    """YCoCg-R (or grey - 128) and the integer lifting 2-D DCT; ``int16`` or ``int32``.

    The centred planes satisfy ``|Y - 128| <= 128``, ``|Co|, |Cg| <= 255``
    (grey: ``<= 128``), so the exact DCT is bounded by ``255 * sqrt(H*W)``
    (grey: ``128 * sqrt(H*W)``); the lifting adds a few units (budgeted as
    1024).  ``int16`` is used when that bound fits -- e.g. up to 124 x 124
    colour or 247 x 247 grey images -- and the largest coefficient is
    checked after the kernel; if it ever does not fit, the batch is redone
    in ``int32``.
    """
    x = _check_images(images)
    n, h, w, c = x.shape
    args = _plan_args(h, w)
    dtype = _dct_lossless_dtype(h, w, c)
    while True:
        out = np.empty((n, h * w * c), dtype=dtype)
        maxabs = np.zeros(n)
        _int_dct_forward(x, *args, out, maxabs)
        if n == 0 or maxabs.max() <= np.iinfo(dtype).max:
            return out
        if dtype == np.int32:  # pragma: no cover - needs images of > 8e9 pixels
            raise ValueError("images too large: integer DCT coefficients exceed the int32 range")
        dtype = np.dtype(np.int32)  # pragma: no cover - the budget above has never been exceeded


def _dct_lossless_inverse(coeffs: np.ndarray, shape) -> np.ndarray:
    """Exact inverse of the ``dct_lossless`` forward transform."""
    coeffs, (h, w, c), out_shape = _check_coeffs(coeffs, shape)
    if coeffs.dtype not in (np.int16, np.int32):
        if coeffs.size and (coeffs.min() < -_INT32_MAX or coeffs.max() > _INT32_MAX):
            raise ValueError("dct_lossless coefficients must fit in int32")
        coeffs = coeffs.astype(np.int32)
    out = np.empty((coeffs.shape[0], h, w, c), dtype=np.uint8)
    _int_dct_inverse(coeffs, *_plan_args(h, w), out)
    return out.reshape(out_shape)


# --------------------------------------------------------------------------
# measurement
# --------------------------------------------------------------------------
def roundtrip_error(images, transform) -> dict:
    """Pixel error of ``inverse(forward(images))`` (0 for lossless transforms).

    Parameters
    ----------
    images : (N, H, W, C) or (N, H, W) uint8
    transform : str or Transform

    Returns
    -------
    dict
        ``max_abs`` (int, grey levels) and ``mean_abs`` (float) over all
        pixels and channels.

    Examples
    --------
    >>> import numpy as np
    >>> from gedenb.transforms import roundtrip_error
    >>> x = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    >>> roundtrip_error(x, "dct_lossless")
    {'max_abs': 0, 'mean_abs': 0.0}
    >>> roundtrip_error(x, "dct")["max_abs"] <= 2
    True
    """
    t = get_transform(transform)
    x = _check_images(images)
    back = t.inverse(t.forward(x), x.shape[1:])
    d = np.abs(back.astype(np.int16) - x.astype(np.int16))
    if d.size == 0:
        return {"max_abs": 0, "mean_abs": 0.0}
    return {"max_abs": int(d.max()), "mean_abs": float(d.mean())}


#: ``forward`` of each built-in transform -> ``rule(H, W, C)``, its coefficient dtypes (:func:`_coeff_dtypes`).
_COEFF_DTYPES = {
    _identity_forward: lambda h, w, c: (np.dtype(np.uint8),),
    _dct_forward: lambda h, w, c: (_dct_dtype(h, w),),
    _dct_lossless_forward: lambda h, w, c: (_dct_lossless_dtype(h, w, c), np.dtype(np.int32)),
}

TRANSFORMS: dict = {}
for _t in (
    Transform(
        "identity", _identity_forward, _identity_inverse, True,
        "raw pixels, flattened (uint8); exact",
    ),
    Transform(
        "dct", _dct_forward, _dct_inverse, False,
        "paper Sec. 4.2.1: RGB->YCbCr, orthonormal 2-D DCT-II per channel, rounded (int16); "
        "lossy, a few grey levels at most",
    ),
    Transform(
        "dct_lossless", _dct_lossless_forward, _dct_lossless_inverse, True,
        "YCoCg-R + integer lifting 2-D DCT (int16/int32); bit-exact",
    ),
):
    TRANSFORMS[_t.name] = _t
del _t
