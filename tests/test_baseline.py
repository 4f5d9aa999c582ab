"""The InterNet-style heatmap baseline: shapes, soft-argmax, decoding to millimetres, loss, gradients."""
import pytest
import torch

from h2t_lib import camera
from h2t_lib.model.baseline import (
    InterNetBaseline,
    InterNetConfig,
    InterNetLoss,
    bins_to_mm,
    count_parameters,
    internet_targets,
    soft_argmax_1d,
    soft_argmax_3d,
)
from h2t_lib.skeleton import ROOT_INDEX, root_relative

TINY = InterNetConfig.preset("tiny")  # resnet18, 64 px, 16^3 heatmaps


@pytest.fixture(scope="module")
def model():
    return InterNetBaseline(TINY).eval()


def _intrinsics(b, s):
    g = torch.Generator().manual_seed(1)
    focal = 300 + 50 * torch.rand(b, 2, generator=g)
    princpt = s / 2 + 4 * torch.randn(b, 2, generator=g)
    return focal, princpt


def _delta_logits(voxels, d, h, w, peak=60.0):
    """(B, J, 3) integer voxels (x, y, z) -> logits (B, J, D, H, W) that are deltas there."""
    b, j, _ = voxels.shape
    logits = torch.zeros(b, j, d, h, w)
    bi, ji = torch.meshgrid(torch.arange(b), torch.arange(j), indexing="ij")
    logits[bi, ji, voxels[..., 2], voxels[..., 1], voxels[..., 0]] = peak
    return logits


def test_output_shapes_and_root_relative(model):
    b, s = 2, TINY.image_size
    focal, princpt = _intrinsics(b, s)
    with torch.no_grad():
        out = model(torch.rand(b, 3, s, s), focal, princpt)
    assert len(out["p"]) == len(out["u"]) == 1
    p = out["p"][-1]
    assert p.shape == (b, 42, 3) and out["u"][-1].shape == (b, 42, 1) and out["root"].shape == (b, 2, 3)
    assert torch.all(out["u"][-1] > 0) and torch.isfinite(p).all() and torch.isfinite(out["root"]).all()
    assert torch.allclose(p[:, [ROOT_INDEX["right"], ROOT_INDEX["left"]]], torch.zeros(b, 2, 3))
    assert out["joints_grid"].shape == (b, 42, 3) and out["hand_logits"].shape == (b, 2)
    hm = TINY.heatmap_size
    assert TINY.heatmap_size == s // 4
    assert (out["joints_grid"][..., :2] >= 0).all() and (out["joints_grid"][..., :2] <= hm - 1).all()
    # without root_cam the right hand's box is centred at the RootNet-style guess f * crop_extent_mm / S
    wrist_in_box = bins_to_mm(out["joints_grid"][:, ROOT_INDEX["right"], 2], TINY.depth_bins, TINY.depth_range_mm)
    assert torch.allclose(out["root"][:, 0, 2], focal.mean(-1) * TINY.crop_extent_mm / s + wrist_in_box)


def test_soft_argmax_of_a_delta_returns_its_voxel():
    d, h, w = 5, 7, 9  # all different, so a mixed-up axis shows
    g = torch.Generator().manual_seed(0)
    vox = torch.stack([torch.randint(0, w, (3, 4), generator=g), torch.randint(0, h, (3, 4), generator=g),
                       torch.randint(0, d, (3, 4), generator=g)], dim=-1)  # (3, 4, 3) as (x, y, z)
    got = soft_argmax_3d(_delta_logits(vox, d, h, w))
    assert torch.allclose(got, vox.float(), atol=1e-4)
    # a flat heatmap gives the centre of the volume
    centre = soft_argmax_3d(torch.zeros(1, 1, d, h, w))
    assert torch.allclose(centre, torch.tensor([[[(w - 1) / 2, (h - 1) / 2, (d - 1) / 2]]]))
    logits = torch.zeros(2, 10)
    logits[0, 3] = logits[1, 8] = 60.0
    assert torch.allclose(soft_argmax_1d(logits), torch.tensor([3.0, 8.0]), atol=1e-4)


def test_decoding_deltas_at_projections_with_gt_root_depth_reproduces_the_joints(model):
    """Joints built so that they project onto grid voxels; delta heatmaps there -> the same joints in mm."""
    b, s, hm, d = 2, TINY.image_size, TINY.heatmap_size, TINY.depth_bins
    stride = s / hm
    focal, princpt = _intrinsics(b, s)
    g = torch.Generator().manual_seed(3)
    vox = torch.stack([torch.randint(1, hm - 1, (b, 42), generator=g), torch.randint(1, hm - 1, (b, 42), generator=g),
                       torch.randint(1, d - 1, (b, 42), generator=g)], dim=-1)
    wrist_z = torch.tensor([[520.0, 560.0], [700.0, 640.0]])  # (B, 2) ground-truth wrist depths, right / left
    # the wrists' own depth bin is the box centre (z relative to the wrist = 0)
    vox[:, [ROOT_INDEX["right"], ROOT_INDEX["left"]], 2] = d // 2
    z = wrist_z.repeat_interleave(21, dim=1) + (vox[..., 2] / d * 2 - 1) * TINY.depth_range_mm / 2  # (B, 42)
    u, v = vox[..., 0] * stride, vox[..., 1] * stride
    joints = torch.stack([(u - princpt[:, None, 0]) / focal[:, None, 0] * z,
                          (v - princpt[:, None, 1]) / focal[:, None, 1] * z, z], dim=-1)  # (B, 42, 3)
    root_cam = joints[:, [ROOT_INDEX["right"], ROOT_INDEX["left"]]]
    assert torch.allclose(root_cam[..., 2], wrist_z)
    # the projections are the voxels' pixels
    assert torch.allclose(camera.cam_to_pixel(joints, focal, princpt) / stride, vox[..., :2].float(), atol=1e-3)

    logits = _delta_logits(vox, d, hm, hm)
    rel_bin = torch.tensor([8, 4])  # root bin k -> (k / K * 2 - 1) * 200 mm
    root_logits = torch.zeros(b, TINY.root_bins)
    root_logits[torch.arange(b), rel_bin] = 60.0
    model.heatmaps = lambda image: (logits, root_logits, torch.zeros(b, 2))  # bypass the network, keep forward
    try:
        out = model(torch.zeros(b, 3, s, s), focal, princpt, root_cam=root_cam)
    finally:
        del model.heatmaps
    assert torch.allclose(out["p"][-1], root_relative(joints), atol=1e-2)
    assert torch.allclose(out["joints_img"], torch.stack([u, v], -1).float(), atol=1e-3)
    rel_mm = bins_to_mm(rel_bin.float(), TINY.root_bins, TINY.root_range_mm)
    assert torch.allclose(out["rel_root_depth"], rel_mm, atol=1e-2)
    assert torch.allclose(out["root"][:, 0], root_cam[:, 0], atol=1e-2)  # right wrist at its GT depth
    assert torch.allclose(out["root"][:, 1, 2], wrist_z[:, 0] + rel_mm, atol=1e-2)  # left = right + predicted offset

    # and the loss targets of these joints are exactly those voxels
    batch = {"joints_img": camera.cam_to_pixel(joints, focal, princpt), "joints_cam": joints,
             "joint_valid": torch.ones(b, 42), "hand_type": ["interacting", "right"], "image": torch.zeros(b, 3, s, s)}
    t = internet_targets(batch, TINY, s, hm)
    assert torch.allclose(t["joints_grid"], vox.float(), atol=1e-3)
    assert torch.equal(t["joint_mask"], torch.ones(b, 42))
    assert torch.equal(t["hand_type"], torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
    assert t["root_mask"].tolist() == [1.0, 0.0]  # the relative root depth is learnt on interacting samples only
    rel_gt = bins_to_mm(t["rel_root_bins"], TINY.root_bins, TINY.root_range_mm)
    assert torch.allclose(rel_gt, wrist_z[:, 1] - wrist_z[:, 0])


def test_loss_is_zero_at_the_target_and_gradients_reach_every_part():
    m = InterNetBaseline(TINY).train()
    b, s = 2, TINY.image_size
    focal, princpt = _intrinsics(b, s)
    g = torch.Generator().manual_seed(5)
    joints = torch.randn(b, 42, 3, generator=g) * 30 + torch.tensor([0.0, 0.0, 500.0])
    valid = torch.ones(b, 42)
    valid[1, 21:] = 0  # a right-hand sample: the left hand is absent
    batch = {"image": torch.rand(b, 3, s, s, generator=g), "joints_cam": joints,
             "joints_img": camera.cam_to_pixel(joints, focal, princpt), "joint_valid": valid,
             "hand_type": ["interacting", "right"]}
    crit = InterNetLoss(TINY)
    out = m(batch["image"], focal, princpt, root_cam=joints[:, [20, 41]])
    terms = crit(out, batch)
    assert set(terms) == {"total", "joint", "hand_type", "rel_root"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in terms.values()) and terms["joint"] > 0
    terms["total"].backward()
    for name in ("backbone.0.weight", "joint_heads.0.0.weight", "joint_heads.1.3.weight", "root_fc.0.weight",
                 "hand_fc.2.weight"):
        grad = dict(m.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    # a perfect prediction costs nothing in the regression terms
    t = internet_targets(batch, TINY, s, TINY.heatmap_size)
    perfect = {"joints_grid": t["joints_grid"], "rel_root_bins": t["rel_root_bins"],
               "hand_logits": (t["hand_type"] * 2 - 1) * 30}
    zero = crit(perfect, batch)
    assert zero["joint"] == 0 and zero["rel_root"] == 0 and zero["hand_type"] < 1e-6


def test_same_seed_same_weights_and_paper_size():
    a, b = InterNetBaseline(TINY), InterNetBaseline(TINY)
    torch.manual_seed(123)  # the global RNG does not matter
    c = InterNetBaseline(InterNetConfig.preset("tiny", seed=1))
    wa, wb, wc = (dict(m.named_parameters())["joint_heads.0.3.weight"] for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    with torch.device("meta"):  # count the paper setting without allocating it
        paper = InterNetBaseline(InterNetConfig.preset("paper"))
    n = count_parameters(paper)
    assert 45e6 < n < 50e6  # InterNet reports 47 M; ResNet-50 + two deconv heads + two MLPs come to ~47.3 M
    assert paper.cfg.heatmap_size == 64 and paper.cfg.depth_bins == 64


def test_bad_inputs_give_clear_errors(model):
    f, c = _intrinsics(1, 64)
    with pytest.raises(ValueError, match="image must be"):
        model(torch.rand(1, 64, 64), f, c)
    with pytest.raises(ValueError, match="multiple of 32"):
        model(torch.rand(1, 3, 60, 60), f, c)
    with pytest.raises(ValueError, match="focal"):
        model(torch.rand(1, 3, 64, 64), f[0], c)
    with pytest.raises(ValueError, match="root_cam"):
        model(torch.rand(1, 3, 64, 64), f, c, root_cam=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="backbone"):
        InterNetConfig(backbone="vgg16")
    with pytest.raises(ValueError, match="preset"):
        InterNetConfig.preset("huge")
