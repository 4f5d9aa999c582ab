"""Training: ``python -m h2t_lib train --preset NAME --data DIR --out RUN_DIR``.

The paper's recipe (Sec. 4.1, "Implementation details"): Adam, learning rate 1e-3, step
decay every 80 epochs by a factor of 4, 270 epochs, 256x256 crops with InterNet's
augmentation (scale, rotation, colour jitter, horizontal flip with the hands swapped).
The loss is Eq. 21: the RLE term of every stage (one flow each, Eq. 19) plus 10 x the MMD
of the coarse stage (Eq. 20), plus our wrist term (see :mod:`h2t_lib.losses`). The config and
its presets ("paper", "cpu", "tiny") are in :mod:`h2t_lib.engine.config`.

A run directory holds ``last.pt`` (everything needed to continue: weights, optimizer,
scheduler, the loss's flows, RNG states, the log so far), ``best.pt`` (weights of the
epoch with the lowest validation MPJPE), ``log.csv`` / ``log.json`` (one row per epoch)
and ``loss_curve.png``. The folder is checked for writing before any work; one that holds
another run's results is refused unless ``--resume`` or ``--overwrite`` says what to do.
``--resume`` continues from ``last.pt`` and gives, on CPU, the very numbers an uninterrupted
run gives, learning rate included (every schedule): every epoch re-seeds all random generators
from ``(seed, epoch)``, and the shuffling order and the augmentation (drawn per sample
from ``(seed, index, epoch)`` by the loaders) do not depend on what ran before, nor on
the number of DataLoader workers.

At scale (README, "Real data and a GPU"; docs/scale.md):

* ``torchrun --nproc_per_node N -m h2t_lib train ...`` trains with DistributedDataParallel, one
  process per GPU (NCCL; gloo on CPU): ``batch_size`` is per process, the global batch N times it;
  the ranks share each epoch's order (:class:`h2t_lib.data.loading.EpochSampler`); rank 0 alone
  validates and writes the run folder.
* ``--render`` renders every training sample when the loader asks for it
  (:class:`h2t_lib.data.stream.SynthStream`): no folder of images, a new image every epoch.
* ``--time-budget MINUTES`` stops taking steps in time for a last validation and ``last.pt``, the
  learning rate warmed up and annealed over the budget (``lr_over_budget``).

The loop below is the whole of training; the pieces around it are named: :func:`start_run`
(model, loss, optimizer, fresh or resumed), :func:`training_data` (datasets and loader),
:class:`TrainStep` and :class:`MixedPrecision` (forward + loss, AMP), :mod:`h2t_lib.engine.distributed`,
:class:`h2t_lib.engine.log.EpochMeter` / :class:`~h2t_lib.engine.log.RunLog` (logging),
:func:`end_epoch` (validation, best epoch, checkpoints), :class:`TimeBudget`.

Python API (notebooks)::

    from h2t_lib.engine.train import TrainConfig, train
    history = train(TrainConfig.preset("tiny"), "data/synth", "runs/tiny",
                    on_epoch_end=lambda h: print(h["epochs"][-1]))
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from h2t_lib.engine import distributed
from h2t_lib.errors import UserError
from h2t_lib.data.loading import (EpochDataset, EpochSampler, auto_workers, available_splits,  # noqa: F401
                                  epoch_seed, make_loader, open_dataset, passes, pick_val_split, subset, to_device)
from h2t_lib.engine.evaluate import validate
from h2t_lib.model.batch import forward, gt_roots  # noqa: F401
from h2t_lib.engine.config import (LR_SCHEDULES, TRAIN_DATA, TRAIN_PRESETS, TrainConfig, _scaled_step,  # noqa: F401
                                   budget_scheduler, lr_factor, make_scheduler, parse_overrides, warmup)
from h2t_lib.engine.log import EpochMeter, RunLog, TrainingError, plot_history, write_logs  # noqa: F401
from h2t_lib.engine.state import (Run, export_checkpoint, prepare_run_dir, rng_state, set_rng_state,  # noqa: F401
                                  start_run, save_epoch)
from h2t_lib.utils import autocast, resolve_device, resolve_precision, seed_everything, shown_path  # noqa: F401


# ---------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------
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
    time_budget: Optional[float] = None,
    overwrite: bool = False,
    workers: Optional[int] = None,
) -> dict:
    """Train (or, with ``resume``, continue) a run; return the history.

    Args:
        train_cfg: the run's :class:`TrainConfig`. Ignored with ``resume`` (may be None there):
            the config stored in ``last.pt`` is used.
        data_dir: a dataset folder with a ``train`` split (and optionally ``test``/``val``); with
            ``train_data="render"`` only the validation split is read from it, and it may be None.
        out_dir: the run directory (created). One that holds another run's results (last.pt, best.pt,
            log.json) is refused unless ``resume`` or ``overwrite``.
        resume: continue from ``out_dir/last.pt`` (no epoch lost after a kill).
        epochs: override the number of epochs (e.g. to train a finished run longer).
        device: "auto" (CUDA when present), "cpu", "cuda", "cuda:1", ...; under torchrun each
            process takes ``cuda:LOCAL_RANK``.
        progress: show a tqdm bar with the loss and the learning rate.
        verbose: print one summary line per epoch (default: as ``progress``).
        on_epoch_end: called with the history after every epoch (live plots in notebooks).
        on_step: called with ``{"epoch", "step", "total", "lr"}`` after every logged step.
        time_budget: minutes of wall-clock for this call; the steps stop in time for the epoch's
            validation and checkpoint (``history["stopped"]`` says where). None = no limit.
        overwrite: start afresh in a folder that holds another run: its files are deleted first.
        workers: DataLoader workers for this call, overriding the config's ``num_workers`` (also on
            resume: like the thread count it changes the speed, not the numbers, as the order and the
            augmentation are functions of (seed, epoch, pass)). None = the config's.

    Returns:
        ``{"config": TrainConfig as dict, "model_config": dict, "epochs": [one dict per epoch],
        "steps": [running loss every log_every steps], "best": {"epoch", "metric", "value"},
        "data": {...}, "world_size", "batch_per_process", "global_batch", ("stopped": {...})}``.

    Raises:
        FileNotFoundError / ValueError / UserError (one line in the CLI) on bad input, an output folder
        that cannot be written or holds another run (checked before any work), a failed write;
        :class:`TrainingError` when the loss stops being finite.

    Used in notebook 07.
    """
    budget = TimeBudget(time_budget)
    with distributed.session(device) as d:
        prepare_run_dir(out_dir, resume, overwrite, d.main)
        run = start_run(train_cfg, out_dir, resume, epochs, d.device)
        cfg, model, optimizer = run.cfg, run.model, run.optimizer
        if workers is not None:
            if workers < 0:
                raise UserError(f"workers={workers}: give 0 (load in the training process) or more")
            cfg = dataclasses.replace(cfg, num_workers=workers)
        data = training_data(cfg, data_dir, model.cfg.image_size, d)
        amp = MixedPrecision(cfg, d.device, run.state)
        step = distributed.wrap(TrainStep(model, run.criterion, amp.dtype, cfg.pred_root_frac, cfg.root_noise_px), d,
                                find_unused=run.step < run.criterion.loss_cfg.l1_warmup_steps)  # the flows wait in the L1 warm-up
        state = None if run.state is None else run.state["scheduler"]  # resume: the schedule where it was
        scheduler, per_step = budget.scheduler(optimizer, cfg) or make_scheduler(optimizer, cfg, data.steps_per_epoch, state)
        run.history.update(data=data.summary, world_size=d.world_size, batch_per_process=cfg.batch_size,
                           global_batch=cfg.batch_size * d.world_size, precision=amp.name)
        log = RunLog(run.history, out_dir, d.main, progress, verbose, on_step, on_epoch_end)
        if d.main:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        log.say(f"training on {d.device} x {d.world_size} process(es) in {amp.name}: batch {cfg.batch_size} per process, "
                f"global batch {cfg.batch_size * d.world_size}; {data.describe}")
        params = [p for g in optimizer.param_groups for p in g["params"]]
        global_step = run.step

        for epoch in range(run.epoch + 1, cfg.epochs + 1):
            # Every epoch starts from generators seeded by (seed, epoch): resume repeats it exactly.
            seed_everything(epoch_seed(cfg.seed, epoch) + d.rank)
            batches = passes(data.loader, data.epoch_set, data.sampler, epoch)
            step.train()
            meter = EpochMeter(d.device, len(data.train_set), cfg.log_every, d)
            lr, t0 = optimizer.param_groups[0]["lr"], time.time()
            for _ in log.bar(data.steps_per_epoch, epoch, cfg.epochs):
                cpu_batch = next(batches)
                terms = step(to_device(cpu_batch, d.device), global_step)  # forward + loss (mixed precision on CUDA)
                optimizer.zero_grad(set_to_none=True)
                amp.backward(terms["total"], optimizer)  # gradients averaged over the ranks (DDP)
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                with warmup(optimizer, global_step, cfg, per_step):
                    amp.step(optimizer)
                if per_step:
                    scheduler.step()
                global_step += 1
                meter.add(terms, cpu_batch)
                if meter.due():
                    log.step(meter.point(epoch, global_step, optimizer.param_groups[0]["lr"]))
                if budget.spent(d):
                    break
            log.close_bar()
            batches.close()
            if not per_step:
                scheduler.step()
            row = meter.row(epoch, global_step, lr, time.time() - t0)
            end_epoch(run, row, data, d, out_dir, scheduler, amp, budget, log)
            if budget.stopped:
                break
        distributed.barrier(d)  # nobody leaves before rank 0 has written the last files
    return run.history


# ---------------------------------------------------------------------------
# the named pieces around it
# ---------------------------------------------------------------------------
class TrainStep(torch.nn.Module):
    """The model and its loss as one module, batch -> loss terms, so that DistributedDataParallel averages
    the gradients of both (the loss's flows are trained too). Runs the model under autocast with
    ``amp_dtype`` (None: float32) and the loss in float32."""

    def __init__(self, model, criterion, amp_dtype=None, pred_root_frac: float = 0.0, root_noise_px: float = 0.0):
        super().__init__()
        self.model, self.criterion, self.amp_dtype = model, criterion, amp_dtype
        self.pred_root_frac = pred_root_frac  # TrainConfig.pred_root_frac (ours): KGFF with predicted wrists
        self.root_noise_px = root_noise_px  # TrainConfig.root_noise_px (ours): KGFF with wrists moved in 2D

    def forward(self, batch: dict, global_step: int | None = None) -> dict:
        """batch: the loaders' sample dict on the device; global_step: the optimiser step (the loss's
        L1 warm-up reads it). Returns the loss terms ({"total", ...}, scalars)."""
        with autocast(batch["image"].device, self.amp_dtype):
            out = forward(self.model, batch, pred_root_frac=self.pred_root_frac, root_noise_px=self.root_noise_px)
        out = {k: ([t.float() for t in v] if isinstance(v, list) else v.float()) for k, v in out.items()}
        return self.criterion(out, batch, global_step)  # the flows and the likelihoods in float32


class MixedPrecision:
    """The run's autocast precision (``TrainConfig.precision``, :func:`h2t_lib.utils.resolve_precision`):
    bf16 on CUDA where the GPU has it, else fp16 with a GradScaler (its state restored from
    ``state["scaler"]`` on resume); bf16 on a CPU that computes it natively, else float32. ``name`` is
    what the log records ("fp32", "bf16", "fp16"); the loss and the flows always run in float32."""

    def __init__(self, cfg: TrainConfig, device, state: Optional[dict] = None):
        precision = cfg.precision if cfg.amp else "fp32"
        self.name, self.dtype = resolve_precision(precision, device)
        self.scaler = None
        if self.dtype == torch.float16:
            self.scaler = torch.amp.GradScaler("cuda")
            if state is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])

    def backward(self, loss, optimizer) -> None:
        """Gradients of ``loss``, unscaled (ready for clipping)."""
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(optimizer)
        else:
            loss.backward()

    def step(self, optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()

    def state_dict(self) -> Optional[dict]:
        return self.scaler.state_dict() if self.scaler is not None else None


class TimeBudget:
    """``minutes`` of wall-clock from its creation (None: no limit). :meth:`spent` turns true, on every
    rank at the same step, when the time left is less than what the last epoch's end (validation,
    checkpoint, logs) took, so the run ends near the budget with both; the first epoch's end is not
    known in advance and may run over. At least one step is taken.

    With ``cfg.lr_over_budget`` the learning rate follows the budget (:meth:`scheduler`): warm-up, then
    a cosine that ends where the steps stop."""

    def __init__(self, minutes: Optional[float]):
        if minutes is not None and not minutes > 0:
            raise ValueError(f"--time-budget {minutes}: give a positive number of minutes")
        self.minutes, self.start, self.reserve, self.stopped = minutes, time.monotonic(), 0.0, False
        self.used = 0.0  # the share of the steps' time used at the last check, agreed by the ranks

    def spent(self, d: distributed.Dist) -> bool:
        if self.minutes is None:
            return False
        # every rank takes the largest elapsed time and reserve, so all stop at one step with one lr
        elapsed, reserve = distributed.max_([time.monotonic() - self.start, self.reserve], d)
        steps_time = 60.0 * self.minutes - reserve
        self.used = min(1.0, elapsed / steps_time) if steps_time > 0 else 1.0
        self.stopped = elapsed + reserve >= 60.0 * self.minutes
        return self.stopped

    def scheduler(self, optimizer, cfg: TrainConfig):
        """(the budget's lr scheduler, per_step=True) with a budget and ``cfg.lr_over_budget``, else None:
        lr x :func:`~h2t_lib.engine.config.budget_lr_factor` of the share used, in place of ``lr_schedule``."""
        if self.minutes is None or not cfg.lr_over_budget:
            return None
        return budget_scheduler(optimizer, lambda: self.used, cfg.min_lr_frac), True


@dataclass
class TrainingData:
    """The training set and its loader (this rank's share), the validation set, what the log says of them."""

    train_set: object
    val_set: object
    loader: object
    epoch_set: EpochDataset
    sampler: EpochSampler
    steps_per_epoch: int
    workers: int
    summary: dict
    describe: str


def training_data(cfg: TrainConfig, data_dir, image_size: int, d: distributed.Dist) -> TrainingData:
    """Open the training and validation sets and build the loader (one for the whole run: its workers persist).

    ``cfg.train_data`` "folder": the ``train_split`` of ``data_dir``; "render": ``render_samples`` synthetic
    samples per epoch rendered in the loader's workers (:class:`~h2t_lib.data.stream.SynthStream`). The
    validation split comes from ``data_dir`` (``val_split``, "auto" = test or val); rendering without a
    folder validates on ``max_val_samples`` (256 when 0) fixed rendered samples.
    Raises ValueError / FileNotFoundError (one line) for a missing folder or an empty split.
    """
    files = {"annot_subset": cfg.annot_subset, "image_check": cfg.image_check}
    if cfg.train_data == "render":
        from h2t_lib.data.stream import SynthStream

        n = min(cfg.render_samples, cfg.max_train_samples or cfg.render_samples)
        group = cfg.render_reuse  # a multiple of it per epoch: each render's samples stay together
        n = max(group, n // group * group)
        train_set = SynthStream(n, image_size, seed=cfg.seed, render_size=cfg.render_size or None,
                                augment=cfg.augment, split=cfg.train_split, style=cfg.render_style, reuse=group)
        source = (f"{n} samples rendered on the fly per epoch ({train_set.render_size} px images"
                  + (f", {group} augmentations of each render)" if group > 1 else ")"))
    else:
        group = 1
        if data_dir is None:
            raise ValueError("no training data: give --data DIR (a dataset folder), or --render to render "
                             "synthetic samples on the fly")
        train_set = subset(open_dataset(data_dir, cfg.train_split, image_size, augment=cfg.augment, seed=cfg.seed,
                                        **files), cfg.max_train_samples)
        source = f"{len(train_set)} samples of {shown_path(data_dir)} [{cfg.train_split}]"
        if len(train_set) == 0:
            raise ValueError(f"the {cfg.train_split!r} split of {data_dir} is empty")
    val_name, val_set = None, None
    if data_dir is not None:
        val_name = pick_val_split(data_dir, cfg.val_split, cfg.train_split, cfg.annot_subset)
        if val_name:
            val_set = subset(open_dataset(data_dir, val_name, image_size, augment=False, **files), cfg.max_val_samples)
    elif cfg.train_data == "render" and cfg.val_split:
        from h2t_lib.data.stream import SynthStream

        val_name = "rendered"
        val_set = SynthStream(cfg.max_val_samples or 256, image_size, seed=cfg.seed, render_size=cfg.render_size or None,
                              augment=False, split="val", fixed_epoch=0, style=cfg.render_style)
    workers = (auto_workers(d.device, cfg.train_data == "render", d.local_world_size) if cfg.num_workers < 0
               else cfg.num_workers)
    # the shuffling order and the augmentation are functions of (seed, epoch, pass), set at the start of every pass
    sampler = EpochSampler(len(train_set), cfg.seed, d.rank, d.world_size, group=group)
    epoch_set = EpochDataset(train_set)
    loader = make_loader(epoch_set, cfg.batch_size, False, d.device, workers, sampler=sampler,
                         drop_last=len(sampler) >= 2 * cfg.batch_size)
    summary = {"dir": None if data_dir is None else str(data_dir), "train_data": cfg.train_data,
               "train_split": cfg.train_split, "train_samples": len(train_set), "val_split": val_name,
               "val_samples": len(val_set) if val_set is not None else 0, "workers": workers}
    # one pass over the training set per epoch, or a fixed number of steps (cycling the data)
    return TrainingData(train_set, val_set, loader, epoch_set, sampler, cfg.steps_per_epoch or len(loader), workers,
                        summary, f"{source}, {workers} loader workers per process")


#: what validate(wrists=True) adds to the per-stage MPJPE: the wrists' 2D error, then the right-vs-left shares
WRIST_KEYS = ("wrist_px", "wrist_own_side", "hand_named")


def end_epoch(run: Run, row: dict, data: TrainingData, d: distributed.Dist, out_dir, scheduler,
              amp: MixedPrecision, budget: TimeBudget, log: RunLog) -> None:
    """After an epoch's steps: validation (rank 0), the best epoch, last.pt / best.pt, the logs."""
    t0 = time.time()
    model, history = run.model, run.history
    if d.main and data.val_set is not None and len(data.val_set):
        kw = dict(batch_size=max(run.cfg.batch_size, 32), num_workers=data.workers, precision=amp.name)
        own_only = model.cfg.root_source == "pred"  # then the first validation is already with its own wrists
        res = validate(model, data.val_set, d.device, wrists=own_only, **kw)  # the model's root_source
        wrists = {k: res.pop(k) for k in WRIST_KEYS if k in res}  # the rest of res: one dict per stage
        for stage, m in res.items():
            for group, v in m.items():
                row[f"val_mpjpe_{stage}_{group}" if group != "all" else f"val_mpjpe_{stage}"] = v
        own = res if own_only else validate(model, data.val_set, d.device, root_source="pred", wrists=True, **kw)
        wrists.update({k: own.pop(k) for k in WRIST_KEYS if k in own})
        row["val_wrist_px"] = wrists["wrist_px"]
        # right vs left (evaluate.handedness_stats) where measured: a NaN would make a resumed log differ from itself
        row.update({f"val_{k}": wrists[k] for k in WRIST_KEYS[1:] if np.isfinite(wrists[k])})
        row.update({f"val_pred_mpjpe_{stage}": m["all"] for stage, m in own.items()})
        row["val_time_s"] = time.time() - t0
    history["epochs"].append(row)
    final = f"val_mpjpe_stage{model.cfg.effective_stages}"
    metric, value = (final, row.get(final)) if data.val_set is not None else ("train_total", row["train_total"])
    best = history.get("best")
    improved = value is not None and np.isfinite(value) and (best is None or value < best["value"])
    if improved:
        history["best"] = {"epoch": row["epoch"], "metric": metric, "value": float(value)}
    if budget.stopped:
        history["stopped"] = {"reason": "time budget", "minutes": budget.minutes, "epoch": row["epoch"],
                              "step": row["step"]}
        log.say(f"time budget of {budget.minutes:g} min reached at step {row['step']} (epoch {row['epoch']}): "
                f"stopping with a checkpoint and its validation")
    if d.main:
        save_epoch(run, out_dir, row["epoch"], row["step"], scheduler, amp.state_dict(), improved, history["best"])
    log.epoch(row, model.cfg.effective_stages, data.val_set is not None)
    budget.reserve = time.time() - t0
