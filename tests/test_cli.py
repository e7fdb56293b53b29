import subprocess
import sys

import numpy as np
import pytest

from gedenb.__main__ import main


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
