"""Notebook 07's views: a fixed batch, overfitting it, and the before/after picture."""
import matplotlib.colors as mcolors
import numpy as np
import pytest
import torch

from h2t_lib import skeleton as sk
from h2t_lib.course.training_views import before_after_figure, final_stage_error_mm, fixed_batch, overfit_batch
from h2t_lib.viz import GT_COLOR
from h2t_lib.data import InterHand26M


@pytest.fixture(scope="module")
def train64(interhand_dir):
    return InterHand26M(interhand_dir, "train", image_size=64)


def test_fixed_batch_draws_distinct_rows_and_stacks_them(train64):
    b = fixed_batch(train64, n=6, seed=3)
    rows = b["row"].tolist()
    assert len(set(rows)) == 6 and all(0 <= r < len(train64) for r in rows)
    assert b["image"].shape == (6, 3, 64, 64) and b["joints_cam"].shape == (6, 42, 3)
    assert torch.equal(b["joints_cam"][2], torch.as_tensor(train64[rows[2]]["joints_cam"]))
    assert fixed_batch(train64, n=6, seed=3)["row"].tolist() == rows  # the seed fixes the draw
    with pytest.raises(ValueError, match="fewer than"):
        fixed_batch(train64, n=len(train64) + 1)


def test_overfitting_one_batch_drives_its_error_down(train64):
    batch = fixed_batch(train64, n=4, seed=0)
    seen = []
    run = overfit_batch(batch, "tiny", steps=40, log_every=20, on_log=seen.append)
    model, hist = run["model"], run["history"]
    assert [r["step"] for r in hist] == [0, 20, 40] and seen == hist
    assert not model.training
    assert hist[-1]["error_mm"] < 0.6 * hist[0]["error_mm"]           # it learns the batch
    assert hist[-1]["error_mm"] == pytest.approx(float(final_stage_error_mm(model, batch).mean()))
    gt = sk.root_relative(batch["joints_cam"].float())
    valid = batch["joint_valid"] > 0
    err = lambda p: float((p - gt).norm(dim=-1)[valid].mean())         # noqa: E731
    assert err(run["after"]) < 0.6 * err(run["before"])                # before / after are those poses


def test_before_after_draws_the_prediction_where_the_projection_puts_it(train64):
    batch = fixed_batch(train64, n=2, seed=1)
    exact = sk.root_relative(batch["joints_cam"].float())              # a perfect root-relative prediction
    fig = before_after_figure(batch, exact + 30.0, exact, index=1)
    assert len(fig.axes) == 3
    valid = batch["joint_valid"][1].numpy() > 0
    gt_px = batch["joints_img"][1].numpy()
    after = fig.axes[2]
    gt_lines = [ln for ln in after.lines if mcolors.same_color(ln.get_color(), GT_COLOR)]
    pred_lines = [ln for ln in after.lines if not mcolors.same_color(ln.get_color(), GT_COLOR)]
    assert len(gt_lines) == len(pred_lines) > 0                        # GT and prediction, in different colours
    drawn = np.concatenate([ln.get_xydata() for ln in pred_lines])
    bones = [(p, c) for p, c in sk.BONES if valid[p] and valid[c]]
    expected = np.concatenate([gt_px[[p, c]] for p, c in bones])
    assert np.allclose(drawn, expected, atol=0.05)                     # a perfect prediction lands on the GT pixels
    before = np.concatenate([ln.get_xydata() for ln in fig.axes[1].lines
                             if not mcolors.same_color(ln.get_color(), GT_COLOR)])
    assert not np.allclose(before, expected, atol=1.0)                 # a wrong one does not
