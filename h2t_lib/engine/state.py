"""What a training run is made of and how it is kept: model, loss (with its flows), optimizer, history.

* :func:`start_run`: a fresh run (optionally from ``init`` weights, fine-tuning) or one resumed from
  ``last.pt``;
* :func:`save_epoch`: ``last.pt`` (everything needed to continue: weights, optimizer, scheduler, the
  loss's flows, the AMP scaler, RNG states, the history) and, when the epoch is the best so far,
  ``best.pt`` (weights, flows, history);
* :func:`export_checkpoint`: a run's model as a small file to ship.

The checkpoint format is :mod:`h2t_lib.engine.checkpoint`'s; a distributed run stores the bare model
(not its DistributedDataParallel wrapper), so its files load like any other.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from h2t_lib.engine.config import TrainConfig
from h2t_lib.utils import seed_everything


#: the files a run writes into its folder; the first three are its results
RUN_FILES = ("last.pt", "best.pt", "log.json", "log.csv", "loss_curve.png")


def prepare_run_dir(out_dir, resume: bool, overwrite: bool, main: bool = True) -> None:
    """Check the run folder before any work: writable, and not another run's unless told what to do.

    A folder holding ``last.pt``, ``best.pt`` or ``log.json`` is refused unless ``resume`` (continue
    that run) or ``overwrite`` (its files are deleted here, on the ``main`` rank). The temporary files
    a killed write left (``.last.pt.*.tmp``, ...) are removed. Raises :class:`h2t_lib.errors.UserError`
    (one line, exit 2 in the CLI).
    """
    from h2t_lib.errors import UserError
    from h2t_lib.utils import check_writable, remove_stale_tmp

    out_dir = check_writable(out_dir, folder=True)
    if resume and overwrite:
        raise UserError("--resume continues the run in the folder, --overwrite replaces it: give one of them")
    earlier = [name for name in RUN_FILES[:3] if (out_dir / name).exists()]
    if earlier and not (resume or overwrite):
        raise UserError(f"{out_dir} holds another run's results ({', '.join(earlier)}); continue it with --resume "
                        f"(resume=True), replace it with --overwrite (overwrite=True), or choose another --out")
    if main:
        remove_stale_tmp(out_dir, RUN_FILES)
        if overwrite:
            for name in RUN_FILES:
                (out_dir / name).unlink(missing_ok=True)


@dataclass
class Run:
    """A run's training objects and where it stands (``epoch`` = the last finished one, 0 when fresh)."""

    cfg: TrainConfig
    model: torch.nn.Module
    criterion: torch.nn.Module
    optimizer: torch.optim.Optimizer
    history: dict
    epoch: int = 0
    step: int = 0
    state: Optional[dict] = None  # last.pt's train_state when resumed (scheduler, scaler)


def start_run(train_cfg: Optional[TrainConfig], out_dir, resume: bool, epochs: Optional[int], device) -> Run:
    """A fresh run from ``train_cfg`` or, with ``resume``, the run in ``out_dir/last.pt`` (its stored config).

    ``epochs`` overrides the number of epochs. Raises FileNotFoundError / ValueError (one line) when
    there is nothing to resume or no config to start from.
    """
    from h2t_lib.engine.checkpoint import load_checkpoint

    last_path = Path(out_dir) / "last.pt"
    if not resume:
        if train_cfg is None:
            raise ValueError("train(): a TrainConfig is needed to start a run (only resume=True can do without)")
        if epochs is not None:
            train_cfg = dataclasses.replace(train_cfg, epochs=epochs)
        model, criterion, optimizer = build(train_cfg, device)
        history = {"config": train_cfg.to_dict(), "model_config": model.cfg.to_dict(), "epochs": [], "steps": [],
                   "best": None}
        return Run(train_cfg, model, criterion, optimizer, history)
    if not last_path.exists():
        raise FileNotFoundError(f"--resume: {last_path} does not exist (nothing to continue); drop --resume to start")
    model, extra = load_checkpoint(last_path, map_location="cpu")
    state = extra.get("train_state")
    if state is None:
        raise ValueError(f"{last_path} holds weights but no training state; it cannot be resumed")
    train_cfg = TrainConfig.from_dict(extra["train_config"])
    if "precision" not in extra["train_config"]:  # saved before the choice: fp32 on a CPU, mixed on CUDA, as it ran
        train_cfg = dataclasses.replace(train_cfg, precision="fp32" if torch.device(device).type == "cpu" else "auto")
    if epochs is not None:
        train_cfg = dataclasses.replace(train_cfg, epochs=epochs)
    # rebuild the training objects around the loaded model, then load their states
    criterion = _criterion(model, train_cfg, device)
    criterion.load_state_dict(state["criterion"])
    optimizer = _optimizer(model, criterion, train_cfg)
    optimizer.load_state_dict(state["optimizer"])
    history = extra["history"]
    history["config"] = train_cfg.to_dict()
    set_rng_state(state["rng"])
    return Run(train_cfg, model, criterion, optimizer, history, int(state["epoch"]), int(state["step"]), state)


def build(train_cfg: TrainConfig, device):
    """(model, criterion, optimizer) of a fresh run, on ``device``; weights from ``train_cfg.init`` if set."""
    from h2t_lib.engine.checkpoint import load_checkpoint
    from h2t_lib.model import Handformer2T

    seed_everything(train_cfg.seed)
    if train_cfg.init:
        # Fine-tuning: the architecture is the checkpoint's. With a model preset named, the
        # checkpoint must match it (load_checkpoint says which fields differ).
        expected = train_cfg.model_config() if train_cfg.model_preset else None
        model, init_extra = load_checkpoint(train_cfg.init, map_location="cpu", expected_config=expected)
        if train_cfg.model and expected is None:
            model = _with_changes(model, train_cfg.model, train_cfg.init)
        model.float()
    else:
        init_extra = {}
        if not train_cfg.model_preset:
            raise ValueError("TrainConfig.model_preset is empty: name a model preset (or set init= a checkpoint)")
        model = Handformer2T(train_cfg.model_config())
        if train_cfg.init_backbone:
            load_backbone(model, train_cfg.init_backbone)
    criterion = _criterion(model, train_cfg, device)
    # Fine-tuning continues with the checkpoint's trained flows (Eq. 19) when it carries them:
    # fresh flows would make the first steps' likelihood, and its gradients, meaningless.
    flows = init_extra.get("criterion") or (init_extra.get("train_state") or {}).get("criterion")
    if flows is not None:
        try:  # non-strict: a training-only term the checkpoint did not have (heatmap heads) starts fresh
            missing, unexpected = criterion.load_state_dict(flows, strict=False)
        except RuntimeError:
            missing, unexpected = ["flows"], []
        if unexpected or any(k.startswith("flows.") for k in missing):
            print(f"note: the flows stored in {train_cfg.init} do not fit this loss config; starting with fresh flows")
    return model, criterion, _optimizer(model, criterion, train_cfg)


def load_backbone(model, path) -> int:
    """Copy the backbone's weights (``extractor.backbone.*``) of the checkpoint at ``path`` into ``model``.

    Ours: a ResNet usually starts from pretrained (e.g. ImageNet) weights (the paper does not say what its
    ResNet starts from), and nothing can be downloaded here; a backbone trained by
    this project stands in for it (``TrainConfig.init_backbone``; the ablations use it). Returns the number
    of tensors copied. Raises ValueError (one line) when the backbones differ in shape.
    """
    from h2t_lib.engine.checkpoint import load_checkpoint

    src, _ = load_checkpoint(path, map_location="cpu")
    prefix = "extractor.backbone."
    theirs = {k: v for k, v in src.state_dict().items() if k.startswith(prefix)}
    ours = {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}
    bad = sorted(k for k in ours if k not in theirs or theirs[k].shape != ours[k].shape)
    if bad or not ours:
        raise ValueError(f"init_backbone {path}: its backbone ({src.cfg.backbone}, levels {src.cfg.used_levels()}) does "
                         f"not fit this model's ({model.cfg.backbone}): {bad[:1]} differs; use a checkpoint of the same backbone")
    model.load_state_dict({**model.state_dict(), **{k: theirs[k].to(ours[k].dtype) for k in ours}})
    return len(ours)


def _criterion(model, train_cfg: TrainConfig, device):
    """The loss of Eq. 21 for ``model``; puts the model (channels-last) and the loss on ``device``."""
    from h2t_lib.losses import Handformer2TLoss

    criterion = Handformer2TLoss(model.cfg, train_cfg.loss_config())
    model.to(device, memory_format=torch.channels_last)  # NHWC convolutions: ~15% faster on CPU
    return criterion.to(device)


def _optimizer(model, criterion, train_cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam over the model's and the loss's (flows') trainable parameters."""
    params = [p for p in list(model.parameters()) + list(criterion.parameters()) if p.requires_grad]
    return torch.optim.Adam(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)


#: architecture fields ``--init`` may change: they add modules (or restart a head) without changing what the
#: checkpoint's weights mean; refine_residual only from False to True
GROWABLE_FIELDS = ("wrist_head", "wrist_width", "refine_residual", "hand_presence")


def _with_changes(model, overrides: dict, path):
    """The ``--init`` model with ``model.FIELD`` overrides: runtime fields (``RUNTIME_FIELDS``) or the
    :data:`GROWABLE_FIELDS` (e.g. ``wrist_head="heatmap"``): the checkpoint's config changed by them, every
    weight whose name and shape the checkpoint has taken from it, the rest fresh (a note names them). Turning
    ``refine_residual`` on restarts the refiner heads' coordinate outputs near zero, since the loaded ones
    predict the pose, not a change of it. Raises ValueError (one line) for any other architecture field
    (its weights would change meaning) and for an invalid config."""
    from h2t_lib.model.config import RUNTIME_FIELDS
    from h2t_lib.model import Handformer2T

    old = model.cfg
    fixed = sorted(k for k in overrides if k not in RUNTIME_FIELDS + GROWABLE_FIELDS)
    if fixed or (old.refine_residual and overrides.get("refine_residual") is False):
        what = fixed or ["refine_residual=False (its heads predict a change of the pose)"]
        raise ValueError(f"model overrides {what} change what the weights of --init {path} mean ({old.name}); "
                         f"only {', '.join(GROWABLE_FIELDS)} and runtime fields may change: drop them or train "
                         f"from scratch without --init")
    try:
        cfg = dataclasses.replace(old, **overrides)
    except (TypeError, ValueError) as e:
        raise ValueError(f"--init {path} with model overrides {overrides}: {e}") from None
    if cfg.arch_dict() == old.arch_dict():
        model.cfg = cfg  # runtime fields only (root_source, dropout, ...)
        return model
    grown = Handformer2T(cfg)
    theirs, ours = model.state_dict(), grown.state_dict()
    taken = {k: v.to(ours[k].dtype) for k, v in theirs.items() if k in ours and v.shape == ours[k].shape}
    grown.load_state_dict({**ours, **taken})
    fresh = sorted({k.rsplit(".", 2)[0] for k in ours if k not in taken})
    if cfg.refine_residual and not old.refine_residual:
        for stage in grown.stages[1:]:
            stage.zero_init_delta()
        fresh.append("refiner heads' coordinate outputs (refine_residual)")
    print(f"note: --init {path} with {overrides}: new or reshaped weights start fresh: {', '.join(fresh) or 'none'}")
    return grown


def save_epoch(run: Run, out_dir, epoch: int, step: int, scheduler, scaler_state, improved: bool, best: dict) -> None:
    """``last.pt`` with the full training state after ``epoch``; ``best.pt`` too when ``improved``.

    ``best``: the history's {"epoch", "metric", "value"} of the best epoch. Both files written atomically.
    """
    from h2t_lib.engine.checkpoint import save_checkpoint
    from h2t_lib.utils import jsonable

    out_dir = Path(out_dir)
    train_state = {
        "optimizer": run.optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "criterion": run.criterion.state_dict(), "scaler": scaler_state, "epoch": epoch, "step": step,
        "rng": rng_state(),
    }
    cfg = run.cfg.to_dict()
    save_checkpoint(out_dir / "last.pt", run.model, train_state=train_state, train_config=cfg,
                    history=jsonable(run.history))
    if improved:
        save_checkpoint(out_dir / "best.pt", run.model, train_config=cfg, history=jsonable(run.history),
                        criterion=run.criterion.state_dict(), epoch=epoch, metric=best["metric"], value=best["value"])


def rng_state() -> dict:
    """The python, numpy, torch generators' states and, where CUDA is, the current GPU's (a list of one
    ByteTensor; the other GPUs are left alone: reading them would open a context on each), saved in last.pt."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = [torch.cuda.get_rng_state()]
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved. The CUDA part goes to the current GPU, and only where CUDA is:
    a file from a machine with more GPUs (older files hold one state per GPU) resumes on one GPU or on
    the CPU. Every epoch re-seeds all generators from (seed, epoch) anyway (``train``)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"][0])


def export_checkpoint(src, dst, half: bool = True, **info):
    """Ship a run's model: weights (float16 by default) + config + the run's train config and log.

    The optimizer and the rest of the training state are dropped; the loss's flows are kept
    (``criterion``, for fine-tuning). ``info`` is stored too (e.g. the data command). Returns the path.
    """
    from h2t_lib.engine.checkpoint import load_checkpoint, save_checkpoint

    model, extra = load_checkpoint(src)
    keep = {k: extra[k] for k in ("train_config", "history", "criterion") if k in extra}
    if "train_state" in extra:  # the loss's trained flows (small), so fine-tuning can continue with them
        keep["criterion"] = extra["train_state"]["criterion"]
    return save_checkpoint(dst, model, half=half, source=str(src), **keep, **info)
