"""Evaluation metrics, exactly as the InterHand2.6M baseline computes them.

MPJPE (mean per-joint position error, mm). Prediction and ground truth are first made
root-relative *per hand* (each hand's wrist subtracted from that hand's 21 joints), so a
wrong absolute position of a hand costs nothing; only its pose counts. Then, for each of
the 42 joints ``j``, the Euclidean errors are collected over the samples where
``joint_valid[j]``; each joint's errors are averaged, and the metric is the mean of these
per-joint means (joints that no sample annotates are skipped). It is a *mean of per-joint
means*, not a mean over all valid joints pooled: a joint that is rarely annotated weighs
as much as one annotated in every sample.

The baseline reports it separately for

* ``"single"`` -- samples whose ``hand_type`` is ``"right"`` or ``"left"`` (the paper's MPJPE-S),
* ``"interacting"`` -- samples with both hands (MPJPE-I),
* ``"all"`` -- per joint over both groups together, then averaged over joints.

A joint only counts when its hand's wrist is valid too (root-relative error needs the
root); the loaders already enforce this, and the metric enforces it again.

EPE (RHD, "RHP" in the paper), as RHD's own evaluation code computes it (lmb-freiburg/hand3d,
behind the published RHD numbers): root-relative per hand, each keypoint's error averaged over
the samples where it counts, then the mean of these per-keypoint means (keypoints that no
sample counts are skipped), mm; a keypoint is one of a hand's 21, whichever hand was evaluated. Which keypoints count is the ``joint_valid`` given: the RHD
loader's evaluation mask keeps the evaluated hand's *visible* keypoints (see
:mod:`h2t_lib.data.rhd`). ``average="pooled"`` gives the rule used before: the mean over all
counted keypoints pooled.

All functions accept numpy arrays or torch tensors (any device, with or without grad) and
compute in float64 numpy. Shapes: ``pred``, ``gt`` (N, 42, 3) in camera mm;
``joint_valid`` (N, 42) 0/1 or bool; ``hand_type`` a sequence of N strings.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from h2t_lib.skeleton import HAND_SLICE, HAND_TYPES, JOINTS_PER_HAND, NUM_JOINTS, ROOT_INDEX, ROOTS, root_relative

GROUPS = ("single", "interacting", "all")


def _to_numpy(x, name: str) -> np.ndarray:
    """numpy float64 copy of a numpy array / torch tensor / nested list."""
    if hasattr(x, "detach"):  # torch tensor (duck-typed: no torch import needed for numpy users)
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a numeric array or tensor, got {type(x).__name__}: {e}") from None


def _check_inputs(pred, gt, joint_valid):
    """Validate shapes; return (pred, gt, valid) as numpy (N,42,3), (N,42,3), bool (N,42)."""
    pred = _to_numpy(pred, "pred")
    gt = _to_numpy(gt, "gt")
    valid = _to_numpy(joint_valid, "joint_valid")
    if pred.ndim != 3 or pred.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"pred must have shape (N, {NUM_JOINTS}, 3) (camera mm), got {tuple(pred.shape)}")
    if gt.shape != pred.shape:
        raise ValueError(f"gt must have the same shape as pred {tuple(pred.shape)}, got {tuple(gt.shape)}")
    if valid.shape != pred.shape[:2]:
        raise ValueError(
            f"joint_valid must have shape (N, {NUM_JOINTS}) = {tuple(pred.shape[:2])} (one 0/1 per joint), "
            f"got {tuple(valid.shape)}"
        )
    return pred, gt, counted_joints(valid)


def counted_joints(joint_valid) -> np.ndarray:
    """(N, 42) bool: the joints the metrics count, those valid whose hand's wrist is valid too
    (root-relative error needs the root). ``joint_valid``: (N, 42) 0/1 or bool."""
    valid = _to_numpy(joint_valid, "joint_valid") > 0.5
    for hand, sl in HAND_SLICE.items():
        valid[:, sl] &= valid[:, ROOT_INDEX[hand], None]
    return valid


def _check_hand_type(hand_type, n: int) -> np.ndarray:
    if isinstance(hand_type, str):
        raise ValueError(
            f"hand_type must be a sequence of {n} strings (one per sample), got the single string {hand_type!r}"
        )
    hand_type = np.asarray(list(hand_type), dtype=object)
    if hand_type.shape != (n,):
        raise ValueError(f"hand_type must hold one string per sample ({n}), got {hand_type.shape[0]}")
    bad = sorted({str(h) for h in hand_type if h not in HAND_TYPES})
    if bad:
        raise ValueError(f"hand_type values must be one of {HAND_TYPES}, got {bad}")
    return hand_type


def joint_errors(pred, gt, joint_valid):
    """Root-aligned Euclidean error of every joint: returns (errors (N,42) mm, valid (N,42) bool).

    Each hand of ``pred`` and of ``gt`` is made relative to its own wrist first. Errors
    at invalid joints are set to NaN so they cannot be averaged in by mistake.
    """
    pred, gt, valid = _check_inputs(pred, gt, joint_valid)
    err = np.linalg.norm(root_relative(pred) - root_relative(gt), axis=-1)  # (N, 42)
    return np.where(valid, err, np.nan), valid


def _group_mask(hand_type, n: int, group: str) -> np.ndarray:
    """(N,) bool: which samples belong to ``group`` ("single", "interacting" or "all")."""
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
    if hand_type is None:
        if group != "all":
            raise ValueError(f"group={group!r} needs hand_type (one string per sample) to pick the samples")
        return np.ones(n, dtype=bool)
    ht = _check_hand_type(hand_type, n)
    if group == "single":
        return (ht == "right") | (ht == "left")
    if group == "interacting":
        return ht == "interacting"
    return np.ones(n, dtype=bool)


def per_joint_errors(pred, gt, joint_valid, hand_type: Sequence[str] | None = None, group: str = "all") -> np.ndarray:
    """(42,) mean root-aligned error of each joint, mm, over the samples where it is valid.

    ``group`` picks the samples: "all" (default), "single" (hand_type "right"/"left") or
    "interacting"; the latter two need ``hand_type``. NaN for a joint with no valid sample.
    """
    err, valid = joint_errors(pred, gt, joint_valid)
    valid = valid & _group_mask(hand_type, err.shape[0], group)[:, None]  # (N, 42)
    count = valid.sum(axis=0)  # (42,)
    total = np.where(valid, err, 0.0).sum(axis=0)  # (42,)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _mean_skip_nan(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def mpjpe(pred, gt, joint_valid, hand_type: Sequence[str]) -> dict:
    """MPJPE in mm as the InterHand2.6M baseline reports it: {"single", "interacting", "all"}.

    Per group: the mean over joints of each joint's mean error over the group's samples
    where that joint is valid (joints with no such sample are skipped). NaN when a group
    has no valid joint at all (e.g. no interacting sample in the set).

    Used in notebook 08.
    """
    return {g: _mean_skip_nan(per_joint_errors(pred, gt, joint_valid, hand_type, group=g)) for g in GROUPS}


def per_sample_errors(pred, gt, joint_valid) -> np.ndarray:
    """(N,) each sample's mean root-aligned error over its valid joints, mm (NaN if none).

    Not a benchmark number (the benchmark averages per joint, see :func:`mpjpe`); meant for
    error-vs-occlusion plots and for sorting failures.
    """
    err, valid = joint_errors(pred, gt, joint_valid)
    count = valid.sum(axis=1)
    total = np.where(valid, err, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


EPE_AVERAGES = ("keypoint", "pooled")


def epe(pred, gt, joint_valid, average: str = "keypoint") -> float:
    """RHD end-point error, root-relative per hand, mm (see the module docstring).

    ``average="keypoint"`` (default, RHD's protocol): the mean of per-keypoint means over the samples
    where each keypoint counts, a keypoint being one of a hand's 21 (the right and the left hand's
    thumb tip are one keypoint, as RHD evaluates one hand per frame); ``"pooled"``: the mean over all
    counted keypoints pooled. The keypoints
    that count are ``joint_valid`` (for RHD's protocol: the evaluated hand's visible ones). NaN when
    none counts.

    Used in notebook 08.
    """
    if average not in EPE_AVERAGES:
        raise ValueError(f"average must be one of {EPE_AVERAGES}, got {average!r}")
    err, valid = joint_errors(pred, gt, joint_valid)  # (N, 42)
    if average == "pooled":
        return float(err[valid].mean()) if valid.any() else float("nan")
    # RHD's keypoints are a hand's 21: keypoint k of the right and of the left hand is one keypoint
    hands = list(HAND_SLICE.values())
    err21 = np.concatenate([err[:, sl] for sl in hands])  # (2N, 21)
    valid21 = np.concatenate([valid[:, sl] for sl in hands])  # (2N, 21)
    count = valid21.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_keypoint = np.where(count > 0, np.where(valid21, err21, 0.0).sum(axis=0) / np.maximum(count, 1), np.nan)
    return _mean_skip_nan(per_keypoint)


def axis_errors(pred, gt, valid, skip_roots: bool = False) -> np.ndarray:
    """(3,) mean |error| in mm of the root-relative x, y, z over the valid joints: which direction fails.

    pred, gt: (..., 42, 3) mm, made root-relative per hand here; valid: (..., 42) 0/1.
    ``skip_roots``: leave out the wrists (0 by construction) and the joints of a hand whose wrist is not
    valid (notebook 08's breakdown); else every valid joint counts (the ``eval`` table's line).
    """
    p = root_relative(np.asarray(pred, dtype=np.float64).reshape(-1, NUM_JOINTS, 3))
    g = root_relative(np.asarray(gt, dtype=np.float64).reshape(-1, NUM_JOINTS, 3))
    ok = np.asarray(valid).reshape(-1, NUM_JOINTS) > 0.5
    if skip_roots:
        ok = ok & ok[:, np.repeat(ROOTS, JOINTS_PER_HAND)]
        ok[:, ROOTS] = False
    return np.abs(p - g)[ok].mean(axis=0) if ok.any() else np.full(3, np.nan)
