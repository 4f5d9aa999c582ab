"""The full tiny Handformer2T, trained with the real loss, overfits a fixed batch of 8 rendered samples.

The classic "can it learn at all" check: every part (backbone, tokenizers, MHSA, KGFF + PQE,
heads, root head, RLE flows) sits in the graph, and both the loss and the MPJPE must fall far
below their starting values within a few dozen CPU steps (about 30 s on one core).
"""
import numpy as np
import torch

from h2t_lib.model.config import ModelConfig
from h2t_lib.data.synth import render_sample
from h2t_lib.losses import Handformer2TLoss, LossConfig
from h2t_lib.model import Handformer2T
from h2t_lib.skeleton import ROOT_INDEX, root_relative

STEPS = 60


def fixed_batch(size: int, n: int = 8) -> dict:
    """n rendered samples (full frames of ``size`` px, so the frame's intrinsics are the crop's)."""
    samples = [render_sample(i, size=size) for i in range(n)]

    def stack(key, dtype=torch.float32):
        return torch.tensor(np.stack([s[key] for s in samples]), dtype=dtype)

    return {
        "image": torch.stack([torch.from_numpy(s["image"]).permute(2, 0, 1).float() / 255 for s in samples]),
        "joints_cam": stack("joints_cam"),
        "joint_valid": stack("joint_valid"),
        "focal": stack("focal"),
        "princpt": stack("princpt"),
        "hand_type": [s["hand_type"] for s in samples],
    }


@torch.no_grad()
def mean_error_mm(p, batch) -> float:
    """Mean root-relative joint error over the valid joints (mm)."""
    gt, valid = root_relative(batch["joints_cam"]), batch["joint_valid"]
    return float(((p - gt).norm(dim=-1) * valid).sum() / valid.sum())


def test_tiny_model_overfits_a_fixed_batch():
    cfg = ModelConfig.preset("tiny")
    batch = fixed_batch(cfg.image_size)
    assert {"interacting"} & set(batch["hand_type"])  # the batch has two-hand samples
    torch.manual_seed(0)  # the flows' initial weights
    model = Handformer2T(cfg).train()
    criterion = Handformer2TLoss(cfg, LossConfig())
    opt = torch.optim.Adam(list(model.parameters()) + list(criterion.parameters()), lr=1e-3)
    root_cam = batch["joints_cam"][:, [ROOT_INDEX["right"], ROOT_INDEX["left"]]]  # GT wrists for KGFF, as in training
    history = []
    for _ in range(STEPS):
        out = model(batch["image"], batch["focal"], batch["princpt"], root_cam=root_cam)
        terms = criterion(out, batch)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in terms.items()} | {"mpjpe": [mean_error_mm(p, batch) for p in out["p"]]})
    first, last = history[0], history[-1]
    assert all(np.isfinite(h["total"]) for h in history)
    assert last["total"] < first["total"] - 100  # RLE is a log-likelihood: it falls by hundreds, below zero
    assert last["mmd"] < 0.2 * first["mmd"]
    assert last["root"] < 0.5 * first["root"]
    for stage in range(cfg.num_stages):  # every stage learns the batch (start: ~120 mm)
        assert last["mpjpe"][stage] < 0.25 * first["mpjpe"][stage], (stage, first["mpjpe"], last["mpjpe"])
