"""A compact InterNet-style heatmap baseline ("Moon et al." in the paper's Tables 1-2).

This is a comparison point, not a product: it shows what Handformer2T's regression with
hand-level tokens is measured against. The layout follows InterNet, the InterHand2.6M
baseline (Moon et al., ECCV 2020; see ``/work/shared/reference/peers.md``):

* a ResNet trunk (ResNet-50 in the paper setting, ``weights=None`` unless a state dict is given);
* per hand, a deconvolution head: 3 x (ConvTranspose 4x4 stride 2, 256 ch, BN, ReLU) and a
  1x1 convolution to ``21 x D`` channels, i.e. one **2.5D heatmap** per joint of size
  ``D x H x W = 64 x 64 x 64`` at 256 px input (x, y on the stride-4 grid of the crop, z in
  ``D`` bins over the box ``[-depth_range_mm/2, +depth_range_mm/2]`` around that hand's wrist
  depth; InterNet's ``bbox_3d_size = 400`` mm);
* a relative-root-depth head: an MLP on the pooled trunk features giving a 1D heatmap over
  ``root_bins`` bins spanning ``[-root_range_mm/2, +root_range_mm/2]``; its expectation is
  ``z_left_wrist - z_right_wrist`` (InterNet's ``bbox_3d_size_root = 400`` mm);
* a hand-type classifier: an MLP giving 2 logits (right present, left present), read with a sigmoid.

Coordinates are read with a **soft-argmax** (integral regression, Sun et al. 2018): a softmax
over all ``D*H*W`` voxels of a joint's heatmap and the expectation of (x, y, z) under it,
Eq. ``x_hat = sum_v softmax(h)_v * x_v``. InterNet itself trains the heatmaps against
rendered Gaussians (MSE) and reads them with a hard argmax at test time; we use the
soft-argmax both ways so one L1 loss on coordinates trains it (:class:`InterNetLoss`)
and the read-out is differentiable. The heatmaps are large (42 x 64^3 floats per image, 44 MB in
float32); the paper (Sec. 2) blames such high-resolution features and heatmaps for the heatmap
methods' cost, and its Table 2 gives InterNet a maximum batch of 48 against Handformer2T's 128.

Evaluation as InterNet's: the (x, y) read-out becomes crop pixels, z becomes millimetres
relative to the wrist, each hand is given its **ground-truth wrist depth** (``root_cam``),
the joints are back-projected with the crop intrinsics and made root-relative. The output
dict has the keys of :class:`h2t_lib.model.Handformer2T`'s (``p``, ``u``, ``root``) so the same
evaluation code runs on both; ``u`` is all ones (a heatmap read-out gives no RLE sigma).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from h2t_lib import camera
from h2t_lib.skeleton import HANDS, JOINTS_PER_HAND, NUM_JOINTS, ROOT_INDEX, ROOTS, root_relative

_BACKBONES = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}  # name -> channels of layer4
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class InterNetConfig:
    """Hyper-parameters of the heatmap baseline. ``InterNetConfig.preset("paper")`` is InterNet's setting.

    Used in notebook 02.
    """

    image_size: int = 256  # S, input crop side (pixels); a multiple of 32
    backbone: str = "resnet50"  # "resnet18" | "resnet34" | "resnet50"
    backbone_weights: Optional[str] = None  # path to a torchvision ResNet state dict (e.g. ImageNet), or None
    deconv_channels: int = 256  # channels of the 3 deconvolutions (InterNet: 256)
    num_deconv: int = 3  # each doubles the resolution: heatmap side = S / 32 * 2^3 = S / 4
    depth_bins: int = 64  # D, depth bins of the 2.5D heatmap (InterNet: output_hm_shape[0] = 64)
    depth_range_mm: float = 400.0  # z box around each wrist, [-200, +200] mm (InterNet: bbox_3d_size)
    root_bins: int = 64  # bins of the relative-root-depth 1D heatmap (InterNet: output_root_hm_shape)
    root_range_mm: float = 400.0  # range of z_left_wrist - z_right_wrist (InterNet: bbox_3d_size_root)
    fc_dim: int = 512  # hidden width of the root-depth and hand-type MLPs
    crop_extent_mm: float = 300.0  # only without root_cam: assumed physical width of the crop (see decode)
    seed: int = 0  # weight initialisation seed (the model is built under this seed)

    def __post_init__(self):
        if self.backbone not in _BACKBONES:
            raise ValueError(f"InterNetConfig.backbone must be one of {sorted(_BACKBONES)}, got {self.backbone!r}")
        if self.image_size <= 0 or self.image_size % 32:
            raise ValueError(f"InterNetConfig.image_size must be a positive multiple of 32 (the ResNet stride), "
                             f"got {self.image_size}")
        for name in ("deconv_channels", "num_deconv", "depth_bins", "root_bins", "fc_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"InterNetConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.depth_range_mm <= 0 or self.root_range_mm <= 0 or self.crop_extent_mm <= 0:
            raise ValueError("InterNetConfig depth_range_mm, root_range_mm and crop_extent_mm must be > 0")

    @property
    def heatmap_size(self) -> int:
        """Side H = W of the heatmap grid (64 at 256 px)."""
        return self.image_size // 32 * 2**self.num_deconv

    @classmethod
    def preset(cls, name: str, **overrides) -> "InterNetConfig":
        """Named settings: "paper" (InterNet: ResNet-50, 256 px, 64^3 heatmaps), "cpu" (ResNet-18, 128 px),
        "tiny" (ResNet-18, 64 px, 16^3 heatmaps, narrow heads: for tests)."""
        presets = {
            "paper": dict(),
            "cpu": dict(backbone="resnet18", image_size=128, deconv_channels=128, depth_bins=32, root_bins=32,
                        fc_dim=256),
            "tiny": dict(backbone="resnet18", image_size=64, deconv_channels=32, depth_bins=16, root_bins=16,
                         fc_dim=64),
        }
        if name not in presets:
            raise ValueError(f"unknown InterNet preset {name!r}; choose one of {sorted(presets)}")
        return cls(**{**presets[name], **overrides})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --- read-out ------------------------------------------------------------------------------------

def soft_argmax_3d(logits: torch.Tensor) -> torch.Tensor:
    """Expected voxel of each heatmap under its softmax.

    logits (B, J, D, H, W) -> (B, J, 3) as (x, y, z) in voxel units: x in [0, W-1] (columns),
    y in [0, H-1] (rows), z in [0, D-1] (depth bins). The softmax runs over all D*H*W voxels
    of a joint; the expectation is taken on the three marginals.
    """
    b, j, d, h, w = logits.shape
    prob = F.softmax(logits.reshape(b, j, d * h * w).float(), dim=-1).reshape(b, j, d, h, w)
    x = (prob.sum(dim=(2, 3)) * torch.arange(w, device=prob.device, dtype=prob.dtype)).sum(-1)  # (B, J)
    y = (prob.sum(dim=(2, 4)) * torch.arange(h, device=prob.device, dtype=prob.dtype)).sum(-1)
    z = (prob.sum(dim=(3, 4)) * torch.arange(d, device=prob.device, dtype=prob.dtype)).sum(-1)
    return torch.stack([x, y, z], dim=-1)


def soft_argmax_1d(logits: torch.Tensor) -> torch.Tensor:
    """logits (B, K) -> (B,) expected bin index in [0, K-1]."""
    prob = F.softmax(logits.float(), dim=-1)
    return (prob * torch.arange(logits.shape[-1], device=logits.device, dtype=prob.dtype)).sum(-1)


def bins_to_mm(bins: torch.Tensor, num_bins: int, range_mm: float) -> torch.Tensor:
    """Bin coordinate -> millimetres: bin 0 is -range/2, bin ``num_bins`` is +range/2 (InterNet's convention)."""
    return (bins / num_bins * 2.0 - 1.0) * (range_mm / 2.0)


def mm_to_bins(mm: torch.Tensor, num_bins: int, range_mm: float) -> torch.Tensor:
    """Inverse of :func:`bins_to_mm`."""
    return (mm / (range_mm / 2.0) + 1.0) / 2.0 * num_bins


def decode(
    joints_grid: torch.Tensor,
    rel_root_bins: torch.Tensor,
    focal: torch.Tensor,
    princpt: torch.Tensor,
    cfg: InterNetConfig,
    image_size: int,
    heatmap_size: int,
    root_cam: Optional[torch.Tensor] = None,
) -> dict:
    """Voxel read-out -> camera millimetres, as InterNet's evaluation.

    joints_grid (B, 42, 3) voxels (x, y, z); rel_root_bins (B,) bins; focal, princpt (B, 2) crop
    intrinsics; root_cam (B, 2, 3) ground-truth wrists (right, left) in camera mm, or None.

    1. pixels: ``u = x * S / W``, ``v = y * S / H`` (InterNet maps pixel ``u`` to grid ``u * W / S``);
    2. depth of joint j of hand h: ``Z_h + z_j`` with ``z_j`` = :func:`bins_to_mm` of its bin and ``Z_h``
       the hand's wrist depth: from ``root_cam`` (ground truth, as InterNet's MPJPE) or, when
       ``root_cam`` is None, the RootNet-style guess ``Z = f * crop_extent_mm / S`` (the crop is
       assumed to span ``crop_extent_mm``; InterNet predicts no absolute depth) for the right hand
       and ``Z_right + rel_root`` for the left;
    3. back-project (:func:`h2t_lib.camera.pixel_to_cam`) and subtract each hand's predicted wrist.

    Returns ``p`` (B, 42, 3) root-relative mm, ``cam`` (B, 42, 3) absolute camera mm,
    ``joints_img`` (B, 42, 2) crop pixels, ``rel_root_depth`` (B,) mm and ``root`` (B, 2, 3): the
    predicted wrists, the right at Z_right and the left at ``Z_right + rel_root_depth`` (as InterNet's MRRPE).
    """
    stride = image_size / heatmap_size
    uv = joints_grid[..., :2] * stride  # (B, 42, 2) crop pixels
    z_rel = bins_to_mm(joints_grid[..., 2], cfg.depth_bins, cfg.depth_range_mm)  # (B, 42) mm from the wrist
    rel_root = bins_to_mm(rel_root_bins, cfg.root_bins, cfg.root_range_mm)  # (B,) z_left - z_right, mm
    if root_cam is not None:
        root_z = root_cam[..., 2].to(z_rel.dtype)  # (B, 2) ground-truth wrist depths
    else:
        z_right = focal.mean(-1).to(z_rel.dtype) * cfg.crop_extent_mm / image_size  # (B,)
        root_z = torch.stack([z_right, z_right + rel_root], dim=-1)  # (B, 2)
    hand_z = root_z.repeat_interleave(JOINTS_PER_HAND, dim=-1)  # (B, 42): right x21, left x21
    cam = camera.pixel_to_cam(uv, hand_z + z_rel, focal, princpt)  # (B, 42, 3)
    # the wrists as InterNet's MRRPE places them: right at Z_right, left at Z_right + predicted offset
    # (plus each wrist's own read-out z in its box, ~0)
    wrist_uv = uv[:, ROOTS]  # (B, 2, 2)
    wrist_z = root_z[:, :1] + torch.stack([torch.zeros_like(rel_root), rel_root], dim=-1) + z_rel[:, ROOTS]
    root = camera.pixel_to_cam(wrist_uv, wrist_z, focal, princpt)  # (B, 2, 3)
    return {"p": root_relative(cam), "cam": cam, "joints_img": uv, "rel_root_depth": rel_root, "root": root}


# --- the network ---------------------------------------------------------------------------------

def _resnet_trunk(name: str, weights_path: Optional[str]) -> nn.Sequential:
    """torchvision ResNet without its pooling and classifier: (B, 3, S, S) -> (B, C, S/32, S/32).

    Built by :func:`h2t_lib.model.backbone.build_resnet` (random init, or a state dict file; never downloads).
    """
    from h2t_lib.model.backbone import build_resnet

    return nn.Sequential(*list(build_resnet(name, weights_path).children())[:-2])


def _deconv_head(in_ch: int, cfg: InterNetConfig) -> nn.Sequential:
    """InterNet's joint head: num_deconv x (ConvT 4x4/2, BN, ReLU), then 1x1 conv to 21*D heatmap channels."""
    layers, ch = [], in_ch
    for _ in range(cfg.num_deconv):
        layers += [nn.ConvTranspose2d(ch, cfg.deconv_channels, 4, stride=2, padding=1, bias=False),
                   nn.BatchNorm2d(cfg.deconv_channels), nn.ReLU(inplace=True)]
        ch = cfg.deconv_channels
    layers.append(nn.Conv2d(ch, JOINTS_PER_HAND * cfg.depth_bins, 1))
    return nn.Sequential(*layers)


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))


def _check_inputs(image, focal, princpt, root_cam) -> None:
    if not torch.is_tensor(image) or image.dim() != 4 or image.shape[1] != 3:
        shape = tuple(image.shape) if torch.is_tensor(image) else type(image).__name__
        raise ValueError(f"image must be a (B, 3, S, S) tensor in [0, 1], got {shape}")
    b, _, h, w = image.shape
    if h != w or h % 32:
        raise ValueError(f"image must be square with a side that is a multiple of 32, got {h}x{w}; "
                         f"resize the crop (e.g. to 256x256)")
    for name, t in (("focal", focal), ("princpt", princpt)):
        if not torch.is_tensor(t) or tuple(t.shape) != (b, 2):
            got = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
            raise ValueError(f"{name} must be a (B, 2) tensor of crop intrinsics with B={b}, got {got}")
    if root_cam is not None and (not torch.is_tensor(root_cam) or tuple(root_cam.shape) != (b, 2, 3)):
        got = tuple(root_cam.shape) if torch.is_tensor(root_cam) else type(root_cam).__name__
        raise ValueError(f"root_cam must be None or a (B, 2, 3) tensor of wrists (right, left) in camera mm, got {got}")


class InterNetBaseline(nn.Module):
    """InterNet-style 2.5D heatmap model with Handformer2T's call signature and output keys.

    ``out = model(image, focal, princpt, root_cam=None)``; image (B, 3, S, S) in [0, 1]; focal, princpt
    (B, 2) crop intrinsics; root_cam (B, 2, 3) ground-truth wrists (right, left), camera mm.
    Returns ``p`` [(B, 42, 3)] root-relative mm (one stage), ``u`` [(B, 42, 1) ones], ``root`` (B, 2, 3)
    and the raw read-outs the loss needs: ``joints_grid`` (B, 42, 3) voxels, ``rel_root_bins`` (B,),
    ``hand_logits`` (B, 2) (right, left present), plus ``hand_prob``, ``joints_img``, ``rel_root_depth``.

    Used in notebook 02.
    """

    def __init__(self, cfg: Optional[InterNetConfig] = None):
        super().__init__()
        self.cfg = cfg = cfg if cfg is not None else InterNetConfig()
        with torch.random.fork_rng(devices=[]):  # the same weights for the same cfg.seed, whatever the global RNG
            torch.manual_seed(cfg.seed)
            self.backbone = _resnet_trunk(cfg.backbone, cfg.backbone_weights)
            c = _BACKBONES[cfg.backbone]
            self.joint_heads = nn.ModuleList([_deconv_head(c, cfg) for _ in HANDS])  # one per hand, as InterNet
            self.root_fc = _mlp(c, cfg.fc_dim, cfg.root_bins)
            self.hand_fc = _mlp(c, cfg.fc_dim, 2)
            self._init_heads()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _init_heads(self) -> None:
        """InterNet's initialisation: small normal weights, so the first heatmaps are nearly flat."""
        for m in [*self.joint_heads.modules(), *self.root_fc.modules(), *self.hand_fc.modules()]:
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def heatmaps(self, image: torch.Tensor):
        """image (B, 3, S, S) in [0, 1] -> joint heatmap logits (B, 42, D, S/4, S/4), root logits (B, K)
        and hand-type logits (B, 2)."""
        feat = self.backbone((image - self.mean) / self.std)  # (B, C, S/32, S/32)
        b = feat.shape[0]
        maps = [head(feat) for head in self.joint_heads]  # 2 x (B, 21*D, H, W)
        h, w = maps[0].shape[-2:]
        logits = torch.cat(maps, dim=1).view(b, NUM_JOINTS, self.cfg.depth_bins, h, w)  # (B, 42, D, H, W)
        pooled = feat.mean(dim=(2, 3))  # (B, C)
        return logits, self.root_fc(pooled), self.hand_fc(pooled)

    def forward(self, image, focal, princpt, root_cam=None) -> dict:
        _check_inputs(image, focal, princpt, root_cam)
        logits, root_logits, hand_logits = self.heatmaps(image)
        grid = soft_argmax_3d(logits)  # (B, 42, 3) voxels
        rel_bins = soft_argmax_1d(root_logits)  # (B,)
        dec = decode(grid, rel_bins, focal.float(), princpt.float(), self.cfg, image.shape[-1], logits.shape[-1],
                     root_cam=root_cam)
        p = dec["p"]
        return {
            "p": [p],
            "u": [torch.ones_like(p[..., :1])],  # (B, 42, 1): no uncertainty from a heatmap read-out
            "root": dec["root"],
            "joints_grid": grid,
            "rel_root_bins": rel_bins,
            "hand_logits": hand_logits,
            "hand_prob": torch.sigmoid(hand_logits),
            "joints_img": dec["joints_img"],
            "rel_root_depth": dec["rel_root_depth"],
        }


# --- the loss ------------------------------------------------------------------------------------

@dataclass
class InterNetLossConfig:
    joint_weight: float = 1.0  # L1 on soft-argmax voxel coordinates
    hand_type_weight: float = 1.0  # BCE on the two hand-presence logits
    root_weight: float = 1.0  # L1 on the relative root depth (in root bins)


_HAND_TYPE_TARGET = {"right": (1.0, 0.0), "left": (0.0, 1.0), "interacting": (1.0, 1.0)}


def internet_targets(batch: dict, cfg: InterNetConfig, image_size: int, heatmap_size: int) -> dict:
    """Ground truth in the model's read-out units, with masks (InterNet's joint_valid x truncation).

    joints_grid (B, 42, 3) voxels and joint_mask (B, 42): valid joints whose voxel lies in the
    heatmap volume; rel_root_bins (B,) and root_mask (B,): interacting samples with both wrists
    valid and the offset inside the root range; hand_type (B, 2) in {0, 1}.
    """
    joints_img, joints_cam = batch["joints_img"].float(), batch["joints_cam"].float()  # (B,42,2), (B,42,3)
    valid = batch["joint_valid"].float()  # (B, 42)
    xy = joints_img * (heatmap_size / image_size)  # (B, 42, 2)
    root_z = joints_cam[:, ROOTS, 2]  # (B, 2)
    z_rel = joints_cam[..., 2] - root_z.repeat_interleave(JOINTS_PER_HAND, dim=-1)  # (B, 42)
    z = mm_to_bins(z_rel, cfg.depth_bins, cfg.depth_range_mm)
    grid = torch.cat([xy, z[..., None]], dim=-1)  # (B, 42, 3)
    upper = grid.new_tensor([heatmap_size - 1, heatmap_size - 1, cfg.depth_bins - 1])
    inside = ((grid >= 0) & (grid <= upper)).all(-1).float()
    rel = mm_to_bins(root_z[:, 1] - root_z[:, 0], cfg.root_bins, cfg.root_range_mm)  # (B,)
    interacting = torch.tensor([t == "interacting" for t in batch["hand_type"]], dtype=torch.float32,
                               device=rel.device)
    root_mask = (interacting * valid[:, ROOT_INDEX["right"]] * valid[:, ROOT_INDEX["left"]]
                 * ((rel >= 0) & (rel <= cfg.root_bins - 1)).float())
    try:
        hand_type = torch.tensor([_HAND_TYPE_TARGET[t] for t in batch["hand_type"]], device=rel.device)
    except KeyError as e:
        raise ValueError(f"batch['hand_type'] entries must be one of {sorted(_HAND_TYPE_TARGET)}, got {e}") from None
    return {"joints_grid": grid, "joint_mask": valid * inside, "rel_root_bins": rel, "root_mask": root_mask,
            "hand_type": hand_type}


class InterNetLoss(nn.Module):
    """L1 on the soft-argmax coordinates + BCE on the hand type + L1 on the relative root depth.

    ``terms = criterion(out, batch)`` -> {"total", "joint", "hand_type", "rel_root"} scalar tensors;
    the L1 terms average over the valid entries (voxel / bin units, as InterNet's targets).
    """

    def __init__(self, cfg: InterNetConfig, loss_cfg: Optional[InterNetLossConfig] = None):
        super().__init__()
        self.cfg = cfg
        self.loss_cfg = loss_cfg if loss_cfg is not None else InterNetLossConfig()

    def forward(self, out: dict, batch: dict) -> dict:
        image_size = batch["image"].shape[-1] if "image" in batch else self.cfg.image_size
        heatmap_size = image_size // 32 * 2**self.cfg.num_deconv
        t = internet_targets(batch, self.cfg, image_size, heatmap_size)
        m = t["joint_mask"][..., None]  # (B, 42, 1)
        joint = ((out["joints_grid"] - t["joints_grid"]).abs() * m).sum() / (3 * m.sum()).clamp(min=1)
        rm = t["root_mask"]
        rel_root = ((out["rel_root_bins"] - t["rel_root_bins"]).abs() * rm).sum() / rm.sum().clamp(min=1)
        hand_type = F.binary_cross_entropy_with_logits(out["hand_logits"], t["hand_type"].to(out["hand_logits"]))
        lc = self.loss_cfg
        total = lc.joint_weight * joint + lc.hand_type_weight * hand_type + lc.root_weight * rel_root
        return {"total": total, "joint": joint, "hand_type": hand_type, "rel_root": rel_root}


def count_parameters(model: nn.Module) -> int:
    """Plain parameter count (every parameter tensor, trainable or not)."""
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":  # python -m h2t_lib.model.baseline: parameter count at the paper setting
    for _name in ("paper", "tiny"):
        _m = InterNetBaseline(InterNetConfig.preset(_name))
        print(f"InterNet baseline {_name}: {count_parameters(_m) / 1e6:.2f} M parameters (InterNet reports 47 M)")
