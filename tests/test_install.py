"""What a fresh install relies on: the on-disk kernel cache (on by default, per user, silent when it cannot
be written, keyed by the package's sources), the wheel's contents, and the parts of the package that hold no
kernels."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import gedenb
import support
from gedenb import _numba

_CHILD = r"""
import json, sys, numpy as np
from numba.core import event
compiled = []
class Count(event.Listener):
    def on_start(self, e): pass
    def on_end(self, e): compiled.append(e.data["dispatcher"].py_func.__qualname__)
event.register("numba:compile", Count())
import gedenb
from gedenb import _numba
before = _numba.kernel_cache_dir().exists()
job = sys.argv[1]
if job == "table":
    X = np.random.default_rng(0).random((500, 4))
    c = gedenb.compress(X, beta=4)
    gedenb.save(c, sys.argv[2])
    with gedenb.open(sys.argv[2]) as r:
        assert r.read_rows(np.array([3, 1])).tobytes() == X[[3, 1]].tobytes()
else:
    from gedenb.bits import _pack_fixed, _unpack_fixed
    v = np.arange(10, dtype=np.uint64)
    assert (_unpack_fixed(_pack_fixed(v, 4), 4, 10) == v).all()
print(json.dumps({"cache_dir_at_import": before, "compiled": compiled,
                  "cache_dir": str(_numba.kernel_cache_dir())}))
"""


def _child(tmp_path, job, **env):
    out = subprocess.run([sys.executable, "-W", "error", "-c", _CHILD, job, str(tmp_path / "t.gede")],
                         capture_output=True, text=True, timeout=600, env=support.child_env(**env))
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stderr == "", out.stderr[-4000:]  # silent: no warning, no message
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_kernel_cache_is_on_by_default_and_a_second_process_compiles_nothing(tmp_path):
    env = support.child_env(cache=tmp_path / "cache")
    env.pop("GEDENB_NUMBA_CACHE", None)
    first = _child(tmp_path, "table", **env)
    assert not first["cache_dir_at_import"]  # importing gedenb wrote nothing
    assert Path(first["cache_dir"]) == tmp_path / "cache" / "kernels"
    assert "_pack_codes" in first["compiled"] and list((tmp_path / "cache" / "kernels").rglob("*.nbc"))
    second = _child(tmp_path, "table", **env)
    assert second["compiled"] == []  # compress + save + open + read: every kernel loaded from disk


def test_an_unwritable_cache_folder_or_the_switch_turns_caching_off_silently(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    env = support.child_env(cache=blocker / "sub")  # a folder below a file: cannot be made
    res = _child(tmp_path, "pack", **env)
    assert "_pack_fixed" in res["compiled"] and not (blocker / "sub").exists()
    env = support.child_env(cache=tmp_path / "off", GEDENB_NUMBA_CACHE="0")
    for _ in range(2):
        res = _child(tmp_path, "pack", **env)
        assert "_pack_fixed" in res["compiled"]  # compiled afresh every time
    assert not (tmp_path / "off").exists()


def test_the_cache_stamp_covers_every_kernel_module(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "torch").mkdir(parents=True)
    (pkg / "a.py").write_text("X = 1\n")
    (pkg / "torch" / "b.py").write_text("Y = 1\n")
    stamp = _numba._source_digest(pkg, ("torch",))
    (pkg / "torch" / "b.py").write_text("Y = 2\n")
    assert _numba._source_digest(pkg, ("torch",)) == stamp  # a kernel-free part changed: entries stay valid
    (pkg / "a.py").write_text("X = 2\n")  # a constant another module's kernel may have compiled in
    assert _numba._source_digest(pkg, ("torch",)) != stamp
    assert _numba._package_stamp() == _numba._source_digest(Path(gedenb.__file__).resolve().parent,
                                                              _numba.KERNEL_FREE)


def test_the_kernel_free_parts_hold_no_kernels_and_no_kernel_module_imports_them():
    from numba.core.registry import CPUDispatcher

    pkg = Path(gedenb.__file__).resolve().parent
    core = sorted(p.stem for p in pkg.glob("*.py") if p.stem not in ("__init__", "__main__", "dask"))
    code = ("import importlib, sys\n"
            f"for m in {core!r}: importlib.import_module('gedenb.' + m)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[:2] in (['gedenb', 'torch'], "
            "['gedenb', 'experiments'], ['gedenb', '__main__'])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=support.child_env())
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"
    free = [p for name in _numba.KERNEL_FREE for p in ([pkg / name] if name.endswith(".py") else
                                                          sorted((pkg / name).rglob("*.py")))]
    assert len(free) > 5
    pytest.importorskip("torch")
    for path in free:
        rel = path.relative_to(pkg.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        mod = importlib.import_module(name)
        assert not [k for k, v in vars(mod).items() if isinstance(v, CPUDispatcher) and v.__module__ == name], name


def test_the_installed_package_has_every_file_of_the_checkout():
    """Against a wheel (CI's wheel job): every module and data file of the checkout was installed."""
    src = support.CHECKOUT / "gedenb"
    pkg = Path(gedenb.__file__).resolve().parent
    want = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()
                  and "__pycache__" not in p.parts and p.suffix in (".py", ".gz"))
    assert want and "data/cal_housing.csv.gz" in want and "torch/data.py" in want
    missing = [w for w in want if not (pkg / w).is_file()]
    assert missing == [], f"not installed (from {pkg}): {missing}"
