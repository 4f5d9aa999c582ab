"""h2t_lib.course.probe: reading a hand's 63 coordinates back from its token."""
import numpy as np
import pytest

from h2t_lib.course.probe import _mpjpe, linear_probe, ridge_fit


def _fake(n, d, seed, noise=0.0, informative=True):
    rng = np.random.default_rng(seed)
    A = np.random.default_rng(99).normal(size=(d, 63)) * 5          # the same map in train and test
    X = rng.normal(size=(n, 2, d))
    Y = X @ A if informative else rng.normal(0, 30, size=(n, 2, 63))
    Y = Y + rng.normal(0, noise, size=Y.shape)
    Y[..., 60:63] = 0.0                                              # the wrist (joint 20) is the origin
    return {"tokens": X, "target": Y, "coarse": Y + 3.0, "valid": np.ones((n, 2), bool)}


def test_ridge_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    W0 = rng.normal(size=(5, 3))
    W, b = ridge_fit(X, X @ W0 + 7.0, alpha=1e-6)
    assert np.allclose(W, W0, atol=1e-4) and np.allclose(b, 7.0, atol=1e-4)


def test_probe_reads_informative_tokens_and_not_noise():
    good = linear_probe(_fake(80, 8, 0, noise=0.1), _fake(20, 8, 1, noise=0.1))
    assert good["probe"] < 0.1 * good["mean_pose"]                   # the coordinates are in the token
    bad = linear_probe(_fake(80, 8, 0, informative=False), _fake(20, 8, 1, informative=False))
    assert bad["probe"] > 0.9 * bad["mean_pose"]                     # no better than the mean hand
    assert good["num_train"] == 160 and good["dim"] == 8
    assert np.isclose(good["head"], _mpjpe(np.full((1, 63), 3.0), np.zeros((1, 63))))  # |(3,3,3)|


def test_probe_needs_hands():
    d = _fake(4, 3, 0)
    d["valid"][:] = False
    with pytest.raises(ValueError):
        linear_probe(d, _fake(4, 3, 1))
