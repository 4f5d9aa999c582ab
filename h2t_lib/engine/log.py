"""A training run's log: loss sums per epoch, a point every few steps, the console, the files.

* :class:`EpochMeter` adds up one epoch's loss terms on the device (one host sync per log point, not
  per step: keeps a GPU busy), sums them over the ranks of a distributed run, and counts which
  samples the ranks saw;
* :class:`RunLog` appends the points and rows to the history and shows them: tqdm bar, one line
  per epoch, the notebook callbacks, ``log.json`` / ``log.csv`` / ``loss_curve.png``; only on rank 0.
"""
from __future__ import annotations

import csv
import math
import re
import sys
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from h2t_lib.engine import distributed
from h2t_lib.errors import TrainingError, UserError  # noqa: F401 - TrainingError raised here
from h2t_lib.utils import atomic_path, atomic_write_json, jsonable


def check_finite(value: float, epoch: int, step: int) -> None:
    """Raise :class:`TrainingError` (with the fix) when the loss ``value`` is NaN or infinite."""
    if not math.isfinite(value):
        raise TrainingError(
            f"the loss became {value} (epoch {epoch}, by step {step}); lower the learning rate (--set lr=...) "
            f"or clip the gradients (--set grad_clip=1.0); last.pt still holds the last good epoch (--init it)"
        )


class EpochMeter:
    """One epoch's sums: loss terms x batch size, samples, the running loss since the last log point.

    ``num_samples`` is the training set's length: which indices a rank saw is counted too, so the
    epoch's row says how many distinct samples were seen and (with several ranks) how many of them
    by more than one rank.
    """

    def __init__(self, device, num_samples: int, log_every: int, d: distributed.Dist):
        self.device, self.log_every, self.d = device, log_every, d
        self.sums, self.count = {}, 0
        self.run_total, self.run_n = torch.zeros((), device=device), 0
        self.seen = torch.zeros(num_samples, dtype=torch.int32)

    def add(self, terms: dict, cpu_batch: dict) -> None:
        """Add one step's loss terms (scalars on the device) and its batch's sample indices."""
        bs = cpu_batch["image"].shape[0]
        self.count += bs
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + v.detach() * bs
        self.run_total += terms["total"].detach()
        self.run_n += 1
        index = torch.as_tensor(cpu_batch["index"]).reshape(-1)
        index = index[(index >= 0) & (index < len(self.seen))]
        self.seen.index_add_(0, index, torch.ones_like(index, dtype=torch.int32))

    def due(self) -> bool:
        return self.run_n == self.log_every

    def point(self, epoch: int, step: int, lr: float) -> dict:
        """The running loss since the last point (mean over the steps and the ranks), then reset."""
        total = float(distributed.mean(self.run_total, self.d)) / self.run_n
        check_finite(total, epoch, step)
        self.run_total, self.run_n = torch.zeros((), device=self.device), 0
        return {"epoch": epoch, "step": step, "total": total, "lr": lr}

    def row(self, epoch: int, step: int, lr: float, seconds: float) -> dict:
        """The epoch's row: mean of every loss term over all samples of all ranks, speed, samples seen."""
        count = self.count
        sums = dict(self.sums)
        if self.d.enabled:  # one reduction for all terms and the count
            packed = distributed.sum_(torch.stack([*(v for v in sums.values()),
                                                   torch.tensor(float(count), device=self.device)]), self.d)
            sums = dict(zip(sums, packed[:-1]))
            count = int(packed[-1].item())
        row = {"epoch": epoch, "step": step, "lr": lr}
        row.update({f"train_{k}": float(v) / max(count, 1) for k, v in sums.items()})
        check_finite(row["train_total"], epoch, step)  # before anything is saved
        row["train_samples_per_s"] = count / max(seconds, 1e-9)
        row["train_time_s"] = seconds
        ranks = distributed.sum_((self.seen > 0).to(torch.int32), self.d, cpu=True)  # how many ranks saw each sample
        row["train_samples_seen"] = count
        row["train_samples_distinct"] = int((ranks > 0).sum())
        if self.d.enabled:
            row["train_samples_on_several_ranks"] = int((ranks > 1).sum())
        return row


class RunLog:
    """The history of a run and how it is shown; everything is a no-op off rank 0 (``main`` False).

    history: the dict :func:`h2t_lib.engine.train.train` returns (``steps``, ``epochs``, ``best``, ...).
    progress: a tqdm bar per epoch; verbose: one line per epoch (None = as ``progress``).
    on_step / on_epoch_end: the notebooks' callbacks (a step point / the whole history).
    """

    def __init__(self, history: dict, out_dir, main: bool = True, progress: bool = True,
                 verbose: Optional[bool] = None, on_step: Optional[Callable] = None,
                 on_epoch_end: Optional[Callable] = None):
        self.history, self.out_dir, self.main = history, Path(out_dir), main
        self.progress = progress and main
        self.verbose = main and (progress if verbose is None else verbose)
        self.on_step, self.on_epoch_end = on_step, on_epoch_end
        self._bar = None

    def say(self, msg: str) -> None:
        """One line on the console (rank 0, verbose)."""
        if self.verbose:
            from tqdm.auto import tqdm

            tqdm.write(msg, file=sys.stdout)
            sys.stdout.flush()

    def bar(self, steps: int, epoch: int, epochs: int):
        """``range(steps)`` with a progress bar showing the loss and the learning rate."""
        from tqdm.auto import tqdm

        self._bar = tqdm(range(steps), desc=f"epoch {epoch}/{epochs}", disable=not self.progress, leave=False,
                         dynamic_ncols=True)
        return self._bar

    def step(self, point: dict) -> None:
        """A running-loss point: into the history, to ``on_step``, on the bar."""
        if not self.main:
            return
        self.history["steps"].append(point)
        if self.on_step:
            self.on_step(point)
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{point['total']:.3f}", lr=f"{point['lr']:.2e}")

    def close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def epoch(self, row: dict, num_stages: int, validated: bool) -> None:
        """After the epoch's checkpoint: the files, the console line, ``on_epoch_end``."""
        if not self.main:
            return
        write_logs(self.history, self.out_dir)
        msg = f"epoch {row['epoch']}/{self.history['config']['epochs']}: loss {row['train_total']:.3f}"
        if validated:
            msg += " | val MPJPE " + " ".join(
                f"s{i + 1} {row.get(f'val_mpjpe_stage{i + 1}', float('nan')):.1f}" for i in range(num_stages)) + " mm"
            if "val_wrist_px" in row:  # the same with the model's own wrists
                msg += " | own wrists " + " ".join(
                    f"s{i + 1} {row.get(f'val_pred_mpjpe_stage{i + 1}', float('nan')):.1f}" for i in range(num_stages)
                ) + f" mm, wrists {row['val_wrist_px']:.1f} px"
                side = row.get("val_wrist_own_side", float("nan"))
                if side == side:  # right vs left: wrists nearer their own hand (0.5 = a coin toss)
                    msg += f", on their own hand {100 * side:.0f}%"
        self.say(msg + f" | {row['train_samples_per_s']:.1f} img/s")
        if self.on_epoch_end:
            self.on_epoch_end(self.history)


def write_logs(history: dict, out_dir) -> None:
    """log.json (everything), log.csv (one row per epoch), loss_curve.png; all written atomically."""
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "log.json", jsonable(history))
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


_STAGE_KEY = re.compile(r"val_mpjpe_stage(\d+)")


def loss_curves(steps, epochs, stages=None) -> dict:
    """The series every loss-curve drawing shows: ``{name: (xs, ys)}``, None and non-finite values left out.

    ``"train (running)"``: each step point's ``total`` against its step; ``"train (epoch mean)"``: each
    epoch row's ``train_total`` against the epoch's last step; ``"val stage i"``: each row's
    ``val_mpjpe_stage<i>`` against the epoch, for every i in ``stages`` (default: the stages the rows
    hold). steps / epochs: ``history["steps"]`` / ``history["epochs"]`` (or the points a live run got).
    :func:`plot_history` (the run folder's PNG) and ``course.loss_curve_figure`` (notebook 07's
    plotly figure) both draw these.
    """
    if stages is None:
        stages = sorted({int(m.group(1)) for r in epochs for k in r for m in [_STAGE_KEY.fullmatch(k)] if m})
    data = {"train (running)": ([p["step"] for p in steps], [p.get("total") for p in steps]),
            "train (epoch mean)": ([r["step"] for r in epochs], [r.get("train_total") for r in epochs])}
    for i in stages:
        data[f"val stage {i}"] = ([r["epoch"] for r in epochs], [r.get(f"val_mpjpe_stage{i}") for r in epochs])

    def finite(xs, ys):
        keep = [(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(float(y))]
        return [x for x, _ in keep], [float(y) for _, y in keep]

    return {name: finite(xs, ys) for name, (xs, ys) in data.items()}


def plot_history(history: dict, path=None):
    """Training loss per step and per epoch (left), validation MPJPE per stage (right), as a matplotlib
    figure of :func:`loss_curves` (written to ``path`` as a PNG when given). Returns the figure."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    curves = loss_curves(history.get("steps", []), history["epochs"])
    for name, style in (("train (running)", dict(lw=0.8, alpha=0.5)), ("train (epoch mean)", dict(marker="o"))):
        xs, ys = curves.pop(name)
        if xs:
            a1.plot(xs, ys, label=name, **style)
    a1.set_xlabel("step")
    a1.set_ylabel("loss (Eq. 21)")
    a1.set_title("training loss")
    a1.legend(fontsize=8)
    for name, (xs, ys) in curves.items():  # what is left: "val stage i"
        if xs:
            a2.plot(xs, ys, "o-", label=name.replace("val stage ", "stage"))
    a2.set_xlabel("epoch")
    a2.set_ylabel("MPJPE (mm)")
    a2.set_title("validation MPJPE (all samples)")
    if curves:
        a2.legend(fontsize=8)
    else:
        a2.text(0.5, 0.5, "no validation split", ha="center", va="center", transform=a2.transAxes)
    fig.tight_layout()
    if path is not None:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
    return fig
