"""A real dataset's samples and predictions on your own images (notebook 10).

Notebook 10 (real data and your images) leaves the course's synthetic crops for whole images: a
dataset folder as it lies on disk, a sample as a user's photo would be, and what ``predict`` makes of
it under the intrinsics it is given or guesses. These views were split off
:mod:`h2t_lib.course.results_views` (notebook 09's tables) to keep each module about one notebook.

* :func:`folder_tree`: a dataset folder's layout as text.
* :func:`original_view`: a sample of an InterHand2.6M-format dataset as the *uncropped* image
  with its true intrinsics, box and joints (what a user's photo would be).
* :func:`prediction_overlay_figure`, :func:`compare_predictions`, :func:`focal_sweep`,
  :func:`focal_sweep_figure`: what ``predict`` returns, and what the assumed intrinsics change.

Everything returns a figure or plain data; nothing here keeps state.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = [
    "folder_tree",
    "original_view",
    "prediction_overlay_figure",
    "compare_predictions",
    "focal_sweep",
    "focal_sweep_figure",
]


def folder_tree(root, max_entries: int = 3, max_depth: int = 6) -> str:
    """A dataset folder as an indented text tree; at most ``max_entries`` entries per folder are listed
    (then "... (n more)"), so a real 2.6M-image tree prints in a few lines.

    Used in notebook 10.
    """
    root = Path(root)
    lines = [root.name + "/"]

    def walk(d: Path, depth: int):
        entries = sorted(d.iterdir(), key=lambda p: (p.is_file(), p.name))
        for p in entries[:max_entries]:
            lines.append("    " * depth + p.name + ("/" if p.is_dir() else ""))
            if p.is_dir() and depth < max_depth:
                walk(p, depth + 1)
        if len(entries) > max_entries:
            lines.append("    " * depth + f"... ({len(entries) - max_entries} more)")

    walk(root, 1)
    return "\n".join(lines)


def original_view(dataset, index: int) -> dict:
    """Sample ``index`` of an :class:`~h2t_lib.data.InterHand26M` as a user's photo would be: the whole image
    (PIL), its camera's true intrinsics, the annotation's hand box before enlargement, the joints.

    Returns ``{"image" (PIL RGB), "focal" (2,), "princpt" (2,), "bbox" (x, y, w, h) such that predict's
    x1.25 enlargement gives the loader's crop, "joints_cam" (42, 3) mm, "joints_uv" (42, 2) pixels,
    "joint_valid" (42,), "hand_type", "path"}``.

    Used in notebook 10.
    """
    from PIL import Image

    from h2t_lib.camera import cam_to_pixel
    from h2t_lib.engine.predict import BBOX_ENLARGE

    focal, princpt = dataset.camera(index)
    x, y, w, h = dataset.crop_box(index)  # already square and x bbox_scale
    side = w / BBOX_ENLARGE  # predict enlarges a given box x1.25 again: this one gives the loader's crop
    cx, cy = x + w / 2, y + h / 2
    cam = np.asarray(dataset.joints_cam(index), dtype=np.float64)  # (42, 3) mm, before augmentation
    path = dataset.image_path(index)
    with Image.open(path) as im:
        image = im.convert("RGB")
    return {"image": image, "focal": focal, "princpt": princpt,
            "bbox": np.array([cx - side / 2, cy - side / 2, side, side]),
            "joints_cam": cam, "joints_uv": cam_to_pixel(cam, focal, princpt),
            "joint_valid": np.array(dataset.joint_valid(index), dtype=np.float32), "hand_type": str(dataset.hand_types[index]), "path": path}


def _uv(result: dict) -> np.ndarray:
    return np.array([j["uv"] for j in result["joints"]], dtype=np.float64)  # (42, 2)


def _rel(result: dict) -> np.ndarray:
    return np.array([j["rel_mm"] for j in result["joints"]], dtype=np.float64)  # (42, 3)


def prediction_overlay_figure(image, results: dict, gt_uv=None, gt_valid=None, size: float = 3.2):
    """One panel per prediction (``{title: predict_image result}``): the skeletons in the original image,
    the crop box dashed, and the ground truth (``gt_uv`` (42, 2)) as white dots when given.

    Used in notebook 10.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from h2t_lib.viz.skeleton2d import draw_skeleton_2d

    img = np.asarray(image)
    fig = Figure(figsize=(size * len(results), size), dpi=80)
    axes = fig.subplots(1, len(results), squeeze=False)
    for ax, (title, res) in zip(axes[0], results.items()):
        ax.imshow(img)
        draw_skeleton_2d(ax, _uv(res))
        if gt_uv is not None:
            ok = np.ones(len(gt_uv), bool) if gt_valid is None else np.asarray(gt_valid) > 0
            ax.scatter(*np.asarray(gt_uv)[ok].T, s=6, c="white", edgecolors="k", linewidths=0.3, zorder=5,
                       label="ground truth")
            ax.legend(fontsize=6, loc="lower right")
        x, y, w, h = res["crop_box"]
        ax.add_patch(Rectangle((x, y), w, h, fill=False, ls="--", lw=1, color="white"))
        ax.set_xlim(min(0, x), max(img.shape[1], x + w))
        ax.set_ylim(max(img.shape[0], y + h), min(0, y))
        ax.set_axis_off()
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def compare_predictions(results: dict, gt_cam=None, gt_uv=None, gt_valid=None) -> list:
    """A row per prediction: both wrists' depth (mm), and with ground truth the root-relative MPJPE (mm),
    the 2D error (px, original image) and the wrist error (mm). ``results``: ``{name: predict_image result}``.

    Used in notebook 10.
    """
    from h2t_lib.metrics import per_sample_errors
    from h2t_lib.skeleton import ROOTS

    rows = []
    valid = None if gt_valid is None else np.asarray(gt_valid, dtype=np.float64)
    for name, res in results.items():
        row = {"name": name, "z_right_mm": res["root_mm"]["right"][2], "z_left_mm": res["root_mm"]["left"][2]}
        if gt_cam is not None:
            gt = np.asarray(gt_cam, dtype=np.float64)
            v = np.ones(len(gt)) if valid is None else valid
            # root-aligned per hand inside (both are made relative to their own wrists)
            row["mpjpe_mm"] = float(per_sample_errors(_rel(res)[None], gt[None], v[None])[0])
            pred_root = np.array([res["root_mm"]["right"], res["root_mm"]["left"]])
            ok = v[ROOTS] > 0
            row["wrist_err_mm"] = float(np.linalg.norm(pred_root - gt[ROOTS], axis=1)[ok].mean()) if ok.any() else float("nan")
        if gt_uv is not None:
            v = np.ones(len(gt_uv)) if valid is None else valid
            err = np.linalg.norm(_uv(res) - np.asarray(gt_uv), axis=1)
            row["err_2d_px"] = float(err[v > 0].mean())
        rows.append(row)
    return rows


def focal_sweep(model, image, factors=(0.5, 0.75, 1.0, 1.5, 2.0), focal=None, princpt=None, bbox=None) -> list:
    """Run :func:`h2t_lib.engine.predict.predict_image` with the focal length scaled by each factor.

    ``focal`` is the reference (default: predict's guess ``1.2 max(W, H)``). Returns one dict per factor:
    ``{"factor", "focal", "z_right_mm", "z_left_mm", "d_rel_mm", "d_uv_px"}``, the last two being the mean
    change of the root-relative joints and of the 2D keypoints against factor 1 (or the first factor).

    Used in notebook 10.
    """
    from h2t_lib.engine.predict import DEFAULT_FOCAL_FACTOR, load_image, predict_image

    if not hasattr(image, "size"):
        image = load_image(image)
    W, H = image.size
    f0 = np.asarray(focal if focal is not None else (DEFAULT_FOCAL_FACTOR * max(W, H),) * 2, np.float64)
    res = [predict_image(model, image, focal=tuple(f0 * k), princpt=princpt, bbox=bbox) for k in factors]
    base = res[list(factors).index(1.0)] if 1.0 in factors else res[0]
    return [{"factor": float(k), "focal": float(f0[0] * k), "z_right_mm": r["root_mm"]["right"][2],
             "z_left_mm": r["root_mm"]["left"][2],
             "d_rel_mm": float(np.linalg.norm(_rel(r) - _rel(base), axis=1).mean()),
             "d_uv_px": float(np.linalg.norm(_uv(r) - _uv(base), axis=1).mean())} for k, r in zip(factors, res)]


def focal_sweep_figure(rows: list):
    """Two panels from :func:`focal_sweep`: wrist depth vs assumed focal (a line through the origin means
    depth ~ focal), and how much the root-relative pose and the 2D keypoints move.

    Used in notebook 10.
    """
    from matplotlib.figure import Figure

    f = np.array([r["focal"] for r in rows])
    fig = Figure(figsize=(8, 3), dpi=80)
    axes = fig.subplots(1, 2)
    axes[0].plot(f, [r["z_right_mm"] for r in rows], "o-", label="right wrist")
    axes[0].plot(f, [r["z_left_mm"] for r in rows], "s-", label="left wrist")
    axes[0].set_xlabel("assumed focal length (px)", fontsize=8)
    axes[0].set_ylabel("predicted depth z (mm)", fontsize=8)
    axes[0].set_xlim(left=0)
    axes[0].set_ylim(bottom=0)
    axes[0].legend(fontsize=7)
    axes[0].set_title("camera-frame depth", fontsize=9)
    axes[1].plot(f, [r["d_rel_mm"] for r in rows], "o-", color="tab:red", label="root-relative pose (mm)")
    axes[1].plot(f, [r["d_uv_px"] for r in rows], "s-", color="tab:gray", label="2D keypoints (px)")
    axes[1].set_xlabel("assumed focal length (px)", fontsize=8)
    axes[1].set_title("mean change against the reference focal", fontsize=9)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig
