"""Handformer2T, the whole model (paper Eq. 1):

    phi: I -> {p^(i), u^(i)}_{i = 1..N}                                     (1)

feature extractor (Sec. 3.1) -> coarse predictor psi^(1) (Sec. 3.3) -> N - 1 refiner stages
psi^(i) (Sec. 3.4), plus our root head (the wrists in camera mm, used to project the
root-relative prediction for the keypoint-guided features).

    model = Handformer2T(ModelConfig.preset("tiny"))
    out = model(image, focal, princpt, root_cam=None)
    out["p"][-1]   # (B, 42, 3) final root-relative joints, mm, right hand 0..20, left 21..41
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from h2t_lib.model.config import ModelConfig
from h2t_lib.model.coarse import CoarsePredictor, RootHead
from h2t_lib.model.feature_extractor import FeatureExtractor
from h2t_lib.model.refiner import RefineStage
from h2t_lib.model.tokenizer import GroupedLinear
from h2t_lib.model.wrist import WristHeatmapHead


class Handformer2T(nn.Module):
    """Two-hand 3D pose from one RGB crop, one transformer token per hand (``cfg.tokens == "hand"``).

    Construction is deterministic: the weights and the fixed random index buffers are drawn from
    ``cfg.seed`` (the global RNG is left untouched), so the same config gives the same model.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not isinstance(cfg, ModelConfig):
            raise TypeError(f"Handformer2T needs a ModelConfig (e.g. ModelConfig.preset('tiny')), got {type(cfg).__name__}")
        cfg.validate()
        self.cfg = cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.extractor = FeatureExtractor(cfg)  # Sec. 3.1
            stages = [CoarsePredictor(cfg, cfg.feat_len[cfg.stage_level(0) - 1])]  # Sec. 3.3
            stages += [RefineStage(cfg, s) for s in range(1, cfg.effective_stages)]  # Sec. 3.4
            self.stages = nn.ModuleList(stages)
            self.root_head = RootHead(cfg)
            # ours: the wrists' crop pixel from a stride-8 heatmap (built last: the other weights stay as without it)
            self.wrist_head = (WristHeatmapHead(cfg.channels, cfg.image_size, cfg.wrist_width)
                               if cfg.wrist_head == "heatmap" else None)
            # ours: is each hand in the image? one logit per hand from its token(s) (built after the wrist head)
            self.presence_head = GroupedLinear(2, cfg.dim, 1) if cfg.hand_presence else None

    # ------------------------------------------------------------------ input checks
    def _check_inputs(self, image, focal, princpt, root_cam):
        S = self.cfg.image_size
        if not torch.is_tensor(image) or image.dim() != 4 or image.shape[1] != 3 or tuple(image.shape[2:]) != (S, S):
            got = tuple(image.shape) if torch.is_tensor(image) else type(image).__name__
            raise ValueError(
                f"expected images of shape (B, 3, {S}, {S}), got {got}; resize/crop to cfg.image_size={S}"
                f" (a single image needs a batch dimension: image[None])"
            )
        if not image.is_floating_point():
            raise ValueError(f"expected float images in [0, 1], got dtype {image.dtype}; use image.float() / 255")
        B = image.shape[0]
        intr = []
        for name, x in (("focal", focal), ("princpt", princpt)):
            if x is None:
                raise ValueError(
                    f"{name} is missing: KGFF projects with the crop intrinsics: pass focal (B,2) and princpt (B,2)"
                    f" (the sample dict's 'focal' and 'princpt')"
                )
            x = torch.as_tensor(x, dtype=image.dtype, device=image.device)
            if x.shape == (2,):
                x = x.expand(B, 2)
            if x.shape != (B, 2):
                raise ValueError(
                    f"{name} has shape {tuple(x.shape)}: KGFF projects with the crop intrinsics: "
                    f"pass focal (B,2) and princpt (B,2) with B={B}"
                )
            intr.append(x)
        if root_cam is not None:
            root_cam = torch.as_tensor(root_cam, dtype=image.dtype, device=image.device)
            if root_cam.shape != (B, 2, 3):
                raise ValueError(
                    f"root_cam has shape {tuple(root_cam.shape)}; pass the wrists (B, 2, 3) in camera mm, "
                    f"right then left (joints_cam[:, [20, 41]]), or None to use the predicted root"
                )
        return intr[0], intr[1], root_cam

    def projection_root(self, pred_root: torch.Tensor, root_cam: Optional[torch.Tensor]) -> torch.Tensor:
        """The wrists KGFF projects with (B, 2, 3).

        ``root_cam`` given and ``cfg.root_source == "gt"``: the given wrists, except rows that are not
        finite or not in front of the camera (an absent hand), which use the prediction.
        Otherwise (no root_cam, or root_source == "pred"): the root head's prediction, detached.
        """
        pred = pred_root.detach()
        if root_cam is None or self.cfg.root_source == "pred":
            return pred
        ok = torch.isfinite(root_cam).all(dim=-1, keepdim=True) & (root_cam[..., 2:3] > 1.0)  # (B, 2, 1)
        return torch.where(ok, torch.nan_to_num(root_cam), pred)

    # ------------------------------------------------------------------ forward
    def forward(self, image, focal=None, princpt=None, root_cam=None, return_attention: bool = False) -> dict:
        """image (B, 3, S, S) in [0, 1]; focal, princpt (B, 2) crop intrinsics; root_cam (B, 2, 3) or None.

        Returns {"p": [N x (B, 42, 3)] root-relative mm, "u": [N x (B, 42, 1)] sigma (units of norm_mm),
        "root": (B, 2, 3) predicted wrists, camera mm, "fmaps": the backbone maps F_i of the levels
        the stages read, in ``cfg.used_levels()`` order [(B, c_i, h_i, w_i)] (for our training-only
        2D term, :class:`h2t_lib.losses.KeypointHeatmapTerm`)}; with ``wrist_head="heatmap"`` also
        "wrist_heatmaps" (B, 2, S/8, S/8) and "wrist_neck" (B, C, S/8, S/8) (our wrist head); with
        ``hand_presence`` also "presence" (B, 2) logits, right and left hand in the image (ours). With
        ``return_attention=True`` also
        "attention": {"coarse": [L x (B, H, T, T)], "self": [(B, H, T, T) per refiner stage],
        "cross": [(B, H, T, T) per refiner stage]} and "kgff_uv": [(B, 42, 2) projected pixels per
        refiner stage] (empty lists where a part is switched off).
        """
        focal, princpt, root_cam = self._check_inputs(image, focal, princpt, root_cam)
        cfg = self.cfg
        maps = self.extractor.backbone(image)  # [F_layer1 .. F_layerK]
        feats = self.extractor(maps=maps)  # {level: (F, f, f_1)}
        _, f1, _ = feats[cfg.stage_level(0)]
        p, u, tokens, w_coarse = self.stages[0](f1, need_weights=return_attention)  # Eq. 7-12
        extra = {}
        if self.wrist_head is not None:  # ours: the wrists' pixel from a heatmap, their depth from the tokens
            heat, neck = self.wrist_head(maps)  # (B, 2, S/8, S/8), (B, C, S/8, S/8)
            extra = {"wrist_heatmaps": heat, "wrist_neck": neck}
            root = self.root_head(tokens, focal, princpt, uv=self.wrist_head.decode(heat))  # (B, 2, 3)
        else:
            root = self.root_head(tokens, focal, princpt)  # (B, 2, 3)
        if self.presence_head is not None:  # (B, T, 1) -> (B, 2) logits, averaged over a hand's tokens
            extra["presence"] = self.presence_head(tokens).reshape(tokens.shape[0], 2, -1).mean(-1)
        proj_root = self.projection_root(root, root_cam)
        ps, us = [p], [u]
        attn = {"coarse": w_coarse, "self": [], "cross": [], "uv": []}
        for s, stage in enumerate(self.stages[1:], start=1):
            fmap, f, pooled = feats[cfg.stage_level(s)]
            p_prev = ps[-1].detach() if cfg.detach_between_stages else ps[-1]
            p, u, aux = stage(fmap, f, pooled, p_prev, proj_root, focal, princpt, need_weights=return_attention)
            ps.append(p)
            us.append(u)
            for k in ("self", "cross", "uv"):
                attn[k].append(aux[k])
        out = {"p": ps, "u": us, "root": root,
               "fmaps": [feats[level][0] for level in cfg.used_levels()], **extra}  # for training-only terms (ours)
        if return_attention:
            uv = attn.pop("uv")
            out["attention"] = attn
            out["kgff_uv"] = [x for x in uv if x is not None]
        return out

    # ------------------------------------------------------------------ conveniences
    @torch.no_grad()
    def predict(self, image, focal, princpt, root_cam=None) -> dict:
        """Final stage only, in eval mode, without gradients.

        Returns {"joints": (B, 42, 3) root-relative mm, "sigma": (B, 42, 1) in mm,
        "root": (B, 2, 3) camera mm (root_cam when given, else predicted), "joints_cam": (B, 42, 3)}.
        Accepts a single image (3, S, S) with intrinsics (2,) too.
        """
        single = torch.is_tensor(image) and image.dim() == 3
        if single:
            image = image[None]
            root_cam = None if root_cam is None else torch.as_tensor(root_cam)[None]
        if torch.is_tensor(image) and image.is_floating_point() and image.numel() and float(image.max()) > 1.5:
            raise ValueError(f"expected image values in [0, 1], got max {float(image.max()):.1f}; divide by 255")
        was_training = self.training
        self.eval()
        try:
            out = self(image, focal, princpt, root_cam)
        finally:
            self.train(was_training)
        joints = out["p"][-1]
        root = out["root"] if root_cam is None else torch.as_tensor(root_cam, dtype=joints.dtype, device=joints.device)
        res = {
            "joints": joints,
            "sigma": out["u"][-1] * self.cfg.norm_mm,
            "root": root,
            "joints_cam": joints + root.repeat_interleave(21, dim=1),
        }
        return {k: v[0] for k, v in res.items()} if single else res

    @torch.no_grad()
    def get_attention_maps(self, image, focal, princpt, root_cam=None) -> dict:
        """The attention weights of one forward pass (eval mode): see ``forward(return_attention=True)``."""
        was_training = self.training
        self.eval()
        try:
            out = self(image, focal, princpt, root_cam, return_attention=True)
        finally:
            self.train(was_training)
        return {**out["attention"], "kgff_uv": out["kgff_uv"]}
