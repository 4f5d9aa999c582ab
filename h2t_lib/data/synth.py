"""Synthetic two-hand images in the InterHand2.6M format: the project's default data.

Real InterHand2.6M images cannot be had here, so h2t renders its own. A sample is

1. a *scene*: two procedural hands (:mod:`h2t_lib.data.hand_model`) posed so that
   they really interact (stacked, crossing, touching, one grasping the other,
   palm to palm) with one in front of the other, or a single hand;
2. seen by one camera of a fixed rig (known intrinsics and a non-identity pose,
   so the annotations go through ``cam = R (world - campos)`` like the real data);
3. ray-cast over a random textured background (:mod:`h2t_lib.data.render`) in one of two looks
   (:data:`STYLES`): "v2", the default, a smooth skin over capsules, palm slabs and palm pads,
   skin-shaded, through a camera (blur, noise, JPEG), in front of noise, blobs and gradients; "v1",
   the first look, shaded capsules and palm slabs with mild blur and noise, whose backgrounds also
   have stripes and checker boards;
4. annotated with the 42 joints (world, camera, pixel), validity, per-joint
   visibility from the renderer's depth test and the fraction of a hand hidden by
   the other (``occlusion``).

``python -m h2t_lib synth --out DIR --split train --num N --size 256 --seed S`` writes
``DIR/images/<split>/...jpg`` and ``DIR/annotations/all/InterHand2.6M_<split>_{data,camera,joint_3d}.json``
plus ``DIR/annotations/skeleton.txt``; ``--bench`` measures the rendering speed.
Sample ``i`` of a split depends only on ``(seed, split, i)``: the same seed gives the same
bytes (images are JPEG at quality 95) whatever ``--workers``, a longer run starts with the
samples of a shorter one, and two splits written with one seed share no sample.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from h2t_lib import camera as camlib
from h2t_lib import skeleton as sk
from h2t_lib.data import hand_model as hm
from h2t_lib.data import render as rd

OCCLUSION_LEVELS = ("low", "medium", "high", "any")
#: inter-hand occlusion ranges (fraction of the more hidden hand that the other hand covers)
OCCLUSION_RANGES = {"low": (0.02, 0.2), "medium": (0.2, 0.5), "high": (0.5, 0.95)}
#: kinds of two-hand interaction and how often each is drawn
INTERACTIONS = {"stack": 0.25, "cross": 0.2, "touch": 0.2, "grasp": 0.2, "clap": 0.15}
#: ... and when high occlusion is asked for (palm to palm and fingertip touches rarely hide half a hand)
INTERACTIONS_HIGH = {"stack": 0.45, "cross": 0.2, "touch": 0.05, "grasp": 0.3, "clap": 0.0}
CAPTURE = 0
NUM_CAMERAS = 8
JPEG_QUALITY = 95
VIS_TOLERANCE = 3.0  # mm, see joint_visibility
_RIG_SEED = 20240601
_OCC_RES = 40  # resolution of the quick renders that steer the occlusion level
_SMOOTH = ImageFilter.Kernel((3, 3), [1, 2, 1, 2, 4, 2, 1, 2, 1], 16)  # binomial blur
#: the renderer's looks: "v1" capsules and slabs (the first look: the shipped model's first 144k
#: presentations), "v2" a smooth skin with palm volumes, skin shading, camera effects and backgrounds
#: without stripes and checker boards (issue 13, docs/realism.md: MediaPipe Hands finds about twice as
#: many of its hands)
STYLES = ("v1", "v2")
#: the look every entry point renders unless told otherwise (synth --style, SynthStream, TrainConfig.render_style)
DEFAULT_STYLE = "v2"
#: the revision of each look's pixels, recorded by the course's and the demo's data markers (a folder
#: rendered by an earlier revision is rendered again): v2's 2 is round 6 of docs/realism.md, backgrounds
#: without stripes and checker boards
LOOK_REVISION = {"v1": 1, "v2": 2}


def check_style(style: str) -> str:
    """``style`` itself if it is one of :data:`STYLES`; ValueError naming them otherwise."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    return style


# --------------------------------------------------------------------------- #
# Camera rig
# --------------------------------------------------------------------------- #
@dataclass
class CameraRig:
    """Fixed cameras of the synthetic "capture" (same for every split of a given image size).

    names: camera ids (str, InterHand-like "4000NN"); campos: (C, 3) mm; camrot: (C, 3, 3)
    (rows = camera axes in the world, ``cam = R (world - campos)``); focal, princpt: (C, 2) pixels.
    """

    names: list
    campos: np.ndarray
    camrot: np.ndarray
    focal: np.ndarray
    princpt: np.ndarray

    def __len__(self) -> int:
        return len(self.names)


def camera_rig(size: int, num_cameras: int = NUM_CAMERAS) -> CameraRig:
    """The rig: cameras 600-800 mm around the world origin looking at it, rolled a little,
    focal about 1.5-1.9 x the image size, principal point near the centre."""
    rng = np.random.default_rng(_RIG_SEED)
    names, pos, rot, foc, pp = [], [], [], [], []
    for c in range(num_cameras):
        d = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.5, 0.5), -1.0])
        d /= np.linalg.norm(d)
        campos = d * rng.uniform(600.0, 800.0)
        fwd = rng.normal(0.0, 30.0, size=3) - campos
        fwd /= np.linalg.norm(fwd)
        x = np.cross(fwd, [0.0, -1.0, 0.0])
        x /= np.linalg.norm(x)
        y = np.cross(fwd, x)
        R = np.stack([x, y, fwd])  # rows: camera axes in world coordinates
        R = hm.rot_z(rng.uniform(-15, 15)) @ R  # roll about the optical axis
        f = size * rng.uniform(1.5, 1.9)
        names.append(f"4000{c:02d}")
        pos.append(np.round(campos, 4))
        rot.append(np.round(R, 10))
        foc.append(np.round([f, f * rng.uniform(0.99, 1.01)], 4))
        pp.append(np.round(size / 2 + rng.normal(0.0, 0.02 * size, size=2), 4))
    return CameraRig(names, np.array(pos), np.array(rot), np.array(foc), np.array(pp))


# --------------------------------------------------------------------------- #
# Scenes
# --------------------------------------------------------------------------- #
@dataclass
class Scene:
    """Two hands in the camera frame (mm). ``poses``/``shapes``/``wrist_bend`` hold both
    hands; the absent hand of a single-hand sample is posed far outside the view.
    ``wrist_bend[hand] = (flexion, deviation)`` degrees turn the forearm (see
    :func:`render.forearm_primitive`)."""

    hand_type: str
    poses: dict
    shapes: dict
    wrist_bend: dict = field(default_factory=lambda: {"right": (0.0, 0.0), "left": (0.0, 0.0)})
    interaction: str = "single"

    @property
    def present(self) -> tuple:
        return sk.hands_present(self.hand_type)

    def kinematics(self):
        """(joints (42, 3), dorsal (42, 3)) of both hands, camera frame."""
        out = [hm.forward_kinematics(self.poses[h], self.shapes[h], h) for h in sk.HANDS]
        return np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out])

    def joints(self) -> np.ndarray:
        """(42, 3) joints of both hands, camera frame, mm."""
        return self.kinematics()[0]

    def primitives(self, joints=None, dorsal=None, forearm: bool = True, style: str = DEFAULT_STYLE) -> rd.Primitives:
        """Render primitives of the present hands (optionally from given (42, 3) joints / dorsal; see
        :data:`STYLES` for ``style``)."""
        if joints is None:
            joints, dorsal = self.kinematics()
        return rd.Primitives.concat(
            rd.hand_primitives(joints[sk.HAND_SLICE[h]], self.shapes[h].radii,
                               None if dorsal is None else dorsal[sk.HAND_SLICE[h]], h, forearm, self.wrist_bend[h],
                               style)
            for h in self.present
        )


def _orientation(theta, tilt, roll):
    """Hand rotation from: theta, the in-image angle of the fingers (0 = up, + = clockwise);
    tilt, how much they point away from the camera; roll about the fingers
    (0 = back of the hand towards the camera, 180 = palm towards the camera). Degrees."""
    t, p, r = np.deg2rad([theta, tilt, roll])
    y = np.array([np.sin(t) * np.cos(p), -np.cos(t) * np.cos(p), np.sin(p)])
    side = rd._cross(y, np.array([0.0, 0.0, -1.0]))
    side /= np.linalg.norm(side)
    up = rd._cross(side, y)  # towards the camera, orthogonal to y
    return hm.frame_from_directions(y, np.cos(r) * up + np.sin(r) * side)


def _random_roll(rng):
    k = rng.uniform()
    if k < 0.4:
        return rng.normal(0.0, 35.0)  # back of the hand visible
    if k < 0.8:
        return 180.0 + rng.normal(0.0, 35.0)  # palm visible
    return rng.choice([-90.0, 90.0]) + rng.normal(0.0, 25.0)  # side view


def _random_theta(rng):
    return rng.uniform(-180, 180) if rng.uniform() < 0.2 else rng.uniform(-110, 110)


_BARY = np.array([(i, j) for i in range(5) for j in range(5 - i)], dtype=float) / 4.0  # 15 points on a triangle


def _spheres(prims: rd.Primitives):
    """Approximate primitives by spheres: capsules by spheres spaced at most one radius apart
    (the surface dips by < 14% of r between them), slabs by 15 spheres on the triangle.
    Returns (centres (K, 3), radii (K,), primitive index (K,))."""
    cap = np.flatnonzero(prims.kind == rd.CAPSULE)
    a, b, ra, rb = prims.a[cap], prims.b[cap], prims.ra[cap], prims.rb[cap]
    n = np.ceil(np.linalg.norm(b - a, axis=1) / np.minimum(ra, rb)).astype(int) + 1
    pid = np.repeat(np.arange(len(n)), n)
    t = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / np.repeat(np.maximum(n - 1, 1), n)
    centres = [a[pid] + t[:, None] * (b - a)[pid]]
    radii = [ra[pid] + t * (rb - ra)[pid]]
    owner = [cap[pid]]
    sl = np.flatnonzero(prims.kind == rd.SLAB)
    if sl.size:
        A, B, C = prims.a[sl], prims.b[sl], prims.c[sl]
        pts = A[:, None] + _BARY[None, :, :1] * (B - A)[:, None] + _BARY[None, :, 1:] * (C - A)[:, None]
        centres.append(pts.reshape(-1, 3))
        radii.append(np.repeat(prims.ra[sl], len(_BARY)))
        owner.append(np.repeat(sl, len(_BARY)))
    return np.concatenate(centres), np.concatenate(radii), np.concatenate(owner)


def contact_shift(prims_a: rd.Primitives, prims_b: rd.Primitives, direction, gap: float = 0.0) -> float | None:
    """How far to move hand B along ``direction`` so that it just touches hand A with ``gap`` mm.

    Both hands are approximated by sphere sets. Split each centre into its height ``h``
    along d and its position ``p`` across d: spheres i (of A) and j (of B) overlap while
    ``(h_j + s - h_i)^2 + |p_j - p_i|^2 < R^2`` (R = r_i + r_j + gap), so coming from far
    along +d, B first touches A at ``s = max_ij (h_i - h_j + sqrt(R^2 - |p_j - p_i|^2))``
    over the pairs that meet at all. None when B would pass A without touching it.
    """
    d = np.asarray(direction, dtype=float)
    d = d / np.linalg.norm(d)
    e1 = rd._cross(d, np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0]))
    e1 /= np.linalg.norm(e1)
    basis = np.stack([d, e1, rd._cross(d, e1)], axis=1).astype(np.float32)  # (3, 3): height, across 1, across 2
    ca, ra, _ = _spheres(prims_a)
    cb, rb, _ = _spheres(prims_b)
    qa, qb = ca.astype(np.float32) @ basis, cb.astype(np.float32) @ basis  # (K, 3)
    R = ra.astype(np.float32)[:, None] + rb.astype(np.float32)[None, :] + np.float32(gap)
    dx = qb[None, :, 1] - qa[:, None, 1]
    dy = qb[None, :, 2] - qa[:, None, 2]
    q = R * R - dx * dx - dy * dy  # (Ka, Kb)
    pos = q > 0
    if not pos.any():
        return None
    s = (qa[:, None, 0] - qb[None, :, 0]) + np.sqrt(np.maximum(q, 0.0))
    return float(s[pos].max())


def overlaps(prims_a, prims_b, gap: float = 0.0) -> bool:
    """Whether two sets of primitives intersect (their sphere approximations come closer than ``gap``).
    Either set may also be given as its spheres ``(centres (K, 3), radii (K,))`` from :func:`_spheres`
    (their order does not matter)."""
    ca, ra = prims_a if isinstance(prims_a, tuple) else _spheres(prims_a)[:2]
    cb, rb = prims_b if isinstance(prims_b, tuple) else _spheres(prims_b)[:2]
    d2 = ((cb[None, :, :] - ca[:, None, :]) ** 2).sum(-1)
    return bool(np.any(d2 < (ra[:, None] + rb[None, :] + gap) ** 2))


#: forearm turns (flexion, deviation) tried when a forearm runs through the other hand
_ARM_TURNS = [(f, d) for f in (0.0, 35.0, -35.0, 65.0, -65.0) for d in (0.0, 30.0, -30.0)]


def _anchor(rng, kind, joints21):
    """A point on a hand where the other hand is placed."""
    ch = sk.FINGER_CHAINS
    if kind == "palm":
        return hm.palm_center(joints21)
    if kind == "tip":
        return joints21[ch[("thumb", "index", "middle", "index")[rng.integers(4)]][4]]
    if kind == "finger":
        f = ch[("index", "middle", "ring")[rng.integers(3)]]
        return 0.5 * (joints21[f[1]] + joints21[f[2]])
    if kind == "grasped":  # where a grasping hand closes: wrist, palm or fingers
        m = ch["middle"]
        return (joints21[sk.WRIST], hm.palm_center(joints21), 0.5 * (joints21[m[1]] + joints21[m[2]]))[rng.integers(3)]
    raise ValueError(kind)


def _fit_to_view(pts, rmax, rng, focal, princpt, size, fill, margin=0.04):
    """The translation that makes points ``pts`` (N, 3) (+ ``rmax`` mm around them) fill ``fill``
    of the image, fully inside it, at a random place. Returns (shift (3,), depth of the centre)."""
    focal, princpt = np.asarray(focal, float), np.asarray(princpt, float)
    c = 0.5 * (pts.min(0) + pts.max(0))
    shift = np.array([0.0, 0.0, 600.0]) - c
    f = float(focal.mean())
    for _ in range(3):  # extent ~ 1 / depth: rescale the depth a few times
        p = pts + shift
        uv = camlib.cam_to_pixel(p, focal, princpt)
        pad = rmax * f / max(p[:, 2].min(), 50.0)
        extent = (uv.max(0) - uv.min(0)).max() + 2 * pad  # the larger side of the points' box, px
        z = float(min(max((shift[2] + c[2]) * extent / (fill * size), 250.0), 3000.0))  # clipped to 250-3000 mm
        shift[2] = z - c[2]
    p = pts + shift
    uv = camlib.cam_to_pixel(p, focal, princpt)
    pad = rmax * f / max(p[:, 2].min(), 50.0)
    lo = margin * size + pad - uv.min(0)
    hi = (1 - margin) * size - pad - uv.max(0)
    du = np.where(hi > lo, lo + rng.uniform(size=2) * (hi - lo), 0.5 * (lo + hi))
    zc = shift[2] + c[2]
    shift[:2] += du / focal * zc
    return shift, zc


def _boxes_overlap(ja, jb, pad_mm, focal, princpt) -> bool:
    """Whether the image boxes of two hands' joints, grown by ``pad_mm`` of flesh, overlap."""
    f, c = np.asarray(focal, float), np.asarray(princpt, float)
    ua, ub = camlib.cam_to_pixel(ja, f, c), camlib.cam_to_pixel(jb, f, c)
    pa, pb = pad_mm * f.max() / ja[:, 2].min(), pad_mm * f.max() / jb[:, 2].min()
    return bool(np.all(ua.min(0) - pa <= ub.max(0) + pb) and np.all(ub.min(0) - pb <= ua.max(0) + pa))


def _park(scene: Scene, zc: float) -> None:
    """Put the absent hand of a single-hand scene far to the side, in front of the camera (finite, off-image)."""
    for h in sk.HANDS:
        if h not in scene.present:
            scene.poses[h].wrist = np.array([3.0 * zc if h == "left" else -3.0 * zc, 0.0, zc])


def measure_occlusion(prims: rd.Primitives, focal, princpt, size) -> float:
    """Inter-hand occlusion of rendered primitives, see :func:`occlusion_from_layers`."""
    return occlusion_from_layers(rd.rasterize(prims, focal, princpt, size).layers)


def occlusion_from_layers(layers) -> float:
    """The largest fraction of one hand's silhouette (forearm excluded) hidden by the other
    hand or its forearm; 0 when only one hand is in the picture. layers: (4, H, W) depths."""
    occ = 0.0
    for h in (0, 1):
        core = layers[2 * h]
        mask = np.isfinite(core)
        area = int(mask.sum())
        other = np.minimum(layers[2 * (1 - h)], layers[2 * (1 - h) + 1])
        if area == 0 or not np.isfinite(other).any():
            continue
        occ = max(occ, float((mask & (other < core)).sum() / area))
    return occ


def sample_scene(rng, hand_type: str, focal, princpt, size: int, occlusion: str = "any",
                 interaction: str | None = None) -> tuple[Scene, float]:
    """A random scene for ``hand_type``, framed for the given camera.

    Two-hand scenes: hand A gets a random pose and orientation; hand B is oriented
    relative to A by the kind of ``interaction`` (:data:`INTERACTIONS`), B's anchor
    point is put on A's anchor, offset sideways by ``m`` hand lengths, then B slides
    along the separation direction (the camera axis give or take, or A's palm normal
    for "clap") until it touches A (:func:`contact_shift`): one hand lies on / in front
    of the other. The offset ``m`` is searched (a few 40-px renders) until the measured
    occlusion falls in :data:`OCCLUSION_RANGES` for the level; "any" draws a level for the
    first offset and takes the first placement where the hands touch.
    Returns (scene, occlusion measured at 40 px (NaN when not measured); 0 for one hand).
    """
    if occlusion not in OCCLUSION_LEVELS:
        raise ValueError(f"occlusion must be one of {OCCLUSION_LEVELS}, got {occlusion!r}")
    scale = rng.uniform(*hm.SCALE_RANGE)
    shapes = {h: hm.sample_hand_shape(rng, scale=scale) for h in sk.HANDS}  # one person: same scale
    bend = {h: (float(rng.normal(0.0, 15.0)), float(rng.normal(0.0, 8.0))) for h in sk.HANDS}
    rmax = max(s.radii.max() for s in shapes.values())
    if hand_type in sk.HANDS:
        poses = {h: hm.sample_hand_pose(rng) for h in sk.HANDS}
        poses[hand_type] = poses[hand_type].with_rotation_matrix(
            _orientation(_random_theta(rng), rng.normal(0, 30), rng.uniform(-180, 180)))
        scene = Scene(hand_type, poses, shapes, bend, "single")
        pts = hm.hand_joints(poses[hand_type], shapes[hand_type], hand_type)
        shift, zc = _fit_to_view(pts, rmax, rng, focal, princpt, size, rng.uniform(0.45, 0.8))
        poses[hand_type].wrist = shift
        _park(scene, zc)
        return scene, 0.0
    if hand_type != "interacting":
        raise ValueError(f"hand_type must be one of {sk.HAND_TYPES}, got {hand_type!r}")
    kinds = list(INTERACTIONS)
    level = occlusion if occlusion != "any" else ("low", "medium", "high")[rng.choice(3, p=[0.35, 0.35, 0.3])]
    if interaction is None:
        weights = INTERACTIONS_HIGH if occlusion == "high" else INTERACTIONS
        interaction = kinds[rng.choice(len(kinds), p=np.array([weights[k] for k in kinds]))]
    elif interaction not in INTERACTIONS:
        raise ValueError(f"interaction must be one of {kinds}, got {interaction!r}")
    a, b = ("right", "left") if rng.uniform() < 0.5 else ("left", "right")
    th, tilt, roll = _random_theta(rng), rng.normal(0, 25), _random_roll(rng)
    rot_a = _orientation(th, tilt, roll)
    closure_a, closure_b, sep = None, None, None
    if interaction == "stack":  # one hand over the other, roughly parallel (closely so for high occlusion)
        if level == "high":
            rot_b = _orientation(th + rng.normal(0, 10), tilt + rng.normal(0, 10), roll + rng.normal(0, 20))
        else:
            rot_b = _orientation(th + rng.normal(0, 20), rng.normal(0, 25), _random_roll(rng))
        anchors = ("palm", "palm")
    elif interaction == "cross":  # fingers of one across the other
        rot_b = _orientation(th + rng.choice([-1, 1]) * rng.uniform(45, 135), rng.normal(0, 25), _random_roll(rng))
        anchors = ("palm", "finger")
    elif interaction == "touch":  # fingertips meet
        rot_b = _orientation(th + 180 + rng.normal(0, 30), rng.normal(0, 25), _random_roll(rng))
        anchors = ("tip", "tip")
    elif interaction == "grasp":  # B closes around A's wrist, palm or fingers
        rot_b = _orientation(th + rng.choice([-1, 1]) * rng.uniform(60, 120), rng.normal(0, 25), _random_roll(rng))
        anchors, closure_b = ("grasped", "palm"), rng.uniform(0.55, 0.95)
    else:  # clap: palm to palm; the palm normal 25-65 degrees out of the image plane, so one palm covers the other
        rot_a = _orientation(th, rng.normal(0, 20), rng.choice([-1, 1]) * (90 + rng.choice([-1, 1]) * rng.uniform(25, 65)))
        sep = -rot_a[:, 2]  # A's palm normal
        rot_b = hm.frame_from_directions(hm.rot_z(rng.normal(0, 15)) @ rot_a[:, 1], sep + rng.normal(0, 0.15, size=3))
        anchors, closure_a, closure_b = ("palm", "palm"), rng.uniform(0, 0.4), rng.uniform(0, 0.4)
    poses = {a: hm.sample_hand_pose(rng, closure=closure_a).with_rotation_matrix(rot_a),
             b: hm.sample_hand_pose(rng, closure=closure_b).with_rotation_matrix(rot_b)}
    scene = Scene("interacting", poses, shapes, bend, interaction)
    ja, jb = hm.hand_joints(poses[a], shapes[a], a), hm.hand_joints(poses[b], shapes[b], b)  # wrists at 0
    no_dorsal = np.zeros((sk.JOINTS_PER_HAND, 3))
    prims_a = rd.hand_primitives(ja, shapes[a].radii, no_dorsal, a, False)  # hands touch; forearms come later
    prims_b = rd.hand_primitives(jb, shapes[b].radii, no_dorsal, b, False)
    if sep is None:
        sep = hm.rot_x(rng.uniform(-15, 15)) @ hm.rot_y(rng.uniform(-15, 15)) @ np.array([0.0, 0.0, rng.choice([-1.0, 1.0])])
    u = rng.normal(size=3)  # sideways direction of the offset, perpendicular to the separation
    u -= (u @ sep) * sep
    u /= np.linalg.norm(u)
    gap = rng.uniform(0.0, 8.0) if rng.uniform() < 0.75 else rng.uniform(8.0, 40.0)
    hand_len = float(np.linalg.norm(ja[sk.FINGER_CHAINS["middle"][4]] - ja[sk.WRIST]))
    base = _anchor(rng, anchors[0], ja) - _anchor(rng, anchors[1], jb)  # B's offset with the anchors together
    fill = rng.uniform(0.5, 0.85)
    # "any": the drawn level only sets the first offset; any overlap of the hands is accepted
    lo, hi = OCCLUSION_RANGES[level] if occlusion != "any" else (OCCLUSION_RANGES["low"][0], 1.0)
    m0 = {"low": rng.uniform(0.3, 0.7), "medium": rng.uniform(0.15, 0.4), "high": rng.uniform(0.0, 0.15)}[level]
    m = m0
    tries = 4 if occlusion == "any" else 8
    fit_state = rng.bit_generator.state  # every try frames with the same random numbers
    best = None
    for attempt in range(tries):
        if attempt == tries - 1 and best is not None and best[0] > 0:
            m = 0.0  # last resort: anchors together, so the hands surely touch
        off = base + m * hand_len * u
        s = contact_shift(prims_a, prims_b.translated(off), sep, gap)
        if s is not None:
            off = off + max(s, -60.0) * sep
        rng.bit_generator.state = fit_state
        shift, _ = _fit_to_view(np.concatenate([ja, jb + off]), rmax, rng, focal, princpt, size, fill)
        if occlusion == "any" and s is not None and _boxes_overlap(ja + shift, jb + off + shift, 6.0, focal, princpt):
            best = (0.0, shift, off, float("nan"))  # touching, one in front of the other: good enough
            break
        k = _OCC_RES / size
        occ = measure_occlusion(rd.Primitives.concat([prims_a.translated(shift), prims_b.translated(off + shift)]),
                                np.asarray(focal) * k, (np.asarray(princpt) + 0.5) * k - 0.5, _OCC_RES)
        miss = max(lo - occ, occ - hi, 0.0)
        if best is None or miss < best[0]:
            best = (miss, shift, off, occ)
        if miss == 0.0:
            break
        if occ < lo and m <= 0.0 and interaction != "clap":
            sep, m = -sep, m0  # the anchors are together and it is still too little: swap the depth order
            continue
        # too much occlusion: move B further sideways; too little: closer
        m = m + 0.15 if occ > hi else max(0.0, 0.5 * m - 0.03)
    _, shift, off, occ = best
    poses[a].wrist = shift
    poses[b].wrist = off + shift
    # forearms: turn one that runs through the other hand or arm (when some turn avoids it);
    # each hand's and forearm's spheres are computed once, the hand axes once per hand
    joints = {a: ja + shift, b: jb + off + shift}
    hands = {a: _spheres(prims_a.translated(shift))[:2], b: _spheres(prims_b.translated(off + shift))[:2]}
    axes = {h: hm.hand_axes(joints[h], h) for h in (a, b)}
    arms = {h: _spheres(rd.forearm_primitive(joints[h], shapes[h].radii, h, bend[h], axes=axes[h]))[:2]
            for h in (a, b)}  # (centres, radii) of each forearm
    for h, o in ((a, b), (b, a)):
        others = (np.concatenate([hands[o][0], arms[o][0]]), np.concatenate([hands[o][1], arms[o][1]]))
        if not overlaps(arms[h], others):
            continue
        for cand in _ARM_TURNS:
            arm = _spheres(rd.forearm_primitive(joints[h], shapes[h].radii, h, cand, axes=axes[h]))[:2]
            if not overlaps(arm, others):
                bend[h], arms[h] = cand, arm
                break
    return scene, occ


# --------------------------------------------------------------------------- #
# One sample
# --------------------------------------------------------------------------- #
def joint_visibility(joints_cam, cover, depth, focal, princpt, tol: float = VIS_TOLERANCE) -> np.ndarray:
    """Per-joint visibility from the depth buffer. (J,) bool

    A joint is visible when its pixel lies in the image and the first surface the
    renderer drew there is not in front of the joint by more than the joint's own
    tissue (``cover``, see :func:`render.joint_cover`) plus ``tol`` mm.
    """
    H, W = depth.shape
    uv = camlib.cam_to_pixel(np.asarray(joints_cam, float), np.asarray(focal, float), np.asarray(princpt, float))
    col, row = np.round(uv[:, 0]).astype(np.int64), np.round(uv[:, 1]).astype(np.int64)
    inside = (col >= 0) & (col < W) & (row >= 0) & (row < H) & (joints_cam[:, 2] > 0)
    d = depth[row.clip(0, H - 1), col.clip(0, W - 1)]
    return inside & (d >= joints_cam[:, 2] - cover - tol)


def _bbox(mask, uv, size):
    """[x, y, w, h] around the pixels of ``mask`` (S, S) bool (each pixel a unit square) and the
    points ``uv`` (N, 2) px that lie in the image; the whole image when there are none."""
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    xs, ys = cols[[0, -1]] if cols.size else cols, rows[[0, -1]] if rows.size else rows  # the extreme pixels
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < size) & (uv[:, 1] >= 0) & (uv[:, 1] < size)
    x = np.concatenate([xs - 0.5, xs + 0.5, uv[inside, 0]])
    y = np.concatenate([ys - 0.5, ys + 0.5, uv[inside, 1]])
    if x.size == 0:
        return [0.0, 0.0, float(size), float(size)]
    x0, x1 = max(float(x.min()), 0.0), min(float(x.max()), size - 1.0)
    y0, y1 = max(float(y.min()), 0.0), min(float(y.max()), size - 1.0)
    return [round(x0, 2), round(y0, 2), round(max(x1 - x0, 1.0), 2), round(max(y1 - y0, 1.0), 2)]


def render_scene(scene: Scene, focal, princpt, size: int, appearance: rd.Appearance, background,
                 joints=None, dorsal=None, shadow=None, look: rd.SkinLook | None = None) -> dict:
    """Draw a scene (no blur, no noise) and read the annotations the renderer gives.

    joints / dorsal: (42, 3) to draw instead of the scene's own kinematics (render_sample
    passes the joints as they come back from the world frame). background: (S, S, 3) in
    [0, 1]. shadow: None or ((dx, dy) px, strength) of the hands' shadow on the background.
    look: None for style "v1" (capsules and slabs, :func:`render.shade`), or the
    :class:`render.SkinLook` of style "v2" (a smooth skin, :func:`render.rasterize_blended` and
    :func:`render.shade_skin`).
    Returns image (S, S, 3) float32, joint_vis (42,) float32, layer (S, S) int8 (-1 background,
    0 right hand, 1 right forearm, 2 left hand, 3 left forearm), occlusion, raster, primitives.
    """
    if joints is None:
        joints, dorsal = scene.kinematics()
    prims = scene.primitives(joints, dorsal, style="v1" if look is None else "v2")
    if look is None:
        ras = rd.rasterize(prims, focal, princpt, size)
    else:
        ras = rd.rasterize_blended(prims, focal, princpt, size, look.blend)
    layer = ras.layer
    if shadow is not None:
        background = rd.cast_shadow(background, layer >= 0, shadow[0], shadow[1], size * 0.02)
    if look is None:
        img = rd.shade(ras, prims, appearance, background, focal, princpt)
    else:
        img = rd.shade_skin(ras, prims, appearance, look, background, focal, princpt)
    vis = np.zeros(sk.NUM_JOINTS, np.float32)
    for h in scene.present:
        sl = sk.HAND_SLICE[h]
        cover = rd.joint_cover(joints[sl], prims, sk.HANDS.index(h))
        vis[sl] = joint_visibility(joints[sl], cover, ras.depth, focal, princpt)
    occ = occlusion_from_layers(ras.layers) if scene.hand_type == "interacting" else 0.0
    return {"image": img, "joint_vis": vis, "layer": layer.astype(np.int8), "occlusion": occ, "raster": ras,
            "primitives": prims}


def render_sample(rng_or_seed=0, size: int = 256, hand_type: str | None = None, interacting_frac: float = 0.6,
                  occlusion: str = "any", rig: CameraRig | None = None, camera: int | None = None,
                  interaction: str | None = None, style: str = DEFAULT_STYLE) -> dict:
    """Render one random sample; everything a notebook wants to look at.

    rng_or_seed: a ``np.random.Generator`` or an int seed. hand_type: "right" | "left" |
    "interacting" or None (interacting with probability ``interacting_frac``, else a
    random single hand). occlusion: "low" | "medium" | "high" | "any" (two-hand samples).
    rig / camera: the camera rig (default ``camera_rig(size)``) and camera index (default random).
    interaction: force one kind of two-hand interaction (see :data:`INTERACTIONS`).
    style: "v2" (:data:`DEFAULT_STYLE`) or "v1" (:data:`STYLES`); both draw the same scene and
    appearance from a seed, so a seed gives the same poses, views and skin tones in both looks (their
    backgrounds differ: v1's have stripes and checker boards, see :func:`render.random_background`;
    and so does everything drawn after the background).

    Returns a dict: image (S, S, 3) uint8; joints_world, joints_cam (42, 3) mm; joints_img
    (42, 2) px; joint_valid, joint_vis (42,) float32 0/1; hand_type; interaction; camera
    (id), capture, camrot (3, 3), campos (3,), focal (2,), princpt (2,); bbox [x, y, w, h]
    around the visible hands; occlusion (float, fraction of the more hidden hand covered by
    the other); occlusion_level; layer (S, S) int8 map (-1 background, 0 right hand,
    1 right forearm, 2 left hand, 3 left forearm); scene, appearance, background, look (to re-render;
    look: None for "v1", the :class:`render.SkinLook` of "v2").
    """
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)
    size = int(size)
    if occlusion not in OCCLUSION_LEVELS:
        raise ValueError(f"occlusion must be one of {OCCLUSION_LEVELS}, got {occlusion!r}")
    check_style(style)
    rig = camera_rig(size) if rig is None else rig
    if hand_type is None:
        hand_type = "interacting" if rng.uniform() < interacting_frac else ("right" if rng.uniform() < 0.5 else "left")
    cam = int(rng.integers(len(rig))) if camera is None else int(camera)
    focal, princpt = rig.focal[cam], rig.princpt[cam]
    scene, _ = sample_scene(rng, hand_type, focal, princpt, size, occlusion, interaction)
    app = rd.sample_appearance(rng)
    background = rd.random_background(rng, size, skin=app.skin[0], style=style)

    # annotations go through the world frame exactly as a reader will do it
    cam_scene, dorsal = scene.kinematics()
    world = np.round(camlib.cam_to_world(cam_scene, rig.camrot[cam], rig.campos[cam]), 4)
    joints_cam = camlib.world_to_cam(world, rig.camrot[cam], rig.campos[cam])
    joints_img = camlib.cam_to_pixel(joints_cam, focal, princpt)

    shadow = None
    if rng.uniform() < 0.7:  # soft shadow of the hands on the "wall" behind them
        off = -app.light_dir[:2] / max(abs(app.light_dir[2]), 0.3) * size * rng.uniform(0.02, 0.06)
        shadow = (off, rng.uniform(0.2, 0.45))
    look = sample_look(rng, scene, size, style)
    out = render_scene(scene, focal, princpt, size, app, background, joints_cam, dorsal, shadow, look)
    if look is not None:
        image = camera_effects(out["image"], rng)
    else:
        pil = Image.fromarray((out["image"] * 255 + 0.5).astype(np.uint8))
        pil = Image.blend(pil, pil.filter(_SMOOTH), rng.uniform(0.3, 1.0))  # mild blur (sigma up to ~0.7 px)
        amp = int(rng.integers(2, 8))  # sensor noise: uniform integers in [-amp, amp]
        noise = rng.integers(-amp, amp + 1, size=(size, size, 3), dtype=np.int16)
        image = np.clip(np.asarray(pil, dtype=np.int16) + noise, 0, 255).astype(np.uint8)

    valid = np.zeros(sk.NUM_JOINTS, np.float32)
    for h in scene.present:
        valid[sk.HAND_SLICE[h]] = 1.0
    layer = out["layer"]
    bbox = _bbox((layer == 0) | (layer == 2), joints_img[valid > 0], size)
    vis, occ = out["joint_vis"], out["occlusion"]
    return {
        "image": image,
        "joints_world": world,
        "joints_cam": joints_cam,
        "joints_img": joints_img,
        "joint_valid": valid,
        "joint_vis": vis,
        "hand_type": hand_type,
        "interaction": scene.interaction,
        "capture": CAPTURE,
        "camera": rig.names[cam],
        "camrot": rig.camrot[cam],
        "campos": rig.campos[cam],
        "focal": np.asarray(focal, np.float64),
        "princpt": np.asarray(princpt, np.float64),
        "bbox": bbox,
        "occlusion": occ,
        "occlusion_level": occlusion if hand_type == "interacting" else "none",
        "layer": layer,
        "scene": scene,
        "appearance": app,
        "background": background,
        "look": look,
    }


def sample_look(rng: np.random.Generator, scene: Scene, size: int, style: str = DEFAULT_STYLE) -> rd.SkinLook | None:
    """The extra appearance of ``style`` (:data:`STYLES`), drawn from ``rng`` after the scene, appearance,
    background and shadow: None for "v1" (draws nothing), a :class:`render.SkinLook` for "v2" (its
    blend radius from the scene's finger radii) for an image of ``size`` px. Raises ValueError for another style."""
    if check_style(style) == "v1":
        return None
    radius = float(np.mean([scene.shapes[h].radii[1:, 1:4].mean() for h in scene.present]))
    return rd.sample_skin_look(rng, size, radius)


def camera_effects(image, rng: np.random.Generator) -> np.ndarray:
    """Style "v2": what a camera does to the rendered float image (S, S, 3) in [0, 1] -> uint8 (S, S, 3).

    White balance (a gain of 0.92-1.08 per channel drawn, :data:`render.COLOUR_CAST` of its spread kept:
    0.976-1.024) and gamma (0.85-1.15); defocus, a blur of
    sigma 0.5-1.5 px per 256 px of image (docs/realism.md: blur hides the hard edges that put
    MediaPipe off; one box filter of that variance, :func:`box_radius`, is a third of the cost of
    PIL's Gaussian); sensor noise, Gaussian, sigma 1-4 grey levels in brightness plus a third of
    that per channel in 2 x 2 blocks (colour noise is coarser after demosaicing); half the time a
    JPEG round trip at quality 55-90.
    """
    f32 = np.float32
    size = image.shape[0]
    gain, gamma = rng.uniform(0.92, 1.08, size=3), rng.uniform(0.85, 1.15)
    gain = rd.damped_cast(gain)  # what auto white balance leaves of a colour cast
    levels = np.arange(256) / 255.0
    lut = np.concatenate([np.clip(levels * g, 0.0, 1.0) ** gamma for g in gain]) * 255 + 0.5  # (768,) per channel
    levels8 = np.clip(image, 0.0, 1.0)  # (S, S, 3) float32 -> 8 bits, in place on the copy
    levels8 *= 255
    levels8 += 0.5
    pil = Image.fromarray(levels8.astype(np.uint8)).point(lut.astype(np.uint8).tolist())
    pil = pil.filter(ImageFilter.BoxBlur(box_radius(rng.uniform(0.5, 1.5) * size / 256)))
    sigma = f32(rng.uniform(1.0, 4.0))
    half = (size + 1) // 2
    noise = (rng.standard_normal((half, half, 3), dtype=f32) / f32(3)).repeat(2, 0).repeat(2, 1)[:size, :size]
    noise += rng.standard_normal((size, size, 1), dtype=f32)  # colour in 2 x 2 blocks + grey; in place from here
    noise *= sigma
    noise += np.asarray(pil, f32)
    noise += f32(0.5)
    out = np.clip(noise, 0, 255, out=noise).astype(np.uint8)
    if rng.uniform() < 0.5:
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=int(rng.integers(55, 91)))
        out = np.asarray(Image.open(buf))  # an RGB JPEG decodes to RGB
    return out


def box_radius(sigma: float) -> float:
    """The radius r of PIL's ``BoxBlur`` whose kernel has standard deviation ``sigma`` (px).

    ``BoxBlur(r)``, r = n + f (n whole, 0 <= f < 1), averages 2n + 1 pixels with weight 1 and the next
    two with weight f, so its variance is (n (n+1) (2n+1) / 3 + 2 f (n+1)^2) / (2n + 1 + 2f); solved for f.
    """
    var = float(sigma) ** 2
    n = int((np.sqrt(1.0 + 12.0 * var) - 1.0) // 2)  # the largest n with n (n+1) / 3 <= var
    a = n * (n + 1) * (2 * n + 1) / 3.0
    return n + (var * (2 * n + 1) - a) / (2.0 * (n + 1) ** 2 - 2.0 * var)


# --------------------------------------------------------------------------- #
# The dataset on disk (InterHand2.6M format)
# --------------------------------------------------------------------------- #
def _split_key(split: str) -> int:
    return zlib.crc32(split.encode("utf-8"))


def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of ``split``: independent of the dataset size, and
    different splits written with the same seed do not share images."""
    return np.random.default_rng([int(seed), _split_key(split), int(index)])


def skeleton_text() -> str:
    """InterHand2.6M's ``skeleton.txt``: one "name id parent_id" line per joint (-1 for the wrists)."""
    lines = ["# keypoint name, keypoint index, parent index"]
    for j, name in enumerate(sk.JOINT_NAMES):
        hand, joint = name.split("_")
        lines.append(f"{hand[0]}_{joint} {j} {int(sk.PARENTS[j])}")
    return "\n".join(lines) + "\n"


def _nested(v):
    return [[int(x)] for x in v]


def _record(args):
    """Render sample i and build its json entries (module-level so worker processes can run it)."""
    i, seed, split, size, interacting_frac, occlusion, rig, style = args
    s = render_sample(sample_rng(seed, split, i), size, None, interacting_frac, occlusion, rig, style=style)
    seq = f"synth_{s['hand_type']}"
    file_name = f"Capture{CAPTURE}/{seq}/cam{s['camera']}/image{i:06d}.jpg"
    buf = io.BytesIO()
    Image.fromarray(s["image"]).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    image = {"id": i, "file_name": file_name, "width": size, "height": size, "capture": CAPTURE,
             "seq_name": seq, "camera": s["camera"], "frame_idx": i}
    ann = {"id": i, "image_id": i, "bbox": s["bbox"], "joint_valid": _nested(s["joint_valid"]),
           "hand_type": s["hand_type"], "hand_type_valid": 1,
           "joint_vis": [int(v) for v in s["joint_vis"]], "occlusion": round(float(s["occlusion"]), 4),
           "occlusion_level": s["occlusion_level"]}
    j3d = {"world_coord": s["joints_world"].tolist(), "joint_valid": _nested(s["joint_valid"]),
           "hand_type": s["hand_type"], "hand_type_valid": 1}
    return file_name, buf.getvalue(), image, ann, j3d


def _dump(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _check_args(num, size, interacting_frac, occlusion, split, style=DEFAULT_STYLE):
    if int(num) < 1:
        raise ValueError(f"--num must be at least 1, got {num}")
    if int(size) < 32:
        raise ValueError(f"--size must be at least 32 pixels, got {size}")
    if not 0.0 <= float(interacting_frac) <= 1.0:
        raise ValueError(f"--interacting-frac must be in [0, 1], got {interacting_frac}")
    if occlusion not in OCCLUSION_LEVELS:
        raise ValueError(f"--occlusion must be one of {', '.join(OCCLUSION_LEVELS)}, got {occlusion!r}")
    if style not in STYLES:
        raise ValueError(f"--style must be one of {', '.join(STYLES)}, got {style!r}")
    if not split or "/" in split or "\\" in split or split.startswith("."):
        raise ValueError(f"--split must be a plain name such as train, val or test, got {split!r}")


def write_dataset(out, split: str = "train", num: int = 1000, size: int = 256, seed: int = 0,
                  interacting_frac: float = 0.6, occlusion: str = "any", progress: bool = True,
                  workers: int = 1, style: str = DEFAULT_STYLE) -> dict:
    """Render ``num`` samples into ``out`` in the InterHand2.6M layout (JPEG quality 95, 4:4:4).

    style: the renderer's look, "v2" (:data:`DEFAULT_STYLE`) or "v1" (:data:`STYLES`, :func:`render_sample`).

    Atomic per split: images go to a hidden temporary folder and the json files to
    temporary names; at the end the old split (if any) is made unloadable (its data json
    removed first), the images folder renamed into place, then the camera and joint_3d
    json, and the data json last. An exception or a kill part-way leaves no loadable new
    split; other splits in ``out`` are never touched. Returns a small summary dict.
    """
    _check_args(num, size, interacting_frac, occlusion, split, style)
    from tqdm.auto import tqdm

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder (it is created if missing)")
    ann_dir = out / "annotations" / "all"
    img_root = out / "images"
    ann_dir.mkdir(parents=True, exist_ok=True)
    img_root.mkdir(parents=True, exist_ok=True)
    rig = camera_rig(size)
    tmp_img = Path(tempfile.mkdtemp(prefix=f".{split}.", suffix=".tmp", dir=img_root))
    os.chmod(tmp_img, 0o755)  # mkdtemp makes it private; the split folder should not be
    tmp_json = {}
    try:
        images, anns, joints = [], [], {}
        jobs = [(i, seed, split, size, interacting_frac, occlusion, rig, style) for i in range(int(num))]
        if workers > 1:
            import multiprocessing as mp

            pool = mp.get_context("spawn").Pool(workers)
            results = pool.imap(_record, jobs, chunksize=8)
        else:
            pool, results = None, map(_record, jobs)
        try:
            for file_name, jpeg, image, ann, j3d in tqdm(results, total=len(jobs), desc=f"synth {split}",
                                                          disable=not progress, unit="img"):
                path = tmp_img / file_name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(jpeg)
                images.append(image)
                anns.append(ann)
                joints[str(image["frame_idx"])] = j3d
        finally:
            if pool is not None:
                pool.terminate()
        cams = {
            "campos": {n: rig.campos[c].tolist() for c, n in enumerate(rig.names)},
            "camrot": {n: rig.camrot[c].tolist() for c, n in enumerate(rig.names)},
            "focal": {n: rig.focal[c].tolist() for c, n in enumerate(rig.names)},
            "princpt": {n: rig.princpt[c].tolist() for c, n in enumerate(rig.names)},
        }
        contents = {
            "camera": _dump({str(CAPTURE): cams}),
            "joint_3d": _dump({str(CAPTURE): joints}),
            "data": _dump({"images": images, "annotations": anns}),
        }
        for kind, text in contents.items():
            fd, tmp = tempfile.mkstemp(prefix=f".InterHand2.6M_{split}_{kind}.", suffix=".json.tmp", dir=ann_dir)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.chmod(tmp, 0o644)
            tmp_json[kind] = Path(tmp)
        skel = out / "annotations" / "skeleton.txt"
        if not skel.exists() or skel.read_text() != skeleton_text():
            fd, tmp = tempfile.mkstemp(prefix=".skeleton.", suffix=".tmp", dir=skel.parent)
            with os.fdopen(fd, "w") as fh:
                fh.write(skeleton_text())
            os.chmod(tmp, 0o644)
            os.replace(tmp, skel)
        # --- commit: old split unloadable first, images in place, data json last ---
        final = {kind: ann_dir / f"InterHand2.6M_{split}_{kind}.json" for kind in contents}
        final["data"].unlink(missing_ok=True)
        dest = img_root / split
        if dest.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{split}.old.", dir=img_root))
            os.replace(dest, trash / split)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp_img, dest)
        for kind in ("camera", "joint_3d", "data"):
            os.replace(tmp_json.pop(kind), final[kind])
    finally:
        shutil.rmtree(tmp_img, ignore_errors=True)
        for tmp in tmp_json.values():
            tmp.unlink(missing_ok=True)
    n_inter = sum(a["hand_type"] == "interacting" for a in anns)
    return {"out": str(out), "split": split, "num": len(anns), "interacting": n_inter, "size": size,
            "style": style, "data_json": str(final["data"])}


# --------------------------------------------------------------------------- #
# Benchmark and CLI
# --------------------------------------------------------------------------- #
def benchmark(sizes=(128, 256), num: int | None = None, seed: int = 0, workers: int = 1, style: str = DEFAULT_STYLE) -> dict:
    """Images per second of :func:`render_sample`, and with JPEG encoding, in this one process.

    Both wall-clock and CPU-time rates are reported: on a shared machine the CPU-time rate
    is the better estimate of what one free core does. With ``workers`` > 1 also the wall-clock
    rate of ``synth --workers N`` (render + JPEG in N processes, as :func:`write_dataset` runs
    them; the pool's start-up is not timed): ``result[size]["workers_images_per_s"]``. style: the
    renderer's look (:data:`STYLES`).
    """
    import platform

    from h2t_lib.utils import is_fast

    num = num or (10 if is_fast() else 200)
    result = {"num": num, "process": "single", "python": platform.python_version(), "numpy": np.__version__,
              "machine": platform.machine(), "cpu_count": os.cpu_count(),
              "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
              "interacting_frac": 0.6, "occlusion": "any", "style": style}
    for size in sizes:
        rig = camera_rig(size)
        render_sample(sample_rng(seed, "bench", 0), size, rig=rig, style=style)  # warm-up
        w0, c0 = time.perf_counter(), time.process_time()
        for i in range(num):
            render_sample(sample_rng(seed, "bench", i), size, rig=rig, style=style)
        w1, c1 = time.perf_counter(), time.process_time()
        for i in range(num):
            _record((i, seed, "bench", size, 0.6, "any", rig, style))
        w2, c2 = time.perf_counter(), time.process_time()
        result[str(size)] = {"images_per_s": round(num / (w1 - w0), 1), "images_per_cpu_s": round(num / (c1 - c0), 1),
                             "with_jpeg_images_per_s": round(num / (w2 - w1), 1),
                             "with_jpeg_images_per_cpu_s": round(num / (c2 - c1), 1)}
        if workers > 1:
            result[str(size)]["workers_images_per_s"] = round(_pool_rate(num, seed, size, rig, workers, style), 1)
    if workers > 1:
        result["workers"] = int(workers)
    return result


def _pool_rate(num: int, seed: int, size: int, rig: CameraRig, workers: int, style: str = DEFAULT_STYLE) -> float:
    """Wall-clock images/s of rendering + JPEG-encoding ``num`` samples in ``workers`` spawned processes."""
    import multiprocessing as mp

    jobs = [(i, seed, "bench", size, 0.6, "any", rig, style) for i in range(num)]
    with mp.get_context("spawn").Pool(workers) as pool:
        list(pool.imap(_record, jobs[:workers]))  # start-up and imports, not timed
        t0 = time.perf_counter()
        for _ in pool.imap(_record, jobs, chunksize=4):
            pass
        return num / (time.perf_counter() - t0)


def example_grid(path=None, size: int = 256, seed: int = 0, n: int = 16, ncols: int = 4, style: str = DEFAULT_STYLE):
    """A grid of ``n`` samples (3 of 4 interacting) in the renderer's ``style``, every other one with
    its skeleton drawn over it (hollow circles: joints the renderer found hidden). Saved to ``path`` when given."""
    from h2t_lib import viz

    rig = camera_rig(size)
    samples = [render_sample(sample_rng(seed, "grid", i), size, "interacting" if i % 4 != 3 else None,
                             interacting_frac=0.0, rig=rig, style=style) for i in range(n)]
    titles = [f"{s['hand_type']}" + (f" ({s['interaction']}, occ {s['occlusion']:.2f})" if s["hand_type"] == "interacting"
                                      else "") for s in samples]
    fig = viz.sample_grid(samples, ncols, None, overlay=[i % 2 == 1 for i in range(n)], titles=titles)
    if path is not None:  # a 256-colour PNG: a quarter of the bytes, fine for a README
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        with Image.open(buf) as im:
            im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
                path, optimize=True)
    return fig


def add_arguments(parser) -> None:
    parser.add_argument("--out", help="dataset folder (InterHand2.6M layout); required unless --bench or --grid")
    parser.add_argument("--split", default="train", help="split name: train, val, test (default train)")
    parser.add_argument("--num", type=int, default=1000, help="number of images (default 1000)")
    parser.add_argument("--size", type=int, default=256, help="image size in pixels, square (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--interacting-frac", type=float, default=0.6,
                        help="fraction of two-hand samples, the rest are single hands (default 0.6)")
    parser.add_argument("--occlusion", default="any", choices=OCCLUSION_LEVELS,
                        help="how strongly the hands overlap in two-hand samples (default any)")
    parser.add_argument("--workers", type=int, default=1, help="render processes (default 1; output is identical)")
    parser.add_argument("--style", default=DEFAULT_STYLE, choices=STYLES,
                        help=f"the renderer's look: v2 smooth skin, skin shading and camera effects, or v1 capsules "
                             f"(the first look; docs/realism.md); default {DEFAULT_STYLE}")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--bench", action="store_true",
                        help="print images/second at 128 and 256 px (1 process; with --workers N also N processes) "
                             "and write docs/synth_speed.json")
    parser.add_argument("--bench-json", default=None,
                        help="where --bench writes its json (default docs/synth_speed.json for the default look, "
                             "docs/synth_speed_<style>.json for another)")
    parser.add_argument("--grid", default=None, metavar="PNG",
                        help="instead of a dataset, save a 4x4 grid of examples (--size, --seed) to this image")


def run(args) -> int:
    from h2t_lib.cli import UserError
    from h2t_lib.utils import atomic_write_json, check_writable

    if args.bench:
        if args.workers < 1:
            raise UserError(f"--workers must be at least 1, got {args.workers}")
        name = "synth_speed.json" if args.style == DEFAULT_STYLE else f"synth_speed_{args.style}.json"
        path = Path(args.bench_json) if args.bench_json else Path(__file__).resolve().parents[2] / "docs" / name
        check_writable(path)
        res = benchmark(workers=args.workers, style=args.style)
        for size in (128, 256):
            r = res[str(size)]
            print(f"synth {size:>3} px, style {args.style}: {r['images_per_s']:6.1f} img/s ({r['images_per_cpu_s']:.1f} per CPU second) rendered, "
                  f"{r['with_jpeg_images_per_s']:6.1f} img/s ({r['with_jpeg_images_per_cpu_s']:.1f}) with JPEG encoding, 1 process")
            if args.workers > 1:
                print(f"synth {size:>3} px: {r['workers_images_per_s']:6.1f} img/s with JPEG encoding, {args.workers} processes")
        if res.get("load_average"):
            print(f"load average {res['load_average'][0]:.2f} on {res['cpu_count']} cores (a busy machine slows the wall-clock rate)")
        atomic_write_json(path, res)
        print(f"wrote {path}")
        return 0
    if args.grid:
        check_writable(args.grid)
        example_grid(args.grid, args.size, args.seed, style=args.style)
        print(f"wrote {args.grid}")
        return 0
    if not args.out:
        raise UserError("--out DIR is required (or use --bench or --grid)")
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    try:
        _check_args(args.num, args.size, args.interacting_frac, args.occlusion, args.split, args.style)
    except ValueError as e:
        raise UserError(str(e)) from None
    check_writable(args.out, folder=True)
    t0 = time.perf_counter()
    summary = write_dataset(args.out, args.split, args.num, args.size, args.seed, args.interacting_frac,
                            args.occlusion, progress=not args.no_progress, workers=args.workers, style=args.style)
    print(f"wrote {summary['num']} images ({summary['interacting']} interacting) of {args.size} px to "
          f"{args.out} split {args.split} in {time.perf_counter() - t0:.1f} s")
    return 0
