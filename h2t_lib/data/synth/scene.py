"""Scenes: two procedural hands posed so that they really interact (or one hand), placed in view."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from h2t_lib import camera as camlib, skeleton as sk
from h2t_lib.data import hand_model as hm
from h2t_lib.data.synth.primitives import CAPSULE, Primitives, SLAB, _cross, forearm_primitive, hand_primitives
from h2t_lib.data.synth.raster import rasterize
from h2t_lib.data.synth.rig import (DEFAULT_STYLE, INTERACTIONS, INTERACTIONS_HIGH, OCCLUSION_LEVELS, OCCLUSION_RANGES,
                                    _OCC_RES)


@dataclass
class Scene:
    """Two hands in the camera frame (mm). ``poses``/``shapes``/``wrist_bend`` hold both
    hands; the absent hand of a single-hand sample is posed far outside the view.
    ``wrist_bend[hand] = (flexion, deviation)`` degrees turn the forearm (see
    :func:`synth.forearm_primitive`)."""

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

    def primitives(self, joints=None, dorsal=None, forearm: bool = True, style: str = DEFAULT_STYLE) -> Primitives:
        """Render primitives of the present hands (optionally from given (42, 3) joints / dorsal; see
        :data:`STYLES` for ``style``)."""
        if joints is None:
            joints, dorsal = self.kinematics()
        return Primitives.concat(
            hand_primitives(joints[sk.HAND_SLICE[h]], self.shapes[h].radii,
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
    side = _cross(y, np.array([0.0, 0.0, -1.0]))
    side /= np.linalg.norm(side)
    up = _cross(side, y)  # towards the camera, orthogonal to y
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


def _spheres(prims: Primitives):
    """Approximate primitives by spheres: capsules by spheres spaced at most one radius apart
    (the surface dips by < 14% of r between them), slabs by 15 spheres on the triangle.
    Returns (centres (K, 3), radii (K,), primitive index (K,))."""
    cap = np.flatnonzero(prims.kind == CAPSULE)
    a, b, ra, rb = prims.a[cap], prims.b[cap], prims.ra[cap], prims.rb[cap]
    n = np.ceil(np.linalg.norm(b - a, axis=1) / np.minimum(ra, rb)).astype(int) + 1
    pid = np.repeat(np.arange(len(n)), n)
    t = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / np.repeat(np.maximum(n - 1, 1), n)
    centres = [a[pid] + t[:, None] * (b - a)[pid]]
    radii = [ra[pid] + t * (rb - ra)[pid]]
    owner = [cap[pid]]
    sl = np.flatnonzero(prims.kind == SLAB)
    if sl.size:
        A, B, C = prims.a[sl], prims.b[sl], prims.c[sl]
        pts = A[:, None] + _BARY[None, :, :1] * (B - A)[:, None] + _BARY[None, :, 1:] * (C - A)[:, None]
        centres.append(pts.reshape(-1, 3))
        radii.append(np.repeat(prims.ra[sl], len(_BARY)))
        owner.append(np.repeat(sl, len(_BARY)))
    return np.concatenate(centres), np.concatenate(radii), np.concatenate(owner)


def contact_shift(prims_a: Primitives, prims_b: Primitives, direction, gap: float = 0.0) -> float | None:
    """How far to move hand B along ``direction`` so that it just touches hand A with ``gap`` mm.

    Both hands are approximated by sphere sets. Split each centre into its height ``h``
    along d and its position ``p`` across d: spheres i (of A) and j (of B) overlap while
    ``(h_j + s - h_i)^2 + |p_j - p_i|^2 < R^2`` (R = r_i + r_j + gap), so coming from far
    along +d, B first touches A at ``s = max_ij (h_i - h_j + sqrt(R^2 - |p_j - p_i|^2))``
    over the pairs that meet at all. None when B would pass A without touching it.
    """
    d = np.asarray(direction, dtype=float)
    d = d / np.linalg.norm(d)
    e1 = _cross(d, np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0]))
    e1 /= np.linalg.norm(e1)
    basis = np.stack([d, e1, _cross(d, e1)], axis=1).astype(np.float32)  # (3, 3): height, across 1, across 2
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


def measure_occlusion(prims: Primitives, focal, princpt, size) -> float:
    """Inter-hand occlusion of rendered primitives, see :func:`occlusion_from_layers`."""
    return occlusion_from_layers(rasterize(prims, focal, princpt, size).layers)


def occlusion_from_layers(layers) -> float:
    """The largest fraction of one hand's silhouette (forearm excluded) hidden by the other
    hand or its forearm; 0 when only one hand is in the picture. layers: (4, H, W) depths.

    Used in notebook 01.
    """
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
    prims_a = hand_primitives(ja, shapes[a].radii, no_dorsal, a, False)  # hands touch; forearms come later
    prims_b = hand_primitives(jb, shapes[b].radii, no_dorsal, b, False)
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
        occ = measure_occlusion(Primitives.concat([prims_a.translated(shift), prims_b.translated(off + shift)]),
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
    arms = {h: _spheres(forearm_primitive(joints[h], shapes[h].radii, h, bend[h], axes=axes[h]))[:2]
            for h in (a, b)}  # (centres, radii) of each forearm
    for h, o in ((a, b), (b, a)):
        others = (np.concatenate([hands[o][0], arms[o][0]]), np.concatenate([hands[o][1], arms[o][1]]))
        if not overlaps(arms[h], others):
            continue
        for cand in _ARM_TURNS:
            arm = _spheres(forearm_primitive(joints[h], shapes[h].radii, h, cand, axes=axes[h]))[:2]
            if not overlaps(arm, others):
                bend[h], arms[h] = cand, arm
                break
    return scene, occ
