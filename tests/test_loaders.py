"""InterHand2.6M and RHD loaders, crop geometry and augmentation, on fixtures in the exact published formats."""
from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch

from fixtures import (
    dot_centroid,
    enlarge_box,
    make_interhand_fixture,
    make_rhd_fixture,
    ours_to_rhd,
    project,
    rot_z,
)
from h2t_lib import skeleton
from h2t_lib.camera import cam_to_pixel, crop_intrinsics
from h2t_lib.data import RHD, AugmentConfig, AugmentParams, InterHand26M, detect_format, load_dataset
from h2t_lib.data.transforms import FLIPPED_HAND_TYPE, color_jitter, make_crop, process_bbox, sample_augment

S_IH = 64  # crop size for the InterHand fixture (hands ~40 px in a 96x120 image: the crop magnifies)
S_RHD = 128  # crop size for the RHD fixture (320x320 images)
DOT_TOL = 0.2  # px; a half-pixel convention slip would show as >= 0.5


@pytest.fixture(scope="module")
def ih(tmp_path_factory):
    return make_interhand_fixture(tmp_path_factory.mktemp("ih"), split="test", n=6)


@pytest.fixture(scope="module")
def rhd(tmp_path_factory):
    return make_rhd_fixture(tmp_path_factory.mktemp("rhd"), split="evaluation", n=3)


def expected_crop(box, focal, princpt, size):
    """Crop intrinsics written out: focal * S / side, (princpt - corner) * S / side."""
    f = np.asarray(focal) * size / box[2:]
    c = (np.asarray(princpt) - box[:2]) * size / box[2:]
    return f, c


# ----------------------------------------------------------------------------- InterHand2.6M
def test_interhand_values_match_hand_computed(ih):
    ds = InterHand26M(ih["root"], "test", image_size=S_IH)
    gts = ih["annotations"]
    assert len(ds) == len(gts)  # hand_type_valid == 0 is kept by default, as the baseline
    for i, g in enumerate(gts):
        s = ds[i]
        assert s["index"] == i and s["hand_type"] == g["hand_type"]
        assert s["image"].shape == (3, S_IH, S_IH) and s["image"].dtype == torch.float32
        assert 0.0 <= float(s["image"].min()) and float(s["image"].max()) <= 1.0
        for k in ("joints_cam", "joints_img", "joint_valid", "joint_vis", "focal", "princpt", "occlusion"):
            assert s[k].dtype == torch.float32, k
        # 3D: cam = R (world - campos), computed by hand in the fixture
        np.testing.assert_allclose(s["joints_cam"].numpy(), g["joints_cam"], atol=1e-3)
        # crop: square box x1.25, intrinsics moved to it, joints projected by hand
        f, c = expected_crop(enlarge_box(g["bbox"]), g["focal"], g["princpt"], S_IH)
        np.testing.assert_allclose(s["focal"].numpy(), f, rtol=1e-5)
        np.testing.assert_allclose(s["princpt"].numpy(), c, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(s["joints_img"].numpy(), project(g["joints_cam"], f, c), atol=1e-3)
        # validity rules; real data: joint_vis = joint_valid, occlusion NaN
        np.testing.assert_array_equal(s["joint_valid"].numpy(), g["joint_valid"])
        np.testing.assert_array_equal(s["joint_vis"].numpy(), s["joint_valid"].numpy())
        assert math.isnan(float(s["occlusion"]))
        # the image content sits where the joints project
        np.testing.assert_allclose(dot_centroid(s["image"]), s["joints_img"][g["dot_joint"]].numpy(), atol=DOT_TOL)


def test_interhand_validity_rules(ih):
    ds = InterHand26M(ih["root"], "test", image_size=S_IH)
    v = {i: ds[i]["joint_valid"].numpy() for i in range(len(ds))}
    # annotation 1: interacting but left wrist invalid -> the whole left hand invalid, right hand kept (bar joint 5)
    assert v[1][21:].sum() == 0 and v[1][:21].sum() == 20
    # single-hand samples: the absent hand is invalid
    for i, g in enumerate(ih["annotations"]):
        if g["hand_type"] == "right":
            assert v[i][21:].sum() == 0 and v[i][20] == 1
        if g["hand_type"] == "left":
            assert v[i][:21].sum() == 0 and v[i][41] == 1


def test_interhand_non_finite_coordinates_become_invalid(tmp_path):
    make_interhand_fixture(tmp_path, split="test", n=2)
    path = tmp_path / "annotations" / "all" / "InterHand2.6M_test_joint_3d.json"
    _edit_json(path, lambda obj: next(iter(obj["0"].values()))["world_coord"][3].__setitem__(0, float("nan")))
    s = InterHand26M(tmp_path, "test", image_size=32)[0]
    assert s["joint_valid"][3] == 0 and s["joint_valid"][2] == 1
    assert torch.isfinite(s["joints_cam"]).all() and torch.isfinite(s["joints_img"]).all()


def test_interhand_extra_fields_and_flat_joint_valid(tmp_path):
    fx = make_interhand_fixture(tmp_path, split="train", n=3, extra_fields=True, flat_joint_valid=True, seed=1)
    ds = InterHand26M(tmp_path, "train", image_size=32)
    for i, g in enumerate(fx["annotations"]):
        s = ds[i]
        np.testing.assert_array_equal(s["joint_valid"].numpy(), g["joint_valid"])
        np.testing.assert_array_equal(s["joint_vis"].numpy(), g["joint_vis"])
        assert float(s["occlusion"]) == pytest.approx(g["occlusion"])
    assert not np.array_equal(ds[0]["joint_vis"].numpy(), ds[0]["joint_valid"].numpy())


def test_interhand_skip_invalid_hand_type(ih):
    ds = InterHand26M(ih["root"], "test", image_size=S_IH, skip_invalid_hand_type=True)
    kept = [g for g in ih["annotations"] if g["hand_type_valid"]]
    assert len(ds) == len(kept) == len(ih["annotations"]) - 1
    np.testing.assert_allclose(ds[len(ds) - 1]["joints_cam"].numpy(), kept[-1]["joints_cam"], atol=1e-3)


# ----------------------------------------------------------------------------- RHD
def test_rhd_mapping_written_out_matches_skeleton():
    # the fixture's hand-written RHD order agrees with skeleton.OURS_TO_RHD / RHD_TO_OURS
    np.testing.assert_array_equal(ours_to_rhd(np.arange(42)), skeleton.OURS_TO_RHD)
    np.testing.assert_array_equal(np.arange(42)[skeleton.OURS_TO_RHD][skeleton.RHD_TO_OURS], np.arange(42))


def test_rhd_roundtrip_and_values(rhd):
    ds = RHD(rhd["root"], "test", image_size=S_RHD)  # "test" is an alias of "evaluation"
    assert len(ds) == 3
    with open(rhd["root"] / "evaluation" / "anno_evaluation.pickle", "rb") as f:
        raw = pickle.load(f)
    for i, g in enumerate(rhd["samples"]):
        ours, xyz = g["joints_cam"], raw[i]["xyz"] * 1000.0
        # spot checks of the published order: RHD 0 = left wrist, 1 = left thumb tip, 4 = left thumb mcp,
        # 21 = right wrist, 26 = right index tip
        for r, o in ((0, 41), (1, 21), (4, 24), (21, 20), (26, 4)):
            np.testing.assert_allclose(xyz[r], ours[o], atol=1e-3)
        s = ds[i]
        np.testing.assert_allclose(s["joints_cam"].numpy(), ours, atol=1e-3)  # metres -> mm, order back to ours
        assert s["hand_type"] == g["hand_type_dominant"]
        hand = skeleton.HAND_SLICE[g["hand_type_dominant"]]
        expected_valid = np.zeros(42, np.float32)
        expected_valid[hand] = 1.0
        np.testing.assert_array_equal(s["joint_valid"].numpy(), expected_valid)
        K = g["K"]
        uv = project(ours, (K[0, 0], K[1, 1]), (K[0, 2], K[1, 2]))
        lo, hi = uv[hand].min(0), uv[hand].max(0)
        f, c = expected_crop(enlarge_box(np.r_[lo, hi - lo]), (K[0, 0], K[1, 1]), K[:2, 2], S_RHD)
        np.testing.assert_allclose(s["focal"].numpy(), f, rtol=1e-4)
        np.testing.assert_allclose(s["princpt"].numpy(), c, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(s["joints_img"].numpy(), project(ours, f, c), atol=2e-3)
        np.testing.assert_allclose(dot_centroid(s["image"]), s["joints_img"][g["dot_joint"]].numpy(), atol=DOT_TOL)


def test_rhd_visible_mode_gives_interacting(rhd):
    ds = RHD(rhd["root"], "evaluation", image_size=S_RHD, hands="visible", min_visible=10, keypoints="known")
    for i, g in enumerate(rhd["samples"]):
        s = ds[i]
        assert s["hand_type"] == g["hand_type_visible"]
        assert s["joint_valid"].sum() == (42 if g["hand_type_visible"] == "interacting" else 21)
    # the evaluation mask (keypoints="auto" on the evaluation split): sample 2's left hand counts its 15 visible
    # keypoints and its wrist
    ev = RHD(rhd["root"], "evaluation", image_size=S_RHD, hands="visible", min_visible=10)
    assert ev.keypoints == "visible" and ev.joint_valid(2)[21:].sum() == 16 and ev.joint_valid(2)[:21].sum() == 21


# ----------------------------------------------------------------------------- geometry and augmentation
def test_process_bbox_and_identity_crop():
    for box in ([10.0, 20.0, 40.0, 20.0], [5.0, 5.0, 10.0, 30.0], [0.0, 0.0, 8.0, 8.0]):
        np.testing.assert_allclose(process_bbox(box), enlarge_box(np.array(box)))
    box = process_bbox([30.0, 40.0, 50.0, 30.0])
    geo = make_crop(box, (500.0, 520.0), (320.0, 240.0), 256)
    f, c = crop_intrinsics(np.array([500.0, 520.0]), np.array([320.0, 240.0]), box, 256)
    np.testing.assert_allclose(geo.focal, f)
    np.testing.assert_allclose(geo.princpt, c)
    np.testing.assert_allclose(geo.cam_rot, np.eye(3))


def test_color_jitter_scales_channels():
    img = torch.full((3, 4, 4), 0.5)
    out = color_jitter(img, (0.8, 1.0, 1.5))
    np.testing.assert_allclose(out[:, 0, 0].numpy(), [0.4, 0.5, 0.75], atol=1e-6)
    assert float(color_jitter(torch.ones(3, 2, 2), (1.2, 1.2, 1.2)).max()) == 1.0


def _augmented_checks(ds, gt_joints_cam, gt_valid, gt_hand_type, dot_joint, cfg, epochs=range(8)):
    """Every geometric field consistent, the 3D an exact roll (+ mirror) of the original, and the image
    content at the augmented joints. Returns (dots checked, flips seen, rotations seen)."""
    checked = flips = rots = 0
    for epoch in epochs:
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            p = sample_augment(cfg, ds.seed, i, epoch)
            s = ds[i]
            # the contract: cam_to_pixel(joints_cam, focal, princpt) == joints_img
            reproj = cam_to_pixel(s["joints_cam"], s["focal"], s["princpt"])
            assert float((reproj - s["joints_img"]).abs().max()) < 1e-3
            # 3D: roll about the optical axis by the drawn angle, then mirror x and swap the hands on flip
            expected = gt_joints_cam[i] @ rot_z(p.rot_deg).T
            perm = np.arange(42)
            if p.flip:
                expected = expected * np.array([-1.0, 1.0, 1.0])
                perm = np.r_[np.arange(21, 42), np.arange(0, 21)]
            np.testing.assert_allclose(s["joints_cam"].numpy(), expected[perm], atol=1e-3)
            np.testing.assert_array_equal(s["joint_valid"].numpy(), gt_valid[i][perm])
            assert s["hand_type"] == (FLIPPED_HAND_TYPE[gt_hand_type[i]] if p.flip else gt_hand_type[i])
            # the image moved with the joints: the dot is where its joint now projects
            new_dot = int(np.flatnonzero(perm == dot_joint[i])[0])
            uv = s["joints_img"][new_dot].numpy()
            S = s["image"].shape[-1]
            if np.all(uv > 8) and np.all(uv < S - 9):
                np.testing.assert_allclose(dot_centroid(s["image"]), uv, atol=DOT_TOL)
                checked += 1
            flips += p.flip
            rots += abs(p.rot_deg) > 1.0
    return checked, flips, rots


def test_interhand_augmentation_consistent(ih):
    cfg = AugmentConfig(rot_prob=1.0)
    ds = InterHand26M(ih["root"], "test", image_size=S_IH, augment=True, seed=3, augment_config=cfg)
    gts = ih["annotations"]
    assert any(g["focal"][0] != g["focal"][1] for g in gts)  # the fx != fy case is exercised
    checked, flips, rots = _augmented_checks(
        ds, [g["joints_cam"] for g in gts], [g["joint_valid"] for g in gts], [g["hand_type"] for g in gts],
        [g["dot_joint"] for g in gts], cfg,
    )
    n = 8 * len(ds)
    assert checked >= n // 2 and 0 < flips < n and rots >= n // 2


def test_rhd_augmentation_consistent(rhd):
    cfg = AugmentConfig(rot_prob=1.0)
    ds = RHD(rhd["root"], "evaluation", image_size=S_RHD, augment=True, seed=5, augment_config=cfg)
    gts = rhd["samples"]
    valid = []
    for g in gts:
        v = np.zeros(42, np.float32)
        v[skeleton.HAND_SLICE[g["hand_type_dominant"]]] = 1.0
        valid.append(v)
    checked, flips, rots = _augmented_checks(
        ds, [g["joints_cam"] for g in gts], valid, [g["hand_type_dominant"] for g in gts],
        [g["dot_joint"] for g in gts], cfg, epochs=range(6),
    )
    n = 6 * len(ds)
    assert checked >= n // 2 and 0 < flips < n and rots >= n // 2


def test_augmentation_deterministic_per_seed_index_epoch(ih):
    def make(seed):
        return InterHand26M(ih["root"], "test", image_size=S_IH, augment=True, seed=seed)

    a, b = make(0), make(0)
    a.set_epoch(3), b.set_epoch(3)
    sa, sb = a[2], b[2]
    for k in ("image", "joints_cam", "joints_img", "focal", "princpt", "joint_valid"):
        assert torch.equal(sa[k], sb[k]), k
    assert sa["hand_type"] == sb["hand_type"]
    b.set_epoch(4)
    assert not torch.equal(b[2]["focal"], sa["focal"])  # another epoch, another draw
    c = make(1)
    c.set_epoch(3)
    assert not torch.equal(c[2]["focal"], sa["focal"])  # another seed, another draw
    assert sample_augment(AugmentConfig(), 0, 2, 3) == sample_augment(AugmentConfig(), 0, 2, 3)
    assert sample_augment(AugmentConfig(), 0, 2, 3) != AugmentParams()
    # augmentation off: the same sample whatever the epoch
    d = InterHand26M(ih["root"], "test", image_size=S_IH)
    d0 = d[2]
    d.set_epoch(7)
    assert torch.equal(d[2]["image"], d0["image"])


def test_default_collate_batches_samples(ih):
    ds = InterHand26M(ih["root"], "test", image_size=S_IH)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3, shuffle=False)))
    assert batch["image"].shape == (3, 3, S_IH, S_IH)
    assert batch["joints_cam"].shape == (3, 42, 3) and batch["joints_img"].shape == (3, 42, 2)
    assert batch["focal"].shape == (3, 2) and batch["occlusion"].shape == (3,)
    assert batch["hand_type"] == [g["hand_type"] for g in ih["annotations"][:3]]
    assert batch["index"].tolist() == [0, 1, 2]


def test_load_dataset_detects_format(ih, rhd):
    assert detect_format(ih["root"]) == "interhand" and detect_format(rhd["root"]) == "rhd"
    a = load_dataset(ih["root"], "test", image_size=32)
    b = load_dataset(rhd["root"], "evaluation", image_size=32, hands="visible")
    assert isinstance(a, InterHand26M) and isinstance(b, RHD) and b.hands == "visible"
    assert a[0]["image"].shape == (3, 32, 32)


# ----------------------------------------------------------------------------- bad input
def test_missing_root_folder(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="root folder not found") as e:
        InterHand26M(missing, "test")
    assert str(missing) in str(e.value) and "annotations" in str(e.value)
    with pytest.raises(FileNotFoundError, match="RHD root folder not found"):
        RHD(missing, "evaluation")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_dataset(missing, "test")


def test_neither_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither an InterHand2.6M folder") as e:
        load_dataset(tmp_path, "test")
    assert "anno_training.pickle" in str(e.value)


def test_missing_json_names_path_and_layout(tmp_path):
    make_interhand_fixture(tmp_path, split="val", n=2)
    cam_json = tmp_path / "annotations" / "all" / "InterHand2.6M_val_camera.json"
    cam_json.unlink()
    with pytest.raises(FileNotFoundError) as e:
        InterHand26M(tmp_path, "val")
    assert str(cam_json) in str(e.value) and "annotations/<annot_subset>/InterHand2.6M_<split>_" in str(e.value)
    with pytest.raises(FileNotFoundError, match="InterHand2.6M_test_data.json"):
        InterHand26M(tmp_path, "test")  # a known split that isn't on disk
    with pytest.raises(FileNotFoundError, match="subset") as e:
        InterHand26M(tmp_path, "val", annot_subset="human_annot")
    assert "'all'" in str(e.value)


def test_wrong_split_names(tmp_path):
    make_interhand_fixture(tmp_path / "ih", split="test", n=2)
    with pytest.raises(ValueError, match="unknown InterHand2.6M split 'training'") as e:
        InterHand26M(tmp_path / "ih", "training")
    assert "'test'" in str(e.value)  # lists the splits found on disk
    with pytest.raises(ValueError, match="'training' or 'evaluation'"):
        RHD(tmp_path, "val")


def _edit_json(path, edit):
    obj = json.loads(path.read_text())
    edit(obj)
    path.write_text(json.dumps(obj))


def test_bad_world_coord_shape(tmp_path):
    fx = make_interhand_fixture(tmp_path, split="test", n=2)
    path = tmp_path / "annotations" / "all" / "InterHand2.6M_test_joint_3d.json"

    def drop_joint(obj):
        for frame in obj["0"].values():
            frame["world_coord"] = frame["world_coord"][:41]

    _edit_json(path, drop_joint)
    with pytest.raises(ValueError) as e:
        InterHand26M(tmp_path, "test")
    msg = str(e.value)
    assert "InterHand2.6M_test_joint_3d.json" in msg and f"annotation id {fx['annotations'][0]['id']}" in msg
    assert "(41, 3)" in msg and "(42, 3)" in msg

    def ragged(obj):
        for frame in obj["0"].values():
            frame["world_coord"] = [[1.0, 2.0]] + [[1.0, 2.0, 3.0]] * 41

    _edit_json(path, ragged)
    with pytest.raises(ValueError, match="InterHand2.6M_test_joint_3d.json.*world_coord is not a regular array"):
        InterHand26M(tmp_path, "test")


def test_bad_joint_valid_length(tmp_path):
    fx = make_interhand_fixture(tmp_path, split="test", n=2)
    path = tmp_path / "annotations" / "all" / "InterHand2.6M_test_data.json"
    _edit_json(path, lambda obj: obj["annotations"][1].update(joint_valid=[[1.0]] * 40))
    with pytest.raises(ValueError) as e:
        InterHand26M(tmp_path, "test")
    msg = str(e.value)
    assert "InterHand2.6M_test_data.json" in msg and f"annotation id {fx['annotations'][1]['id']}" in msg
    assert "42" in msg and "joint_valid" in msg


def test_missing_image_names_the_file(tmp_path):
    fx = make_interhand_fixture(tmp_path, split="test", n=2)
    gone = fx["annotations"][1]["path"]
    gone.unlink()
    ds = InterHand26M(tmp_path, "test")  # images load lazily: construction still works
    ds[0]
    with pytest.raises(FileNotFoundError, match="image not found") as e:
        ds[1]
    assert str(gone) in str(e.value)


def test_rhd_bad_inputs(tmp_path):
    fx = make_rhd_fixture(tmp_path, split="training", n=2, size=64)
    with pytest.raises(FileNotFoundError) as e:
        RHD(tmp_path, "evaluation")  # that split was not written
    assert "anno_evaluation.pickle" in str(e.value) and "color/%05d.png" in str(e.value)
    # a missing image names the file
    fx["samples"][1]["path"].unlink()
    ds = RHD(tmp_path, "train", image_size=32)
    with pytest.raises(FileNotFoundError, match="00001.png"):
        ds[1]
    # an xyz of the wrong shape names the file and the sample
    path = tmp_path / "training" / "anno_training.pickle"
    anno = pickle.loads(path.read_bytes())
    anno[1]["xyz"] = anno[1]["xyz"][:21]
    path.write_bytes(pickle.dumps(anno))
    with pytest.raises(ValueError, match=r"anno_training.pickle: sample 1: xyz has shape \(21, 3\), expected \(42, 3\)"):
        RHD(tmp_path, "training")


def test_interhand_public_camera_and_crop_box_give_the_samples_crop(interhand_dir):
    ds = InterHand26M(interhand_dir, "test", image_size=64)
    for i in range(3):
        s = ds[i]
        focal, princpt = ds.camera(i)
        box = ds.crop_box(i)
        assert box[2] == pytest.approx(box[3])  # square
        f_crop, c_crop = crop_intrinsics(focal, princpt, box, 64)
        np.testing.assert_allclose(np.asarray(s["focal"]), f_crop, rtol=1e-5)
        np.testing.assert_allclose(np.asarray(s["princpt"]), c_crop, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(ds.joints_cam(i), np.asarray(s["joints_cam"]), atol=1e-3)
