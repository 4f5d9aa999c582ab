import os


def test_fast_mode_is_set_under_test():
    """CI must never silently run the full-size notebooks: `make test` sets H2T_FAST=1."""
    assert os.environ.get("H2T_FAST") == "1", "run the tests through `make test` (it sets H2T_FAST=1)"
