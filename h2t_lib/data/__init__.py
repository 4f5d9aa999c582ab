"""Datasets: InterHand2.6M (and synthetic data in its format), RHD, shared crop / augmentation.

Every dataset yields the same sample dict (see the contracts): ``image`` (3, S, S) in [0, 1],
``joints_cam`` (42, 3) mm, ``joints_img`` (42, 2) crop pixels, ``joint_valid`` / ``joint_vis`` (42,),
``hand_type``, crop intrinsics ``focal`` / ``princpt`` (2,), ``index``, ``occlusion``.

The synthetic renderer (``h2t_lib.data.synth``) is not imported here: it is loaded only
when used (``python -m h2t_lib synth`` or ``import h2t_lib.data.synth``).
"""
from __future__ import annotations

from pathlib import Path

from h2t_lib.data.files import DataFileError, DataFileNotFoundError
from h2t_lib.data.interhand import SPLITS, InterHand26M, annotation_folders
from h2t_lib.data.rhd import RHD
from h2t_lib.data.transforms import AugmentConfig, AugmentParams

__all__ = ["InterHand26M", "RHD", "AugmentConfig", "AugmentParams", "load_dataset", "detect_format",
           "available_splits", "DataFileError", "DataFileNotFoundError"]

#: RHD's folders under the names the CLI uses for its splits
RHD_SPLITS = (("train", "training"), ("test", "evaluation"))


def detect_format(root) -> str:
    """'interhand' (an ``annotations/`` folder) or 'rhd' (``<split>/anno_<split>.pickle``) for a dataset folder.

    Used in notebook 10.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    if (root / "annotations").is_dir():
        return "interhand"
    if any((root / s / f"anno_{s}.pickle").is_file() for s in ("training", "evaluation")):
        return "rhd"
    hint = ""
    if any(root.glob("anno_*.pickle")):
        hint = f" It holds an RHD anno_*.pickle itself: pass its parent folder {root.parent} instead."
    elif root.name == "annotations" or any(root.glob("InterHand2.6M_*_data.json")):
        hint = " It looks like an InterHand2.6M annotations folder: pass the folder above 'annotations/'."
    raise FileNotFoundError(
        f"{root} is neither an InterHand2.6M folder (<root>/annotations/<subset or split>/InterHand2.6M_<split>_data.json "
        f"and <root>/images/<split>/...) nor an RHD folder (<root>/training/anno_training.pickle or "
        f"<root>/evaluation/anno_evaluation.pickle with <split>/color/*.png).{hint}"
    )


def available_splits(root, annot_subset=None) -> list:
    """Splits present in a data folder, by their annotation files, e.g. ["train", "test"].

    InterHand2.6M layout: the splits of ``train`` / ``val`` / ``test`` that ``annot_subset`` holds
    (None: that any annotation folder holds; see :func:`h2t_lib.data.interhand.annotation_folders`).
    RHD: "train" (training/) and "test" (evaluation/) where their pickle exists.
    """
    root = Path(root)
    if detect_format(root) == "rhd":
        return [s for s, d in RHD_SPLITS if (root / d / f"anno_{d}.pickle").is_file()]
    if annot_subset in (None, "", "auto"):
        return [s for s in SPLITS if annotation_folders(root, s)]
    return [s for s in SPLITS if annot_subset in annotation_folders(root, s)]


def load_dataset(root, split: str, image_size: int = 256, augment: bool = False, annot_subset=None, **kwargs):
    """Open the dataset at ``root`` in whichever format it is (InterHand2.6M layout or RHD).

    ``annot_subset`` (InterHand2.6M only): None finds the annotation folder, or "all" | "human_annot" |
    "machine_annot" | "v1.0" (see :class:`InterHand26M`). ``kwargs`` go to the dataset class (e.g.
    ``image_check`` for InterHand2.6M, ``hands`` / ``keypoints`` for RHD, ``seed``, ``bbox_scale``,
    ``augment_config``).

    Used in notebook 10.
    """
    fmt = detect_format(root)
    if fmt == "rhd":
        if annot_subset not in (None, "", "auto"):
            raise ValueError(f"annot_subset={annot_subset!r} (--annot-subset) is for InterHand2.6M annotation "
                             f"folders; {root} is an RHD folder: drop it")
        kwargs.pop("image_check", None)  # RHD has no annotated image size to check
        return RHD(root, split, image_size=image_size, augment=augment, **kwargs)
    return InterHand26M(root, split, image_size=image_size, augment=augment, annot_subset=annot_subset, **kwargs)
