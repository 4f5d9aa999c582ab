"""Data views of notebooks 00 (introduction) and 01 (synthetic data).

Plain functions that return a figure or the data a widget shows; the notebooks only
wire them to ``ipywidgets`` and the tests call them directly.

* The 42-joint convention: :func:`joint_convention_figure`.
* Browsing a dataset: :func:`browse_indices`, :func:`browse_index`, :func:`browse_figure`.
* Why the task is hard: :func:`flip_only_config` (a right hand mirrored is a left hand),
  :func:`depth_ambiguity_figure` (a bigger hand further away projects to the same pixels).
* The kinematic hand: :func:`hand_as_42`, :func:`flexion_sweep_figure`.
* A posable two-hand scene, the function behind the sliders of notebook 01:
  :func:`posed_pair_scene`, :func:`render_posed_pair`, :func:`posed_pair_figure`,
  :func:`image_and_3d_figure`.
* The renderer step by step: :func:`render_steps`, :func:`render_steps_figure`.
* The InterHand2.6M files and the augmentation: :func:`annotation_record`, :func:`short_json`,
  :func:`augmented_crop`, :func:`augmentation_figure`.

2D figures are matplotlib ``Figure`` objects (no pyplot state, modest dpi); 3D figures are plotly.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from h2t_lib import camera as camlib
from h2t_lib import skeleton as sk
from h2t_lib.viz.skeleton2d import HAND_COLORS, draw_skeleton_2d

__all__ = [
    "joint_convention_figure",
    "browse_indices",
    "browse_index",
    "browse_figure",
    "flip_only_config",
    "depth_ambiguity_figure",
    "hand_as_42",
    "flexion_sweep_figure",
    "finger_flexion",
    "PAIR_DEPTH_MM",
    "PAIR_FOCAL_FACTOR",
    "pair_camera",
    "posed_pair_scene",
    "render_posed_pair",
    "image_and_3d_figure",
    "posed_pair_figure",
    "render_steps",
    "render_steps_figure",
    "annotation_record",
    "short_json",
    "augmented_crop",
    "augmentation_figure",
]

#: how the hands face the camera in the static views: fingers up in the image, back of the hand
#: towards the camera (as you see your own hands): hand-frame y -> image up, z (dorsal) -> camera
_FINGERS_UP_BACK_TO_CAMERA = ((0.0, -1.0, 0.0), (0.0, 0.0, -1.0))


def _np(x) -> np.ndarray:
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)


def _figure(figsize, dpi: int = 80):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=dpi)


# --------------------------------------------------------------------------- #
# The 42-joint convention
# --------------------------------------------------------------------------- #
def _spread_hand(side: str) -> np.ndarray:
    """(21, 3) joints of a flat hand with spread fingers, fingers up, back towards the camera."""
    from h2t_lib.data import hand_model as hm

    pose = hm.HandPose(abduction=np.array([30.0, 12.0, 0.0, 10.0, 20.0]))
    R = hm.frame_from_directions(*_FINGERS_UP_BACK_TO_CAMERA)
    return hm.hand_joints(pose.with_rotation_matrix(R), hm.HandShape.average(), side)


def joint_convention_figure(dpi: int = 80):
    """The 42-joint order of :mod:`h2t_lib.skeleton` on two flat hands (back towards the viewer).

    Left panel: the left hand, joints 21..41; right panel: the right hand, joints 0..20 (as you see
    your own hands). Every joint carries its index; tips and wrists also their names. Returns a
    matplotlib ``Figure`` with two axes.

    Used in notebook 00.
    """
    fig = _figure((7.6, 4.4), dpi)
    for k, side in enumerate(("left", "right")):
        ax = fig.add_subplot(1, 2, k + 1)
        j21 = _spread_hand(side)
        uv = np.zeros((sk.NUM_JOINTS, 2))
        valid = np.zeros(sk.NUM_JOINTS)
        sl = sk.HAND_SLICE[side]
        uv[sl], valid[sl] = j21[:, :2], 1.0  # orthographic view: x right, y down
        draw_skeleton_2d(ax, uv, valid, markersize=30, linewidth=2.5)
        off = sk.HAND_OFFSET[side]
        for j in range(sk.JOINTS_PER_HAND):
            name = sk.HAND_JOINT_NAMES[j]
            label = f"{off + j}"
            if name.endswith("4") or name == "wrist":
                label += f" {name}"
            ax.annotate(label, uv[off + j], xytext=(4, 3), textcoords="offset points", fontsize=7)
        ax.set_title(f"{side} hand: joints {off}..{off + 20} (root {sk.ROOT_INDEX[side]})", fontsize=9)
        ax.set_aspect("equal")
        ax.invert_yaxis()
        ax.set_xticks([]), ax.set_yticks([])
        lo, hi = uv[sl].min(0), uv[sl].max(0)
        ax.set_xlim(lo[0] - 25, hi[0] + 45)
        ax.set_ylim(hi[1] + 15, lo[1] - 15)
    fig.tight_layout(pad=0.4)
    return fig


# --------------------------------------------------------------------------- #
# Browsing a dataset (widget of notebook 00)
# --------------------------------------------------------------------------- #
def browse_indices(hand_types, hand_type: str = "all") -> np.ndarray:
    """Dataset indices whose hand type is ``hand_type`` ("all" keeps every index), in order.

    hand_types: the per-sample hand types, e.g. ``dataset.hand_types``.

    Used in notebook 00.
    """
    ht = np.asarray(hand_types)
    if hand_type == "all":
        return np.arange(len(ht))
    if hand_type not in sk.HAND_TYPES:
        raise ValueError(f"hand_type must be 'all' or one of {sk.HAND_TYPES}, got {hand_type!r}")
    return np.flatnonzero(ht == hand_type)


def browse_index(hand_types, hand_type: str = "all", position: int = 0) -> int:
    """The dataset index shown at slider ``position`` among the samples of ``hand_type``.

    The position is clipped into range (a slider left further right than the filtered list is
    long shows its last sample). Raises ValueError when no sample has that hand type.
    """
    idx = browse_indices(hand_types, hand_type)
    if idx.size == 0:
        raise ValueError(f"no sample of hand type {hand_type!r}")
    return int(idx[int(np.clip(position, 0, idx.size - 1))])


def browse_figure(dataset, hand_type: str = "all", position: int = 0, height: int = 360):
    """The sample at ``position`` among the ``hand_type`` samples of ``dataset``: image + 3D skeleton
    (:func:`h2t_lib.viz.sample_figure`), titled with its index, hand type and occlusion.

    Used in notebook 00.
    """
    from h2t_lib.viz.plot3d import sample_figure

    i = browse_index(dataset.hand_types, hand_type, position)
    s = dataset[i]
    occ = float(s["occlusion"])
    title = f"sample {i}: {s['hand_type']}" + (f", occlusion {occ:.2f}" if s["hand_type"] == "interacting" else "")
    return sample_figure(s, title=title, height=height)


# --------------------------------------------------------------------------- #
# Why the task is hard
# --------------------------------------------------------------------------- #
def flip_only_config():
    """An :class:`~h2t_lib.data.transforms.AugmentConfig` that always flips and does nothing else:
    ``course.dataset("test", augment=True, augment_config=flip_only_config())`` is the mirrored test set
    (right and left swapped, so a right hand becomes a left one).

    Used in notebook 00.
    """
    from h2t_lib.data.transforms import AugmentConfig

    return AugmentConfig(scale_factor=0.0, rot_factor=0.0, rot_prob=0.0, trans_factor=0.0, flip_prob=1.0,
                         color_factor=0.0)


def depth_ambiguity_figure(joints_cam, valid=None, scales=(0.75, 1.0, 1.3), height: int = 420):
    """The same pose scaled about the camera centre by each of ``scales`` (a bigger hand further away,
    a smaller one nearer): all project to the same pixels. Draws the skeletons and the viewing rays
    through the fingertips, camera at the origin (plotly).

    Used in notebook 00.
    """
    import plotly.graph_objects as go

    from h2t_lib.viz.plot3d import hands_figure_3d

    j = _np(joints_cam)
    ok = np.ones(sk.NUM_JOINTS, bool) if valid is None else _np(valid).reshape(-1) > 0
    fig = hands_figure_3d({f"x {s:g}": j * s for s in scales}, valid=ok, height=height)
    tips = [i for i in range(sk.NUM_JOINTS) if ok[i] and sk.JOINT_NAMES[i].endswith("4")]
    far = j[tips] * max(scales) * 1.05
    xs, ys, zs = [], [], []
    for p in far:
        xs += [0.0, p[0], None]
        ys += [0.0, p[1], None]
        zs += [0.0, p[2], None]
    fig.add_trace(go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", name="viewing rays",
                               line=dict(color="gray", width=1), hoverinfo="skip"))
    fig.add_trace(go.Scatter3d(x=[0], y=[0], z=[0], mode="markers", name="camera",
                               marker=dict(size=4, color="black", symbol="diamond")))
    # seen from the side (x right of the camera, y down stays down): from the camera itself the three
    # poses coincide, which is the point but shows nothing; rotate to the camera's view to see that
    fig.update_layout(scene_camera=dict(up=dict(x=0, y=-1, z=0), eye=dict(x=2.0, y=-0.5, z=-0.4)))
    return fig


# --------------------------------------------------------------------------- #
# The kinematic hand
# --------------------------------------------------------------------------- #
def hand_as_42(joints21, side: str = "right"):
    """Put one hand's (21, 3) joints into the 42-joint array. Returns (joints (42, 3), valid (42,)),
    the other hand's slots zero and invalid (so the 3D views skip it)."""
    j = np.zeros((sk.NUM_JOINTS, 3))
    valid = np.zeros(sk.NUM_JOINTS)
    j[sk.HAND_SLICE[side]] = _np(joints21)
    valid[sk.HAND_SLICE[side]] = 1.0
    return j, valid


def flexion_sweep_figure(finger: str = "index", angles=(0, 30, 60, 90), dpi: int = 80):
    """Side view (hand-frame y-z plane) of one finger of the average right hand as the same flexion
    is asked of its three joints, clipped into the joint limits (``HandPose.clipped``).

    One line per angle, wrist -> base joint -> ... -> tip; the palm faces -z. Matplotlib ``Figure``.

    Used in notebook 01.
    """
    from h2t_lib.data import hand_model as hm

    f = sk.FINGERS.index(finger)
    chain = sk.FINGER_CHAINS[finger]
    shape = hm.HandShape.average()
    fig = _figure((6.0, 2.6), dpi)
    ax = fig.add_subplot(1, 1, 1)
    cmap = [HAND_COLORS["right"][k % 5] for k in range(len(angles))]
    for a, col in zip(angles, cmap):
        pose = hm.HandPose()
        pose.flexion[f] = a
        pose = pose.clipped()
        j = hm.hand_joints(pose, shape, "right")[list(chain)]  # (5, 3) wrist .. tip
        label = f"{a} deg -> " + ", ".join(f"{v:.0f}" for v in pose.flexion[f])
        ax.plot(j[:, 1], j[:, 2], "o-", color=col, label=label, markersize=3)
    ax.axhline(0.0, color="0.8", linewidth=0.8)
    ax.set_xlabel("y (mm, towards the fingers)")
    ax.set_ylabel("z (mm, back of the hand)")
    ax.set_aspect("equal")
    ax.set_title(f"{finger} finger of a right hand, side view", fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), title="asked -> after limits",
              title_fontsize=7)
    fig.tight_layout(pad=0.4)
    return fig


def finger_flexion(flex) -> np.ndarray:
    """Per-finger flexion -> the (5, 3) ``HandPose.flexion``: every joint of finger f bends by
    ``flex[f]`` degrees, then is clipped into that joint's limits. flex: a number (all fingers) or
    five numbers (thumb, index, middle, ring, pinky)."""
    from h2t_lib.data import hand_model as hm

    f = np.broadcast_to(np.asarray(flex, dtype=float).reshape(-1), (5,))
    return np.clip(np.repeat(f[:, None], 3, axis=1), hm.FLEXION_LIMITS[..., 0], hm.FLEXION_LIMITS[..., 1])


# --------------------------------------------------------------------------- #
# A posable pair of hands (sliders of notebook 01)
# --------------------------------------------------------------------------- #
#: depth of the right wrist; the left hand is 40 mm nearer, so it passes in front when the hands overlap
PAIR_DEPTH_MM = 650.0
#: focal length of the posed-pair camera, in image widths
PAIR_FOCAL_FACTOR = 1.5


def pair_camera(size: int = 128):
    """(focal (2,), princpt (2,)) of the camera that looks at :func:`posed_pair_scene`."""
    return np.full(2, PAIR_FOCAL_FACTOR * size), np.full(2, (size - 1) / 2.0)


def posed_pair_scene(flex=0.0, gap_mm: float = 30.0, seed: int = 0):
    """Two hands side by side, fingers up, backs towards the camera, thumbs facing each other.

    flex: per-finger flexion (see :func:`finger_flexion`): a number, five numbers, or a (2, 5)
    array (right hand, left hand). gap_mm: the horizontal gap (camera x) between the two hands'
    joints, left hand on the image's left; negative values push them over each other (the left
    hand, 40 mm nearer the camera, in front). seed: the person's hand size and bone jitter.
    Returns a :class:`h2t_lib.data.synth.Scene` in the camera frame (mm).
    """
    from h2t_lib.data import hand_model as hm
    from h2t_lib.data.synth import Scene

    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.9, 1.1)
    shapes = {h: hm.sample_hand_shape(rng, scale=scale) for h in sk.HANDS}
    flex = np.asarray(flex, dtype=float)
    per_hand = flex.reshape(2, 5) if flex.size == 10 else np.stack([np.broadcast_to(flex.reshape(-1), (5,))] * 2)
    R = hm.frame_from_directions(*_FINGERS_UP_BACK_TO_CAMERA)
    poses, joints = {}, {}
    for k, h in enumerate(sk.HANDS):
        pose = hm.HandPose(flexion=finger_flexion(per_hand[k]), abduction=np.array([15.0, 5.0, 0.0, 4.0, 8.0]),
                           opposition=20.0).with_rotation_matrix(R)
        poses[h], joints[h] = pose, hm.hand_joints(pose, shapes[h], h)  # wrist at the origin
    # the left hand's rightmost joint and the right hand's leftmost joint are gap_mm apart, centred on x = 0
    inner_l, inner_r = joints["left"][:, 0].max(), joints["right"][:, 0].min()
    mid_y = 0.5 * (np.concatenate([joints["left"], joints["right"]])[:, 1].max()
                   + np.concatenate([joints["left"], joints["right"]])[:, 1].min())
    poses["left"].wrist = np.array([-0.5 * gap_mm - inner_l, -mid_y, PAIR_DEPTH_MM - 40.0])
    poses["right"].wrist = np.array([0.5 * gap_mm - inner_r, -mid_y, PAIR_DEPTH_MM])
    return Scene("interacting", poses, shapes, {h: (0.0, 0.0) for h in sk.HANDS}, "posed")


def render_posed_pair(flex=0.0, gap_mm: float = 30.0, seed: int = 0, size: int = 128, return_info: bool = False,
                      style: str = "v2"):
    """Render :func:`posed_pair_scene` (the function behind notebook 01's sliders).

    The seed also draws the skin tone, light and background (:func:`synth.sample_appearance`,
    :func:`synth.random_background`), and for ``style`` "v2" the skin look (:func:`synth.sample_look`;
    no camera effects, as v1 here has no blur or noise). ValueError for an unknown style. Returns (image (S, S, 3) float32 in [0, 1], joints_cam
    (42, 3) mm); with ``return_info`` a third dict: focal, princpt, joints_img (42, 2), joint_vis
    (42,), layer (S, S) (-1 background, 0 right hand, 1 right forearm, 2 left hand, 3 left
    forearm), occlusion (fraction of the more hidden hand covered by the other hand or its forearm), scene.
    """
    from h2t_lib.data import synth as rd
    from h2t_lib.data.synth import render_scene, sample_look

    scene = posed_pair_scene(flex, gap_mm, seed)
    rng = np.random.default_rng([int(seed), 1])
    app = rd.sample_appearance(rng)
    background = rd.random_background(rng, size, skin=None, style=style)
    focal, princpt = pair_camera(size)
    out = render_scene(scene, focal, princpt, size, app, background, look=sample_look(rng, scene, size, style))
    joints_cam = scene.joints()
    if not return_info:
        return out["image"], joints_cam
    info = {"focal": focal, "princpt": princpt, "joints_img": camlib.cam_to_pixel(joints_cam, focal, princpt),
            "joint_vis": out["joint_vis"], "layer": out["layer"], "occlusion": out["occlusion"], "scene": scene}
    return out["image"], joints_cam, info


def image_and_3d_figure(image, joints_cam, focal, princpt, valid=None, title: str | None = None, height: int = 360):
    """An image with the projected skeleton beside the 3D skeleton in the camera frame (plotly).

    Unlike :func:`h2t_lib.viz.sample_figure` (root-relative hands side by side) the 3D view keeps the
    true positions, so the gap and depth order of the hands show. image: (S, S, 3) in [0, 1] or uint8.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from h2t_lib.viz.plot3d import _scene, png_data_uri, skeleton_traces

    img = np.asarray(image)
    img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8) if img.dtype != np.uint8 else img
    j = _np(joints_cam)
    ok = np.ones(sk.NUM_JOINTS, bool) if valid is None else _np(valid).reshape(-1) > 0
    uv = camlib.cam_to_pixel(j, _np(focal), _np(princpt))
    fig = make_subplots(rows=1, cols=2, specs=[[{"type": "xy"}, {"type": "scene"}]],
                        subplot_titles=("image + projected joints", "3D, camera frame (drag to rotate)"))
    fig.add_trace(go.Image(source=png_data_uri(img), hoverinfo="skip"), row=1, col=1)
    for p, c in sk.BONES:
        if ok[p] and ok[c]:
            hand = sk.hand_of_joint(c)
            col = HAND_COLORS[hand][min((c % sk.JOINTS_PER_HAND) // 4, 4)]
            fig.add_trace(go.Scatter(x=uv[[p, c], 0], y=uv[[p, c], 1], mode="lines", showlegend=False,
                                     line=dict(color=col, width=2), hoverinfo="skip"), row=1, col=1)
    for tr in skeleton_traces(j, name="joints_cam", valid=ok):
        tr.showlegend = False
        fig.add_trace(tr, row=1, col=2)
    fig.update_xaxes(visible=False, range=[-0.5, img.shape[1] - 0.5], row=1, col=1)
    fig.update_yaxes(visible=False, range=[img.shape[0] - 0.5, -0.5], scaleanchor="x", row=1, col=1)
    fig.update_layout(title=title, height=height, margin=dict(l=0, r=0, t=40, b=0), scene=_scene())
    return fig


def posed_pair_figure(flex=0.0, gap_mm: float = 30.0, seed: int = 0, size: int = 128, height: int = 360,
                      style: str = "v2"):
    """:func:`render_posed_pair` (in ``style``) drawn by :func:`image_and_3d_figure`, titled with the measured occlusion.

    Used in notebook 01.
    """
    image, joints_cam, info = render_posed_pair(flex, gap_mm, seed, size, return_info=True, style=style)
    hidden = int((info["joint_vis"] == 0).sum())
    title = f"gap {gap_mm:g} mm: occlusion {info['occlusion']:.2f}, {hidden} of 42 joints hidden"
    return image_and_3d_figure(image, joints_cam, info["focal"], info["princpt"], title=title, height=height)


# --------------------------------------------------------------------------- #
# The renderer step by step
# --------------------------------------------------------------------------- #
def render_steps(sample: dict) -> dict:
    """Re-render a :func:`h2t_lib.data.synth.render_sample` result stage by stage.

    Returns primitives (:class:`synth.Primitives`), raster (:class:`synth.Raster`: per-layer and
    composite depth, visible primitive, normals), shaded ((S, S, 3) float32 over the background,
    before the sample's shadow, blur and noise or camera effects), final (the sample's uint8
    image), focal, princpt. The sample's style decides how (``sample["look"]``, absent or None
    for "v1": hard capsules, :func:`synth.shade`; a :class:`synth.SkinLook` for "v2": the smooth
    skin of :func:`synth.rasterize_blended`, :func:`synth.shade_skin`), as in :func:`synth.render_scene`.

    Used in notebook 01.
    """
    from h2t_lib.data.synth import render_scene

    focal, princpt = sample["focal"], sample["princpt"]
    _, dorsal = sample["scene"].kinematics()  # the joints as render_sample drew them: back from the world frame
    out = render_scene(sample["scene"], focal, princpt, sample["image"].shape[0], sample["appearance"],
                       sample["background"], sample["joints_cam"], dorsal, look=sample.get("look"))
    return {"primitives": out["primitives"], "raster": out["raster"], "shaded": out["image"], "final": sample["image"],
            "focal": np.asarray(focal, float), "princpt": np.asarray(princpt, float)}


def _draw_primitives(ax, prims, focal, princpt, size):
    """Outlines of the projected primitives: capsules as two end discs joined by their tangents, slabs
    as triangles; colour by hand, forearms grey."""
    from matplotlib.patches import Circle, Polygon

    from h2t_lib.data import synth as rd

    f = float(np.mean(focal))
    for i in range(len(prims)):
        col = "0.5" if prims.part[i] == rd.FOREARM else HAND_COLORS[sk.HANDS[prims.hand[i]]][1]
        a, b = prims.a[i], prims.b[i]
        if prims.kind[i] == rd.SLAB:
            tri = camlib.cam_to_pixel(np.stack([a, b, prims.c[i]]), focal, princpt)
            ax.add_patch(Polygon(tri, closed=True, fill=True, alpha=0.25, color=col))
            continue
        ua, ub = camlib.cam_to_pixel(np.stack([a, b]), focal, princpt)
        ra, rb = prims.ra[i] * f / a[2], prims.rb[i] * f / b[2]
        d = ub - ua
        n = np.array([-d[1], d[0]]) / max(np.hypot(*d), 1e-9)
        quad = np.stack([ua + ra * n, ub + rb * n, ub - rb * n, ua - ra * n])
        ax.add_patch(Polygon(quad, closed=True, fill=False, edgecolor=col, linewidth=0.6))
        ax.add_patch(Circle(ua, ra, fill=False, edgecolor=col, linewidth=0.6))
        ax.add_patch(Circle(ub, rb, fill=False, edgecolor=col, linewidth=0.6))
    ax.set_xlim(-0.5, size - 0.5)
    ax.set_ylim(size - 0.5, -0.5)
    ax.set_aspect("equal")


def render_steps_figure(sample: dict, dpi: int = 80):
    """Six panels of :func:`render_steps`: primitives, layer map (which hand / forearm each pixel
    shows), composite depth (mm), normals (as RGB), shaded, final (shadow, blur and noise or camera effects). Matplotlib.

    Used in notebook 01.
    """
    steps = render_steps(sample)
    ras, size = steps["raster"], sample["image"].shape[0]
    fig = _figure((7.8, 5.4), dpi)
    axes = [fig.add_subplot(2, 3, k + 1) for k in range(6)]
    _draw_primitives(axes[0], steps["primitives"], steps["focal"], steps["princpt"], size)
    axes[0].set_title(f"1. {len(steps['primitives'])} primitives", fontsize=8)
    from matplotlib.colors import ListedColormap

    layer_colors = ListedColormap([HAND_COLORS["right"][1], "#fcbba1", HAND_COLORS["left"][1], "#c6dbef"])
    layer = np.where(ras.layer >= 0, ras.layer.astype(float), np.nan)  # (S, S): 0..3, NaN = background
    axes[1].imshow(layer, cmap=layer_colors, vmin=-0.5, vmax=3.5, interpolation="nearest")
    axes[1].set_title("2. layer: R hand, R arm, L hand, L arm", fontsize=8)
    depth = np.where(np.isfinite(ras.depth), ras.depth, np.nan)
    im = axes[2].imshow(depth, cmap="viridis")
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
    axes[2].set_title("3. depth z (mm)", fontsize=8)
    nrm = np.where((ras.prim >= 0)[..., None], 0.5 * (ras.normal + 1.0), 1.0)
    axes[3].imshow(np.clip(nrm, 0, 1))
    axes[3].set_title("4. normal (x, y, z) as RGB", fontsize=8)
    axes[4].imshow(np.clip(steps["shaded"], 0, 1))
    axes[4].set_title("5. shaded over background", fontsize=8)
    axes[5].imshow(steps["final"])
    axes[5].set_title("6. + shadow, blur, noise" if sample.get("look") is None else "6. + shadow, camera effects",
                      fontsize=8)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout(pad=0.4)
    return fig


# --------------------------------------------------------------------------- #
# The InterHand2.6M files, the loader by hand, augmentation
# --------------------------------------------------------------------------- #
def annotation_record(root, split: str, index: int, annot_subset=None) -> dict:
    """Everything the three InterHand2.6M json files say about annotation ``index`` of ``split``.

    Returns: files (the three json paths), annotation (its entry of ``..._data.json``),
    image_info (its image entry), camera (camrot (3, 3), campos (3,), focal (2,), princpt (2,)
    of its capture and camera, from ``..._camera.json``), world_coord ((42, 3) mm, from
    ``..._joint_3d.json``), image_path, index. The loader reads the annotations in file order, so
    ``index`` is also the :class:`~h2t_lib.data.InterHand26M` index (nothing skipped by default).
    ``annot_subset``: the annotation folder as the loader names it (None = the only one holding the split,
    e.g. ``all`` for synthetic data or v1.0's ``annotations/<split>/``); joint_3d frames may be the early bare lists.

    Used in notebook 01.
    """
    from h2t_lib.data.interhand import frame_world_coord, resolve_annotation_folder

    root = Path(root)
    _, sub = resolve_annotation_folder(root, split, annot_subset)
    files = {k: sub / f"InterHand2.6M_{split}_{k}.json" for k in ("data", "camera", "joint_3d")}
    with open(files["data"]) as f:
        data = json.load(f)
    ann = data["annotations"][index]
    img = next(im for im in data["images"] if im["id"] == ann["image_id"])
    with open(files["camera"]) as f:
        cams = json.load(f)[str(img["capture"])]
    with open(files["joint_3d"]) as f:
        world = frame_world_coord(json.load(f)[str(img["capture"])][str(img["frame_idx"])], str(files["joint_3d"]))
    cam = str(img["camera"])
    camera = {k: np.asarray(cams[k][cam], dtype=np.float64) for k in ("camrot", "campos", "focal", "princpt")}
    return {"files": files, "annotation": ann, "image_info": img, "camera": camera,
            "world_coord": np.asarray(world, dtype=np.float64),
            "image_path": root / "images" / split / img["file_name"], "index": int(index)}


def short_json(obj, max_items: int = 4) -> str:
    """A json object as text, one top-level key per line, long lists cut to their first
    ``max_items`` items plus "... (N items)" (e.g. the 42 ``joint_valid`` entries).

    Used in notebook 01.
    """

    def cut(o):
        if isinstance(o, dict):
            return {k: cut(v) for k, v in o.items()}
        if isinstance(o, np.ndarray):
            return cut(o.tolist())
        if isinstance(o, (list, tuple)):
            items = [cut(v) for v in o[:max_items]]
            return items + [f"... ({len(o)} items)"] if len(o) > max_items else items
        return o

    if not isinstance(obj, dict):
        return json.dumps(cut(obj), default=str)
    lines = [f"  {json.dumps(k)}: {json.dumps(cut(v), default=str)}" for k, v in obj.items()]
    return "{\n" + ",\n".join(lines) + "\n}"


def augmented_crop(record: dict, params=None, size: int = 128, bbox_scale: float = 1.25):
    """The loader's crop of one :func:`annotation_record` by hand, under augmentation ``params``
    (an :class:`~h2t_lib.data.transforms.AugmentParams`, identity when None).

    Returns (sample dict as the loader yields, crop geometry (:class:`CropGeometry`),
    uv (42, 2) the joints in the ORIGINAL image, projected with the original intrinsics).
    Consistency: ``geometry.transform_pixels(uv)`` (hands swapped by ``skeleton.FLIP_PERM`` on a flip)
    equals ``sample["joints_img"]``: the image warp and the 3D "virtual camera" agree.

    Used in notebook 01.
    """
    from h2t_lib.data import transforms as T

    params = T.AugmentParams() if params is None else params
    ann, cam = record["annotation"], record["camera"]
    joints_cam = camlib.world_to_cam(record["world_coord"], cam["camrot"], cam["campos"])  # (42, 3)
    valid = np.asarray(ann["joint_valid"], dtype=np.float32).reshape(-1)
    for h in sk.HANDS:  # as the loader: a hand with an invalid root is invalid; the absent hand too
        sl = sk.HAND_SLICE[h]
        valid[sl] *= valid[sk.ROOT_INDEX[h]] * float(h in sk.hands_present(ann["hand_type"]))
    vis = ann.get("joint_vis")
    vis = None if vis is None else np.asarray(vis, dtype=np.float32).reshape(-1) * valid
    bbox = T.process_bbox(ann["bbox"], bbox_scale)
    geo = T.make_crop(bbox, cam["focal"], cam["princpt"], size, params)
    occ = ann.get("occlusion")
    sample = T.crop_sample(T.load_image(record["image_path"]), bbox, cam["focal"], cam["princpt"], joints_cam,
                           valid, ann["hand_type"], record["index"], size, params, joint_vis=vis,
                           occlusion=float("nan") if occ is None else float(occ))
    uv = camlib.cam_to_pixel(joints_cam, cam["focal"], cam["princpt"])
    return sample, geo, uv


def augmentation_figure(record: dict, params_list, size: int = 128, dpi: int = 80):
    """The original image with its crop boxes, then one augmented crop per entry of ``params_list``
    with its ``joints_img`` drawn. Each crop box is the image region the crop sees (the warp's
    inverse applied to the crop's corners). Matplotlib ``Figure``.

    Used in notebook 01.
    """
    from matplotlib.patches import Polygon

    from h2t_lib.data.transforms import load_image

    n = len(params_list)
    fig = _figure((1.9 * (n + 1), 2.3), dpi)
    ax0 = fig.add_subplot(1, n + 1, 1)
    ax0.imshow(np.asarray(load_image(record["image_path"])))
    ax0.set_title("original + crop boxes", fontsize=7)
    corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [size - 0.5, size - 0.5], [-0.5, size - 0.5]])
    for k, params in enumerate(params_list):
        sample, geo, uv = augmented_crop(record, params, size)
        A, b = geo.affine[:, :2], geo.affine[:, 2]
        box = (corners - b) @ np.linalg.inv(A).T  # crop -> original pixels
        col = f"C{k}"
        ax0.add_patch(Polygon(box, closed=True, fill=False, edgecolor=col, linewidth=1.2))
        ax = fig.add_subplot(1, n + 1, k + 2)
        ax.imshow(sample["image"].permute(1, 2, 0).numpy())
        draw_skeleton_2d(ax, sample["joints_img"], sample["joint_valid"], linewidth=1.0, markersize=4)
        ax.set_xlim(-0.5, size - 0.5)
        ax.set_ylim(size - 0.5, -0.5)
        ax.set_title(f"scale {params.scale:.2f} rot {params.rot_deg:.0f}\nflip {params.flip}", fontsize=7, color=col)
    for ax in fig.axes:
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout(pad=0.3)
    return fig
