"""Coarse predictor (paper Sec. 3.3, Eq. 7-12) and the pieces the refiner reuses.

    psi^(1): f_1 -> {p^(1), u^(1)}                                         (7)
    E_1,0 = E_1 + P_1                    learnable positional encoding       (8)
    E_1,l = MHSA(E_1,l-1),  l = 1..L                                         (9)
    MHSA(E) = MultiHead(E, E, E)                                            (10)
    MultiHead(Q, K, V) = Concat(head_1..head_H) W^O                         (11)
    {p_hand, u_hand} = MLP_out^hand(E_1,L^hand),  p = Concat, u = Concat     (12)

Each "MHSA layer" is a standard pre-norm transformer encoder layer built on
``nn.MultiheadAttention`` (x + MHA(LN(x)), then x + FFN(LN(x))), so its attention weights
can be returned for the notebooks. Heads predict coordinates in units of ``norm_mm``
(p in mm = output * norm_mm) and a positive scale u = sigmoid(.) + 1e-9 per joint, as RLE.
"""
from __future__ import annotations

import torch
from torch import nn

from h2t_lib.camera import pixel_to_cam
from h2t_lib.model.config import ModelConfig
from h2t_lib.model.tokenizer import TokenMLP, build_tokenizer
from h2t_lib.skeleton import JOINTS_PER_HAND, NUM_JOINTS


def _ffn(dim: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout))


class SelfAttentionLayer(nn.Module):
    """One MHSA layer (Eq. 9-11) as a pre-norm transformer encoder layer: (B, T, d) -> (B, T, d)."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = _ffn(dim, ffn_dim, dropout)

    def forward(self, x: torch.Tensor, need_weights: bool = False):
        h = self.norm1(x)
        a, w = self.attn(h, h, h, need_weights=need_weights, average_attn_weights=False)  # w (B, H, T, T)
        x = x + a
        x = x + self.ffn(self.norm2(x))
        return x, w


class PoseHead(nn.Module):
    """MLP_out of Eq. 12, one MLP per token: tokens (B, T, d) -> p (B, 42, 3) mm, u (B, 42, 1).

    Hand tokens (T = 2) each output 21 x 3 coordinates + 21 scales; joint tokens (T = 42) each 3 + 1.
    """

    def __init__(self, num_tokens: int, dim: int, hidden: int, norm_mm: float):
        super().__init__()
        self.per_token = NUM_JOINTS // num_tokens  # joints per token: 21 or 1
        self.mlp = TokenMLP(num_tokens, dim, hidden, self.per_token * 4, shared_input=False)
        self.norm_mm = norm_mm

    def forward(self, tokens: torch.Tensor):
        B, T, _ = tokens.shape
        out = self.mlp(tokens)  # (B, T, 4 J_t)
        coords = out[..., : 3 * self.per_token].reshape(B, NUM_JOINTS, 3)  # normalised units
        u = torch.sigmoid(out[..., 3 * self.per_token :]).reshape(B, NUM_JOINTS, 1) + 1e-9  # (B, 42, 1) > 0
        return coords * self.norm_mm, u  # p root-relative mm per hand


class CoarsePredictor(nn.Module):
    """psi^(1) (Eq. 7-12): f_1 (B, c_1*) -> p^(1) (B, 42, 3) mm, u^(1) (B, 42, 1), tokens E_1,L (B, T, d)."""

    def __init__(self, cfg: ModelConfig, in_dim: int):
        super().__init__()
        T, d = cfg.num_joint_tokens, cfg.dim
        self.tokenizer = build_tokenizer(cfg.tokens, in_dim, d)  # Eq. 6
        self.pos = nn.Parameter(torch.zeros(1, T, d))  # P_1 of Eq. 8
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.layers = nn.ModuleList(
            SelfAttentionLayer(d, cfg.num_heads, cfg.ffn_mult * d, cfg.dropout) for _ in range(cfg.num_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.head = PoseHead(T, d, cfg.head_hidden, cfg.norm_mm)  # Eq. 12

    def forward(self, f1: torch.Tensor, need_weights: bool = False):
        E = self.tokenizer(f1) + self.pos  # E_1,0 (B, T, d)          Eq. 6, 8
        weights = []
        for layer in self.layers:  # E_1,l = MHSA(E_1,l-1)           Eq. 9-11
            E, w = layer(E, need_weights)
            weights.append(w)
        E = self.norm(E)  # E_1,L (B, T, d)
        p, u = self.head(E)  # (B, 42, 3) mm, (B, 42, 1)               Eq. 12
        return p, u, E, weights


class RootHead(nn.Module):
    """Our addition: each hand's wrist in camera mm, from the coarse tokens (the paper uses the GT root).

    Parametrisation (scale-aware through the crop intrinsics): per hand the MLP outputs
    (a_u, a_v, a_z); the wrist's pixel is (u, v) = S (0.5 + a_u, 0.5 + a_v) in the crop and its depth
    z = mean(f_x, f_y) * root_extent_mm / S * exp(a_z), i.e. the depth at which a crop of S pixels
    spans ``root_extent_mm`` millimetres, rescaled. Back-projection gives (x, y, z).
    Input: tokens (B, T, d) (joint tokens are averaged per hand) -> root (B, 2, 3) mm, right then left.
    ``uv`` (B, 2, 2) crop pixels, when given (``wrist_head="heatmap"``: :class:`h2t_lib.model.wrist.WristHeatmapHead`),
    replaces the MLP's own pixel (its (a_u, a_v) outputs are then unused and get no gradient); the depth is
    still the MLP's. Computed in float32 (bf16 would round a pixel near 100 to 0.5 px).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.mlp = TokenMLP(2, cfg.dim, cfg.head_hidden, 3, shared_input=False)
        with torch.no_grad():  # start at the crop centre, at the nominal depth
            self.mlp.fc2.weight.mul_(0.01)
            self.mlp.fc2.bias.zero_()
        self.image_size, self.extent = cfg.image_size, cfg.root_extent_mm

    def forward(self, tokens: torch.Tensor, focal: torch.Tensor, princpt: torch.Tensor,
                uv: torch.Tensor | None = None) -> torch.Tensor:
        B, T, d = tokens.shape
        hand_tokens = tokens.reshape(B, 2, T // 2, d).mean(dim=2)  # (B, 2, d)
        a = self.mlp(hand_tokens).float()  # (B, 2, 3)
        S = self.image_size
        if uv is None:
            uv = S * (0.5 + a[..., :2])  # (B, 2, 2) pixels in the crop
        uv = uv.float()
        focal, princpt = focal.float(), princpt.float()
        z = focal.mean(dim=-1, keepdim=True) * (self.extent / S) * torch.exp(a[..., 2].clamp(-6.0, 6.0))  # (B, 2)
        return pixel_to_cam(uv, z, focal, princpt)  # (B, 2, 3) camera mm


def tokens_to_hands(x: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """(B, 42, k) per-joint values -> per-token inputs: (B, 2, 21 k) for hand tokens, unchanged for joint tokens."""
    if num_tokens == 2:
        return x.reshape(x.shape[0], 2, JOINTS_PER_HAND * x.shape[-1])
    return x

