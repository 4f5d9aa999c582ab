"""Crop, affine warp and augmentation shared by the InterHand2.6M and RHD loaders.

The paper (Sec. 4.1) crops with the ground-truth box, resizes to 256x256 and uses "the data
augmentations proposed by InterNet" without listing them; the list here comes from InterNet's
released code: crop the annotated hand box (enlarged, aspect ratio 1), augment with scale,
in-plane rotation, translation, colour jitter and a horizontal flip that swaps the hands.

Here every crop is a *virtual camera*. Instead of warping 2D keypoints, we change
the camera and re-project the 3D joints, so the contract
``cam_to_pixel(joints_cam, focal, princpt) == joints_img`` holds by construction:

* crop + resize            -> new intrinsics (focal scaled, principal point moved)
* scale (zoom)             -> focal scaled again; 3D unchanged
* shift (translation)      -> principal point moved; 3D unchanged
* in-plane rotation by a   -> the camera rolls about its optical axis: joints_cam
                              rotated about z by a. In normalised coordinates
                              n = (X/Z, Y/Z) this is n' = R(a) n, so the image warp
                              is u' = K' R(a) K^-1 (u - c) + c': exact also when fx != fy
                              (then the pixel warp is a rotation with a slight shear)
* horizontal flip          -> x -> -x in camera space, princpt_x -> S - 1 - princpt_x,
                              and the hands swap (skeleton.FLIP_PERM, right <-> left)

Pixel convention (everywhere in h2t's loaders): integer coordinates are pixel
*centres*, as in OpenCV and the InterHand2.6M annotations: pixel (row i, col j) is
centred at (u, v) = (j, i) and covers [j - 0.5, j + 0.5]. Hence a flip of an
S-pixel-wide crop maps u -> S - 1 - u.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from h2t_lib import skeleton
from h2t_lib.camera import cam_to_pixel
from h2t_lib.data.files import DataFileNotFoundError, open_image

#: hand_type after a horizontal flip
FLIPPED_HAND_TYPE = {"right": "left", "left": "right", "interacting": "interacting"}


# --------------------------------------------------------------------------------------
# Bounding box
# --------------------------------------------------------------------------------------
def process_bbox(bbox, scale: float = 1.25, aspect_ratio: float = 1.0) -> np.ndarray:
    """Enlarge a hand box as the InterHand2.6M baseline does (``process_bbox``).

    Keep the centre, grow the shorter side to the aspect ratio (w / h = 1 for a square
    256x256 input), then multiply both sides by ``scale`` (1.25).
    bbox: (x, y, w, h) pixels -> (4,) float64 (x, y, w, h).

    Used in notebook 01.
    """
    x, y, w, h = (float(v) for v in np.asarray(bbox, dtype=np.float64).reshape(4))
    cx, cy = x + w / 2.0, y + h / 2.0
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    w, h = w * scale, h * scale
    return np.array([cx - w / 2.0, cy - h / 2.0, w, h], dtype=np.float64)


def bbox_of_points(uv) -> np.ndarray:
    """Tight (x, y, w, h) box of 2D points uv (J, 2)."""
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]], dtype=np.float64)


# --------------------------------------------------------------------------------------
# Augmentation parameters (InterNet's, Moon et al. 2020)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of InterNet's training augmentation (its ``get_aug_config``), which Handformer2T reuses.

    Used in notebook 01.
    """

    scale_factor: float = 0.25  # s = 1 + clip(N(0,1), -1, 1) * scale_factor; s > 1 shows more context (zoom out)
    rot_factor: float = 45.0  # degrees: a = clip(N(0,1), -2, 2) * rot_factor ...
    rot_prob: float = 0.6  # ... applied with this probability, else a = 0
    trans_factor: float = 0.15  # box centre shift, uniform in +-trans_factor of the box size, per axis
    flip_prob: float = 0.5  # horizontal flip with left/right swap
    color_factor: float = 0.2  # per-channel gain, uniform in [1 - color_factor, 1 + color_factor]


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the augmentation; the identity by default (what evaluation uses)."""

    scale: float = 1.0
    rot_deg: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)  # fraction of the box size (x, y)
    flip: bool = False
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)  # RGB gains


def sample_augment(cfg: AugmentConfig, seed: int, index: int, epoch: int) -> AugmentParams:
    """Draw augmentation parameters, deterministic in (seed, index, epoch).

    A fresh ``numpy`` generator per sample, seeded by the triple, makes the draw
    independent of worker count, batch order and anything else that ran before.

    Used in notebook 01.
    """
    for name, v in (("seed", seed), ("index", index), ("epoch", epoch)):
        if int(v) < 0:
            raise ValueError(f"augmentation {name} must be a non-negative integer, got {v}")
    rng = np.random.default_rng([int(seed), int(epoch), int(index)])
    scale = 1.0 + float(np.clip(rng.standard_normal(), -1.0, 1.0)) * cfg.scale_factor
    rot = float(np.clip(rng.standard_normal(), -2.0, 2.0)) * cfg.rot_factor
    rot = rot if rng.random() < cfg.rot_prob else 0.0
    shift = tuple(float(s) for s in rng.uniform(-cfg.trans_factor, cfg.trans_factor, size=2))
    flip = bool(rng.random() < cfg.flip_prob)
    color = tuple(float(c) for c in rng.uniform(1.0 - cfg.color_factor, 1.0 + cfg.color_factor, size=3))
    return AugmentParams(scale=scale, rot_deg=rot, shift=shift, flip=flip, color=color)


# --------------------------------------------------------------------------------------
# The crop as a virtual camera
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CropGeometry:
    """One sample's crop, as a camera.

    affine:  (2, 3) original-image pixel -> crop pixel, u' = A u + b (the image warp)
    focal, princpt: (2,) intrinsics of the crop
    cam_rot: (3, 3) rotation applied to camera-frame points (roll about the optical axis)
    flip:    mirror x and swap the hands after the rotation
    size:    crop side S in pixels
    """

    affine: np.ndarray
    focal: np.ndarray
    princpt: np.ndarray
    cam_rot: np.ndarray
    flip: bool
    size: int

    def transform_joints(self, joints_cam: np.ndarray) -> np.ndarray:
        """Camera-frame joints (42, 3) mm -> joints of the virtual camera (42, 3), hands swapped on flip."""
        out = np.asarray(joints_cam, dtype=np.float64) @ self.cam_rot.T  # (42, 3)
        if self.flip:
            out = out * np.array([-1.0, 1.0, 1.0])
            out = out[skeleton.FLIP_PERM]
        return out

    def transform_pixels(self, uv: np.ndarray) -> np.ndarray:
        """Original-image pixels (..., 2) -> crop pixels (..., 2) (no hand swap: points, not joints)."""
        uv = np.asarray(uv, dtype=np.float64)
        return uv @ self.affine[:, :2].T + self.affine[:, 2]


def _rot2(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def make_crop(bbox, focal, princpt, size: int, params: AugmentParams = AugmentParams()) -> CropGeometry:
    """The virtual camera of a crop of ``bbox`` (x, y, w, h; already enlarged) resized to ``size``.

    With the identity ``params`` this equals :func:`h2t_lib.camera.crop_intrinsics`:
    focal' = focal * S / w, princpt' = (princpt - (x, y)) * S / w.
    The box centre (shifted by ``params.shift``) lands on the crop point (S/2, S/2).
    """
    x, y, w, h = (float(v) for v in np.asarray(bbox, dtype=np.float64).reshape(4))
    f = np.asarray(focal, dtype=np.float64).reshape(2)
    c = np.asarray(princpt, dtype=np.float64).reshape(2)
    if not (w > 0 and h > 0):
        raise ValueError(f"crop box must have positive width and height, got (x, y, w, h) = {(x, y, w, h)}")
    if not (np.all(f > 0) and params.scale > 0):
        raise ValueError(f"focal lengths and the zoom scale must be positive, got focal={f}, scale={params.scale}")
    centre = np.array([x + w / 2.0 + params.shift[0] * w, y + h / 2.0 + params.shift[1] * h])
    f_crop = f * np.array([size / (w * params.scale), size / (h * params.scale)])  # (2,)
    rot = _rot2(params.rot_deg)  # (2, 2), acts on normalised coordinates n = (X/Z, Y/Z)
    n_centre = (centre - c) / f  # the box centre's viewing ray, normalised
    c_crop = size / 2.0 - f_crop * (rot @ n_centre)  # so that the centre lands on (S/2, S/2)
    A = f_crop[:, None] * rot / f[None, :]  # K' R K^-1, (2, 2)
    b = c_crop - A @ c
    if params.flip:  # u -> S - 1 - u
        A = A * np.array([[-1.0], [1.0]])
        b = np.array([size - 1.0 - b[0], b[1]])
        c_crop = np.array([size - 1.0 - c_crop[0], c_crop[1]])
    cam_rot = np.eye(3)
    cam_rot[:2, :2] = rot
    return CropGeometry(
        affine=np.concatenate([A, b[:, None]], axis=1),
        focal=f_crop,
        princpt=c_crop,
        cam_rot=cam_rot,
        flip=bool(params.flip),
        size=int(size),
    )


def warp_image(image: Image.Image, affine: np.ndarray, size: int) -> torch.Tensor:
    """Resample ``image`` into the S x S crop given by ``affine`` (original -> crop pixels).

    One bilinear affine warp (PIL's, like the baseline's cv2.warpAffine); outside the
    image is black. Returns (3, S, S) float32 in [0, 1].
    """
    A, b = affine[:, :2], affine[:, 2]
    A_inv = np.linalg.inv(A)
    b_inv = -A_inv @ b  # crop -> original, in our integer-centre convention
    # PIL maps output to input in its own convention (pixel centres at i + 0.5):
    # in_pil = A_inv (out_pil - 0.5) + b_inv + 0.5
    b_pil = b_inv + 0.5 - A_inv @ np.array([0.5, 0.5])
    data = (A_inv[0, 0], A_inv[0, 1], b_pil[0], A_inv[1, 0], A_inv[1, 1], b_pil[1])
    out = image.convert("RGB").transform(
        (size, size), Image.Transform.AFFINE, data=tuple(float(v) for v in data),
        resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0),
    )
    arr = torch.from_numpy(np.asarray(out, dtype=np.uint8).copy())  # (S, S, 3)
    # convert while contiguous, then one copy into channel-first layout (much faster than the other order)
    return arr.to(torch.float32).div_(255.0).permute(2, 0, 1).contiguous()  # (3, S, S)


def color_jitter(image: torch.Tensor, gains) -> torch.Tensor:
    """InterNet's colour augmentation: multiply each RGB channel by its gain, clip to [0, 1]. (3,S,S)."""
    g = torch.as_tensor(gains, dtype=image.dtype).reshape(3, 1, 1)
    return (image * g).clamp_(0.0, 1.0)


# --------------------------------------------------------------------------------------
# One sample: image + annotation -> the contract's sample dict
# --------------------------------------------------------------------------------------
def crop_sample(
    image: Image.Image,
    bbox,
    focal,
    princpt,
    joints_cam,
    joint_valid,
    hand_type: str,
    index: int,
    size: int,
    params: AugmentParams = AugmentParams(),
    joint_vis=None,
    occlusion: float = float("nan"),
) -> dict:
    """Crop, (augment,) and package one sample as the contracts' sample dict.

    bbox (4,) enlarged box in the original image; focal, princpt (2,) original intrinsics;
    joints_cam (42, 3) mm; joint_valid (42,) 0/1; joint_vis (42,) or None (= joint_valid).
    """
    geo = make_crop(bbox, focal, princpt, size, params)
    img = warp_image(image, geo.affine, size)  # (3, S, S)
    if params.color != (1.0, 1.0, 1.0):
        img = color_jitter(img, params.color)

    joints = geo.transform_joints(joints_cam)  # (42, 3), float64
    valid = np.asarray(joint_valid, dtype=np.float32).reshape(skeleton.NUM_JOINTS)
    vis = valid if joint_vis is None else np.asarray(joint_vis, dtype=np.float32).reshape(skeleton.NUM_JOINTS)
    if geo.flip:
        valid, vis = valid[skeleton.FLIP_PERM], vis[skeleton.FLIP_PERM]
        hand_type = FLIPPED_HAND_TYPE[hand_type]
    joints_img = cam_to_pixel(joints, geo.focal, geo.princpt)  # (42, 2)
    return {
        "image": img,
        "joints_cam": torch.from_numpy(joints.astype(np.float32)),
        "joints_img": torch.from_numpy(joints_img.astype(np.float32)),
        "joint_valid": torch.from_numpy(np.ascontiguousarray(valid, dtype=np.float32)),
        "joint_vis": torch.from_numpy(np.ascontiguousarray(vis, dtype=np.float32)),
        "hand_type": hand_type,
        "focal": torch.from_numpy(geo.focal.astype(np.float32)),
        "princpt": torch.from_numpy(geo.princpt.astype(np.float32)),
        "index": int(index),
        "occlusion": torch.tensor(float(occlusion), dtype=torch.float32),
    }


def load_image(path) -> Image.Image:
    """An image file as RGB, as viewers show it (its EXIF orientation applied; without one, exactly as stored).

    A missing, empty, truncated or non-image file raises a one-line error naming it
    (:mod:`h2t_lib.data.files`).
    """
    return open_image(path, "an RGB image")[0]


class CropDataset(torch.utils.data.Dataset):
    """What every h2t loader shares: index checks, the per-epoch augmentation draw, joint arrays.

    A loader sets ``augment``, ``augment_config``, ``seed``, ``epoch`` and implements
    ``__len__``, ``image_path(i)``, ``joints_cam(i)`` (42, 3) mm, ``joint_valid(i)`` (42,) and
    ``missing_image_hint(i)`` (where the image was expected, for the error message).
    """

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of this epoch (samples are a function of (seed, index, epoch)).

        Call it before iterating a DataLoader over the epoch: workers copy the dataset when the
        iterator starts (with ``persistent_workers=True`` they keep the copy of the first epoch).
        """
        self.epoch = int(epoch)

    def locate(self, index: int) -> tuple:
        """(index in 0..len-1, image path, augmentation params) of a sample; clear errors otherwise."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} samples")
        index = int(index) % len(self)
        path = self.image_path(index)
        if not path.is_file():
            raise DataFileNotFoundError(f"image not found: {path} ({self.missing_image_hint(index)})")
        params = sample_augment(self.augment_config, self.seed, index, self.epoch) if self.augment else AugmentParams()
        return index, path, params

    def joints_arrays(self) -> tuple:
        """(joints_cam (N, 42, 3) mm, joint_valid (N, 42)) of every sample, without decoding images."""
        n = len(self)
        return (np.stack([self.joints_cam(i) for i in range(n)]) if n else np.zeros((0, 42, 3)),
                np.stack([self.joint_valid(i) for i in range(n)]) if n else np.zeros((0, 42)))
