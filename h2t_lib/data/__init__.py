"""Datasets: InterHand2.6M (and synthetic data in its format), RHD, shared crop / augmentation.

Every dataset yields the same sample dict (see the contracts): ``image`` (3, S, S) in [0, 1],
``joints_cam`` (42, 3) mm, ``joints_img`` (42, 2) crop pixels, ``joint_valid`` / ``joint_vis`` (42,),
``hand_type``, crop intrinsics ``focal`` / ``princpt`` (2,), ``index``, ``occlusion``.

The synthetic renderer (``h2t_lib.data.synth``) is not imported here: it is loaded only
when used (``python -m h2t_lib synth`` or ``import h2t_lib.data.synth``).
"""
from __future__ import annotations

from pathlib import Path

from h2t_lib.data.interhand import InterHand26M
from h2t_lib.data.rhd import RHD
from h2t_lib.data.transforms import AugmentConfig, AugmentParams

__all__ = ["InterHand26M", "RHD", "AugmentConfig", "AugmentParams", "load_dataset", "detect_format"]


def detect_format(root) -> str:
    """'interhand' (an ``annotations/`` folder) or 'rhd' (``<split>/anno_<split>.pickle``) for a dataset folder."""
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
        f"{root} is neither an InterHand2.6M folder (<root>/annotations/<subset>/InterHand2.6M_<split>_data.json "
        f"and <root>/images/<split>/...) nor an RHD folder (<root>/training/anno_training.pickle or "
        f"<root>/evaluation/anno_evaluation.pickle with <split>/color/*.png).{hint}"
    )


def load_dataset(root, split: str, image_size: int = 256, augment: bool = False, **kwargs):
    """Open the dataset at ``root`` in whichever format it is (InterHand2.6M layout or RHD).

    ``kwargs`` go to the dataset class (e.g. ``annot_subset`` for InterHand2.6M, ``hands`` for RHD,
    ``seed``, ``bbox_scale``, ``augment_config``).
    """
    fmt = detect_format(root)
    cls = InterHand26M if fmt == "interhand" else RHD
    return cls(root, split, image_size=image_size, augment=augment, **kwargs)
