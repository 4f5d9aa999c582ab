"""The notebook course: its data, the shipped model, paths that work from any folder, and its views.

The notebooks run with their own folder (``notebooks/``) as the working directory, under
nbval two at a time; these helpers resolve paths from the repository root and render the
course's synthetic data once (a file lock keeps two kernels from rendering it together).

    from h2t_lib import course
    FAST = course.fast()                       # H2T_FAST=1: small data, few steps
    test = course.dataset("test")              # InterHand26M over the course's synthetic test split
    model, info = course.shipped_model()       # data/checkpoints/h2t_cpu.pt in eval mode, + its record

Sizes: 300 test / 2000 train images at 256 px normally (about a minute to render on two
cores), 24 / 48 under ``H2T_FAST=1``. Seeds: test 202, train 201 (not the shipped model's
training seeds, see docs/results.md), so every notebook sees the same images every run.

The notebooks' views (functions that compute what they show and return data or a figure; the
notebooks wire them to widgets, the tests call them directly) are re-exported here as
``course.NAME``; they draw with :mod:`h2t_lib.viz`'s primitives:

* :mod:`.data_views`: the joint convention, browsing samples, posed pairs, augmentation (notebooks 00-01)
* :mod:`.heatmap_views`: 2.5D heatmaps against direct regression, on a sample and in compute (notebook 02)
* :mod:`.model_views`: feature maps, tokens, attention, parameters and FLOPs (notebooks 02-04)
* :mod:`.model_diagram`: the whole model at a glance with a model's tensor shapes (notebook 00)
* :mod:`.probe`: a linear probe from a hand token to its 63 coordinates (notebook 04)
* :mod:`.refine_views`: KGFF's sampling, every stage's pose, the RLE and MMD losses (notebooks 05-06)
* :mod:`.training_views`: overfitting one batch, before and after (notebook 07)
* :mod:`.eval_views`: loss curves, error breakdowns, a GT-vs-prediction viewer (notebooks 07-08)
* :mod:`.results_views`: the paper's tables beside ours, ablations and efficiency (notebook 09)
* :mod:`.image_views`: a real dataset's samples, predictions on your own images (notebook 10)
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from h2t_lib.utils import ROOT, SHIPPED_CHECKPOINT, is_fast

#: the shipped model, as predict and demo find it (ROOT: the repository root)
SHIPPED = SHIPPED_CHECKPOINT
SPLITS = {  # split -> (number normal, number fast, seed)
    "test": (300, 24, 202),
    "train": (2000, 48, 201),
}
RENDER_SIZE = 256


def fast() -> bool:
    """True under ``H2T_FAST=1`` (set by the tests): shrink data and steps."""
    return is_fast()


def data_dir() -> Path:
    """Where the course's synthetic data lives (``$H2T_COURSE_DATA`` or ``runs/course_data[_fast]``)."""
    env = os.environ.get("H2T_COURSE_DATA")
    if env:
        return Path(env)
    return ROOT / "runs" / ("course_data_fast" if fast() else "course_data")


def ensure_data(splits=("test", "train"), progress: bool = False) -> Path:
    """Render the course's splits unless they are there already; return the data folder.

    Quiet by default: a notebook cell that happens to render the data on first use (a fresh clone)
    must print what it prints on every later run, or nbval sees an unexpected progress bar.

    Used in notebooks 01 and 07.
    """
    from h2t_lib.apps.demo import ensure_split

    root = data_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another kernel rendering the same data waits here
        try:
            for split in splits:
                num_full, num_fast, seed = SPLITS[split]
                ensure_split(root, split, num_fast if fast() else num_full, RENDER_SIZE, seed, progress=progress)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return root


def dataset(split: str = "test", image_size: int = 128, augment: bool = False, **kwargs):
    """The course's synthetic ``split`` as an :class:`~h2t_lib.data.InterHand26M` (rendered on first use).

    ``image_size`` is the model's input size (the shipped ``cpu`` model reads 128 px crops).

    Used in notebooks 00, 01, 02, 03, 04, 05, 06, 08 and 10.
    """
    from h2t_lib.data import InterHand26M

    if split not in SPLITS:
        raise ValueError(f"course split {split!r}: choose one of {sorted(SPLITS)}")
    root = ensure_data((split,))
    return InterHand26M(root, split, image_size=image_size, augment=augment, **kwargs)


def shipped_model(device: str = "cpu", root_source: str | None = None):
    """(model, extra): the shipped ``cpu``-preset model in eval mode and what its checkpoint records
    (training config, data seeds, training log); a clear error when the file is missing.

    Used in notebooks 00, 02, 03, 04, 05, 06, 07, 08 and 10.
    """
    from h2t_lib.engine.evaluate import load_model

    if not SHIPPED.exists():
        raise FileNotFoundError(
            f"the shipped checkpoint {SHIPPED} is missing: it comes with the repository (git lfs is not used); "
            f"check out data/checkpoints/ again, or train one: python -m h2t_lib train --preset cpu ...")
    return load_model(SHIPPED, device=device, root_source=root_source)


# The notebooks' views: what each notebook computes and shows (notebook numbers in each module's docstring).
from h2t_lib.course.model_diagram import model_figure, model_shapes  # noqa: E402,F401
from h2t_lib.course.heatmap_views import compute_split, heatmap_figure, soft_argmax, target_volume  # noqa: E402,F401
from h2t_lib.course.data_views import *  # noqa: E402,F401,F403
from h2t_lib.course.model_views import *  # noqa: E402,F401,F403
from h2t_lib.course.refine_views import *  # noqa: E402,F401,F403
from h2t_lib.course.training_views import *  # noqa: E402,F401,F403
from h2t_lib.course.eval_views import *  # noqa: E402,F401,F403
from h2t_lib.course.results_views import *  # noqa: E402,F401,F403
from h2t_lib.course.image_views import *  # noqa: E402,F401,F403
