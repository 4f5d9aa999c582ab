"""Camera helpers, batched, for numpy arrays and torch tensors alike.

Conventions (as InterHand2.6M): column vectors, ``cam = R @ (world - campos)``;
pinhole projection ``u = X/Z * fx + cx``, ``v = Y/Z * fy + cy``; millimetres.
Shapes: points (..., J, 3); R (..., 3, 3); campos (..., 3); focal, princpt (..., 2).
Leading dimensions broadcast.
"""
from __future__ import annotations

import numpy as np


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _stack(xs, like, axis=-1):
    if _is_torch(like):
        import torch

        return torch.stack(xs, dim=axis)
    return np.stack(xs, axis=axis)


def _swap_last(m):
    return m.transpose(-1, -2) if _is_torch(m) else np.swapaxes(m, -1, -2)


def world_to_cam(world, camrot, campos):
    """World -> camera frame: cam = R (world - campos). world (..., J, 3) -> (..., J, 3).

    Used in notebook 01.
    """
    return (world - campos[..., None, :]) @ _swap_last(camrot)


def cam_to_world(cam, camrot, campos):
    """Camera -> world frame, the inverse of :func:`world_to_cam` (R is orthonormal)."""
    return cam @ camrot + campos[..., None, :]


def cam_to_pixel(cam, focal, princpt, eps: float = 1e-6):
    """Project camera-frame points to pixels. cam (..., J, 3) -> (..., J, 2).

    Depths below ``eps`` are clamped so a point behind the camera gives a finite pixel.

    Used in notebooks 00, 01 and 02.
    """
    z = cam[..., 2]
    z = z.clamp(min=eps) if _is_torch(z) else np.maximum(z, eps)
    u = cam[..., 0] / z * focal[..., None, 0] + princpt[..., None, 0]
    v = cam[..., 1] / z * focal[..., None, 1] + princpt[..., None, 1]
    return _stack([u, v], cam)


def pixel_to_cam(uv, depth, focal, princpt):
    """Back-project pixels with their depth. uv (..., J, 2), depth (..., J) -> (..., J, 3)."""
    x = (uv[..., 0] - princpt[..., None, 0]) / focal[..., None, 0] * depth
    y = (uv[..., 1] - princpt[..., None, 1]) / focal[..., None, 1] * depth
    return _stack([x, y, depth], uv)


def crop_intrinsics(focal, princpt, bbox, out_size):
    """Intrinsics of a crop: the image region ``bbox = (x, y, w, h)`` resized to ``out_size`` pixels square.

    Returns (focal, princpt) such that projecting camera points with them lands on
    the crop's pixels. Works on single values (2,) / (4,) or batches (..., 2) / (..., 4).

    Used in notebook 01.
    """
    x, y, w, h = (bbox[..., i] for i in range(4))
    sx, sy = out_size / w, out_size / h
    f = _stack([focal[..., 0] * sx, focal[..., 1] * sy], focal)
    c = _stack([(princpt[..., 0] - x) * sx, (princpt[..., 1] - y) * sy], princpt)
    return f, c
