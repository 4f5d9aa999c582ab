"""A small vectorised ray-caster for hands made of capsules and slabs (numpy only).

A hand is drawn from two kinds of primitives:

* *capsules*: a segment swept by a sphere whose radius goes linearly from ``ra`` to
  ``rb``: one per finger bone, the palm's edges, a thenar pad and the forearm;
* *slabs*: a triangle swept by a sphere of radius ``r`` (a flat plate with rounded
  edges): two of them make the flattened palm between the wrist and the knuckles.

The renderer is a z-buffer over pixel "fragments":

1. Every primitive is cut into pieces short enough on screen, then only the pixels
   inside each piece's screen bounding box become fragments (for all pieces at once,
   no Python loop over primitives).
2. For a capsule fragment, the ray through the pixel centre is intersected with the
   sphere of the sweep whose projection is closest to the pixel (exact for the end
   spheres, a tight approximation along the body); for a slab fragment, with the
   triangle's plane pushed ``r`` towards the camera, kept when the hit lies over the
   triangle (the rounded rims are capsules along its edges).
3. ``np.minimum.at`` keeps the nearest hit per pixel and *layer* (layers separate the
   right hand, the left hand and their forearms, so the occlusion of one hand by the
   other can be measured), then the layers are composited by depth.
4. Shading (:func:`shade`): Lambert + ambient + a little Blinn-Phong specular, a skin
   tone per hand, lighter palms, nails on the distal phalanges, optional sleeves.

That is the first look, style "v1". The default look, "v2" (issue 13, docs/realism.md), adds
soft palm volumes (:func:`palm_volumes`), a palm and forearm :data:`V2_THICKNESS` as thick,
blends each layer's primitives into one smooth skin (:func:`rasterize_blended`) and shades it as
skin (:func:`shade_skin`: wrap light, crevices, creases), in front of backgrounds without stripes and
checker boards (:func:`random_background`); :mod:`h2t_lib.data.synth` chooses.

Camera frame and pixel conventions are those of :mod:`h2t_lib.camera` (x right,
y down, z forward; ``u = X/Z fx + cx``); pixel ``(row i, col j)`` is centred at
``(u, v) = (j, i)``.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from h2t_lib import skeleton as sk
from h2t_lib.data import hand_model as hm

# primitive kinds and parts
CAPSULE, SLAB = 0, 1
SKIN, FOREARM, DISTAL = 0, 1, 2
#: style "v2" only: the palm's slabs and their rims, one piece for :func:`rasterize_blended`
PALM = 3
#: style "v2" only: the phalanges between the base and the distal one (where the flexion creases are)
PHALANX = 4
#: layers of the depth buffer: (right hand, right forearm, left hand, left forearm)
NUM_LAYERS = 4


def _cross(u, v):
    """Cross product of (..., 3) arrays (np.cross is slow on tiny inputs)."""
    return np.stack([u[..., 1] * v[..., 2] - u[..., 2] * v[..., 1],
                     u[..., 2] * v[..., 0] - u[..., 0] * v[..., 2],
                     u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]], axis=-1)


@dataclass
class Primitives:
    """P primitives in the camera frame (mm).

    kind: (P,) CAPSULE | SLAB. A capsule sweeps a sphere from ``a`` (radius ``ra``) to ``b``
    (radius ``rb``); a slab sweeps a sphere of radius ``ra`` over the triangle (a, b, c).
    hand: (P,) 0 right / 1 left; part: (P,) SKIN | FOREARM | DISTAL; dorsal: (P, 3) unit
    "back of the hand" direction (palm colour vs back colour, and where the nails are).
    """

    kind: np.ndarray
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    ra: np.ndarray
    rb: np.ndarray
    hand: np.ndarray
    part: np.ndarray
    dorsal: np.ndarray

    @property
    def layer(self) -> np.ndarray:
        """Depth-buffer layer of each primitive: 2 * hand + (part == FOREARM)."""
        return 2 * self.hand + (self.part == FOREARM)

    def __len__(self) -> int:
        return len(self.ra)

    @staticmethod
    def concat(items) -> "Primitives":
        items = list(items)
        return Primitives(*(np.concatenate([getattr(p, name) for p in items]) for name in _PRIM_FIELDS))

    def translated(self, offset) -> "Primitives":
        o = np.asarray(offset, dtype=float)
        return Primitives(self.kind, self.a + o, self.b + o, self.c + o, self.ra, self.rb, self.hand, self.part,
                          self.dorsal)

    def select(self, mask) -> "Primitives":
        return Primitives(*(getattr(self, name)[mask] for name in _PRIM_FIELDS))


#: the field names of :class:`Primitives` in order (``dataclasses.fields`` is slow to call per use)
_PRIM_FIELDS = tuple(f.name for f in fields(Primitives))


#: the 20 finger bones as (parent joint, child joint, finger, segment k) with k = 0 for the bone leaving the wrist
_BONES = np.array([(c[k], c[k + 1], f, k) for f, c in enumerate(sk.FINGER_CHAINS[n] for n in hm.FINGERS) for k in range(4)])


def hand_primitives(joints21, radii, dorsal21=None, side: str = "right", forearm: bool = True,
                    wrist_bend=(0.0, 0.0), style: str = "v1") -> Primitives:
    """The primitives of one hand from its 21 joints.

    joints21: (21, 3) mm; radii: (5, 5) per-finger radii as ``HandShape.radii``;
    dorsal21: (21, 3) per-bone dorsal directions from :func:`hand_model.forward_kinematics`
    (estimated from the joints when None, which works for any skeleton, e.g. a prediction).
    Fingers: one tapered capsule per bone (the metacarpals thinner, inside the palm; the last
    one stops short of the tip so that the tip joint lies on the skin). Palm: two slabs (wrist
    corners, index and pinky knuckles) with capsule rims, a thenar pad and the thumb web.
    The forearm (last primitive) is :func:`forearm_primitive`. ``style="v2"`` marks the slabs and
    rims as one piece (part :data:`PALM`), adds the soft volumes of :func:`palm_volumes` and makes the
    palm and the forearm :data:`V2_THICKNESS` times as thick.
    """
    j = np.asarray(joints21, dtype=float)
    radii = np.asarray(radii, dtype=float)
    x, y, z = hm.hand_axes(j, side)
    if dorsal21 is None:
        dorsal21 = _estimate_dorsal(j, x, z)
    r_palm = palm_radius(radii, style)
    # --- fingers: 20 capsules at once ---
    pa, ch, f, k = _BONES.T
    a, b = j[pa], j[ch]
    ra, rb = radii[f, k], radii[f, k + 1]
    meta = (k == 0) & (f > 0)  # metacarpals lie inside the palm slab
    ra, rb = np.where(meta, 0.9 * r_palm, ra), np.where(meta, 0.9 * np.minimum(r_palm, rb), rb)
    tip = k == 3
    d = b[tip] - a[tip]
    b[tip] -= d / np.linalg.norm(d, axis=1, keepdims=True).clip(1e-6) * (0.85 * rb[tip])[:, None]
    kind = [np.zeros(20, np.int64)]
    A, B, C, RA, RB = [a], [b], [b], [ra], [rb]
    part, dors = [np.where(tip, DISTAL, np.where((k > 0) & (style == "v2"), PHALANX, SKIN))], [dorsal21[ch]]
    # --- palm: slabs and rims ---
    w = j[sk.WRIST]
    mcp = {name: j[sk.FINGER_CHAINS[name][1]] for name in hm.FINGERS}
    width = np.linalg.norm(mcp["pinky"] - mcp["index"])
    w_r, w_u = w - 0.3 * width * x, w + 0.3 * width * x  # radial / ulnar corners of the wrist
    rows = [  # (kind, a, b, c, ra, rb)
        (SLAB, w_r, mcp["index"], mcp["pinky"], r_palm, r_palm),
        (SLAB, w_r, mcp["pinky"], w_u, r_palm, r_palm),
        (CAPSULE, mcp["index"], mcp["pinky"], mcp["pinky"], r_palm, 0.95 * r_palm),  # knuckles
        (CAPSULE, w_r, mcp["index"], mcp["index"], r_palm, r_palm),  # radial edge of the palm
        (CAPSULE, w_u, mcp["pinky"], mcp["pinky"], r_palm, 0.95 * r_palm),  # ulnar edge
        (CAPSULE, w_r, w_u, w_u, 1.15 * r_palm, 1.15 * r_palm),  # wrist
        (CAPSULE, mcp["thumb"], w + 0.45 * (mcp["middle"] - w), None, radii[0, 1], r_palm),  # thenar pad
        (CAPSULE, j[sk.FINGER_CHAINS["thumb"][2]], w + 0.4 * (mcp["index"] - w), None, 0.7 * radii[0, 2],
         0.8 * r_palm),  # thumb web
    ]
    palm_part = np.full(len(rows), SKIN)
    if style == "v2":
        palm_part[:6] = PALM  # slabs, knuckles, edges, wrist
        rows += palm_volumes(j, radii, x, z, r_palm)
        palm_part = np.concatenate([palm_part, np.full(len(rows) - len(palm_part), SKIN)])
    kind.append(np.array([r[0] for r in rows]))
    A.append(np.array([r[1] for r in rows]))
    B.append(np.array([r[2] for r in rows]))
    C.append(np.array([r[2] if r[3] is None else r[3] for r in rows]))
    RA.append(np.array([r[4] for r in rows]))
    RB.append(np.array([r[5] for r in rows]))
    part.append(palm_part)
    dors.append(np.repeat(z[None], len(rows), axis=0))
    n = 20 + len(rows)
    prims = Primitives(np.concatenate(kind), np.concatenate(A), np.concatenate(B), np.concatenate(C),
                       np.concatenate(RA), np.concatenate(RB), np.full(n, sk.HANDS.index(side)),
                       np.concatenate(part), np.concatenate(dors))
    if forearm:
        prims = Primitives.concat([prims, forearm_primitive(j, radii, side, wrist_bend, style, axes=(x, y, z))])
    return prims


def palm_volumes(j, radii, x, z, r_palm) -> list:
    """Style "v2": the soft volumes that make the flat palm plate look like a palm, as rows
    ``(kind, a, b, c, ra, rb)`` of :func:`hand_primitives`. j: (21, 3) joints (mm); x, z: the
    hand's ulnar and dorsal axes; r_palm: the plate's half thickness (mm).

    * hypothenar eminence: the pad along the little-finger side of the palm;
    * distal palmar pad: the cushion under the finger bases (the palm side of the knuckles);
    * thenar eminence: a fuller pad at the thumb's base, inside the palm;
    * knuckles: the heads of the index..pinky metacarpals, on the back of the hand.

    All radii times :data:`V2_VOLUMES`.
    """
    w = j[sk.WRIST]
    mcp = {name: j[sk.FINGER_CHAINS[name][1]] for name in hm.FINGERS}
    width = np.linalg.norm(mcp["pinky"] - mcp["index"])
    w_u = w + 0.3 * width * x
    palmar = -z  # the palm faces -z
    rows = [
        (CAPSULE, w_u + 0.25 * (mcp["pinky"] - w_u) + 0.35 * r_palm * palmar - 0.1 * width * x,
         w_u + 0.8 * (mcp["pinky"] - w_u) + 0.3 * r_palm * palmar - 0.1 * width * x, None, 1.05 * r_palm, 0.8 * r_palm),
        (CAPSULE, mcp["index"] + 0.35 * r_palm * palmar + 0.15 * (w - mcp["index"]),
         mcp["pinky"] + 0.35 * r_palm * palmar + 0.15 * (w - mcp["pinky"]), None, 0.85 * r_palm, 0.75 * r_palm),
        (CAPSULE, mcp["thumb"] + 0.3 * r_palm * palmar, w + 0.3 * (mcp["middle"] - w) + 0.45 * r_palm * palmar
         - 0.15 * width * x, None, 1.1 * radii[0, 1], 1.05 * r_palm),
    ]
    for f, name in enumerate(hm.FINGERS[1:], start=1):
        c = mcp[name] + 0.55 * r_palm * z
        rows.append((CAPSULE, c, c, None, 0.6 * radii[f, 1], 0.6 * radii[f, 1]))
    return [(kd, a, b, b if c is None else c, V2_VOLUMES * ra, V2_VOLUMES * rb) for kd, a, b, c, ra, rb in rows]


#: style "v2": palm and forearm thickness relative to style "v1". v1's palm is 22 mm thick and its
#: wrist 42 mm across for an average hand, thinner than real ones (roughly 25-33 mm at the knuckles,
#: 50-60 mm at the wrist); MediaPipe finds more of the thicker hands (docs/realism.md, round 5).
V2_THICKNESS = 1.3
#: style "v2": the soft palm volumes (:func:`palm_volumes`) this much fuller than first drawn (round 5)
V2_VOLUMES = 1.3
#: style "v2": the light's colour (``Appearance.light_color``) and the camera's white-balance gains
#: (``synth.camera_effects``) keep this fraction of their random spread about grey; a camera's auto
#: white balance takes most of a colour cast away, and a full cast turned some skins green (round 5)
COLOUR_CAST = 0.3


def damped_cast(gain):
    """What a camera's white balance leaves of a colour cast: per-channel gains (3,) about 1 ->
    ``1 + COLOUR_CAST (gain - 1)`` (style "v2": the light's colour and the camera's gains)."""
    return 1.0 + COLOUR_CAST * (np.asarray(gain) - 1.0)


def palm_radius(radii, style: str = "v1") -> float:
    """Half thickness of the palm slab (mm), from the finger base radii (times :data:`V2_THICKNESS` in style "v2")."""
    r = float(1.1 * np.asarray(radii)[1:, 1].mean())
    return r * V2_THICKNESS if style == "v2" else r


def forearm_primitive(joints21, radii, side: str = "right", wrist_bend=(0.0, 0.0), style: str = "v1",
                      axes=None) -> Primitives:
    """The forearm: a capsule from just behind the wrist, about two palm lengths long, its radius
    1.9 x :func:`palm_radius` (so thicker in style "v2").

    It leaves the wrist opposite the fingers, turned by ``wrist_bend = (flexion, deviation)``
    degrees (+flexion towards the back of the hand, +deviation towards the little finger);
    a single number is the flexion. axes: the hand's ``hand_axes(joints21, side)`` when the caller
    already has them (they are computed otherwise).
    """
    j = np.asarray(joints21, dtype=float)
    bend, dev = (float(wrist_bend), 0.0) if np.isscalar(wrist_bend) else (float(v) for v in wrist_bend)
    x, y, z = hm.hand_axes(j, side) if axes is None else axes
    tb, tv = np.deg2rad(bend), np.deg2rad(dev)
    d = -np.cos(tb) * np.cos(tv) * y + np.sin(tb) * z + np.cos(tb) * np.sin(tv) * x
    w = j[sk.WRIST]
    palm_len = np.linalg.norm(j[sk.FINGER_CHAINS["middle"][1]] - w)
    r0 = 1.9 * palm_radius(radii, style)
    a, b = w + d * (0.3 * palm_len), w + d * (2.2 * palm_len)
    return Primitives(np.array([CAPSULE]), a[None], b[None], b[None], np.array([r0]), np.array([1.2 * r0]),
                      np.array([sk.HANDS.index(side)]), np.array([FOREARM]), z[None])


def _estimate_dorsal(j, x, z):
    """Per-bone dorsal directions from joints alone: the back of the hand, turned with each bone."""
    d = np.tile(z, (sk.JOINTS_PER_HAND, 1))
    for name in hm.FINGERS:
        c = sk.FINGER_CHAINS[name]
        bones = j[list(c[2:])] - j[list(c[1:4])]  # (3, 3): the three bones after the base joint
        if name == "thumb":
            v = z - (bones @ z)[:, None] * bones / np.maximum((bones * bones).sum(1), 1e-9)[:, None]
        else:
            v = _cross(np.broadcast_to(x, bones.shape), bones)
        nv = np.linalg.norm(v, axis=1)
        ok = nv > 1e-6
        d[np.array(c[2:])[ok]] = v[ok] / nv[ok, None]
    return d


def joint_cover(joints, prims: Primitives, hand: int) -> np.ndarray:
    """Thickness of a hand's own tissue around each of its joints (mm). (J,)

    The radius of the thickest capsule of that hand that contains the joint:
    a joint counts as visible when the first surface at its pixel is no further
    in front of it than this (plus a tolerance).
    """
    sel = (prims.hand == hand) & (prims.kind == CAPSULE)
    a, b, ra, rb = prims.a[sel], prims.b[sel], prims.ra[sel], prims.rb[sel]
    p = np.asarray(joints, dtype=float)[:, None, :]  # (J, 1, 3)
    d = b - a
    t = np.clip(((p - a) * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-9), 0.0, 1.0)  # (J, P)
    dist = np.linalg.norm(p - (a + t[..., None] * d), axis=-1)
    r = ra + t * (rb - ra)
    return np.where(dist < r, r, 0.0).max(axis=1)


# --------------------------------------------------------------------------- #
# Rasteriser
# --------------------------------------------------------------------------- #
@dataclass
class Raster:
    """Output of :func:`rasterize` (H = W = size).

    layers: (L, H, W) depth per layer (inf where empty); depth: (H, W) composite depth;
    prim: (H, W) index of the visible primitive (-1 background); layer: (H, W) its layer
    (-1 background); normal: (H, W, 3) unit surface normal; t: (H, W) position along the
    visible capsule (0 at a, 1 at b).
    """

    layers: np.ndarray
    depth: np.ndarray
    prim: np.ndarray
    layer: np.ndarray
    normal: np.ndarray
    t: np.ndarray


def _project(p, fx, fy, cx, cy):
    return p[:, 0] / p[:, 2] * fx + cx, p[:, 1] / p[:, 2] * fy + cy


def _split_capsules(a, b, ra, rb, fx, max_ratio=3.0):
    """Cut capsules whose screen length exceeds ``max_ratio`` times their screen radius into
    equal pieces (the union of the pieces is the same solid). Returns the pieces and, per
    piece, its source index and the interval [t0, t1] of the source it covers."""
    la = np.hypot(a[:, 0] / a[:, 2] - b[:, 0] / b[:, 2], a[:, 1] / a[:, 2] - b[:, 1] / b[:, 2]) * fx
    rmin = np.minimum(ra / a[:, 2], rb / b[:, 2]) * fx + 1.0
    n = np.clip(np.ceil(la / (max_ratio * rmin)), 1, 24).astype(np.int64)
    src = np.repeat(np.arange(len(n)), n)
    k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    t0, t1 = k / n[src], (k + 1) / n[src]
    d, dr = (b - a)[src], (rb - ra)[src]
    return (a[src] + t0[:, None] * d, a[src] + t1[:, None] * d, ra[src] + t0 * dr, ra[src] + t1 * dr, src, t0, t1)


def _fragments(x0, x1, y0, y1):
    """All pixels of all boxes [x0, x1] x [y0, y1] (inclusive, ints): (box id, col, row) of each."""
    bw, bh = np.maximum(x1 - x0 + 1, 0), np.maximum(y1 - y0 + 1, 0)
    n = bw * bh
    total = int(n.sum())
    bid = np.repeat(np.arange(len(n), dtype=np.int32), n)
    local = np.arange(total, dtype=np.int32) - np.repeat((np.cumsum(n) - n).astype(np.int32), n)
    w = bw.astype(np.int32)[bid]
    return bid, x0.astype(np.int32)[bid] + local % w, y0.astype(np.int32)[bid] + local // w


def _boxes(us, vs, rad, W, H):
    x0 = np.floor(np.min(us - rad, axis=0)).clip(0, W).astype(np.int64)
    x1 = np.ceil(np.max(us + rad, axis=0)).clip(-1, W - 1).astype(np.int64)
    y0 = np.floor(np.min(vs - rad, axis=0)).clip(0, H).astype(np.int64)
    y1 = np.ceil(np.max(vs + rad, axis=0)).clip(-1, H - 1).astype(np.int64)
    return x0, x1, y0, y1


def _slab_hits(prims: Primitives, slab, fx, fy, cx, cy, W, H, spans: bool = False):
    """Rays that hit the faces of slabs ``slab`` over their triangles (each face the triangle's
    plane pushed r towards the camera). Returns (slab number (F,), col, row, ray direction vx, vy
    (the ray is X = lam (vx, vy, 1)), depth lam (F,), face normals (T, 3), pushed corners P0 (T, 3)). spans: test only the pixels of :func:`_span_fragments`
    instead of the triangles' bounding boxes (fewer; the same hits)."""
    f32 = np.float32
    fmax = max(fx, fy)
    V = np.stack([prims.a[slab], prims.b[slab], prims.c[slab]])  # (3, T, 3)
    r = prims.ra[slab]
    n = _cross(V[1] - V[0], V[2] - V[0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    n = np.where(((n * V[0]).sum(1) > 0)[:, None], -n, n)  # the face looking at the camera
    us, vs = _project(V.reshape(-1, 3), fx, fy, cx, cy)
    pad = np.repeat((r / np.maximum(V[..., 2].min(0) - r, 1e-3) * fmax * 1.05 + 1.0)[None], 3, 0)
    us, vs = us.reshape(3, -1), vs.reshape(3, -1)
    tid, px, py = _span_fragments(us, vs, pad, W, H)[:3] if spans else _fragments(*_boxes(us, vs, pad, W, H))
    vx = (px.astype(f32) - f32(cx)) / f32(fx)
    vy = (py.astype(f32) - f32(cy)) / f32(fy)
    # per triangle: the plane pushed r towards the camera, n . X = off, and barycentric helpers
    P0 = V[0] + r[:, None] * n  # a corner of the pushed triangle
    e0, e1 = V[1] - V[0], V[2] - V[0]
    d00, d01, d11 = (e0 * e0).sum(1), (e0 * e1).sum(1), (e1 * e1).sum(1)
    den = d00 * d11 - d01 * d01
    consts = np.stack([n[:, 0], n[:, 1], n[:, 2], (n * P0).sum(1), P0[:, 0], P0[:, 1], P0[:, 2],
                       *(e0.T), *(e1.T), d00 / den, d01 / den, d11 / den]).astype(f32)
    q = np.repeat(consts, np.bincount(tid, minlength=len(slab)), axis=1)  # (16, F): = consts[:, tid], tid being sorted
    ndv = q[0] * vx + q[1] * vy + q[2]
    ok = ndv < -0.02
    lam = q[3] / np.where(ok, ndv, f32(-1.0))  # ray X = lam (vx, vy, 1) meets the plane
    wx, wy, wz = vx * lam - q[4], vy * lam - q[5], lam - q[6]
    d20 = wx * q[7] + wy * q[8] + wz * q[9]
    d21 = wx * q[10] + wy * q[11] + wz * q[12]
    beta = q[15] * d20 - q[14] * d21
    gamma = q[13] * d21 - q[14] * d20
    inside = ok & (lam > 0) & (beta >= 0) & (gamma >= 0) & (beta + gamma <= 1)
    return tid[inside], px[inside], py[inside], vx[inside], vy[inside], lam[inside], n, P0


def rasterize(prims: Primitives, focal, princpt, size: int, num_layers: int = NUM_LAYERS, near: float = 10.0) -> Raster:
    """Ray-cast primitives into a size x size z-buffer with ``num_layers`` layers (see module doc)."""
    H = W = int(size)
    fx, fy = (float(v) for v in focal)
    cx, cy = (float(v) for v in princpt)
    fmax = max(fx, fy)
    f32 = np.float32
    layer_of = prims.layer
    hits = []  # per primitive kind: (prim id, pixel, depth, normal (F, 3), t)

    # ---------------- capsules ----------------
    cap = np.flatnonzero((prims.kind == CAPSULE) & (prims.a[:, 2] > near + prims.ra) & (prims.b[:, 2] > near + prims.rb))
    if cap.size:
        a, b, ra, rb, src, t0, t1 = _split_capsules(prims.a[cap], prims.b[cap], prims.ra[cap], prims.rb[cap], fmax)
        ua, va = _project(a, fx, fy, cx, cy)
        ub, vb = _project(b, fx, fy, cx, cy)
        # a sphere's outline is a little larger than r f / z: pad conservatively
        pa = ra / np.maximum(a[:, 2] - ra, 1e-3) * fmax * 1.05 + 1.0
        pb = rb / np.maximum(b[:, 2] - rb, 1e-3) * fmax * 1.05 + 1.0
        box = _boxes(np.stack([ua, ub]), np.stack([va, vb]), np.stack([pa, pb]), W, H)
        pid, px, py = _fragments(*box)
        vx = (px.astype(f32) - f32(cx)) / f32(fx)  # ray direction (vx, vy, 1)
        vy = (py.astype(f32) - f32(cy)) / f32(fy)
        A, B = a.astype(f32), b.astype(f32)
        anx, any_ = A[:, 0] / A[:, 2], A[:, 1] / A[:, 2]  # end points in normalised image coordinates
        dnx, dny = B[:, 0] / B[:, 2] - anx, B[:, 1] / B[:, 2] - any_
        inv = 1.0 / np.maximum(dnx * dnx + dny * dny, f32(1e-12))
        rz_a = ra.astype(f32) / A[:, 2]
        drz = rb.astype(f32) / B[:, 2] - rz_a
        # one gather of the per-piece constants: rows (F,) each
        q = np.take(np.stack([anx, any_, dnx, dny, inv, rz_a, drz]), pid, axis=1)
        # closest point of the projected segment, and a cheap 2D "inside" test first
        ex, ey = vx - q[0], vy - q[1]
        t = np.clip((ex * q[2] + ey * q[3]) * q[4], 0.0, 1.0)
        ex -= t * q[2]
        ey -= t * q[3]
        rz = (q[5] + t * q[6]) * f32(1.1)
        keep = ex * ex + ey * ey < rz * rz
        pid, px, py, vx, vy, t = pid[keep], px[keep], py[keep], vx[keep], vy[keep], t[keep]
        q = np.take(np.stack([A[:, 0], A[:, 1], A[:, 2], B[:, 0] - A[:, 0], B[:, 1] - A[:, 1], B[:, 2],
                              ra.astype(f32), (rb - ra).astype(f32)]), pid, axis=1)
        za, zb = q[2], q[5]
        t3 = t * za / ((1.0 - t) * zb + t * za)  # perspective-correct parameter along the 3D segment
        Cx, Cy, Cz = q[0] + t3 * q[3], q[1] + t3 * q[4], za + t3 * (zb - za)  # sphere centre
        r = q[6] + t3 * q[7]
        vc = vx * Cx + vy * Cy + Cz  # ray . centre
        vv = vx * vx + vy * vy + 1.0
        disc = vc * vc - vv * (Cx * Cx + Cy * Cy + Cz * Cz - r * r)
        hit = disc > 0
        pid, px, py, vx, vy, vc, vv, disc, Cx, Cy, Cz, r, t3 = (
            q_[hit] for q_ in (pid, px, py, vx, vy, vc, vv, disc, Cx, Cy, Cz, r, t3))
        lam = (vc - np.sqrt(disc)) / vv  # nearest intersection; its depth is lam (the ray has z = 1)
        nrm = np.stack([vx * lam - Cx, vy * lam - Cy, lam - Cz], axis=1) / r[:, None]
        tt = t0[pid] + t3 * (t1 - t0)[pid]
        hits.append((cap[src[pid]], py * W + px, lam, nrm, tt))

    # ---------------- slabs ----------------
    slab = np.flatnonzero((prims.kind == SLAB) & (np.min(np.stack([prims.a[:, 2], prims.b[:, 2], prims.c[:, 2]]), 0) > near + prims.ra))
    if slab.size:
        tid, px, py, _, _, lam, n, _ = _slab_hits(prims, slab, fx, fy, cx, cy, W, H)
        hits.append((slab[tid], py * W + px, lam, n[tid].astype(f32), np.full(tid.size, 0.5, f32)))

    layers = np.full((num_layers, H * W), np.inf, dtype=f32)
    prim_img = np.full(H * W, -1, dtype=np.int64)
    layer_img = np.full(H * W, -1, dtype=np.int8)
    normal_img = np.zeros((H * W, 3), dtype=f32)
    t_img = np.zeros(H * W, dtype=f32)
    if hits:
        pid, pix, lam, nrm, tt = (np.concatenate(q) for q in zip(*hits))
        pix = pix.astype(np.int64)
        key = layer_of[pid] * (H * W) + pix
        np.minimum.at(layers.reshape(-1), key, lam.astype(f32))
        depth = layers.min(axis=0)
        win = lam <= depth[pix]
        pix, pid = pix[win], pid[win]
        prim_img[pix] = pid
        layer_img[pix] = layer_of[pid]
        nrm = nrm[win]
        normal_img[pix] = nrm / (np.linalg.norm(nrm, axis=1, keepdims=True) + 1e-12)
        t_img[pix] = tt[win]
    else:
        depth = layers.min(axis=0)
    return Raster(layers.reshape(num_layers, H, W), depth.reshape(H, W), prim_img.reshape(H, W),
                  layer_img.reshape(H, W), normal_img.reshape(H, W, 3), t_img.reshape(H, W))


# --------------------------------------------------------------------------- #
# The blended rasteriser (style "v2"): one smooth skin over the primitives
# --------------------------------------------------------------------------- #
#: radius of the slab planes seen as spheres by the blended rasteriser (mm): flat to < 0.1 mm over a palm
_PLANE_RADIUS = 2.0e4


def _span_fragments(us, vs, pad, W, H):
    """The pixels within ``pad`` px of each of P shapes, by rows: (shape id, col, row) of each (F,),
    and the number of them per shape (P,).

    us, vs: (K, P) the shapes' vertices on screen (px), K = 2 for a segment, 3 for a filled
    triangle; pad: (K, P) px (the largest per shape is used). Tighter than a bounding box for
    slanted shapes: per row y, the span is the x-range of the shape's edges clipped to the band
    [y - pad, y + pad], grown by pad (a superset of the pixels within pad of the shape); for a
    segment also at most pad / sin(its angle to the row) from its line. The fragments come
    grouped by shape, shape 0 first, so a per-shape array ``v`` (..., P) is spread to them with
    ``np.repeat(v, count, axis=-1)`` (the same as ``v[..., id]``, several times faster).
    """
    x0, x1, y0, y1 = _boxes(us, vs, pad, W, H)
    p = pad.max(axis=0)
    ny = np.maximum(y1 - y0 + 1, 0)  # rows per shape; below, per row (R,): sid, y, and the shape's values spread by ny
    sid = np.repeat(np.arange(len(ny)), ny)
    y = np.repeat(y0, ny) + np.arange(ny.sum()) - np.repeat(np.cumsum(ny) - ny, ny)
    ps, K = np.repeat(p, ny), len(us)
    e0 = np.arange(1 if K == 2 else K)  # the edges (e0 -> e0 + 1; one for a segment), all rows at once: (E, R)
    ua, va = np.repeat(us[e0], ny, axis=1), np.repeat(vs[e0], ny, axis=1)
    ub, vb = np.repeat(us[(e0 + 1) % K], ny, axis=1), np.repeat(vs[(e0 + 1) % K], ny, axis=1)
    dv = np.where(np.abs(vb - va) > 1e-9, vb - va, 1e-9)
    ta, tb = (y - ps - va) / dv, (y + ps - va) / dv
    t_lo, t_hi = np.clip(np.minimum(ta, tb), 0, 1), np.clip(np.maximum(ta, tb), 0, 1)
    xa, xb = ua + t_lo * (ub - ua), ua + t_hi * (ub - ua)
    meets = (y >= np.minimum(va, vb) - ps) & (y <= np.maximum(va, vb) + ps)  # rows that meet no edge stay empty
    lo = np.where(meets, np.minimum(xa, xb), 1e9).min(0) - ps
    hi = np.where(meets, np.maximum(xa, xb), -1e9).max(0) + ps
    if K == 2:
        du, dv = ub[0] - ua[0], vb[0] - va[0]
        dv = np.where(np.abs(dv) > 1e-9, dv, 1e-9)
        x_line, half = ua[0] + (y - va[0]) * du / dv, ps * np.hypot(du, dv) / np.abs(dv)
        lo, hi = np.maximum(lo, x_line - half), np.minimum(hi, x_line + half)
    xs0 = np.maximum(np.floor(lo), np.repeat(x0, ny)).astype(np.int32)
    n = np.maximum(np.minimum(np.ceil(hi), np.repeat(x1, ny)).astype(np.int32) - xs0 + 1, 0)  # pixels per row
    px = np.arange(n.sum(), dtype=np.int32) - np.repeat(np.cumsum(n, dtype=np.int32) - n - xs0, n)
    count = np.bincount(sid, n, len(ny)).astype(np.int64)  # pixels per shape
    return np.repeat(sid, n), px, np.repeat(y.astype(np.int32), n), count


def _blend_capsule_fragments(prims, cap, fx, fy, cx, cy, W, H, blend):
    """Fragments of the capsules ``cap`` for :func:`rasterize_blended`.

    Like the hard rasteriser, but every pixel within ``blend`` mm of a capsule (on screen)
    becomes a fragment, hit or not (not for the forearm: it is alone in its layer), one per pixel
    and capsule (the capsules are not cut into pieces: :func:`_span_fragments` follows them row by row).
    Returns (prim id, pixel, ray direction vx, vy (the ray is X = lam (vx, vy, 1)), depth lam, hit,
    sphere centre (3, F), radius, t), all (F,) float32 but the first two, depth being the ray's hit
    of the sweep sphere, or its closest approach to the sphere centre when it misses.
    """
    f32 = np.float32
    fmax = max(fx, fy)
    a, b, ra, rb = prims.a[cap], prims.b[cap], prims.ra[cap], prims.rb[cap]
    grow = np.where(prims.part[cap] == FOREARM, 0.0, blend)  # how far (mm) beyond the capsule to look
    ua, va = _project(a, fx, fy, cx, cy)
    ub, vb = _project(b, fx, fy, cx, cy)
    pa = (ra + grow) / np.maximum(a[:, 2] - ra - grow, 1e-3) * fmax * 1.1  # the spans round outwards
    pb = (rb + grow) / np.maximum(b[:, 2] - rb - grow, 1e-3) * fmax * 1.1
    pid, px, py, count = _span_fragments(np.stack([ua, ub]), np.stack([va, vb]), np.stack([pa, pb]), W, H)
    vx = (px.astype(f32) - f32(cx)) / f32(fx)
    vy = (py.astype(f32) - f32(cy)) / f32(fy)
    A, B = a.astype(f32), b.astype(f32)
    anx, any_ = A[:, 0] / A[:, 2], A[:, 1] / A[:, 2]
    dnx, dny = B[:, 0] / B[:, 2] - anx, B[:, 1] / B[:, 2] - any_
    inv = 1.0 / np.maximum(dnx * dnx + dny * dny, f32(1e-12))
    rz_a = (1.1 * ra + grow).astype(f32) / A[:, 2]
    drz = (1.1 * rb + grow).astype(f32) / B[:, 2] - rz_a
    q = np.repeat(np.stack([anx, any_, dnx, dny, inv, rz_a, drz]), count, axis=1)  # per fragment (7, F)
    ex, ey = vx - q[0], vy - q[1]
    t = np.clip((ex * q[2] + ey * q[3]) * q[4], 0.0, 1.0)  # closest point on the projected axis
    ex -= t * q[2]
    ey -= t * q[3]
    rz = q[5] + t * q[6]
    keep = np.flatnonzero(ex * ex + ey * ey < rz * rz)
    pid, pix, vx, vy, t = pid[keep], (py * W + px)[keep], vx[keep], vy[keep], t[keep]
    count = np.bincount(pid, minlength=len(cap))  # kept fragments per capsule (still grouped by capsule)
    q = np.repeat(np.stack([A[:, 0], A[:, 1], A[:, 2], B[:, 0] - A[:, 0], B[:, 1] - A[:, 1], B[:, 2],
                            ra.astype(f32), (rb - ra).astype(f32)]), count, axis=1)  # per fragment (8, F)
    za, zb = q[2], q[5]
    t3 = t * za / ((1.0 - t) * zb + t * za)
    Cx, Cy, Cz = q[0] + t3 * q[3], q[1] + t3 * q[4], za + t3 * (zb - za)
    r = q[6] + t3 * q[7]
    vc = vx * Cx + vy * Cy + Cz
    vv = vx * vx + vy * vy + 1.0
    disc = vc * vc - vv * (Cx * Cx + Cy * Cy + Cz * Cz - r * r)
    lam = (vc - np.sqrt(np.maximum(disc, 0.0))) / vv  # a miss: the closest approach to the centre
    return cap[pid], pix, vx, vy, lam, disc > 0, np.stack([Cx, Cy, Cz]), r, t3


def _blend_slab_fragments(prims, slab, fx, fy, cx, cy, W, H):
    """Fragments of the slabs ``slab`` for :func:`rasterize_blended`: the rays that hit a slab's
    face over its triangle, each slab face given as a sphere of radius :data:`_PLANE_RADIUS`
    tangent to it (so capsules and slabs are blended by one formula). Same tuple as
    :func:`_blend_capsule_fragments`."""
    f32 = np.float32
    tid, px, py, vx, vy, lam, n, P0 = _slab_hits(prims, slab, fx, fy, cx, cy, W, H, spans=True)
    C = (P0 - _PLANE_RADIUS * n)[tid].astype(f32).T
    return (slab[tid], py * W + px, vx, vy, lam, np.ones(tid.size, bool), C, np.full(tid.size, _PLANE_RADIUS, f32),
            np.full(tid.size, 0.5, f32))


def rasterize_blended(prims: Primitives, focal, princpt, size: int, blend: float, num_layers: int = NUM_LAYERS,
                      near: float = 10.0) -> Raster:
    """Ray-cast the *smooth union* of the primitives of each layer (style "v2"). Same output as :func:`rasterize`.

    Every primitive is a signed distance d_i(X) = |X - C_i| - r_i (mm) to its sweep sphere nearest
    the pixel (a slab face: a huge sphere tangent to it). The layer's skin is F(X) = 0 with the
    polynomial smooth minimum of Quilez (k = ``blend`` mm)::

        m = min_i d_i,   h_i = max(0, 1 - (d_i - m) / k),   F = m - k/4 * sum_{i != argmin} h_i^2

    (exactly smin(a, b) = min - k h^2 / 4 for two primitives), so capsules meeting at a joint
    are joined by a fillet of size ~k instead of a crease. Per pixel and layer, F is evaluated
    at X0 = the first hard hit (or, off the hard silhouette, the closest approach to the nearest
    sphere), then one Newton step along the ray, ``lam = lam0 - F / (grad F . v)`` (-k <= step <= 0),
    gives the depth; the pixel is covered where the hard union is, or where F(X0) < 0 (the
    fillets). The normal is grad F = (1 - H/2) n_min + 1/2 sum h_i n_i (H = sum h_i, i != argmin),
    continuous across the joints. The palm's slabs and rims (part :data:`PALM`) are one piece:
    among them only the nearest counts (their faces coincide at the rims). prim / t are those of
    the nearest primitive (for the colours). A forearm is alone in its layer: it gets no blend
    margin (its fragments are its hard hits and the pixels next to them, and F = its own distance).
    """
    H = W = int(size)
    fx, fy = (float(v) for v in focal)
    cx, cy = (float(v) for v in princpt)
    f32 = np.float32
    k = f32(blend)
    HW = H * W
    parts = []
    margin = near + np.where(prims.part == FOREARM, 0.0, blend)
    cap = np.flatnonzero((prims.kind == CAPSULE) & (prims.a[:, 2] > margin + prims.ra) & (prims.b[:, 2] > margin + prims.rb))
    if cap.size:
        parts.append(_blend_capsule_fragments(prims, cap, fx, fy, cx, cy, W, H, blend))
    slab = np.flatnonzero((prims.kind == SLAB) & (np.min(np.stack([prims.a[:, 2], prims.b[:, 2], prims.c[:, 2]]), 0)
                                                  > near + prims.ra))
    if slab.size:
        parts.append(_blend_slab_fragments(prims, slab, fx, fy, cx, cy, W, H))
    n_keys = num_layers * HW
    if not parts:
        inf = np.full((num_layers, H, W), np.inf, f32)
        return Raster(inf, inf[0].copy(), np.full((H, W), -1, np.int64), np.full((H, W), -1, np.int8),
                      np.zeros((H, W, 3), f32), np.zeros((H, W), f32))
    pid, pix, vx, vy, lam, hit, C, r, tt = (np.concatenate(q, axis=-1) for q in zip(*parts))
    pix = pix.astype(np.int64)
    key = prims.layer[pid].astype(np.int64) * HW + pix
    # the (layer, pixel) keys that have fragments, numbered 0..U-1 (u per fragment); below, per-key arrays are (U,)
    has = np.zeros(n_keys, bool)
    has[key] = True
    keys = np.flatnonzero(has)
    slot = np.empty(n_keys, np.int64)
    slot[keys] = np.arange(keys.size)
    u, U = slot[key], keys.size
    # X0: the first hard hit per pixel and layer, else the nearest closest approach
    big = f32(1e6)
    first = np.full(U, np.inf, f32)
    np.minimum.at(first, u, lam.astype(f32) + np.where(hit, f32(0), big))
    hard = first < big
    lam0 = np.where(hard, first, first - big)
    l0 = lam0[u]
    D = np.stack([vx * l0, vy * l0, l0])
    D -= C  # (3, F): X0 - C_i
    dist = np.sqrt(D[0] * D[0] + D[1] * D[1] + D[2] * D[2])
    d = dist - r
    m = np.full(U, np.inf, f32)
    np.minimum.at(m, u, d)
    mu = m[u]
    is_min = d <= mu
    h = np.clip(1.0 - (d - mu) / k, 0.0, 1.0)
    palm = np.flatnonzero(prims.part[pid] == PALM)  # the palm's slabs and rims: only the nearest of them counts
    if palm.size:
        pm = np.full(U, np.inf, f32)
        up, dp = u[palm], d[palm]
        np.minimum.at(pm, up, dp)
        h[palm[dp > pm[up]]] = 0.0
    h[is_min] = 0.0
    F = m - k / 4 * np.bincount(u, h * h, U).astype(f32)
    kk = np.flatnonzero(hard | (F < 0))  # the covered keys (of the U); below, per covered key
    comp = np.full(U, -1, np.int64)
    comp[kk] = np.arange(kk.size)
    ci = comp[u]
    use = np.flatnonzero((ci >= 0) & ((h > 0) | is_min))
    ci, h, is_min, pid, tt = ci[use], h[use], is_min[use], pid[use], tt[use]
    Hs = np.bincount(ci, h, kk.size)
    w = np.where(is_min, 1.0 - 0.5 * Hs[ci], 0.5 * h)  # grad F = (1 - H/2) n_min + 1/2 sum h_i n_i
    w /= np.maximum(dist[use], f32(1e-6))  # n_i = D_i / |D_i|
    D = np.take(D, use, axis=1)
    grad = np.stack([np.bincount(ci, w * D[c], kk.size) for c in range(3)], axis=1).astype(f32)
    grad /= np.maximum(np.sqrt(_dot(grad, grad)), f32(1e-6))[:, None]
    # one Newton step along the ray X = lam (vx, vy, 1)
    kp = keys[kk] % HW
    gv = grad[:, 0] * ((kp % W).astype(f32) - f32(cx)) / f32(fx) + grad[:, 1] * ((kp // W).astype(f32) - f32(cy)) / f32(fy)
    step = np.clip(-F[kk] / np.minimum(gv + grad[:, 2], f32(-0.3)), -k, 0.0)  # the union only grows
    layers = np.full(n_keys, np.inf, f32)
    layers[keys[kk]] = lam0[kk] + step
    layers = layers.reshape(num_layers, HW)
    win, depth = np.zeros(HW, np.int64), layers[0].copy()
    for layer in range(1, num_layers):  # the nearest layer per pixel
        closer = layers[layer] < depth
        win[closer], depth[closer] = layer, layers[layer][closer]
    seen = np.flatnonzero(np.isfinite(depth))
    wc = comp[slot[win[seen] * HW + seen]]
    prim_c, t_c = np.full(kk.size, -1, np.int64), np.zeros(kk.size, f32)
    nearest = np.flatnonzero(is_min)
    prim_c[ci[nearest]], t_c[ci[nearest]] = pid[nearest], tt[nearest]
    prim_img, layer_img = np.full(HW, -1, np.int64), np.full(HW, -1, np.int8)
    normal_img, t_img = np.zeros((HW, 3), f32), np.zeros(HW, f32)
    prim_img[seen], layer_img[seen], normal_img[seen], t_img[seen] = prim_c[wc], win[seen], np.take(grad, wc, 0), t_c[wc]
    return Raster(layers.reshape(num_layers, H, W), depth.reshape(H, W), prim_img.reshape(H, W),
                  layer_img.reshape(H, W), normal_img.reshape(H, W, 3), t_img.reshape(H, W))


# --------------------------------------------------------------------------- #
# Appearance and shading
# --------------------------------------------------------------------------- #
#: skin tones from light to dark (RGB in [0, 1]); a sample interpolates between neighbours
SKIN_TONES = np.array(
    [
        [0.97, 0.82, 0.72],
        [0.92, 0.72, 0.60],
        [0.82, 0.60, 0.46],
        [0.68, 0.47, 0.34],
        [0.52, 0.35, 0.25],
        [0.36, 0.24, 0.17],
    ]
)


@dataclass
class Appearance:
    """Colours and light of a sample. skin / palm / nail: (2, 3) RGB per hand (right, left);
    sleeve: (3,) RGB or None for bare forearms; light_dir: (3,) unit vector towards the light
    (camera frame); ambient, specular, shininess: shading constants; light_color: (3,)."""

    skin: np.ndarray
    palm: np.ndarray
    nail: np.ndarray
    sleeve: np.ndarray | None
    light_dir: np.ndarray
    ambient: float = 0.35
    specular: float = 0.08
    shininess: float = 20.0
    light_color: np.ndarray | None = None

    def __post_init__(self):
        if self.light_color is None:
            self.light_color = np.ones(3)


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """A random skin tone (both hands alike, not identical), palm and nail tints, sleeve, light."""
    k = rng.uniform(0, len(SKIN_TONES) - 1)
    i = int(min(k, len(SKIN_TONES) - 2))
    base = SKIN_TONES[i] + (k - i) * (SKIN_TONES[i + 1] - SKIN_TONES[i])
    base = np.clip(base * rng.uniform(0.9, 1.1, size=3), 0.05, 1.0)
    skin = np.clip(base[None] * rng.normal(1.0, 0.035, size=(2, 3)), 0.03, 1.0)
    palm = np.clip(skin + 0.4 * (np.array([0.98, 0.78, 0.72]) - skin), 0, 1)  # palms are lighter, pinker
    nail = np.clip(skin + 0.55 * (np.array([1.0, 0.86, 0.84]) - skin), 0, 1)
    sleeve = None
    if rng.uniform() < 0.6:
        h, s, v = rng.uniform(), rng.uniform(0.1, 0.8), rng.uniform(0.15, 0.9)
        sleeve = np.array(colorsys.hsv_to_rgb(h, s, v))
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 0.6), -rng.uniform(0.4, 1.2)])  # from the camera side
    light /= np.linalg.norm(light)
    tint = np.clip(rng.normal(1.0, 0.05, size=3), 0.85, 1.15)
    return Appearance(skin, palm, nail, sleeve, light, float(rng.uniform(0.25, 0.5)),
                      float(rng.uniform(0.0, 0.15)), float(rng.uniform(8, 30)), tint)


def _smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _dot(u, v):
    """Row-wise dot products of (N, 3) arrays."""
    return np.einsum("ij,ij->i", u, v)


def _normalize_rows(v):
    """Divide each row of ``v`` (N, 3) by its length, in place; returns v. Column by column: the
    same numbers as ``v /= length[:, None]``, which numpy runs three values at a time (slower)."""
    length = np.sqrt(_dot(v, v))
    for ch in range(3):
        v[:, ch] /= length
    return v


def _albedo(raster: Raster, prims: Primitives, app: Appearance, idx, cuff: float = 0.0):
    """Per covered pixel ``idx`` (N,): (albedo (N, 3), normal (N, 3), t (N,), hand (N,), part (N,),
    s (N,)): the hand's skin, blended to the palm tone where the normal turns away from the back
    of the hand (s = n . dorsal: +1 back, -1 palm side), to the nail tone on the back of the distal
    phalanges, or the sleeve on the forearm from ``cuff`` (its t, 0..1) on."""
    f32 = np.float32
    p = raster.prim.reshape(-1)[idx]
    n = raster.normal.reshape(-1, 3)[idx]
    t = raster.t.reshape(-1)[idx]
    hand, part = prims.hand[p], prims.part[p]
    s = _dot(n, prims.dorsal.astype(f32)[p])  # +1 on the back of the hand, -1 on the palm side
    skin, palm, nail = (q.astype(f32) for q in (app.skin, app.palm, app.nail))
    w_palm = _smoothstep(f32(0.1), f32(-0.45), s)
    albedo = np.empty((len(p), 3), f32)  # skin + w_palm (palm - skin), channel by channel (see _normalize_rows)
    for ch in range(3):
        albedo[:, ch] = skin[hand, ch] + w_palm * (palm - skin)[hand, ch]
    d = np.flatnonzero(part == DISTAL)
    w_nail = _smoothstep(f32(0.45), f32(0.75), s[d]) * _smoothstep(f32(0.35), f32(0.55), t[d])
    albedo[d] += w_nail[:, None] * (nail[hand[d]] - albedo[d])
    if app.sleeve is not None:
        albedo[(part == FOREARM) & (t >= cuff)] = app.sleeve
    return albedo, n, t, hand, part, s


def _canvas(raster: Raster, background):
    """(a float32 copy of ``background`` as (H * W, 3), the flat indices of the hand pixels (N,))."""
    H, W = raster.depth.shape
    img = np.array(background, dtype=np.float32, copy=True).reshape(H * W, 3)
    return img, np.flatnonzero(raster.prim.reshape(-1) >= 0)


def _view_dirs(idx, W, focal, princpt):
    """(N, 3) unit vectors from the surface at pixels ``idx`` (flat, row-major, width W) towards the camera."""
    f32 = np.float32
    fx, fy = (float(v) for v in focal)
    cx, cy = (float(v) for v in princpt)
    view = np.empty((idx.size, 3), f32)
    view[:, 0] = (cx - idx % W) / fx
    view[:, 1] = (cy - idx // W) / fy
    view[:, 2] = -1.0
    return _normalize_rows(view)


def _specular(n, L, view, strength, shininess) -> np.ndarray:
    """Blinn-Phong highlight per pixel: strength * max(0, n.h)^shininess, h the half vector of L and view.

    n, view: (K, 3) unit normals and directions towards the camera; L: (3,) unit direction to the light -> (K,).
    """
    f32 = np.float32
    h = _normalize_rows(L + view)
    return f32(strength) * np.maximum(_dot(n, h), 0.0) ** f32(shininess)


def shade(raster: Raster, prims: Primitives, app: Appearance, background, focal, princpt) -> np.ndarray:
    """Composite shaded hands over ``background`` (H, W, 3) in [0, 1] -> (H, W, 3) float32.

    colour = albedo * light * (ambient + (1 - ambient) max(0, n.l) + fill) + specular * (n.h)^shininess,
    albedo from :func:`_albedo`.
    """
    H, W = raster.depth.shape
    img, idx = _canvas(raster, background)
    if idx.size == 0:
        return img.reshape(H, W, 3)
    f32 = np.float32
    albedo, n, _, _, _, _ = _albedo(raster, prims, app, idx)
    view = _view_dirs(idx, W, focal, princpt)
    L = np.asarray(app.light_dir, dtype=f32)
    diff = np.maximum(n @ L, 0.0)
    spec = _specular(n, L, view, app.specular, app.shininess)
    fill = f32(0.12) * np.clip(_dot(n, view), 0.0, 1.0)  # a touch of light from the camera side
    col = albedo * app.light_color.astype(f32) * (f32(app.ambient) + f32(1 - app.ambient) * diff + fill)[:, None]
    img[idx] = np.clip(col + spec[:, None], 0.0, 1.0)
    return img.reshape(H, W, 3)


# --------------------------------------------------------------------------- #
# Style "v2": skin shading
# --------------------------------------------------------------------------- #
#: colour of the light scattered under the skin (blood): the red channel wraps furthest round the terminator
SSS_TINT = np.array([0.22, 0.02, -0.04])


@dataclass
class SkinLook:
    """The extra appearance of style "v2" (drawn after the scene, appearance, background and shadow,
    see :func:`sample_skin_look`). wrap: how far diffuse light wraps round the terminator (0 =
    Lambert; the red channel wraps ``sss`` * :data:`SSS_TINT` further, a subsurface-like tint);
    crease: darkening of the flexion creases at the finger joints (palm side) and wrinkles
    (back); flush: reddening of the knuckles and fingertips; mottle: (h, w) low-frequency
    albedo variation, multiplied as (1 + mottle); ao: darkening of crevices (0..1); specular,
    shininess: a weak Blinn-Phong highlight; blend: smooth-union radius (mm) of
    :func:`rasterize_blended`; cuff: a sleeve starts this far along the forearm capsule (0 = at the
    wrist, as style "v1"; 1 = its far end), the wrist and the forearm before it in skin."""

    wrap: float = 0.45
    sss: float = 1.0
    crease: float = 0.25
    flush: float = 0.15
    mottle: np.ndarray | None = None
    ao: float = 0.35
    specular: float = 0.05
    shininess: float = 14.0
    blend: float = 3.5
    cuff: float = 0.3


def sample_skin_look(rng: np.random.Generator, size: int, finger_radius: float = 8.0) -> SkinLook:
    """A random :class:`SkinLook` for an image of ``size`` px; ``finger_radius`` (mm) sets the blend radius."""
    wrap, sss = rng.uniform(0.3, 0.6), rng.uniform(0.6, 1.4)
    crease, flush = rng.uniform(0.12, 0.35), rng.uniform(0.05, 0.25)
    cells = rng.uniform(size=(6, 6)).astype(np.float32)
    mottle = np.asarray(Image.fromarray(cells, mode="F").resize((size, size), Image.BICUBIC), dtype=np.float32)
    mottle = (mottle - 0.5) * np.float32(rng.uniform(0.04, 0.12))
    return SkinLook(wrap, sss, crease, flush, mottle, rng.uniform(0.2, 0.5), rng.uniform(0.02, 0.08),
                    rng.uniform(8, 24), float(rng.uniform(0.35, 0.5) * finger_radius))


def _box_sum(a, r):
    """Sums of (..., H, W) ``a`` over the (2r+1)^2 boxes around each pixel (zero outside the image), by cumulative sums."""
    *lead, H, W = a.shape
    k = 2 * r + 1
    c = np.zeros((*lead, H + k, W + k), a.dtype)  # a leading row and column of zeros, then r zeros each side
    c[..., r + 1:r + 1 + H, r + 1:r + 1 + W] = a
    c = c.cumsum(-2).cumsum(-1)
    return c[..., k:, k:] - c[..., :-k, k:] - c[..., k:, :-k] + c[..., :-k, :-k]


def crevice_occlusion(raster: Raster, radius: int, depth_scale: float) -> np.ndarray:
    """Screen-space ambient occlusion (H, W) in [0, 1]: how far a hand pixel lies behind the mean
    depth of the hand pixels around it (``radius`` px), over ``depth_scale`` mm. Crevices between
    fingers and under the thumb are behind their surroundings. The mean depth is a soft, slowly
    varying term: it is taken over every other pixel and row (radius halved) and repeated back up,
    a quarter of the work."""
    f32 = np.float32
    hand = raster.layer >= 0
    occ = np.zeros(hand.shape, f32)
    rows, cols = np.flatnonzero(hand.any(1)), np.flatnonzero(hand.any(0))
    if rows.size == 0:
        return occ
    box = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)  # the hands' bounding box: zeros outside
    hand, depth = hand[box], raster.depth[box]
    h2, d2 = hand[::2, ::2], depth[::2, ::2]
    z_sum, n = _box_sum(np.stack([np.where(h2, d2, 0.0), h2]).astype(f32), max(1, round(radius / 2)))
    zm = (z_sum / np.maximum(n, f32(1e-3))).repeat(2, 0).repeat(2, 1)[:hand.shape[0], :hand.shape[1]]
    occ[box] = np.where(hand, np.clip((depth - zm) / f32(depth_scale), 0.0, 1.0), 0.0)
    return occ


def shade_skin(raster: Raster, prims: Primitives, app: Appearance, look: SkinLook, background, focal,
               princpt) -> np.ndarray:
    """Style "v2" shading: composite skin-shaded hands over ``background`` (H, W, 3) -> (H, W, 3) float32.

    albedo: :func:`_albedo`, times (1 + mottle), reddened at the knuckles and fingertips
    (``flush``), darkened along the flexion creases (``crease``). Light, per colour channel c::

        diffuse_c = clip((n.l + w_c) / (1 + w_c), 0, 1),  w_c = wrap + sss * SSS_TINT_c   (wrap lighting)
        colour    = albedo * light' * (ambient * (1 - ao * occ) + (1 - ambient) * diffuse + fill)
                    + specular * (n.h)^shininess * (1 - ao * occ)

    with occ from :func:`crevice_occlusion` and light' = :func:`damped_cast` (light colour).
    """
    H, W = raster.depth.shape
    img, idx = _canvas(raster, background)
    if idx.size == 0:
        return img.reshape(H, W, 3)
    f32 = np.float32
    albedo, n, t, hand, part, s = _albedo(raster, prims, app, idx, look.cuff)
    if look.mottle is not None:
        albedo *= 1.0 + look.mottle.reshape(-1)[idx, None]
    skin = (part != FOREARM) | (t < look.cuff) if app.sleeve is not None else np.ones(idx.size, bool)
    finger = (part == PHALANX) | (part == DISTAL)
    near_joint = np.exp(-(np.minimum(t, np.where(part == DISTAL, 1.0, 1.0 - t)) / f32(0.07)) ** 2)
    crease = np.where(finger, near_joint, 0.0) * _smoothstep(f32(0.0), f32(-0.5), s)  # palm side of the joints
    wrinkle = np.where(finger, near_joint, 0.0) * _smoothstep(f32(0.2), f32(0.7), s) * f32(0.4)  # knuckle skin
    tip = np.where(part == DISTAL, _smoothstep(f32(0.5), f32(1.0), t), 0.0)
    flush = (np.clip(wrinkle + tip, 0.0, 1.0) * f32(look.flush))[:, None]
    albedo = albedo * (1.0 - flush * np.array([0.0, 0.35, 0.35], f32))
    albedo *= (1.0 - f32(look.crease) * np.clip(crease + wrinkle, 0.0, 1.0))[:, None] * skin[:, None] + ~skin[:, None]
    view = _view_dirs(idx, W, focal, princpt)
    L = np.asarray(app.light_dir, dtype=f32)
    ndl = (n @ L)[:, None]
    w = (f32(look.wrap) + f32(look.sss) * SSS_TINT.astype(f32))[None]
    diff = np.clip((ndl + w) / (1.0 + w), 0.0, 1.0)
    occ = f32(look.ao) * crevice_occlusion(raster, max(2, H // 40), 12.0).reshape(-1)[idx]
    spec = _specular(n, L, view, look.specular, look.shininess) * (1.0 - occ)
    fill = f32(0.1) * np.clip(_dot(n, view), 0.0, 1.0)
    light = f32(app.ambient) * (1.0 - occ)[:, None] + f32(1 - app.ambient) * diff + fill[:, None]
    col = albedo * damped_cast(app.light_color).astype(f32) * light
    img[idx] = np.clip(col + spec[:, None], 0.0, 1.0)
    return img.reshape(H, W, 3)


# --------------------------------------------------------------------------- #
# Backgrounds
# --------------------------------------------------------------------------- #
def _random_color(rng, s=(0.05, 0.8), v=(0.1, 0.95)):
    return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*s), rng.uniform(*v)), dtype=np.float32)


def _value_noise(rng, size, cells):
    small = (rng.uniform(size=(cells, cells, 3)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0


@lru_cache(maxsize=8)
def _unit_grid(S: int):
    """(yy, xx): (S, S) float32 pixel rows / columns divided by S (in [0, 1)); read-only, made once per size."""
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) / S
    yy.flags.writeable = xx.flags.writeable = False
    return yy, xx


def _mix(c0, c1, w):
    """``c0 + w (c1 - c0)``: (S, S) float32 weights w between two (3,) float32 colours -> (S, S, 3) float32.

    Channel by channel: the same numbers as broadcasting ``w[..., None]`` against the colours, which
    numpy runs three values at a time (several times slower on a whole image)."""
    out = np.empty(w.shape + (3,), np.float32)
    for ch in range(3):
        out[..., ch] = c0[ch] + w * (c1 - c0)[ch]
    return out


#: style "v2"'s background layers in place of the regular patterns (:func:`random_background`)
PATTERN_STANDINS = {"stripes": "noise", "checker": "blobs"}


def random_background(rng: np.random.Generator, size: int, skin=None, style: str = "v1") -> np.ndarray:
    """A random textured background (size, size, 3) float32 in [0, 1].

    A gradient, then one to three of: multi-octave value noise, stripes, a checker
    board, random blobs; sometimes a skin-coloured blob (a distractor, as faces and
    arms are in real images) when ``skin`` (3,) is given. Drawn at half the size (at least 32,
    at most 128 px) and upsampled: backgrounds are out of focus anyway, and it keeps rendering fast.
    ``style`` "v2": the same choice of layers, but stripes are painted as noise and checker boards as
    blobs (:data:`PATTERN_STANDINS`; MediaPipe finds more of the same hands in front of them,
    docs/realism.md round 6), drawn at a quarter of the size (at least 32, at most 128 px; the stand-ins
    cost more than the patterns). ValueError for another style.
    """
    if style not in ("v1", "v2"):
        raise ValueError(f"style must be 'v1' or 'v2', got {style!r}")
    S = int(min(max(size // (4 if style == "v2" else 2), 32), 128, size))
    patterns = style == "v1"
    yy, xx = _unit_grid(S)
    ang = rng.uniform(0, 2 * np.pi)
    g = np.float32(np.cos(ang)) * xx + np.float32(np.sin(ang)) * yy
    g = (g - g.min()) / max(float(np.ptp(g)), 1e-6)
    c0, c1 = _random_color(rng), _random_color(rng)
    img = _mix(c0, c1, g)
    for kind in rng.choice(["noise", "stripes", "checker", "blobs"], size=rng.integers(1, 4), replace=False):
        kind = kind if patterns else PATTERN_STANDINS.get(kind, kind)
        alpha = np.float32(rng.uniform(0.3, 1.0))
        if kind == "noise":
            layer = 0.6 * _value_noise(rng, S, int(rng.integers(3, 7))) + 0.4 * _value_noise(rng, S, int(rng.integers(10, 24)))
            layer = layer * np.float32(0.6) + _random_color(rng) * np.float32(0.4)
        elif kind == "stripes":
            period = rng.uniform(0.04, 0.25)
            a = rng.uniform(0, np.pi)
            wave = np.sin(np.float32(2 * np.pi / period) * (np.float32(np.cos(a)) * xx + np.float32(np.sin(a)) * yy)
                          + np.float32(rng.uniform(0, 6.3)))
            m = _smoothstep(np.float32(-0.15), np.float32(0.15), wave * np.float32(rng.uniform(0.3, 3.0)))
            c0, c1 = _random_color(rng), _random_color(rng)
            layer = _mix(c0, c1, m)
        elif kind == "checker":
            cell = rng.uniform(0.05, 0.2)
            m = (np.floor(xx / cell) + np.floor(yy / cell)) % 2
            c0, c1 = _random_color(rng), _random_color(rng)
            layer = _mix(c0, c1, m)
        else:  # blobs
            canvas = Image.fromarray((img * 255).astype(np.uint8))
            draw = ImageDraw.Draw(canvas)
            for _ in range(int(rng.integers(4, 14))):
                cx, cy = rng.uniform(-0.1, 1.1, size=2) * S
                rx, ry = rng.uniform(0.03, 0.3, size=2) * S
                draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=tuple(int(c) for c in _random_color(rng) * 255))
            layer = np.asarray(canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.5))), dtype=np.float32) / 255
        img = img + alpha * (layer - img)
    if skin is not None and rng.uniform() < 0.25:  # a skin-coloured distractor (a face, an arm, ...)
        canvas = Image.new("L", (S, S), 0)
        cx, cy = rng.uniform(0, 1, size=2) * S
        rx, ry = rng.uniform(0.1, 0.35, size=2) * S
        ImageDraw.Draw(canvas).ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
        m = np.asarray(canvas.filter(ImageFilter.GaussianBlur(S * 0.03)), dtype=np.float32)[..., None] / 255
        col = np.asarray(skin, dtype=np.float32) * (0.6 + 0.4 * (1 - yy[..., None]))
        img = img + m * (col - img)
    out = Image.fromarray((np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8))
    if S != size:
        out = out.resize((size, size), Image.BICUBIC)
    return np.asarray(out, dtype=np.float32) / 255.0


def cast_shadow(img, mask, offset, strength, blur):
    """Darken ``img`` (H, W, 3) under a soft copy of ``mask`` (H, W) bool shifted by ``offset`` (dx, dy) px.

    The mask is shifted, shrunk 4x, blurred by ``blur`` px (full-size units) and enlarged again.
    """
    H, W = mask.shape
    dx, dy = int(round(offset[0])), int(round(offset[1]))
    shifted = np.zeros_like(mask)
    ys, yd = slice(max(0, -dy), min(H, H - dy)), slice(max(0, dy), min(H, H + dy))
    xs, xd = slice(max(0, -dx), min(W, W - dx)), slice(max(0, dx), min(W, W + dx))
    shifted[yd, xd] = mask[ys, xs]
    small = (max(W // 4, 1), max(H // 4, 1))
    m = Image.fromarray(shifted.astype(np.uint8) * 255).resize(small, Image.BILINEAR)
    m = m.filter(ImageFilter.GaussianBlur(blur / 4)).resize((W, H), Image.BILINEAR)
    return img * (1.0 - np.float32(strength / 255.0) * np.asarray(m, dtype=np.float32)[..., None])
