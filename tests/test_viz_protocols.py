"""h2t_lib.course.eval_views: the two wrist protocols side by side, and the change refinement makes."""
from h2t_lib.course.eval_views import protocols_table, refinement_changes


def _res(coarse, final, source):
    rows = [{"name": "stage 1 (coarse)", "single": coarse[0], "interacting": coarse[1], "all": coarse[2]},
            {"name": "stage 2 (refined, final)", "single": final[0], "interacting": final[1], "all": final[2]},
            {"name": "reference: mean training pose (48 train samples)", "single": 99.0, "interacting": 100.0,
             "all": 99.7}]
    return {"rows": rows, "num_stages": 2, "root_source": source}


def test_table_puts_both_protocols_on_one_row_per_stage():
    res = {"gt": _res((60.0, 80.0, 75.0), (62.0, 61.0, 61.3), "gt"),
           "pred": _res((60.0, 80.0, 75.0), (66.0, 88.0, 83.0), "pred")}
    lines = protocols_table(res).splitlines()
    assert "GT wrists" in lines[0] and "own wrists" in lines[0]
    final = next(line for line in lines if line.startswith("stage 2"))
    assert [float(x) for x in final.replace("|", " ").split()[4:]] == [62.0, 61.0, 61.3, 66.0, 88.0, 83.0]
    assert any(line.startswith("mean training pose") for line in lines)


def test_changes_say_lower_or_higher_with_the_sign():
    res = {"gt": _res((60.0, 80.0, 75.0), (62.5, 61.0, 61.3), "gt"),
           "pred": _res((60.0, 80.0, 75.0), (60.0, 88.0, 83.0), "pred")}
    gt, pred = refinement_changes(res)
    assert gt.startswith("GT wrists") and "MPJPE-S +2.5 mm (higher)" in gt and "MPJPE-I -19.0 mm (lower)" in gt
    assert pred.startswith("own wrists") and "MPJPE-S +0.0 mm (equal)" in pred


def _preds(errors_mm, seed=0):
    """Fake predict_dataset output: sample n's prediction is the truth shifted by errors_mm[n] along z
    on every non-wrist joint."""
    import numpy as np

    from h2t_lib import skeleton as sk

    rng = np.random.default_rng(seed)
    M = len(errors_mm)
    gt = rng.normal(0, 50, (M, 42, 3))
    gt[..., 2] += 500
    rel = sk.root_relative(gt)
    p = rel.copy()
    nonroot = np.setdiff1d(np.arange(42), [20, 41])
    p[:, nonroot, 2] += np.asarray(errors_mm, float)[:, None]
    return {"p": p[None], "joints_cam": gt, "joint_valid": np.ones((M, 42)),
            "hand_type": np.array(["interacting"] * M)}


def test_per_axis_errors_put_a_depth_error_on_z_only():
    import numpy as np

    from h2t_lib.course.eval_views import per_axis_errors

    pr = _preds([7.0, 7.0])
    ex, ey, ez = per_axis_errors(pr["p"][0], pr["joints_cam"], pr["joint_valid"])
    assert np.isclose(ez, 7.0) and np.isclose(ex, 0.0) and np.isclose(ey, 0.0)


def test_ranked_samples_pick_best_median_and_worst():
    from h2t_lib.course.eval_views import ranked_samples

    rk = ranked_samples(_preds([30.0, 5.0, 80.0, 20.0, 40.0]))
    assert (rk["best"], rk["typical"], rk["worst"]) == (1, 0, 2)


def test_ranked_gallery_has_a_row_per_protocol():
    import numpy as np

    from h2t_lib.course.eval_views import ranked_gallery

    pr = _preds([10.0, 20.0, 30.0])
    ds = [{"image": np.zeros((3, 32, 32)), "joints_img": np.full((42, 2), 16.0), "joints_cam": pr["joints_cam"][i],
           "joint_valid": np.ones(42), "hand_type": "interacting", "focal": np.array([40.0, 40.0]),
           "princpt": np.array([16.0, 16.0])} for i in range(3)]
    fig, ranks = ranked_gallery(ds, {"gt": pr, "pred": _preds([30.0, 20.0, 10.0])})
    assert len(fig.axes) == 6
    assert ranks["gt"]["worst"] == 2 and ranks["pred"]["worst"] == 0
    titles = [a.get_title() for a in fig.axes]
    assert "GT wrists, best" in titles[0] and "own wrists, worst" in titles[5] and "z 30" in titles[2]
