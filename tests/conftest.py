import os

import pytest

# Unit tests run on one thread per xdist worker: two workers share this 2-core machine.
try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)
