"""Our loss terms (not in the paper) and the label-mask helper they share with RLE.

* the wrist term :func:`root_loss` (our root head: the paper uses the ground-truth root);
* the training-only 2D terms: soft-argmax keypoints on the backbone maps (:class:`KeypointHeatmapTerm`),
  Gaussian heatmap targets (:func:`gaussian_heatmaps`, :func:`heatmap_mse`) for the wrist heatmap head
  and the 42-joint heatmaps on its neck (:class:`JointHeatmapTerm`), and which hands a sample lacks
  (:func:`hands_absent`).

:class:`h2t_lib.losses.Handformer2TLoss` adds them to the paper's Eq. 21 with the weights of
:class:`h2t_lib.losses.LossConfig`.
"""
from __future__ import annotations

import torch
from torch import nn

from h2t_lib.camera import cam_to_pixel
from h2t_lib.skeleton import JOINTS_PER_HAND, NUM_JOINTS, ROOTS

#: spaces of our wrist term (see :func:`root_loss`)
ROOT_SPACES = ("uvz", "cam")


def _valid_mask(valid, shape, name: str = "valid") -> torch.Tensor:
    """(B, J) 0/1 or bool -> bool (B, J)."""
    if not torch.is_tensor(valid):
        valid = torch.as_tensor(valid)
    if valid.shape != shape:
        raise ValueError(f"{name} must have shape {tuple(shape)} (one 0/1 per joint), got {tuple(valid.shape)}")
    return valid > 0.5 if valid.dtype != torch.bool else valid




def root_loss(root_pred, gt_root, valid, focal=None, princpt=None, image_size=None, space: str = "uvz",
              scale_mm: float = 200.0) -> torch.Tensor:
    """Our wrist term (not in the paper), summed over valid wrists / batch size.

    Args:
        root_pred, gt_root: (B, 2, 3) wrists in camera mm (right, left).
        valid: (B, 2) 0/1 or bool: wrists without a label contribute nothing.
        focal, princpt: (B, 2) crop intrinsics (``space="uvz"`` only).
        image_size: the crop side S in pixels (``space="uvz"`` only).
        space: ``"uvz"``: ``|uv - uv_gt| / S`` (both pixel axes) ``+ |log z - log z_gt|``, the root head's
            own parametrisation (:class:`h2t_lib.model.coarse.RootHead`); a 1-pixel error at S = 128
            costs 0.008, a 10% depth error 0.095. ``"cam"``: ``|root - root_gt| / scale_mm`` summed over x, y, z.

    Returns a scalar tensor. Raises ValueError on an unknown space or missing intrinsics.
    """
    if space not in ROOT_SPACES:
        raise ValueError(f"root_loss: space must be one of {ROOT_SPACES}, got {space!r}")
    B = root_pred.shape[0]
    rv = _valid_mask(valid, (B, 2), "wrist valid").to(root_pred.device)[..., None]  # (B, 2, 1)
    pred = root_pred.float()
    gt = torch.where(rv, gt_root.float(), pred.detach())  # unlabelled wrists: a stand-in with zero error
    if space == "cam":
        err = (pred - gt).abs() / scale_mm  # (B, 2, 3)
    else:
        if focal is None or princpt is None or not image_size:
            raise ValueError("root_loss(space='uvz') needs the crop intrinsics focal, princpt (B, 2) and image_size")
        f, c = focal.to(pred), princpt.to(pred)
        z, z_gt = pred[..., 2].clamp_min(1.0), gt[..., 2].clamp_min(1.0)  # (B, 2) mm
        uv, uv_gt = cam_to_pixel(pred, f, c, eps=1.0), cam_to_pixel(gt, f, c, eps=1.0)  # (B, 2, 2) crop pixels
        err = torch.cat([(uv - uv_gt).abs() / float(image_size), (z.log() - z_gt.log()).abs()[..., None]], dim=-1)
    return torch.where(rv, err, 0.0).sum() / B


class KeypointHeatmapTerm(nn.Module):
    """Our training-only 2D term (not in the paper; off unless ``LossConfig.heatmap_weight > 0``).

    Integral regression (Sun et al., ECCV 2018) on every backbone map a stage reads: a 1x1 convolution
    turns F_i (B, c_i, h_i, w_i) into 42 heatmaps, a softmax over the h_i w_i positions makes each a
    distribution, and its expected position (in crop pixels, map cell j centred at j s + (s - 1) / 2
    for stride s) is compared with the joint's pixel ``joints_img`` by an L1 divided by the crop size S.
    It gives the backbone a dense, per-joint signal where the paper's loss reaches it only through the
    pooled vector f_i and the KGFF samples. The convolutions belong to the loss: inference never runs them.

    ``forward(fmaps, joints_img, valid, image_size)``: fmaps [(B, c_i, h_i, w_i)], joints_img (B, 42, 2)
    crop pixels, valid (B, 42) 0/1 (joints outside the crop are dropped) -> scalar: the sum over valid
    joints of |uv - uv_gt| / S (both axes), / B, averaged over the levels.
    """

    def __init__(self, channels):
        super().__init__()
        self.heads = nn.ModuleList(nn.Conv2d(int(c), NUM_JOINTS, kernel_size=1) for c in channels)

    @staticmethod
    def expected_pixels(logits: torch.Tensor, image_size: int) -> torch.Tensor:
        """(B, J, h, w) heatmap logits -> (B, J, 2) expected (u, v) in crop pixels (soft-argmax)."""
        B, J, h, w = logits.shape
        prob = torch.softmax(logits.float().reshape(B, J, h * w), dim=-1).reshape(B, J, h, w)
        su, sv = image_size / w, image_size / h
        xs = torch.arange(w, device=logits.device, dtype=prob.dtype) * su + (su - 1) / 2  # cell centres, pixels
        ys = torch.arange(h, device=logits.device, dtype=prob.dtype) * sv + (sv - 1) / 2
        return torch.stack([(prob.sum(2) * xs).sum(-1), (prob.sum(3) * ys).sum(-1)], dim=-1)

    def forward(self, fmaps, joints_img, valid, image_size: int) -> torch.Tensor:
        if len(fmaps) != len(self.heads):
            raise ValueError(f"KeypointHeatmapTerm: {len(fmaps)} feature maps for {len(self.heads)} heads")
        B = joints_img.shape[0]
        gt = joints_img.float()
        inside = ((gt >= -0.5) & (gt <= image_size - 0.5)).all(-1)  # (B, J)
        v = _valid_mask(valid, gt.shape[:2]).to(gt.device) & inside & torch.isfinite(gt).all(-1)
        gt = torch.where(v[..., None], gt, 0.0)
        total = gt.new_zeros(())
        for head, fmap in zip(self.heads, fmaps):
            uv = self.expected_pixels(head(fmap), image_size)  # (B, J, 2)
            err = (uv - gt).abs().sum(-1) / image_size  # (B, J)
            total = total + torch.where(v, err, 0.0).sum() / B
        return total / len(self.heads)


def gaussian_heatmaps(uv: torch.Tensor, height: int, width: int, stride: float, sigma_px: float) -> torch.Tensor:
    """Heatmap targets: (B, K, 2) crop pixels -> (B, K, height, width), exp(-d^2 / (2 sigma^2)) per cell.

    d is the distance in pixels from the point to the cell's centre (cell j centred at j s + (s - 1) / 2,
    :func:`h2t_lib.model.wrist.cell_centres`); the peak is 1 when a cell centre lies on the point. Points
    outside the map give the tail of their Gaussian (near zero), not an error.
    """
    from h2t_lib.model.wrist import cell_centres

    u = uv[..., 0, None, None].float()  # (B, K, 1, 1)
    v = uv[..., 1, None, None].float()
    xs = cell_centres(width, stride, u)[None, None, None, :]  # (1, 1, 1, w)
    ys = cell_centres(height, stride, u)[None, None, :, None]  # (1, 1, h, 1)
    return torch.exp(-((xs - u) ** 2 + (ys - v) ** 2) / (2.0 * sigma_px**2))


def heatmap_mse(pred: torch.Tensor, uv: torch.Tensor, valid: torch.Tensor, absent: torch.Tensor,
                image_size: int, sigma_cells: float) -> torch.Tensor:
    """Our heatmap term: sum of squared differences over the cells of each map, summed over maps, / B.

    pred (B, K, h, w) heatmaps; uv (B, K, 2) crop pixels of the K points; valid (B, K) bool: the point's label
    is there (target: a Gaussian of ``sigma_cells`` cells at it, :func:`gaussian_heatmaps`); absent (B, K):
    bool: the point's hand is not in the image (target: all zeros). Maps that are neither (a hand whose point is
    unlabelled) do not count.
    """
    B, K, h, w = pred.shape
    stride = image_size / w
    uv = torch.where(valid[..., None], torch.nan_to_num(uv.float()), 0.0)
    target = gaussian_heatmaps(uv, h, w, stride, sigma_cells * stride) * valid[..., None, None]
    err = (pred.float() - target).pow(2).sum(dim=(-2, -1))  # (B, K)
    return torch.where(valid | absent, err, 0.0).sum() / B


def hands_absent(valid: torch.Tensor, hand_type=None) -> torch.Tensor:
    """(B, 42) bool joint labels -> (B, 42) bool: True for the joints of a hand that is not in the image.

    ``hand_type`` (B strings "right" | "left" | "interacting", the loaders' field) says it where given: the
    hand a single-hand sample does not show. Without it, a hand none of whose joints is labelled counts as
    absent (true of the synthetic data; real data may leave a visible hand unlabelled: pass hand_type).
    """
    B = valid.shape[0]
    if hand_type is not None and len(hand_type) == B:
        kinds = [str(t) for t in hand_type]
        none = torch.tensor([[t == "left", t == "right"] for t in kinds], device=valid.device)  # (B, 2)
    else:
        none = ~valid.reshape(B, 2, JOINTS_PER_HAND).any(-1)  # (B, 2)
    return none.repeat_interleave(JOINTS_PER_HAND, dim=1)  # (B, 42)


class JointHeatmapTerm(nn.Module):
    """Our training-only dense 2D term: 42 joint heatmaps from the wrist head's neck (B, C, S/8, S/8).

    A 1x1 convolution (it belongs to the loss: inference never runs it) turns the neck into 42 maps,
    trained towards Gaussians at the joints' crop pixels (:func:`heatmap_mse`). It gives levels 2 and 3 of
    the backbone a per-joint, per-pixel signal that the paper's losses reach only through pooled vectors.
    """

    def __init__(self, channels: int, sigma_cells: float):
        super().__init__()
        self.conv = nn.Conv2d(int(channels), NUM_JOINTS, kernel_size=1)
        self.sigma_cells = sigma_cells

    def forward(self, neck, joints_img, valid, image_size: int, hand_type=None) -> torch.Tensor:
        """neck (B, C, h, w); joints_img (B, 42, 2) crop pixels; valid (B, 42) bool -> scalar (:func:`heatmap_mse`)."""
        absent = hands_absent(valid, hand_type)
        return heatmap_mse(self.conv(neck), joints_img, valid, absent, image_size, self.sigma_cells)
