"""A procedural kinematic hand: 21 joints in the project's within-hand order.

This is the skeleton behind the synthetic data. It is deliberately small and
readable, so a notebook can drive it with sliders:

>>> pose = HandPose.neutral()                    # flat hand, fingers straight
>>> pose.flexion[1] = (40, 60, 30)                # bend the index finger (MCP, PIP, DIP), degrees
>>> joints = hand_joints(pose, HandShape.average(), side="right")   # (21, 3) mm

Conventions
-----------
* Joint order as :mod:`h2t_lib.skeleton`: per finger tip -> base (``thumb4 .. thumb1``,
  ``index4 .. index1``, ...), wrist last (index 20).
* The *hand frame* of a right hand: origin at the wrist, ``x`` towards the little
  finger (ulnar side), ``y`` towards the fingers, ``z`` out of the back of the hand
  (dorsal). The palm faces ``-z``. Millimetres.
* A left hand is the mirror image of the right hand with the same pose: the
  hand-frame coordinates are reflected (``x -> -x``) before the global rotation.
* All angles in this module are **degrees** (they are what the sliders show).
  ``flexion > 0`` bends a joint towards the palm; ``abduction > 0`` spreads a
  finger away from the middle finger (thumb: away from the index finger);
  ``opposition`` swings the thumb from the palm plane (0) in front of the palm (90).
* Global pose: ``joints = R @ hand_frame + wrist`` with ``R = Rz(rz) Ry(ry) Rx(rx)``
  built from ``HandPose.rotation = (rx, ry, rz)``.

Bone lengths follow adult hand anthropometry (wrist to middle-finger MCP about
90 mm, hand length about 188 mm at scale 1); :func:`sample_hand_shape` draws one
person's scale and a small per-bone jitter.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from h2t_lib import skeleton as sk

FINGERS = sk.FINGERS  # ("thumb", "index", "middle", "ring", "pinky")

# --------------------------------------------------------------------------- #
# Template right hand (scale 1), hand frame, mm
# --------------------------------------------------------------------------- #
#: finger base joints relative to the wrist (thumb1 = thumb CMC, index1..pinky1 = MCPs)
TEMPLATE_BASES = np.array(
    [
        [-20.0, 22.0, -10.0],  # thumb CMC: radial, near the wrist, a little palmar
        [-23.0, 86.0, 0.0],  # index MCP
        [-4.0, 90.0, 1.0],  # middle MCP (palm length ~90 mm)
        [14.0, 85.0, 0.0],  # ring MCP
        [29.0, 75.0, -3.0],  # pinky MCP
    ]
)
#: three segment lengths per finger from the base outwards
#: (thumb: metacarpal, proximal, distal; fingers: proximal, middle, distal phalanx to the tip)
TEMPLATE_LENGTHS = np.array(
    [
        [44.0, 32.0, 27.0],
        [42.0, 25.0, 22.0],
        [46.0, 29.0, 23.0],
        [43.0, 27.0, 23.0],
        [34.0, 20.0, 20.0],
    ]
)
#: capsule radii per finger at (wrist end of the base bone, base joint, joint 2, joint 3, tip)
TEMPLATE_RADII = np.array(
    [
        [15.0, 13.0, 10.5, 9.5, 8.5],
        [12.0, 10.5, 9.2, 8.2, 7.2],
        [12.0, 10.5, 9.4, 8.4, 7.4],
        [12.0, 10.0, 8.8, 7.8, 7.0],
        [11.0, 9.0, 7.8, 7.0, 6.4],
    ]
)
#: rest splay of the fingers about the palm normal (degrees, + = towards the thumb)
REST_SPLAY = np.array([0.0, 6.0, 0.0, -6.0, -13.0])
#: direction "+abduction" takes for each finger: +1 = towards the thumb side, -1 = towards the pinky side
ABDUCTION_SIGN = np.array([1.0, 1.0, 1.0, -1.0, -1.0])
#: rest direction of the thumb metacarpal and of its nail, hand frame (opposition 0)
THUMB_REST_DIR = np.array([-0.62, 0.75, -0.25])
THUMB_REST_NAIL = np.array([-0.55, 0.0, 0.85])

# --------------------------------------------------------------------------- #
# Joint-angle limits (degrees): [min, max]
# --------------------------------------------------------------------------- #
#: flexion limits per finger for its three joints (thumb: CMC, MCP, IP; fingers: MCP, PIP, DIP)
FLEXION_LIMITS = np.array(
    [
        [[-20.0, 45.0], [-10.0, 60.0], [-15.0, 80.0]],
        [[-25.0, 90.0], [0.0, 105.0], [-5.0, 80.0]],
        [[-25.0, 90.0], [0.0, 105.0], [-5.0, 80.0]],
        [[-25.0, 90.0], [0.0, 105.0], [-5.0, 80.0]],
        [[-25.0, 90.0], [0.0, 105.0], [-5.0, 80.0]],
    ]
)
#: abduction limits per finger (at the thumb CMC / finger MCP)
ABDUCTION_LIMITS = np.array([[-20.0, 40.0], [-15.0, 20.0], [-12.0, 12.0], [-12.0, 15.0], [-15.0, 25.0]])
#: thumb opposition limits
OPPOSITION_LIMITS = np.array([0.0, 90.0])
#: default range of the per-person scale and per-bone relative jitter used by :func:`sample_hand_shape`
SCALE_RANGE = (0.85, 1.15)
BONE_JITTER = 0.04


# --------------------------------------------------------------------------- #
# Rotations
# --------------------------------------------------------------------------- #
def rot_x(deg: float) -> np.ndarray:
    """(3, 3) rotation by ``deg`` degrees about the x axis. Used in notebook 01."""
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(deg: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(deg: float) -> np.ndarray:
    """(3, 3) rotation by ``deg`` degrees about the z axis. Used in notebook 01."""
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def euler_to_matrix(euler_deg) -> np.ndarray:
    """(rx, ry, rz) degrees -> R = Rz(rz) @ Ry(ry) @ Rx(rx), (3, 3)."""
    rx, ry, rz = (float(a) for a in euler_deg)
    return rot_z(rz) @ rot_y(ry) @ rot_x(rx)


def matrix_to_euler(R) -> np.ndarray:
    """Inverse of :func:`euler_to_matrix` (ry in [-90, 90]); (3,) degrees."""
    R = np.asarray(R, dtype=float)
    sy = -R[2, 0]
    cy = np.hypot(R[0, 0], R[1, 0])
    if cy > 1e-8:
        rx = np.arctan2(R[2, 1], R[2, 2])
        ry = np.arctan2(sy, cy)
        rz = np.arctan2(R[1, 0], R[0, 0])
    else:  # gimbal lock: rz is free, put everything into rx
        rx = np.arctan2(-R[1, 2], R[1, 1])
        ry = np.arctan2(sy, cy)
        rz = 0.0
    return np.rad2deg(np.array([rx, ry, rz]))


def _unit(v):
    return v / np.sqrt(v @ v)


def _cross(u, v):
    """Cross product of two 3-vectors (np.cross is slow on tiny arrays)."""
    return np.array([u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]])


def frame_from_directions(finger_dir, dorsal_hint) -> np.ndarray:
    """Rotation whose hand-frame ``y`` maps to ``finger_dir`` and ``z`` (dorsal) as close as possible to ``dorsal_hint``.

    Handy for placing hands: e.g. fingers pointing up in the image and the back of
    the hand towards the camera is ``frame_from_directions((0, -1, 0), (0, 0, -1))``.
    """
    y = _unit(np.asarray(finger_dir, dtype=float))
    z = np.asarray(dorsal_hint, dtype=float)
    z = z - (z @ y) * y
    n = np.sqrt(z @ z)
    if n < 1e-8:
        raise ValueError("dorsal_hint must not be parallel to finger_dir")
    z = z / n
    return np.stack([_cross(y, z), y, z], axis=1)


def _rot_batch(deg, axis: int) -> np.ndarray:
    """Rotations about axis 0 (x), 1 (y) or 2 (z) by each angle of ``deg`` (N,): (N, 3, 3)."""
    t = np.deg2rad(np.asarray(deg, dtype=float)).reshape(-1)
    c, s = np.cos(t), np.sin(t)
    i, j = [k for k in range(3) if k != axis]
    if axis == 1:  # about y the sine's sign flips (right-handed: z -> x)
        i, j = j, i
    R = np.zeros((t.size, 3, 3))
    R[:, axis, axis] = 1.0
    R[:, i, i], R[:, i, j], R[:, j, i], R[:, j, j] = c, -s, s, c
    return R


def _rot_x_batch(deg) -> np.ndarray:
    return _rot_batch(deg, 0)


def _rot_z_batch(deg) -> np.ndarray:
    return _rot_batch(deg, 2)


# --------------------------------------------------------------------------- #
# Shape and pose
# --------------------------------------------------------------------------- #
@dataclass
class HandShape:
    """Size of one hand (right-hand frame, mm).

    bases:   (5, 3) finger base joints relative to the wrist (thumb CMC, index..pinky MCP)
    lengths: (5, 3) segment lengths of each finger from its base outwards
    radii:   (5, 5) capsule radii per finger (wrist end, base, joint 2, joint 3, tip)
    scale:   the overall scale this shape was drawn with (informative)

    Used in notebook 01.
    """

    bases: np.ndarray
    lengths: np.ndarray
    radii: np.ndarray
    scale: float = 1.0

    @classmethod
    def average(cls, scale: float = 1.0) -> "HandShape":
        """The template adult hand, uniformly scaled."""
        return cls(TEMPLATE_BASES * scale, TEMPLATE_LENGTHS * scale, TEMPLATE_RADII * scale, float(scale))

    def palm_length(self) -> float:
        """Wrist to middle-finger MCP, mm."""
        return float(np.linalg.norm(self.bases[2]))


@dataclass
class HandPose:
    """Articulation and placement of one hand. All angles in degrees.

    flexion:    (5, 3) per finger (thumb, index, middle, ring, pinky), joints from the base
                outwards (thumb: CMC, MCP, IP; fingers: MCP, PIP, DIP); + bends towards the palm
    abduction:  (5,) sideways spread at the finger base; + away from the middle finger
                (thumb: away from the index finger)
    opposition: thumb swing in front of the palm (0 = in the palm plane, 90 = opposed)
    rotation:   (3,) Euler angles (rx, ry, rz): R = Rz Ry Rx maps the hand frame to the scene
    wrist:      (3,) wrist position in the scene (camera) frame, mm

    Used in notebook 01.
    """

    flexion: np.ndarray = field(default_factory=lambda: np.zeros((5, 3)))
    abduction: np.ndarray = field(default_factory=lambda: np.zeros(5))
    opposition: float = 0.0
    rotation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    wrist: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @classmethod
    def neutral(cls) -> "HandPose":
        """Flat hand, fingers straight, at the origin, hand frame = scene frame."""
        return cls()

    def rotation_matrix(self) -> np.ndarray:
        return euler_to_matrix(self.rotation)

    def with_rotation_matrix(self, R) -> "HandPose":
        """A copy with the global rotation set from a (3, 3) matrix."""
        return replace(self, rotation=matrix_to_euler(R))

    def clipped(self) -> "HandPose":
        """A copy with every angle clipped into the joint limits."""
        return replace(
            self,
            flexion=np.clip(self.flexion, FLEXION_LIMITS[..., 0], FLEXION_LIMITS[..., 1]),
            abduction=np.clip(self.abduction, ABDUCTION_LIMITS[:, 0], ABDUCTION_LIMITS[:, 1]),
            opposition=float(np.clip(self.opposition, *OPPOSITION_LIMITS)),
        )

    def within_limits(self, atol: float = 1e-9) -> bool:
        """True when all angles respect the joint limits."""
        f, a, o = np.asarray(self.flexion), np.asarray(self.abduction), self.opposition
        return bool(
            np.all(f >= FLEXION_LIMITS[..., 0] - atol)
            and np.all(f <= FLEXION_LIMITS[..., 1] + atol)
            and np.all(a >= ABDUCTION_LIMITS[:, 0] - atol)
            and np.all(a <= ABDUCTION_LIMITS[:, 1] + atol)
            and OPPOSITION_LIMITS[0] - atol <= o <= OPPOSITION_LIMITS[1] + atol
        )


def sample_hand_shape(rng: np.random.Generator, scale=None, scale_range=SCALE_RANGE, jitter=BONE_JITTER) -> HandShape:
    """One hand's size: a person scale in ``scale_range`` (or the given ``scale``) and
    an independent relative jitter in [-jitter, jitter] on every bone length and base position."""
    s = float(rng.uniform(*scale_range)) if scale is None else float(scale)
    j_bases = 1.0 + rng.uniform(-jitter, jitter, size=(5, 1))  # keeps each base's direction
    j_len = 1.0 + rng.uniform(-jitter, jitter, size=(5, 3))
    j_rad = 1.0 + rng.uniform(-jitter, jitter, size=(5, 1))
    return HandShape(TEMPLATE_BASES * s * j_bases, TEMPLATE_LENGTHS * s * j_len, TEMPLATE_RADII * s * j_rad, s)


def sample_hand_pose(rng: np.random.Generator, closure: float | None = None, rotation=None, wrist=None) -> HandPose:
    """A natural random articulation (within the limits).

    Fingers follow a shared grasp "closure" in [0, 1] (0 open, 1 fist) with
    per-finger variation; sometimes one or two fingers stay extended (pointing,
    "V" signs). DIP flexion is coupled to PIP (about 2/3), as in real fingers.
    ``rotation`` (3,) degrees and ``wrist`` (3,) mm default to zero.

    Used in notebook 01.
    """
    if closure is None:
        mode = rng.uniform()
        closure = rng.uniform(0.0, 0.25) if mode < 0.3 else rng.uniform(0.2, 0.7) if mode < 0.7 else rng.uniform(0.6, 1.0)
    c = np.clip(closure + rng.normal(0.0, 0.15, size=5), 0.0, 1.0)
    if rng.uniform() < 0.3:  # extended finger(s)
        for f in rng.choice([1, 2, 3, 4], size=rng.integers(1, 3), replace=False):
            c[f] = rng.uniform(0.0, 0.15)
    flex = np.zeros((5, 3))
    # fingers: MCP, PIP, DIP
    flex[1:, 0] = -10.0 + c[1:] * 95.0 + rng.normal(0.0, 8.0, size=4)
    flex[1:, 1] = c[1:] * 105.0 + rng.normal(0.0, 8.0, size=4)
    flex[1:, 2] = 0.65 * flex[1:, 1] + rng.normal(0.0, 6.0, size=4)
    # thumb: CMC, MCP, IP
    flex[0, 0] = c[0] * 35.0 + rng.normal(0.0, 8.0)
    flex[0, 1] = c[0] * 45.0 + rng.normal(0.0, 8.0)
    flex[0, 2] = c[0] * 60.0 + rng.normal(0.0, 10.0)
    spread = (1.0 - float(np.mean(c[1:]))) * rng.uniform(0.0, 1.0)
    abd = np.array([10.0 + 25.0 * spread, 12.0 * spread, 4.0 * spread, 8.0 * spread, 15.0 * spread])
    abd = abd + rng.normal(0.0, 3.0, size=5)
    opposition = float(np.clip(rng.normal(25.0 + 50.0 * c[0], 15.0), *OPPOSITION_LIMITS))
    pose = HandPose(
        flexion=flex,
        abduction=abd,
        opposition=opposition,
        rotation=np.zeros(3) if rotation is None else np.asarray(rotation, dtype=float),
        wrist=np.zeros(3) if wrist is None else np.asarray(wrist, dtype=float),
    )
    return pose.clipped()


# --------------------------------------------------------------------------- #
# Forward kinematics
# --------------------------------------------------------------------------- #
_MIRROR = np.diag([-1.0, 1.0, 1.0])


_THUMB_REST = frame_from_directions(THUMB_REST_DIR, THUMB_REST_NAIL)  # thumb base frame at opposition 0
_F = np.arange(5)
_BASE, _J2, _J3, _TIP = 4 * _F + 3, 4 * _F + 2, 4 * _F + 1, 4 * _F  # per finger, as skeleton.FINGER_CHAINS


def forward_kinematics(pose: HandPose, shape: HandShape, side: str = "right"):
    """Joints and per-joint dorsal ("nail side") directions of one hand in the scene frame.

    Each finger is a chain of three rotations from its base frame:
    ``R_base Rz(abduction) Rx(-flexion_1)``, then ``Rx(-flexion_2)``, ``Rx(-flexion_3)``;
    every bone is ``R (0, length, 0)`` in the current frame (``-flexion``: a positive
    angle turns ``y`` towards ``-z``, the palm). A finger's base frame is the hand frame
    turned by its rest splay; the thumb's is its rest frame swung about the hand's long
    axis by the opposition angle. The five fingers are computed together, (5, 3, 3) at a time.

    Returns (joints (21, 3) mm, dorsal (21, 3) unit vectors; row j is the dorsal
    direction of the bone ending at joint j, the wrist's is the back of the hand).
    """
    if side not in sk.HANDS:
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    flex = np.asarray(pose.flexion, dtype=float).reshape(5, 3)
    abd = np.asarray(pose.abduction, dtype=float).reshape(5)
    joints = np.zeros((sk.JOINTS_PER_HAND, 3))
    dorsal = np.zeros((sk.JOINTS_PER_HAND, 3))
    dorsal[sk.WRIST] = (0.0, 0.0, 1.0)
    R = _rot_z_batch(REST_SPLAY + ABDUCTION_SIGN * abd)  # (5, 3, 3) base frames of the fingers
    R[0] = rot_y(-pose.opposition) @ _THUMB_REST @ rot_z(abd[0])
    p = np.array(shape.bases, dtype=float)  # (5, 3) base joints
    joints[_BASE] = p
    dorsal[_BASE] = (0.0, 0.0, 1.0)  # the metacarpal bones lie in the palm...
    dorsal[_BASE[0]] = R[0, :, 2]  # ...except the thumb's short wrist bone
    for k, idx in enumerate((_J2, _J3, _TIP)):
        R = R @ _rot_x_batch(-flex[:, k])
        p = p + R[:, :, 1] * shape.lengths[:, k : k + 1]
        joints[idx] = p
        dorsal[idx] = R[:, :, 2]
    if side == "left":
        joints, dorsal = joints @ _MIRROR, dorsal @ _MIRROR
    R_g = pose.rotation_matrix()
    return joints @ R_g.T + np.asarray(pose.wrist, dtype=float), dorsal @ R_g.T


def hand_joints(pose: HandPose, shape: HandShape, side: str = "right") -> np.ndarray:
    """The 21 joints (tip first, wrist last) of one hand in the scene frame, mm. (21, 3)

    Used in notebook 01.
    """
    return forward_kinematics(pose, shape, side)[0]


def bone_lengths(joints21) -> np.ndarray:
    """Lengths of the 20 bones of one hand, in ``skeleton.HAND_BONES`` order. (..., 21, 3) -> (..., 20)"""
    j = np.asarray(joints21)
    p = np.array([b[0] for b in sk.HAND_BONES])
    c = np.array([b[1] for b in sk.HAND_BONES])
    return np.linalg.norm(j[..., c, :] - j[..., p, :], axis=-1)


def joint_radii(shape: HandShape) -> np.ndarray:
    """Capsule radius at each of the 21 joints (the wrist: the largest base-bone radius). (21,)"""
    r = np.zeros(sk.JOINTS_PER_HAND)
    for f, name in enumerate(FINGERS):
        chain = sk.FINGER_CHAINS[name]
        r[list(chain[1:])] = shape.radii[f, 1:]
    r[sk.WRIST] = shape.radii[:, 0].max()
    return r


def palm_center(joints21) -> np.ndarray:
    """Centre of the palm: halfway between the wrist and the mean of the four finger MCPs. (..., 3)"""
    j = np.asarray(joints21)
    mcps = [sk.FINGER_CHAINS[f][1] for f in FINGERS[1:]]
    return 0.5 * j[..., sk.WRIST, :] + 0.5 * j[..., mcps, :].mean(axis=-2)


def hand_axes(joints21, side: str = "right"):
    """(lateral x, finger y, dorsal z) unit vectors of a hand estimated from its joints.

    x points from the index MCP to the pinky MCP, y from the wrist to the middle MCP,
    z = x cross y for a right hand (its mirror for a left hand), orthogonalised.
    """
    j = np.asarray(joints21, dtype=float)
    x = j[_BASE[4]] - j[_BASE[1]]
    y = _unit(j[_BASE[2]] - j[sk.WRIST])
    x = _unit(x - (x @ y) * y)
    z = _cross(x, y)
    return x, y, (-z if side == "left" else z)
