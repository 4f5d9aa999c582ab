"""h2t_lib.course.refine_views: the figures and data behind notebooks 05 (refiner) and 06 (losses)."""
import math

import numpy as np
import pytest
import torch

from h2t_lib import skeleton as sk
from h2t_lib.camera import cam_to_pixel
from h2t_lib.model.config import ModelConfig
from h2t_lib.losses import RealNVP
from h2t_lib.course import refine_views as rv


@pytest.fixture(scope="module")
def tiny(fast_env):
    """A fresh tiny model (64 px) and one course test sample (fast data)."""
    from h2t_lib import course
    from h2t_lib.model import Handformer2T

    model = Handformer2T(ModelConfig.preset("tiny")).eval()
    sample = course.dataset("test", image_size=64)[0]
    return model, sample


@pytest.fixture(scope="module")
def preds(tiny):
    model, sample = tiny
    return rv.stage_predictions(model, sample)


def test_all_names_exported():
    from h2t_lib import course

    for name in rv.__all__:
        assert getattr(course, name) is getattr(rv, name)


def test_grid_to_cells_inverts_the_sampling_grid(tiny):
    model, _ = tiny
    kgff = model.stages[1].kgff
    S = kgff.image_size
    uv = torch.tensor([[[10.0, 20.0], [31.5, 0.0], [63.0, 40.25]]]).repeat(1, 14, 1)  # (1, 42, 2)
    h = w = 4  # a 4 x 4 map: one cell = S / 4 pixels
    grid = kgff.sampling_grid(uv, h, w)  # (1, 42, 9, 2)
    pix = rv.grid_to_cells(grid, S)
    assert np.allclose(pix[0, :, 4], uv[0].numpy(), atol=1e-4)  # the patch centre is the projected point
    cells = rv.grid_to_cells(grid, (w, h))
    expect = (uv[0].numpy() + 0.5) * w / S - 0.5
    assert np.allclose(cells[0, :, 4], expect, atol=1e-5)
    # row-major 3 x 3 patch, neighbours exactly one feature cell apart
    patch = cells[0, 0].reshape(3, 3, 2)
    assert np.allclose(np.diff(patch[..., 0], axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.diff(patch[..., 1], axis=0), 1.0, atol=1e-5)
    assert np.allclose(np.diff(patch[..., 0], axis=0), 0.0, atol=1e-5)


def test_kgff_patch_figure_draws_every_patch_point(tiny):
    model, sample = tiny
    kgff = model.stages[1].kgff
    uv = torch.rand(1, 42, 2) * 64
    fmap = torch.randn(2, 4, 4)
    grid = kgff.sampling_grid(uv, 4, 4)
    joints = (0, 20, 21, 41, 30)
    fig = rv.kgff_patch_figure(sample["image"], fmap, uv[0], grid[0], joints=joints)
    assert len(fig.axes) == 2
    for ax in fig.axes:
        offsets = [c.get_offsets() for c in ax.collections]
        n_patch = sum(len(o) for o in offsets if len(o) % 9 == 0 and len(o) >= 9)
        assert n_patch == 9 * len(joints)
    right = fig.axes[1].collections[0].get_offsets()  # right-hand patch points on the map
    assert np.allclose(right, rv.grid_to_cells(grid[0, [0, 20]], (4, 4)).reshape(-1, 2))
    with pytest.raises(ValueError, match="channels, h, w"):
        rv.kgff_patch_figure(sample["image"], fmap[0], uv[0], grid[0])


def test_stage_predictions_match_the_model(tiny, preds):
    model, sample = tiny
    N = model.cfg.effective_stages
    assert preds["p"].shape == (N, 42, 3) and preds["uv"].shape == (N, 42, 2) and preds["sigma"].shape == (N, 42)
    assert preds["kgff_uv"].shape == (N - 1, 42, 2)
    # the root used is the GT wrists; each stage's pixels are its pose + that root, projected
    assert np.allclose(preds["root"], sample["joints_cam"][[20, 41]].numpy(), atol=1e-4)
    cam = torch.as_tensor(preds["p"]) + torch.as_tensor(preds["root"]).repeat_interleave(21, 0)
    uv = cam_to_pixel(cam, sample["focal"].double(), sample["princpt"].double())
    assert np.allclose(preds["uv"], uv.numpy(), atol=1e-3)
    # refiner stage 2 sampled at stage 1's projection (Eq. 13)
    assert np.allclose(preds["kgff_uv"][0], preds["uv"][0], atol=1e-3)
    with torch.no_grad():
        out = model(sample["image"][None], sample["focal"][None], sample["princpt"][None],
                    root_cam=sample["joints_cam"][None, [20, 41]])
    assert np.allclose(preds["p"][-1], out["p"][-1][0].numpy(), atol=1e-4)
    assert np.allclose(preds["sigma"][0], out["u"][0][0, :, 0].numpy() * model.cfg.norm_mm, atol=1e-4)
    gt = sk.root_relative(sample["joints_cam"].numpy().astype(np.float64))
    v = sample["joint_valid"].numpy() > 0
    assert np.allclose(preds["errors"][0], np.linalg.norm(preds["p"][0] - gt, axis=-1)[v].mean(), atol=1e-4)
    with pytest.raises(ValueError, match="root_source"):
        rv.stage_predictions(model, sample, root_source="oracle")


def test_stage_figures(preds):
    N = len(preds["p"])
    fig = rv.stage_overlay_figure(preds)
    assert len(fig.axes) == N + 1
    assert "ground truth" in fig.axes[0].get_title()
    all3d = rv.stage_figure_3d(preds)
    names = {t.name for t in all3d.data}
    assert len(names) == N + 1 and "ground truth" in names
    one = rv.stage_view(preds, 2)
    names = [t.name for t in one.data if t.showlegend]
    assert names[0] == "ground truth" and names[1].startswith("stage 2") and len(names) == 2
    # the stage's 3D points are its root-relative pose with the hands moved apart
    markers = [t for t in one.data if t.mode == "markers" and t.name.startswith("stage 2")]
    right = np.array([markers[0].x, markers[0].y, markers[0].z]).T
    v = preds["valid"][:21] > 0
    assert np.allclose(right, preds["p"][1][:21][v] + [-rv.HAND_SHIFT_MM, 0, 0])
    with pytest.raises(ValueError, match="out of range"):
        rv.stage_view(preds, N + 1)


def test_pqe_attention_and_mpjpe_figures():
    w = torch.softmax(torch.randn(1, 4, 2, 2), -1)
    fig = rv.pqe_attention_figure(w, w)
    assert len(fig.axes) == 8
    assert len(fig.axes[0].texts) == 4  # the four weights written in
    with pytest.raises(ValueError):
        rv.pqe_attention_figure(w, w[:, :2])
    res = {"num_stages": 2, "rows": [
        {"name": "stage 1 (coarse)", "single": 50.0, "interacting": 60.0, "all": 55.0},
        {"name": "stage 2 (refined, final)", "single": 40.0, "interacting": None, "all": 42.0},
        {"name": "reference: mean training pose", "single": 90.0, "interacting": 95.0, "all": 93.0}]}
    fig = rv.stage_mpjpe_figure(res)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert len(heights) == 6 and heights[:2] == [50.0, 40.0]
    assert any(np.allclose(line.get_ydata(), 93.0) for line in ax.lines)


def test_reference_densities_integrate_to_one():
    x = np.linspace(-40, 40, 40001)
    for b in (0.5, 1.0, 2.0):
        assert np.trapezoid(rv.laplace_density(x, b), x) == pytest.approx(1.0, abs=1e-4)
        assert np.trapezoid(rv.gaussian_density(x, b), x) == pytest.approx(1.0, abs=1e-4)
    assert rv.laplace_density(0.0, 2.0) == pytest.approx(0.25)
    assert rv.gaussian_density(0.0) == pytest.approx(1 / math.sqrt(2 * math.pi))


def test_flow_density_slices_of_an_identity_flow_are_gaussian():
    flow = RealNVP(3)  # starts as (almost) the identity: G_phi = N(0, I)
    t = np.linspace(-5, 5, 201)
    d = rv.flow_density_slices(flow, t, axis=1)
    for k in ("flow", "rle", "laplace", "gaussian"):
        assert np.trapezoid(d[k], t) == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(d["flow"], d["gaussian"], atol=2e-3)
    g_l = rv.gaussian_density(t) * rv.laplace_density(t, math.sqrt(2))
    assert np.allclose(d["rle"], g_l / np.trapezoid(g_l, t), atol=2e-3)
    fig = rv.rle_density_figure([flow, flow], residuals=[np.random.default_rng(0).laplace(size=(50, 3))] * 2)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 4 and len(fig.axes[0].patches) == 60


def test_rle_residuals_and_sigma_vs_error(rng):
    M = 5
    gt_cam = rng.normal(0, 50, (M, 42, 3)) + [0, 0, 500]
    gt = sk.root_relative(gt_cam)
    p = gt + rng.normal(0, 10, gt.shape)
    sigma = rng.uniform(5, 15, (M, 42))
    valid = np.ones((M, 42))
    valid[0, 3] = 0
    r = rv.rle_residuals(p, sigma, gt, valid)
    assert r.shape == (M * 42 - 1, 3)
    assert np.allclose(r[0], (p[0, 0] - gt[0, 0]) / sigma[0, 0])
    assert np.allclose(rv.rle_residuals(p, sigma[..., None], gt, valid), r)
    preds = {"p": p[None], "sigma": sigma[None], "joints_cam": gt_cam, "joint_valid": valid}
    s, e = rv.sigma_vs_error(preds)
    assert len(s) == len(e) == M * 40 - 1  # wrists and the invalid joint left out
    assert np.allclose(e[0], np.abs(p[0, 0] - gt[0, 0]).mean())
    fig = rv.sigma_error_figure(s, e, bins=4)
    assert len(fig.axes[0].lines) == 2
    assert len(rv.mmd_kernel_figure((0.1, 0.2)).axes[0].lines) == 3


def test_l1_pose_loss_by_hand(rng):
    B = 3
    gt_cam = torch.as_tensor(rng.normal(0, 50, (B, 42, 3)) + [0, 0, 500]).float()
    gt = sk.root_relative(gt_cam)
    ps = [gt + 1.0, gt - 2.0]
    valid = torch.ones(B, 42)
    valid[1, :21] = 0
    loss = rv.l1_pose_loss({"p": ps}, {"joints_cam": gt_cam, "joint_valid": valid}, 200.0)
    n_valid_coords = (valid.sum() * 3).item()
    assert loss.item() == pytest.approx((1.0 + 2.0) / 200.0 * n_valid_coords / B, rel=1e-5)


def test_train_loss_variant_trains_the_flows_only_with_rle(fast_env):
    from h2t_lib import course

    data = torch.utils.data.Subset(course.dataset("train", image_size=64), range(8))
    cfg = ModelConfig.preset("tiny")
    m1, c1, h1 = rv.train_loss_variant(cfg, data, "l1", steps=2, batch_size=4, log_every=1)
    m2, c2, h2 = rv.train_loss_variant(cfg, data, "rle", steps=2, batch_size=4, log_every=1)
    assert [h["step"] for h in h1] == [1, 2] and not m1.training
    # the flows start identical (seeded); only RLE trains them
    from h2t_lib.losses import Handformer2TLoss
    from h2t_lib.utils import seed_everything

    seed_everything(0)
    init = Handformer2TLoss(cfg).flows[0].scale_nets[0][0].weight
    assert torch.equal(c1.flows[0].scale_nets[0][0].weight, init)
    assert not torch.equal(c2.flows[0].scale_nets[0][0].weight, init)
    # same seed, same data: the first step's losses agree across the two runs
    assert h1[0]["rle"] == pytest.approx(h2[0]["rle"], rel=1e-4)
    assert h1[0]["l1"] == pytest.approx(h2[0]["l1"], rel=1e-4)
    # different objectives give different models
    assert not torch.equal(m1.stages[0].pos, m2.stages[0].pos)
    with pytest.raises(ValueError, match="rle"):
        rv.train_loss_variant(cfg, data, "l2", steps=1)
