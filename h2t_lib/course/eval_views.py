"""Training curves, error breakdowns and a GT-vs-prediction viewer (notebooks 07-08).

Training (notebook 07):

* :func:`loss_curve_figure` / :func:`update_loss_figure`: a two-panel plotly figure
  (training loss per step and per epoch; validation MPJPE per stage per epoch) filled from a
  training history (the dict :func:`h2t_lib.engine.train.train` returns and checkpoints store).
  It works on a ``go.Figure`` and on a ``go.FigureWidget`` alike, so the same code draws the
  stored log of a finished run and updates a live figure while a run trains.
* :func:`live_loss_callbacks`: the ``on_step`` / ``on_epoch_end`` pair for ``train(...)``
  that keeps such a figure up to date (and shows it again, e.g. in an ``ipywidgets.Output``).
* :func:`loss_terms_figure`: the terms of Eq. 21 (RLE, MMD, root) and the learning rate per epoch.
* :func:`strip_timing`: a log without its wall-clock columns, to compare two runs.

Evaluation (notebook 08), all on the output of :func:`h2t_lib.engine.evaluate.predict_dataset`
(``preds``) and :func:`h2t_lib.engine.evaluate.evaluate` (``res``):

* :func:`results_table`: the evaluation rows as a rounded text table.
* :func:`per_joint_figure`: per-joint MPJPE bars (matplotlib).
* :func:`occlusion_breakdown` / :func:`occlusion_figure`: error against the inter-hand
  occlusion level of the synthetic samples.
* :func:`worst_samples`, :func:`project_prediction`, :func:`failure_gallery`: the samples with
  the largest error, GT and predicted skeletons over the image.
* :func:`viewer_poses` / :func:`gt_vs_pred_figure`: ground truth vs coarse vs refined in 3D for
  one test sample (the function behind the notebook's slider).
"""
from __future__ import annotations

import math
import re

import numpy as np

from h2t_lib import skeleton as sk
from h2t_lib.viz.skeleton2d import draw_gt_and_prediction, joint_color

__all__ = [
    "TIMING_KEYS", "OCCLUSION_BINS", "loss_curve_figure", "update_loss_figure", "live_loss_callbacks",
    "loss_terms_figure", "strip_timing", "results_table", "per_joint_figure", "occlusion_breakdown", "occlusion_figure",
    "worst_samples", "project_prediction", "failure_gallery", "viewer_poses", "gt_vs_pred_figure",
    "protocols_table", "refinement_changes", "per_axis_errors", "ranked_samples", "ranked_gallery",
]

#: columns of a training log that measure wall-clock time (they differ between two identical runs)
TIMING_KEYS = ("train_samples_per_s", "train_time_s", "val_time_s")

#: occlusion bins of interacting samples, (label, low, high): the synthetic renderer's levels
#: (:data:`h2t_lib.data.synth.OCCLUSION_RANGES`); single-hand samples form a group of their own
OCCLUSION_BINS = (("low [0, 0.2)", 0.0, 0.2), ("medium [0.2, 0.5)", 0.2, 0.5), ("high [0.5, 1]", 0.5, 1.0 + 1e-9))

_STAGE_RE = re.compile(r"val_mpjpe_stage(\d+)")


# ---------------------------------------------------------------------------
# training curves (notebook 07)
# ---------------------------------------------------------------------------
def _num_stages(history: dict | None) -> int:
    """Stages logged in a history (from its epoch rows, else its model config), at least 1."""
    if not history:
        return 1
    found = [int(m.group(1)) for r in history.get("epochs", []) for k in r for m in [_STAGE_RE.fullmatch(k)] if m]
    if found:
        return max(found)
    mc = history.get("model_config") or {}
    return int(mc.get("num_stages") or 1) if mc.get("use_pqe", True) else 1


def loss_curve_figure(history: dict | None = None, num_stages: int | None = None, title: str | None = None,
                      height: int = 320):
    """A plotly figure with the training loss (left) and the validation MPJPE per stage (right).

    Traces (found again by name by :func:`update_loss_figure`): ``"train (running)"`` (the mean
    loss over every ``log_every`` steps, against the step), ``"train (epoch mean)"`` (against the
    epoch's last step) and ``"val stage i"`` for i = 1..num_stages (against the epoch).
    ``history`` (the dict :func:`h2t_lib.engine.train.train` returns, or a checkpoint's
    ``extra["history"]``) fills them; None leaves them empty for a live run. Wrap the result in
    ``go.FigureWidget(...)`` to update it while training.

    Used in notebook 07.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n = int(num_stages) if num_stages else _num_stages(history)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss (Eq. 21)", "validation MPJPE (mm), all samples"))
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="train (running)", line=dict(width=1, color="#9ecae1")),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="train (epoch mean)", line=dict(color="#08519c")),
                  row=1, col=1)
    for i in range(1, n + 1):
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name=f"val stage {i}"), row=1, col=2)
    fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_xaxes(title_text="epoch", row=1, col=2)
    fig.update_yaxes(title_text="MPJPE (mm)", row=1, col=2)
    fig.update_layout(title=title, height=height, margin=dict(l=50, r=10, t=50 if title else 30, b=40))
    if history:
        update_loss_figure(fig, history.get("steps", []), history.get("epochs", []))
    return fig


def update_loss_figure(fig, steps, epochs) -> None:
    """Fill the traces of a :func:`loss_curve_figure` from step points and epoch rows (in place).

    steps: ``[{"step", "total", ...}]`` (``history["steps"]``, or the points ``on_step`` got);
    epochs: ``[{"epoch", "step", "train_total", "val_mpjpe_stage1", ...}]`` (``history["epochs"]``).
    Missing or non-finite values are left out. A ``FigureWidget`` redraws once.
    """
    from h2t_lib.engine.log import loss_curves

    by_name = {tr.name: tr for tr in fig.data}
    stages = [int(m.group(1)) for name in by_name for m in [re.fullmatch(r"val stage (\d+)", name)] if m]
    data = loss_curves(steps, epochs, stages=stages)
    ctx = fig.batch_update() if hasattr(fig, "batch_update") else None
    if ctx is not None:
        ctx.__enter__()
    try:
        for name, (xs, ys) in data.items():
            if name in by_name:
                by_name[name].x, by_name[name].y = xs, ys
    finally:
        if ctx is not None:
            ctx.__exit__(None, None, None)


def live_loss_callbacks(fig, redraw=None):
    """``(on_step, on_epoch_end)`` for :func:`h2t_lib.engine.train.train` that keep ``fig`` up to date.

    ``on_step(point)`` adds one running-loss point (``{"epoch", "step", "total", "lr"}``);
    ``on_epoch_end(history)`` redraws everything from the run's history (this also brings in
    the points logged before a resume). ``fig`` is a :func:`loss_curve_figure`; after every
    update ``redraw(fig)`` is called when given (e.g. to show it again in an ``ipywidgets.Output``;
    a ``go.FigureWidget`` redraws by itself and needs none). The points live in the closure only.

    Used in notebook 07.
    """
    steps, epochs = [], []

    def _update():
        update_loss_figure(fig, steps, epochs)
        if redraw is not None:
            redraw(fig)

    def on_step(point: dict) -> None:
        steps.append(dict(point))
        _update()

    def on_epoch_end(history: dict) -> None:
        steps[:] = [dict(p) for p in history.get("steps", [])]
        epochs[:] = [dict(r) for r in history.get("epochs", [])]
        _update()

    return on_step, on_epoch_end


def loss_terms_figure(history: dict, mmd_weight: float | None = None, height: int = 260):
    """The terms of the loss per epoch, one panel each: RLE of all stages (Eq. 19), MMD of the
    coarse stage (Eq. 20, unweighted), the wrist term, and the learning rate (log scale).

    ``mmd_weight`` (default: the run's ``loss.mmd_weight``, else 10, the paper's lambda_1) is
    shown in the MMD panel's title, so the reader sees what it contributes to the total.
    Returns a plotly figure with one trace per panel, named after the log's columns.

    Used in notebook 07.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if mmd_weight is None:
        mmd_weight = ((history.get("config") or {}).get("loss") or {}).get("mmd_weight", 10.0)
    rows = history.get("epochs", [])
    panels = [("train_rle", "RLE, all stages (Eq. 19)"), ("train_mmd", f"MMD (Eq. 20), weight {mmd_weight:g}"),
              ("train_root", "wrist term (ours)"), ("lr", "learning rate")]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for _, t in panels])
    for c, (key, _) in enumerate(panels, start=1):
        pts = [(r["epoch"], float(r[key])) for r in rows if r.get(key) is not None and math.isfinite(float(r[key]))]
        xs, ys = (list(v) for v in zip(*pts)) if pts else ([], [])
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=key, showlegend=False), row=1, col=c)
        fig.update_xaxes(title_text="epoch", row=1, col=c)
    fig.update_yaxes(type="log", row=1, col=len(panels))
    fig.update_layout(height=height, margin=dict(l=40, r=10, t=40, b=40))
    return fig


def strip_timing(rows) -> list:
    """The epoch rows of a log without the wall-clock columns (:data:`TIMING_KEYS`): what two
    runs of the same config must agree on exactly.

    Used in notebook 07.
    """
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


# ---------------------------------------------------------------------------
# evaluation (notebook 08)
# ---------------------------------------------------------------------------
def results_table(res: dict, decimals: int = 1, width: int = 56) -> str:
    """The rows of :func:`h2t_lib.engine.evaluate.evaluate` as a text table, rounded to ``decimals``.

    Columns MPJPE-S (single-hand samples), MPJPE-I (interacting) and MPJPE (all), in mm.
    Rounding keeps a notebook's checked output stable across machines.

    Used in notebook 08.
    """
    def fmt(x):
        return "-".rjust(8) if x is None or not np.isfinite(x) else f"{x:8.{decimals}f}"

    lines = [f"{'row':<{width}} {'MPJPE-S':>8} {'MPJPE-I':>8} {'MPJPE':>8}"]
    for r in res["rows"]:
        name = r["name"] if len(r["name"]) <= width else r["name"][: width - 3] + "..."
        lines.append(f"{name:<{width}} {fmt(r['single'])} {fmt(r['interacting'])} {fmt(r['all'])}")
    return "\n".join(lines)


def per_joint_figure(res: dict, stages=(0, -1), figsize=(9, 3.2), dpi: int = 80):
    """Per-joint MPJPE (mm, all samples) of some stages as grouped bars, one group per joint.

    ``stages`` index ``res["rows"]`` (0 = coarse, -1 of the stage rows = final). Bars of the
    last stage given are coloured by finger (right hand warm, left cool), the others grey.
    Returns a matplotlib ``Figure``.

    Used in notebook 08.
    """
    from matplotlib.figure import Figure

    n = res["num_stages"]
    idx = [s % n for s in stages]
    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(sk.NUM_JOINTS)
    w = 0.8 / len(idx)
    greys = ("#bbbbbb", "#888888", "#555555")
    for k, i in enumerate(idx):
        vals = np.asarray(res["rows"][i]["per_joint"], dtype=float)
        last = k == len(idx) - 1
        color = [joint_color(j) for j in x] if last else greys[k % len(greys)]
        ax.bar(x - 0.4 + w * (k + 0.5), vals, width=w, color=color, label=res["rows"][i]["name"],
               edgecolor="none")
    ax.set_xticks(x)
    ax.set_xticklabels([n_.replace("right_", "R ").replace("left_", "L ") for n_ in res["joint_names"]],
                       rotation=90, fontsize=6)
    ax.axvline(sk.JOINTS_PER_HAND - 0.5, color="k", lw=0.5)
    ax.set_ylabel("mean error (mm)")
    ax.set_title("per-joint error (root-relative per hand; wrists are 0 by construction)", fontsize=9, loc="left")
    ax.legend(fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(idx), frameon=False,
              borderaxespad=0.2)  # above the bars, beside the title
    fig.tight_layout()
    return fig


def occlusion_breakdown(res: dict, bins=OCCLUSION_BINS) -> list:
    """Mean per-sample error of every stage by occlusion level.

    Groups: the single-hand samples, then the interacting samples in each ``(label, low, high)``
    bin of ``res["per_sample"]["occlusion"]`` (low <= occ < high). Per-sample error = the mean over
    a sample's valid joints (:func:`h2t_lib.metrics.per_sample_errors`), averaged over the group.
    Returns ``[{"group", "count", "error": [one mean per stage, NaN for an empty group]}]``.

    Used in notebook 08.
    """
    ps = res["per_sample"]
    err = np.asarray(ps["error"], dtype=float)  # (N_stages, M)
    occ = np.asarray(ps["occlusion"], dtype=float)  # (M,)
    ht = np.asarray(ps["hand_type"])
    groups = [("single hand", ht != "interacting")]
    inter = ht == "interacting"
    for label, lo, hi in bins:
        groups.append((f"interacting, occ {label}", inter & (occ >= lo) & (occ < hi)))
    out = []
    for name, mask in groups:
        sel = err[:, mask]
        with np.errstate(invalid="ignore"):
            means = [float(np.nanmean(s)) if np.isfinite(s).any() else float("nan") for s in sel]
        out.append({"group": name, "count": int(mask.sum()), "error": means})
    return out


def occlusion_figure(res: dict, bins=OCCLUSION_BINS, figsize=(6.5, 3.0), dpi: int = 80):
    """Bars of :func:`occlusion_breakdown`: one colour per stage, one group per occlusion level
    (the sample count under each group). Returns a matplotlib ``Figure``.

    Used in notebook 08.
    """
    from matplotlib.figure import Figure

    rows = occlusion_breakdown(res, bins)
    n = res["num_stages"]
    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(rows))
    w = 0.8 / n
    for s in range(n):
        ax.bar(x - 0.4 + w * (s + 0.5), [r["error"][s] for r in rows], width=w, label=res["stages"][s])
    ax.set_xticks(x)
    ax.set_xticklabels([f"{r['group'].replace(', ', chr(10), 1)}\n(n={r['count']})" for r in rows], fontsize=7)
    ax.set_ylabel("mean per-sample error (mm)")
    top = np.nanmax([e for r in rows for e in r["error"]] + [1.0])
    ax.set_ylim(0, 1.25 * top)  # room for the legend above the bars
    ax.legend(fontsize=7, ncol=n, loc="upper center")
    fig.tight_layout()
    return fig


def worst_samples(res: dict, k: int = 6, stage: int = -1) -> list:
    """Row numbers (positions in the evaluated dataset) of the ``k`` samples with the largest
    per-sample error at ``stage`` (-1 = final), largest first; samples without a valid joint are skipped.

    Used in notebook 08.
    """
    err = np.asarray(res["per_sample"]["error"][stage], dtype=float)
    order = [int(i) for i in np.argsort(-np.nan_to_num(err, nan=-np.inf), kind="stable") if np.isfinite(err[i])]
    return order[:k]


def project_prediction(pred_rel, joints_cam, focal, princpt):
    """Pixels (42, 2) of a root-relative prediction placed at the ground-truth wrists.

    pred_rel: (42, 3) root-relative mm (each wrist at 0); joints_cam: (42, 3) GT camera mm;
    focal, princpt: (2,) crop intrinsics. The prediction is root-relative (the metric ignores
    where a hand is), so it is drawn where the true hand is: ``P_j + P_root(GT)``, projected
    with ``u = X/Z f_x + c_x`` (:func:`h2t_lib.camera.cam_to_pixel`).
    """
    from h2t_lib.camera import cam_to_pixel

    pred_rel = np.asarray(pred_rel, dtype=np.float64)
    gt = np.asarray(joints_cam, dtype=np.float64)
    roots = np.repeat(gt[sk.ROOTS], sk.JOINTS_PER_HAND, axis=0)  # (42, 3)
    return cam_to_pixel(pred_rel + roots, np.asarray(focal, np.float64), np.asarray(princpt, np.float64))


def failure_gallery(dataset, preds: dict, rows, stage: int = -1, ncols: int = 4, cell_inches: float = 2.6,
                    dpi: int = 100):
    """The given samples with the ground truth (:data:`h2t_lib.viz.GT_COLOR`, under) and the prediction of
    ``stage`` (the finger colours) over the image; the title gives the row, hand type, occlusion and error.

    dataset: the evaluated dataset (row r = ``dataset[r]``); preds: :func:`predict_dataset`'s output.
    Returns a matplotlib ``Figure``.

    Used in notebook 08.
    """
    from matplotlib.figure import Figure

    from h2t_lib.metrics import per_sample_errors
    from h2t_lib.viz.skeleton2d import _as_hwc_uint8

    rows = list(rows)
    if not rows:
        raise ValueError("failure_gallery needs at least one row")
    ncols = max(1, min(ncols, len(rows)))
    nrows = (len(rows) + ncols - 1) // ncols
    p = preds["p"][stage]  # (M, 42, 3)
    err = per_sample_errors(p[rows], preds["joints_cam"][rows], preds["joint_valid"][rows])
    fig = Figure(figsize=(cell_inches * ncols, cell_inches * nrows + 0.2), dpi=dpi)
    for k, r in enumerate(rows):
        s = dataset[r]
        ax = fig.add_subplot(nrows, ncols, k + 1)
        im = _as_hwc_uint8(s["image"])
        ax.imshow(im)
        valid = np.asarray(s["joint_valid"]).reshape(-1)
        draw_gt_and_prediction(ax, s["joints_img"], project_prediction(p[r], s["joints_cam"], s["focal"], s["princpt"]),
                               valid)
        ax.set_xlim(-0.5, im.shape[1] - 0.5)
        ax.set_ylim(im.shape[0] - 0.5, -0.5)
        ax.set_xticks([]), ax.set_yticks([])
        occ = float(s.get("occlusion", float("nan")))
        ax.set_title(f"#{r} {s['hand_type']} occ {occ:.2f}\nerror {err[k]:.0f} mm", fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


def _stage_label(i: int, n: int) -> str:
    return "coarse (stage 1)" if i == 0 else f"refined (stage {i + 1})"


def viewer_poses(preds: dict, row: int, stages=(0, -1), spread_mm: float = 80.0) -> dict:
    """The poses the 3D viewer draws for one sample: ``{"ground truth": (42, 3), "coarse (stage 1)":
    ..., "refined (stage N)": ...}``, root-relative per hand (the frame the model predicts in),
    the right hand moved to x = -spread_mm and the left to +spread_mm so the two do not overlap
    (as :func:`h2t_lib.viz.sample_figure` places them)."""
    n = preds["p"].shape[0]
    offset = np.repeat(np.array([[-spread_mm, 0, 0], [spread_mm, 0, 0]]), sk.JOINTS_PER_HAND, axis=0)
    poses = {"ground truth": sk.root_relative(np.asarray(preds["joints_cam"][row], np.float64)) + offset}
    for s in dict.fromkeys(i % n for i in stages):  # unique, in order
        poses[_stage_label(s, n)] = sk.root_relative(np.asarray(preds["p"][s][row], np.float64)) + offset
    return poses


def gt_vs_pred_figure(preds: dict, row: int, stages=(0, -1), height: int = 420):
    """Rotatable 3D figure of one sample: ground truth (solid), coarse (dashed), refined (dotted).

    ``row`` is the sample's position in the evaluated dataset; the title gives its hand type,
    occlusion and the per-sample error (mean over its valid joints) of each drawn stage. Joints
    the ground truth does not annotate (e.g. the absent hand of a single-hand sample) are not drawn.

    Used in notebook 08.
    """
    from h2t_lib.metrics import per_sample_errors
    from h2t_lib.viz.plot3d import hands_figure_3d

    m = preds["p"].shape[1]
    if not 0 <= row < m:
        raise IndexError(f"row {row} out of range: the predictions hold {m} samples (0..{m - 1})")
    n = preds["p"].shape[0]
    poses = viewer_poses(preds, row, stages)
    gt, valid = preds["joints_cam"][row:row + 1], preds["joint_valid"][row:row + 1]
    errs = [f"stage {s + 1} {per_sample_errors(preds['p'][s][row:row + 1], gt, valid)[0]:.0f} mm"
            for s in dict.fromkeys(i % n for i in stages)]
    occ = float(preds["occlusion"][row])
    title = f"#{row} {preds['hand_type'][row]}, occ {occ:.2f}: " + ", ".join(errs)
    return hands_figure_3d(poses, valid=preds["joint_valid"][row], title=title, height=height)


# --------------------------------------------------------------------------- #
# The two wrist protocols side by side
# --------------------------------------------------------------------------- #
_PROTOCOL_NAMES = {"gt": "GT wrists", "pred": "own wrists"}
_GROUPS = (("single", "MPJPE-S"), ("interacting", "MPJPE-I"), ("all", "MPJPE"))


def protocols_table(results: dict, decimals: int = 1) -> str:
    """``{"gt": evaluate(..., root_source="gt"), "pred": evaluate(..., root_source="pred")}`` as one
    text table: a row per stage (and the reference rows), MPJPE-S / -I / all under each protocol.

    "GT wrists" means KGFF (Eq. 13) projects each stage's pose with the ground-truth wrists, "own
    wrists" with the model's root head; the coarse stage reads no wrists, so its row is the same.

    Used in notebooks 05 and 08.
    """
    srcs = [s for s in ("gt", "pred") if s in results]
    first = results[srcs[0]]
    head1 = f"{'':<26}" + "".join(f"| {_PROTOCOL_NAMES[s]:^26}" for s in srcs)
    head2 = f"{'row':<26}" + "".join("| " + "".join(f"{g:>8} " for _, g in _GROUPS)[:-1] + " " for _ in srcs)
    lines = [head1, head2]
    for k, r in enumerate(first["rows"]):
        name = r["name"]
        name = "mean training pose" if name.startswith("reference: mean") else name
        name = name if len(name) <= 25 else name[:22] + "..."
        cells = []
        for s in srcs:
            rr = results[s]["rows"][k]
            cells.append("| " + "".join(f"{rr[g]:8.{decimals}f} " if rr[g] is not None and np.isfinite(rr[g])
                                        else f"{'-':>8} " for g, _ in _GROUPS))
        lines.append(f"{name:<26}" + "".join(cells))
    return "\n".join(lines)


def refinement_changes(results: dict, decimals: int = 1) -> list:
    """One sentence per protocol: the final stage's MPJPE-S / -I / all minus the coarse stage's,
    and whether that is lower or higher (the words a notebook's text should not have to guess).

    Used in notebooks 05 and 08.
    """
    out = []
    for s in ("gt", "pred"):
        if s not in results:
            continue
        res = results[s]
        n = res["num_stages"]
        coarse, final = res["rows"][0], res["rows"][n - 1]
        parts = []
        for g, label in _GROUPS:
            d = final[g] - coarse[g]
            word = "lower" if d < 0 else "higher" if d > 0 else "equal"
            parts.append(f"{label} {d:+.{decimals}f} mm ({word})")
        out.append(f"{_PROTOCOL_NAMES[s]}: final stage minus coarse: " + ", ".join(parts))
    return out


# --------------------------------------------------------------------------- #
# Typical, best and worst: not only the failures (notebook 08)
# --------------------------------------------------------------------------- #
def per_axis_errors(pred_rel, joints_cam, valid) -> np.ndarray:
    """Notebook 08: mean |error| along x, y, z (mm) of the root-relative joints, wrists left out (0 by
    construction): :func:`h2t_lib.metrics.axis_errors` with ``skip_roots``.

    pred_rel: (..., 42, 3) root-relative mm; joints_cam: (..., 42, 3) camera mm; valid: (..., 42).
    Returns (3,) over every valid (sample, joint) pair given.
    """
    from h2t_lib.metrics import axis_errors

    return axis_errors(pred_rel, joints_cam, valid, skip_roots=True)


def ranked_samples(preds: dict, stage: int = -1) -> dict:
    """``{"best", "typical", "worst"}``: the rows with the smallest, the median and the largest mean
    joint error at ``stage`` (typical = the sample whose error is nearest the median)."""
    from h2t_lib.metrics import per_sample_errors

    err = np.asarray(per_sample_errors(preds["p"][stage], preds["joints_cam"], preds["joint_valid"]), dtype=float)
    ok = np.flatnonzero(np.isfinite(err))
    if len(ok) == 0:
        raise ValueError("no sample has a valid joint")
    e = err[ok]
    return {"best": int(ok[np.argmin(e)]), "typical": int(ok[np.argmin(np.abs(e - np.median(e)))]),
            "worst": int(ok[np.argmax(e)]), "errors": err}


def ranked_gallery(dataset, preds_by_source: dict, stage: int = -1, cell_inches: float = 2.8, dpi: int = 100):
    """Best, typical and worst test sample (columns) under each wrist protocol (rows: ``{"gt": preds,
    "pred": preds}`` from :func:`h2t_lib.engine.evaluate.predict_dataset` with ``root_source`` "gt" / "pred").

    Each panel: the image, the ground truth in :data:`h2t_lib.viz.GT_COLOR` and the prediction of ``stage`` in
    the finger colours (at the ground-truth wrists: the metric ignores where a hand is), and in the title the
    sample's error and its mean |error| along x, y and z. Returns (Figure, {source: ranked_samples}).

    Used in notebook 08.
    """
    from matplotlib.figure import Figure

    from h2t_lib.viz.skeleton2d import _as_hwc_uint8

    srcs = [s for s in ("gt", "pred") if s in preds_by_source]
    fig = Figure(figsize=(cell_inches * 3, (cell_inches + 0.35) * len(srcs)), dpi=dpi)
    ranks = {}
    for i, src in enumerate(srcs):
        preds = preds_by_source[src]
        rk = ranked_samples(preds, stage)
        ranks[src] = rk
        for k, which in enumerate(("best", "typical", "worst")):
            r = rk[which]
            s = dataset[r]
            ax = fig.add_subplot(len(srcs), 3, i * 3 + k + 1)
            im = _as_hwc_uint8(s["image"])
            ax.imshow(im)
            valid = np.asarray(s["joint_valid"]).reshape(-1)
            draw_gt_and_prediction(ax, s["joints_img"], project_prediction(preds["p"][stage][r], s["joints_cam"],
                                                                           s["focal"], s["princpt"]), valid)
            ax.set_xlim(-0.5, im.shape[1] - 0.5)
            ax.set_ylim(im.shape[0] - 0.5, -0.5)
            ax.set_xticks([]), ax.set_yticks([])
            ex, ey, ez = per_axis_errors(preds["p"][stage][r], preds["joints_cam"][r], preds["joint_valid"][r])
            ax.set_title(f"{_PROTOCOL_NAMES[src]}, {which}: #{r} {s['hand_type'][:5]}\n"
                         f"{rk['errors'][r]:.0f} mm | x {ex:.0f} y {ey:.0f} z {ez:.0f}", fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig, ranks
