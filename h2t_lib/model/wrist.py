"""Our wrist head: the 2D wrists from a dense stride-8 map (not in the paper, which uses the ground-truth root).

KGFF projects the root-relative pose with the wrists (Eq. 13), so at inference the refiner is only as good
as the wrist it is given: measured on the model shipped before this head, a wrist 10 px off in the 128 px
crop cost the refiner ~10 mm, 20 px all of its gain. Two pooled-and-sampled hand tokens cannot say *where*
a wrist is; a map can.

    neck = conv3x3(conv3x3(up2(1x1(F_layer3)) + 1x1(F_layer2)))    (B, C, S/8, S/8)
    H    = 1x1(neck)                                               (B, 2, S/8, S/8): right, left wrist

The head is trained towards Gaussian heatmaps of the two wrists (:func:`h2t_lib.losses.gaussian_heatmaps`,
MSE) and, through :meth:`WristHeatmapHead.decode`, by the root term on the decoded pixel. Decoding is
local: the argmax cell, refined by a soft-argmax over its 5 x 5 neighbourhood (weights: the clamped
heatmap values), so a second blob elsewhere cannot pull the estimate away (a Gaussian target of one
cell's std decodes to within ~0.5 px of its centre away from the border; 3 x 3 would cut it and be
~1.5 px off). The right and left wrists are separate maps. The depth stays with
:class:`h2t_lib.model.coarse.RootHead` (its log-depth output).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cell_centres(n: int, stride: float, like: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates (n,) of the centres of n map cells of ``stride`` pixels: j s + (s - 1) / 2.

    Pixel centres sit at integer coordinates (pixel u covers [u - 0.5, u + 0.5]), so cell j, which covers
    pixels j s .. j s + s - 1, is centred at their mean.
    """
    return torch.arange(n, device=like.device, dtype=like.dtype) * stride + (stride - 1) / 2


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class WristHeatmapHead(nn.Module):
    """Heatmaps of the two wrists at stride 8 from backbone levels 2 and 3 (ours; see the module docstring).

    ``forward(maps)``: the backbone's maps ``[F_layer1, F_layer2, F_layer3, ...]`` ->
    (heatmaps (B, 2, S/8, S/8), neck (B, C, S/8, S/8)); the neck also feeds our training-only 42-joint
    heatmap term. ``decode(heatmaps)`` -> (B, 2, 2) crop pixels.
    """

    stride = 8
    window = 5  # cells on a side of the neighbourhood the decoding averages over

    def __init__(self, channels: tuple, image_size: int, width: int = 64):
        super().__init__()
        c2, c3 = channels[1], channels[2]
        self.lateral2 = nn.Conv2d(c2, width, 1)
        self.lateral3 = nn.Conv2d(c3, width, 1)
        self.neck = nn.Sequential(_conv_bn_relu(width, width), _conv_bn_relu(width, width))
        self.out = nn.Conv2d(width, 2, 1)
        nn.init.zeros_(self.out.bias)
        self.image_size = image_size

    def forward(self, maps: list):
        f2, f3 = maps[1], maps[2]  # (B, c2, S/8, S/8), (B, c3, S/16, S/16)
        x = self.lateral2(f2) + F.interpolate(self.lateral3(f3), size=f2.shape[-2:], mode="nearest")
        neck = self.neck(x)  # (B, C, S/8, S/8)
        return self.out(neck), neck  # (B, 2, S/8, S/8)

    def decode(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """(B, K, h, w) heatmaps -> (B, K, 2) crop pixels (u, v): argmax cell + local soft-argmax.

        The estimate is the mean of the 5 x 5 cell centres around the argmax weighted by the clamped
        (>= 0) heatmap values there; differentiable in those values. Near the border the window shrinks,
        per axis, to stay symmetric about the argmax cell (a window cut by the border would pull the
        estimate inwards by ~4 px), down to the argmax cell alone on the border row or column. Where all
        weights are <= 0 it is the argmax cell's centre. Computed in float32.
        """
        h = heatmaps.float()
        B, K, H, W = h.shape
        stride = self.image_size / W
        flat = h.reshape(B, K, H * W).argmax(-1)  # (B, K)
        row, col = flat // W, flat % W
        r = torch.arange(-(self.window // 2), self.window // 2 + 1, device=h.device)
        rows = row[..., None, None] + r[:, None]  # (B, K, n, 1)
        cols = col[..., None, None] + r[None, :]  # (B, K, 1, n)
        reach_r = torch.minimum(row, H - 1 - row)[..., None, None]  # cells the window may reach each way
        reach_c = torch.minimum(col, W - 1 - col)[..., None, None]
        inside = ((r[:, None].abs() <= reach_r) & (r[None, :].abs() <= reach_c)).reshape(B, K, -1)  # (B, K, n * n)
        idx = (rows.clamp(0, H - 1) * W + cols.clamp(0, W - 1)).reshape(B, K, -1)  # the neighbourhood
        weights = h.reshape(B, K, H * W).gather(-1, idx).clamp_min(0.0) * inside  # (B, K, n * n)
        xs, ys = cell_centres(W, stride, h), cell_centres(H, stride, h)
        px = torch.stack([xs[idx % W], ys[idx // W]], dim=-1)  # (B, K, n * n, 2) pixel centres of those cells
        total = weights.sum(-1, keepdim=True)  # (B, K, 1)
        local = (weights[..., None] * px).sum(-2) / total.clamp_min(1e-6)  # (B, K, 2)
        centre = torch.stack([xs[col], ys[row]], dim=-1)  # (B, K, 2)
        return torch.where(total > 1e-6, local, centre)
