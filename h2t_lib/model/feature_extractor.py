"""Feature extractor (paper Sec. 3.1, Eq. 2-5).

For each backbone feature map F_i (B, c_i, h_i, w_i) the extractor builds one vector

    f_i = Concat(f_i,1, f_i,2, f_i,3)                                   (5)
    f_i,1 = Average-Pool(F_i)                      length c_i            (2)  global
    f_i,2 = Flatten(F~_i), F~_i = c~_i fixed channels of F_i   h_i w_i c~_i   (3)  local
    f_i,3 = Sample(Flatten(F_i))                   the rest, up to c_i*  (4)

The random channels and elements are drawn ONCE, from ``cfg.seed``, and kept as
persistent integer buffers: they are part of the state dict, so a saved and reloaded
model reads exactly the same feature elements. f_i,3 samples among the elements of the
channels that f_i,2 did not keep whole (no element appears twice in f_i).
"""
from __future__ import annotations

import torch
from torch import nn

from h2t_lib.model.config import ModelConfig
from h2t_lib.model.backbone import ResNetBackbone


def fixed_generator(seed: int, *tags: int) -> torch.Generator:
    """A CPU generator for one set of random indices, independent of the order modules are built in."""
    s = int(seed)
    for t in tags:
        s = (s * 1_000_003 + int(t) + 1) % (2**63 - 1)
    return torch.Generator(device="cpu").manual_seed(s)


class LevelFeature(nn.Module):
    """f_i of one backbone level (Eq. 2-5): (B, c, h, w) -> (B, c_i*) plus the pooled f_i,1 (B, c)."""

    def __init__(self, channels: int, size: int, sampled_channels: int, feat_len: int, generator: torch.Generator):
        super().__init__()
        c, hw = channels, size * size
        n3 = feat_len - c - hw * sampled_channels
        if n3 < 0:
            raise ValueError(f"feat_len={feat_len} < c + h w c~ = {c + hw * sampled_channels}")
        perm = torch.randperm(c, generator=generator, device="cpu")
        chan = perm[:sampled_channels].sort().values  # channels kept whole in f_i,2
        rest = perm[sampled_channels:].sort().values  # channels f_i,3 samples elements from
        # flat indices (channel-major, as Tensor.flatten lays out (c, h, w)) of the other channels' elements
        pool = (rest[:, None] * hw + torch.arange(hw, device="cpu")[None, :]).reshape(-1)
        pick = torch.randperm(pool.numel(), generator=generator, device="cpu")[:n3]
        self.register_buffer("chan_idx", chan)  # (c~,)   int64
        self.register_buffer("extra_idx", pool[pick].sort().values)  # (n3,)  int64
        self.channels, self.size, self.feat_len = c, size, feat_len

    def forward(self, fmap: torch.Tensor):
        B = fmap.shape[0]
        pooled = fmap.mean(dim=(2, 3))  # f_i,1 (B, c)                      Eq. 2
        local = fmap.index_select(1, self.chan_idx).reshape(B, -1)  # f_i,2 (B, h w c~)   Eq. 3
        extra = fmap.reshape(B, -1).index_select(1, self.extra_idx)  # f_i,3 (B, n3)   Eq. 4
        return torch.cat([pooled, local, extra], dim=1), pooled  # f_i (B, c_i*)       Eq. 5


class FeatureExtractor(nn.Module):
    """Backbone + one :class:`LevelFeature` per backbone level a stage reads.

    ``forward(image)`` returns a dict ``{level: (F, f, pooled)}`` with the map F (B, c, h, w),
    the vector f (B, c*) of Eq. 5 and f_i,1 = pooled (B, c), for the levels in ``cfg.used_levels()``.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.backbone = ResNetBackbone(cfg.backbone, cfg.backbone_weights, num_levels=max(cfg.used_levels()))
        self.levels = cfg.used_levels()
        self.samplers = nn.ModuleDict()
        for level in self.levels:
            i = level - 1
            self.samplers[f"layer{level}"] = LevelFeature(
                cfg.channels[i], cfg.level_size(level), cfg.feat_channels[i], cfg.feat_len[i],
                fixed_generator(cfg.seed, 1, level),
            )

    def forward(self, image: torch.Tensor | None = None, maps: list | None = None) -> dict:
        """``{level: (F, f, pooled)}`` of ``image`` (B, 3, S, S), or of the backbone's ``maps`` [F_layer1 ..
        F_layerK] when the caller has run the backbone itself (the model does, for its wrist head)."""
        if maps is None:
            maps = self.backbone(image)
        out = {}
        for level in self.levels:
            fmap = maps[level - 1]
            f, pooled = self.samplers[f"layer{level}"](fmap)
            out[level] = (fmap, f, pooled)
        return out
