"""Training: ``python -m h2t_lib train --preset NAME --data DIR --out RUN_DIR``.

The paper's recipe (Sec. 4.1, "Implementation details"): Adam, learning rate 1e-3, step
decay every 80 epochs by a factor of 4, 270 epochs, 256x256 crops with InterNet's
augmentation (scale, rotation, colour jitter, horizontal flip with the hands swapped).
The loss is Eq. 21: the RLE term of every stage (one flow each, Eq. 19) plus 10 x the MMD
of the coarse stage (Eq. 20), plus our wrist term (see :mod:`h2t_lib.losses`).

``TrainConfig`` is one plain dataclass with three presets:

* ``"paper"``: the recipe above on the paper's model (R50, c_e = 256), batch 64.
* ``"cpu"``: the ``cpu`` model (ResNet-18 at 128 px) for a 2-core laptop, about half an
  hour on a few thousand synthetic images. The step schedule is scaled with the
  number of epochs (decay after 80/270 and 160/270 of the run, by 4 each time).
* ``"tiny"``: a few steps of the ``tiny`` model, for tests.

A run directory holds ``last.pt`` (everything needed to continue: weights, optimizer,
scheduler, the loss's flows, RNG states, the log so far), ``best.pt`` (weights of the
epoch with the lowest validation MPJPE), ``log.csv`` / ``log.json`` (one row per epoch)
and ``loss_curve.png``. ``--resume`` continues from ``last.pt`` and gives, on CPU, the
very numbers an uninterrupted run gives: every epoch re-seeds all random generators
from ``(seed, epoch)``, and the shuffling order and the augmentation (drawn per sample
from ``(seed, index, epoch)`` by the loaders) do not depend on what ran before, nor on
the number of DataLoader workers.

Python API (notebooks)::

    from h2t_lib.train import TrainConfig, train
    history = train(TrainConfig.preset("tiny"), "data/synth", "runs/tiny",
                    on_epoch_end=lambda h: print(h["epochs"][-1]))
"""
from __future__ import annotations

import ast
import csv
import dataclasses
import math
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .cli import UserError
from .utils import atomic_path, atomic_write_json, seed_everything
from .utils import resolve_device as _resolve_device


class TrainingError(UserError):
    """Training cannot go on (e.g. the loss became NaN); the CLI prints it as one line."""


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------
@dataclass
class TrainConfig:
    """Everything that defines a training run (the model's own config is ``model_preset`` + ``model``)."""

    name: str = "custom"  # the preset this config started from (informational)
    model_preset: Optional[str] = "cpu"  # ModelConfig.preset name (None with init: the checkpoint's config)
    model: dict = field(default_factory=dict)  # ModelConfig fields to override, e.g. {"tokens": "joint"}
    loss: dict = field(default_factory=dict)  # LossConfig fields to override, e.g. {"use_mmd": False}
    init: Optional[str] = None  # start from these weights (a checkpoint); it must match model_preset unless that is None
    # --- optimisation (Sec. 4.1)
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3  # Adam
    lr_schedule: str = "step"  # "step": the paper's (x lr_gamma every lr_step epochs); "cosine": ours, see lr_factor
    lr_step: int = 9  # epochs between two decays (StepLR); the paper: 80 of 270
    lr_gamma: float = 0.25  # decay factor (the paper: "decrease_factor = 4")
    min_lr_frac: float = 0.01  # "cosine": the last step's lr as a fraction of lr
    warmup_steps: int = 0  # linear learning-rate warm-up over the first steps (fine-tuning: fresh Adam moments)
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # max gradient norm, 0 = off
    amp: bool = True  # mixed precision on CUDA (bf16 where supported, else fp16 + GradScaler); never on CPU
    # --- data
    augment: bool = True  # InterNet-style augmentation of the training crops
    train_split: str = "train"
    val_split: str = "auto"  # "auto": the first of test / val present in the data folder; "" = no validation
    max_train_samples: int = 0  # use only the first N training samples (0 = all)
    max_val_samples: int = 0  # validate on the first N samples of the validation split (0 = all)
    annot_subset: str = ""  # InterHand2.6M annotations: "" = the folder holding the split; all|human_annot|machine_annot|v1.0
    image_check: str = "error"  # InterHand2.6M image whose size differs from its annotation: "error" | "warn" (use it)
    steps_per_epoch: int = 0  # stop an epoch after this many steps (0 = one full pass)
    num_workers: int = -1  # DataLoader workers; -1 = auto (min(4, cpus) on CUDA; 0 on a CPU with <= 2 cores, else 2)
    # --- bookkeeping
    seed: int = 0
    log_every: int = 20  # steps between two points of the per-step loss log

    def __post_init__(self):
        self.validate()

    def validate(self) -> "TrainConfig":
        """Raise ValueError naming the problem and the fix."""

        def bad(msg):
            raise ValueError(f"TrainConfig({self.name!r}): {msg}")

        for key in ("epochs", "batch_size", "lr_step", "log_every"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                bad(f"{key}={getattr(self, key)!r} must be a positive integer")
        for key in ("max_train_samples", "max_val_samples", "steps_per_epoch", "warmup_steps"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 0:
                bad(f"{key}={getattr(self, key)!r} must be an integer >= 0 (0 = no limit)")
        if not self.lr > 0:
            bad(f"lr={self.lr} must be positive")
        if not 0 < self.lr_gamma <= 1:
            bad(f"lr_gamma={self.lr_gamma} must be in (0, 1]")
        if self.lr_schedule not in LR_SCHEDULES:
            bad(f"lr_schedule={self.lr_schedule!r}; use one of {LR_SCHEDULES}")
        if not 0 <= self.min_lr_frac <= 1:
            bad(f"min_lr_frac={self.min_lr_frac} must be in [0, 1]")
        if self.weight_decay < 0 or self.grad_clip < 0:
            bad("weight_decay and grad_clip must be >= 0")
        if not isinstance(self.num_workers, int) or self.num_workers < -1:
            bad(f"num_workers={self.num_workers!r} must be -1 (auto) or >= 0")
        if not isinstance(self.model, dict) or not isinstance(self.loss, dict):
            bad("model and loss must be dicts of field overrides")
        return self

    # ------------------------------------------------------------------ presets
    @classmethod
    def preset(cls, name: str, **overrides) -> "TrainConfig":
        """A named preset ("paper", "cpu", "tiny"), optionally with fields overridden."""
        if name not in TRAIN_PRESETS:
            raise ValueError(f"unknown train preset {name!r}; choose one of {', '.join(TRAIN_PRESETS)}")
        cfg = TRAIN_PRESETS[name]()
        return dataclasses.replace(cfg, **overrides) if overrides else cfg

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known fields are {sorted(known)}")
        return cls(**d)

    # ------------------------------------------------------------------ derived
    def model_config(self):
        """The ModelConfig this run trains (preset + overrides); ignored when ``init`` is set."""
        from .config import ModelConfig

        return ModelConfig.preset(self.model_preset, **self.model)

    def loss_config(self):
        from .losses import LossConfig

        return LossConfig(**self.loss)


LR_SCHEDULES = ("step", "cosine")


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_frac: float) -> float:
    """The "cosine" schedule (ours, not the paper's): lr multiplier at optimizer step ``step`` (0-based).

    Linear warm-up from 1/warmup to 1 over ``warmup_steps``, then half a cosine from 1 down to
    ``min_frac`` at the last of ``total_steps`` (Loshchilov & Hutter, SGDR, 2017, without restarts).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps - 1))
    return min_frac + (1.0 - min_frac) * 0.5 * (1.0 + math.cos(math.pi * t))


def make_scheduler(optimizer, cfg: "TrainConfig", steps_per_epoch: int):
    """(scheduler, per_step): StepLR stepped once per epoch, or the cosine LambdaLR stepped every step."""
    import torch

    if cfg.lr_schedule == "cosine":
        total = cfg.epochs * steps_per_epoch
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda k: lr_factor(k, total, cfg.warmup_steps, cfg.min_lr_frac)), True
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma), False


def _scaled_step(epochs: int) -> int:
    """The paper's step (80 of 270 epochs) scaled to a shorter run."""
    return max(1, round(epochs * 80 / 270))


def _paper() -> TrainConfig:
    return TrainConfig(
        name="paper", model_preset="paper", epochs=270, batch_size=64, lr=1e-3, lr_step=80, lr_gamma=0.25,
        augment=True, log_every=100,
    )


def _cpu() -> TrainConfig:
    # ResNet-18 (to layer3) at 128 px on a shared 2-core CPU (one thread) trains at about 18 images/s
    # (measured, see docs/results.md): 20 epochs x 50 steps of 32 images = 32k images seen, about
    # 35 minutes with validation. (Batch 16 for 16 x 100 steps was no better, and slower.)
    # The wrist term is weighted 10x: at weight 1 the root head learnt almost nothing next to the
    # RLE terms, and KGFF with predicted wrists then samples the wrong places.
    epochs = 20
    return TrainConfig(
        name="cpu", model_preset="cpu", epochs=epochs, batch_size=32, lr=1e-3, lr_step=_scaled_step(epochs),
        lr_gamma=0.25, augment=True, steps_per_epoch=50, max_val_samples=200, log_every=10,
        loss={"root_weight": 10.0},
    )


def _tiny() -> TrainConfig:
    return TrainConfig(
        name="tiny", model_preset="tiny", epochs=2, batch_size=4, lr=1e-3, lr_step=1, lr_gamma=0.5,
        augment=True, steps_per_epoch=3, max_train_samples=16, max_val_samples=8, num_workers=0, log_every=1,
    )


TRAIN_PRESETS = {"paper": _paper, "cpu": _cpu, "tiny": _tiny}


def parse_overrides(items, cfg: TrainConfig) -> TrainConfig:
    """Apply ``--set key=value`` items: TrainConfig fields, ``model.FIELD`` or ``loss.FIELD``.

    Values are Python literals (``3``, ``1e-4``, ``False``, ``'joint'``, ``(4, 3)``); anything
    that is not one is taken as a string.
    """
    from .config import ModelConfig
    from .losses import LossConfig

    top = {f.name: f for f in dataclasses.fields(TrainConfig)}
    sub = {"model": {f.name for f in dataclasses.fields(ModelConfig)}, "loss": {f.name for f in dataclasses.fields(LossConfig)}}
    changes, model, loss = {}, dict(cfg.model), dict(cfg.loss)
    for item in items or ():
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected key=value, e.g. --set lr=1e-4 or --set model.dim=64")
        key, text = item.split("=", 1)
        key = key.strip()
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        if "." in key:
            group, name = key.split(".", 1)
            if group not in sub or name not in sub[group]:
                known = sorted(sub.get(group, ()))
                raise ValueError(f"--set {key}: unknown field; {group}.FIELD takes one of {known}" if group in sub
                                 else f"--set {key}: unknown group {group!r}; use model.FIELD or loss.FIELD")
            (model if group == "model" else loss)[name] = value
        elif key in top and key not in ("model", "loss"):
            want = type(getattr(cfg, key))
            if want is float and isinstance(value, int):
                value = float(value)
            changes[key] = value
        else:
            raise ValueError(f"--set {key}: unknown TrainConfig field; known: {sorted(k for k in top if k not in ('model', 'loss'))} "
                             f"(or model.FIELD / loss.FIELD)")
    return dataclasses.replace(cfg, model=model, loss=loss, **changes)


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
def resolve_device(device):
    """A torch.device from "auto" / "cpu" / "cuda" / ... (or a device); an unavailable one is a one-line error."""
    if not isinstance(device, str):
        return device
    try:
        return _resolve_device(device)
    except RuntimeError as e:
        raise UserError(str(e)) from None


def _is_rhd_folder(root: Path) -> bool:
    return any((root / d / f"anno_{d}.pickle").exists() for d in ("training", "evaluation"))


def open_dataset(root, split: str, image_size: int, augment: bool = False, seed: int = 0, annot_subset: str = "",
                 image_check: str = "error"):
    """The dataset in ``root``: InterHand2.6M format (which the synthetic renderer writes) or RHD.

    Uses :func:`h2t_lib.data.load_dataset` when the data package provides it (``annot_subset`` ""
    = found there, ``image_check``: see :class:`h2t_lib.data.InterHand26M`).
    """
    import inspect

    from . import data

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
        from .data.rhd import RHD

        return RHD(root, split, image_size=image_size, augment=augment, seed=seed)
    from .data.interhand import InterHand26M

    return InterHand26M(root, split, image_size=image_size, augment=augment, seed=seed)


def available_splits(root, annot_subset: str = "") -> list:
    """Splits present in a data folder (by their annotation files), e.g. ["train", "test"]: see
    :func:`h2t_lib.data.available_splits` (``annot_subset`` "" = in any annotation folder)."""
    from .data import available_splits as present

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


def _subset(dataset, n: int):
    import torch.utils.data as tud

    return dataset if not n or n >= len(dataset) else tud.Subset(dataset, range(n))


def auto_workers(device) -> int:
    cpus = os.cpu_count() or 1
    if device.type == "cuda":
        return min(4, cpus)
    return 0 if cpus <= 2 else 2


def _epoch_seed(seed: int, epoch: int) -> int:
    """Seed of one epoch: a function of (seed, epoch) only, so a resumed run repeats it exactly."""
    return (seed * 1_000_003 + epoch * 7_919) % (2**31 - 1)


def make_loader(dataset, batch_size: int, shuffle: bool, device, num_workers: int, sampler=None, drop_last=False,
                persistent: bool = True):
    """A DataLoader that keeps the model fed: workers (persistent for training), pinned memory on CUDA."""
    import torch

    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, sampler=sampler,
        pin_memory=device.type == "cuda", persistent_workers=persistent and num_workers > 0, drop_last=drop_last,
    )


def gt_roots(batch) -> "torch.Tensor":
    """(B, 2, 3) ground-truth wrists (right, left) in camera mm, for root_source="gt"."""
    from .skeleton import ROOT_INDEX

    return batch["joints_cam"][:, [ROOT_INDEX["right"], ROOT_INDEX["left"]]]


def to_device(batch: dict, device) -> dict:
    import torch

    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def forward(model, batch: dict, root_source: Optional[str] = None):
    """Run the model on a (device) batch; ``root_source`` "gt" hands it the GT wrists, "pred" not."""
    source = root_source or model.cfg.root_source
    root_cam = gt_roots(batch) if source == "gt" else None
    import torch

    image = batch["image"].contiguous(memory_format=torch.channels_last)  # as the model's convolutions
    return model(image, batch["focal"], batch["princpt"], root_cam=root_cam)


# ---------------------------------------------------------------------------
# logging
# ---------------------------------------------------------------------------
def write_logs(history: dict, out_dir) -> None:
    """log.json (everything), log.csv (one row per epoch), loss_curve.png; all written atomically."""
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "log.json", _jsonable(history))
    rows = history["epochs"]
    if rows:
        keys = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        with atomic_path(out_dir / "log.csv") as tmp:
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=keys)
                w.writeheader()
                w.writerows(rows)
    plot_history(history, out_dir / "loss_curve.png")


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, (np.floating, np.integer)):
        return _jsonable(x.item())
    return x


def plot_history(history: dict, path=None):
    """Training loss per step and per epoch (left), validation MPJPE per stage (right). Returns the figure."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = history.get("steps", [])
    if steps:
        a1.plot([s["step"] for s in steps], [s["total"] for s in steps], lw=0.8, alpha=0.5, label="train (running)")
    rows = history["epochs"]
    if rows:
        a1.plot([r["step"] for r in rows], [r["train_total"] for r in rows], "o-", label="train (epoch mean)")
    a1.set_xlabel("step")
    a1.set_ylabel("loss (Eq. 21)")
    a1.set_title("training loss")
    a1.legend(fontsize=8)
    stage_keys = sorted({k for r in rows for k in r if re.fullmatch(r"val_mpjpe_stage\d+", k)})
    for k in stage_keys:
        pts = [(r["epoch"], r[k]) for r in rows if r.get(k) is not None and np.isfinite(r[k])]
        if pts:
            a2.plot(*zip(*pts), "o-", label=k.replace("val_mpjpe_", ""))
    a2.set_xlabel("epoch")
    a2.set_ylabel("MPJPE (mm)")
    a2.set_title("validation MPJPE (all samples)")
    if stage_keys:
        a2.legend(fontsize=8)
    else:
        a2.text(0.5, 0.5, "no validation split", ha="center", va="center", transform=a2.transAxes)
    fig.tight_layout()
    if path is not None:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
    return fig


# ---------------------------------------------------------------------------
# RNG state (saved in last.pt; every epoch also re-seeds from (seed, epoch))
# ---------------------------------------------------------------------------
def rng_state() -> dict:
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------
def _build(train_cfg: TrainConfig, device):
    """Model, criterion, optimizer for a fresh run (weights from ``init`` if set)."""
    import torch

    from .checkpoint import load_checkpoint
    from .losses import Handformer2TLoss
    from .model import Handformer2T

    seed_everything(train_cfg.seed)
    if train_cfg.init:
        # Fine-tuning: the architecture is the checkpoint's. With a model preset named, the
        # checkpoint must match it (load_checkpoint says which fields differ).
        expected = train_cfg.model_config() if train_cfg.model_preset else None
        model, init_extra = load_checkpoint(train_cfg.init, map_location="cpu", expected_config=expected)
        if train_cfg.model and expected is None:
            model.cfg = dataclasses.replace(model.cfg, **_runtime_only(train_cfg.model, model.cfg))
        model.float()
    else:
        init_extra = {}
        if not train_cfg.model_preset:
            raise ValueError("TrainConfig.model_preset is empty: name a model preset (or set init= a checkpoint)")
        model = Handformer2T(train_cfg.model_config())
    criterion = Handformer2TLoss(model.cfg, train_cfg.loss_config())
    # Fine-tuning continues with the checkpoint's trained flows (Eq. 19) when it carries them:
    # fresh flows would make the first steps' likelihood, and its gradients, meaningless.
    flows = init_extra.get("criterion") or (init_extra.get("train_state") or {}).get("criterion")
    if flows is not None:
        try:
            criterion.load_state_dict(flows)
        except RuntimeError:
            print(f"note: the flows stored in {train_cfg.init} do not fit this loss config; starting with fresh flows")
    model.to(device, memory_format=torch.channels_last)  # NHWC convolutions: ~15% faster on CPU
    criterion.to(device)
    params = [p for p in list(model.parameters()) + list(criterion.parameters()) if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    return model, criterion, optimizer


def _runtime_only(overrides: dict, cfg) -> dict:
    """With --init the architecture is the checkpoint's: only runtime fields may be overridden."""
    from .config import RUNTIME_FIELDS

    arch = sorted(k for k in overrides if k not in RUNTIME_FIELDS)
    if arch:
        raise ValueError(
            f"model overrides {arch} change the architecture, but --init fixes it to the checkpoint's "
            f"({cfg.name}); drop them or train from scratch without --init"
        )
    return overrides


def _amp_setup(train_cfg: TrainConfig, device):
    """(autocast dtype or None, GradScaler or None): mixed precision on CUDA only."""
    import torch

    if device.type != "cuda" or not train_cfg.amp:
        return None, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def validate(model, dataset, device, batch_size: int = 32, num_workers: int = 0, root_source=None) -> dict:
    """MPJPE (single / interacting / all) of every stage on ``dataset``: {"stage1": {...}, ...}."""
    from .evaluate import predict_dataset
    from .metrics import mpjpe

    pred = predict_dataset(model, dataset, batch_size=batch_size, device=device, num_workers=num_workers,
                           root_source=root_source)
    return {
        f"stage{i + 1}": mpjpe(p, pred["joints_cam"], pred["joint_valid"], pred["hand_type"])
        for i, p in enumerate(pred["p"])
    }


def train(
    train_cfg: Optional[TrainConfig],
    data_dir,
    out_dir,
    resume: bool = False,
    epochs: Optional[int] = None,
    device: str = "auto",
    progress: bool = True,
    verbose: Optional[bool] = None,
    on_epoch_end: Optional[Callable[[dict], None]] = None,
    on_step: Optional[Callable[[dict], None]] = None,
) -> dict:
    """Train (or, with ``resume``, continue) a run; return the history.

    Args:
        train_cfg: the run's :class:`TrainConfig`. Ignored with ``resume`` (may be None there):
            the config stored in ``last.pt`` is used.
        data_dir: a dataset folder with a ``train`` split (and optionally ``test``/``val``).
        out_dir: the run directory (created).
        resume: continue from ``out_dir/last.pt`` (no epoch lost after a kill).
        epochs: override the number of epochs (e.g. to train a finished run longer).
        device: "auto" (CUDA when present), "cpu", "cuda", "cuda:1", ...
        progress: show a tqdm bar with the loss and the learning rate.
        verbose: print one summary line per epoch (default: as ``progress``).
        on_epoch_end: called with the history after every epoch (live plots in notebooks).
        on_step: called with ``{"epoch", "step", "total", "lr"}`` after every logged step.

    Returns:
        ``{"config": TrainConfig as dict, "model_config": dict, "epochs": [one dict per epoch],
        "steps": [running loss every log_every steps], "best": {"epoch", "metric", "value"}}``.
    """
    import torch
    from tqdm.auto import tqdm

    from .checkpoint import load_checkpoint, save_checkpoint

    out_dir = Path(out_dir)
    device = resolve_device(device)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"

    if resume:
        if not last_path.exists():
            raise FileNotFoundError(f"--resume: {last_path} does not exist (nothing to continue); drop --resume to start")
        model, extra = load_checkpoint(last_path, map_location="cpu")
        state = extra.get("train_state")
        if state is None:
            raise ValueError(f"{last_path} holds weights but no training state; it cannot be resumed")
        train_cfg = TrainConfig.from_dict(extra["train_config"])
        if epochs is not None:
            train_cfg = dataclasses.replace(train_cfg, epochs=epochs)
        from .losses import Handformer2TLoss

        # rebuild the training objects around the loaded model, then load their states
        model.to(device, memory_format=torch.channels_last)
        criterion = Handformer2TLoss(model.cfg, train_cfg.loss_config()).to(device)
        criterion.load_state_dict(state["criterion"])
        params = [p for p in list(model.parameters()) + list(criterion.parameters()) if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
        optimizer.load_state_dict(state["optimizer"])
        history = extra["history"]
        history["config"] = train_cfg.to_dict()
        start_epoch = int(state["epoch"]) + 1
        global_step = int(state["step"])
        set_rng_state(state["rng"])
    else:
        if train_cfg is None:
            raise ValueError("train(): a TrainConfig is needed to start a run (only resume=True can do without)")
        if epochs is not None:
            train_cfg = dataclasses.replace(train_cfg, epochs=epochs)
        model, criterion, optimizer = _build(train_cfg, device)
        history = {"config": train_cfg.to_dict(), "model_config": model.cfg.to_dict(), "epochs": [], "steps": [],
                   "best": None}
        start_epoch, global_step, state = 1, 0, None

    # --- data
    image_size = model.cfg.image_size
    files = {"annot_subset": train_cfg.annot_subset, "image_check": train_cfg.image_check}
    train_set = _subset(open_dataset(data_dir, train_cfg.train_split, image_size, augment=train_cfg.augment,
                                     seed=train_cfg.seed, **files), train_cfg.max_train_samples)
    if len(train_set) == 0:
        raise ValueError(f"the {train_cfg.train_split!r} split of {data_dir} is empty")
    val_name = pick_val_split(data_dir, train_cfg.val_split, train_cfg.train_split, train_cfg.annot_subset)
    val_set = None
    if val_name:
        val_set = _subset(open_dataset(data_dir, val_name, image_size, augment=False, **files), train_cfg.max_val_samples)
    history["data"] = {"dir": str(data_dir), "train_split": train_cfg.train_split, "train_samples": len(train_set),
                       "val_split": val_name, "val_samples": len(val_set) if val_set is not None else 0}
    workers = auto_workers(device) if train_cfg.num_workers < 0 else train_cfg.num_workers
    amp_dtype, scaler = _amp_setup(train_cfg, device)
    if scaler is not None and state is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    out_dir.mkdir(parents=True, exist_ok=True)

    # One loader for the whole run (its workers persist); the shuffling order and the augmentation
    # are functions of (seed, epoch, pass), set at the start of every pass.
    drop_last = len(train_set) >= 2 * train_cfg.batch_size
    epoch_set = EpochDataset(train_set)
    sampler = EpochSampler(len(train_set), train_cfg.seed)
    loader = make_loader(epoch_set, train_cfg.batch_size, False, device, workers, sampler=sampler, drop_last=drop_last)
    # one pass over the training set per epoch, or a fixed number of steps (cycling the data)
    steps_per_epoch = train_cfg.steps_per_epoch or len(loader)
    scheduler, per_step = make_scheduler(optimizer, train_cfg, steps_per_epoch)
    if state is not None:
        scheduler.load_state_dict(state["scheduler"])

    for epoch in range(start_epoch, train_cfg.epochs + 1):
        # Every epoch starts from generators seeded by (seed, epoch): resume repeats it exactly.
        eseed = _epoch_seed(train_cfg.seed, epoch)
        seed_everything(eseed)
        batches = _passes(loader, epoch_set, sampler, epoch)
        model.train()
        criterion.train()
        # running sums stay on the device: one host sync per log point, not per step (keeps a GPU busy)
        sums, count, t0 = {}, 0, time.time()
        run_total, run_n = torch.zeros((), device=device), 0
        lr = optimizer.param_groups[0]["lr"]
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{train_cfg.epochs}", disable=not progress,
                   leave=False, dynamic_ncols=True)
        for _ in bar:
            batch = to_device(next(batches), device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                out = forward(model, batch)
            out = {k: ([t.float() for t in v] if isinstance(v, list) else v.float()) for k, v in out.items()}
            terms = criterion(out, batch)  # the flows and the likelihoods in float32
            loss = terms["total"]
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if train_cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], train_cfg.grad_clip)
            warm = global_step < train_cfg.warmup_steps and not per_step  # (the cosine schedule warms up itself)
            if warm:  # linear warm-up: Adam's first steps move every weight by ~lr, whatever its gradient
                bases = [g["lr"] for g in optimizer.param_groups]
                for g, b in zip(optimizer.param_groups, bases):
                    g["lr"] = b * (global_step + 1) / train_cfg.warmup_steps
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            if warm:
                for g, b in zip(optimizer.param_groups, bases):
                    g["lr"] = b
            if per_step:
                scheduler.step()
            global_step += 1
            bs = batch["image"].shape[0]
            count += bs
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.detach() * bs
            run_total += loss.detach()
            run_n += 1
            if run_n == train_cfg.log_every:
                point = {"epoch": epoch, "step": global_step, "total": float(run_total) / run_n,
                         "lr": optimizer.param_groups[0]["lr"]}
                _check_finite(point["total"], epoch, global_step)
                history["steps"].append(point)
                if on_step:
                    on_step(point)
                bar.set_postfix(loss=f"{point['total']:.3f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
                run_total, run_n = torch.zeros((), device=device), 0
        bar.close()
        batches.close()
        train_time = time.time() - t0
        if not per_step:
            scheduler.step()

        row = {"epoch": epoch, "step": global_step, "lr": lr}
        row.update({f"train_{k}": float(v) / max(count, 1) for k, v in sums.items()})
        _check_finite(row["train_total"], epoch, global_step)  # before anything is saved
        row["train_samples_per_s"] = count / max(train_time, 1e-9)
        row["train_time_s"] = train_time
        if val_set is not None and len(val_set):
            t1 = time.time()
            res = validate(model, val_set, device, batch_size=max(train_cfg.batch_size, 32), num_workers=workers)
            for stage, m in res.items():
                for group, v in m.items():
                    row[f"val_mpjpe_{stage}_{group}" if group != "all" else f"val_mpjpe_{stage}"] = v
            row["val_time_s"] = time.time() - t1
        history["epochs"].append(row)

        final = f"val_mpjpe_stage{model.cfg.effective_stages}"
        metric, value = (final, row.get(final)) if val_set is not None else ("train_total", row["train_total"])
        best = history.get("best")
        improved = value is not None and np.isfinite(value) and (best is None or value < best["value"])
        if improved:
            history["best"] = {"epoch": epoch, "metric": metric, "value": float(value)}

        train_state = {
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "criterion": criterion.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None, "epoch": epoch, "step": global_step,
            "rng": rng_state(),
        }
        save_checkpoint(last_path, model, train_state=train_state, train_config=train_cfg.to_dict(),
                        history=_jsonable(history))
        if improved:
            save_checkpoint(best_path, model, train_config=train_cfg.to_dict(), history=_jsonable(history),
                            criterion=criterion.state_dict(), epoch=epoch, metric=metric, value=float(value))
        write_logs(history, out_dir)
        if progress if verbose is None else verbose:
            msg = f"epoch {epoch}/{train_cfg.epochs}: loss {row['train_total']:.3f}"
            if val_set is not None:
                msg += " | val MPJPE " + " ".join(
                    f"s{i + 1} {row.get(f'val_mpjpe_stage{i + 1}', float('nan')):.1f}" for i in range(model.cfg.effective_stages)
                ) + " mm"
            msg += f" | {row['train_samples_per_s']:.1f} img/s"
            tqdm.write(msg, file=sys.stdout)
            sys.stdout.flush()
        if on_epoch_end:
            on_epoch_end(history)
    return history


def _check_finite(value: float, epoch: int, step: int) -> None:
    if not math.isfinite(value):
        raise TrainingError(
            f"the loss became {value} (epoch {epoch}, by step {step}); lower the learning rate (--set lr=...) "
            f"or clip the gradients (--set grad_clip=1.0); last.pt still holds the last good epoch (--init it)"
        )


def _passes(loader, epoch_set: "EpochDataset", sampler: "EpochSampler", epoch: int):
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


class EpochSampler:
    """Random order of the training samples, a function of (seed, pass) only.

    The DataLoader's own generator is not used for the order: a persistent-worker loader
    draws from it differently than a fresh one, and a resumed run must repeat the order.
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        import torch

        g = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.n, generator=g).tolist())


class EpochDataset:
    """Wraps a training set so that its augmentation epoch reaches the DataLoader's workers.

    Persistent workers hold their own copy of the dataset; the epoch lives in a shared-memory
    tensor, so ``set_epoch`` in the main process is seen by every worker. Before each sample it
    calls the loader's ``set_epoch`` (augmentation deterministic in (seed, index, epoch)).
    """

    def __init__(self, dataset):
        import torch

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


def export_checkpoint(src, dst, half: bool = True, **info):
    """Ship a run's model: weights (float16 by default) + config + the run's train config and log.

    The optimizer and the rest of the training state are dropped; the loss's flows are kept
    (``criterion``, for fine-tuning). ``info`` is stored too (e.g. the data command). Returns the path.
    """
    from .checkpoint import load_checkpoint, save_checkpoint

    model, extra = load_checkpoint(src)
    keep = {k: extra[k] for k in ("train_config", "history", "criterion") if k in extra}
    if "train_state" in extra:  # the loss's trained flows (small), so fine-tuning can continue with them
        keep["criterion"] = extra["train_state"]["criterion"]
    return save_checkpoint(dst, model, half=half, source=str(src), **keep, **info)


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------
def add_arguments(p) -> None:
    p.add_argument("--preset", default="cpu", choices=sorted(TRAIN_PRESETS), help="training recipe (default: cpu)")
    p.add_argument("--data", required=True, help="dataset folder (InterHand2.6M format, e.g. from `h2t_lib synth`)")
    p.add_argument("--out", required=True, help="run directory: last.pt, best.pt, log.csv, log.json, loss_curve.png")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--epochs", type=int, default=None, help="number of epochs (default: the preset's)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the preset's, 0)")
    p.add_argument("--init", default=None, help="start from the weights of this checkpoint (fine-tuning)")
    p.add_argument("--model-preset", default=None, help="model preset (default: the train preset's)")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override TrainConfig fields, model.FIELD or loss.FIELD, e.g. --set lr=1e-4 model.dim=64")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's own, all cores); 1 leaves a core for other work")
    add_data_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_data_arguments(p) -> None:
    """--annot-subset and --image-check (InterHand2.6M files; docs/your_data.md), shared with eval."""
    p.add_argument("--annot-subset", default=None, metavar="NAME",
                   help="InterHand2.6M annotation folder: all | human_annot | machine_annot | v1.0 "
                        "(annotations/<split>/); default: the one folder holding the split")
    p.add_argument("--image-check", default=None, choices=("error", "warn"),
                   help="an InterHand2.6M image whose size differs from its annotation: error (default) or warn "
                        "and use it as it is")


def config_from_args(args) -> TrainConfig:
    cfg = TrainConfig.preset(args.preset)
    changes = {}
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.init is not None:
        if not Path(args.init).exists():
            raise FileNotFoundError(f"--init {args.init}: no such file")
        changes["init"] = args.init
    if args.model_preset is not None:
        changes["model_preset"] = args.model_preset
    elif args.init is not None:
        changes["model_preset"] = None  # the checkpoint's architecture, whatever it is
    for key in ("annot_subset", "image_check"):
        if getattr(args, key, None) is not None:
            changes[key] = getattr(args, key)
    cfg = dataclasses.replace(cfg, **changes)
    cfg = parse_overrides(args.overrides, cfg)
    if not cfg.init:
        cfg.model_config()  # fail now, with the config's own message, on a bad preset / field
    return cfg


def run(args) -> int:
    from .cli import UserError

    if args.resume:
        if not (Path(args.out) / "last.pt").exists():
            raise UserError(f"--resume: {Path(args.out) / 'last.pt'} does not exist; run without --resume to start")
        if args.overrides or args.init or args.model_preset or args.seed is not None:
            print("note: --resume continues with the run's stored config; --set/--init/--model-preset/--seed are ignored")
        cfg = None
    else:
        cfg = config_from_args(args)
    if args.threads is not None:
        import torch

        if args.threads < 1:
            raise UserError(f"--threads {args.threads}: give 1 or more")
        torch.set_num_threads(args.threads)
    history = train(cfg, args.data, args.out, resume=args.resume, epochs=args.epochs, device=args.device,
                    progress=not args.quiet, verbose=True)
    best = history.get("best")
    last = history["epochs"][-1] if history["epochs"] else {}
    print(f"done: {len(history['epochs'])} epochs in {args.out}; final loss {last.get('train_total', float('nan')):.4f}")
    if best:
        print(f"best: epoch {best['epoch']} {best['metric']} = {best['value']:.3f} -> {Path(args.out) / 'best.pt'}")
    return 0
