"""Drawing helpers (matplotlib). Each function is self-contained.

2D: :func:`draw_skeleton_2d` (a skeleton over an image, right hand in warm colours,
left hand in cool colours, one shade per finger) and :func:`sample_grid` (a figure
of images with optional skeleton overlays). Figures are built with
``matplotlib.figure.Figure`` (no pyplot state), and display in notebooks as usual.
"""
from __future__ import annotations

import numpy as np

from h2t_lib import skeleton as sk

__all__ = ["GT_COLOR", "GT_COLORS", "HAND_COLORS", "draw_gt_and_prediction", "draw_skeleton_2d", "joint_color",
           "sample_grid"]

#: per-finger colours (thumb, index, middle, ring, pinky): right hand warm, left hand cool
HAND_COLORS = {
    "right": ("#8b0000", "#d7301f", "#fc8d59", "#f4a300", "#ffd92f"),
    "left": ("#08306b", "#2171b5", "#4eb3d3", "#1b9e77", "#a6d96a"),
}


#: the ground truth's colour wherever it is drawn beside a prediction: one colour for every finger of both
#: hands, so that it never reads as a prediction (drawn in the finger colours)
GT_COLOR = "#e600e6"  # magenta: in neither hand's finger palette
GT_COLORS = {"right": (GT_COLOR,) * 5, "left": (GT_COLOR,) * 5}


def _finger_of(j: int) -> int:
    """Finger index (0 thumb .. 4 pinky) of a within-hand joint; the wrist counts as the thumb."""
    return min(j // 4, 4) if j != sk.WRIST else 0


def joint_color(j: int, colors=None) -> str:
    """Colour of joint ``j`` (0..41): its hand's shade for its finger (the wrist takes the thumb's)."""
    colors = HAND_COLORS if colors is None else colors
    return colors[sk.hand_of_joint(j)][_finger_of(j % sk.JOINTS_PER_HAND)]


def draw_skeleton_2d(ax, joints_img, joint_valid=None, colors=None, joint_vis=None, linewidth: float = 1.5,
                     markersize: float = 12.0, **kw):
    """Draw the 42-joint skeleton (pixels) on a matplotlib Axes.

    joints_img: (42, 2) (or (21, 2) for one right hand) pixels; joint_valid: (J,) 0/1,
    bones and joints with an invalid end are skipped; colors: {"right": 5 colours,
    "left": 5 colours} per finger (default :data:`HAND_COLORS`); joint_vis: (J,) 0/1,
    hidden joints are drawn hollow. Extra keyword arguments go to ``ax.plot``.
    """
    pts = np.asarray(getattr(joints_img, "numpy", lambda: joints_img)(), dtype=float).reshape(-1, 2)
    J = len(pts)
    valid = np.ones(J, bool) if joint_valid is None else np.asarray(joint_valid, dtype=float).reshape(-1)[:J] > 0
    vis = None if joint_vis is None else np.asarray(joint_vis, dtype=float).reshape(-1)[:J] > 0
    colors = HAND_COLORS if colors is None else colors
    for i, (p, c) in enumerate(sk.BONES):
        if c >= J or not (valid[p] and valid[c]):
            continue
        col = joint_color(c, colors)
        ax.plot(pts[[p, c], 0], pts[[p, c], 1], "-", color=col, linewidth=linewidth, **kw)
    for j in range(J):
        if not valid[j]:
            continue
        col = joint_color(j, colors)
        hidden = vis is not None and not vis[j]
        ax.scatter(pts[j, 0], pts[j, 1], s=markersize, c="none" if hidden else col, edgecolors=col,
                   linewidths=0.8, zorder=3)
    return ax


def draw_gt_and_prediction(ax, gt_px, pred_px, joint_valid=None):
    """A ground truth (:data:`GT_COLOR`, wide and half transparent, under) and a prediction (the finger
    colours), both (42, 2) pixels, on an Axes that already shows the image."""
    draw_skeleton_2d(ax, gt_px, joint_valid, colors=GT_COLORS, linewidth=3.0, markersize=4, alpha=0.6)
    draw_skeleton_2d(ax, pred_px, joint_valid, linewidth=1.4, markersize=5)
    return ax


def _as_hwc_uint8(image):
    """(H, W, 3) uint8 or float in [0, 1], or a (3, H, W) tensor/array -> (H, W, 3) array for imshow."""
    im = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if im.ndim == 3 and im.shape[0] == 3 and im.shape[-1] != 3:
        im = np.transpose(im, (1, 2, 0))
    if im.dtype != np.uint8:
        im = np.clip(im, 0.0, 1.0)
    return im


def sample_grid(samples, ncols: int = 4, path=None, overlay=True, titles=None, cell_inches: float = 2.6):
    """A figure of sample images with skeleton overlays.

    samples: sequence of dicts with "image" ((H, W, 3) uint8 or a (3, S, S) tensor in
    [0, 1]) and, for the overlay, "joints_img", "joint_valid" and optionally "joint_vis";
    overlay: bool or one bool per sample; titles: one string per sample (default: the
    hand type, and the occlusion when there is one). Saves to ``path`` when given.
    Returns the ``matplotlib.figure.Figure``.

    Used in notebooks 00, 01, 02 and 10.
    """
    from matplotlib.figure import Figure

    samples = list(samples)
    n = len(samples)
    if n == 0:
        raise ValueError("sample_grid needs at least one sample")
    ncols = max(1, min(int(ncols), n))
    nrows = (n + ncols - 1) // ncols
    overlay = [bool(overlay)] * n if np.isscalar(overlay) else [bool(o) for o in overlay]
    fig = Figure(figsize=(cell_inches * ncols, cell_inches * nrows + 0.1), dpi=100)
    for i, s in enumerate(samples):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        im = _as_hwc_uint8(s["image"])
        ax.imshow(im)
        if overlay[i] and "joints_img" in s:
            draw_skeleton_2d(ax, s["joints_img"], s.get("joint_valid"), joint_vis=s.get("joint_vis"))
        ax.set_xlim(-0.5, im.shape[1] - 0.5)
        ax.set_ylim(im.shape[0] - 0.5, -0.5)
        ax.set_xticks([]), ax.set_yticks([])
        if titles is not None:
            title = titles[i]
        else:
            title = str(s.get("hand_type", ""))
            occ = s.get("occlusion")
            occ = float(occ) if occ is not None else float("nan")
            if str(s.get("hand_type")) == "interacting" and np.isfinite(occ):
                title += f"  occ {occ:.2f}"
        ax.set_title(title, fontsize=8)
    fig.tight_layout(pad=0.3)
    if path is not None:
        fig.savefig(path)
    return fig
