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


@pytest.fixture(scope="session")
def interhand_dir(tmp_path_factory):
    """A tiny InterHand2.6M-format folder (16 train + 8 test images with the synthetic extra fields)."""
    from fixtures import make_interhand_fixture

    root = tmp_path_factory.mktemp("fixture_data")
    make_interhand_fixture(root, "train", n=16, extra_fields=True, seed=1)
    make_interhand_fixture(root, "test", n=8, extra_fields=True, seed=2)
    return root


@pytest.fixture(scope="session")
def fast_env():
    """H2T_FAST=1 for the tests that use the course's data (make test sets it already; this makes
    a single test file run the same way outside make)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("H2T_FAST", "1")
        yield
