"""gedenb.transforms: identity, the paper's DCT and the bit-exact lifting DCT."""

import dataclasses
import math
import os

import numpy as np
import pytest
import scipy.fft
from hypothesis import given, settings
from hypothesis import strategies as st

from gedenb.transforms import (
    TRANSFORMS,
    Transform,
    dct_matrix,
    get_transform,
    lifting_plan,
    register_transform,
    rgb_to_ycbcr,
    rgb_to_ycocg_r,
    roundtrip_error,
    ycbcr_to_rgb,
    ycocg_r_to_rgb,
)

EXACT = ("identity", "dct_lossless")
SHAPES = [(5, 28, 28, 1), (5, 28, 28), (4, 32, 32, 3), (6, 7, 5, 3), (1, 28, 28), (1, 32, 32, 3),
          (3, 1, 1, 3), (2, 1, 9), (2, 13, 1, 1), (2, 16, 12, 3)]


def _random(rng, shape):
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _extreme_batch(rng, shape):
    """All-0, all-255, checkerboards, pure colours and random {0, 255} images."""
    n, h, w = shape[:3]
    rest = shape[3:]
    yy, xx = np.indices((h, w))
    board = (((yy + xx) % 2) * 255).astype(np.uint8).reshape(h, w, *([1] * len(rest)))
    imgs = [np.zeros(shape[1:], np.uint8), np.full(shape[1:], 255, np.uint8),
            np.broadcast_to(board, shape[1:]).copy(), 255 - np.broadcast_to(board, shape[1:])]
    if rest == (3,):
        for colour in ([255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 0, 255], [0, 255, 255]):
            imgs.append(np.broadcast_to(np.array(colour, np.uint8), shape[1:]).copy())
    imgs += list(rng.integers(0, 2, size=(4, *shape[1:]), dtype=np.uint8) * np.uint8(255))
    return np.stack(imgs)


def _planes_ycocg(x):
    """Centred YCoCg-R planes (float64) in the image layout, computed here with NumPy."""
    x = x.astype(np.int64)
    if x.ndim == 3 or x.shape[3] == 1:
        return (x - 128).astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    co = r - b
    t = b + (co >> 1)
    cg = g - t
    y = t + (cg >> 1)
    return np.stack([y - 128, co, cg], axis=-1).astype(np.float64)


def _float_dct(planes):
    return scipy.fft.dctn(planes, type=2, norm="ortho", axes=(1, 2)).reshape(len(planes), -1)


def _lifting_vs_float(x):
    c = TRANSFORMS["dct_lossless"].forward(x).astype(np.int64)
    d = np.abs(c - np.rint(_float_dct(_planes_ycocg(x))))
    return d.max(), d.mean(), math.sqrt((d ** 2).mean())


# --------------------------------------------------------------------------
# registry and validation
# --------------------------------------------------------------------------
def test_registry_names_and_objects():
    assert {"identity", "dct", "dct_lossless"} <= set(TRANSFORMS)
    for name in ("identity", "dct", "dct_lossless"):
        t = get_transform(name)
        assert t is TRANSFORMS[name] and t.name == name
        assert isinstance(t.description, str) and t.description
        assert get_transform(t) is t
    assert [TRANSFORMS[k].lossless for k in ("identity", "dct", "dct_lossless")] == [True, False, True]
    with pytest.raises(dataclasses.FrozenInstanceError):
        TRANSFORMS["dct"].lossless = True


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(ValueError, match="unknown transform 'wavelet'.*'dct'.*'dct_lossless'.*'identity'"):
        get_transform("wavelet")
    with pytest.raises(TypeError, match="name"):
        get_transform(42)
    with pytest.raises(TypeError, match="forward"):
        get_transform(Transform("broken", None, lambda c, s: c, True))


def test_register_transform():
    flip = Transform(
        "test_flip",
        lambda x: np.ascontiguousarray(x[:, ::-1]).reshape(len(x), -1),
        lambda c, s: np.ascontiguousarray(c.astype(np.uint8).reshape(len(c), *s)[:, ::-1]),
        True,
        "upside down",
    )
    try:
        assert register_transform(flip) is flip
        assert register_transform(flip) is flip  # registering the same object again is fine
        assert get_transform("test_flip") is flip
        x = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
        assert roundtrip_error(x, "test_flip") == {"max_abs": 0, "mean_abs": 0.0}
        other = dataclasses.replace(flip, description="another")
        with pytest.raises(ValueError, match="already registered"):
            register_transform(other)
        assert register_transform(other, overwrite=True) is get_transform("test_flip")
        with pytest.raises(TypeError, match="lossless"):
            register_transform(dataclasses.replace(flip, name="test_bad", lossless=1))
        assert "test_bad" not in TRANSFORMS
    finally:
        TRANSFORMS.pop("test_flip", None)


@pytest.mark.parametrize("name", ["identity", "dct", "dct_lossless"])
def test_forward_rejects_bad_images(name):
    fwd = TRANSFORMS[name].forward
    good = np.zeros((2, 4, 4, 3), np.uint8)
    for bad in (good.astype(np.float32), good.astype(np.int16), good.astype(bool)):
        with pytest.raises(TypeError, match=r"astype\(np\.uint8\)"):
            fwd(bad)
    with pytest.raises(TypeError, match="asarray"):
        fwd(good.tolist())
    for bad in (good[0, :, :, 0], good[None], good[0, 0, 0]):
        with pytest.raises(ValueError, match="N, H, W, C"):
            fwd(bad)
    for c in (2, 4):
        with pytest.raises(ValueError, match="channels"):
            fwd(np.zeros((2, 4, 4, c), np.uint8))
    with pytest.raises(ValueError, match="pixel"):
        fwd(np.zeros((2, 0, 4, 3), np.uint8))


@pytest.mark.parametrize("name", ["identity", "dct", "dct_lossless"])
def test_inverse_rejects_bad_coefficients(name):
    t = TRANSFORMS[name]
    c = t.forward(np.zeros((2, 4, 6, 3), np.uint8))
    assert t.inverse(c, (4, 6, 3)).shape == (2, 4, 6, 3)
    for shape in ((6, 4, 1), (4, 6), (4, 5, 3), (4, 6, 3, 1), (24,), (2, 2, 2, 9)):
        with pytest.raises(ValueError):
            t.inverse(c, shape)
    with pytest.raises(ValueError, match="channels"):
        t.inverse(np.zeros((2, 32), c.dtype), (4, 4, 2))
    with pytest.raises(ValueError, match="positive"):
        t.inverse(np.zeros((2, 0), c.dtype), (0, 6, 3))
    with pytest.raises(ValueError, match="shape"):
        t.inverse(c, (4.0, 6, 3))
    with pytest.raises(ValueError, match="2-D"):
        t.inverse(c[0], (4, 6, 3))
    with pytest.raises(TypeError, match="astype"):
        t.inverse(c.astype(np.float64), (4, 6, 3))
    with pytest.raises(TypeError, match="asarray"):
        t.inverse(c.tolist(), (4, 6, 3))


def test_identity_inverse_checks_pixel_range():
    t = TRANSFORMS["identity"]
    ok = np.array([[0, 255, 7, 9]], dtype=np.int32)
    assert t.inverse(ok, (2, 2)).tolist() == [[[0, 255], [7, 9]]]
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        t.inverse(np.array([[0, 256, 7, 9]], dtype=np.int32), (2, 2))


# --------------------------------------------------------------------------
# exact round trips
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", EXACT)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_exact_round_trip_random(rng, name, shape):
    t = TRANSFORMS[name]
    x = _random(rng, shape)
    c = t.forward(x)
    h, w = shape[1:3]
    ch = shape[3] if len(shape) == 4 else 1
    assert c.shape == (shape[0], h * w * ch) and c.flags.c_contiguous
    assert c.dtype == (np.uint8 if name == "identity" else np.int16)
    back = t.inverse(c, x.shape[1:])
    assert back.dtype == np.uint8 and back.shape == x.shape
    np.testing.assert_array_equal(back, x)
    # a table that went through storage may come back in a wider dtype
    np.testing.assert_array_equal(t.inverse(c.astype(np.int64), x.shape[1:]), x)


@pytest.mark.parametrize("name", EXACT)
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 32, 32, 3), (1, 7, 5, 3), (1, 5, 8, 1)], ids=str)
def test_exact_round_trip_extremes(rng, name, shape):
    x = _extreme_batch(rng, shape)
    t = TRANSFORMS[name]
    np.testing.assert_array_equal(t.inverse(t.forward(x), x.shape[1:]), x)


def test_identity_layout():
    x = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    np.testing.assert_array_equal(TRANSFORMS["identity"].forward(x), x.reshape(2, -1))
    np.testing.assert_array_equal(TRANSFORMS["identity"].forward(x[..., 0]), x[..., 0].reshape(2, -1))


@pytest.mark.parametrize("name", ["identity", "dct", "dct_lossless"])
def test_empty_batch_and_non_contiguous_input(rng, name):
    t = TRANSFORMS[name]
    c = t.forward(np.zeros((0, 5, 6, 3), np.uint8))
    assert c.shape == (0, 90)
    assert t.inverse(c, (5, 6, 3)).shape == (0, 5, 6, 3)
    x = _random(rng, (4, 9, 8, 3))
    view = x[::-1, :, ::-1]
    np.testing.assert_array_equal(t.forward(view), t.forward(np.ascontiguousarray(view)))


def test_large_images_use_int32(rng):
    x = _random(rng, (2, 128, 128, 3))  # 255 * 128 + lifting slack > 32767
    c = TRANSFORMS["dct_lossless"].forward(x)
    assert c.dtype == np.int32
    np.testing.assert_array_equal(TRANSFORMS["dct_lossless"].inverse(c, x.shape[1:]), x)
    g = np.full((1, 256, 256), 255, np.uint8)  # DC = 127 * 256 = 32512; the bound 128 * 256 exceeds int16
    cd = TRANSFORMS["dct"].forward(g)
    assert cd.dtype == np.int32 and int(cd[0, 0]) == 127 * 256
    np.testing.assert_array_equal(TRANSFORMS["dct"].inverse(cd, (256, 256)), g)
    small = TRANSFORMS["dct"].forward(g[:, :255, :255])
    assert small.dtype == np.int16 and int(small[0, 0]) == 127 * 255


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12), c=st.sampled_from([0, 1, 3]),
       seed=st.integers(0, 2**32 - 1), levels=st.sampled_from([2, 256]))
def test_dct_lossless_exact_any_shape(n, h, w, c, seed, levels):
    rng = np.random.default_rng(seed)
    shape = (n, h, w) if c == 0 else (n, h, w, c)
    x = (rng.integers(0, levels, size=shape) * (255 // (levels - 1))).astype(np.uint8)
    t = TRANSFORMS["dct_lossless"]
    np.testing.assert_array_equal(t.inverse(t.forward(x), x.shape[1:]), x)


# --------------------------------------------------------------------------
# colour transforms
# --------------------------------------------------------------------------
def test_ycocg_r_exact_on_a_million_triples_and_the_corners(rng):
    corners = np.array([[r, g, b] for r in (0, 255) for g in (0, 255) for b in (0, 255)])
    edges = np.array([[0, 0, 1], [1, 0, 0], [255, 254, 255], [128, 127, 129], [1, 255, 0]])
    rgb = np.concatenate([corners, edges, rng.integers(0, 256, size=(1_000_000, 3))])
    ycc = rgb_to_ycocg_r(rgb)
    np.testing.assert_array_equal(ycocg_r_to_rgb(ycc), rgb)
    np.testing.assert_array_equal(ycc, _planes_ycocg(rgb[None, None].astype(np.uint8))[0, 0] + [128, 0, 0])
    assert ycc[:, 0].min() >= 0 and ycc[:, 0].max() <= 255
    assert np.abs(ycc[:, 1:]).max() == 255  # the corners reach the documented range
    assert rgb_to_ycocg_r(np.array([255, 255, 255], np.uint8)).tolist() == [255, 0, 0]
    with pytest.raises(TypeError, match="astype"):
        rgb_to_ycocg_r(np.zeros(3))
    with pytest.raises(ValueError, match="length 3"):
        ycocg_r_to_rgb(np.zeros((2, 4), np.int64))


def test_ycbcr_matches_jfif_and_inverts(rng):
    rgb = rng.integers(0, 256, size=(1000, 3)).astype(np.float64)
    r, g, b = rgb.T
    y = 0.299 * r + 0.587 * g + 0.114 * b
    ref = np.stack([y, 128 - 0.168736 * r - 0.331264 * g + 0.5 * b, 128 + 0.5 * r - 0.418688 * g - 0.081312 * b], 1)
    np.testing.assert_allclose(rgb_to_ycbcr(rgb), ref, atol=1e-9)
    np.testing.assert_allclose(ycbcr_to_rgb(ref), rgb, atol=1e-9)
    # the JFIF inverse constants agree to their printed precision
    cb, cr = ref[:, 1] - 128, ref[:, 2] - 128
    jfif = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)
    np.testing.assert_allclose(ycbcr_to_rgb(ref), jfif, atol=2e-3)


# --------------------------------------------------------------------------
# the lifting plan and the integer DCT
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n", list(range(1, 34)) + [49, 64])
def test_lifting_plan_realises_the_dct(n):
    plan = lifting_plan(n)
    assert plan is lifting_plan(n)  # computed once
    C = dct_matrix(n)
    np.testing.assert_allclose(C @ np.eye(n), scipy.fft.dct(np.eye(n), axis=0, norm="ortho"), atol=1e-12)
    np.testing.assert_allclose(plan.matrix(), C, atol=1e-11)
    assert sorted(plan.perm.tolist()) == list(range(n))
    assert len(plan.a) <= max(n * (n - 1) // 2 + 1, 1)
    if plan.a.size:
        assert (plan.a != plan.b).all() and plan.a.min() >= 0 and max(plan.a.max(), plan.b.max()) < n
        assert np.abs(plan.p).max() <= math.tan(math.pi / 8) + 1e-12
        assert np.abs(plan.u).max() <= math.sin(math.pi / 4) + 1e-12
        E = plan.e.reshape(-1, 2, 2)
        assert np.isin(E, (-1.0, 0.0, 1.0)).all()
        np.testing.assert_array_equal(np.abs(np.linalg.det(E)), 1.0)
        np.testing.assert_array_equal(np.abs(E).sum(axis=1), 1.0)  # signed permutations
    with pytest.raises(ValueError):
        plan.a[0:1] = 0  # read-only


def test_lifting_plan_step_counts():
    # the even/odd split needs far fewer rotations than a Givens QR of the whole matrix
    assert len(lifting_plan(28).a) == 157 < 28 * 27 // 2
    assert len(lifting_plan(32).a) == 187 < 32 * 31 // 2
    assert len(lifting_plan(7).a) <= 7 * 6 // 2 + 1


def _naive_lift(M, plan):
    """The plan applied to the rows of M with NumPy (same rounding), coefficients in order."""
    M = M.astype(np.float64).copy()
    for a, b, p, u, e in zip(plan.a, plan.b, plan.p, plan.u, plan.e):
        x, y = M[a].copy(), M[b].copy()
        x += np.floor(p * y + 0.5)
        y += np.floor(u * x + 0.5)
        x += np.floor(p * y + 0.5)
        M[a], M[b] = e[0] * x + e[1] * y, e[2] * x + e[3] * y
    return M[plan.perm]


@pytest.mark.parametrize("shape", [(3, 7, 6, 3), (3, 8, 4, 1), (2, 12, 10), (2, 1, 5, 3)], ids=str)
def test_dct_lossless_matches_naive_oracle(rng, shape):
    x = _random(rng, shape)
    planes = _planes_ycocg(x)
    if planes.ndim == 3:
        planes = planes[..., None]
    h, w, c = planes.shape[1:]
    ref = np.empty(planes.shape)
    for i in range(len(x)):
        for ch in range(c):
            cols = _naive_lift(planes[i, :, :, ch], lifting_plan(h))
            ref[i, :, :, ch] = _naive_lift(cols.T, lifting_plan(w)).T
    got = TRANSFORMS["dct_lossless"].forward(x)
    np.testing.assert_array_equal(got, ref.reshape(len(x), -1))


@pytest.mark.parametrize("shape", [(300, 28, 28), (200, 32, 32, 3), (300, 7, 5, 3)], ids=str)
def test_lifting_dct_close_to_float_dct(rng, shape):
    # measured: max 10 / mean 1.31 / RMS 1.71 (28x28), 10 / 1.34 / 1.76 (32x32x3), 6 / 0.87 / 1.16 (7x5x3)
    mx, mean, rms = _lifting_vs_float(_random(rng, shape))
    assert mx <= 16 and mean <= 1.6 and rms <= 2.1


# --------------------------------------------------------------------------
# the paper's DCT
# --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(50, 32, 32, 3), (50, 28, 28), (20, 7, 5, 3)], ids=str)
def test_dct_forward_is_rounded_scipy_dct_of_ycbcr(rng, shape):
    x = _random(rng, shape)
    c = TRANSFORMS["dct"].forward(x)
    assert c.dtype == np.int16
    f = x.astype(np.float64)
    if f.ndim == 4:
        r, g, b = f[..., 0], f[..., 1], f[..., 2]
        y = 0.299 * r + 0.587 * g + 0.114 * b
        f = np.stack([y - 128, -0.168736 * r - 0.331264 * g + 0.5 * b, 0.5 * r - 0.418688 * g - 0.081312 * b], -1)
    else:
        f = f - 128
    ref = np.rint(_float_dct(f))
    d = np.abs(c - ref)
    assert d.max() <= 1 and (d == 0).mean() > 0.9999  # float ties may round either way
    # DC of a constant image
    flat = np.full((1, *shape[1:]), 200, np.uint8)
    h, w = shape[1:3]
    assert int(TRANSFORMS["dct"].forward(flat)[0, 0]) == round(72 * math.sqrt(h * w))


@pytest.mark.parametrize("shape, max_abs, mean_abs", [
    ((500, 32, 32, 3), 4, 0.35),  # measured 3 and 0.298 (2,000 images)
    ((500, 28, 28), 2, 0.1),  # measured 1 and 0.083
    ((500, 7, 5, 3), 4, 0.35),  # measured 3 and 0.299
], ids=str)
def test_dct_round_trip_error_is_small(rng, shape, max_abs, mean_abs):
    x = _random(rng, shape)
    err = roundtrip_error(x, "dct")
    assert set(err) == {"max_abs", "mean_abs"}
    assert 0 < err["max_abs"] <= max_abs and 0 < err["mean_abs"] <= mean_abs
    assert roundtrip_error(_extreme_batch(rng, (1, *shape[1:])), "dct")["max_abs"] <= max_abs
    for name in EXACT:
        assert roundtrip_error(x, name) == {"max_abs": 0, "mean_abs": 0.0}


def test_dct_inverse_clips():
    c = np.zeros((2, 16), np.int16)
    c[0, 0], c[1, 0] = 30000, -30000
    back = TRANSFORMS["dct"].inverse(c, (4, 4))
    assert back.dtype == np.uint8 and (back[0] == 255).all() and (back[1] == 0).all()
    back = TRANSFORMS["dct_lossless"].inverse(c, (4, 4, 1))
    assert back.dtype == np.uint8 and (back[0] == 255).all() and (back[1] == 0).all()


# --------------------------------------------------------------------------
# real data
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist_2000():
    if not os.environ.get("GEDENB_DATA"):
        pytest.skip("GEDENB_DATA is not set")
    from gedenb.datasets import mnist

    x, _ = mnist(train=True)
    return np.ascontiguousarray(x[:2000])


@pytest.mark.parametrize("name", EXACT)
def test_mnist_exact(mnist_2000, name):
    t = TRANSFORMS[name]
    np.testing.assert_array_equal(t.inverse(t.forward(mnist_2000), (28, 28)), mnist_2000)
    x4 = mnist_2000[:200, :, :, None]
    np.testing.assert_array_equal(t.inverse(t.forward(x4), (28, 28, 1)), x4)


def test_mnist_dct(mnist_2000):
    err = roundtrip_error(mnist_2000, "dct")
    assert err["max_abs"] <= 2 and err["mean_abs"] <= 0.08  # measured 1 and 0.049
    mx, mean, rms = _lifting_vs_float(mnist_2000)
    assert mx <= 14 and mean <= 1.4 and rms <= 1.8  # measured 8, 1.15, 1.52
