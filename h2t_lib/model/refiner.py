"""Refiner with pose query enhancement (paper Sec. 3.4, Eq. 13-17, Fig. 3).

Stage i = 2..N maps (F_i, f_i, p^(i-1)) to {p^(i), u^(i)}:

    p_image = Pi(p^(i-1))                          project the 3D keypoints to the crop      (13)
    f_kpt^hand = Concat(Flatten(3x3 patches of F^_i at the hand's 21 points), f_i,1)   (Fig. 3)
    E'_i = E_i + MLP(p^(i-1)) + P_i                E_i = the stage's own tokens of f_i      (14)
    E''_i = MHSA(E'_i)                                                                        (15)
    q_i^hand = MLP^hand(f_kpt,i^hand),  Q_i = {q^right, q^left}                              (16)
    E_i^out = MultiHead(Q_i, E''_i, E''_i)        cross attention                            (17)
    {p^(i), u^(i)} = MLP_out(E_i^out)              as Eq. 12

Choices (documented in docs/architecture.md): p^(i-1) is root-relative, so the projection adds
each hand's wrist position (the ground-truth root when given, else the model's root head);
the 3x3 patch is taken on the feature grid (one feature cell apart) by bilinear
``grid_sample`` with ``align_corners=False`` and zero padding, with pixel centres at integer
pixel coordinates, so a pixel u maps to the normalised coordinate (2u + 1) / S - 1 on every
level; projections are made finite and clamped to [-S, 2S] so nothing NaN or infinite
reaches ``grid_sample`` (points that far out only sample the zero padding).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from h2t_lib.camera import cam_to_pixel
from h2t_lib.model.config import ModelConfig
from h2t_lib.model.coarse import PoseHead, SelfAttentionLayer, _ffn, tokens_to_hands
from h2t_lib.model.feature_extractor import fixed_generator
from h2t_lib.model.tokenizer import TokenMLP, build_tokenizer
from h2t_lib.skeleton import JOINTS_PER_HAND, NUM_JOINTS


class KeypointGuidedFusion(nn.Module):
    """KGFF (Eq. 13, Fig. 3): keypoint-guided features of one feature map.

    ``forward(fmap, pooled, joints_cam, focal, princpt)``: fmap F_i (B, c, h, w), pooled f_i,1 (B, c),
    joints_cam (B, 42, 3) camera mm, crop intrinsics (B, 2) ->
    f_kpt (B, 2, 9 * 21 * c~ + c) for hand tokens, or (B, 42, 9 * c~ + c) for joint tokens,
    and the projected pixels uv (B, 42, 2).
    The c~ channels of F^_i are a fixed random subset (buffer ``chan_idx``, drawn from cfg.seed).
    """

    def __init__(self, channels: int, kpt_channels: int, image_size: int, patch_size: int = 3,
                 tokens: str = "hand", generator: Optional[torch.Generator] = None):
        super().__init__()
        perm = torch.randperm(channels, generator=generator, device="cpu")
        self.register_buffer("chan_idx", perm[:kpt_channels].sort().values)  # (c~,) int64
        self.image_size, self.patch_size, self.tokens = image_size, patch_size, tokens
        self.channels, self.kpt_channels = channels, kpt_channels

    @property
    def out_dim(self) -> int:
        per_joint = self.patch_size**2 * self.kpt_channels
        return (JOINTS_PER_HAND * per_joint if self.tokens == "hand" else per_joint) + self.channels

    def project(self, joints_cam: torch.Tensor, focal: torch.Tensor, princpt: torch.Tensor) -> torch.Tensor:
        """Eq. 13: camera mm (B, 42, 3) -> crop pixels (B, 42, 2), finite, clamped to [-S, 2S]."""
        S = self.image_size
        uv = cam_to_pixel(joints_cam, focal, princpt)
        return torch.nan_to_num(uv, nan=-S, posinf=2 * S, neginf=-S).clamp(-S, 2 * S)

    def sampling_grid(self, uv: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """Pixels (B, 42, 2) -> grid_sample coordinates (B, 42, k*k, 2) of the k x k patch around each point.

        With ``align_corners=False`` a feature map of any stride covers [-1, 1] exactly like the
        S pixels of the crop, so pixel u (centre of pixel u at u) is at (2u + 1) / S - 1; the patch
        points are one feature cell (2 / w in normalised units) apart.
        """
        S, k = self.image_size, self.patch_size
        centre = (2.0 * uv + 1.0) / S - 1.0  # (B, 42, 2) normalised x, y
        r = torch.arange(k, device=uv.device, dtype=uv.dtype) - (k - 1) / 2  # (k,) cells: -1, 0, 1
        dy, dx = torch.meshgrid(r, r, indexing="ij")  # row-major patch: (dy, dx)
        offsets = torch.stack([dx.reshape(-1) * 2.0 / w, dy.reshape(-1) * 2.0 / h], dim=-1)  # (k*k, 2)
        return centre[:, :, None, :] + offsets  # (B, 42, k*k, 2)

    def forward(self, fmap, pooled, joints_cam, focal, princpt):
        B, c, h, w = fmap.shape
        uv = self.project(joints_cam, focal, princpt)  # (B, 42, 2)                 Eq. 13
        grid = self.sampling_grid(uv, h, w)  # (B, 42, 9, 2)
        sub = fmap.index_select(1, self.chan_idx)  # F^_i (B, c~, h, w)
        patches = F.grid_sample(sub, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # (B, c~, 42, 9)
        patches = patches.permute(0, 2, 3, 1).reshape(B, NUM_JOINTS, -1)  # (B, 42, 9 c~): per joint, patch-major
        per_token = tokens_to_hands(patches, 2 if self.tokens == "hand" else NUM_JOINTS)  # (B, T, 9 J_t c~)
        T = per_token.shape[1]
        f_kpt = torch.cat([per_token, pooled[:, None, :].expand(B, T, c)], dim=-1)  # (B, T, out_dim)   Fig. 3
        return f_kpt, uv


class CrossAttentionLayer(nn.Module):
    """Eq. 17 as a pre-norm transformer decoder block: Q + MultiHead(LN(Q), LN(E''), LN(E'')), then FFN."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = _ffn(dim, ffn_dim, dropout)

    def forward(self, q: torch.Tensor, kv: torch.Tensor, need_weights: bool = False):
        kv = self.norm_kv(kv)
        a, w = self.attn(self.norm_q(q), kv, kv, need_weights=need_weights, average_attn_weights=False)  # w (B, H, T, T)
        q = q + a
        q = q + self.ffn(self.norm2(q))
        return q, w


class PoseQueryEnhancer(nn.Module):
    """PQE (Eq. 14-17): tokens E_i (B, T, d), previous pose, query features -> E_i^out (B, T, d).

    ``query_in``: f_kpt (B, T, q_in) from KGFF, or (``use_kgff=False``, Table 4) the stage's
    extractor feature f_i (B, c_i*). The query MLPs of Eq. 16 are one per hand. With joint tokens
    a hand's MLP serves its 21 joint queries (their input is mostly the hand's pooled feature;
    42 copies would only add weights) and a learned per-joint query embedding tells them apart.
    """

    def __init__(self, cfg: ModelConfig, query_dim: int, query_from_kgff: bool):
        super().__init__()
        T, d = cfg.num_joint_tokens, cfg.dim
        coords_per_token = 3 * NUM_JOINTS // T  # 63 (a hand's joints) or 3 (one joint)
        self.pose_mlp = nn.Sequential(nn.Linear(coords_per_token, d), nn.GELU(), nn.Linear(d, d))  # MLP of Eq. 14
        self.pos = nn.Parameter(torch.zeros(1, T, d))  # P_i of Eq. 14
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.self_attn = SelfAttentionLayer(d, cfg.num_heads, cfg.ffn_mult * d, cfg.dropout)  # Eq. 15
        # Eq. 16: per-token features (KGFF) -> (B, T, d); the shared f_i -> 2 hand queries (B, 2, d)
        self.query_mlp = TokenMLP(T if query_from_kgff else 2, query_dim, cfg.query_hidden, d,
                                  shared_input=not query_from_kgff, groups=2)
        if T != 2:
            self.query_pos = nn.Parameter(torch.zeros(1, T, d))  # tells the 21 queries of a hand apart
            nn.init.trunc_normal_(self.query_pos, std=0.02)
        else:
            self.query_pos = None
        self.cross_attn = CrossAttentionLayer(d, cfg.num_heads, cfg.ffn_mult * d, cfg.dropout)  # Eq. 17
        self.num_tokens, self.norm_mm = T, cfg.norm_mm

    def forward(self, E, p_prev, query_in, need_weights: bool = False):
        T = self.num_tokens
        pose = tokens_to_hands(p_prev / self.norm_mm, T)  # (B, T, 63 | 3) normalised
        E1 = E + self.pose_mlp(pose) + self.pos  # E'_i (B, T, d)                      Eq. 14
        E2, w_self = self.self_attn(E1, need_weights)  # E''_i (B, T, d)              Eq. 15
        Q = self.query_mlp(query_in)  # Q_i (B, T, d) or (B, 2, d)                    Eq. 16
        if self.query_pos is not None:
            Q = Q.repeat_interleave(T // Q.shape[1], dim=1) + self.query_pos  # (B, 42, d)
        E_out, w_cross = self.cross_attn(Q, E2, need_weights)  # E_i^out (B, T, d)    Eq. 17
        return E_out, w_self, w_cross


class RefineStage(nn.Module):
    """psi^(i), i >= 2: (F_i, f_i, f_i,1, p^(i-1), roots, intrinsics) -> p^(i) (B, 42, 3) mm, u^(i) (B, 42, 1)."""

    def __init__(self, cfg: ModelConfig, stage: int):
        super().__init__()
        level = cfg.stage_level(stage)
        i = level - 1
        T, d = cfg.num_joint_tokens, cfg.dim
        self.level, self.use_kgff, self.residual = level, cfg.use_kgff, cfg.refine_residual
        self.tokenizer = build_tokenizer(cfg.tokens, cfg.feat_len[i], d)  # the stage's own Eq. 6
        if cfg.use_kgff:
            self.kgff = KeypointGuidedFusion(
                cfg.channels[i], cfg.kpt_channels[i], cfg.image_size, cfg.patch_size, cfg.tokens,
                fixed_generator(cfg.seed, 2, stage),
            )
            query_dim = self.kgff.out_dim
        else:
            self.kgff = None
            query_dim = cfg.feat_len[i]
        self.pqe = PoseQueryEnhancer(cfg, query_dim, query_from_kgff=cfg.use_kgff)
        self.norm = nn.LayerNorm(d)
        self.head = PoseHead(T, d, cfg.head_hidden, cfg.norm_mm)
        if self.residual:
            self.zero_init_delta()

    @torch.no_grad()
    def zero_init_delta(self) -> None:
        """With ``refine_residual``: the head's coordinate outputs start near zero (weights x 0.01, bias 0), so the
        stage starts as the identity p^(i) = p^(i-1) and can only learn to move the pose from there."""
        fc2, n = self.head.mlp.fc2, 3 * self.head.per_token  # fc2.weight (G, hidden, 4 J_t): coordinates first
        fc2.weight[..., :n].mul_(0.01)
        fc2.bias[..., :n].zero_()

    def forward(self, fmap, f, pooled, p_prev, root, focal, princpt, need_weights: bool = False):
        """p_prev (B, 42, 3) root-relative mm; root (B, 2, 3) camera mm used for the projection."""
        E = self.tokenizer(f)  # E_i (B, T, d)
        uv = None
        if self.kgff is not None:
            joints_cam = p_prev + root.repeat_interleave(JOINTS_PER_HAND, dim=1)  # (B, 42, 3) camera mm
            query_in, uv = self.kgff(fmap, pooled, joints_cam, focal, princpt)  # (B, T, q_in)
        else:
            query_in = f  # Table 4 row 3: the original extractor feature
        E_out, w_self, w_cross = self.pqe(E, p_prev, query_in, need_weights)
        p, u = self.head(self.norm(E_out))  # (B, 42, 3), (B, 42, 1)
        if self.residual:
            p = p + p_prev
        return p, u, {"self": w_self, "cross": w_cross, "uv": uv}
