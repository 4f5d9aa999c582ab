"""h2t_lib.course.data_views: the figures and widget logic of notebooks 00 and 01."""
import json

import numpy as np
import pytest
import torch

from h2t_lib import camera, course, skeleton as sk, viz
from h2t_lib.data import hand_model as hm
from h2t_lib.data import synth as rd
from h2t_lib.data import synth
from h2t_lib.data.transforms import AugmentConfig, AugmentParams, sample_augment

SIZE = 64


@pytest.fixture(scope="module")
def test_set(fast_env):
    return course.dataset("test", image_size=SIZE)


@pytest.fixture(scope="module")
def scene_sample():
    return synth.render_sample(3, size=SIZE, hand_type="interacting", style="v1")  # hard capsules: render.shade


# --------------------------------------------------------------------------- #
# Notebook 00
# --------------------------------------------------------------------------- #
def test_joint_convention_figure_labels_every_joint_once():
    fig = course.joint_convention_figure()
    assert len(fig.axes) == 2
    labels = [t.get_text().split()[0] for ax in fig.axes for t in ax.texts]
    assert sorted(int(x) for x in labels) == list(range(42))
    names = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "20 wrist" in names and "41 wrist" in names and "0 thumb4" in names and "37 pinky4" in names


def test_browse_indices_and_index_clip():
    types = np.array(["right", "interacting", "left", "interacting", "right"])
    assert course.browse_indices(types, "all").tolist() == [0, 1, 2, 3, 4]
    assert course.browse_indices(types, "interacting").tolist() == [1, 3]
    assert course.browse_index(types, "right", 1) == 4
    assert course.browse_index(types, "right", 99) == 4  # clipped to the last one
    assert course.browse_index(types, "left", -3) == 2
    with pytest.raises(ValueError):
        course.browse_index(np.array(["right"]), "left", 0)
    with pytest.raises(ValueError):
        course.browse_indices(types, "both")


def test_browse_figure_shows_the_filtered_sample(test_set):
    idx = course.browse_indices(test_set.hand_types, "left")
    fig = course.browse_figure(test_set, "left", 1)
    assert fig.layout.title.text.startswith(f"sample {idx[1]}: left")
    kinds = {tr.type for tr in fig.data}
    assert "image" in kinds and "scatter3d" in kinds
    # a left-hand sample draws only left-hand (cool) colours in 3D
    colors = {tr.line.color for tr in fig.data if tr.type == "scatter3d" and tr.mode == "lines"}
    assert colors and colors <= set(viz.HAND_COLORS["left"])


def test_flip_only_config_mirrors_and_swaps_hands(fast_env):
    ds = course.dataset("test", image_size=SIZE)
    fl = course.dataset("test", image_size=SIZE, augment=True, augment_config=course.flip_only_config())
    i = int(course.browse_indices(ds.hand_types, "right")[0])
    a, b = ds[i], fl[i]
    assert b["hand_type"] == "left"
    assert torch.allclose(b["image"], a["image"].flip(-1), atol=2 / 255)
    mirrored = a["joints_cam"] * torch.tensor([-1.0, 1.0, 1.0])
    assert torch.allclose(b["joints_cam"], mirrored[sk.FLIP_PERM], atol=1e-4)


def test_depth_ambiguity_scaled_poses_project_alike(test_set):
    s = test_set[0]
    scales = (0.7, 1.0, 1.4)
    for k in scales:
        uv = camera.cam_to_pixel(s["joints_cam"] * k, s["focal"], s["princpt"])
        assert torch.allclose(uv, s["joints_img"], atol=1e-3)
    fig = course.depth_ambiguity_figure(s["joints_cam"], s["joint_valid"], scales=scales)
    legend = [tr.name for tr in fig.data if tr.showlegend]
    assert legend[:3] == ["x 0.7", "x 1", "x 1.4"]
    assert {"viewing rays", "camera"} <= {tr.name for tr in fig.data}


# --------------------------------------------------------------------------- #
# Notebook 01: kinematics and the posed pair
# --------------------------------------------------------------------------- #
def test_hand_as_42_and_finger_flexion():
    j21 = hm.hand_joints(hm.HandPose.neutral(), hm.HandShape.average(), "left")
    j, valid = course.hand_as_42(j21, "left")
    assert j.shape == (42, 3) and valid.sum() == 21 and valid[21:].all()
    assert np.allclose(j[21:], j21) and np.allclose(j[:21], 0)
    f = course.finger_flexion([200, -100, 45, 45, 45])
    assert f.shape == (5, 3)
    assert np.allclose(f[0], hm.FLEXION_LIMITS[0, :, 1])  # thumb clipped to its maxima
    assert np.allclose(f[1], hm.FLEXION_LIMITS[1, :, 0])  # index clipped to its minima
    assert np.allclose(f[2], [45, 45, 45])
    assert hm.HandPose(flexion=f).within_limits()


def test_flexion_sweep_figure_draws_one_line_per_angle():
    fig = course.flexion_sweep_figure("middle", angles=(0, 45, 200))
    lines = fig.axes[0].get_lines()
    assert len([ln for ln in lines if ln.get_marker() == "o"]) == 3
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[2].startswith("200 deg -> 90, 105, 80")  # clipped into the middle finger's limits


def test_posed_pair_gap_and_depth_order():
    for gap in (-40.0, 0.0, 35.0):
        sc = course.posed_pair_scene(flex=20, gap_mm=gap, seed=1)
        j = sc.joints()
        left, right = j[sk.HAND_SLICE["left"]], j[sk.HAND_SLICE["right"]]
        assert right[:, 0].min() - left[:, 0].max() == pytest.approx(gap, abs=1e-6)
        assert left[sk.WRIST, 2] < right[sk.WRIST, 2]  # the left hand is nearer the camera
    # flexion bends the fingers: the index tip comes closer to the wrist
    open_, fist = (course.posed_pair_scene(flex=f, seed=0).joints()[:21] for f in (0, 90))
    tip = sk.FINGER_CHAINS["index"][4]
    assert np.linalg.norm(fist[tip] - fist[sk.WRIST]) < np.linalg.norm(open_[tip] - open_[sk.WRIST]) - 30


def test_render_posed_pair_matches_its_projection():
    img, jc, info = course.render_posed_pair(flex=10, gap_mm=40, seed=2, size=SIZE, return_info=True)
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1
    assert jc.shape == (42, 3)
    assert np.allclose(info["joints_img"], camera.cam_to_pixel(jc, info["focal"], info["princpt"]))
    # every visible joint lies on its own hand (or forearm) in the layer map (tips lie on the skin's
    # edge, so their nearest pixel centre may miss it: left out)
    uv = np.round(info["joints_img"]).astype(int)
    not_tip = np.array([not n.endswith("4") for n in sk.JOINT_NAMES])
    vis = (info["joint_vis"] > 0) & not_tip
    assert vis.sum() > 20
    lay = info["layer"][uv[vis, 1], uv[vis, 0]]
    hand = np.array([sk.HANDS.index(sk.hand_of_joint(i)) for i in np.flatnonzero(vis)])
    assert np.all((lay == 2 * hand) | (lay == 2 * hand + 1))
    assert info["occlusion"] == 0.0  # 40 mm apart: neither hand hides the other
    # the same arguments give the same image; another seed another one
    img2, jc2 = course.render_posed_pair(flex=10, gap_mm=40, seed=2, size=SIZE)
    assert np.array_equal(img, img2) and np.array_equal(jc, jc2)
    assert not np.array_equal(img, course.render_posed_pair(flex=10, gap_mm=40, seed=3, size=SIZE)[0])


def test_render_posed_pair_overlap_hides_the_right_hand():
    _, _, apart = course.render_posed_pair(flex=30, gap_mm=30, seed=0, size=SIZE, return_info=True)
    _, _, over = course.render_posed_pair(flex=30, gap_mm=-80, seed=0, size=SIZE, return_info=True)
    assert over["occlusion"] > 0.1 > apart["occlusion"]
    assert (over["layer"] == 0).sum() < (apart["layer"] == 0).sum()  # fewer right-hand pixels
    assert over["joint_vis"][:21].sum() < apart["joint_vis"][:21].sum()
    assert over["joint_vis"][21:].sum() == apart["joint_vis"][21:].sum()  # the left hand is in front


def test_render_posed_pair_style_v2_is_the_same_scene_with_another_skin():
    img1, jc1, info1 = course.render_posed_pair(flex=20, gap_mm=30, seed=1, size=SIZE, return_info=True, style="v1")
    img2, jc2, info2 = course.render_posed_pair(flex=20, gap_mm=30, seed=1, size=SIZE, return_info=True, style="v2")
    assert np.array_equal(jc1, jc2)
    hand1, hand2 = info1["layer"] >= 0, info2["layer"] >= 0
    assert not (hand1 & ~hand2).any() and hand2.sum() > hand1.sum()  # the smooth skin covers the capsules and more
    for img, style in ((img1, "v1"), (img2, "v2")):  # each look's background (v2's without regular patterns)
        rng = np.random.default_rng([1, 1])
        rd.sample_appearance(rng)
        assert np.array_equal(img[~hand2], rd.random_background(rng, SIZE, style=style)[~hand2])
    assert np.abs(img1[hand1] - img2[hand1]).mean() > 0.02  # another shading
    with pytest.raises(ValueError, match="'v9'"):
        course.render_posed_pair(seed=1, size=SIZE, style="v9")


def test_posed_pair_figure_and_image_and_3d():
    fig = course.posed_pair_figure(flex=[0, 10, 20, 30, 40], gap_mm=-60, seed=0, size=SIZE)
    assert "occlusion" in fig.layout.title.text
    assert [tr.type for tr in fig.data].count("image") == 1
    n2d = sum(tr.type == "scatter" for tr in fig.data)
    assert n2d == len(sk.BONES)  # one 2D line per bone
    assert sum(tr.type == "scatter3d" for tr in fig.data) == 2 * (5 + 1)  # per hand: 5 fingers + joints


# --------------------------------------------------------------------------- #
# Notebook 01: the renderer step by step
# --------------------------------------------------------------------------- #
def test_render_steps_reproduce_render_scene(scene_sample):
    steps = course.render_steps(scene_sample)
    ref = synth.render_scene(scene_sample["scene"], scene_sample["focal"], scene_sample["princpt"], SIZE,
                             scene_sample["appearance"], scene_sample["background"], scene_sample["joints_cam"],
                             scene_sample["scene"].kinematics()[1])
    assert np.allclose(steps["shaded"], ref["image"], atol=1e-5)
    assert synth.occlusion_from_layers(steps["raster"].layers) == scene_sample["occlusion"]
    ras = steps["raster"]
    assert np.array_equal(ras.layer, ref["layer"])
    assert np.all(np.isfinite(ras.depth[ras.layer >= 0])) and np.all(np.isinf(ras.depth[ras.layer < 0]))
    assert steps["final"] is scene_sample["image"]
    assert len(steps["primitives"]) == len(scene_sample["scene"].primitives(style="v1"))
    fig = course.render_steps_figure(scene_sample)
    assert len([ax for ax in fig.axes if ax.get_title()]) == 6


def test_render_steps_of_a_v2_sample_use_its_skin_look():
    s = synth.render_sample(3, size=SIZE, hand_type="interacting", style="v2")
    steps = course.render_steps(s)
    ref = synth.render_scene(s["scene"], s["focal"], s["princpt"], SIZE, s["appearance"], s["background"],
                             s["joints_cam"], s["scene"].kinematics()[1], look=s["look"])
    # the layers render_sample measured the occlusion and visibility on (its joints come back from the world frame)
    assert synth.occlusion_from_layers(steps["raster"].layers) == s["occlusion"] > 0
    assert np.allclose(steps["shaded"], ref["image"], atol=1e-5) and np.array_equal(steps["raster"].layer, ref["layer"])
    assert len(steps["primitives"]) == len(s["scene"].primitives()) > len(s["scene"].primitives(style="v1"))
    v1 = synth.render_scene(s["scene"], s["focal"], s["princpt"], SIZE, s["appearance"], s["background"])
    assert not np.allclose(steps["shaded"], v1["image"], atol=1e-2)
    titles = [ax.get_title() for ax in course.render_steps_figure(s).axes if ax.get_title()]
    assert titles[-1] == "6. + shadow, camera effects"


# --------------------------------------------------------------------------- #
# Notebook 01: the InterHand2.6M files and augmentation
# --------------------------------------------------------------------------- #
def test_annotation_record_and_short_json(test_set):
    rec = course.annotation_record(course.data_dir(), "test", 2)
    assert set(rec["files"]) == {"data", "camera", "joint_3d"} and all(p.is_file() for p in rec["files"].values())
    assert rec["world_coord"].shape == (42, 3) and rec["camera"]["camrot"].shape == (3, 3)
    assert rec["image_path"].is_file() and rec["annotation"]["hand_type"] == test_set.hand_types[2]
    parsed = json.loads(course.short_json(rec["annotation"], max_items=3))
    assert len(parsed["joint_valid"]) == 4 and parsed["joint_valid"][-1] == "... (42 items)"
    assert parsed["bbox"][-1] == "... (4 items)" and parsed["hand_type"] == rec["annotation"]["hand_type"]


def test_augmented_crop_identity_is_the_loader(test_set):
    for i in (0, 5):
        rec = course.annotation_record(course.data_dir(), "test", i)
        mine, _, _ = course.augmented_crop(rec, None, size=SIZE)
        ref = test_set[i]
        for k in ("image", "joints_cam", "joints_img", "joint_valid", "joint_vis", "focal", "princpt"):
            assert torch.allclose(mine[k], ref[k], atol=1e-4), k
        assert mine["hand_type"] == ref["hand_type"] and mine["index"] == ref["index"] == i


def test_augmented_crop_warp_agrees_with_the_virtual_camera():
    rec = course.annotation_record(course.data_dir(), "test", 1)
    flips = set()
    for epoch in range(6):
        params = sample_augment(AugmentConfig(rot_prob=1.0), seed=0, index=1, epoch=epoch)
        s, geo, uv = course.augmented_crop(rec, params, size=SIZE)
        warped = geo.transform_pixels(uv)  # the 2D warp of the original keypoints
        if geo.flip:
            warped = warped[sk.FLIP_PERM]
        assert np.allclose(warped, s["joints_img"].numpy(), atol=1e-3)
        assert torch.allclose(camera.cam_to_pixel(s["joints_cam"], s["focal"], s["princpt"]), s["joints_img"],
                              atol=1e-3)
        flips.add(geo.flip)
    assert flips == {True, False}
    fig = course.augmentation_figure(rec, [AugmentParams(), AugmentParams(rot_deg=30.0, flip=True)], size=SIZE)
    assert len(fig.axes) == 3 and len(fig.axes[0].patches) == 2
