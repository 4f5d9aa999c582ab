"""RHD (Rendered Hand Pose dataset; "RHP" in the Handformer2T paper) loader.

Layout of the release (see /work/shared/reference/datasets.md)::

    <root>/training/color/00000.png ...   <root>/training/anno_training.pickle
    <root>/evaluation/color/00000.png ... <root>/evaluation/anno_evaluation.pickle

``anno_<split>.pickle``: ``{sample_id: {"xyz": (42, 3) m, "uv_vis": (42, 3) u, v, visible, "K": (3, 3)}}``,
left hand 0..20 then right hand 21..41, wrist first within a hand. We map to h2t's
convention with :data:`h2t_lib.skeleton.RHD_TO_OURS` (right hand first, wrist last) and
metres to millimetres.

Which hand is evaluated (``hands=``):

* ``"mask"`` (default, the published protocol): one hand per sample, the one with more pixels
  in RHD's ``mask/%05d.png`` (ids 2..17 are the left hand's parts, 18..33 the right hand's); a
  tie goes to the right hand. This is the rule of the code behind the published RHD numbers
  (lmb-freiburg/hand3d, which the later RHD results follow). The masks are read once, when the
  dataset is opened (about a minute for the 41k training masks).
* ``"dominant"`` (the rule before the protocol was followed): one hand per sample, the one with
  more visible keypoints (``uv_vis[:, 2]``); a tie goes to the hand that is larger in the image
  (its keypoints' 2D box area), then to the right hand. Needs no mask.
* ``"visible"``: every hand with at least ``min_visible`` visible keypoints is present
  ("interacting" when both are); when neither reaches it, the ``"dominant"`` hand.

Which keypoints of a present hand count (``keypoints=``), i.e. ``joint_valid`` of the samples
and of :meth:`joints_arrays` (the mask ``eval``'s metrics read):

* ``"visible"``: the keypoints RHD marks visible (``uv_vis[:, 2] == 1``), as RHD's own
  evaluation counts them, plus the hand's wrist, always: it is the root that every keypoint's
  error is measured from (RHD knows every keypoint in 3D). Its root-relative error is 0 by
  construction, so it changes no per-keypoint mean of :func:`h2t_lib.metrics.epe` (the wrist's
  own mean is 0 either way, unless no sample of the set shows a wrist).
* ``"known"``: all 21 keypoints of a present hand (RHD renders every keypoint in 3D): what
  training supervises.
* ``"auto"`` (default): ``"visible"`` on the evaluation split, ``"known"`` on the training split.

``joint_vis`` is RHD's own visibility of the present hands' keypoints. The crop is the box
around the present hands' 21 keypoints each (``uv``), enlarged to a square x ``bbox_scale``.
Intrinsics from K (fx = K[0,0], fy = K[1,1], princpt = K[:2, 2]; RHD has no skew).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from h2t_lib import skeleton
from h2t_lib.data.files import DataFileError, DataFileNotFoundError, image_size, read_mask, read_pickle
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
HAND_MODES = ("mask", "dominant", "visible")
KEYPOINT_MODES = ("auto", "visible", "known")
LAYOUT = ("<root>/<split>/anno_<split>.pickle, <root>/<split>/color/%05d.png and <root>/<split>/mask/%05d.png, "
          "split = training | evaluation")
#: mask ids of each hand's parts, in our hand order (right, left)
MASK_IDS = {"right": (18, 33), "left": (2, 17)}


def _choose_hands(vis_count: np.ndarray, area: np.ndarray, mode: str, min_visible: int,
                  mask_px: np.ndarray | None = None) -> np.ndarray:
    """Which hands are present, per sample. (N, 2) inputs in our hand order (right, left) -> (N, 2) bool.

    vis_count: visible keypoints; area: the keypoints' 2D box area; mask_px: mask pixels (mode "mask").
    """
    N = len(vis_count)
    if mode == "mask":
        right_wins = mask_px[:, 0] >= mask_px[:, 1]  # hand3d: the left hand only with strictly more pixels
    else:  # dominant: more visible keypoints; tie -> larger 2D extent; tie -> right
        right_wins = (vis_count[:, 0] > vis_count[:, 1]) | (
            (vis_count[:, 0] == vis_count[:, 1]) & (area[:, 0] >= area[:, 1])
        )
    one = np.zeros((N, 2), dtype=bool)
    one[right_wins, 0] = True
    one[~right_wins, 1] = True
    if mode != "visible":
        return one
    present = vis_count >= min_visible
    none = ~present.any(axis=1)
    present[none] = one[none]
    return present


def mask_pixels(mask: np.ndarray) -> np.ndarray:
    """(2,) pixels of the right and left hand in an RHD segmentation mask (H, W) of part ids."""
    counts = np.bincount(mask.reshape(-1), minlength=256)
    return np.array([counts[lo:hi + 1].sum() for lo, hi in (MASK_IDS[h] for h in skeleton.HANDS)], dtype=np.int64)


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
        hands: "mask" (the published protocol, the default), "dominant" or "visible" (see the module docstring).
        keypoints: "auto" (default), "visible" or "known": which keypoints of a present hand are valid
            (see the module docstring).
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
        hands: str = "mask",
        keypoints: str = "auto",
        min_visible: int = 10,
    ):
        super().__init__()
        if split not in SPLIT_ALIASES:
            raise ValueError(f"unknown RHD split {split!r}: use 'training' or 'evaluation' (or 'train' / 'test')")
        if hands not in HAND_MODES:
            raise ValueError(f"hands must be one of {HAND_MODES}, got {hands!r}")
        if keypoints not in KEYPOINT_MODES:
            raise ValueError(f"keypoints must be one of {KEYPOINT_MODES}, got {keypoints!r}")
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
        self.keypoints = ("visible" if self.split == "evaluation" else "known") if keypoints == "auto" else keypoints
        self.min_visible = int(min_visible)
        self.epoch = 0
        self._load()

    def _read_annotations(self, path: Path) -> tuple:
        what = "the RHD annotation pickle {sample_id: {'xyz': (42, 3), 'uv_vis': (42, 3), 'K': (3, 3)}}"
        anno = read_pickle(path, what)
        if not isinstance(anno, dict) or not anno:
            raise DataFileError(f"{path}: holds {'an empty ' if not anno else 'a '}{type(anno).__name__}; expected {what}")
        bad_ids = [k for k in anno if not isinstance(k, (int, np.integer)) or int(k) < 0]
        if bad_ids:
            raise DataFileError(f"{path}: sample id {bad_ids[0]!r} is not a non-negative integer; expected {what}")
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
                    raise DataFileError(f"{path}: sample {sid} has no {key!r} entry (expected keys xyz, uv_vis, K)") from None
                except ValueError:
                    raise DataFileError(f"{path}: sample {sid}: {key} is not a regular array of numbers") from None
                if v.shape != shape:
                    raise DataFileError(f"{path}: sample {sid}: {key} has shape {v.shape}, expected {shape}")
                out[n] = v
        return ids, xyz, uv_vis, K

    def _mask_pixels(self, ids) -> np.ndarray:
        """(N, 2) hand pixels (right, left) of every sample's segmentation mask."""
        out = np.zeros((len(ids), 2), dtype=np.int64)
        for n, sid in enumerate(ids):
            path = self.mask_path(n, sid)
            if not path.is_file():
                raise DataFileNotFoundError(
                    f"RHD mask not found: {path}; hands='mask' (the published protocol) evaluates the hand with more "
                    f"mask pixels: restore {path.parent}/ from the release, or pass hands='dominant' (choose by "
                    f"visible keypoints). Expected {LAYOUT}")
            color = self.root / self.split / "color" / f"{int(sid):05d}.png"
            size = image_size(color) if color.is_file() else None
            out[n] = mask_pixels(read_mask(path, size=size))
        return out

    def _load(self) -> None:
        if not self.root.is_dir():
            raise FileNotFoundError(f"RHD root folder not found: {self.root}. Expected {LAYOUT}; pass the folder "
                                    f"that holds 'training/' and 'evaluation/' (e.g. RHD_published_v2)")
        path = self.root / self.split / f"anno_{self.split}.pickle"
        if not path.is_file():
            raise FileNotFoundError(f"RHD annotation file not found: {path}. Expected {LAYOUT}")
        self._anno_path = path
        ids, xyz, uv_vis, K = self._read_annotations(path)

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
        self.mask_px = self._mask_pixels(ids) if self.hands == "mask" else None  # (N, 2) right, left
        present = _choose_hands(vis_count, area, self.hands, self.min_visible, self.mask_px)  # (N, 2)

        known = np.repeat(present, skeleton.JOINTS_PER_HAND, axis=1)  # (N, 42) every keypoint of a present hand
        wrist = np.zeros(skeleton.NUM_JOINTS, dtype=bool)
        wrist[[skeleton.ROOT_INDEX[h] for h in skeleton.HANDS]] = True
        counted = known & (vis | wrist) if self.keypoints == "visible" else known
        self._valid = counted.astype(np.float32)  # (N, 42)
        self._vis = (known & vis).astype(np.float32)  # (N, 42) RHD's own visibility
        self.hand_types = np.where(present.all(axis=1), "interacting", np.where(present[:, 0], "right", "left"))
        boxes = []
        for n in range(len(ids)):
            b = bbox_of_points(uv[n][known[n]])
            if not (b[2] > 0 and b[3] > 0):  # a hand collapsed to a point: crop at least 16 px around it
                b = np.array([b[0] + b[2] / 2 - 8, b[1] + b[3] / 2 - 8, 16.0, 16.0])
            boxes.append(process_bbox(b, self.bbox_scale))
        self._bbox = np.stack(boxes)  # (N, 4)

    def image_path(self, index: int) -> Path:
        return self.root / self.split / "color" / f"{int(self._ids[index]):05d}.png"

    def mask_path(self, index: int, sample_id=None) -> Path:
        """``<root>/<split>/mask/%05d.png`` of a sample (by index, or by its RHD id)."""
        sid = int(self._ids[index]) if sample_id is None else int(sample_id)
        return self.root / self.split / "mask" / f"{sid:05d}.png"

    def __len__(self) -> int:
        return len(self._ids)

    def missing_image_hint(self, index: int) -> str:
        return f"RHD sample {int(self._ids[index])} of {self._anno_path}; expected {LAYOUT}"

    def joints_cam(self, index: int) -> np.ndarray:
        """(42, 3) camera-frame mm of a sample (before any augmentation)."""
        return self._joints_cam[index]

    def joint_valid(self, index: int) -> np.ndarray:
        """(42,) the keypoints that count (``keypoints=``): training supervises them, evaluation averages them."""
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
            joint_vis=self._vis[index],
        )

    def __repr__(self) -> str:
        return (f"RHD(root={str(self.root)!r}, split={self.split!r}, n={len(self)}, image_size={self.image_size}, "
                f"augment={self.augment}, hands={self.hands!r}, keypoints={self.keypoints!r})")
