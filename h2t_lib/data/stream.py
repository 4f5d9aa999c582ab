"""Synthetic training samples rendered when asked: no folder of images, a new image every epoch.

``SynthStream(num, image_size, seed)`` is a map-style dataset of ``num`` samples per epoch. Sample
``index`` of epoch ``epoch`` is rendered by :func:`h2t_lib.data.synth.render_sample` from a generator
seeded by ``(seed, split, epoch, index)`` and cropped and augmented exactly as the folder loaders
crop a sample of the synthetic data (:class:`h2t_lib.data.InterHand26M`: the hand box enlarged x1.25,
InterNet's augmentation drawn from ``(seed, index, epoch)``). So:

* a run repeats exactly for a seed, whatever the number of DataLoader workers (each sample is a
  function of its four numbers only) and after a resume (the trainer sets the epoch);
* every epoch (``set_epoch``) renders other images: a run never sees the same image twice;
* rendering happens in the DataLoader's worker processes, on the machine's CPUs.

Reuse (``reuse=K``, ``train --set render_reuse=K``): each render gives K training samples, K other
augmentations of one image, so a core feeds K times as many crops (the render is ~90 % of a sample's
CPU time). Sample ``i`` crops render ``i // K`` with the augmentation drawn from ``(seed, i, epoch)``:
deterministic in (seed, render, epoch, k = i % K) as before, and ``K = 1`` is the stream without reuse.
Each worker keeps its last render (:meth:`SynthStream.__getitem__`); the training sampler
(:class:`h2t_lib.data.loading.EpochSampler` with ``group=K``) keeps a render's K samples together in one
batch, so one worker renders it once.

What it differs in from the folder written by ``python -m h2t_lib synth``: no JPEG round trip (the
crop reads the rendered pixels), and the images are other images (another seed sequence).

``python -m h2t_lib train --render ...`` trains on it (see :mod:`h2t_lib.engine.train`); docs/scale.md has
its speed against a GPU's.
"""
from __future__ import annotations

import zlib

import numpy as np
import torch
from PIL import Image

from h2t_lib.data.transforms import AugmentConfig, AugmentParams, crop_sample, process_bbox, sample_augment

__all__ = ["SynthStream"]


class SynthStream(torch.utils.data.Dataset):
    """``num`` synthetic samples per epoch, each rendered in ``__getitem__``: the loaders' sample dict.

    Args:
        num: samples per epoch (the dataset's length), >= 1.
        image_size: side S of the crop the model sees, pixels (>= 8).
        seed: with ``split``, the epoch and the index, all that a sample depends on.
        render_size: side of the rendered camera image, pixels (>= 32); None = ``image_size``
            (as ``synth --size S`` for a model at S px).
        augment: InterNet's training augmentation (scale, rotation, shift, flip, colour).
        split: a name that keeps two streams of one seed apart (e.g. "train" and "val").
        interacting_frac, occlusion: as ``synth --interacting-frac / --occlusion``.
        fixed_epoch: render the samples of this epoch whatever ``set_epoch`` says (a validation
            set that stays the same); None = follow ``set_epoch``.
        style: the renderer's look, "v2" (the default, ``synth.DEFAULT_STYLE``) or "v1" (as
            ``synth --style``; a seed gives the same scenes and joints in both, docs/realism.md).
        reuse: K, samples cut from each render (K augmentations of one image), >= 1; ``num`` renders
            ``ceil(num / K)`` images per epoch.

    Raises:
        ValueError: a bad size, count, fraction, occlusion level, style or reuse.
    """

    def __init__(self, num: int, image_size: int, seed: int = 0, render_size: int | None = None,
                 augment: bool = True, split: str = "train", interacting_frac: float = 0.6,
                 occlusion: str = "any", augment_config: AugmentConfig | None = None, bbox_scale: float = 1.25,
                 fixed_epoch: int | None = None, style: str = "v2", reuse: int = 1):
        from h2t_lib.data import synth

        super().__init__()
        render_size = int(render_size or image_size)
        synth.dataset._check_args(num, render_size, interacting_frac, occlusion, split, style)
        if int(image_size) < 8:
            raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if not isinstance(reuse, int) or reuse < 1:
            raise ValueError(f"reuse must be a positive integer (samples per render), got {reuse!r}")
        self.num, self.image_size, self.render_size = int(num), int(image_size), render_size
        self.seed, self.split, self.augment = int(seed), str(split), bool(augment)
        self.interacting_frac, self.occlusion, self.style = float(interacting_frac), occlusion, style
        self.augment_config = augment_config or AugmentConfig()
        self.bbox_scale = float(bbox_scale)
        self.fixed_epoch = fixed_epoch
        self.epoch = 0 if fixed_epoch is None else int(fixed_epoch)
        self._split_key = zlib.crc32(self.split.encode("utf-8"))
        self.rig = synth.camera_rig(render_size)
        self.reuse = reuse
        self._last = None  # ((epoch, render index), rendered sample, its PIL image): this process's last render

    def set_epoch(self, epoch: int) -> None:
        """Render the samples of this epoch from now on (ignored with ``fixed_epoch``)."""
        if self.fixed_epoch is None:
            self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num

    def rng(self, index: int) -> np.random.Generator:
        """The generator of render ``index`` (= sample ``index`` without reuse) in the current epoch."""
        return np.random.default_rng([self.seed, self._split_key, self.epoch, int(index)])

    def render(self, index: int) -> dict:
        """Render ``index`` of the current epoch (image (R, R, 3) uint8, annotations, scene): see
        ``synth.render_sample``; sample ``i`` crops render ``i // reuse``."""
        from h2t_lib.data.synth import render_sample

        return render_sample(self.rng(index), self.render_size, None, self.interacting_frac, self.occlusion, self.rig,
                             style=self.style)

    def __getitem__(self, index: int) -> dict:
        if not -self.num <= index < self.num:
            raise IndexError(f"index {index} out of range for a stream of {self.num} samples per epoch")
        index = int(index) % self.num
        key = (self.epoch, index // self.reuse)
        if self._last is None or self._last[0] != key:  # the K samples of a render come one after another
            s = self.render(key[1])
            self._last = (key, s, Image.fromarray(s["image"]))
        _, s, image = self._last
        params = (sample_augment(self.augment_config, self.seed, index, self.epoch) if self.augment
                  else AugmentParams())
        return crop_sample(image, bbox=process_bbox(s["bbox"], self.bbox_scale),
                           focal=s["focal"], princpt=s["princpt"], joints_cam=s["joints_cam"],
                           joint_valid=s["joint_valid"], hand_type=s["hand_type"], index=index,
                           size=self.image_size, params=params, joint_vis=s["joint_vis"],
                           occlusion=float(s["occlusion"]))

    def __repr__(self) -> str:
        return (f"SynthStream({self.num} samples/epoch, {self.render_size} px rendered -> {self.image_size} px, "
                f"seed {self.seed}, split {self.split!r}, epoch {self.epoch}, augment={self.augment}, style {self.style}, "
                f"reuse {self.reuse})")
