"""Evaluation: ``python -m h2t_lib eval --ckpt PATH --data DIR [--split test] [--json OUT]``.

For every stage of the model (the coarse predictor psi^(1) and each refiner stage psi^(i),
Sec. 3.3-3.4) it reports MPJPE as the InterHand2.6M baseline computes it
(:func:`h2t_lib.metrics.mpjpe`): single-hand samples (MPJPE-S), interacting samples
(MPJPE-I) and all samples, plus per-joint errors. On RHD-format data also the EPE.

Two reference rows, computed on the same test samples, say what the numbers mean:

* **mean training pose**: every sample gets the mean root-relative pose of the training
  split, a model that learnt nothing about the image. (No training split in the folder:
  the test split's own mean is used, and the row says so.)
* **GT + N(0, sigma) noise**: the ground truth with Gaussian noise of ``sigma`` mm on every
  coordinate, a sanity check of the metric. Both a joint and its wrist are noisy, so the
  expected root-relative error of a non-wrist joint is ``sqrt(2) sigma E|chi_3| = 4 sigma /
  sqrt(pi)``, and with the wrist's zero error the MPJPE is ``20/21 * 4 sigma / sqrt(pi)``
  (10.75 mm for sigma = 5 mm).

Python API (notebooks)::

    from h2t_lib.engine.evaluate import evaluate, predict_dataset, format_table
    pred = predict_dataset(model, dataset)           # numpy arrays, one row per sample
    res = evaluate(model, dataset, train_dataset=train_set, preds=pred)
    print(format_table(res))
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Optional

import numpy as np

from h2t_lib.skeleton import JOINT_NAMES, ROOT_INDEX, ROOTS, root_relative

#: expected MPJPE of the "GT + noise" row per mm of sigma (see the module docstring)
NOISE_MPJPE_PER_SIGMA = 20.0 / 21.0 * 4.0 / math.sqrt(math.pi)


def _stage_name(i: int, n: int) -> str:
    if i == 0:
        return "stage 1 (coarse)" + (", final" if n == 1 else "")
    return f"stage {i + 1} (refined" + (", final)" if i == n - 1 else ")")


# ---------------------------------------------------------------------------
# prediction over a dataset
# ---------------------------------------------------------------------------
def predict_dataset(
    model,
    dataset,
    batch_size: int = 32,
    device=None,
    num_workers: int = 0,
    root_source: Optional[str] = None,
    progress: bool = False,
    precision: str = "fp32",
) -> dict:
    """Run the model over a dataset (eval mode, no gradients); return numpy arrays, one row per sample.

    Args:
        model: a Handformer2T.
        dataset: a dataset of sample dicts (any of h2t's loaders, or a Subset of one).
        device: where to run; None = where the model is; "auto" = CUDA when present.
        root_source: "gt" hands the model the ground-truth wrists for its keypoint-guided
            projection (our reading: the paper does not say; InterNet's code offers the GT root depth as an
            option), "pred" its own
            root head; None = ``model.cfg.root_source``.
        precision: autocast of the model, "fp32" | "bf16" | "auto" (:func:`h2t_lib.utils.resolve_precision`).

    Returns:
        {"p": (N, M, 42, 3) root-relative mm per stage, "sigma": (N, M, 42) mm per stage,
        "root": (M, 2, 3) predicted wrists, camera mm, "joints_cam": (M, 42, 3) ground truth,
        "joint_valid": (M, 42), "joint_vis": (M, 42), "hand_type": (M,) str, "occlusion": (M,)
        (NaN for real data), "index": (M,), "focal", "princpt": (M, 2) crop intrinsics, pixels}; with our
        hand presence head (``hand_presence``) also "presence": (M, 2) logits, right and left hand in the image.

    Used in notebooks 04, 06 and 08.
    """
    import torch
    from tqdm.auto import tqdm

    from h2t_lib.data.loading import make_loader, to_device
    from h2t_lib.model.batch import forward
    from h2t_lib.utils import autocast, resolve_device, resolve_precision

    if root_source not in (None, "gt", "pred"):
        raise ValueError(f"root_source must be 'gt' or 'pred', got {root_source!r}")
    if len(dataset) == 0:
        raise ValueError("the dataset is empty: nothing to evaluate")
    if device is None:
        device = next(model.parameters()).device
    else:
        device = resolve_device(device)
        model.to(device)
    _, dtype = resolve_precision(precision, device)
    loader = make_loader(dataset, batch_size, False, device, num_workers, persistent=False)
    keys = ("joints_cam", "joint_valid", "joint_vis", "occlusion", "index", "focal", "princpt")
    acc = {"p": [], "sigma": [], "root": [], "hand_type": [], **{k: [] for k in keys}}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in tqdm(loader, desc="predict", disable=not progress, leave=False):
                batch = to_device(batch, device)
                with autocast(device, dtype):
                    out = forward(model, batch, root_source=root_source)
                acc["p"].append(torch.stack([p.float() for p in out["p"]]).cpu())  # (N, B, 42, 3)
                acc["sigma"].append(torch.stack([u.float()[..., 0] for u in out["u"]]).cpu() * model.cfg.norm_mm)
                acc["root"].append(out["root"].float().cpu())
                if "presence" in out:  # our hand presence head: (B, 2) logits
                    acc.setdefault("presence", []).append(out["presence"].float().cpu())
                acc["hand_type"] += list(batch["hand_type"])
                B = batch["image"].shape[0]
                for k in keys:
                    v = batch.get(k)
                    if v is None:  # an older loader without the field
                        v = (batch["joint_valid"] if k == "joint_vis" else torch.full((B, 2), float("nan"))
                             if k in ("focal", "princpt") else torch.full((B,), float("nan")))
                    acc[k].append(torch.as_tensor(v).float().cpu() if k != "index" else torch.as_tensor(v).cpu())
    finally:
        model.train(was_training)
    res = {
        "p": torch.cat(acc["p"], dim=1).numpy(),
        "sigma": torch.cat(acc["sigma"], dim=1).numpy(),
        "root": torch.cat(acc["root"]).numpy(),
        **({"presence": torch.cat(acc["presence"]).numpy()} if "presence" in acc else {}),
        "hand_type": np.array(acc["hand_type"], dtype=object),
    }
    for k in keys:
        res[k] = torch.cat(acc[k]).numpy()
    res["occlusion"] = res["occlusion"].reshape(-1)
    return res


def validate(model, dataset, device, batch_size: int = 32, num_workers: int = 0, root_source=None,
             precision: str = "fp32", wrists: bool = False) -> dict:
    """MPJPE (mm; single / interacting / all) of every stage on ``dataset``: {"stage1": {...}, ...}; with
    ``wrists`` also "wrist_px": the mean 2D error of the predicted wrists in crop pixels (:func:`wrist_pixel_errors`),
    and the two shares of :func:`handedness_stats`, "wrist_own_side" and "hand_named".

    What training reports after every epoch; :func:`evaluate` adds the reference rows and per-joint errors.

    Used in notebook 06.
    """
    from h2t_lib.metrics import mpjpe

    pred = predict_dataset(model, dataset, batch_size=batch_size, device=device, num_workers=num_workers,
                           root_source=root_source, precision=precision)
    res = {
        f"stage{i + 1}": mpjpe(p, pred["joints_cam"], pred["joint_valid"], pred["hand_type"])
        for i, p in enumerate(pred["p"])
    }
    if wrists:
        res["wrist_px"] = _nanmean(wrist_pixel_errors(pred["root"], pred["joints_cam"], pred["joint_valid"],
                                                      pred["focal"], pred["princpt"]))
        res.update(handedness_stats(pred))
    return res


def dataset_joints(dataset) -> tuple:
    """(joints_cam (M, 42, 3), joint_valid (M, 42)) of a dataset, without decoding images when it can.

    Uses the loader's ``joints_arrays()`` when it has one (and follows a ``Subset``), else reads
    every sample.

    Used in notebook 08.
    """
    import torch.utils.data as tud

    base, idx = dataset, None
    if isinstance(dataset, tud.Subset):
        base, idx = dataset.dataset, np.asarray(dataset.indices)
    if hasattr(base, "joints_arrays"):  # h2t's loaders (CropDataset)
        joints, valid = base.joints_arrays()
        joints, valid = np.asarray(joints, np.float64), np.asarray(valid, np.float64)
        return (joints, valid) if idx is None else (joints[idx], valid[idx])
    samples = [dataset[i] for i in range(len(dataset))]
    return (np.stack([np.asarray(s["joints_cam"], np.float64) for s in samples]),
            np.stack([np.asarray(s["joint_valid"], np.float64) for s in samples]))


def mean_pose(joints_cam, joint_valid) -> np.ndarray:
    """(42, 3) mean root-relative pose over the samples where each joint (and its wrist) is valid.

    Used in notebook 08.
    """
    rel = root_relative(np.asarray(joints_cam, np.float64))  # (M, 42, 3)
    v = np.asarray(joint_valid) > 0.5
    for hand, r in ROOT_INDEX.items():
        sl = slice(0, 21) if hand == "right" else slice(21, 42)
        v[:, sl] &= v[:, r, None]
    n = v.sum(0)  # (42,)
    mean = np.where(v[..., None], rel, 0.0).sum(0) / np.maximum(n, 1)[:, None]
    return mean


# ---------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------
def _is_rhd(dataset) -> bool:
    import torch.utils.data as tud

    base = dataset.dataset if isinstance(dataset, tud.Subset) else dataset
    return type(base).__name__.upper() == "RHD"


def _row(name: str, pred, gt, valid, hand_type, with_epe: bool) -> dict:
    from h2t_lib.metrics import axis_errors, epe, mpjpe, per_joint_errors

    row = {"name": name, **mpjpe(pred, gt, valid, hand_type)}
    if with_epe:
        row["epe"] = epe(pred, gt, valid)
    row["per_joint"] = per_joint_errors(pred, gt, valid, hand_type).tolist()
    row["axis_mae"] = axis_errors(pred, gt, valid).tolist()
    return row


def wrist_pixel_errors(root_pred, joints_cam, joint_valid, focal, princpt) -> np.ndarray:
    """(M, 2) distance in crop pixels between the predicted and true wrists (right, left); NaN where unlabelled.

    root_pred (M, 2, 3) and joints_cam (M, 42, 3) in camera mm; focal, princpt (M, 2) the crop's
    intrinsics. This is what the keypoint-guided projection (Sec. 3.4) depends on with our root head.
    """
    est, gt = _wrist_pixels(root_pred, joints_cam, focal, princpt)
    d = np.linalg.norm(est - gt, axis=-1)  # (M, 2)
    return np.where(np.asarray(joint_valid)[:, ROOTS] > 0.5, d, np.nan)


def _wrist_pixels(root_pred, joints_cam, focal, princpt) -> tuple:
    """(predicted, true) wrists in crop pixels, each (M, 2, 2) (right, left; u, v), from camera mm."""
    from h2t_lib.camera import cam_to_pixel

    f, c = np.asarray(focal, np.float64), np.asarray(princpt, np.float64)
    return (cam_to_pixel(np.asarray(root_pred, np.float64), f, c),
            cam_to_pixel(np.asarray(joints_cam, np.float64)[:, ROOTS], f, c))


def hand_size_ratio(pred, joints_cam, joint_valid) -> np.ndarray:
    """(M, 2) predicted / true hand size per hand (right, left); NaN unless all 21 joints are labelled.

    A hand's size is the sum of its 20 bone lengths (``skeleton.HAND_BONES``), mm. 1.0 = right size;
    a model that regresses towards the mean pose shrinks hands (< 1).
    """
    from h2t_lib.data.hand_model import bone_lengths
    from h2t_lib.skeleton import HAND_SLICE

    out = np.full((len(pred), 2), np.nan)
    for h, hand in enumerate(("right", "left")):
        sl = HAND_SLICE[hand]
        size_p = bone_lengths(np.asarray(pred, np.float64)[:, sl]).sum(-1)
        size_g = bone_lengths(np.asarray(joints_cam, np.float64)[:, sl]).sum(-1)
        ok = (np.asarray(joint_valid)[:, sl] > 0.5).all(-1) & (size_g > 0)
        out[ok, h] = size_p[ok] / size_g[ok]
    return out


def evaluate(
    model,
    dataset,
    train_dataset=None,
    batch_size: int = 32,
    device=None,
    num_workers: int = 0,
    root_source: Optional[str] = None,
    noise_sigma: float = 5.0,
    seed: int = 0,
    preds: Optional[dict] = None,
    progress: bool = False,
    precision: str = "fp32",
) -> dict:
    """MPJPE of every stage plus the two reference rows; everything a notebook needs to plot.

    Args:
        model: a Handformer2T (may be None when ``preds`` is given).
        dataset: the test samples.
        train_dataset: the training split, for the mean-pose reference row; None = the test
            split's own mean (labelled as such).
        noise_sigma: sigma in mm of the "GT + noise" reference row.
        seed: seeds the noise of that row.
        preds: the output of :func:`predict_dataset` if already computed.
        precision: the model's autocast ("fp32", "bf16", "auto"), as :func:`predict_dataset`.

    Returns:
        {"num_samples" (all), "num_single", "num_interacting" (samples with at least one joint the metric
        counts), "num_unscored" (samples with none), "num_stages", "root_source", "rows": [{"name",
        "single", "interacting", "all", ("epe"), "per_joint": [42]} per stage, then the references],
        "stages": [the stage rows' names], "root_error_mm": mean predicted-wrist error (valid
        wrists), "root_error_px": mean 2D wrist error in crop pixels (:func:`wrist_pixel_errors`),
        "root_error_px_median", "root_error_px_over10": its median and the share of wrists over 10 px off,
        "hand_size_ratio": mean final-stage predicted / true hand size (:func:`hand_size_ratio`),
        "per_sample": {"error": [N][M] mean error over a sample's valid joints per stage,
        "occlusion": [M], "hand_type": [M], "index": [M]}, "joint_names": [42]}.

    Used in notebooks 05, 08 and 10.
    """
    if preds is None:
        preds = predict_dataset(model, dataset, batch_size=batch_size, device=device, num_workers=num_workers,
                                root_source=root_source, progress=progress, precision=precision)
    from h2t_lib.metrics import counted_joints, per_sample_errors

    gt, valid, ht = preds["joints_cam"], preds["joint_valid"], list(preds["hand_type"])
    rhd = _is_rhd(dataset)
    n_stages = preds["p"].shape[0]
    rows = [_row(_stage_name(i, n_stages), preds["p"][i], gt, valid, ht, rhd) for i in range(n_stages)]

    # reference 1: the mean training pose (a model that learnt nothing)
    if train_dataset is not None:
        tj, tv = dataset_joints(train_dataset)
        label = f"reference: mean training pose ({len(tj)} train samples)"
    else:
        tj, tv = gt, valid
        label = "reference: mean pose of THIS split (no train split found)"
    mp = np.broadcast_to(mean_pose(tj, tv), gt.shape)
    rows.append(_row(label, mp, gt, valid, ht, rhd))

    # reference 2: ground truth + Gaussian noise (sanity check of the metric)
    rng = np.random.default_rng(seed)
    noisy = gt + rng.normal(0.0, noise_sigma, size=gt.shape)
    rows.append(_row(f"reference: GT + N(0, {noise_sigma:g} mm) noise (expect {NOISE_MPJPE_PER_SIGMA * noise_sigma:.2f})",
                     noisy, gt, valid, ht, rhd))

    rv = valid[:, ROOTS] > 0.5  # (M, 2)
    root_err = np.linalg.norm(preds["root"] - gt[:, ROOTS], axis=-1)  # (M, 2)
    per_sample = [per_sample_errors(p, gt, valid) for p in preds["p"]]
    ht_arr = np.asarray(ht)
    scored = counted_joints(valid).any(axis=1)  # (M,) a sample without a joint that counts adds to no MPJPE
    return {
        "num_samples": int(len(gt)),
        "num_single": int((np.isin(ht_arr, ["right", "left"]) & scored).sum()),
        "num_interacting": int(((ht_arr == "interacting") & scored).sum()),
        "num_unscored": int((~scored).sum()),
        "num_stages": int(n_stages),
        "root_source": root_source or (getattr(getattr(model, "cfg", None), "root_source", None)),
        "image_size": getattr(getattr(model, "cfg", None), "image_size", None),
        "dataset": "RHD" if rhd else "InterHand2.6M format",
        "rows": rows,
        "stages": [r["name"] for r in rows[:n_stages]],
        "root_error_mm": float(root_err[rv].mean()) if rv.any() else float("nan"),
        **wrist_stats(wrist_pixel_errors(preds["root"], gt, valid, preds["focal"], preds["princpt"])
                      if "focal" in preds else np.full((len(gt), 2), np.nan)),
        "hand_size_ratio": _nanmean(hand_size_ratio(preds["p"][-1], gt, valid)),
        **(handedness_stats(preds) if "focal" in preds else {}),
        "noise_sigma": float(noise_sigma),
        "per_sample": {
            "error": [e.tolist() for e in per_sample],
            "occlusion": preds["occlusion"].tolist(),
            "hand_type": [str(h) for h in ht],
            "index": np.asarray(preds["index"]).tolist(),
        },
        "joint_names": list(JOINT_NAMES),
    }


def handedness_stats(pred: dict) -> dict:
    """Does the model tell a right hand from a left one? From :func:`predict_dataset`'s output:

    * "wrist_own_side": over the interacting samples with both wrists labelled, the share of predicted
      wrists (crop pixels) nearer their own hand's true wrist than the other hand's. 0.5 is a coin toss:
      our renderer puts the hands anywhere, so only the hands' looks say which is which.
    * "hand_named": over the single-hand samples, the share whose presence logits (our ``hand_presence``
      head) rate the hand shown above the other; NaN without the head.

    Both NaN where no sample qualifies.
    """
    ht = np.asarray([str(t) for t in pred["hand_type"]])
    valid = np.asarray(pred["joint_valid"])[:, ROOTS] > 0.5  # (M, 2)
    est, gt = _wrist_pixels(pred["root"], pred["joints_cam"], pred["focal"], pred["princpt"])  # (M, 2, 2) each
    both = (ht == "interacting") & valid.all(-1)
    own = np.linalg.norm(est - gt, axis=-1)[both]  # (n, 2)
    other = np.linalg.norm(est - gt[:, ::-1], axis=-1)[both]
    res = {"wrist_own_side": float((own < other).mean()) if own.size else float("nan"), "hand_named": float("nan")}
    single = np.isin(ht, ["right", "left"])
    if "presence" in pred and single.any():
        logit = np.asarray(pred["presence"])[single]  # (n, 2)
        shown = (ht[single] == "left").astype(int)  # 0 right, 1 left
        res["hand_named"] = float((logit[np.arange(len(shown)), shown] > logit[np.arange(len(shown)), 1 - shown]).mean())
    return res


def wrist_stats(px) -> dict:
    """(M, 2) wrist errors in crop pixels (NaN = unlabelled) -> {"root_error_px": mean, "root_error_px_median",
    "root_error_px_over10": share of labelled wrists more than 10 px off} (NaN when none is labelled)."""
    px = np.asarray(px, np.float64)
    ok = px[np.isfinite(px)]
    if not ok.size:
        return {"root_error_px": float("nan"), "root_error_px_median": float("nan"), "root_error_px_over10": float("nan")}
    return {"root_error_px": float(ok.mean()), "root_error_px_median": float(np.median(ok)),
            "root_error_px_over10": float((ok > 10.0).mean())}


def _pct(x) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.0f}%"


def _nanmean(x) -> float:
    x = np.asarray(x, np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def _fmt(x) -> str:
    return "    -" if x is None or not np.isfinite(x) else f"{x:7.2f}"


def format_table(res: dict) -> str:
    """The rows as a plain-text table (markdown-compatible).

    Used in notebook 10.
    """
    has_epe = any("epe" in r for r in res["rows"])
    head = f"| {'row':<62} | MPJPE-S | MPJPE-I |   MPJPE |" + ("     EPE |" if has_epe else "")
    sep = "|" + "-" * 64 + "|---------|---------|---------|" + ("---------|" if has_epe else "")
    lines = [head, sep]
    for r in res["rows"]:
        line = f"| {r['name']:<62} | {_fmt(r['single'])} | {_fmt(r['interacting'])} | {_fmt(r['all'])} |"
        if has_epe:
            line += f" {_fmt(r.get('epe'))} |"
        lines.append(line)
    unscored = res.get("num_unscored", 0)
    foot = (f"{res['num_samples']} samples ({res['num_single']} single-hand, {res['num_interacting']} interacting"
            + (f", {unscored} without a valid joint, not scored" if unscored else "") + "); "
            f"mm, root-relative per hand; KGFF root: {res.get('root_source')}; "
            f"predicted-wrist error {res['root_error_mm']:.1f} mm")
    if "root_error_px" in res:
        spread = (f" (median {res['root_error_px_median']:.1f} px, {100 * res['root_error_px_over10']:.0f}% over 10 px)"
                  if "root_error_px_median" in res else "")
        foot += (f"\npredicted wrists: {res['root_error_px']:.1f} px off in the {res.get('image_size') or '?'} px crop (2D)"
                 f"{spread}; "
                 f"final-stage hand size / true size: {res['hand_size_ratio']:.2f}")
    if np.isfinite(res.get("wrist_own_side", np.nan)) or np.isfinite(res.get("hand_named", np.nan)):
        named = res.get("hand_named", np.nan)
        foot += (f"\nright vs left: predicted wrists nearer their own hand's than the other's in "
                 f"{_pct(res.get('wrist_own_side'))} of interacting samples (a coin toss: 50%)"
                 + (f"; presence head names the hand of single-hand samples in {_pct(named)}" if np.isfinite(named) else ""))
    n = res["num_stages"]
    final, ref = res["rows"][n - 1], res["rows"][n]
    if "axis_mae" in final:
        foot += ("\nmean |error| per axis x / y / z (mm): final stage "
                 + " / ".join(f"{v:.1f}" for v in final["axis_mae"]) + "; mean pose "
                 + " / ".join(f"{v:.1f}" for v in ref["axis_mae"]))
    return "\n".join(lines + [foot])


# ---------------------------------------------------------------------------
# loading a checkpoint for the CLI (errors as one line)
# ---------------------------------------------------------------------------
def load_model(path, device="cpu", root_source: Optional[str] = None):
    """(model, extra) from a checkpoint; any failure becomes a one-line UserError/FileNotFoundError."""
    from h2t_lib.engine.checkpoint import load_checkpoint
    from h2t_lib.errors import UserError

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a checkpoint; pass e.g. {path / 'best.pt'}")
    try:
        model, extra = load_checkpoint(path, map_location="cpu")
    except (UserError, FileNotFoundError, ValueError):
        raise
    except Exception as e:  # torch.load / pickle errors on a file that is not a checkpoint
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path} is not an h2t checkpoint ({type(e).__name__}: {first})") from None
    model.float()
    if root_source is not None:
        if root_source not in ("gt", "pred"):
            raise UserError(f"--root-source must be gt or pred, got {root_source!r}")
        model.cfg = dataclasses.replace(model.cfg, root_source=root_source)
    from h2t_lib.utils import resolve_device

    model.to(resolve_device(device))
    model.eval()
    return model, extra
