"""The model on a batch of the loaders' sample dicts: what training, validation and evaluation all run.

    from h2t_lib.model.batch import forward
    out = forward(model, batch)   # batch on the model's device, e.g. from h2t_lib.data.loading.to_device
"""
from __future__ import annotations

from typing import Optional

import torch

from h2t_lib.skeleton import ROOTS


def gt_roots(batch: dict) -> torch.Tensor:
    """(B, 2, 3) ground-truth wrists (right, left) in camera mm, for root_source="gt".

    Used in notebooks 02, 04 and 05.
    """
    return batch["joints_cam"][:, ROOTS]


def perturb_wrists(root_cam: torch.Tensor, shift_px: torch.Tensor, focal: torch.Tensor) -> torch.Tensor:
    """Wrists (B, 2, 3) camera mm moved by ``shift_px`` (B, 2, 2) crop pixels in the image, at the same depth.

    ``focal`` (B, 2): the crop's focal lengths in pixels (the principal point cancels out). The moved wrist
    projects to its old pixel + shift_px (pinhole, :func:`h2t_lib.camera.cam_to_pixel`); its z is unchanged.
    Ours, for training the refiner.
    """
    f = focal[:, None, :].to(root_cam)  # (B, 1, 2)
    z = root_cam[..., 2:3]  # (B, 2, 1) mm
    xy = root_cam[..., :2] + shift_px * z / f  # a pixel step is z / f mm at depth z
    return torch.cat([xy, z], dim=-1)


def forward(model, batch: dict, root_source: Optional[str] = None, pred_root_frac: float = 0.0,
            root_noise_px: float = 0.0) -> dict:
    """Run a Handformer2T on a (device) batch; ``root_source`` "gt" hands it the GT wrists, "pred" not.

    batch: ``image`` (B, 3, S, S) in [0, 1], ``focal`` / ``princpt`` (B, 2) crop intrinsics in pixels,
    ``joints_cam`` (B, 42, 3) mm (read for "gt" only). ``root_source`` None = ``model.cfg.root_source``.
    ``pred_root_frac`` (training only, ours; with "gt"): each sample with this probability (drawn from
    the global torch RNG) gets no GT wrists, so KGFF projects with the root head's own prediction.
    ``root_noise_px`` (training only, ours; with "gt"): the GT wrists are moved in the image plane by
    N(0, root_noise_px^2) crop pixels per axis, at their own depth (:func:`perturb_wrists`), so KGFF learns
    to refine around a wrist that is a few pixels off, as a predicted one is.
    Returns the model's output: {"p": [N x (B, 42, 3)] mm, "u": [N x (B, 42, 1)], "root": (B, 2, 3) mm}.

    Used in notebook 06.
    """
    source = root_source or model.cfg.root_source
    root_cam = gt_roots(batch) if source == "gt" else None
    if root_cam is not None and root_noise_px > 0:
        noise = torch.randn(root_cam.shape[:2] + (2,)) * root_noise_px  # (B, 2, 2) on the CPU, as below
        root_cam = perturb_wrists(root_cam, noise.to(root_cam), batch["focal"])
    if root_cam is not None and pred_root_frac > 0:
        use_pred = torch.rand(root_cam.shape[0]) < pred_root_frac  # (B,) on the CPU: same draw on every device
        root_cam = torch.where(use_pred.to(root_cam.device)[:, None, None], float("nan"), root_cam)  # NaN -> predicted
    image = batch["image"].contiguous(memory_format=torch.channels_last)  # as the model's convolutions
    return model(image, batch["focal"], batch["princpt"], root_cam=root_cam)
