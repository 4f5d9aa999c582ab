"""The joint convention and the camera helpers (numpy and torch agree; round trips hold)."""
import numpy as np
import pytest
import torch

from h2t_lib import camera, skeleton as sk


def test_joint_names_and_roots():
    assert len(sk.JOINT_NAMES) == 42 and len(set(sk.JOINT_NAMES)) == 42
    assert sk.JOINT_NAMES[0] == "right_thumb4" and sk.JOINT_NAMES[3] == "right_thumb1"
    assert sk.JOINT_NAMES[20] == "right_wrist" and sk.JOINT_NAMES[41] == "left_wrist"
    assert sk.ROOT_INDEX == {"right": 20, "left": 41}


def test_bones_form_two_trees_rooted_at_the_wrists():
    assert len(sk.BONES) == 40
    parents = sk.PARENTS
    assert parents[20] == -1 and parents[41] == -1
    for j in range(42):  # walking up the parents from any joint reaches its own hand's wrist
        k, steps = j, 0
        while parents[k] >= 0:
            k, steps = parents[k], steps + 1
        assert k == sk.ROOT_INDEX[sk.hand_of_joint(j)] and steps <= 4
    # the tip of each finger is 4 bones from the wrist
    assert sk.FINGER_CHAINS["index"] == (20, 7, 6, 5, 4)


def test_flip_perm_swaps_hands_and_is_an_involution():
    assert np.array_equal(sk.FLIP_PERM[sk.FLIP_PERM], np.arange(42))
    assert sk.JOINT_NAMES[sk.FLIP_PERM[0]] == "left_thumb4"


def test_rhd_mapping_round_trip():
    ours = np.arange(42 * 3, dtype=float).reshape(42, 3)
    rhd = ours[sk.OURS_TO_RHD]
    # RHD: 0 = left wrist, 1 = left thumb tip, 21 = right wrist, 26 = right index tip
    assert np.array_equal(rhd[0], ours[41]) and np.array_equal(rhd[1], ours[21])
    assert np.array_equal(rhd[21], ours[20]) and np.array_equal(rhd[26], ours[4])
    assert np.array_equal(rhd[sk.RHD_TO_OURS], ours)


def test_root_relative_numpy_and_torch():
    x = np.random.default_rng(0).normal(size=(5, 42, 3))
    r = sk.root_relative(x)
    assert np.allclose(r[:, 20], 0) and np.allclose(r[:, 41], 0)
    assert np.allclose(r[:, 3], x[:, 3] - x[:, 20]) and np.allclose(r[:, 30], x[:, 30] - x[:, 41])
    assert np.allclose(sk.root_relative(torch.from_numpy(x)).numpy(), r)


def _rotation(rng):
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_world_cam_round_trip_and_definition(rng):
    R, t = _rotation(rng), rng.normal(size=3) * 100
    world = rng.normal(size=(42, 3)) * 100
    cam = camera.world_to_cam(world, R, t)
    assert np.allclose(cam[7], R @ (world[7] - t))  # column-vector definition
    assert np.allclose(camera.cam_to_world(cam, R, t), world)
    # torch, batched
    Rt, tt = torch.from_numpy(np.stack([R, R])), torch.from_numpy(np.stack([t, t]))
    camt = camera.world_to_cam(torch.from_numpy(np.stack([world, world])), Rt, tt)
    assert np.allclose(camt[1].numpy(), cam)


def test_projection_lands_on_the_right_pixel_and_back_projects(rng):
    focal, princpt = np.array([500.0, 480.0]), np.array([128.0, 120.0])
    cam = np.array([[0.0, 0.0, 400.0], [40.0, -20.0, 400.0]])
    uv = camera.cam_to_pixel(cam, focal, princpt)
    assert np.allclose(uv[0], princpt)  # the optical axis hits the principal point
    assert np.allclose(uv[1], [128 + 40 / 400 * 500, 120 - 20 / 400 * 480])
    pts = rng.normal(size=(3, 42, 3)) * 50 + [0, 0, 600]
    f, c = np.tile(focal, (3, 1)), np.tile(princpt, (3, 1))
    uvb = camera.cam_to_pixel(pts, f, c)
    assert np.allclose(camera.pixel_to_cam(uvb, pts[..., 2], f, c), pts)
    uvt = camera.cam_to_pixel(torch.from_numpy(pts), torch.from_numpy(f), torch.from_numpy(c))
    assert np.allclose(uvt.numpy(), uvb)


def test_crop_intrinsics_match_cropping_the_pixels(rng):
    focal, princpt = np.array([600.0, 600.0]), np.array([320.0, 240.0])
    bbox = np.array([200.0, 100.0, 160.0, 160.0])
    cam = rng.normal(size=(42, 3)) * 40 + [0, 0, 500]
    uv = camera.cam_to_pixel(cam, focal, princpt)
    f2, c2 = camera.crop_intrinsics(focal, princpt, bbox, 256)
    expected = (uv - bbox[:2]) * 256 / bbox[2:]
    assert np.allclose(camera.cam_to_pixel(cam, f2, c2), expected)
    with pytest.raises(ValueError):
        sk.hands_present("both")
