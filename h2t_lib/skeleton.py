"""The one joint convention of h2t: InterHand2.6M's 42-joint order.

Right hand joints 0..20, left hand 21..41. Within a hand the fingertip comes
first and the wrist last::

    thumb4 thumb3 thumb2 thumb1  index4 ... index1  middle4 ... middle1
    ring4 ... ring1  pinky4 ... pinky1  wrist

``thumb4`` is the tip, ``thumb1`` the joint nearest the wrist. Coordinates are
millimetres in the camera frame (x right, y down, z forward) unless a name says
otherwise. Root (wrist) index: right 20, left 41.
"""
from __future__ import annotations

import numpy as np

HANDS = ("right", "left")  # order of the hands in the 42-joint array
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
JOINTS_PER_HAND = 21
NUM_JOINTS = 2 * JOINTS_PER_HAND  # 42

#: names of the 21 joints of one hand, in order (tip first, wrist last)
HAND_JOINT_NAMES = tuple(f"{f}{k}" for f in FINGERS for k in (4, 3, 2, 1)) + ("wrist",)
#: names of all 42 joints, e.g. "right_index4", "left_wrist"
JOINT_NAMES = tuple(f"{h}_{n}" for h in HANDS for n in HAND_JOINT_NAMES)

WRIST = 20  # index of the wrist within one hand
ROOT_INDEX = {"right": WRIST, "left": JOINTS_PER_HAND + WRIST}  # 20, 41
ROOTS = [ROOT_INDEX["right"], ROOT_INDEX["left"]]  # [20, 41]: the two wrists, in the order of the predicted roots
HAND_OFFSET = {"right": 0, "left": JOINTS_PER_HAND}
HAND_SLICE = {h: slice(o, o + JOINTS_PER_HAND) for h, o in HAND_OFFSET.items()}
HAND_TYPES = ("right", "left", "interacting")


def finger_chain(finger: str) -> tuple[int, ...]:
    """Within-hand indices of one finger from the wrist outwards: (wrist, k1, k2, k3, k4=tip)."""
    f = FINGERS.index(finger)
    return (WRIST, 4 * f + 3, 4 * f + 2, 4 * f + 1, 4 * f + 0)


#: finger chains (within one hand), wrist -> tip
FINGER_CHAINS = {f: finger_chain(f) for f in FINGERS}

#: parent of each joint within a hand (-1 for the wrist)
HAND_PARENTS = np.full(JOINTS_PER_HAND, -1, dtype=np.int64)
for _chain in FINGER_CHAINS.values():
    for _p, _c in zip(_chain[:-1], _chain[1:]):
        HAND_PARENTS[_c] = _p

#: the 20 bones of one hand as (parent, child) within-hand indices
HAND_BONES = tuple((int(HAND_PARENTS[c]), c) for c in range(JOINTS_PER_HAND) if HAND_PARENTS[c] >= 0)
#: the 40 bones of both hands as (parent, child) indices into the 42-joint array
BONES = tuple((p + o, c + o) for o in (0, JOINTS_PER_HAND) for p, c in HAND_BONES)
#: parent of each of the 42 joints (-1 for the two wrists)
PARENTS = np.concatenate([HAND_PARENTS, np.where(HAND_PARENTS >= 0, HAND_PARENTS + JOINTS_PER_HAND, -1)])

#: permutation that swaps the hands: new[i] = old[FLIP_PERM[i]] (used by horizontal flip)
FLIP_PERM = np.concatenate([np.arange(JOINTS_PER_HAND, NUM_JOINTS), np.arange(0, JOINTS_PER_HAND)])

# --- RHD ("RHP" in the paper) -------------------------------------------------
# RHD: keypoints 0..20 LEFT hand, 21..41 RIGHT hand; within a hand wrist first,
# then per finger tip -> mcp. Ours: right first, within a hand tip -> mcp, wrist last.
_RHD_HAND_TO_OURS = np.concatenate([np.arange(1, JOINTS_PER_HAND), [0]])  # ours[j] = rhd_hand[_[j]]
#: ours[i] = rhd[RHD_TO_OURS[i]] for the full 42-joint arrays
RHD_TO_OURS = np.concatenate([_RHD_HAND_TO_OURS + JOINTS_PER_HAND, _RHD_HAND_TO_OURS])
#: rhd[i] = ours[OURS_TO_RHD[i]] (inverse permutation)
OURS_TO_RHD = np.argsort(RHD_TO_OURS)


def hand_of_joint(j: int) -> str:
    """'right' or 'left' for a 42-joint index."""
    return HANDS[j // JOINTS_PER_HAND]


def root_relative(joints, hands_axis: int = -2):
    """Subtract each hand's wrist from that hand's joints. joints: (..., 42, 3), numpy or torch.

    Used in notebooks 00 and 06.
    """
    r = joints[..., :JOINTS_PER_HAND, :] - joints[..., WRIST : WRIST + 1, :]
    l = joints[..., JOINTS_PER_HAND:, :] - joints[..., JOINTS_PER_HAND + WRIST : JOINTS_PER_HAND + WRIST + 1, :]
    if isinstance(joints, np.ndarray):
        return np.concatenate([r, l], axis=-2)
    import torch

    return torch.cat([r, l], dim=-2)


def hands_present(hand_type: str) -> tuple[str, ...]:
    """Which hands a sample of this hand_type shows."""
    if hand_type == "interacting":
        return HANDS
    if hand_type in HANDS:
        return (hand_type,)
    raise ValueError(f"hand_type must be one of {HAND_TYPES}, got {hand_type!r}")
