import os
import sys
from pathlib import Path

import numpy as np
import pytest

# the tests' shared modules (naive, support) import by name; the checkout itself is never put on the path,
# so that the suite tests whichever gedenb is installed
sys.path.insert(0, str(Path(__file__).resolve().parent))

import support  # noqa: E402


def pytest_configure(config):
    if os.environ.get("GEDENB_TEST_INSTALLED") == "1" and support.installed_from_checkout():
        raise pytest.UsageError(f"GEDENB_TEST_INSTALLED=1 but gedenb is imported from the checkout "
                                f"({support.PACKAGE_ROOT}); run from a folder outside it, with the wheel installed")


def pytest_report_header(config):
    import gedenb
    from gedenb._numba import kernel_cache_dir, threading_layer_info

    info = threading_layer_info()
    return [f"gedenb {gedenb.__version__} from {support.PACKAGE_ROOT}",
            f"numba threading layer requested: {info['requested']} (TBB runtime: {info['tbb_library']}); "
            f"kernel cache: {kernel_cache_dir()}"]


@pytest.fixture
def rng(request):
    """A NumPy generator seeded from the test's node id (reproducible, distinct per test)."""
    seed = sum(request.node.nodeid.encode()) * 7919 % (2**32)
    return np.random.default_rng(seed)
