"""RHD (Rendered Hand Pose dataset; "RHP" in the Handformer2T paper) loader.

Layout of the release (see /work/shared/reference/datasets.md)::

    <root>/training/color/00000.png ...   <root>/training/anno_training.pickle
    <root>/evaluation/color/00000.png ... <root>/evaluation/anno_evaluation.pickle

``anno_<split>.pickle``: ``{sample_id: {"xyz": (42, 3) m, "uv_vis": (42, 3) u, v, visible, "K": (3, 3)}}``,
left hand 0..20 then right hand 21..41, wrist first within a hand. We map to h2t's
convention with :data:`h2t_lib.skeleton.RHD_TO_OURS` (right hand first, wrist last) and
metres to millimetres.

Which hands a sample shows (``hands=``):

* ``"dominant"`` (default): the hand with more visible keypoints (``uv_vis[:, 2]``); a tie goes
  to the hand that is larger in the image (its keypoints' 2D box area), then to the right
  hand. One hand per sample, the other invalid: this is the single-hand protocol of the
  InterHand2.6M baseline's RHD annotations and of the RHD EPE figures in the literature.
* ``"visible"``: every hand with at least ``min_visible`` visible keypoints is present
  ("interacting" when both are); when neither reaches it, the dominant hand.

RHD renders all 42 keypoints in 3D, so a present hand has all 21 joints valid. As the
contract asks for real data, ``joint_vis`` = ``joint_valid`` (RHD's own per-keypoint
visibility is used only to choose the hands). The crop is the box around the present
hands' 21 keypoints each (``uv``), enlarged to a square x ``bbox_scale``.
Intrinsics from K (fx = K[0,0], fy = K[1,1], princpt = K[:2, 2]; RHD has no skew).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from h2t_lib import skeleton
from h2t_lib.data.transforms import (
    AugmentConfig,
    CropDataset,
    bbox_of_points,
    crop_sample,
    load_image,
    process_bbox,
)

#: accepted split names -> the release's folder names
SPLIT_ALIASES = {"training": "training", "evaluation": "evaluation", "train": "training", "test": "evaluation"}
HAND_MODES = ("dominant", "visible")
LAYOUT = "<root>/<split>/anno_<split>.pickle and <root>/<split>/color/%05d.png, split = training | evaluation"


def _choose_hands(vis_count: np.ndarray, area: np.ndarray, mode: str, min_visible: int) -> np.ndarray:
    """Which hands are present, per sample. vis_count, area: (N, 2) in our hand order (right, left) -> (N, 2) bool."""
    N = len(vis_count)
    # dominant: more visible keypoints; tie -> larger 2D extent; tie -> right
    right_wins = (vis_count[:, 0] > vis_count[:, 1]) | (
        (vis_count[:, 0] == vis_count[:, 1]) & (area[:, 0] >= area[:, 1])
    )
    dominant = np.zeros((N, 2), dtype=bool)
    dominant[right_wins, 0] = True
    dominant[~right_wins, 1] = True
    if mode == "dominant":
        return dominant
    present = vis_count >= min_visible
    none = ~present.any(axis=1)
    present[none] = dominant[none]
    return present


class RHD(CropDataset):
    """RHD as the contracts' sample dicts.

    Args:
        root: the release folder (holds ``training/`` and ``evaluation/``).
        split: "training" | "evaluation" (aliases "train" | "test").
        image_size: side S of the square crop.
        augment: InterNet augmentation, deterministic per (seed, index, epoch); see :meth:`set_epoch`.
        bbox_scale: enlargement of the keypoints' box (1.25, as for InterHand2.6M).
        seed: augmentation seed.
        augment_config: ranges of the augmentation (default: InterNet's).
        hands: "dominant" (one hand per sample, the default) or "visible" (see the module docstring).
        min_visible: visible keypoints a hand needs to count as present when hands="visible".
    """

    def __init__(
        self,
        root,
        split: str,
        image_size: int = 256,
        augment: bool = False,
        bbox_scale: float = 1.25,
        seed: int = 0,
        augment_config: AugmentConfig | None = None,
        hands: str = "dominant",
        min_visible: int = 10,
    ):
        super().__init__()
        if split not in SPLIT_ALIASES:
            raise ValueError(f"unknown RHD split {split!r}: use 'training' or 'evaluation' (or 'train' / 'test')")
        if hands not in HAND_MODES:
            raise ValueError(f"hands must be one of {HAND_MODES}, got {hands!r}")
        if int(image_size) < 8:
            raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
        self.root = Path(root)
        self.split = SPLIT_ALIASES[split]
        self.image_size = int(image_size)
        self.augment = bool(augment)
        self.bbox_scale = float(bbox_scale)
        self.seed = int(seed)
        self.augment_config = augment_config or AugmentConfig()
        self.hands = hands
        self.min_visible = int(min_visible)
        self.epoch = 0
        self._load()

    def _load(self) -> None:
        if not self.root.is_dir():
            raise FileNotFoundError(f"RHD root folder not found: {self.root}. Expected {LAYOUT}; pass the folder "
                                    f"that holds 'training/' and 'evaluation/' (e.g. RHD_published_v2)")
        path = self.root / self.split / f"anno_{self.split}.pickle"
        if not path.is_file():
            raise FileNotFoundError(f"RHD annotation file not found: {path}. Expected {LAYOUT}")
        self._anno_path = path
        try:
            with open(path, "rb") as f:
                anno = pickle.load(f, encoding="latin1")  # latin1: the release may be a Python-2 pickle
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as e:
            raise ValueError(f"{path} is not a readable pickle ({e}); re-download it") from None
        if not isinstance(anno, dict) or not anno:
            raise ValueError(f"{path}: expected a non-empty dict {{sample_id: {{'xyz', 'uv_vis', 'K'}}}}, "
                             f"got {type(anno).__name__}")

        ids = sorted(anno)
        xyz = np.empty((len(ids), 42, 3), dtype=np.float64)
        uv_vis = np.empty((len(ids), 42, 3), dtype=np.float64)
        K = np.empty((len(ids), 3, 3), dtype=np.float64)
        for n, sid in enumerate(ids):
            a = anno[sid]
            for key, shape, out in (("xyz", (42, 3), xyz), ("uv_vis", (42, 3), uv_vis), ("K", (3, 3), K)):
                try:
                    v = np.asarray(a[key], dtype=np.float64)
                except (KeyError, TypeError, IndexError):
                    raise ValueError(f"{path}: sample {sid} has no {key!r} entry (expected keys xyz, uv_vis, K)") from None
                if v.shape != shape:
                    raise ValueError(f"{path}: sample {sid}: {key} has shape {v.shape}, expected {shape}")
                out[n] = v

        # RHD -> ours: hand order, joint order, metres -> mm
        self._ids = np.asarray(ids, dtype=np.int64)
        self._joints_cam = (xyz[:, skeleton.RHD_TO_OURS] * 1000.0).astype(np.float32)  # (N, 42, 3) mm
        uv = uv_vis[:, skeleton.RHD_TO_OURS, :2]  # (N, 42, 2)
        vis = uv_vis[:, skeleton.RHD_TO_OURS, 2] > 0.5  # (N, 42)
        self._focal = np.stack([K[:, 0, 0], K[:, 1, 1]], axis=1)  # (N, 2)
        self._princpt = K[:, :2, 2].copy()  # (N, 2)

        hands = [skeleton.HAND_SLICE[h] for h in skeleton.HANDS]
        vis_count = np.stack([vis[:, s].sum(axis=1) for s in hands], axis=1)  # (N, 2)
        extent = np.stack([uv[:, s].max(axis=1) - uv[:, s].min(axis=1) for s in hands], axis=1)  # (N, 2, 2)
        area = extent[..., 0] * extent[..., 1]  # (N, 2)
        present = _choose_hands(vis_count, area, self.hands, self.min_visible)  # (N, 2)

        self._valid = np.repeat(present.astype(np.float32), skeleton.JOINTS_PER_HAND, axis=1)  # (N, 42)
        self.hand_types = np.where(present.all(axis=1), "interacting", np.where(present[:, 0], "right", "left"))
        boxes = []
        for n in range(len(ids)):
            b = bbox_of_points(uv[n][self._valid[n] > 0])
            if not (b[2] > 0 and b[3] > 0):  # a hand collapsed to a point: crop at least 16 px around it
                b = np.array([b[0] + b[2] / 2 - 8, b[1] + b[3] / 2 - 8, 16.0, 16.0])
            boxes.append(process_bbox(b, self.bbox_scale))
        self._bbox = np.stack(boxes)  # (N, 4)

    def image_path(self, index: int) -> Path:
        return self.root / self.split / "color" / f"{int(self._ids[index]):05d}.png"

    def __len__(self) -> int:
        return len(self._ids)

    def missing_image_hint(self, index: int) -> str:
        return f"RHD sample {int(self._ids[index])} of {self._anno_path}; expected {LAYOUT}"

    def joints_cam(self, index: int) -> np.ndarray:
        """(42, 3) camera-frame mm of a sample (before any augmentation)."""
        return self._joints_cam[index]

    def joint_valid(self, index: int) -> np.ndarray:
        return self._valid[index]

    def __getitem__(self, index: int) -> dict:
        index, path, params = self.locate(index)
        return crop_sample(
            load_image(path),
            bbox=self._bbox[index],
            focal=self._focal[index],
            princpt=self._princpt[index],
            joints_cam=self._joints_cam[index],
            joint_valid=self._valid[index],
            hand_type=str(self.hand_types[index]),
            index=index,
            size=self.image_size,
            params=params,
        )

    def __repr__(self) -> str:
        return (f"RHD(root={str(self.root)!r}, split={self.split!r}, n={len(self)}, image_size={self.image_size}, "
                f"augment={self.augment}, hands={self.hands!r})")
