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
    import gzip

    p = tmp_path / "t.csv.gz"
    with gzip.open(p, "wt") as f:
        f.write("a,b\n1.25,3\n2.5,4\n-0.75,5\n")
    assert main(["compress", str(p), str(tmp_path / "t.gede")]) == 0
    assert main(["decompress", str(tmp_path / "t.gede"), str(tmp_path / "t.npy")]) == 0
    assert np.load(tmp_path / "t.npy").tolist() == [[1.25, 3.0], [2.5, 4.0], [-0.75, 5.0]]


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
    listed = {package: extra for extra, reqs in re.findall(r"^(\w+) = \[(.*)\]$", section, re.M)
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
