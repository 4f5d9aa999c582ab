"""The hand as primitives for the ray-caster: capsules (finger bones, palm edges, thenar pad, forearm)
and slabs (the flattened palm), the palm volumes of style "v2", and which joints a primitive covers.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

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
