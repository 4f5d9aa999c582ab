"""Evaluation: every stage + reference rows, the noise row's expected value, the CLI and its --json."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fixtures import make_interhand_fixture
from h2t_lib.engine.checkpoint import save_checkpoint
from h2t_lib.model.config import ModelConfig
from h2t_lib.data import InterHand26M
from h2t_lib.engine.evaluate import NOISE_MPJPE_PER_SIGMA, evaluate, format_table, mean_pose, predict_dataset
from h2t_lib.model import Handformer2T
from h2t_lib.skeleton import JOINT_NAMES

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_data")
    make_interhand_fixture(root, "train", n=6, extra_fields=True, seed=1)
    make_interhand_fixture(root, "test", n=6, extra_fields=True, seed=2)
    model = Handformer2T(ModelConfig.preset("tiny"))
    ckpt = save_checkpoint(root / "tiny.pt", model)
    return root, model, ckpt


def _fake_preds(m: int, rng, n_stages: int = 2) -> dict:
    """Predictions in predict_dataset's format for m random two-hand poses."""
    gt = rng.normal(0, 40, size=(m, 42, 3)) + np.array([0, 0, 500.0])
    ht = np.array(["interacting", "right", "left"] * (m // 3), dtype=object)
    valid = np.ones((m, 42))
    valid[ht == "right", 21:] = 0
    valid[ht == "left", :21] = 0
    return {"p": np.stack([gt + rng.normal(0, 10 * (n_stages - i), gt.shape) for i in range(n_stages)]),
            "sigma": np.ones((n_stages, m, 42)), "root": gt[:, [20, 41]], "joints_cam": gt, "joint_valid": valid,
            "joint_vis": valid, "hand_type": ht, "occlusion": rng.random(m), "index": np.arange(m)}


def test_noise_row_matches_its_expected_value(rng):
    preds = _fake_preds(3000, rng)
    res = evaluate(None, [None] * 3000, preds=preds, noise_sigma=5.0)
    noise = res["rows"][-1]
    assert "N(0, 5 mm)" in noise["name"]
    expected = NOISE_MPJPE_PER_SIGMA * 5.0
    assert expected == pytest.approx(20 / 21 * 4 * 5 / math.sqrt(math.pi))
    for group in ("single", "interacting", "all"):
        assert noise[group] == pytest.approx(expected, rel=0.03), group
    # the stages are in order, and the noisier coarse stage scores worse than the refined one
    assert res["stages"] == ["stage 1 (coarse)", "stage 2 (refined, final)"]
    assert res["rows"][0]["all"] > res["rows"][1]["all"]


def test_mean_pose_row_is_zero_when_every_sample_has_the_mean_pose(rng):
    preds = _fake_preds(30, rng)
    preds["joints_cam"] = np.broadcast_to(preds["joints_cam"][0], preds["joints_cam"].shape).copy()
    preds["joints_cam"][:, :21] += rng.normal(0, 50, (30, 1, 3))  # move whole hands: root-relative pose unchanged
    res = evaluate(None, [None] * 30, preds=preds)
    row = res["rows"][-2]
    assert "THIS split" in row["name"]  # no train split given: labelled as the test split's own mean
    assert row["all"] == pytest.approx(0.0, abs=1e-9)


def test_mean_pose_uses_valid_joints_only():
    joints = np.zeros((2, 42, 3))
    joints[0, 0] = [10, 0, 0]
    joints[1, 0] = [1000, 0, 0]  # invalid: must not count
    valid = np.ones((2, 42))
    valid[1, 0] = 0
    assert mean_pose(joints, valid)[0] == pytest.approx([10, 0, 0])


def test_evaluate_on_a_dataset(setup):
    root, model, _ = setup
    test_set = InterHand26M(root, "test", image_size=64)
    train_set = InterHand26M(root, "train", image_size=64)
    preds = predict_dataset(model, test_set, batch_size=4)
    assert preds["p"].shape == (2, 6, 42, 3) and preds["sigma"].shape == (2, 6, 42)
    assert preds["root"].shape == (6, 2, 3) and list(preds["hand_type"]) == list(test_set.hand_types)
    assert np.isfinite(preds["occlusion"]).all()  # the fixture's synthetic extra fields
    res = evaluate(model, test_set, train_dataset=train_set, preds=preds)
    assert preds["focal"].shape == (6, 2) and np.isfinite(res["root_error_px"]) and res["hand_size_ratio"] > 0
    assert len(res["rows"]) == 4 and "mean training pose (6 train samples)" in res["rows"][2]["name"]
    assert len(res["rows"][0]["per_joint"]) == 42 and len(res["per_sample"]["error"][1]) == 6
    table = format_table(res)
    for r in res["rows"]:
        assert r["name"] in table
    # root_source gt vs pred changes only the refiner's projection, never the coarse stage
    pred_root = predict_dataset(model, test_set, batch_size=6, root_source="pred")
    np.testing.assert_allclose(pred_root["p"][0], preds["p"][0], atol=1e-4)


def test_eval_cli_prints_table_and_writes_json(setup, tmp_path):
    root, _, ckpt = setup
    env = {**os.environ, "H2T_FAST": "1", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "res.json"
    r = subprocess.run([sys.executable, "-m", "h2t_lib", "eval", "--ckpt", str(ckpt), "--data", str(root),
                        "--json", str(out), "--quiet"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for text in ("stage 1 (coarse)", "stage 2 (refined, final)", "mean training pose", "GT + N(0, 5 mm)", "MPJPE-I"):
        assert text in r.stdout, text
    res = json.loads(out.read_text())
    assert res["joint_names"] == list(JOINT_NAMES)
    assert set(res["per_sample"]) >= {"error", "occlusion", "hand_type"} and len(res["per_sample"]["occlusion"]) == 6
    # a file that is not a checkpoint: one line, no traceback
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    r = subprocess.run([sys.executable, "-m", "h2t_lib", "eval", "--ckpt", str(bad), "--data", str(root)], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_rhd_gets_epe(setup, tmp_path):
    from fixtures import make_rhd_fixture
    from h2t_lib.data import RHD
    from h2t_lib.metrics import epe

    _, model, _ = setup
    make_rhd_fixture(tmp_path, "evaluation", n=3)
    test_set = RHD(tmp_path, "test", image_size=64)
    preds = predict_dataset(model, test_set, batch_size=3)
    res = evaluate(model, test_set, preds=preds)
    assert res["dataset"] == "RHD" and all("epe" in r for r in res["rows"])
    assert res["rows"][1]["epe"] == pytest.approx(epe(preds["p"][1], preds["joints_cam"], preds["joint_valid"]))
    assert "EPE" in format_table(res)


def test_axis_errors_name_the_failing_direction():
    from h2t_lib.metrics import axis_errors

    rng = np.random.default_rng(0)
    gt = rng.normal(0, 40, size=(20, 42, 3)) + np.array([0, 0, 500.0])
    pred = gt.copy()
    pred[..., 2] += rng.choice([-7.0, 7.0], size=(20, 42))  # only depth is wrong, by 7 mm
    pred[:, [20, 41], 2] = gt[:, [20, 41], 2]  # wrists exact: root-relative z is off by 7 mm elsewhere
    valid = np.ones((20, 42))
    np.testing.assert_allclose(axis_errors(pred, gt, valid), [0.0, 0.0, 7.0 * 40 / 42], atol=1e-9)


def test_wrist_pixel_error_and_hand_size_ratio():
    from h2t_lib.camera import cam_to_pixel
    from h2t_lib.engine.evaluate import hand_size_ratio, wrist_pixel_errors

    rng = np.random.default_rng(3)
    gt = rng.normal(0, 40, size=(5, 42, 3)) + np.array([0, 0, 500.0])
    valid = np.ones((5, 42))
    valid[0, 21:] = 0  # a right-hand-only sample
    focal, princpt = np.full((5, 2), 200.0), np.full((5, 2), 63.5)
    # wrists moved 3 px right and 4 px down in the crop, at their own depth: 5 px off
    uv = cam_to_pixel(gt[:, [20, 41]], focal, princpt) + np.array([3.0, 4.0])
    z = gt[:, [20, 41], 2]
    root = np.stack([(uv[..., 0] - 63.5) / 200.0 * z, (uv[..., 1] - 63.5) / 200.0 * z, z], axis=-1)
    err = wrist_pixel_errors(root, gt, valid, focal, princpt)
    np.testing.assert_allclose(err[1:], 5.0, atol=1e-9)
    assert err[0, 0] == pytest.approx(5.0) and np.isnan(err[0, 1])
    # a pose scaled by 0.8 about each wrist is 0.8 the size; the absent hand has no ratio
    small = gt.copy()
    for r, sl in ((20, slice(0, 21)), (41, slice(21, 42))):
        small[:, sl] = gt[:, [r]] + 0.8 * (gt[:, sl] - gt[:, [r]])
    ratio = hand_size_ratio(small, gt, valid)
    np.testing.assert_allclose(ratio[1:], 0.8, atol=1e-9)
    assert ratio[0, 0] == pytest.approx(0.8) and np.isnan(ratio[0, 1])


def test_eval_on_a_console_that_is_not_utf8(setup, tmp_path):
    """cp1252 (Windows, output redirected) cannot encode every path: the table and the JSON still come."""
    import shutil

    root, _, ckpt = setup
    data = tmp_path / "données_手"
    shutil.copytree(root, data)
    env = {**os.environ, "H2T_FAST": "1", "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "cp1252"}
    r = subprocess.run([sys.executable, "-m", "h2t_lib", "eval", "--ckpt", str(ckpt), "--data", str(data),
                        "--json", str(data / "res.json")], cwd=REPO, env=env, capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode("cp1252")
    assert "données_\\u624b" in out and "stage 2 (refined, final)" in out and "wrote" in out
    assert json.loads((data / "res.json").read_text(encoding="utf-8"))["data"] == str(data)


def test_footer_counts_only_samples_with_a_valid_joint(rng):
    preds = _fake_preds(9, rng)  # interacting, right, left, x 3
    preds["joint_valid"][[0, 1]] = 0  # an interacting and a right-hand annotation without any valid joint
    preds["joint_valid"][2, 41] = 0  # a left hand without its wrist: no joint of it counts
    res = evaluate(None, [None] * 9, preds=preds)
    assert (res["num_samples"], res["num_single"], res["num_interacting"], res["num_unscored"]) == (9, 4, 2, 3)
    assert "9 samples (4 single-hand, 2 interacting, 3 without a valid joint, not scored)" in format_table(res)
