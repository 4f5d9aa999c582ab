"""InterHand2.6M loader (also reads the synthetic data, which is written in this format).

Layout (see /work/shared/reference/datasets.md)::

    <root>/images/<split>/<file_name from the data json>
    <root>/annotations/<annot_subset>/InterHand2.6M_<split>_{data,camera,joint_3d}.json

Per annotation, as the InterHand2.6M baseline (InterNet) reads it:

* ``joints_cam = camrot @ (world - campos)`` (mm), world from ``joint_3d[capture][frame_idx]``
* ``joint_valid`` from the annotation, flattened; a hand whose wrist is invalid has all
  its joints invalid (its root-relative pose is undefined); the absent hand of a
  single-hand sample is invalid (our contract; the release already marks it so)
* the box ``bbox`` enlarged to a square, x1.25, then cropped and resized to S x S
  (:mod:`h2t_lib.data.transforms`), intrinsics moved to the crop.

Annotations with ``hand_type_valid == 0`` are KEPT by default, as the baseline does
(it uses that flag only to mask its hand-type classifier and handedness accuracy, and
its MPJPE numbers include those samples); ``skip_invalid_hand_type=True`` drops them.
Non-finite world coordinates are zeroed and their joints marked invalid.
Extra fields of the synthetic data (``joint_vis``, ``occlusion``) are read when present.
World coordinates and cameras are stored once per frame / camera (not per annotation),
so memory stays small for the full 1.36M-annotation training set; images load lazily.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from h2t_lib import skeleton
from h2t_lib.camera import cam_to_pixel, world_to_cam
from h2t_lib.data.transforms import (
    AugmentConfig,
    CropDataset,
    bbox_of_points,
    crop_sample,
    load_image,
    process_bbox,
)

SPLITS = ("train", "val", "test")
ANNOT_SUBSETS = ("all", "human_annot", "machine_annot")

LAYOUT = (
    "<root>/images/<split>/<file_name> and "
    "<root>/annotations/<annot_subset>/InterHand2.6M_<split>_{data,camera,joint_3d}.json"
)


def _load_json(path: Path):
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); re-download or re-generate it") from None


def _array(value, what: str, field: str) -> np.ndarray:
    """np.asarray(value, float64) with an error naming the file / annotation when it is ragged or not numeric."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise ValueError(f"{what}: {field} is not a regular array of numbers ({str(value)[:80]}...)") from None


def _flat_valid(value, n: int, what: str, field: str = "joint_valid") -> np.ndarray:
    """joint_valid as (n,) float32: accepts 42 one-element lists (the release) or a flat list."""
    arr = _array(value, what, field).astype(np.float32)
    if arr.size != n or (arr.ndim == 2 and arr.shape[1] != 1) or arr.ndim > 2:
        raise ValueError(f"{what}: {field} has shape {arr.shape}, expected {n} values (one 0/1 per joint; "
                         f"the release stores {n} one-element lists)")
    return arr.reshape(n)


class InterHand26M(CropDataset):
    """InterHand2.6M (or synthetic data in its format) as the contracts' sample dicts.

    Args:
        root: folder holding ``images/`` and ``annotations/``.
        split: "train" | "val" | "test" (any split whose json files exist is accepted).
        annot_subset: "all" | "human_annot" | "machine_annot".
        image_size: side S of the square crop.
        augment: InterNet augmentation (scale, rotation, shift, colour, flip), deterministic per
            (seed, index, epoch); call :meth:`set_epoch` each epoch.
        bbox_scale: box enlargement (1.25 as the baseline).
        seed: augmentation seed.
        augment_config: ranges of the augmentation (default: InterNet's).
        skip_invalid_hand_type: drop annotations with hand_type_valid == 0 (default keeps them, as the baseline).
    """

    def __init__(
        self,
        root,
        split: str,
        annot_subset: str = "all",
        image_size: int = 256,
        augment: bool = False,
        bbox_scale: float = 1.25,
        seed: int = 0,
        augment_config: AugmentConfig | None = None,
        skip_invalid_hand_type: bool = False,
    ):
        super().__init__()
        self.root = Path(root)
        self.split = split
        self.annot_subset = annot_subset
        self.image_size = int(image_size)
        self.augment = bool(augment)
        self.bbox_scale = float(bbox_scale)
        self.seed = int(seed)
        self.augment_config = augment_config or AugmentConfig()
        self.epoch = 0
        if self.image_size < 8:
            raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
        self._load_annotations(skip_invalid_hand_type)

    # ------------------------------------------------------------------ loading
    def _paths(self) -> dict:
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"InterHand2.6M root folder not found: {self.root}. Expected {LAYOUT}; pass the folder that "
                f"holds 'images/' and 'annotations/' (or make synthetic data: python -m h2t_lib synth --out DIR)"
            )
        ann_root = self.root / "annotations"
        if not ann_root.is_dir():
            raise FileNotFoundError(f"no annotations folder at {ann_root}. Expected {LAYOUT}")
        sub = ann_root / self.annot_subset
        if not sub.is_dir():
            found = sorted(p.name for p in ann_root.iterdir() if p.is_dir())
            raise FileNotFoundError(
                f"annotation subset folder not found: {sub}. Subsets are {ANNOT_SUBSETS}; found on disk: {found}. "
                f"Pass annot_subset= one of those"
            )
        names = {k: sub / f"InterHand2.6M_{self.split}_{k}.json" for k in ("data", "camera", "joint_3d")}
        if not names["data"].is_file():
            found = sorted({p.name.split("_")[1] for p in sub.glob("InterHand2.6M_*_data.json")})
            if self.split not in SPLITS:
                raise ValueError(f"unknown InterHand2.6M split {self.split!r}: splits are {SPLITS} "
                                 f"(found on disk in {sub}: {found})")
            raise FileNotFoundError(f"annotation file not found: {names['data']} (splits found in {sub}: {found}). "
                                    f"Expected {LAYOUT}")
        for k, p in names.items():
            if not p.is_file():
                raise FileNotFoundError(f"annotation file not found: {p} (the {k} json of split {self.split!r}). "
                                        f"Expected {LAYOUT}")
        return names

    def _load_annotations(self, skip_invalid_hand_type: bool) -> None:
        paths = self._paths()
        self._data_path = paths["data"]
        data = _load_json(paths["data"])
        cameras = _load_json(paths["camera"])
        joints3d = _load_json(paths["joint_3d"])
        if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
            raise ValueError(f"{paths['data']}: expected a COCO-style object with 'images' and 'annotations' lists")
        images = {img.get("id"): img for img in data["images"]}
        J = skeleton.NUM_JOINTS

        cam_index: dict[tuple[str, str], int] = {}
        cam_rot, cam_pos, cam_f, cam_c = [], [], [], []
        frame_index: dict[tuple[str, str], int] = {}
        world: list[np.ndarray] = []
        rec = {k: [] for k in ("ann_id", "file", "cam", "frame", "bbox", "valid", "hand_type", "vis", "occ")}

        for ann in data["annotations"]:
            aid = ann.get("id")
            where = f"{paths['data']}: annotation id {aid}"
            try:
                img = images[ann["image_id"]]
            except KeyError:
                raise ValueError(f"{where}: its image_id {ann.get('image_id')!r} is not in the 'images' list") from None
            if skip_invalid_hand_type and int(ann.get("hand_type_valid", 1)) == 0:
                continue
            hand_type = ann.get("hand_type")
            if hand_type not in skeleton.HAND_TYPES:
                raise ValueError(f"{where}: hand_type {hand_type!r} is not one of {skeleton.HAND_TYPES}")
            try:
                capture, cam, frame = str(img["capture"]), str(img["camera"]), str(img["frame_idx"])
                file_name = str(img["file_name"])
            except KeyError as e:
                raise ValueError(f"{paths['data']}: image id {img.get('id')} has no {e} field (images need "
                                 f"id, file_name, capture, camera, frame_idx)") from None

            # camera, once per (capture, camera)
            key = (capture, cam)
            if key not in cam_index:
                try:
                    c = cameras[capture]
                    where_cam = f"{paths['camera']}: capture {capture} camera {cam}"
                    R = _array(c["camrot"][cam], where_cam, "camrot")
                    t = _array(c["campos"][cam], where_cam, "campos")
                    f = _array(c["focal"][cam], where_cam, "focal")
                    pp = _array(c["princpt"][cam], where_cam, "princpt")
                except KeyError as e:
                    raise ValueError(f"{paths['camera']}: no {e} entry for capture {capture} camera {cam} "
                                     f"(needed by annotation id {aid})") from None
                if R.shape != (3, 3) or t.shape != (3,) or f.shape != (2,) or pp.shape != (2,):
                    raise ValueError(
                        f"{paths['camera']}: capture {capture} camera {cam} has camrot {R.shape}, campos {t.shape}, "
                        f"focal {f.shape}, princpt {pp.shape}; expected (3, 3), (3,), (2,), (2,)"
                    )
                cam_index[key] = len(cam_rot)
                cam_rot.append(R), cam_pos.append(t), cam_f.append(f), cam_c.append(pp)

            # world joints, once per (capture, frame)
            fkey = (capture, frame)
            if fkey not in frame_index:
                try:
                    wc = joints3d[capture][frame]["world_coord"]
                except KeyError:
                    raise ValueError(f"{paths['joint_3d']}: no world_coord for capture {capture} frame {frame} "
                                     f"(needed by annotation id {aid})") from None
                w = _array(wc, f"{paths['joint_3d']}: capture {capture} frame {frame} (annotation id {aid})",
                           "world_coord")
                if w.shape != (J, 3):
                    raise ValueError(f"{paths['joint_3d']}: world_coord of capture {capture} frame {frame} "
                                     f"(annotation id {aid}) has shape {w.shape}, expected ({J}, 3): "
                                     f"42 joints x (x, y, z) mm")
                frame_index[fkey] = len(world)
                world.append(w)

            valid = _flat_valid(ann.get("joint_valid"), J, where)
            bbox = _array(ann.get("bbox", []), where, "bbox")
            if bbox.shape != (4,):
                raise ValueError(f"{where}: bbox has shape {bbox.shape}, expected 4 numbers [x, y, w, h]")
            vis = ann.get("joint_vis")
            if vis is not None:
                vis = _flat_valid(vis, J, where, "joint_vis")
            rec["ann_id"].append(aid)
            rec["file"].append(file_name)
            rec["cam"].append(cam_index[key])
            rec["frame"].append(frame_index[fkey])
            rec["bbox"].append(bbox)
            rec["valid"].append(valid)
            rec["hand_type"].append(hand_type)
            rec["vis"].append(vis)
            rec["occ"].append(float(ann["occlusion"]) if ann.get("occlusion") is not None else math.nan)

        if not rec["ann_id"]:
            raise ValueError(f"{paths['data']}: no usable annotations (the file lists {len(data['annotations'])})")

        # Stacked arrays (compact; shared copy-on-write by DataLoader workers).
        self._cam_rot = np.stack(cam_rot)  # (C, 3, 3)
        self._cam_pos = np.stack(cam_pos)  # (C, 3)
        self._cam_focal = np.stack(cam_f)  # (C, 2)
        self._cam_princpt = np.stack(cam_c)  # (C, 2)
        self._world = np.stack(world).astype(np.float32)  # (F, 42, 3) mm
        # Non-finite coordinates can't be valid; zero them so no NaN reaches a masked loss (0 * NaN = NaN).
        finite_world = np.isfinite(self._world).all(axis=-1)  # (F, 42)
        self._world[~finite_world] = 0.0
        self._ann_id = np.asarray(rec["ann_id"])
        self._file = np.asarray(rec["file"])
        self._cam = np.asarray(rec["cam"], dtype=np.int64)  # (N,)
        self._frame = np.asarray(rec["frame"], dtype=np.int64)  # (N,)
        self._occlusion = np.asarray(rec["occ"], dtype=np.float32)  # (N,)
        self.hand_types = np.asarray(rec["hand_type"])  # (N,)
        valid = np.stack(rec["valid"])  # (N, 42)
        has_vis = np.array([v is not None for v in rec["vis"]])
        vis = np.stack([v if v is not None else valid[i] for i, v in enumerate(rec["vis"])])  # (N, 42)
        valid = valid * finite_world[self._frame]  # (N, 42)
        # A hand whose root is invalid is invalid as a whole; the absent hand of a single-hand sample too.
        for hand in skeleton.HANDS:
            sl = skeleton.HAND_SLICE[hand]
            valid[:, sl] *= valid[:, skeleton.ROOT_INDEX[hand], None]
            absent = np.array([hand not in skeleton.hands_present(h) for h in self.hand_types])
            valid[absent, sl] = 0.0
        self._valid = valid.astype(np.float32)
        # synthetic data: the renderer's visibility (a joint can only be visible if valid); real data: = joint_valid
        self._vis = np.where(has_vis[:, None], vis * self._valid, self._valid).astype(np.float32)

        # Boxes: enlarged as the baseline; a degenerate box falls back to the valid joints' extent.
        boxes = np.stack(rec["bbox"])
        for i in np.flatnonzero(~((boxes[:, 2] > 0) & (boxes[:, 3] > 0))):
            boxes[i] = self._fallback_box(i)
        self._bbox = np.stack([process_bbox(b, self.bbox_scale) for b in boxes])  # (N, 4)

    def _fallback_box(self, i: int) -> np.ndarray:
        uv = cam_to_pixel(self.joints_cam(i), self._cam_focal[self._cam[i]], self._cam_princpt[self._cam[i]])
        ok = self._valid[i] > 0
        if not ok.any():
            raise ValueError(f"{self._data_path}: annotation id {self._ann_id[i]} has an empty bbox and no valid "
                             f"joints to crop around; fix its bbox or drop it")
        return bbox_of_points(uv[ok])

    # ------------------------------------------------------------------ access
    def image_path(self, index: int) -> Path:
        return self.root / "images" / self.split / str(self._file[index])

    def __len__(self) -> int:
        return len(self._ann_id)

    def missing_image_hint(self, index: int) -> str:
        return (f"annotation id {self._ann_id[index]}, file_name from {self._data_path}; "
                f"images must be at <root>/images/<split>/<file_name>")

    def joints_cam(self, index: int) -> np.ndarray:
        """(42, 3) camera-frame mm of a sample (before any augmentation)."""
        c = self._cam[index]
        return world_to_cam(self._world[self._frame[index]].astype(np.float64), self._cam_rot[c], self._cam_pos[c])

    def joint_valid(self, index: int) -> np.ndarray:
        return self._valid[index]

    def camera(self, index: int) -> tuple:
        """(focal (2,), princpt (2,)) in pixels of the full image a sample comes from."""
        c = self._cam[index]
        return self._cam_focal[c].astype(np.float64), self._cam_princpt[c].astype(np.float64)

    def crop_box(self, index: int) -> np.ndarray:
        """(x, y, w, h) of the square crop around the hands in the full image (already x bbox_scale)."""
        return self._bbox[index].astype(np.float64)

    def __getitem__(self, index: int) -> dict:
        index, path, params = self.locate(index)
        c = self._cam[index]
        return crop_sample(
            load_image(path),
            bbox=self._bbox[index],
            focal=self._cam_focal[c],
            princpt=self._cam_princpt[c],
            joints_cam=self.joints_cam(index),
            joint_valid=self._valid[index],
            hand_type=str(self.hand_types[index]),
            index=index,
            size=self.image_size,
            params=params,
            joint_vis=self._vis[index],
            occlusion=float(self._occlusion[index]),
        )

    def __repr__(self) -> str:
        return (f"InterHand26M(root={str(self.root)!r}, split={self.split!r}, annot_subset={self.annot_subset!r}, "
                f"n={len(self)}, image_size={self.image_size}, augment={self.augment})")
