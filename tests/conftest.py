import numpy as np
import pytest


@pytest.fixture
def rng(request):
    """A NumPy generator seeded from the test's node id (reproducible, distinct per test)."""
    seed = sum(request.node.nodeid.encode()) * 7919 % (2**32)
    return np.random.default_rng(seed)
