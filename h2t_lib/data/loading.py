"""Opening dataset folders and feeding a model from them: what training, evaluation and the benchmarks share.

* :func:`open_dataset`, :func:`available_splits`, :func:`pick_val_split`, :func:`subset`: a folder in
  InterHand2.6M format (what ``python -m h2t_lib synth`` writes) or RHD, by split;
* :func:`make_loader`, :func:`auto_workers`, :func:`to_device`: batches on the model's device;
* :class:`EpochSampler`, :class:`EpochDataset`, :func:`passes`: the training order and augmentation as
  functions of ``(seed, epoch, pass)`` only, split between the ranks of a distributed run, so that a
  resumed run repeats an uninterrupted one exactly (with or without DataLoader workers).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

import torch

__all__ = ["open_dataset", "available_splits", "pick_val_split", "subset", "auto_workers",
           "epoch_seed", "make_loader", "to_device", "EpochSampler", "EpochDataset", "passes"]


# ---------------------------------------------------------------------------
# dataset folders
# ---------------------------------------------------------------------------
def _is_rhd_folder(root: Path) -> bool:
    return any((root / d / f"anno_{d}.pickle").exists() for d in ("training", "evaluation"))


def open_dataset(root, split: str, image_size: int, augment: bool = False, seed: int = 0, annot_subset: str = "",
                 image_check: str = "error"):
    """The dataset in ``root``: InterHand2.6M format (which the synthetic renderer writes) or RHD.

    Uses :func:`h2t_lib.data.load_dataset` when the data package provides it (``annot_subset`` ""
    = found there, ``image_check``: see :class:`h2t_lib.data.InterHand26M`).
    """
    import inspect

    from h2t_lib import data

    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"data folder {root} does not exist; render one with "
                                f"`python -m h2t_lib synth --out {root} --split train --num 1000`")
    if hasattr(data, "load_dataset"):
        kw = {"image_size": image_size, "augment": augment, "seed": seed, "annot_subset": annot_subset or None,
              "image_check": image_check}
        accepted = inspect.signature(data.load_dataset).parameters
        if not any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
            kw = {k: v for k, v in kw.items() if k in accepted}
        return data.load_dataset(root, split, **kw)
    if _is_rhd_folder(root):
        from h2t_lib.data.rhd import RHD

        return RHD(root, split, image_size=image_size, augment=augment, seed=seed)
    from h2t_lib.data.interhand import InterHand26M

    return InterHand26M(root, split, image_size=image_size, augment=augment, seed=seed)


def available_splits(root, annot_subset: str = "") -> list:
    """Splits present in a data folder (by their annotation files), e.g. ["train", "test"]: see
    :func:`h2t_lib.data.available_splits` (``annot_subset`` "" = in any annotation folder)."""
    from h2t_lib.data import available_splits as present

    return present(root, annot_subset or None)


def pick_val_split(root, val_split: str, train_split: str, annot_subset: str = "") -> Optional[str]:
    """The validation split: the requested one, or (auto) the first of test / val present."""
    if not val_split:
        return None
    if val_split != "auto":
        return val_split
    present = available_splits(root, annot_subset)
    for split in ("test", "val"):
        if split in present and split != train_split:
            return split
    return None


def subset(dataset, n: int):
    """The first ``n`` samples of ``dataset`` (a ``torch.utils.data.Subset``); all of it when ``n`` is 0 or >= its length."""
    import torch.utils.data as tud

    return dataset if not n or n >= len(dataset) else tud.Subset(dataset, range(n))


# ---------------------------------------------------------------------------
# loaders
# ---------------------------------------------------------------------------
def auto_workers(device, render: bool = False, processes: int = 1) -> int:
    """DataLoader workers per training process when ``num_workers`` is -1 (auto).

    CUDA: every core but one per process (cores / processes - 1, at least 1), reading a folder
    (decode + crop + augment: ~4 ms a 256-px sample, a GPU step wants thousands a second) or rendering
    on the fly (``render``). CPU: 0 on a machine with <= 2 cores (the model needs them), else 2.
    ``processes``: training processes on this machine (torchrun's --nproc_per_node).
    """
    cpus = os.cpu_count() or 1
    share = max(1, cpus // max(1, processes))
    if device.type == "cuda":
        return max(1, share - 1)
    return 0 if cpus <= 2 else 2


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of one epoch: a function of (seed, epoch) only, so a resumed run repeats it exactly."""
    return (seed * 1_000_003 + epoch * 7_919) % (2**31 - 1)


def make_loader(dataset, batch_size: int, shuffle: bool, device, num_workers: int, sampler=None, drop_last=False,
                persistent: bool = True):
    """A DataLoader that keeps the model fed: workers (persistent for training), pinned memory on CUDA."""
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, sampler=sampler,
        pin_memory=device.type == "cuda", persistent_workers=persistent and num_workers > 0, drop_last=drop_last,
    )


def to_device(batch: dict, device) -> dict:
    """The batch's tensors on ``device`` (non-blocking from pinned memory); other values as they are."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class EpochSampler:
    """Random order of the training samples, a function of (seed, pass) only; this rank's share of it.

    The DataLoader's own generator is not used for the order: a persistent-worker loader draws from it
    differently than a fresh one, and a resumed run must repeat the order. With ``world_size`` ranks
    the permutation is padded with its own start to a multiple of ``world_size`` and rank ``r`` takes
    every ``world_size``-th sample from ``r`` (as ``torch.utils.data.DistributedSampler``): the ranks
    see disjoint samples of one pass (but for the padding), and one rank alone sees the whole order.

    ``group`` (K): the order is drawn over groups of K consecutive indices, each given out whole, in
    index order (the K samples of one render, :class:`h2t_lib.data.stream.SynthStream` with
    ``reuse=K``): with a batch size that K divides, a group never straddles two batches, so the one
    worker that loads the batch renders the image once. ``n`` must be a multiple of K; K = 1 is the
    plain shuffle. Raises ValueError for a bad rank or group.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world_size: int = 1, group: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} must be in [0, world_size={world_size})")
        if group < 1 or n % group:
            raise ValueError(f"group={group} must be >= 1 and divide the number of samples ({n})")
        self.n, self.seed, self.epoch = int(n), int(seed), 0
        self.rank, self.world_size, self.group = int(rank), int(world_size), int(group)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.n // self.group / self.world_size) * self.group

    def __iter__(self):
        g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        groups = self.n // self.group
        order = torch.randperm(groups, generator=g).tolist()
        if self.world_size > 1:
            total = len(self) // self.group * self.world_size
            order = (order * math.ceil(total / max(1, groups)))[:total]
            order = order[self.rank:total:self.world_size]
        if self.group == 1:
            return iter(order)
        return iter(i for k in order for i in range(k * self.group, (k + 1) * self.group))


class EpochDataset:
    """Wraps a training set so that its augmentation epoch reaches the DataLoader's workers.

    Persistent workers hold their own copy of the dataset; the epoch lives in a shared-memory
    tensor, so ``set_epoch`` in the main process is seen by every worker. Before each sample it
    calls the loader's ``set_epoch`` (augmentation deterministic in (seed, index, epoch); the
    on-the-fly renderer's images too).
    """

    def __init__(self, dataset):
        self.dataset = dataset
        self.epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        base = dataset.dataset if hasattr(dataset, "indices") else dataset  # a Subset
        self._base = base if hasattr(base, "set_epoch") else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch.fill_(int(epoch))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        if self._base is not None:
            self._base.set_epoch(int(self.epoch.item()))
        return self.dataset[i]


def passes(loader, epoch_set: EpochDataset, sampler: EpochSampler, epoch: int):
    """Batches of one epoch, forever: a fixed number of steps may take more than one pass.

    Pass ``k`` of epoch ``e`` shuffles and draws its augmentation with ``e * 1000 + k``, so
    every pass differs and a resumed run repeats them exactly (with or without workers).
    """
    k = 0
    while True:
        epoch_set.set_epoch(epoch * 1000 + k)
        sampler.set_epoch(epoch * 1000 + k)
        yield from loader
        k += 1
