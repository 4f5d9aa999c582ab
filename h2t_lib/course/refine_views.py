"""The refiner and the losses, made visible (notebooks 05 and 06).

Notebook 05 (keypoint-guided feature fusion and the pose query enhancer, Eq. 13-17):

* :func:`grid_to_cells` turns ``KeypointGuidedFusion.sampling_grid`` coordinates (normalised,
  ``align_corners=False``) back into pixels of the crop or cells of a feature map;
* :func:`kgff_patch_figure` draws the 3x3 patches on the image and on the feature map;
* :func:`stage_predictions` runs the model on one sample and keeps every stage's pose, its
  projection into the crop and its sigma; :func:`stage_overlay_figure` (2D) and
  :func:`stage_figure_3d` (3D, GT against one stage or all) draw them; :func:`stage_view` is
  the function behind the stage slider;
* :func:`pqe_attention_figure` shows the 2 x 2 self- and cross-attention maps of a refiner stage;
* :func:`stage_mpjpe_figure` plots the per-stage MPJPE of :func:`h2t_lib.engine.evaluate.evaluate`.

Notebook 06 (RLE, Eq. 18-19, and MMD, Eq. 20):

* :func:`laplace_density`, :func:`gaussian_density`: the reference densities (1D);
* :func:`rle_residuals`: the normalised residuals ``x_bar = (p - p^g) / u`` a model makes;
* :func:`flow_density_slices` / :func:`rle_density_figure`: the learned residual density of a
  stage's flow (alone, and times RLE's Laplace term) against Laplace and Gaussian;
* :func:`sigma_vs_error` / :func:`sigma_error_figure`: what ``u`` learns;
* :func:`mmd_kernel_figure`: the Gaussian kernel of Eq. 20 and its bandwidths;
* :func:`l1_pose_loss`, :func:`train_loss_variant`: a short training loop over library parts
  that trains the same model with RLE or with a plain L1 loss (the notebook's experiment).

Every function returns data or a figure (matplotlib ``Figure`` or plotly ``Figure``); nothing
here keeps state.
"""
from __future__ import annotations

import math

import numpy as np

from h2t_lib import skeleton as sk

__all__ = [
    "grid_to_cells",
    "kgff_patch_figure",
    "stage_predictions",
    "stage_overlay_figure",
    "stage_figure_3d",
    "stage_view",
    "pqe_attention_figure",
    "stage_mpjpe_figure",
    "laplace_density",
    "gaussian_density",
    "rle_residuals",
    "flow_density_slices",
    "rle_density_figure",
    "sigma_vs_error",
    "sigma_error_figure",
    "mmd_kernel_figure",
    "l1_pose_loss",
    "train_loss_variant",
]

#: the joints whose patches the KGFF figure draws by default: both wrists and the five fingertips
#: of each hand (within-hand indices 0, 4, 8, 12, 16 are the tips, 20 the wrist)
DEFAULT_PATCH_JOINTS = tuple(off + j for off in (0, 21) for j in (0, 4, 8, 12, 16, 20))

#: x offset (mm) of each hand in the root-relative 3D views, so the two hands do not overlap
HAND_SHIFT_MM = 80.0


def _np(x) -> np.ndarray:
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)


# =============================================================================
# Notebook 05: keypoint-guided feature fusion (Eq. 13, Fig. 3)
# =============================================================================
def grid_to_cells(grid, size):
    """``grid_sample`` coordinates (..., 2) in [-1, 1] (align_corners=False) -> cell coordinates (..., 2).

    ``size`` is the width and height in cells (one int for a square, or ``(w, h)``): pass the crop
    size S to get crop pixels, or the feature map's ``(w, h)`` to get feature-map cells. Cell k
    has its centre at k (pixel centres at integer coordinates), so this inverts
    ``g = (2 u + 1) / S - 1``.
    """
    w, h = (size, size) if np.isscalar(size) else size
    g = _np(grid)
    out = np.empty_like(g)
    out[..., 0] = ((g[..., 0] + 1.0) * w - 1.0) / 2.0
    out[..., 1] = ((g[..., 1] + 1.0) * h - 1.0) / 2.0
    return out


def kgff_patch_figure(image, fmap, uv, grid, joints=DEFAULT_PATCH_JOINTS, channel: int = 0, dpi: int = 80,
                      titles=None):
    """The 3x3 KGFF patches on the crop (left) and on one channel of the feature map (right).

    Args:
        image: (3, S, S) tensor in [0, 1] or (S, S, 3) array: the crop.
        fmap: (c~, h, w) the sub-sampled feature map F^_i (or any map whose ``channel`` to show).
        uv: (42, 2) projected pixels (Eq. 13).
        grid: (42, 9, 2) the normalised sampling points (``KeypointGuidedFusion.sampling_grid``).
        joints: which joints' patches to draw (default: wrists and fingertips).
        channel: the channel of ``fmap`` shown.

    Returns a matplotlib Figure with two axes; on each, one scatter of patch points per hand
    (right: red, left: blue) and crosses at the projected joints.

    Used in notebook 05.
    """
    from matplotlib.figure import Figure

    from h2t_lib.viz.skeleton2d import _as_hwc_uint8

    im = _as_hwc_uint8(image)
    S = im.shape[0]
    fm = _np(fmap)
    if fm.ndim != 3:
        raise ValueError(f"fmap must be (channels, h, w), got shape {fm.shape}")
    h, w = fm.shape[1:]
    uv, grid = _np(uv), _np(grid)
    joints = list(joints)
    pix = grid_to_cells(grid, S)  # (42, 9, 2) crop pixels
    cells = grid_to_cells(grid, (w, h))  # (42, 9, 2) feature cells
    uv_cells = (uv + 0.5) * np.array([w, h]) / S - 0.5  # projected joints in feature cells
    fig = Figure(figsize=(7.2, 3.6), dpi=dpi)
    titles = titles or (f"crop ({S}x{S} px)", f"feature map channel {channel} ({h}x{w} cells)")
    for k, (bg, pts, centres, n) in enumerate(((im, pix, uv, S), (fm[channel], cells, uv_cells, None))):
        ax = fig.add_subplot(1, 2, k + 1)
        if n is None:
            ax.imshow(bg, cmap="viridis", interpolation="nearest")
            ax.set_xticks(np.arange(w)), ax.set_yticks(np.arange(h))
            ax.tick_params(labelsize=6)
            ax.set_xlim(-0.5, w - 0.5), ax.set_ylim(h - 0.5, -0.5)
        else:
            ax.imshow(bg, interpolation="nearest")  # crisp pixels, and a small PNG
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_xlim(-0.5, S - 0.5), ax.set_ylim(S - 0.5, -0.5)
        for hand, colour in (("right", "#d7301f"), ("left", "#2171b5")):
            idx = [j for j in joints if sk.hand_of_joint(j) == hand]
            if not idx:
                continue
            p = pts[idx].reshape(-1, 2)
            ax.scatter(p[:, 0], p[:, 1], s=6, c=colour, label=f"{hand} patches")
            ax.scatter(centres[idx, 0], centres[idx, 1], s=40, c="white", marker="x", linewidths=1.0)
        ax.set_title(titles[k], fontsize=9)
    fig.axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout(pad=0.4)
    return fig


# =============================================================================
# Notebook 05: predictions stage by stage
# =============================================================================
def stage_predictions(model, sample: dict, root_source: str = "gt") -> dict:
    """Every stage's prediction for one sample (eval mode, no gradients), as numpy arrays.

    ``root_source``: "gt" hands the model the ground-truth wrists (as evaluation does), "pred"
    lets it use its own root head. Each stage's root-relative pose is projected into the crop
    with the same wrists KGFF used (:meth:`Handformer2T.projection_root`).

    Returns {"p": (N, 42, 3) root-relative mm, "sigma": (N, 42) mm, "uv": (N, 42, 2) crop pixels,
    "gt": (42, 3) root-relative mm, "gt_uv": (42, 2), "valid": (42,), "root": (2, 3) camera mm
    (the wrists used), "kgff_uv": (N - 1, 42, 2) the pixels each refiner stage sampled at,
    "errors": (N,) mean joint error (mm) of each stage over the valid joints, "image": (3, S, S)}.

    Used in notebook 05.
    """
    import torch

    from h2t_lib.camera import cam_to_pixel
    from h2t_lib.model.batch import gt_roots

    if root_source not in ("gt", "pred"):
        raise ValueError(f"root_source must be 'gt' or 'pred', got {root_source!r}")
    batch = {k: (v[None] if torch.is_tensor(v) else v) for k, v in sample.items()}
    root_cam = gt_roots(batch).float() if root_source == "gt" else None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(batch["image"].float(), batch["focal"].float(), batch["princpt"].float(), root_cam=root_cam,
                        return_attention=True)
            root = model.projection_root(out["root"], root_cam)  # (1, 2, 3) the wrists KGFF used
    finally:
        model.train(was_training)
    p = torch.stack([x[0].float() for x in out["p"]])  # (N, 42, 3)
    cam = p + root[0].repeat_interleave(sk.JOINTS_PER_HAND, dim=0)  # (N, 42, 3)
    uv = cam_to_pixel(cam, batch["focal"].float(), batch["princpt"].float())  # (N, 42, 2)
    gt = sk.root_relative(sample["joints_cam"].float()[None])[0]  # (42, 3)
    valid = _np(sample["joint_valid"]) > 0.5
    err = np.linalg.norm(_np(p) - _np(gt)[None], axis=-1)  # (N, 42)
    errors = err[:, valid].mean(1) if valid.any() else np.full(len(p), np.nan)
    return {
        "p": _np(p),
        "sigma": _np(torch.stack([u[0, :, 0] for u in out["u"]])) * model.cfg.norm_mm,
        "uv": _np(uv),
        "gt": _np(gt),
        "gt_uv": _np(sample["joints_img"]),
        "valid": valid.astype(np.float64),
        "root": _np(root[0]),
        "kgff_uv": np.stack([_np(x[0]) for x in out["kgff_uv"]]) if out["kgff_uv"] else np.zeros((0, 42, 2)),
        "errors": errors,
        "image": sample["image"],
    }


def _stage_label(k: int, n: int) -> str:
    """Name of stage k (0-based) of n."""
    return "stage 1 (coarse)" if k == 0 else f"stage {k + 1} (refined{', final' if k == n - 1 else ''})"


def stage_overlay_figure(preds: dict, dpi: int = 100, cell_inches: float = 2.8):
    """The ground truth and every stage's projected prediction over the crop, one panel each (the paper's
    Fig. 4 layout): the ground truth in :data:`h2t_lib.viz.GT_COLOR` (alone in the first panel, under each
    stage in the others), the stages in the finger colours.

    ``preds`` from :func:`stage_predictions`. Panel titles give each stage's mean joint error.
    Returns a matplotlib Figure with N + 1 axes.

    Used in notebook 05.
    """
    from matplotlib.figure import Figure

    from h2t_lib.viz.skeleton2d import GT_COLORS, _as_hwc_uint8, draw_gt_and_prediction, draw_skeleton_2d

    im = _as_hwc_uint8(preds["image"])
    S = im.shape[0]
    n = len(preds["p"])
    panels = [("ground truth", preds["gt_uv"])] + [
        (f"{_stage_label(k, n)}\n{preds['errors'][k]:.1f} mm", preds["uv"][k]) for k in range(n)]
    fig = Figure(figsize=(cell_inches * len(panels), cell_inches + 0.6), dpi=dpi)
    for i, (title, uv) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.imshow(im, interpolation="nearest")  # crisp pixels, and a small PNG
        if i == 0:
            draw_skeleton_2d(ax, uv, preds["valid"], colors=GT_COLORS, linewidth=1.6, markersize=6)
        else:
            draw_gt_and_prediction(ax, preds["gt_uv"], uv, preds["valid"])
        ax.set_xlim(-0.5, S - 0.5), ax.set_ylim(S - 0.5, -0.5)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(title, fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


def _side_by_side(joints) -> np.ndarray:
    """Root-relative (42, 3) -> the right hand moved to x = -80 mm, the left to +80 mm (as the image shows them)."""
    shift = np.repeat(np.array([[-HAND_SHIFT_MM, 0, 0], [HAND_SHIFT_MM, 0, 0]]), sk.JOINTS_PER_HAND, axis=0)
    return _np(joints) + shift


def stage_figure_3d(preds: dict, stages=None, height: int = 420):
    """A rotatable 3D view of the ground truth (solid) against one or more stages (dashed, dotted, ...).

    ``stages``: a 1-based stage number, a list of them, or None for all. Poses are root-relative
    per hand, the hands placed side by side. Legend entries carry each stage's mean error.

    Used in notebook 05.
    """
    from h2t_lib.viz.plot3d import hands_figure_3d

    n = len(preds["p"])
    if stages is None:
        stages = list(range(1, n + 1))
    elif np.isscalar(stages):
        stages = [int(stages)]
    for s in stages:
        if not 1 <= s <= n:
            raise ValueError(f"stage {s} out of range: the model has stages 1..{n}")
    poses = {"ground truth": _side_by_side(preds["gt"])}
    for s in stages:
        poses[f"{_stage_label(s - 1, n)}: {preds['errors'][s - 1]:.1f} mm"] = _side_by_side(preds["p"][s - 1])
    title = "ground truth vs " + (f"stage {stages[0]}" if len(stages) == 1 else "every stage")
    return hands_figure_3d(poses, valid=preds["valid"], title=title, height=height)


def stage_view(preds: dict, stage: int = 1, height: int = 420):
    """What the stage slider shows: the ground truth against stage ``stage`` (1-based) in 3D.

    Used in notebook 05.
    """
    return stage_figure_3d(preds, stages=int(stage), height=height)


def pqe_attention_figure(w_self, w_cross, dpi: int = 80):
    """The PQE's attention maps of one sample: self-attention (Eq. 15) and cross-attention (Eq. 17).

    w_self, w_cross: (H, T, T) (or (1, H, T, T)) weights, rows = queries, columns = keys, tokens
    in the order right hand, left hand. Returns a Figure with 2 rows x H heatmaps, each with its
    numbers written in.

    Used in notebook 05.
    """
    from matplotlib.figure import Figure

    ws, wc = _np(w_self), _np(w_cross)
    ws, wc = (ws[0] if ws.ndim == 4 else ws), (wc[0] if wc.ndim == 4 else wc)
    if ws.ndim != 3 or wc.shape != ws.shape:
        raise ValueError(f"expected two (H, T, T) weight tensors of the same shape, got {ws.shape} and {wc.shape}")
    H, T, _ = ws.shape
    labels = ["right", "left"] if T == 2 else [str(t) for t in range(T)]
    fig = Figure(figsize=(1.6 * H + 0.8, 3.8), dpi=dpi)
    for r, (name, w) in enumerate((("self (Eq. 15)", ws), ("cross (Eq. 17)", wc))):
        for h in range(H):
            ax = fig.add_subplot(2, H, r * H + h + 1)
            ax.imshow(w[h], vmin=0, vmax=1, cmap="magma")
            if T <= 4:
                for i in range(T):
                    for j in range(T):
                        ax.text(j, i, f"{w[h, i, j]:.2f}", ha="center", va="center", fontsize=7,
                                color="white" if w[h, i, j] < 0.6 else "black")
            ax.set_xticks(range(T)), ax.set_yticks(range(T))
            ax.set_xticklabels(labels if T <= 4 else [], fontsize=6)
            ax.set_yticklabels(labels if T <= 4 else [], fontsize=6)
            if r == 0:
                ax.set_title(f"head {h}", fontsize=8)
            if h == 0:
                ax.set_ylabel(f"{name}\nquery", fontsize=7)
    fig.suptitle("rows: queries, columns: keys (tokens right, left)", fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


def stage_mpjpe_figure(res: dict, dpi: int = 80):
    """Bars of the MPJPE (single-hand, interacting, all) of every stage; ``res`` from
    :func:`h2t_lib.engine.evaluate.evaluate`. The mean-pose reference is drawn as a dashed line.

    Used in notebook 05.
    """
    from matplotlib.figure import Figure

    n = res["num_stages"]
    rows = res["rows"][:n]
    groups = ("single", "interacting", "all")
    fig = Figure(figsize=(6.4, 2.8), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(n)
    for g, group in enumerate(groups):
        vals = [r[group] if r[group] is not None else np.nan for r in rows]
        ax.bar(x + (g - 1) * 0.27, vals, width=0.27, label=f"MPJPE-{group[0].upper()}" if group != "all" else "MPJPE")
    ref = [r for r in res["rows"][n:] if "mean" in r["name"]]
    if ref:
        ax.axhline(ref[0]["all"], color="k", ls="--", lw=1, label="mean-pose reference")
    ax.set_xticks(x)
    ax.set_xticklabels([f"stage {k + 1}" for k in range(n)], fontsize=8)
    ax.set_ylabel("mm", fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # beside the bars
    fig.tight_layout(pad=0.4)
    return fig


# =============================================================================
# Notebook 06: RLE (Eq. 18-19)
# =============================================================================
def laplace_density(x, b: float = 1.0):
    """Laplace density with location 0 and scale b: exp(-|x| / b) / (2 b).

    Used in notebook 06.
    """
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.abs(x) / b) / (2.0 * b)


def gaussian_density(x, sigma: float = 1.0):
    """Normal density with mean 0 and standard deviation sigma.

    Used in notebook 06.
    """
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2.0 * math.pi))


def rle_residuals(p, sigma, gt, valid, norm_mm: float = 200.0) -> np.ndarray:
    """The normalised residuals RLE models, x_bar = (p - p^g) / u, of the valid joints.

    p, gt: (M, 42, 3) root-relative mm; sigma: (M, 42) or (M, 42, 1) in **mm** (u * norm_mm, as
    :func:`h2t_lib.engine.evaluate.predict_dataset` gives it; ``norm_mm`` cancels out); valid: (M, 42).
    Returns (K, 3), one row per valid joint. (Same as ``(p/norm - gt/norm) / u`` in the loss.)

    Used in notebook 06.
    """
    p, gt, s = _np(p), _np(gt), _np(sigma)
    s = s[..., None] if s.ndim == 2 else s
    v = _np(valid) > 0.5
    return ((p - gt) / np.maximum(s, 1e-9))[v]


def flow_density_slices(flow, t, axis: int = 0) -> dict:
    """1D slices through the origin of a stage's residual densities (x_bar_c = t, the others 0).

    Returns {"t": t, "flow": G_phi, "rle": L * G_phi (RLE's full residual density: the flow times
    the Laplace term ``a exp(-|x|/sqrt 2)`` per coordinate), "laplace": Laplace of scale sqrt(2),
    "gaussian": N(0, 1)}, each slice normalised to integrate to 1 over ``t`` (the trapezoid rule)
    so the shapes compare: a conditional density along one axis.
    """
    import torch

    t = np.asarray(t, dtype=np.float64)
    x = torch.zeros(len(t), flow.dim, dtype=flow.masks.dtype, device=flow.masks.device)
    x[:, axis] = torch.as_tensor(t, dtype=x.dtype)
    with torch.no_grad():
        log_g = flow.log_prob(x).double().cpu().numpy()  # (n,)
    log_l = -np.abs(t) / math.sqrt(2.0)  # the Laplace term (constants drop out in the normalisation)

    def norm(logd):
        d = np.exp(logd - logd.max())
        return d / np.trapezoid(d, t)

    return {"t": t, "flow": norm(log_g), "rle": norm(log_g + log_l),
            "laplace": norm(np.log(laplace_density(t, math.sqrt(2.0)))),
            "gaussian": norm(np.log(gaussian_density(t)))}


def rle_density_figure(flows, residuals=None, t=None, dpi: int = 80, log: bool = True):
    """One panel per stage: the learned residual density (flow alone and flow x Laplace) against
    Laplace and Gaussian, along x_bar's first axis, with a histogram of the model's residuals.

    flows: a list of :class:`h2t_lib.losses.RealNVP` (``Handformer2TLoss.flows``);
    residuals: optional list (one per stage) of (K, 3) residuals from :func:`rle_residuals`
    (all three coordinates pooled in the histogram). ``log``: log-scale y axis (shows the tails).

    Used in notebook 06.
    """
    from matplotlib.figure import Figure

    t = np.linspace(-6, 6, 241) if t is None else np.asarray(t, dtype=np.float64)
    n = len(flows)
    fig = Figure(figsize=(3.2 * n, 2.8), dpi=dpi)
    for k, flow in enumerate(flows):
        ax = fig.add_subplot(1, n, k + 1)
        if residuals is not None:
            r = np.asarray(residuals[k]).reshape(-1)
            r = r[np.abs(r) <= t.max()]
            ax.hist(r, bins=60, range=(t.min(), t.max()), density=True, color="0.8", label="model's x_bar")
        d = flow_density_slices(flow, t)
        ax.plot(t, d["rle"], "k-", lw=1.8, label="flow x Laplace (RLE)")
        ax.plot(t, d["flow"], "-", color="tab:purple", lw=1.2, label="flow G_phi alone")
        ax.plot(t, d["laplace"], "--", color="tab:red", lw=1, label="Laplace")
        ax.plot(t, d["gaussian"], ":", color="tab:blue", lw=1.2, label="Gaussian")
        if log:
            ax.set_yscale("log")
            ax.set_ylim(1e-4, 2)
        ax.set_title(_stage_label(k, n), fontsize=8)
        ax.set_xlabel("x_bar (first coordinate)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.axes[0].legend(fontsize=6, loc="lower center")
    fig.tight_layout(pad=0.4)
    return fig


def sigma_vs_error(preds: dict, stage: int = -1) -> tuple:
    """(sigma (K,) mm, error (K,) mm): a stage's predicted scale and actual error of every valid joint.

    ``preds`` from :func:`h2t_lib.engine.evaluate.predict_dataset`; the error is the mean absolute
    error per coordinate (what a Laplace scale measures), ``|p - p^g|_1 / 3``, root-relative.
    Wrists (error 0 by construction) are left out.

    Used in notebook 06.
    """
    p, s = np.asarray(preds["p"][stage]), np.asarray(preds["sigma"][stage])
    gt = sk.root_relative(np.asarray(preds["joints_cam"], dtype=np.float64))
    v = np.asarray(preds["joint_valid"]) > 0.5
    v[:, sk.ROOTS] = False
    err = np.abs(p - gt).mean(-1)  # (M, 42)
    return s[v].astype(np.float64), err[v]


def sigma_error_figure(sigma, error, bins: int = 8, dpi: int = 80):
    """Scatter of a joint's predicted sigma against its error, with the mean error per sigma bin
    (quantile bins) and the line RLE aims at, error = sqrt(2) sigma (see :func:`h2t_lib.losses.rle_loss`).

    Used in notebook 06.
    """
    from matplotlib.figure import Figure

    sigma, error = np.asarray(sigma, dtype=np.float64), np.asarray(error, dtype=np.float64)
    fig = Figure(figsize=(4.2, 3.2), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(sigma, error, s=3, alpha=0.25, color="tab:gray", label="joints")
    edges = np.unique(np.quantile(sigma, np.linspace(0, 1, bins + 1)))
    if len(edges) > 1:
        which = np.clip(np.searchsorted(edges, sigma, side="right") - 1, 0, len(edges) - 2)
        centres = np.array([sigma[which == b].mean() for b in range(len(edges) - 1) if (which == b).any()])
        means = np.array([error[which == b].mean() for b in range(len(edges) - 1) if (which == b).any()])
        ax.plot(centres, means, "o-", color="tab:red", label="mean error per sigma bin")
    s = np.linspace(0, sigma.max() * 1.05, 20)
    ax.plot(s, math.sqrt(2.0) * s, "k--", lw=1, label="error = sqrt(2) sigma")
    ax.set_xlabel("predicted sigma = u * norm_mm (mm)", fontsize=8)
    ax.set_ylabel("mean |error| per coordinate (mm)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout(pad=0.4)
    return fig


# =============================================================================
# Notebook 06: MMD (Eq. 20)
# =============================================================================
def mmd_kernel_figure(bandwidths=None, max_dist: float = 1.0, dpi: int = 80):
    """The Gaussian kernel of Eq. 20 as a function of the per-coordinate RMS distance, one curve per
    bandwidth and their sum (what :func:`h2t_lib.losses.gaussian_kernel` uses).

    Used in notebook 06.
    """
    from matplotlib.figure import Figure

    import torch

    from h2t_lib.losses import DEFAULT_MMD_BANDWIDTHS, gaussian_kernel

    bandwidths = DEFAULT_MMD_BANDWIDTHS if bandwidths is None else tuple(bandwidths)
    r = np.linspace(0, max_dist, 200)  # per-coordinate RMS distance, normalised units
    a, b = torch.zeros(1, 1, dtype=torch.float64), torch.as_tensor(r, dtype=torch.float64)[:, None]  # 1-D points

    def kernel(hs):  # the loss's own kernel between the origin and points at distance r
        return gaussian_kernel(a, b, bandwidths=hs)[0].numpy()

    fig = Figure(figsize=(4.2, 2.8), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    for h in bandwidths:
        ax.plot(r, kernel((h,)), lw=1, label=f"h = {h:g}")
    ax.plot(r, kernel(bandwidths), "k-", lw=2, label="sum (the kernel)")
    ax.set_xlabel("RMS distance per coordinate (units of norm_mm)", fontsize=8)
    ax.set_ylabel("k", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6)
    fig.tight_layout(pad=0.4)
    return fig


# =============================================================================
# Notebook 06: L1 against RLE, a short training loop over library parts
# =============================================================================
def l1_pose_loss(out: dict, batch: dict, scale_mm: float = 200.0):
    """Notebook 06: the plain regression baseline, :func:`h2t_lib.losses.l1_pose_loss` summed over the
    stages: |p^(i) - p^g| (normalised units) over the valid joints' coordinates, divided by the batch size."""
    from h2t_lib import losses

    gt = sk.root_relative(batch["joints_cam"].float())  # (B, 42, 3)
    return sum(losses.l1_pose_loss(p, gt, batch["joint_valid"], scale_mm) for p in out["p"])


def train_loss_variant(model_cfg, dataset, loss: str = "rle", steps: int = 40, batch_size: int = 8,
                       lr: float = 1e-3, seed: int = 0, use_mmd: bool = False, log_every: int = 5):
    """Train a fresh model of ``model_cfg`` for ``steps`` Adam steps with ``loss`` = "rle" or "l1".

    Both variants share everything else: the model, its seed, the data order, the optimizer, our
    wrist term (``Handformer2TLoss``'s ``root``) and the MMD setting. "rle" minimises
    ``Handformer2TLoss`` (Eq. 19 (+ Eq. 20 with ``use_mmd``) + root); "l1" replaces the RLE
    term by :func:`l1_pose_loss` (u then receives no gradient).
    The KGFF projection uses the ground-truth wrists, as in ``h2t_lib.engine.train``.

    Returns (model in eval mode, criterion, history: list of {"step", "loss", "rle", "l1"}
    averaged over ``log_every`` steps).

    Used in notebook 06.
    """
    import torch
    from torch.utils.data import DataLoader

    from h2t_lib.losses import Handformer2TLoss, LossConfig
    from h2t_lib.model import Handformer2T
    from h2t_lib.model.batch import forward
    from h2t_lib.utils import seed_everything

    if loss not in ("rle", "l1"):
        raise ValueError(f"loss must be 'rle' or 'l1', got {loss!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    seed_everything(seed)
    model = Handformer2T(model_cfg)
    criterion = Handformer2TLoss(model_cfg, LossConfig(use_mmd=use_mmd))
    params = list(model.parameters()) + (list(criterion.parameters()) if loss == "rle" else [])
    opt = torch.optim.Adam(params, lr=lr)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=len(dataset) >= 2 * batch_size,
                        generator=torch.Generator().manual_seed(seed), num_workers=0)
    model.train()
    history, acc, step = [], {"loss": 0.0, "rle": 0.0, "l1": 0.0}, 0
    while step < steps:
        for batch in loader:
            out = forward(model, batch)
            terms = criterion(out, batch)
            l1 = l1_pose_loss(out, batch, criterion.scale_mm)
            reg = terms["rle"] if loss == "rle" else l1
            total = reg + criterion.loss_cfg.root_weight * terms["root"]
            if use_mmd:
                total = total + criterion.loss_cfg.mmd_weight * terms["mmd"]
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            step += 1
            for k, v in (("loss", total), ("rle", terms["rle"]), ("l1", l1)):
                acc[k] += float(v.detach())
            if step % log_every == 0 or step == steps:
                n = log_every if step % log_every == 0 else step % log_every
                history.append({"step": step, **{k: v / n for k, v in acc.items()}})
                acc = {k: 0.0 for k in acc}
            if step >= steps:
                break
    model.eval()
    return model, criterion, history
