"""InterHand2.6M loader (also reads the synthetic data, which is written in this format).

Layouts read (see /work/shared/reference/datasets.md and docs/your_data.md); images always at
``<root>/images/<split>/<file_name from the data json>``:

* subset folders (the first release; the synthetic data)::

    <root>/annotations/<annot_subset>/InterHand2.6M_<split>_{data,camera,joint_3d}.json
    annot_subset = all | human_annot | machine_annot   (val exists only as machine_annot)

* v1.0 (the dataset page's current download and the reference loader since 2021), one folder
  per split: ``<root>/annotations/<split>/InterHand2.6M_<split>_{data,camera,joint_3d}.json``
  (``annot_subset="v1.0"``).
* joint_3d in either form: ``{capture: {frame: {"world_coord": 42x3, "joint_valid": ...}}}`` or
  the early ``{capture: {frame: 42x3 list}}`` (validity then comes from the data json alone, as
  it always does here).

``annot_subset=None`` (the default) finds the layout: the one folder under ``annotations/``
that holds the split's data json; when several do (e.g. ``all`` and ``machine_annot``), a
one-line error lists them and asks for ``annot_subset=`` (CLI ``--annot-subset``).

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
Images are used as viewers show them (EXIF orientation applied) and their decoded size is
checked against the data json's ``width`` x ``height``: a mismatch (e.g. camera 400412 of the
release, whose images are stored rotated) would crop the wrong pixels, so it raises a one-line
error naming the file by default; ``image_check="warn"`` uses such images as they are, with one
warning per camera.
World coordinates and cameras are stored once per frame / camera (not per annotation),
so memory stays small for the full 1.36M-annotation training set; images load lazily.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from h2t_lib import skeleton
from h2t_lib.camera import cam_to_pixel, world_to_cam
from h2t_lib.data.files import DataFileError, read_json
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
V1 = "v1.0"  #: annot_subset of the v1.0 layout, annotations/<split>/
IMAGE_CHECKS = ("error", "warn")

LAYOUT = (
    "<root>/images/<split>/<file_name> and "
    "<root>/annotations/<annot_subset>/InterHand2.6M_<split>_{data,camera,joint_3d}.json "
    "(annot_subset all | human_annot | machine_annot), or the v1.0 layout "
    "<root>/annotations/<split>/InterHand2.6M_<split>_{data,camera,joint_3d}.json"
)


def annotation_folders(root, split: str) -> dict:
    """{annot_subset: folder} of every layout under ``<root>/annotations`` holding ``split``'s data json.

    The v1.0 layout's folder (``annotations/<split>/``) is named :data:`V1`; subset folders by their name.
    """
    ann = Path(root) / "annotations"
    if not ann.is_dir():
        return {}
    found = {}
    for folder in sorted(p for p in ann.iterdir() if p.is_dir()):
        if (folder / f"InterHand2.6M_{split}_data.json").is_file():
            found[V1 if folder.name == split else folder.name] = folder
    return found


def resolve_annotation_folder(root, split: str, annot_subset=None) -> tuple:
    """(annot_subset, folder) of ``split``'s annotation files; ``annot_subset`` None / "auto" = the only one there.

    One-line errors: no folder holds the split, several do (choose one), or the chosen one is missing.
    """
    root = Path(root)
    ann = root / "annotations"
    if not ann.is_dir():
        raise FileNotFoundError(f"no annotations folder at {ann}. Expected {LAYOUT}")
    found = annotation_folders(root, split)
    if annot_subset in (None, "", "auto"):
        if len(found) == 1:
            return next(iter(found.items()))
        if len(found) > 1:
            raise ValueError(
                f"split {split!r} has annotations in several folders under {ann}: {', '.join(found)}; choose one "
                f"with annot_subset= (CLI: --annot-subset {next(iter(found))}; 'v1.0' is annotations/<split>/)")
        present = sorted({p.name.split("_")[1] for p in ann.glob("*/InterHand2.6M_*_data.json")})
        if split not in SPLITS:
            raise ValueError(f"unknown InterHand2.6M split {split!r}: splits are {SPLITS} (found on disk in "
                             f"{ann}: {present})")
        raise FileNotFoundError(f"annotation file not found: InterHand2.6M_{split}_data.json in no folder of {ann} "
                                f"(splits found: {present}). Expected {LAYOUT}")
    folder = ann / split if annot_subset == V1 else ann / str(annot_subset)
    if not folder.is_dir():
        on_disk = sorted(p.name for p in ann.iterdir() if p.is_dir())
        raise FileNotFoundError(
            f"annotation subset folder not found: {folder}. Subsets are {ANNOT_SUBSETS} or {V1!r} "
            f"(annotations/<split>/); found on disk: {on_disk}; folders holding split {split!r}: {list(found)}. "
            f"Pass annot_subset= one of those (CLI: --annot-subset)")
    data = folder / f"InterHand2.6M_{split}_data.json"
    if not data.is_file():
        present = sorted({p.name.split("_")[1] for p in folder.glob("InterHand2.6M_*_data.json")})
        if split not in SPLITS:
            raise ValueError(f"unknown InterHand2.6M split {split!r}: splits are {SPLITS} (found on disk in "
                             f"{folder}: {present})")
        others = f"; folders holding split {split!r}: {list(found)}" if found else ""
        raise FileNotFoundError(f"annotation file not found: {data} (splits found in {folder}: {present}{others}). "
                                f"Expected {LAYOUT}")
    return annot_subset, folder


def _array(value, what: str, field: str) -> np.ndarray:
    """np.asarray(value, float64) with an error naming the file / annotation when it is ragged or not numeric."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise DataFileError(f"{what}: {field} is not a regular array of numbers ({str(value)[:80]}...)") from None


def _flat_valid(value, n: int, what: str, field: str = "joint_valid") -> np.ndarray:
    """joint_valid as (n,) float32: accepts 42 one-element lists (the release) or a flat list."""
    arr = _array(value, what, field).astype(np.float32)
    if arr.size != n or (arr.ndim == 2 and arr.shape[1] != 1) or arr.ndim > 2:
        raise DataFileError(f"{what}: {field} has shape {arr.shape}, expected {n} values (one 0/1 per joint; "
                            f"the release stores {n} one-element lists)")
    return arr.reshape(n)


def frame_world_coord(entry, where: str):
    """The 42x3 world coordinates of a joint_3d frame entry: {"world_coord": ..., ...} or the early bare list."""
    if isinstance(entry, dict):
        if "world_coord" not in entry:
            raise DataFileError(f"{where}: the frame entry has no 'world_coord' (keys {sorted(entry)[:5]}); expected "
                                f"{{'world_coord': 42x3, ...}} or a 42x3 list")
        return entry["world_coord"]
    if isinstance(entry, list):
        return entry
    raise DataFileError(f"{where}: the frame entry is a {type(entry).__name__}; expected {{'world_coord': 42x3, ...}} "
                        f"or a 42x3 list")


class InterHand26M(CropDataset):
    """InterHand2.6M (or synthetic data in its format) as the contracts' sample dicts.

    Args:
        root: folder holding ``images/`` and ``annotations/``.
        split: "train" | "val" | "test" (any split whose json files exist is accepted).
        annot_subset: None (default: the one annotation folder holding the split, see the module
            docstring), "all" | "human_annot" | "machine_annot" (subset layout) or "v1.0"
            (``annotations/<split>/``).
        image_size: side S of the square crop.
        augment: InterNet augmentation (scale, rotation, shift, colour, flip), deterministic per
            (seed, index, epoch); call :meth:`set_epoch` each epoch.
        bbox_scale: box enlargement (1.25 as the baseline).
        seed: augmentation seed.
        augment_config: ranges of the augmentation (default: InterNet's).
        skip_invalid_hand_type: drop annotations with hand_type_valid == 0 (default keeps them, as the baseline).
        image_check: "error" (default) or "warn": what a decoded image whose size differs from the
            data json's width x height does (see the module docstring).
    """

    def __init__(
        self,
        root,
        split: str,
        annot_subset: str | None = None,
        image_size: int = 256,
        augment: bool = False,
        bbox_scale: float = 1.25,
        seed: int = 0,
        augment_config: AugmentConfig | None = None,
        skip_invalid_hand_type: bool = False,
        image_check: str = "error",
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
        if image_check not in IMAGE_CHECKS:
            raise ValueError(f"image_check must be one of {IMAGE_CHECKS}, got {image_check!r}")
        self.image_check = image_check
        self._warned: set = set()  # cameras already reported by image_check="warn"
        self._load_annotations(skip_invalid_hand_type)

    # ------------------------------------------------------------------ loading
    def _paths(self) -> dict:
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"InterHand2.6M root folder not found: {self.root}. Expected {LAYOUT}; pass the folder that "
                f"holds 'images/' and 'annotations/' (or make synthetic data: python -m h2t_lib synth --out DIR)"
            )
        self.annot_subset, sub = resolve_annotation_folder(self.root, self.split, self.annot_subset)
        names = {k: sub / f"InterHand2.6M_{self.split}_{k}.json" for k in ("data", "camera", "joint_3d")}
        for k, p in names.items():
            if not p.is_file():
                raise FileNotFoundError(f"annotation file not found: {p} (the {k} json of split {self.split!r}). "
                                        f"Expected {LAYOUT}")
        return names

    def _load_annotations(self, skip_invalid_hand_type: bool) -> None:
        paths = self._paths()
        self._data_path = paths["data"]
        data = read_json(paths["data"], "the COCO-style InterHand2.6M data json {'images': [...], 'annotations': [...]}")
        cameras = read_json(paths["camera"], "the InterHand2.6M camera json {capture: {campos, camrot, focal, princpt}}")
        joints3d = read_json(paths["joint_3d"], "the InterHand2.6M joint_3d json {capture: {frame: ...}}")
        if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
                or not isinstance(data.get("annotations"), list):
            raise DataFileError(f"{paths['data']}: expected a COCO-style object with 'images' and 'annotations' lists")
        for path, obj in ((paths["camera"], cameras), (paths["joint_3d"], joints3d)):
            if not isinstance(obj, dict):
                raise DataFileError(f"{path}: holds a {type(obj).__name__}; expected an object keyed by capture id")
        for kind in ("images", "annotations"):
            bad = next((i for i, x in enumerate(data[kind]) if not isinstance(x, dict)), None)
            if bad is not None:
                raise DataFileError(f"{paths['data']}: {kind}[{bad}] is a {type(data[kind][bad]).__name__}; "
                                    f"expected an object")
        images = {img.get("id"): img for img in data["images"]}
        J = skeleton.NUM_JOINTS

        cam_index: dict[tuple[str, str], int] = {}
        cam_rot, cam_pos, cam_f, cam_c = [], [], [], []
        frame_index: dict[tuple[str, str], int] = {}
        world: list[np.ndarray] = []
        rec = {k: [] for k in ("ann_id", "file", "cam", "frame", "bbox", "valid", "hand_type", "vis", "occ", "size")}

        for ann in data["annotations"]:
            aid = ann.get("id")
            where = f"{paths['data']}: annotation id {aid}"
            try:
                img = images[ann["image_id"]]
            except (KeyError, TypeError):
                raise DataFileError(f"{where}: its image_id {ann.get('image_id')!r} is not in the 'images' list") from None
            if skip_invalid_hand_type and int(ann.get("hand_type_valid", 1)) == 0:
                continue
            hand_type = ann.get("hand_type")
            if hand_type not in skeleton.HAND_TYPES:
                raise DataFileError(f"{where}: hand_type {hand_type!r} is not one of {skeleton.HAND_TYPES}")
            try:
                capture, cam, frame = str(img["capture"]), str(img["camera"]), str(img["frame_idx"])
                file_name = str(img["file_name"])
            except KeyError as e:
                raise DataFileError(f"{paths['data']}: image id {img.get('id')} has no {e} field (images need "
                                    f"id, file_name, capture, camera, frame_idx)") from None

            # camera, once per (capture, camera)
            key = (capture, cam)
            if key not in cam_index:
                where_cam = f"{paths['camera']}: capture {capture} camera {cam}"
                try:
                    c = cameras[capture]
                    R = _array(c["camrot"][cam], where_cam, "camrot")
                    t = _array(c["campos"][cam], where_cam, "campos")
                    f = _array(c["focal"][cam], where_cam, "focal")
                    pp = _array(c["princpt"][cam], where_cam, "princpt")
                except KeyError as e:
                    raise DataFileError(f"{paths['camera']}: no {e} entry for capture {capture} camera {cam} "
                                        f"(needed by annotation id {aid})") from None
                except (TypeError, IndexError):
                    raise DataFileError(f"{where_cam}: expected {{capture: {{'campos': {{camera: [3]}}, 'camrot': "
                                        f"{{camera: 3x3}}, 'focal': {{camera: [2]}}, 'princpt': {{camera: [2]}}}}}}") from None
                if R.shape != (3, 3) or t.shape != (3,) or f.shape != (2,) or pp.shape != (2,):
                    raise DataFileError(
                        f"{paths['camera']}: capture {capture} camera {cam} has camrot {R.shape}, campos {t.shape}, "
                        f"focal {f.shape}, princpt {pp.shape}; expected (3, 3), (3,), (2,), (2,)"
                    )
                cam_index[key] = len(cam_rot)
                cam_rot.append(R), cam_pos.append(t), cam_f.append(f), cam_c.append(pp)

            # world joints, once per (capture, frame)
            fkey = (capture, frame)
            if fkey not in frame_index:
                where_3d = f"{paths['joint_3d']}: capture {capture} frame {frame} (annotation id {aid})"
                try:
                    entry = joints3d[capture][frame]
                except (KeyError, TypeError):
                    raise DataFileError(f"{paths['joint_3d']}: no world_coord for capture {capture} frame {frame} "
                                        f"(needed by annotation id {aid})") from None
                w = _array(frame_world_coord(entry, where_3d), where_3d, "world_coord")
                if w.shape != (J, 3):
                    raise DataFileError(f"{paths['joint_3d']}: world_coord of capture {capture} frame {frame} "
                                        f"(annotation id {aid}) has shape {w.shape}, expected ({J}, 3): "
                                        f"42 joints x (x, y, z) mm")
                frame_index[fkey] = len(world)
                world.append(w)

            valid = _flat_valid(ann.get("joint_valid"), J, where)
            bbox = _array(ann.get("bbox", []), where, "bbox")
            if bbox.shape != (4,):
                raise DataFileError(f"{where}: bbox has shape {bbox.shape}, expected 4 numbers [x, y, w, h]")
            vis = ann.get("joint_vis")
            if vis is not None:
                vis = _flat_valid(vis, J, where, "joint_vis")
            size = (img.get("width"), img.get("height"))
            rec["size"].append(size if all(isinstance(v, (int, float)) and v > 0 for v in size) else (0, 0))
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
            raise DataFileError(f"{paths['data']}: no usable annotations (the file lists {len(data['annotations'])})")

        # Stacked arrays (compact; shared copy-on-write by DataLoader workers).
        self._cam_rot = np.stack(cam_rot)  # (C, 3, 3)
        self._cam_pos = np.stack(cam_pos)  # (C, 3)
        self._cam_focal = np.stack(cam_f)  # (C, 2)
        self._cam_princpt = np.stack(cam_c)  # (C, 2)
        self._cam_keys = list(cam_index)  # (capture, camera) of each camera index
        self._world = np.stack(world).astype(np.float32)  # (F, 42, 3) mm
        # Non-finite coordinates can't be valid; zero them so no NaN reaches a masked loss (0 * NaN = NaN).
        finite_world = np.isfinite(self._world).all(axis=-1)  # (F, 42)
        self._world[~finite_world] = 0.0
        self._ann_id = np.asarray(rec["ann_id"])
        self._file = np.asarray(rec["file"])
        self._cam = np.asarray(rec["cam"], dtype=np.int64)  # (N,)
        self._frame = np.asarray(rec["frame"], dtype=np.int64)  # (N,)
        self._occlusion = np.asarray(rec["occ"], dtype=np.float32)  # (N,)
        self._size = np.asarray(rec["size"], dtype=np.int64)  # (N, 2) annotated width, height (0: not given)
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
            raise DataFileError(f"{self._data_path}: annotation id {self._ann_id[i]} has an empty bbox and no valid "
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

    def check_image_size(self, index: int, path, size) -> None:
        """Compare a decoded image's (width, height) with the data json's; act as ``image_check`` says."""
        want = tuple(int(v) for v in self._size[index])
        size = tuple(int(v) for v in size)
        if want[0] <= 0 or size == want:
            return
        capture, camera = self._cam_keys[self._cam[index]]
        msg = (f"image {path} is {size[0]}x{size[1]} pixels (width x height, as viewers show it) but "
               f"{self._data_path.name} (annotation id {self._ann_id[index]}, capture {capture} camera {camera}) "
               f"says {want[0]}x{want[1]}" + (" (stored rotated by 90 degrees?)" if size == want[::-1] else "")
               + "; its crop would come from the wrong pixels")
        if self.image_check == "error":
            raise DataFileError(msg + ". Fix or drop the file, or pass image_check='warn' (CLI: --image-check warn) "
                                      "to use such images as they are")
        if (capture, camera) not in self._warned:
            self._warned.add((capture, camera))
            warnings.warn(msg + f" (image_check='warn': used as it is; other images of capture {capture} camera "
                                f"{camera} are not reported again)", stacklevel=2)

    def __getitem__(self, index: int) -> dict:
        index, path, params = self.locate(index)
        c = self._cam[index]
        image = load_image(path)
        self.check_image_size(index, path, image.size)
        return crop_sample(
            image,
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
                f"n={len(self)}, image_size={self.image_size}, augment={self.augment}, image_check={self.image_check!r})")
