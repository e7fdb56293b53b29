import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import support

import gedenb
from gedenb.__main__ import main
from gedenb._optional import EXTRAS
from gedenb.experiments import EXPERIMENTS, ResultTable

#: The source checkout of this test file; a wheel-installed gedenb may be tested without one.
CHECKOUT = Path(__file__).resolve().parents[1]
COMMANDS = ("quickstart", "compress", "info", "decompress", "condensed", "reproduce")


def test_compress_info_decompress_npy(tmp_path, capsys):
    X = np.random.default_rng(0).integers(0, 1000, size=(300, 5)).astype(np.int32)
    src, out, back = tmp_path / "x.npy", tmp_path / "x.gede", tmp_path / "y.npy"
    np.save(src, X)
    assert main(["compress", str(src), str(out), "--beta", "4", "--tau", "5"]) == 0
    assert main(["info", str(out), "--columns"]) == 0
    text = capsys.readouterr().out
    assert "n_b =" in text and "bytes on disk" in text and "column    0: int:" in text
    assert main(["decompress", str(out), str(back)]) == 0
    Y = np.load(back)
    assert Y.dtype == X.dtype and np.array_equal(X, Y)
    assert main(["condensed", str(out), str(tmp_path / "c.npz")]) == 0
    with np.load(tmp_path / "c.npz") as z:
        assert z["weights"].sum() == 300


def test_compress_csv_gz_with_header(tmp_path):
    """A CSV is read with pyarrow: header names and per-column types are kept. The .npy of ``decompress`` is the
    physical table (a structured array: float column a, integer column b), no longer a float64 matrix."""
    import gzip

    pytest.importorskip("pyarrow")
    p = tmp_path / "t.csv.gz"
    with gzip.open(p, "wt") as f:
        f.write("a,b\n1.25,3\n2.5,4\n-0.75,5\n")
    assert main(["compress", str(p), str(tmp_path / "t.gede")]) == 0
    assert main(["decompress", str(tmp_path / "t.gede"), str(tmp_path / "t.npy")]) == 0
    Y = np.load(tmp_path / "t.npy")
    assert Y.dtype == np.dtype([("a", np.float64), ("b", np.int64)])
    assert Y["a"].tolist() == [1.25, 2.5, -0.75] and Y["b"].tolist() == [3, 4, 5]
    assert main(["decompress", str(tmp_path / "t.gede"), str(tmp_path / "back.csv.gz")]) == 0
    with gzip.open(tmp_path / "back.csv.gz", "rt") as f:
        assert f.read() == '"a","b"\n1.25,3\n2.5,4\n-0.75,5\n'


# --------------------------------------------------------------------------
# CSV, TSV and Parquet tables (pyarrow)
# --------------------------------------------------------------------------
def _read_csv(path):
    """A CSV / TSV file as the CLI reads it: only empty cells are null, a quoted "" is an empty string."""
    import pyarrow.csv as pacsv

    return pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter="\t" if ".tsv" in path.name else ","),
                          convert_options=pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True,
                                                               quoted_strings_can_be_null=False))


def _cells(table) -> dict:
    """Every column's type and cells, floats as their bytes (NaN payloads, -0.0), nulls as None."""
    import pyarrow as pa

    out = {}
    for name, col in zip(table.column_names, table.columns):
        cells = col.to_pylist()
        if pa.types.is_floating(col.type):
            cells = [None if v is None else np.float64(v).tobytes() for v in cells]
        out[name] = (str(col.type), cells)
    return out


CSV = ('id,name,score,flag,day,count\n'
       '1,foo,1.5,true,2020-01-01,7\n'
       '2,,,false,,\n'
       '3,"",nan,,2021-03-04,-9223372036854775808\n'
       '4,bar,-0.0,true,2020-01-01,9223372036854775807\n'
       '5,"a, ""quoted"" one",1e300,false,1999-12-31,0\n')


@pytest.mark.parametrize("src, dst", [("t.csv", "back.csv"), ("t.tsv", "back.tsv.gz"), ("t.csv", "back.csv.gz")])
def test_csv_round_trip_keeps_names_types_and_empty_cells(tmp_path, capsys, src, dst):
    pytest.importorskip("pyarrow")
    path, out, back = tmp_path / src, tmp_path / "t.gede", tmp_path / dst
    text = CSV if src.endswith(".csv") else CSV.replace(",", "\t").replace('"a\t ""quoted"" one"', '"a, ""q"""')
    path.write_text(text)
    assert main(["compress", str(path), str(out), "--beta", "3"]) == 0
    assert "first row: header, detected" in capsys.readouterr().out
    assert main(["decompress", str(out), str(back)]) == 0
    original, again = _read_csv(path), _read_csv(back)
    assert _cells(again) == _cells(original)
    types = {name: t for name, (t, _) in _cells(original).items()}
    assert types == {"id": "int64", "name": "string", "score": "double", "flag": "bool", "day": "date32[day]",
                     "count": "int64"}
    cells = _cells(again)
    assert cells["name"][1][:3] == ["foo", None, ""]  # empty cell: missing; quoted "": an empty string
    assert cells["count"][1][1] is None and cells["flag"][1][2] is None
    if dst == "back.csv":
        assert back.read_text().splitlines()[2] == "2,,,false,,"  # empty cells stay empty
    with gedenb.open(out) as r:
        frame = r.read_rows(slice(None), as_frame="pandas")
        assert list(frame.columns) == ["id", "name", "score", "flag", "day", "count"]
        assert str(frame["id"].dtype) == "int64" and frame["count"].isna().tolist() == [False, True] + [False] * 3
    assert main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "frame          Arrow table, 6 columns:" in info
    assert re.search(r"^  name +string +\(dictionary: 4 distinct values; nullable: field 'name.null'\)$", info, re.M)
    assert re.search(r"^  id +int64$", info, re.M) and re.search(r"^  day +date32\[day\] +\(nullable", info, re.M)


def test_one_column_csv_keeps_blank_lines_as_missing_values(tmp_path):
    pytest.importorskip("pyarrow")
    (tmp_path / "one.csv").write_text("v\n1\n\n3\n")  # a blank line is a row of a one-column table
    (tmp_path / "two.csv").write_text("a,b\n1,2\n\n3,4\n\n")  # ... and no row of a wider one
    for name, rows in (("one", [{"v": 1}, {"v": None}, {"v": 3}]), ("two", [{"a": 1, "b": 2}, {"a": 3, "b": 4}])):
        assert main(["compress", str(tmp_path / f"{name}.csv"), str(tmp_path / f"{name}.gede")]) == 0
        with gedenb.open(tmp_path / f"{name}.gede") as r:
            assert r.read_rows(slice(None), as_frame="arrow").to_pylist() == rows
    assert main(["decompress", str(tmp_path / "one.gede"), str(tmp_path / "back.csv")]) == 0
    assert (tmp_path / "back.csv").read_text() == '"v"\n1\n\n3\n'


@pytest.mark.parametrize("flag", [[], ["--no-header"]])
def test_a_first_row_of_numbers_is_data_not_a_header(tmp_path, capsys, flag):
    pytest.importorskip("pyarrow")
    path, out, back = tmp_path / "t.csv", tmp_path / "t.gede", tmp_path / "back.csv"
    path.write_text("1,,3\n4,5,6\n")
    assert main(["compress", str(path), str(out), *flag]) == 0
    assert f"first row: data, {'detected' if not flag else '--no-header'}" in capsys.readouterr().out
    with gedenb.open(out) as r:
        assert r.n == 2
        assert r.read_rows(slice(None), as_frame="arrow").to_pylist() == [
            {"column_0": 1, "column_1": None, "column_2": 3}, {"column_0": 4, "column_1": 5, "column_2": 6}]
    assert main(["decompress", str(out), str(back)]) == 0
    assert back.read_text() == "1,,3\n4,5,6\n"  # written back without a header, as it came


def test_header_flag_on_a_row_with_an_empty_cell_is_refused(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    path, out = tmp_path / "t.csv", tmp_path / "t.gede"
    path.write_text("1,,3\n4,5,6\n")
    assert main(["compress", str(path), str(out), "--header"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {path}: header cell 1 is empty (''); every column needs its own name (or pass --no-header)"]
    assert not out.exists()
    path.write_text("1,2,3\n4,5,6\n")  # asked for: names "1", "2", "3" over one row
    assert main(["compress", str(path), str(out), "--header"]) == 0
    with gedenb.open(out) as r:
        assert r.read_rows(slice(None), as_frame="arrow").to_pylist() == [{"1": 4, "2": 5, "3": 6}]


@pytest.mark.parametrize("text, reason", [
    ("a,b\nx,y\nz,w\n", "no column holds numbers, booleans, dates or times below it to compare it with"),
    ("id,7\n1,8\n2,9\n", "its cells in columns 1 read as values of those columns, those in columns 0 do not"),
    ("x,x\n1,2\n3,4\n", "it reads as names, but some of its cells are empty or repeated"),
    (",a\n0,1.5\n1,2.5\n", "its cells in columns 0 read as values of those columns, those in columns 1 do not"),
    ("a,b\n", "no column holds numbers, booleans, dates or times below it to compare it with"),
])
def test_an_ambiguous_first_row_is_refused_with_what_to_pass(tmp_path, capsys, text, reason):
    pytest.importorskip("pyarrow")
    path, out = tmp_path / "t.csv", tmp_path / "t.gede"
    path.write_text(text)
    assert main(["compress", str(path), str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {path}: cannot tell whether the first row is a header ({reason}); pass --header or --no-header"]
    assert not out.exists()
    assert main(["compress", str(path), str(out), "--no-header"]) == 0  # the whole file, as data
    with gedenb.open(out) as r:
        assert r.n == text.count("\n")


def test_an_all_empty_column_is_refused_by_name(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,\n2,\n")
    assert main(["compress", str(path), str(tmp_path / "t.gede")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {path}: column 'b' has no values (every cell is empty), so it has no type to store it as; "
        "drop the column or fill it"]


def test_target_is_kept_out_of_clustering_and_learns_from_the_file(tmp_path, capsys):
    pytest.importorskip("pyarrow")
    rng = np.random.default_rng(0)
    x0, x1 = rng.integers(0, 16, 400), rng.integers(0, 8, 400)
    label = np.array(["low", "mid", "high"])[(x0 + x1) % 3]
    path, out = tmp_path / "t.csv", tmp_path / "t.gede"
    path.write_text("x0,x1,label\n" + "".join(f"{a},{b},{c}\n" for a, b, c in zip(x0, x1, label)))
    assert main(["compress", str(path), str(out), "--target", "label"]) == 2
    assert capsys.readouterr().err.startswith("error: --target needs --beta")
    assert main(["compress", str(path), str(out), "--beta", "4", "--target", "label"]) == 0
    assert "target         label (classification, 3 classes)" in capsys.readouterr().out
    with gedenb.open(out) as r:
        learning, names = r.compressed.learning, r.compressed.dtype.names
        assert [names[t] for t in learning.targets] == ["label"] and learning.task == "classification"
        ls = gedenb.learning_set(r)
    assert ls.feature_names == ("x0", "x1") and ls.target_name == "label" and ls.task == "classification"
    assert ls.sample_weight.sum() == 400 and len(ls.X) == len(ls.y) == len(ls.sample_weight)
    assert main(["compress", str(path), str(out), "--beta", "4", "--target", "2", "--cluster-columns", "0,x1"]) == 0
    with gedenb.open(out) as r:
        assert [r.compressed.dtype.names[t] for t in r.compressed.learning.targets] == ["label"]
    capsys.readouterr()
    assert main(["compress", str(path), str(out), "--beta", "4", "--cluster-columns", "x0,nope"]) == 2
    assert capsys.readouterr().err.splitlines() == ["error: --cluster-columns: no column named 'nope' "
                                                    "(columns: x0, x1, label)"]


def test_parquet_round_trip(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({
        "when": pa.array([0, 10**15, None, -5], type=pa.timestamp("us", tz="Europe/Copenhagen")),
        "small": pa.array([1, -2, 3, None], type=pa.int8()),
        "ratio": pa.array([0.5, -0.0, float("inf"), 1e-30], type=pa.float32()),
        "city": pa.array(["Aarhus", None, "Aalborg", "Aarhus"]),
        "kind": pa.array(["a", "b", "a", None]).dictionary_encode(),
    })
    src, out, back = tmp_path / "t.parquet", tmp_path / "t.gede", tmp_path / "back.parquet"
    pq.write_table(table, src)
    assert main(["compress", str(src), str(out), "--beta", "2"]) == 0
    assert main(["decompress", str(out), str(back)]) == 0
    again = pq.read_table(back)
    assert again.schema.equals(pq.read_table(src).schema) and _cells(again) == _cells(pq.read_table(src))
    assert main(["compress", str(src), str(out), "--header"]) == 2  # CSV only


def test_missing_pyarrow_is_one_line_naming_the_extra_before_any_work(monkeypatch, tmp_path, capsys):
    X = np.arange(12, dtype=np.int32).reshape(4, 3)
    np.save(tmp_path / "x.npy", X)
    assert main(["compress", str(tmp_path / "x.npy"), str(tmp_path / "x.gede")]) == 0
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,4\n5,2\n")
    framed = importlib.util.find_spec("pyarrow") is not None
    if framed:  # a file of a CSV table, for `info` without pyarrow below
        argv = ["compress", str(tmp_path / "t.csv"), str(tmp_path / "t.gede"), "--beta", "1", "--target", "b"]
        assert main(argv) == 0
    capsys.readouterr()
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    for argv, line in (
            (["compress", str(tmp_path / "t.csv"), str(tmp_path / "t.gede")], "reading CSV"),
            (["compress", str(tmp_path / "t.parquet"), str(tmp_path / "t.gede")], "reading Parquet"),
            (["decompress", str(tmp_path / "x.gede"), str(tmp_path / "back.csv")], "writing CSV")):
        assert main(argv) == 2
        out = capsys.readouterr()
        assert out.err.splitlines() == [f'error: {line} needs pyarrow: pip install "gedenb[frames]"']
        assert out.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"] + ["t.gede"] * framed + ["x.gede", "x.npy"]
    assert main(["decompress", str(tmp_path / "x.gede"), str(tmp_path / "back.npy")]) == 0  # NumPy needs no pyarrow
    assert np.array_equal(np.load(tmp_path / "back.npy"), X)
    if framed:
        capsys.readouterr()
        assert main(["info", str(tmp_path / "t.gede")]) == 0
        out = capsys.readouterr().out
        assert 'frame          from a DataFrame or Arrow table (listing its columns needs pyarrow: pip install ' \
               '"gedenb[frames]")' in out
        assert "target         b (classification, 2 classes)" in out


def test_errors_are_reported_not_raised(tmp_path, capsys):
    bad = tmp_path / "bad.gede"
    bad.write_bytes(b"definitely not a gede file" * 10)
    assert main(["info", str(bad)]) == 2
    assert "not a .gede file" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing.gede")]) == 2
    assert main(["compress", str(tmp_path / "x.txt"), str(tmp_path / "o.gede")]) == 2


def test_quickstart_runs_as_a_module(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "gedenb", "quickstart", "--out", str(tmp_path / "ch.gede")],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    for words in ("16,512 x 9", "n_b =", "m = ", "Eq. 1 size breakdown", "bytes on disk", "test MSE",
                  "condensed samples"):
        assert words in out.stdout
    assert (tmp_path / "ch.gede").exists()


@pytest.mark.parametrize("argv", [[], ["frobnicate"]])
def test_usage_errors_exit_nonzero(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code != 0


# --------------------------------------------------------------------------
# --version, --help, the experiments' own options
# --------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _wide_help(monkeypatch):
    """argparse wraps help to the terminal's width: one width for every run of these tests."""
    monkeypatch.setenv("COLUMNS", "100")


def _exit(argv, capsys) -> tuple:
    """``(exit code, stdout, stderr)`` of a command line that argparse ends (--help, --version, usage errors)."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_version_names_the_package_and_its_numeric_stack(capsys):
    code, out, _ = _exit(["--version"], capsys)
    assert code == 0
    assert out.startswith(f"gedenb {gedenb.__version__} ")
    assert "NumPy" in out and "Numba" in out


def test_help_lists_every_command_with_a_summary_and_examples(capsys):
    code, out, _ = _exit(["--help"], capsys)
    assert code == 0
    for command in COMMANDS:
        assert re.search(rf"^ +{command} +\w", out, re.M), f"{command} and its summary on one line"
    assert "dreaMLearning" in out and "examples:" in out
    assert "reproduce table1 --fraction 0.01 --batch-size 64 --seed 0,1,2,3,4" in out
    assert "``" not in out  # written text, not the module's docstring


def test_reproduce_help_lists_the_experiments(capsys):
    code, out, _ = _exit(["reproduce", "--help"], capsys)
    assert code == 0
    for name in EXPERIMENTS:
        assert re.search(rf"^ +{name} +\w", out, re.M)


def test_each_experiment_shows_its_own_options_with_defaults(capsys):
    code, out, _ = _exit(["reproduce", "table1", "--help"], capsys)
    assert code == 0
    for flag in ("--fraction", "--batch-size", "--seed", "--methods", "--out", "--quick", "--no-figure",
                 "--progress 0|1"):
        assert flag in out
    assert "(default: 0.01)" in out and "random_static,rs2,dreamlearning" in out
    for name, fn in EXPERIMENTS.items():
        code, out, _ = _exit(["reproduce", name, "--help"], capsys)
        assert code == 0
        for param in fn.cli.options:
            assert re.search(rf"^  --{param.replace('_', '-')} [A-Z0-9]", out, re.M)


@pytest.mark.parametrize("argv, message", [
    (["--frobnicate", "3"], "unrecognized arguments: --frobnicate 3"),
    (["--seed", "0,a"], "argument --seed: expected comma-separated int values, got '0,a'"),
    (["--fraction", "lots"], "argument --fraction: expected a float value, got 'lots'"),
    (["--transform", "fft"], "argument --transform: invalid choice 'fft'"),
    (["--progress", "maybe"], "argument --progress: expected a bool value, got 'maybe'"),
])
def test_reproduce_refuses_unknown_options_and_bad_values(argv, message, capsys):
    code, _, err = _exit(["reproduce", "table1", *argv], capsys)
    assert code == 2
    assert message in err


@pytest.fixture
def table1_calls(monkeypatch):
    """table1 replaced by a recorder with the same options: the command line's parsing, without training."""
    calls = []

    def record(**kw):
        calls.append(kw)
        return ResultTable("recorded table1", ("a",), [(1,)])

    record.cli = EXPERIMENTS["table1"].cli
    monkeypatch.setitem(EXPERIMENTS, "table1", record)
    return calls


def test_options_reach_the_experiment_parsed_and_only_when_given(table1_calls, tmp_path, capsys):
    argv = ["reproduce", "table1", "--fraction", "0.01", "--batch-size", "64", "--seed", "0,1,2,3,4",
            "--methods", "rs2,dreamlearning", "--progress", "0", "--no-figure", "--out", str(tmp_path)]
    assert main(argv) == 0
    (kw,) = table1_calls
    assert {k: v for k, v in kw.items() if k != "out_dir"} == {
        "fraction": 0.01, "batch_size": 64, "seed": (0, 1, 2, 3, 4), "methods": ("rs2", "dreamlearning"),
        "progress": False, "quick": False, "figure": False}
    assert Path(kw["out_dir"]).parent == tmp_path
    assert "recorded table1" in capsys.readouterr().out
    assert main(["reproduce", "table1", "--quick", "--out", str(tmp_path)]) == 0
    assert set(table1_calls[1]) == {"out_dir", "quick", "figure"}  # the function's own defaults apply


# --------------------------------------------------------------------------
# optional dependencies: one line that names the extra, before any work
# --------------------------------------------------------------------------
def test_missing_matplotlib_prints_the_table_without_the_figure(table1_calls, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    assert main(["reproduce", "table1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert out.err.splitlines() == ['warning: the figure needs matplotlib: pip install "gedenb[notebooks]"; '
                                    "printing the table without it"]
    assert table1_calls[0]["figure"] is False  # decided before the experiment starts
    assert "recorded table1" in out.out and not list(tmp_path.glob("*.png"))


def test_missing_torch_is_one_line_naming_the_extra_before_any_work(monkeypatch, tmp_path, capsys):
    for name in ("torch", "torchvision"):
        monkeypatch.setitem(sys.modules, name, None)
    assert main(["reproduce", "table1", "--quick", "--out", str(tmp_path)]) == 2
    out = capsys.readouterr()
    assert out.err.splitlines() == ['error: table1 needs PyTorch, torchvision: pip install "gedenb[torch]"']
    assert out.out == "" and list(tmp_path.iterdir()) == []


BLOCKER = textwrap.dedent("""
    import runpy, sys
    BLOCKED = set(sys.argv[1].split(","))
    class Blocker:  # as if these packages were not installed
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, Blocker())
    sys.argv = ["gedenb", *sys.argv[2:]]
    runpy.run_module("gedenb", run_name="__main__", alter_sys=True)
""")


def test_missing_torch_in_a_fresh_process_ends_without_a_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-c", BLOCKER, "torch,torchvision", "reproduce", "table1", "--quick",
                          "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path, env=support.child_env())
    assert out.returncode == 2, out.stderr
    assert out.stderr.splitlines() == ['error: table1 needs PyTorch, torchvision: pip install "gedenb[torch]"']


def test_extras_table_agrees_with_pyproject():
    """Every package of every extra is in gedenb._optional.EXTRAS, under that extra (the checkout's pyproject)."""
    pyproject = CHECKOUT / "pyproject.toml"
    if not pyproject.exists():  # a wheel under test, without its checkout
        return
    # the section's `extra = ["package>=version", ...]` lines (tomllib is Python 3.11+, gedenb supports 3.10)
    section = pyproject.read_text(encoding="utf-8").split("[project.optional-dependencies]")[1].split("\n[")[0]
    module_of = {"scikit-learn": "sklearn"}  # distribution names that differ from the module's
    listed = {module_of.get(package, package): extra
              for extra, reqs in re.findall(r"^(\w+) = \[(.*)\]$", section, re.M)
              for package in re.findall(r'"([A-Za-z0-9_.-]+)', reqs)}
    assert {"torch", "matplotlib", "dask"} <= set(listed)
    assert listed == {module: extra for module, (_, extra) in EXTRAS.items() if module in listed}


# --------------------------------------------------------------------------
# release files
# --------------------------------------------------------------------------
def test_citation_and_changelog_name_the_package_version():
    """In a checkout, CITATION.cff, CHANGELOG.md and LICENSE must exist and agree with gedenb.__version__."""
    if not (CHECKOUT / "pyproject.toml").exists():  # a wheel under test, without its checkout
        return
    citation = (CHECKOUT / "CITATION.cff").read_text(encoding="utf-8")
    changelog = (CHECKOUT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(r"^cff-version: 1\.2\.0$", citation, re.M)
    assert re.search(r'^version: "?([^"\s]+)"?$', citation, re.M).group(1) == gedenb.__version__
    assert re.search(r"^license: BSD-3-Clause$", citation, re.M)
    assert re.search(rf"^## \[?{re.escape(gedenb.__version__)}\]?", changelog, re.M)
    assert (CHECKOUT / "LICENSE").read_text(encoding="utf-8").startswith("BSD 3-Clause License")
