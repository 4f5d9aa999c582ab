"""The looks (styles), the interaction and occlusion settings, and the fixed camera rig."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import ImageFilter

from h2t_lib.data import hand_model as hm


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
