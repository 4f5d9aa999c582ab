"""Heatmaps against direct regression (the paper's Sec. 1-2), on one sample and in compute.

InterNet-style models (``h2t_lib.model.baseline``) output one **2.5D heatmap** per joint, a volume
of D depth bins x H x W pixels, and read a joint as its expected voxel (soft-argmax);
Handformer2T regresses the 3 coordinates of each joint directly from a token. Here:

* :func:`target_volume`: the volume a heatmap model is trained to put its mass in for one joint
  (a 3D Gaussian at the joint's voxel, the baseline's own grid via ``internet_targets``);
* :func:`heatmap_figure`: that volume seen from the camera (x-y) and from above (x-z), beside the
  image with the joint and the regression model's prediction of it;
* :func:`compute_split`: FLOPs of the shared backbone against what each model spends after it, and
  the number of output values per image (42 x D x H x W against 42 x 3).
"""
from __future__ import annotations

import numpy as np


def target_volume(sample: dict, cfg, joint: int, sigma_vox: float = 1.5) -> dict:
    """The 2.5D heatmap (D, H, W) an InterNet-style model with config ``cfg`` (an
    :class:`~h2t_lib.model.baseline.InterNetConfig`) should produce for ``joint`` of ``sample``:
    a Gaussian of ``sigma_vox`` voxels at the joint's voxel (x, y on the heatmap grid, z in depth bins
    around its wrist). Returns {"volume", "voxel" (3,) x, y, z, "inside": bool}.

    Used in notebook 02.
    """
    import torch

    from h2t_lib.model.baseline import internet_targets

    S = int(sample["image"].shape[-1])
    Hm = S // 32 * 2 ** cfg.num_deconv
    batch = {k: (torch.as_tensor(np.asarray(v))[None] if k in ("joints_img", "joints_cam", "joint_valid") else v)
             for k, v in sample.items()}
    batch["hand_type"] = [sample["hand_type"]]
    t = internet_targets(batch, cfg, S, Hm)
    vox = t["joints_grid"][0, joint].double().numpy()  # (3,) x, y, z
    z, y, x = np.meshgrid(np.arange(cfg.depth_bins), np.arange(Hm), np.arange(Hm), indexing="ij")
    vol = np.exp(-((x - vox[0]) ** 2 + (y - vox[1]) ** 2 + (z - vox[2]) ** 2) / (2 * sigma_vox ** 2))
    return {"volume": vol / vol.sum(), "voxel": vox, "inside": bool(t["joint_mask"][0, joint] > 0)}


def soft_argmax(volume: np.ndarray) -> np.ndarray:
    """Expected voxel (x, y, z) of a (D, H, W) probability volume: the baseline's read-out.

    Used in notebook 02.
    """
    import torch

    from h2t_lib.model.baseline import soft_argmax_3d

    logits = torch.log(torch.as_tensor(volume).clamp_min(1e-30))[None, None]
    return soft_argmax_3d(logits)[0, 0].double().numpy()


def heatmap_figure(sample: dict, target: dict, joint: int, regressed_uv=None, dpi: int = 80):
    """Image with the joint (and the regression model's prediction of it, ``regressed_uv`` (2,) crop
    pixels), then the 2.5D volume summed over depth (x-y, what the camera sees) and over rows (x-z,
    seen from above). Returns a matplotlib ``Figure``.

    Used in notebook 02.
    """
    from matplotlib.figure import Figure

    from h2t_lib import skeleton as sk
    from h2t_lib.viz.skeleton2d import _as_hwc_uint8

    vol, vox = target["volume"], target["voxel"]
    D, H, W = vol.shape
    fig = Figure(figsize=(9.6, 3.2), dpi=dpi)
    ax = fig.subplots(1, 3)
    im = _as_hwc_uint8(sample["image"])
    ax[0].imshow(im)
    uv = np.asarray(sample["joints_img"])[joint]
    ax[0].plot(*uv, "o", mfc="none", mec="w", ms=10, mew=2, label="ground truth")
    if regressed_uv is not None:
        ax[0].plot(*np.asarray(regressed_uv), "x", color="k", ms=9, mew=2, label="Handformer2T (regressed)")
    ax[0].legend(fontsize=7, loc="lower left")
    ax[0].set_title(f"{sk.JOINT_NAMES[joint]} in the {im.shape[0]} px crop", fontsize=8)
    ax[1].imshow(vol.sum(0), cmap="magma", extent=(-0.5, W - 0.5, H - 0.5, -0.5))
    ax[1].set_title(f"heatmap, summed over depth ({H} x {W} cells)", fontsize=8)
    ax[2].imshow(vol.sum(1), cmap="magma", aspect="auto", extent=(-0.5, W - 0.5, D - 0.5, -0.5))
    ax[2].set_title(f"summed over rows: x vs {D} depth bins", fontsize=8)
    ax[2].set_ylabel("depth bin (wrist at the middle)", fontsize=7)
    for a in ax[1:]:
        a.plot(vox[0], vox[1] if a is ax[1] else vox[2], "+", color="c", ms=10)
        a.tick_params(labelsize=7)
    ax[0].set_xticks([]), ax[0].set_yticks([])
    fig.tight_layout(pad=0.3)
    return fig


def _flops(fn, *args) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        fn(*args)
    return int(fc.get_total_flops())


def compute_split(h2t, internet) -> dict:
    """FLOPs per image of each model split into its backbone and what comes after, and the number of
    values each model outputs per image before its read-out.

    ``h2t``: a :class:`~h2t_lib.model.Handformer2T`; ``internet``: an
    :class:`~h2t_lib.model.baseline.InterNetBaseline`, both evaluated on a blank image of their own
    input size. Returns {"h2t": {...}, "internet": {...}} with "backbone", "after", "total" FLOPs and
    "outputs" (values per image).

    Used in notebook 02.
    """
    import torch

    res = {}
    S = h2t.cfg.image_size
    img = torch.zeros(1, 3, S, S)
    f = torch.full((1, 2), float(S))
    c = torch.full((1, 2), S / 2.0)
    root = torch.tensor([[[-60.0, 0.0, 500.0], [60.0, 0.0, 500.0]]])
    h2t.eval()
    total = _flops(lambda: h2t(img, f, c, root_cam=root))
    bb = _flops(lambda: h2t.extractor.backbone(img))
    out = h2t(img, f, c, root_cam=root)
    n_out = sum(p.numel() for p in out["p"][-1:]) + out["u"][-1].numel()
    res["h2t"] = {"backbone": bb, "after": total - bb, "total": total, "outputs": int(n_out), "image_size": S}
    Si = internet.cfg.image_size
    img = torch.zeros(1, 3, Si, Si)
    internet.eval()
    total = _flops(lambda: internet.heatmaps(img))
    bb = _flops(lambda: internet.backbone((img - internet.mean) / internet.std))
    logits = internet.heatmaps(img)[0]
    res["internet"] = {"backbone": bb, "after": total - bb, "total": total, "outputs": int(logits[0].numel()),
                       "image_size": Si}
    return res
