"""Prediction on your own image: ``python -m h2t_lib predict IMAGE --ckpt PATH``.

The image is cropped as the loaders crop a training sample: the box (``--bbox X Y W H``,
or the whole image) is made square around its centre (and, for a given box, enlarged by
1.25 as the InterHand2.6M baseline does), then resized to the model's input size, with the
loaders' own code (:func:`h2t_lib.data.transforms.make_crop` / ``warp_image``), which also
gives the crop's intrinsics.

Without ``--focal`` / ``--princpt`` a default camera is assumed and said so in the output:
``focal = 1.2 * max(W, H)`` pixels (a moderate field of view, about 45 degrees across the
longer side) and the principal point at the image centre. The 3D positions in camera
millimetres then hold only up to that guess; the root-relative poses and the 2D keypoints
hardly depend on it.

The model runs with ``root_source = "pred"`` (no ground truth here): its root head places
the wrists, the keypoint-guided features project with them (Sec. 3.4).

The image is used as viewers show it: a phone photo's EXIF orientation is applied (and said in
the output's notes; ``exif_orientation`` in the JSON), so its pixel coordinates are those of the
upright picture.

Writes ``OUT/<image stem>_keypoints.json`` (for each of the 42 joints, named as
:data:`h2t_lib.skeleton.JOINT_NAMES`: 3D camera mm, root-relative mm, 2D pixels in the
original image, sigma in mm and a confidence ``1 - u`` with ``u`` the model's normalised
scale) and ``OUT/<image stem>_overlay.png`` (both skeletons drawn on the image).
The model always predicts both hands; it does not say whether a hand is in the image.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from h2t_lib.skeleton import HANDS, JOINT_NAMES, JOINTS_PER_HAND

DEFAULT_FOCAL_FACTOR = 1.2  # focal = 1.2 * max(W, H) px when the intrinsics are unknown
BBOX_ENLARGE = 1.25  # a given hand box is enlarged by this factor (as the loaders do)


#: what each EXIF orientation asks a viewer to do with the stored pixels (1: nothing)
EXIF_ORIENTATIONS = {
    2: "mirrored left-right", 3: "rotated 180 degrees", 4: "mirrored top-bottom",
    5: "mirrored and rotated 90 degrees", 6: "rotated 90 degrees clockwise",
    7: "mirrored and rotated 90 degrees", 8: "rotated 90 degrees counter-clockwise",
}


def read_image(path) -> tuple:
    """(RGB PIL image as viewers show it, the EXIF orientation applied: 1 = none) of an image file.

    A missing path, a folder, or a file that is empty, truncated or not an image is a one-line error.
    """
    from h2t_lib.errors import UserError
    from h2t_lib.data.files import DataFileError, open_image

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image {path} does not exist")
    if path.is_dir():
        raise UserError(f"{path} is a folder; pass an image file (PNG, JPEG, ...)")
    try:
        return open_image(path, "an image (PNG, JPEG, BMP, ...)")
    except DataFileError as e:
        raise UserError(str(e)) from None


def load_image(path):
    """Open an image as RGB PIL, as viewers show it (EXIF orientation applied); one-line errors."""
    return read_image(path)[0]


def square_box(bbox: Optional[Sequence[float]], width: int, height: int) -> np.ndarray:
    """The square crop (x, y, side, side): ``bbox`` enlarged by 1.25 as the loaders do, or the whole image."""
    from h2t_lib.data.transforms import process_bbox

    if bbox is None:
        return process_bbox((0.0, 0.0, float(width), float(height)), scale=1.0)
    x, y, w, h = (float(v) for v in bbox)
    if not (w > 0 and h > 0):
        raise ValueError(f"--bbox {list(bbox)}: width and height must be positive (X Y W H in pixels)")
    if x + w <= 0 or y + h <= 0 or x >= width or y >= height:
        raise ValueError(f"--bbox {list(bbox)} lies outside the {width}x{height} image")
    return process_bbox((x, y, w, h), scale=BBOX_ENLARGE)


def predict_image(model, image, focal=None, princpt=None, bbox=None, exif_orientation: Optional[int] = None) -> dict:
    """Both hands' 42 keypoints on one image (PIL or path), with the model's own root.

    A path is read as viewers show it (its EXIF orientation applied); for a PIL image already read
    with :func:`read_image`, pass the orientation it applied as ``exif_orientation`` so the output
    says so. Pixel coordinates (``bbox``, ``princpt``, the output's ``uv``) are in the upright image.
    Returns a JSON-able dict (see the module docstring); ``"notes"`` lists the assumptions made.

    Used in notebook 10.
    """
    import torch

    from h2t_lib.camera import cam_to_pixel
    from h2t_lib.skeleton import root_relative
    from h2t_lib.data.transforms import make_crop, warp_image

    if not hasattr(image, "size"):
        image, exif_orientation = read_image(image)
    W, H = image.size
    notes = []
    orientation = int(exif_orientation or 1)
    if orientation != 1:
        stored = (H, W) if orientation in (5, 6, 7, 8) else (W, H)
        notes.append(f"the file's EXIF orientation {orientation} ({EXIF_ORIENTATIONS.get(orientation, '?')}) was "
                     f"applied: the image is used upright, as viewers show it ({W}x{H}; the file stores "
                     f"{stored[0]}x{stored[1]}); pixel coordinates (uv, --bbox, --princpt) are in the upright image")
    if focal is None:
        focal = (DEFAULT_FOCAL_FACTOR * max(W, H),) * 2
        notes.append(f"no --focal given: assumed focal = {DEFAULT_FOCAL_FACTOR} * max(W, H) = {focal[0]:.1f} px; "
                     "3D camera coordinates hold only up to this guess")
    if princpt is None:
        princpt = (W / 2.0, H / 2.0)
        notes.append(f"no --princpt given: assumed the image centre ({princpt[0]:.1f}, {princpt[1]:.1f})")
    focal = np.asarray(focal, np.float64)
    princpt = np.asarray(princpt, np.float64)
    if focal.shape != (2,) or princpt.shape != (2,) or not (focal > 0).all():
        raise ValueError("--focal needs FX FY > 0 and --princpt CX CY (pixels)")
    box = square_box(bbox, W, H)
    if bbox is None:
        notes.append("no --bbox given: the whole image (made square) is the crop; hands small in the image "
                     "are better cropped with --bbox X Y W H")
    S = model.cfg.image_size
    geo = make_crop(box, focal, princpt, S)  # the crop as a virtual camera, exactly as the loaders crop
    f_crop, c_crop = geo.focal, geo.princpt
    img = warp_image(image, geo.affine, S)  # (3, S, S) in [0, 1]
    cfg = model.cfg
    if cfg.root_source != "pred":  # no ground truth here: the model's own root
        model.cfg = dataclasses.replace(cfg, root_source="pred")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = model(img[None].to(device), torch.tensor(f_crop, dtype=torch.float32, device=device)[None],
                        torch.tensor(c_crop, dtype=torch.float32, device=device)[None], root_cam=None)
    finally:
        model.train(was_training)
        model.cfg = cfg
    # (42, 3) root-relative mm; the wrists' own small predicted offsets are removed (as MPJPE does), so
    # each wrist's camera position is exactly the root head's
    rel = root_relative(out["p"][-1][0].float().cpu().numpy().astype(np.float64))
    u = out["u"][-1][0, :, 0].float().cpu().numpy().astype(np.float64)  # (42,) normalised scale
    root = out["root"][0].float().cpu().numpy().astype(np.float64)  # (2, 3) camera mm
    cam = rel + np.repeat(root, JOINTS_PER_HAND, axis=0)  # (42, 3)
    uv = cam_to_pixel(cam, focal, princpt)  # (42, 2) pixels in the original image
    joints = []
    for j, name in enumerate(JOINT_NAMES):
        joints.append({
            "index": j, "name": name, "hand": HANDS[j // JOINTS_PER_HAND],
            "cam_mm": cam[j].round(2).tolist(), "rel_mm": rel[j].round(2).tolist(), "uv": uv[j].round(2).tolist(),
            "sigma_mm": round(float(u[j] * cfg.norm_mm), 3), "confidence": round(float(np.clip(1.0 - u[j], 0.0, 1.0)), 4),
        })
    return {
        "image_size": [W, H],
        "exif_orientation": orientation,
        "focal": focal.tolist(), "princpt": princpt.tolist(),
        "crop_box": [round(float(v), 2) for v in box], "crop_size": S,
        "root_mm": {h: root[i].round(2).tolist() for i, h in enumerate(HANDS)},
        "joints": joints,
        "notes": notes,
    }


def draw_overlay(image, result: dict, path) -> None:
    """Both skeletons (h2t_lib.viz.draw_skeleton_2d) on the image, with the crop box; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from h2t_lib import viz
    from h2t_lib.utils import atomic_path

    uv = np.array([j["uv"] for j in result["joints"]])  # (42, 2)
    W, H = result["image_size"]
    fig, ax = plt.subplots(figsize=(6, 6 * H / max(W, 1)))
    ax.imshow(np.asarray(image))
    viz.draw_skeleton_2d(ax, uv)
    x, y, w, h = result["crop_box"]
    ax.add_patch(Rectangle((x, y), w, h, fill=False, ls="--", lw=1, color="white"))
    ax.set_xlim(0, W)
    ax.set_ylim(H, 0)
    ax.set_axis_off()
    ax.set_title("predicted skeletons (right / left)", fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
