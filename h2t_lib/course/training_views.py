"""Notebook 07's views: learning you can watch.

* :func:`overfit_batch`: the classic first check of any training set-up (Karpathy's "overfit one batch"):
  a fresh model trained on the same few images again and again must drive their error towards zero;
  if it cannot, something in the data, the model or the loss is broken;
* :func:`before_after_figure`: one of those images with the ground truth and the prediction before and
  after, ground truth in one colour, the prediction in the hands' finger colours.
"""
from __future__ import annotations

import numpy as np

from h2t_lib.viz.skeleton2d import GT_COLORS

__all__ = ["before_after_figure", "final_stage", "final_stage_error_mm", "fixed_batch", "overfit_batch"]


def fixed_batch(dataset, n: int = 8, seed: int = 0) -> dict:
    """``n`` samples of ``dataset`` (drawn with ``seed``, without replacement) stacked into one batch,
    as the training loader stacks them (default collate).

    Raises ValueError when the dataset has fewer than ``n`` samples.

    Used in notebook 07.
    """
    import torch
    from torch.utils.data import default_collate

    if len(dataset) < n:
        raise ValueError(f"fixed_batch: the dataset has {len(dataset)} samples, fewer than n = {n}")
    rows = np.random.default_rng(seed).choice(len(dataset), size=n, replace=False)
    batch = default_collate([dataset[int(i)] for i in rows])
    batch["row"] = torch.as_tensor(rows)
    return batch


def final_stage(model, batch):
    """(B, 42, 3) root-relative mm: the final stage's pose for ``batch``, ground-truth wrists for KGFF, the
    model in eval mode (its mode is restored)."""
    import torch

    from h2t_lib.model.batch import forward

    was_training = model.training
    model.eval()
    with torch.no_grad():
        p = forward(model, batch, root_source="gt")["p"][-1]
    model.train(was_training)
    return p


def final_stage_error_mm(model, batch) -> np.ndarray:
    """(B,) mean root-relative joint error (mm, over the valid joints) of :func:`final_stage` per sample
    (:func:`h2t_lib.metrics.per_sample_errors`)."""
    from h2t_lib.metrics import per_sample_errors

    return per_sample_errors(final_stage(model, batch).numpy(), batch["joints_cam"].numpy(),
                             batch["joint_valid"].numpy())


def overfit_batch(batch: dict, model_preset: str = "tiny", steps: int = 200, lr: float = 1e-3, seed: int = 0,
                  log_every: int = 10, on_log=None) -> dict:
    """Train a fresh ``model_preset`` Handformer2T on one fixed ``batch`` for ``steps`` Adam steps.

    The step is the library's (:class:`h2t_lib.engine.train.TrainStep`: the whole loss of Eq. 21 plus
    our wrist term, KGFF with the ground-truth wrists). Every ``log_every`` steps it logs the batch's
    training loss and its final-stage error in eval mode (:func:`final_stage_error_mm`), and calls
    ``on_log(row)`` (e.g. to redraw a live figure).

    Returns {"model": the model in eval mode, "history": [{"step", "loss", "error_mm"}] (step 0 = before
    training), "before" / "after": (B, 42, 3) :func:`final_stage` poses before the first step and after
    the last}. Raises ValueError for ``steps < 1``.

    Used in notebook 07.
    """
    import torch

    from h2t_lib.engine.train import TrainStep
    from h2t_lib.losses import Handformer2TLoss, LossConfig
    from h2t_lib.model import Handformer2T
    from h2t_lib.model.config import ModelConfig
    from h2t_lib.utils import seed_everything

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    seed_everything(seed)
    cfg = ModelConfig.preset(model_preset)
    model = Handformer2T(cfg).to(memory_format=torch.channels_last)
    criterion = Handformer2TLoss(cfg, LossConfig())
    step_fn = TrainStep(model, criterion)
    opt = torch.optim.Adam(list(model.parameters()) + list(criterion.parameters()), lr=lr)

    def log(step, loss):
        row = {"step": step, "loss": loss, "error_mm": float(final_stage_error_mm(model, batch).mean())}
        history.append(row)
        if on_log is not None:
            on_log(row)

    history: list = []
    before = final_stage(model, batch)
    log(0, float("nan"))
    model.train()
    for step in range(1, steps + 1):
        loss = step_fn(batch, step)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % log_every == 0 or step == steps:
            log(step, float(loss.detach()))
    model.eval()
    return {"model": model, "history": history, "before": before, "after": final_stage(model, batch)}


def before_after_figure(batch: dict, before, after, index: int = 0, titles=("ground truth", "before", "after"),
                        cell_inches: float = 3.2, dpi: int = 100):
    """One image of ``batch`` three times: its ground truth, then two root-relative predictions placed at
    the true wrists and projected into the crop (:func:`h2t_lib.course.project_prediction`), each drawn
    over the ground truth (:data:`h2t_lib.viz.GT_COLOR`) in the finger colours.

    before, after: (B, 42, 3) root-relative mm (e.g. :func:`overfit_batch`'s). Returns a matplotlib Figure.

    Used in notebook 07.
    """
    from matplotlib.figure import Figure

    from h2t_lib.course.eval_views import project_prediction
    from h2t_lib.viz.skeleton2d import _as_hwc_uint8, draw_gt_and_prediction, draw_skeleton_2d

    image = _as_hwc_uint8(batch["image"][index])
    gt_px = np.asarray(batch["joints_img"][index], dtype=float)
    valid = np.asarray(batch["joint_valid"][index], dtype=float)
    cam, focal, princpt = (np.asarray(batch[k][index], dtype=float) for k in ("joints_cam", "focal", "princpt"))
    fig = Figure(figsize=(cell_inches * 3, cell_inches + 0.3), dpi=dpi)
    axes = fig.subplots(1, 3)
    for ax, title, pred in zip(axes, titles, (None, before, after)):
        ax.imshow(image, interpolation="bilinear")
        if pred is None:
            draw_skeleton_2d(ax, gt_px, valid, colors=GT_COLORS, linewidth=2.0)
        else:
            draw_gt_and_prediction(ax, gt_px, project_prediction(np.asarray(pred[index], dtype=float), cam, focal,
                                                                 princpt), valid)
        ax.set_xlim(-0.5, image.shape[1] - 0.5), ax.set_ylim(image.shape[0] - 0.5, -0.5)  # the crop, however wild
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    fig.tight_layout()
    return fig
