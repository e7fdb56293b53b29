"""Helpers the tests share: where the checkout and the gedenb under test are, child-process environments.

The suite runs against whichever gedenb the interpreter imports: an editable
install (the checkout) or a wheel installed into site-packages (CI's wheel
job, which sets ``GEDENB_TEST_INSTALLED=1``; ``conftest.py`` then refuses a
gedenb imported from the checkout).  Child processes must import the same
one, never the checkout by accident.
"""

from __future__ import annotations

import os
import site
from pathlib import Path

import gedenb

TESTS = Path(__file__).resolve().parent
#: The source checkout these tests belong to (its git history, benchmarks, scripts, notebooks).
CHECKOUT = TESTS.parent
#: The folder the gedenb under test is imported from (the checkout, or site-packages).
PACKAGE_ROOT = Path(gedenb.__file__).resolve().parent.parent


def child_env(cache=None, **extra) -> dict:
    """Environment of a child Python process started with ``sys.executable``.

    It imports the same gedenb as this process (its folder goes on
    ``PYTHONPATH`` unless it is a site folder the child finds anyway) and the
    tests' own modules; ``cache``: a folder for the child's on-disk kernel
    cache (``GEDENB_CACHE``), shared by the children that get the same one.
    """
    env = dict(os.environ)
    sites = {Path(p).resolve() for p in site.getsitepackages() + [site.getusersitepackages()]}
    paths = [] if PACKAGE_ROOT in sites else [str(PACKAGE_ROOT)]
    paths += [str(TESTS)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.pop("PYTEST_CURRENT_TEST", None)
    if cache is not None:
        env["GEDENB_CACHE"] = str(cache)
        env.pop("GEDENB_NUMBA_CACHE", None)
    env.update(extra)
    return env


def installed_from_checkout() -> bool:
    """Whether the gedenb under test is the checkout's own source (an editable install or ``PYTHONPATH``)."""
    return PACKAGE_ROOT == CHECKOUT
