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

Camera frame and pixel conventions are those of :mod:`h2t_lib.camera` (x right,
y down, z forward; ``u = X/Z fx + cx``); pixel ``(row i, col j)`` is centred at
``(u, v) = (j, i)``.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass, fields

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from h2t_lib import skeleton as sk
from h2t_lib.data import hand_model as hm

# primitive kinds and parts
CAPSULE, SLAB = 0, 1
SKIN, FOREARM, DISTAL = 0, 1, 2
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
        return Primitives(*(np.concatenate([getattr(p, f.name) for p in items]) for f in fields(Primitives)))

    def translated(self, offset) -> "Primitives":
        o = np.asarray(offset, dtype=float)
        return Primitives(self.kind, self.a + o, self.b + o, self.c + o, self.ra, self.rb, self.hand, self.part,
                          self.dorsal)

    def select(self, mask) -> "Primitives":
        return Primitives(*(getattr(self, f.name)[mask] for f in fields(Primitives)))


#: the 20 finger bones as (parent joint, child joint, finger, segment k) with k = 0 for the bone leaving the wrist
_BONES = np.array([(c[k], c[k + 1], f, k) for f, c in enumerate(sk.FINGER_CHAINS[n] for n in hm.FINGERS) for k in range(4)])


def hand_primitives(joints21, radii, dorsal21=None, side: str = "right", forearm: bool = True,
                    wrist_bend=(0.0, 0.0)) -> Primitives:
    """The primitives of one hand from its 21 joints.

    joints21: (21, 3) mm; radii: (5, 5) per-finger radii as ``HandShape.radii``;
    dorsal21: (21, 3) per-bone dorsal directions from :func:`hand_model.forward_kinematics`
    (estimated from the joints when None, which works for any skeleton, e.g. a prediction).
    Fingers: one tapered capsule per bone (the metacarpals thinner, inside the palm; the last
    one stops short of the tip so that the tip joint lies on the skin). Palm: two slabs (wrist
    corners, index and pinky knuckles) with capsule rims, a thenar pad and the thumb web.
    The forearm (last primitive) is :func:`forearm_primitive`.
    """
    j = np.asarray(joints21, dtype=float)
    radii = np.asarray(radii, dtype=float)
    x, y, z = hm.hand_axes(j, side)
    if dorsal21 is None:
        dorsal21 = _estimate_dorsal(j, x, z)
    r_palm = palm_radius(radii)
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
    part, dors = [np.where(tip, DISTAL, SKIN)], [dorsal21[ch]]
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
    kind.append(np.array([r[0] for r in rows]))
    A.append(np.array([r[1] for r in rows]))
    B.append(np.array([r[2] for r in rows]))
    C.append(np.array([r[2] if r[3] is None else r[3] for r in rows]))
    RA.append(np.array([r[4] for r in rows]))
    RB.append(np.array([r[5] for r in rows]))
    part.append(np.full(len(rows), SKIN))
    dors.append(np.tile(z, (len(rows), 1)))
    n = 20 + len(rows)
    prims = Primitives(np.concatenate(kind), np.concatenate(A), np.concatenate(B), np.concatenate(C),
                       np.concatenate(RA), np.concatenate(RB), np.full(n, sk.HANDS.index(side)),
                       np.concatenate(part), np.concatenate(dors))
    if forearm:
        prims = Primitives.concat([prims, forearm_primitive(j, radii, side, wrist_bend)])
    return prims


def palm_radius(radii) -> float:
    """Half thickness of the palm slab (mm), from the finger base radii."""
    return float(1.1 * np.asarray(radii)[1:, 1].mean())


def forearm_primitive(joints21, radii, side: str = "right", wrist_bend=(0.0, 0.0)) -> Primitives:
    """The forearm: a capsule from just behind the wrist, about two palm lengths long.

    It leaves the wrist opposite the fingers, turned by ``wrist_bend = (flexion, deviation)``
    degrees (+flexion towards the back of the hand, +deviation towards the little finger);
    a single number is the flexion.
    """
    j = np.asarray(joints21, dtype=float)
    bend, dev = (float(wrist_bend), 0.0) if np.isscalar(wrist_bend) else (float(v) for v in wrist_bend)
    x, y, z = hm.hand_axes(j, side)
    tb, tv = np.deg2rad(bend), np.deg2rad(dev)
    d = -np.cos(tb) * np.cos(tv) * y + np.sin(tb) * z + np.cos(tb) * np.sin(tv) * x
    w = j[sk.WRIST]
    palm_len = np.linalg.norm(j[sk.FINGER_CHAINS["middle"][1]] - w)
    r0 = 1.9 * palm_radius(radii)
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
        V = np.stack([prims.a[slab], prims.b[slab], prims.c[slab]])  # (3, T, 3)
        r = prims.ra[slab]
        n = _cross(V[1] - V[0], V[2] - V[0])
        n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
        n = np.where(((n * V[0]).sum(1) > 0)[:, None], -n, n)  # the face looking at the camera
        us, vs = _project(V.reshape(-1, 3), fx, fy, cx, cy)
        pad = np.repeat((r / np.maximum(V[..., 2].min(0) - r, 1e-3) * fmax * 1.05 + 1.0)[None], 3, 0)
        box = _boxes(us.reshape(3, -1), vs.reshape(3, -1), pad, W, H)
        tid, px, py = _fragments(*box)
        vx = (px.astype(f32) - f32(cx)) / f32(fx)
        vy = (py.astype(f32) - f32(cy)) / f32(fy)
        # per triangle: the plane pushed r towards the camera, n . X = off, and barycentric helpers
        P0 = V[0] + r[:, None] * n  # a corner of the pushed triangle
        e0, e1 = V[1] - V[0], V[2] - V[0]
        d00, d01, d11 = (e0 * e0).sum(1), (e0 * e1).sum(1), (e1 * e1).sum(1)
        den = d00 * d11 - d01 * d01
        consts = np.stack([n[:, 0], n[:, 1], n[:, 2], (n * P0).sum(1), P0[:, 0], P0[:, 1], P0[:, 2],
                           *(e0.T), *(e1.T), d00 / den, d01 / den, d11 / den]).astype(f32)
        q = np.take(consts, tid, axis=1)  # (16, F)
        ndv = q[0] * vx + q[1] * vy + q[2]
        ok = ndv < -0.02
        lam = q[3] / np.where(ok, ndv, f32(-1.0))  # ray X = lam (vx, vy, 1) meets the plane
        wx, wy, wz = vx * lam - q[4], vy * lam - q[5], lam - q[6]
        d20 = wx * q[7] + wy * q[8] + wz * q[9]
        d21 = wx * q[10] + wy * q[11] + wz * q[12]
        beta = q[15] * d20 - q[14] * d21
        gamma = q[13] * d21 - q[14] * d20
        inside = ok & (lam > 0) & (beta >= 0) & (gamma >= 0) & (beta + gamma <= 1)
        tid, px, py, lam = tid[inside], px[inside], py[inside], lam[inside]
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


def shade(raster: Raster, prims: Primitives, app: Appearance, background, focal, princpt) -> np.ndarray:
    """Composite shaded hands over ``background`` (H, W, 3) in [0, 1] -> (H, W, 3) float32.

    colour = albedo * light * (ambient + (1 - ambient) max(0, n.l) + fill) + specular * (n.h)^shininess,
    albedo: the hand's skin, blended to the palm tone where the normal turns away from the
    back of the hand, to the nail tone on the back of the distal phalanges, or the sleeve.
    """
    H, W = raster.depth.shape
    img = np.array(background, dtype=np.float32, copy=True).reshape(H * W, 3)
    prim = raster.prim.reshape(-1)
    idx = np.flatnonzero(prim >= 0)
    if idx.size == 0:
        return img.reshape(H, W, 3)
    f32 = np.float32
    p = prim[idx]
    n = raster.normal.reshape(-1, 3)[idx]
    t = raster.t.reshape(-1)[idx]
    hand, part = prims.hand[p], prims.part[p]
    dot = lambda u, v: np.einsum("ij,ij->i", u, v)  # row-wise dot products
    s = dot(n, prims.dorsal.astype(f32)[p])  # +1 on the back of the hand, -1 on the palm side
    skin, palm, nail = (q.astype(f32) for q in (app.skin, app.palm, app.nail))
    albedo = skin[hand] + _smoothstep(f32(0.1), f32(-0.45), s)[:, None] * (palm - skin)[hand]
    d = np.flatnonzero(part == DISTAL)
    w_nail = _smoothstep(f32(0.45), f32(0.75), s[d]) * _smoothstep(f32(0.35), f32(0.55), t[d])
    albedo[d] += w_nail[:, None] * (nail[hand[d]] - albedo[d])
    if app.sleeve is not None:
        albedo[part == FOREARM] = app.sleeve
    fx, fy = (float(v) for v in focal)
    cx, cy = (float(v) for v in princpt)
    view = np.empty((idx.size, 3), f32)  # unit vectors from the surface towards the camera
    view[:, 0] = (cx - idx % W) / fx
    view[:, 1] = (cy - idx // W) / fy
    view[:, 2] = -1.0
    view /= np.sqrt(dot(view, view))[:, None]
    L = np.asarray(app.light_dir, dtype=f32)
    diff = np.maximum(n @ L, 0.0)
    h = L + view
    h /= np.sqrt(dot(h, h))[:, None]
    spec = f32(app.specular) * np.maximum(dot(n, h), 0.0) ** f32(app.shininess)
    fill = f32(0.12) * np.clip(dot(n, view), 0.0, 1.0)  # a touch of light from the camera side
    col = albedo * app.light_color.astype(f32) * (f32(app.ambient) + f32(1 - app.ambient) * diff + fill)[:, None]
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


def random_background(rng: np.random.Generator, size: int, skin=None) -> np.ndarray:
    """A random textured background (size, size, 3) float32 in [0, 1].

    A gradient, then one to three of: multi-octave value noise, stripes, a checker
    board, random blobs; sometimes a skin-coloured blob (a distractor, as faces and
    arms are in real images) when ``skin`` (3,) is given. Drawn at half the size (at most
    128 px) and upsampled: backgrounds are out of focus anyway, and it keeps rendering fast.
    """
    S = int(min(max(size // 2, 32), 128, size))
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) / S
    ang = rng.uniform(0, 2 * np.pi)
    g = np.float32(np.cos(ang)) * xx + np.float32(np.sin(ang)) * yy
    g = (g - g.min()) / max(float(np.ptp(g)), 1e-6)
    c0, c1 = _random_color(rng), _random_color(rng)
    img = c0 + g[..., None] * (c1 - c0)
    for kind in rng.choice(["noise", "stripes", "checker", "blobs"], size=rng.integers(1, 4), replace=False):
        alpha = np.float32(rng.uniform(0.3, 1.0))
        if kind == "noise":
            layer = 0.6 * _value_noise(rng, S, int(rng.integers(3, 7))) + 0.4 * _value_noise(rng, S, int(rng.integers(10, 24)))
            layer = layer * np.float32(0.6) + _random_color(rng) * np.float32(0.4)
        elif kind == "stripes":
            period = rng.uniform(0.04, 0.25)
            a = rng.uniform(0, np.pi)
            wave = np.sin(np.float32(2 * np.pi / period) * (np.float32(np.cos(a)) * xx + np.float32(np.sin(a)) * yy)
                          + np.float32(rng.uniform(0, 6.3)))
            m = _smoothstep(np.float32(-0.15), np.float32(0.15), wave * np.float32(rng.uniform(0.3, 3.0)))[..., None]
            c0, c1 = _random_color(rng), _random_color(rng)
            layer = c0 + m * (c1 - c0)
        elif kind == "checker":
            cell = rng.uniform(0.05, 0.2)
            m = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2)[..., None]
            c0, c1 = _random_color(rng), _random_color(rng)
            layer = c0 + m * (c1 - c0)
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
