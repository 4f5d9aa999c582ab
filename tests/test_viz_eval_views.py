"""h2t_lib.course.eval_views: training-curve figures and the evaluation breakdowns of notebooks 07-08."""
import math

import numpy as np
import pytest

from h2t_lib import skeleton as sk
from h2t_lib.engine.evaluate import evaluate
from h2t_lib.metrics import per_joint_errors, per_sample_errors
from h2t_lib.course import eval_views as ev


# ---------------------------------------------------------------------------
# fixtures: a fake training history and fake predictions with known errors
# ---------------------------------------------------------------------------
def _history(n_epochs=3, n_stages=2, steps_per_epoch=4):
    steps, epochs = [], []
    for e in range(1, n_epochs + 1):
        for k in range(steps_per_epoch):
            s = (e - 1) * steps_per_epoch + k + 1
            steps.append({"epoch": e, "step": s, "total": 100.0 - s, "lr": 1e-3})
        row = {"epoch": e, "step": e * steps_per_epoch, "lr": 1e-3, "train_total": 100.0 - 10 * e,
               "train_time_s": 1.5 * e, "train_samples_per_s": 10.0 + e, "val_time_s": 0.3}
        for i in range(1, n_stages + 1):
            row[f"val_mpjpe_stage{i}"] = 90.0 - 5 * e - i
        epochs.append(row)
    return {"steps": steps, "epochs": epochs, "model_config": {"num_stages": n_stages}}


def _trace(fig, name):
    found = [t for t in fig.data if t.name == name]
    assert len(found) == 1, f"expected one trace named {name!r}, got {[t.name for t in fig.data]}"
    return found[0]


def _fake_preds(rng, m=8, n_stages=3):
    """Predictions whose error grows with the stage index reversed (the final stage is best)."""
    gt = rng.normal(0, 40, size=(m, 42, 3))
    gt[..., 2] += 600.0
    hand_type = np.array(["right", "left", "interacting", "interacting"] * (m // 4), dtype=object)
    valid = np.ones((m, 42))
    valid[hand_type == "right", 21:] = 0
    valid[hand_type == "left", :21] = 0
    rel = sk.root_relative(gt)
    p = np.stack([rel + rng.normal(0, 3.0 * (n_stages - s), size=rel.shape) for s in range(n_stages)])
    occ = np.where(hand_type == "interacting", np.linspace(0.05, 0.9, m), 0.0)
    return {"p": p, "sigma": np.ones((n_stages, m, 42)), "root": gt[:, [20, 41]], "joints_cam": gt,
            "joint_valid": valid, "joint_vis": valid, "hand_type": hand_type, "occlusion": occ, "index": np.arange(m)}


@pytest.fixture
def preds(rng):
    return _fake_preds(rng)


@pytest.fixture
def res(preds):
    return evaluate(None, [], preds=preds)


# ---------------------------------------------------------------------------
# training curves
# ---------------------------------------------------------------------------
def test_loss_curve_figure_holds_the_history():
    h = _history(n_epochs=3, n_stages=2)
    fig = ev.loss_curve_figure(h)
    names = ["train (running)", "train (epoch mean)", "val stage 1", "val stage 2"]
    assert sorted(t.name for t in fig.data) == sorted(names)
    run = _trace(fig, "train (running)")
    assert list(run.x) == [p["step"] for p in h["steps"]] and list(run.y) == [p["total"] for p in h["steps"]]
    ep = _trace(fig, "train (epoch mean)")
    assert list(ep.x) == [4, 8, 12] and list(ep.y) == [90.0, 80.0, 70.0]
    v2 = _trace(fig, "val stage 2")
    assert list(v2.x) == [1, 2, 3] and list(v2.y) == [83.0, 78.0, 73.0]
    # the val traces sit on the right-hand panel
    assert v2.xaxis == "x2" and run.xaxis == "x"


def test_loss_curve_figure_empty_then_skips_missing_values():
    fig = ev.loss_curve_figure(num_stages=3)
    assert [t.name for t in fig.data if t.name.startswith("val")] == ["val stage 1", "val stage 2", "val stage 3"]
    assert all(len(t.x) == 0 for t in fig.data)
    h = _history(n_epochs=2, n_stages=1)
    h["epochs"][0]["val_mpjpe_stage1"] = float("nan")
    h["epochs"][1].pop("val_mpjpe_stage1")
    h["epochs"][1]["val_mpjpe_stage2"] = 50.0
    ev.update_loss_figure(fig, h["steps"], h["epochs"])
    assert len(_trace(fig, "val stage 1").x) == 0  # NaN and missing both left out
    assert list(_trace(fig, "val stage 2").y) == [50.0]


def test_live_callbacks_update_a_figure_widget():
    pytest.importorskip("anywidget")
    import plotly.graph_objects as go

    fig = go.FigureWidget(ev.loss_curve_figure(num_stages=2))
    on_step, on_epoch_end = ev.live_loss_callbacks(fig)
    h = _history(n_epochs=2, n_stages=2)
    for p in h["steps"][:3]:
        on_step(p)
    assert list(_trace(fig, "train (running)").y) == [99.0, 98.0, 97.0]
    assert len(_trace(fig, "train (epoch mean)").x) == 0
    on_epoch_end(h)  # redraws from the whole history (also what a resumed run logged before)
    assert len(_trace(fig, "train (running)").x) == len(h["steps"])
    assert list(_trace(fig, "val stage 1").y) == [84.0, 79.0]
    on_step({"epoch": 3, "step": 9, "total": 1.0, "lr": 1e-3})
    assert list(_trace(fig, "train (running)").y)[-1] == 1.0 and len(_trace(fig, "train (running)").y) == 9


def test_live_callbacks_call_redraw_after_every_update():
    fig = ev.loss_curve_figure(num_stages=1)
    shown = []
    on_step, on_epoch_end = ev.live_loss_callbacks(fig, redraw=lambda f: shown.append(len(f.data[0].x)))
    h = _history(n_epochs=1, n_stages=1, steps_per_epoch=2)
    on_step(h["steps"][0])
    on_step(h["steps"][1])
    on_epoch_end(h)
    assert shown == [1, 2, 2]
    assert list(_trace(fig, "val stage 1").y) == [84.0]


def test_strip_timing_keeps_everything_else():
    h = _history()
    rows = ev.strip_timing(h["epochs"])
    assert all(not (set(r) & set(ev.TIMING_KEYS)) for r in rows)
    assert [set(r) | set(ev.TIMING_KEYS) for r in rows] == [set(r) for r in h["epochs"]]
    assert rows[1]["val_mpjpe_stage2"] == h["epochs"][1]["val_mpjpe_stage2"]
    assert "train_time_s" in h["epochs"][0]  # the input is not modified


# ---------------------------------------------------------------------------
# evaluation views
# ---------------------------------------------------------------------------
def test_results_table_rounds_the_rows(res):
    text = ev.results_table(res, decimals=1)
    lines = text.splitlines()
    assert len(lines) == 1 + len(res["rows"])  # header + one line per row
    for line, row in zip(lines[1:], res["rows"]):
        nums = line.split()[-3:]
        assert nums == [f"{row[g]:.1f}" for g in ("single", "interacting", "all")]
    res["rows"][0]["interacting"] = float("nan")
    assert ev.results_table(res).splitlines()[1].split()[-2] == "-"


def test_per_joint_figure_bars_are_the_per_joint_errors(res, preds):
    fig = ev.per_joint_figure(res, stages=(0, -1))
    ax = fig.axes[0]
    heights = np.array([b.get_height() for b in ax.patches])
    assert heights.shape == (2 * 42,)
    final = per_joint_errors(preds["p"][-1], preds["joints_cam"], preds["joint_valid"])
    np.testing.assert_allclose(heights[42:], final, rtol=1e-9)
    assert heights[20] == 0 and heights[41] == 0  # wrists: root-relative error is 0
    assert len(ax.get_xticklabels()) == 42


def test_occlusion_breakdown_matches_a_hand_computation(res, preds):
    rows = ev.occlusion_breakdown(res)
    assert [r["group"].split(",")[0] for r in rows] == ["single hand"] + ["interacting"] * len(ev.OCCLUSION_BINS)
    assert sum(r["count"] for r in rows) == len(preds["hand_type"])
    err = per_sample_errors(preds["p"][1], preds["joints_cam"], preds["joint_valid"])
    single = np.isin(preds["hand_type"], ["right", "left"])
    assert rows[0]["count"] == single.sum()
    assert rows[0]["error"][1] == pytest.approx(err[single].mean())
    inter = ~single
    occ = preds["occlusion"]
    mask = inter & (occ >= 0.5)
    assert rows[-1]["count"] == mask.sum() > 0
    assert rows[-1]["error"][2] == pytest.approx(
        per_sample_errors(preds["p"][2], preds["joints_cam"], preds["joint_valid"])[mask].mean())
    fig = ev.occlusion_figure(res)
    assert len(fig.axes[0].patches) == len(rows) * res["num_stages"]


def test_occlusion_breakdown_empty_group_is_nan(res):
    rows = ev.occlusion_breakdown(res, bins=(("none", 2.0, 3.0),))
    assert rows[1]["count"] == 0 and all(math.isnan(e) for e in rows[1]["error"])


def test_worst_samples_sorted_and_skip_nan(res):
    err = np.array(res["per_sample"]["error"][-1])
    worst = ev.worst_samples(res, k=3)
    assert worst == list(np.argsort(-err)[:3])
    res["per_sample"]["error"][-1][worst[0]] = float("nan")
    assert worst[0] not in ev.worst_samples(res, k=len(err))
    assert len(ev.worst_samples(res, k=100)) == len(err) - 1


def test_project_prediction_of_the_ground_truth_is_joints_img():
    from h2t_lib import course

    s = course.dataset("test")[0]
    rel = sk.root_relative(s["joints_cam"].numpy())
    uv = ev.project_prediction(rel, s["joints_cam"], s["focal"], s["princpt"])
    valid = s["joint_valid"].numpy() > 0
    np.testing.assert_allclose(uv[valid], s["joints_img"].numpy()[valid], atol=0.05)


def test_failure_gallery_one_panel_per_row():
    from h2t_lib import course
    from h2t_lib.engine.evaluate import dataset_joints

    ds = course.dataset("test")
    jc, jv = dataset_joints(ds)
    rows = [0, 1, 2, 3]
    p = np.zeros((1, len(ds), 42, 3))
    p[0, rows] = sk.root_relative(jc[rows])  # a perfect prediction for these rows
    preds = {"p": p, "joints_cam": jc, "joint_valid": jv}
    fig = ev.failure_gallery(ds, preds, rows, ncols=2)
    assert len(fig.axes) == 4
    assert all(ax.get_title().endswith("error 0 mm") for ax in fig.axes)
    assert fig.axes[1].get_title().startswith("#1 ")
    with pytest.raises(ValueError):
        ev.failure_gallery(ds, preds, [])


def test_viewer_poses_and_3d_figure(preds):
    row = 0  # a right-hand sample: the left hand is not annotated
    poses = ev.viewer_poses(preds, row, stages=(0, -1))
    assert list(poses) == ["ground truth", "coarse (stage 1)", "refined (stage 3)"]
    gt = poses["ground truth"]
    np.testing.assert_allclose(gt[20], [-80.0, 0, 0])  # right wrist moved left
    np.testing.assert_allclose(gt[41], [80.0, 0, 0])
    np.testing.assert_allclose(poses["refined (stage 3)"] - gt,
                               sk.root_relative(preds["p"][2][row]) - sk.root_relative(preds["joints_cam"][row]))
    fig = ev.gt_vs_pred_figure(preds, row)
    legend = [t.name for t in fig.data if t.showlegend]
    assert legend == list(poses)
    assert {t.legendgroup for t in fig.data} == set(poses)
    # only the right hand is drawn: 5 finger traces + 1 joint trace per pose
    assert len(fig.data) == 3 * 6
    err = per_sample_errors(preds["p"][2][:1], preds["joints_cam"][:1], preds["joint_valid"][:1])[0]
    assert f"stage 3 {err:.0f} mm" in fig.layout.title.text
    inter = ev.gt_vs_pred_figure(preds, 2, stages=(-1,))
    assert len(inter.data) == 2 * 12  # GT + final, both hands
    with pytest.raises(IndexError):
        ev.gt_vs_pred_figure(preds, len(preds["hand_type"]))


def test_loss_terms_figure_one_panel_per_term():
    h = _history(n_epochs=3)
    for r in h["epochs"]:
        r.update(train_rle=50.0 - r["epoch"], train_mmd=1.0 / r["epoch"], train_root=2.0)
    h["epochs"][1]["train_root"] = None  # a missing value is left out
    h["config"] = {"loss": {"mmd_weight": 5.0}}
    fig = ev.loss_terms_figure(h)
    assert [t.name for t in fig.data] == ["train_rle", "train_mmd", "train_root", "lr"]
    assert list(fig.data[0].y) == [49.0, 48.0, 47.0] and list(fig.data[2].x) == [1, 3]
    assert [t.xaxis for t in fig.data] == ["x", "x2", "x3", "x4"]
    assert "weight 5" in fig.layout.annotations[1].text
    assert fig.layout.yaxis4.type == "log"
    assert "weight 10" in ev.loss_terms_figure({"epochs": h["epochs"]}).layout.annotations[1].text
