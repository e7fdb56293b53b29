"""Optional dependencies: which extra installs a module, and one line that says so when it is missing.

gedenb itself needs NumPy, SciPy and Numba only; everything else comes with
an extra of ``pyproject.toml`` (``pip install "gedenb[torch]"``).
:data:`EXTRAS` is the one table of which extra provides which module: code
that needs an optional module calls :func:`require` before it starts work,
so a missing package ends in one clear line, never in a traceback halfway
through a run.
"""

from __future__ import annotations

import importlib

__all__ = ["EXTRAS", "MissingDependency", "OptionalDependencyWarning", "missing", "needs", "require"]

#: Top-level module -> (the name to show, the extra of ``pyproject.toml`` that installs it).
EXTRAS = {
    "torch": ("PyTorch", "torch"),
    "torchvision": ("torchvision", "torch"),
    "tqdm": ("tqdm", "torch"),
    "PIL": ("Pillow", "torch"),  # comes with torchvision
    "asv": ("asv", "bench"),
    "zstandard": ("zstandard", "bench"),
    "blosc2": ("Blosc2", "bench"),
    "matplotlib": ("matplotlib", "notebooks"),
    "nbmake": ("nbmake", "notebooks"),
    "ipykernel": ("ipykernel", "notebooks"),
    "pytest": ("pytest", "dev"),
    "hypothesis": ("Hypothesis", "dev"),
    "dask": ("Dask", "dask"),
    "distributed": ("Dask distributed", "dask"),
    "pandas": ("pandas", "frames"),
    "pyarrow": ("pyarrow", "frames"),
    "polars": ("polars", "frames"),
    "sklearn": ("scikit-learn", "learn"),
}


class MissingDependency(ImportError):
    """An optional dependency is not installed; the message is one line naming the extra that installs it."""


class OptionalDependencyWarning(UserWarning):
    """An optional part of a result (a figure) was skipped because its dependency is not installed."""


def needs(feature: str, *modules: str) -> str:
    """The one-line message ``'<feature> needs <names>: pip install "gedenb[<extras>]"'``.

    Parameters
    ----------
    feature : str
        What needs the modules: the subject of the message (``"table1"``, ``"the figure"``).
    *modules : str
        Top-level module names, keys of :data:`EXTRAS`.

    Examples
    --------
    >>> print(needs("gedenb.torch", "torch", "torchvision"))
    gedenb.torch needs PyTorch, torchvision: pip install "gedenb[torch]"
    """
    names = ", ".join(EXTRAS[m][0] for m in modules)
    extras = ",".join(dict.fromkeys(EXTRAS[m][1] for m in modules))
    return f'{feature} needs {names}: pip install "gedenb[{extras}]"'


def missing(feature: str, *modules: str) -> str | None:
    """:func:`needs` for those of ``modules`` that do not import, or None when all of them do.

    A module that is installed but fails to import for another reason than
    a missing optional module has that reason added, on the same line.

    Examples
    --------
    >>> missing("gedenb", "numpy") is None
    True
    """
    absent, reasons = [], []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            absent.append(module)
            if not (isinstance(exc, ModuleNotFoundError) and (exc.name or "").partition(".")[0] in EXTRAS):
                reasons.append(f"{module}: {(str(exc) or type(exc).__name__).splitlines()[0]}")
    if not absent:
        return None
    text = needs(feature, *absent)
    return f"{text} (import failed: {'; '.join(reasons)})" if reasons else text


def require(feature: str, *modules: str) -> None:
    """Raise :class:`MissingDependency` (one line, see :func:`needs`) unless every module imports.

    Call it before any work starts.

    Raises
    ------
    MissingDependency
        When one or more of ``modules`` cannot be imported.
    """
    message = missing(feature, *modules)
    if message is not None:
        raise MissingDependency(message)
