"""The model on a batch of the loaders' sample dicts: what training, validation and evaluation all run.

    from h2t_lib.model.batch import forward
    out = forward(model, batch)   # batch on the model's device, e.g. from h2t_lib.data.loading.to_device
"""
from __future__ import annotations

from typing import Optional

import torch

from h2t_lib.skeleton import ROOT_INDEX


def gt_roots(batch: dict) -> torch.Tensor:
    """(B, 2, 3) ground-truth wrists (right, left) in camera mm, for root_source="gt"."""
    return batch["joints_cam"][:, [ROOT_INDEX["right"], ROOT_INDEX["left"]]]


def forward(model, batch: dict, root_source: Optional[str] = None, pred_root_frac: float = 0.0) -> dict:
    """Run a Handformer2T on a (device) batch; ``root_source`` "gt" hands it the GT wrists, "pred" not.

    batch: ``image`` (B, 3, S, S) in [0, 1], ``focal`` / ``princpt`` (B, 2) crop intrinsics in pixels,
    ``joints_cam`` (B, 42, 3) mm (read for "gt" only). ``root_source`` None = ``model.cfg.root_source``.
    ``pred_root_frac`` (training only, ours; with "gt"): each sample with this probability (drawn from
    the global torch RNG) gets no GT wrists, so KGFF projects with the root head's own prediction.
    Returns the model's output: {"p": [N x (B, 42, 3)] mm, "u": [N x (B, 42, 1)], "root": (B, 2, 3) mm}.
    """
    source = root_source or model.cfg.root_source
    root_cam = gt_roots(batch) if source == "gt" else None
    if root_cam is not None and pred_root_frac > 0:
        use_pred = torch.rand(root_cam.shape[0]) < pred_root_frac  # (B,) on the CPU: same draw on every device
        root_cam = torch.where(use_pred.to(root_cam.device)[:, None, None], float("nan"), root_cam)  # NaN -> predicted
    image = batch["image"].contiguous(memory_format=torch.channels_last)  # as the model's convolutions
    return model(image, batch["focal"], batch["princpt"], root_cam=root_cam)
