"""Parameter counts per component, and the ``params`` command.

    python -m h2t_lib params --preset r50-d256                 # table, next to the paper's Table 5 figure
    python -m h2t_lib params --preset r34-d256 --tokens joint  # Table 6
    python -m h2t_lib params --preset paper --json             # {"total": n, "components": {...}}

Counts are of the model only (the RLE flows of the loss are not part of it), every parameter
once; big presets are built on PyTorch's "meta" device, so no memory is used and nothing runs.
"""
from __future__ import annotations

import dataclasses
from collections import OrderedDict

import torch
from torch import nn

#: components of a Handformer2T, in data-flow order, with what they implement
COMPONENTS = OrderedDict(
    [
        ("backbone", "torchvision ResNet trunk (Sec. 3.1)"),
        ("feature_extractor", "Eq. 2-5: pooling + fixed random samples (index buffers only)"),
        ("tokenizers", "Eq. 6: MLP^right, MLP^left of every stage"),
        ("coarse_attention", "Eq. 8-11: positional encodings P_1 + L MHSA layers"),
        ("pqe_self_attention", "Eq. 14-15: MLP(p^(i-1)), P_i, MHSA of every refiner stage"),
        ("kgff_queries", "Eq. 16: query MLPs on the keypoint-guided features (Fig. 3)"),
        ("pqe_cross_attention", "Eq. 17: cross attention of every refiner stage"),
        ("heads", "Eq. 12: MLP_out of every stage (p and u)"),
        ("root_head", "our addition: wrists in camera mm"),
        ("wrist_head", "our addition: stride-8 wrist heatmaps (wrist_head='heatmap')"),
        ("presence_head", "our addition: a hand-in-image logit per hand token (hand_presence=True)"),
    ]
)


def _component(name: str) -> str:
    """Component of a Handformer2T parameter, from its name in ``named_parameters()``."""
    if name.startswith("extractor.backbone."):
        return "backbone"
    if name.startswith("extractor."):
        return "feature_extractor"
    if name.startswith("root_head."):
        return "root_head"
    if name.startswith("wrist_head."):
        return "wrist_head"
    if name.startswith("presence_head."):
        return "presence_head"
    parts = name.split(".")
    if parts[0] == "stages":
        sub = parts[2]
        if sub == "tokenizer":
            return "tokenizers"
        if sub == "head":
            return "heads"
        if parts[1] == "0":  # coarse predictor: pos, layers, norm
            return "coarse_attention"
        if sub == "norm":  # final norm of a refiner stage's transformer
            return "pqe_cross_attention"
        if sub == "kgff":
            return "kgff_queries"
        if sub == "pqe":
            part = parts[3]
            if part == "query_mlp":
                return "kgff_queries"
            if part == "cross_attn":
                return "pqe_cross_attention"
            return "pqe_self_attention"
    return "other"


def count_parameters(model: nn.Module, trainable_only: bool = False) -> dict:
    """{"total": n, "components": {name: n}, "stages": [n per stage]} -- the components sum to the total.

    For a Handformer2T the components are those of :data:`COMPONENTS` (``wrist_head`` only when the model
    has one), plus the per-stage totals;
    for any other model (e.g. the heatmap baseline) they are its top-level children.
    """
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad or not trainable_only]
    total = sum(p.numel() for _, p in params)
    is_h2t = hasattr(model, "stages") and hasattr(model, "extractor")
    if is_h2t:
        optional = tuple(k for k in ("wrist_head", "presence_head") if getattr(model, k, None) is None)  # ours, off by default
        comps = OrderedDict((k, 0) for k in COMPONENTS if k not in optional)
        stages = [0] * len(model.stages)
        for n, p in params:
            c = _component(n)
            comps[c] = comps.get(c, 0) + p.numel()
            if n.startswith("stages."):
                stages[int(n.split(".")[1])] += p.numel()
        return {"total": total, "components": dict(comps), "stages": stages}
    comps = OrderedDict()
    for n, p in params:
        top = n.split(".")[0]
        comps[top] = comps.get(top, 0) + p.numel()
    return {"total": total, "components": dict(comps)}


def build_for_counting(cfg):
    """A Handformer2T on the meta device: real shapes, no memory, no initialisation cost."""
    from h2t_lib.model.handformer2t import Handformer2T

    with torch.device("meta"):
        return Handformer2T(cfg)


def preset_counts(preset: str, tokens: str = "hand") -> dict:
    """count_parameters of a preset (optionally with joint tokens), built on the meta device.

    Used in notebook 09.
    """
    from h2t_lib.model.config import ModelConfig

    cfg = ModelConfig.preset(preset)
    if tokens != cfg.tokens:
        cfg = dataclasses.replace(cfg, tokens=tokens)
    return count_parameters(build_for_counting(cfg))
