"""Smoke test of the asv benchmark suite (``asv_benchmarks/``).

Every benchmark class is instantiated for every parameter combination, its
``setup_cache``/``setup`` run, each ``time_``/``peakmem_``/``track_`` method
called once and ``teardown`` run -- on small data (``GEDENB_BENCH_SMOKE=1``
shrinks every data set).  ``track_`` values must be finite positive numbers.
MNIST benchmarks skip (as asv does) when ``GEDENB_DATA`` is unavailable;
peer benchmarks skip when their library (the ``bench`` extra) is missing.
A second test runs ``asv check`` on the suite when asv is installed.
"""

import importlib
import importlib.util
import inspect
import itertools
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "asv_benchmarks"
MODULES = sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))
PREFIXES = ("time_", "peakmem_", "track_", "mem_")
#: peer benchmark classes (by name prefix) and the library each one needs
PEER_LIBRARIES = {"Zstd": "zstandard", "Blosc2": "blosc2"}


def _default_data_root():
    if os.environ.get("GEDENB_DATA"):
        return os.environ["GEDENB_DATA"]
    candidate = ROOT.parent / "shared" / "data"
    return str(candidate) if candidate.is_dir() else None


def _copy_of_the_suite(folder: Path) -> Path:
    """``asv.conf.json`` and ``asv_benchmarks/`` copied into ``folder``: importing the suite from there puts
    no folder of the checkout on the path, so its ``import gedenb`` gets the gedenb under test."""
    shutil.copytree(BENCH_DIR, folder / BENCH_DIR.name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "asv.conf.json", folder / "asv.conf.json")
    return folder


@pytest.fixture(scope="module")
def bench_modules(tmp_path_factory):
    """The benchmark modules, imported with the smoke switch on."""
    suite = _copy_of_the_suite(tmp_path_factory.mktemp("suite"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GEDENB_BENCH_SMOKE", "1")
        root = _default_data_root()
        if root:
            mp.setenv("GEDENB_DATA", root)
        mp.syspath_prepend(str(suite))
        yield {name: importlib.import_module(f"asv_benchmarks.{name}") for name in MODULES}


def _benchmark_classes(module):
    for name, cls in inspect.getmembers(module, inspect.isclass):
        if name.startswith("_"):  # asv skips private names (shared bases such as _Ratios)
            continue
        if cls.__module__ == module.__name__ and any(m.startswith(PREFIXES) for m in dir(cls)):
            yield name, cls


def _param_sets(cls):
    params = getattr(cls, "params", [])
    if not params:
        return [()]
    if not isinstance(params[0], (list, tuple)):  # asv: a flat list is one parameter
        params = [params]
    return list(itertools.product(*params))


def _cases():
    """(module, class name, parameter tuple) for every benchmark instance (static scan)."""
    import ast

    cases = []
    for name in MODULES:
        tree = ast.parse((BENCH_DIR / f"{name}.py").read_text())
        with_benchmarks = set()  # classes defining or inheriting (from this module) benchmark methods
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and (
                any(isinstance(b, ast.FunctionDef) and b.name.startswith(PREFIXES) for b in node.body)
                or any(isinstance(b, ast.Name) and b.id in with_benchmarks for b in node.bases)
            ):
                with_benchmarks.add(node.name)
                if not node.name.startswith("_"):  # asv skips private names (shared bases)
                    cases.append((name, node.name))
    return cases


_CACHE = {}


@pytest.mark.parametrize("module_name,class_name", _cases())
def test_benchmark_class(bench_modules, module_name, class_name):
    for prefix, lib in PEER_LIBRARIES.items():
        if class_name.startswith(prefix):
            pytest.importorskip(lib)
    module = bench_modules[module_name]
    cls = getattr(module, class_name)
    assert (class_name, cls) in list(_benchmark_classes(module))
    methods = sorted(m for m in dir(cls) if m.startswith(PREFIXES))
    skipped, ran = [], 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GEDENB_BENCH_SMOKE", "1")
        root = _default_data_root()
        if root:
            mp.setenv("GEDENB_DATA", root)
        for params in _param_sets(cls):
            bench = cls()
            args = list(params)
            if hasattr(bench, "setup_cache"):
                key = (module_name, class_name)
                if key not in _CACHE:
                    try:
                        _CACHE[key] = bench.setup_cache()
                    except NotImplementedError as e:
                        pytest.skip(f"{class_name}: {e}")
                args = [_CACHE[key]] + args
            try:
                if hasattr(bench, "setup"):
                    bench.setup(*args)
            except NotImplementedError as e:  # asv's skip (e.g. GEDENB_DATA unset)
                skipped.append(f"{params}: {e}")
                continue
            try:
                for m in methods:
                    value = getattr(bench, m)(*args)
                    if m.startswith("track_"):
                        assert isinstance(value, (int, float)) and not isinstance(value, bool), (m, params, value)
                        assert math.isfinite(value) and value > 0, (m, params, value)
                        assert getattr(getattr(cls, m), "unit", None), f"{class_name}.{m} has no unit"
            finally:
                if hasattr(bench, "teardown"):
                    bench.teardown(*args)
            ran += 1
    if not ran:
        pytest.skip(f"{class_name}: every parameter combination skipped; first: {skipped[0]}")


def test_every_module_has_benchmarks(bench_modules):
    assert MODULES, "no asv_benchmarks/bench_*.py modules"
    for name, module in bench_modules.items():
        assert list(_benchmark_classes(module)), f"{name} defines no benchmark class"


@pytest.mark.skipif(importlib.util.find_spec("asv") is None, reason="asv is not installed")
def test_asv_check(tmp_path):
    """``asv check`` imports the suite in the current interpreter and validates it."""
    import support

    suite = _copy_of_the_suite(tmp_path)
    env = support.child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(suite), env["PYTHONPATH"]])
    proc = subprocess.run(
        [sys.executable, "-m", "asv", "check", "-E", f"existing:{sys.executable}"],
        cwd=suite, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
