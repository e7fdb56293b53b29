"""DataFrames and Arrow tables in and out (gedenb.frames): bit-exact values, nulls kept apart from NaN,
names, dtypes, categories, time zones, in memory and through save / open / read_rows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")
pl = pytest.importorskip("polars")

import gedenb  # noqa: E402
from gedenb.errors import FormatError  # noqa: E402
from gedenb.frames import FrameSchema, from_frame  # noqa: E402

NAN_PAYLOAD = np.array([0x7FF8000000000ABC], dtype=np.uint64).view(np.float64)[0]


def people(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Every kind of column a user holds: nullable ints, floats with NaN (a payload too) and -0.0, nullable
    floats with NA apart from NaN, categoricals (ordered, unused categories), strings with nulls, datetimes
    with a time zone, bools, nullable bools, small unsigned ints, durations, int64 extremes."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=n).round(3)
    f[::7] = np.nan
    f[3] = NAN_PAYLOAD
    f[5] = -0.0
    Fv = rng.normal(size=n).round(2)
    Fv[1] = np.nan  # a NaN that is not a null
    F = pd.arrays.FloatingArray(Fv, np.arange(n) % 5 == 0)
    ages = pd.array(rng.integers(18, 90, n), dtype="Int64")
    ages[::4] = pd.NA
    cat = pd.Categorical(rng.choice(["low", "mid", "high"], n), categories=["low", "mid", "high", "unused"],
                         ordered=True)
    cat[::9] = np.nan
    city = pd.array(rng.choice(["Aarhus", "Köln", "北京", ""], n), dtype="string")
    city[::6] = pd.NA
    when = pd.Series(pd.to_datetime(1_600_000_000 + rng.integers(0, 10**7, n), unit="s")).dt.tz_localize(
        "Europe/Copenhagen")
    when[::8] = pd.NaT
    extreme = rng.choice(np.array([np.iinfo(np.int64).min, -1, 0, np.iinfo(np.int64).max]), n)
    return pd.DataFrame({
        "age": ages, "f": f, "F": F, "level": cat, "city": city, "when": when,
        "ok": rng.random(n) < 0.5, "maybe": pd.array(np.where(rng.random(n) < 0.2, None, rng.random(n) < 0.5),
                                                      dtype="boolean"),
        "u8": rng.integers(0, 256, n).astype(np.uint8), "wait": pd.to_timedelta(rng.integers(0, 10**6, n), unit="ms"),
        "extreme": extreme, "y": rng.normal(size=n),
        "when_ns": when.astype("datetime64[ns, UTC]"),  # the datetime64[ns, tz]
    })


def same_arrow(a, b) -> None:
    """Equal schemas (metadata too) and columns; float columns by their validity and value bits (NaN)."""
    assert a.schema.equals(b.schema, check_metadata=True)
    for x, y in zip(a.columns, b.columns):
        x, y = x.combine_chunks(), y.combine_chunks()
        if pa.types.is_floating(x.type):
            assert x.is_valid().equals(y.is_valid())
            assert x.fill_null(0).to_numpy().tobytes() == y.fill_null(0).to_numpy().tobytes()
        else:
            assert x.equals(y)


def same_frame(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal values, dtypes, names, index and, for float columns, the same bits (NaN payloads, -0.0)."""
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for name in a.columns:
        if isinstance(a[name].dtype, np.dtype) and a[name].dtype.kind == "f":
            assert a[name].to_numpy().tobytes() == b[name].to_numpy().tobytes(), name


@pytest.mark.parametrize("beta", [None, 6])
@pytest.mark.parametrize("coding", ["raw", "entropy"])
def test_a_pandas_frame_round_trips_in_memory_and_through_a_file(beta, coding, tmp_path):
    df = people()
    c = gedenb.compress(df, beta=beta, coding=coding)
    same_frame(gedenb.decompress(c, as_frame=True), df)
    same_frame(gedenb.decompress(c, as_frame="pandas"), df)
    gedenb.save(c, tmp_path / "p.gede")
    with gedenb.open(tmp_path / "p.gede") as r:
        assert r.version[1] == (2 if coding == "entropy" else 1)
        same_frame(r.read_rows(slice(None), as_frame=True), df)
        rows = [5, 0, 59, 5, -1]
        same_frame(r.read_rows(rows, as_frame=True), df.iloc[rows])  # the RangeIndex labels of those rows
        phys = r.read_rows(slice(None))  # NumPy stays the default: the physical table
        assert phys.dtype.names[:3] == ("age", "age.null", "f") and phys["age.null"].sum() == df["age"].isna().sum()


def test_nulls_and_nans_stay_apart_and_nan_payloads_survive():
    df = people()
    c = gedenb.compress(df)
    back = gedenb.decompress(c, as_frame=True)
    assert back["F"].isna().tolist() == df["F"].isna().tolist()
    assert np.isnan(back["F"].to_numpy(dtype=np.float64, na_value=0.0)[1]) and back["F"][1] is not pd.NA
    assert back["f"].to_numpy()[3:4].view(np.uint64)[0] == 0x7FF8000000000ABC
    assert np.signbit(back["f"].to_numpy()[5])
    t = gedenb.decompress(c, as_frame="arrow")
    assert t.column("f").null_count == 0  # a NaN of a NumPy float column is a value, not a null
    assert t.column("F").null_count == int(df["F"].isna().sum()) == 12  # the NaN at row 1 is not among them
    assert np.isnan(t.column("F").combine_chunks()[1].as_py())


def test_polars_and_arrow_round_trip(tmp_path):
    df = people()
    p = pl.from_pandas(df.drop(columns=["f"]))  # polars reads NumPy NaN as NaN too; payloads: pandas test
    c = gedenb.compress(p, beta=5)
    assert gedenb.decompress(c, as_frame=True).equals(p)
    t = pa.Table.from_pandas(df)
    c2 = gedenb.compress(t)
    gedenb.save(c2, tmp_path / "a.gede")
    with gedenb.open(tmp_path / "a.gede") as r:
        got = r.read_rows(slice(None), as_frame=True)
    assert isinstance(got, pa.Table)
    same_arrow(got, t)
    batch = t.to_batches()[0]
    same_arrow(gedenb.decompress(gedenb.compress(batch), as_frame="arrow"), t)
    assert gedenb.decompress(gedenb.compress(p), as_frame="pandas").shape == p.shape


def test_numpy_tables_convert_to_frames_too():
    X = np.arange(12, dtype=np.int16).reshape(4, 3)
    df = gedenb.decompress(gedenb.compress(X), as_frame="pandas")
    assert df.columns.tolist() == ["0", "1", "2"] and df.to_numpy().tolist() == X.tolist()
    T = np.array([(1, 2.5), (3, -0.5)], dtype=[("k", "i1"), ("x", "f8")])
    assert gedenb.decompress(gedenb.compress(T), as_frame="polars").to_dicts() == [{"k": 1, "x": 2.5},
                                                                                   {"k": 3, "x": -0.5}]
    with pytest.raises(ValueError, match="as_frame"):
        gedenb.decompress(gedenb.compress(X), as_frame="excel")


def test_unsupported_columns_and_names_are_refused_clearly():
    from decimal import Decimal

    with pytest.raises(TypeError, match="column 'd'.*decimal"):
        gedenb.compress(pa.table({"d": pa.array([Decimal("1.5")])}))
    with pytest.raises(TypeError, match="column 'l'"):
        gedenb.compress(pa.table({"l": pa.array([[1, 2], [3]])}))
    with pytest.raises(TypeError, match="column names must be strings"):
        gedenb.compress(pd.DataFrame({0: [1.0, 2.0]}))
    with pytest.raises(TypeError, match="unique"):
        gedenb.compress(pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"]))
    with pytest.raises(ValueError, match="at least one row"):
        gedenb.compress(pd.DataFrame({"a": pd.array([], dtype="Int64")}))


def test_a_null_mask_name_never_collides():
    df = pd.DataFrame({"a": pd.array([1, None], dtype="Int64"), "a.null": [True, False]})
    T, schema = from_frame(df)
    assert T.dtype.names == ("a", "a.null2", "a.null")
    same_frame(gedenb.decompress(gedenb.compress(df), as_frame=True), df)


def test_targets_and_cluster_columns_name_frame_columns():
    df = people(400, seed=3)
    c = gedenb.compress(df, beta=8, target="y")
    assert c.learning.targets == (c.dtype.names.index("y"),) and c.learning.task == "regression"
    c2 = gedenb.compress(df, beta=8, cluster_columns=["age", "level"])
    fields = {c2.dtype.names.index(f) for f in ("age", "level")}
    starts = np.concatenate(([0], np.cumsum(c2.codecs.width)))
    assert {int(np.searchsorted(starts, p, side="right") - 1) for p in c2.beta_positions} <= fields
    with pytest.raises(ValueError, match="no column named 'nope'"):
        gedenb.compress(df, beta=8, target="nope")


def test_a_forged_frame_schema_is_a_format_error(tmp_path):
    df = people()
    c = gedenb.compress(df)
    raw = bytearray(c.frame_bytes)
    for edit in (lambda b: b[:3], lambda b: b.replace(b'"plain"', b'"plane"', 1),
                 lambda b: b.replace(b'"kind":"pandas"', b'"kind":"excel!"'), lambda b: b + b"\0" * 8):
        with pytest.raises(FormatError, match="FRAM"):
            FrameSchema.from_bytes(bytes(edit(bytearray(raw))), c.dtype)
    other = gedenb.compress(people().drop(columns=["city"]))
    with pytest.raises(FormatError, match="FRAM"):
        FrameSchema.from_bytes(bytes(raw), other.dtype)


# --------------------------------------------------------------------------
# generated frames
# --------------------------------------------------------------------------
_KINDS = ("Int64", "int32", "float64", "Float64", "category", "string", "bool", "boolean", "datetime_tz", "uint8")


@st.composite
def frames(draw):
    n = draw(st.integers(1, 40))
    kinds = draw(st.lists(st.sampled_from(_KINDS), min_size=1, max_size=6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    nulls = rng.random(n) < draw(st.sampled_from([0.0, 0.3, 1.0]))
    cols = {}
    for j, kind in enumerate(kinds):
        if kind in ("Int64", "Float64", "boolean"):
            base = {"Int64": rng.integers(-5, 5, n), "Float64": rng.normal(size=n).round(1),
                    "boolean": rng.random(n) < 0.5}[kind]
            a = pd.array(base, dtype=kind)
            a[nulls] = pd.NA
        elif kind == "int32":
            a = rng.integers(-2**31, 2**31, n).astype(np.int32)
        elif kind == "float64":
            a = rng.choice(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.5, 1e300]), n)
        elif kind == "category":
            a = pd.Categorical(rng.choice(["x", "y", "z"], n), categories=["z", "y", "x"])
            a[nulls] = np.nan
        elif kind == "string":
            a = pd.array(rng.choice(["", "a", "ä", "long text"], n), dtype="string")
            a[nulls] = pd.NA
        elif kind == "bool":
            a = rng.random(n) < 0.5
        elif kind == "uint8":
            a = rng.integers(0, 256, n).astype(np.uint8)
        else:
            a = pd.Series(pd.to_datetime(rng.integers(0, 10**9, n), unit="s")).dt.tz_localize("UTC")
            a[nulls] = pd.NaT
        cols[f"c{j}"] = a
    return pd.DataFrame(cols)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=frames(), beta=st.sampled_from([None, 1, 3]), coding=st.sampled_from(["raw", "entropy"]))
def test_generated_frames_round_trip(df, beta, coding):
    try:
        c = gedenb.compress(df, beta=beta, coding=coding)
    except ValueError as e:  # fewer non-constant bits than beta
        assert "beta" in str(e)
        return
    same_frame(gedenb.decompress(c, as_frame=True), df)
    from gedenb.store import parse_table, to_bytes

    back, _ = parse_table(to_bytes(c), verify=True)
    same_frame(gedenb.decompress(back, as_frame=True), df)
