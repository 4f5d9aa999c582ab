"""MPJPE / EPE against a loop-by-loop reference of the InterHand2.6M baseline's evaluation."""
import math

import numpy as np
import pytest
import torch

from h2t_lib import metrics
from h2t_lib.skeleton import HAND_SLICE, NUM_JOINTS, ROOT_INDEX


def _hand_of(j):
    return "right" if j < 21 else "left"


def reference_mpjpe(pred, gt, valid, hand_type):
    """The baseline's evaluation written out loop by loop (plus: a joint needs its hand's root valid)."""
    errs = {"single": [[] for _ in range(NUM_JOINTS)], "interacting": [[] for _ in range(NUM_JOINTS)]}
    for n in range(len(pred)):
        p, g = pred[n].copy(), gt[n].copy()
        for h in ("right", "left"):
            p[HAND_SLICE[h]] = p[HAND_SLICE[h]] - p[ROOT_INDEX[h]]
            g[HAND_SLICE[h]] = g[HAND_SLICE[h]] - g[ROOT_INDEX[h]]
        group = "interacting" if hand_type[n] == "interacting" else "single"
        for j in range(NUM_JOINTS):
            if valid[n, j] and valid[n, ROOT_INDEX[_hand_of(j)]]:
                errs[group][j].append(math.sqrt(sum((p[j, c] - g[j, c]) ** 2 for c in range(3))))

    def mean_of_joint_means(lists):
        means = [sum(e) / len(e) for e in lists if len(e) > 0]
        return sum(means) / len(means) if means else float("nan")

    both = [errs["single"][j] + errs["interacting"][j] for j in range(NUM_JOINTS)]
    return {
        "single": mean_of_joint_means(errs["single"]),
        "interacting": mean_of_joint_means(errs["interacting"]),
        "all": mean_of_joint_means(both),
    }


def reference_per_sample(pred, gt, valid):
    out = []
    for n in range(len(pred)):
        e = []
        for j in range(NUM_JOINTS):
            h = _hand_of(j)
            if valid[n, j] and valid[n, ROOT_INDEX[h]]:
                d = (pred[n, j] - pred[n, ROOT_INDEX[h]]) - (gt[n, j] - gt[n, ROOT_INDEX[h]])
                e.append(float(np.sqrt((d**2).sum())))
        out.append(sum(e) / len(e) if e else float("nan"))
    return np.array(out)


def random_set(rng, n=14):
    gt = rng.normal(0, 60, (n, NUM_JOINTS, 3)) + rng.normal(0, 300, (n, 1, 3))
    pred = gt + rng.normal(0, 15, gt.shape) + rng.normal(0, 50, (n, 1, 3))  # also a global offset
    valid = (rng.random((n, NUM_JOINTS)) < 0.8).astype(np.float32)
    hand_type = [("right", "left", "interacting")[i] for i in rng.permutation(np.arange(n) % 3)]  # all groups
    for i, h in enumerate(hand_type):
        for hand in ("right", "left"):
            if h in (hand, "interacting"):
                valid[i, ROOT_INDEX[hand]] = 1  # a present hand has a valid root...
            else:
                valid[i, HAND_SLICE[hand]] = 0  # ...the absent hand of a single-hand sample is invalid
    # root-invalid hands whose other joints are still flagged valid: the metric must skip them
    for i in (0, 3):
        valid[i, ROOT_INDEX["right"]] = 0
        valid[i, HAND_SLICE["right"].start : ROOT_INDEX["right"]] = 1
    return pred, gt, valid, hand_type


def test_mpjpe_matches_loop_reference(rng):
    pred, gt, valid, hand_type = random_set(rng)
    got = metrics.mpjpe(pred, gt, valid, hand_type)
    want = reference_mpjpe(pred, gt, valid, hand_type)
    assert set(got) == {"single", "interacting", "all"}
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-12), k
    assert all(math.isfinite(v) for v in got.values())


def test_root_invalid_hand_is_skipped(rng):
    pred, gt, valid, hand_type = random_set(rng, n=6)
    valid[0, ROOT_INDEX["right"]] = 0
    base = metrics.mpjpe(pred, gt, valid, hand_type)
    # whatever the right hand of sample 0 predicts, it cannot count: its root is invalid
    pred2 = pred.copy()
    pred2[0, HAND_SLICE["right"]] += rng.normal(0, 500, (21, 3))
    assert metrics.mpjpe(pred2, gt, valid, hand_type) == pytest.approx(base, rel=1e-12)
    # the same joints flagged invalid explicitly give the same numbers
    valid_explicit = valid.copy()
    valid_explicit[0, HAND_SLICE["right"]] = 0
    assert metrics.mpjpe(pred, gt, valid_explicit, hand_type) == pytest.approx(base, rel=1e-12)


def test_empty_group_is_nan(rng):
    pred, gt, valid, _ = random_set(rng, n=5)
    hand_type = ["right"] * 5
    valid[:, HAND_SLICE["left"]] = 0
    got = metrics.mpjpe(pred, gt, valid, hand_type)
    want = reference_mpjpe(pred, gt, valid, hand_type)
    assert math.isnan(got["interacting"]) and math.isnan(want["interacting"])
    assert got["single"] == pytest.approx(want["single"], rel=1e-12)
    assert got["all"] == pytest.approx(got["single"], rel=1e-12)
    # no valid joint at all: everything NaN, no warning, no crash
    none = metrics.mpjpe(pred, gt, np.zeros_like(valid), hand_type)
    assert all(math.isnan(v) for v in none.values())


def test_root_alignment_invariance(rng):
    pred, gt, valid, hand_type = random_set(rng, n=8)
    base = metrics.mpjpe(pred, gt, valid, hand_type)
    moved = pred.copy()
    moved[:, HAND_SLICE["left"]] += np.array([120.0, -40.0, 800.0])  # one hand's prediction translated
    moved[2, HAND_SLICE["right"]] += np.array([-5.0, 3.0, 1.0])
    assert metrics.mpjpe(moved, gt, valid, hand_type) == pytest.approx(base, rel=1e-9)
    gt_moved = gt.copy()
    gt_moved[:, HAND_SLICE["right"]] -= 77.0
    assert metrics.mpjpe(pred, gt_moved, valid, hand_type) == pytest.approx(base, rel=1e-9)
    # ...whereas changing the pose (not just the position) of a hand does change it
    bent = pred.copy()
    bent[:, 0] += 30.0  # right thumb tip only
    assert metrics.mpjpe(bent, gt, valid, hand_type)["all"] != pytest.approx(base["all"], rel=1e-6)


def test_mean_of_joint_means_not_pooled():
    """A hand-computed case: joint 0 valid once with error 10, joint 1 valid three times with error 2."""
    n = 3
    gt = np.zeros((n, NUM_JOINTS, 3))
    pred = np.zeros((n, NUM_JOINTS, 3))
    valid = np.zeros((n, NUM_JOINTS))
    valid[:, ROOT_INDEX["right"]] = 1  # roots valid (their own error is 0 after alignment)
    valid[0, 0] = 1
    pred[0, 0] = [6.0, 8.0, 0.0]  # error 10
    valid[:, 1] = 1
    pred[:, 1] = [0.0, 0.0, 2.0]  # error 2 in each sample
    got = metrics.mpjpe(pred, gt, valid, ["right"] * n)
    # per-joint means: joint0 10, joint1 2, right wrist 0 -> mean (10 + 2 + 0) / 3 = 4
    assert got["single"] == pytest.approx(4.0)
    assert got["all"] == pytest.approx(4.0)
    # pooled over all valid joints it is (10 + 3*2 + 3*0) / 7; RHD's protocol (the default) averages per keypoint
    assert metrics.epe(pred, gt, valid, average="pooled") == pytest.approx(16.0 / 7.0)
    assert metrics.epe(pred, gt, valid) == pytest.approx(4.0)
    pj = metrics.per_joint_errors(pred, gt, valid)
    assert pj[0] == pytest.approx(10.0) and pj[1] == pytest.approx(2.0) and pj[20] == 0.0
    assert np.isnan(pj[2]) and np.isnan(pj[41])


def test_per_joint_groups(rng):
    pred, gt, valid, hand_type = random_set(rng)
    for group in ("single", "interacting", "all"):
        pj = metrics.per_joint_errors(pred, gt, valid, hand_type, group=group)
        assert pj.shape == (NUM_JOINTS,)
        assert np.nanmean(pj) == pytest.approx(metrics.mpjpe(pred, gt, valid, hand_type)[group], rel=1e-12)
    with pytest.raises(ValueError, match="hand_type"):
        metrics.per_joint_errors(pred, gt, valid, None, group="single")
    with pytest.raises(ValueError, match="group"):
        metrics.per_joint_errors(pred, gt, valid, hand_type, group="both")


def test_per_sample_and_epe_match_loops(rng):
    pred, gt, valid, hand_type = random_set(rng)
    valid[5] = 0  # a sample with nothing valid
    got = metrics.per_sample_errors(pred, gt, valid)
    want = reference_per_sample(pred, gt, valid)
    assert got.shape == (len(pred),)
    assert np.isnan(got[5]) and np.isnan(want[5])
    np.testing.assert_allclose(got, want, rtol=1e-12)

    pooled = []
    for n in range(len(pred)):
        for j in range(NUM_JOINTS):
            h = _hand_of(j)
            if valid[n, j] and valid[n, ROOT_INDEX[h]]:
                d = (pred[n, j] - pred[n, ROOT_INDEX[h]]) - (gt[n, j] - gt[n, ROOT_INDEX[h]])
                pooled.append(np.sqrt((d**2).sum()))
    assert metrics.epe(pred, gt, valid, average="pooled") == pytest.approx(np.mean(pooled), rel=1e-12)
    assert math.isnan(metrics.epe(pred, gt, np.zeros_like(valid)))
    assert math.isnan(metrics.epe(pred, gt, np.zeros_like(valid), average="pooled"))
    with pytest.raises(ValueError, match="average"):
        metrics.epe(pred, gt, valid, average="median")


def test_torch_inputs_equal_numpy(rng):
    pred, gt, valid, hand_type = random_set(rng, n=6)
    tp = torch.tensor(pred, dtype=torch.float32, requires_grad=True)
    tg = torch.tensor(gt, dtype=torch.float32)
    tv = torch.tensor(valid)
    a = metrics.mpjpe(tp, tg, tv, hand_type)
    b = metrics.mpjpe(pred.astype(np.float32), gt.astype(np.float32), valid.astype(bool), tuple(hand_type))
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-6)
        assert isinstance(a[k], float)


def test_bad_input_errors(rng):
    pred, gt, valid, hand_type = random_set(rng, n=4)
    with pytest.raises(ValueError, match="pred must have shape"):
        metrics.mpjpe(pred[:, :21], gt[:, :21], valid[:, :21], hand_type)
    with pytest.raises(ValueError, match="gt must have the same shape"):
        metrics.mpjpe(pred, gt[:3], valid, hand_type)
    with pytest.raises(ValueError, match="joint_valid must have shape"):
        metrics.mpjpe(pred, gt, valid[:, :, None], hand_type)
    with pytest.raises(ValueError, match="one string per sample"):
        metrics.mpjpe(pred, gt, valid, hand_type[:3])
    with pytest.raises(ValueError, match="hand_type values"):
        metrics.mpjpe(pred, gt, valid, ["right", "both", "left", "left"])
    with pytest.raises(ValueError, match="single string"):
        metrics.mpjpe(pred, gt, valid, "right")
