"""h2t_lib.course.heatmap_views: a 2.5D heatmap target, its soft-argmax, and where each model spends compute."""
import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")

from h2t_lib import skeleton as sk  # noqa: E402
from h2t_lib.model.config import ModelConfig  # noqa: E402
from h2t_lib.model import Handformer2T  # noqa: E402
from h2t_lib.model.baseline import InterNetBaseline, InterNetConfig  # noqa: E402
from h2t_lib.course.heatmap_views import compute_split, heatmap_figure, soft_argmax, target_volume  # noqa: E402


def _sample(S=64):
    rng = np.random.default_rng(0)
    j = rng.normal(0, 30, (42, 3))
    j[:, 2] += 500
    f, c = np.array([80.0, 80.0]), np.array([S / 2, S / 2])
    uv = j[:, :2] / j[:, 2:] * f + c
    return {"image": torch.zeros(3, S, S), "joints_cam": j, "joints_img": uv, "joint_valid": np.ones(42),
            "hand_type": "interacting", "focal": f, "princpt": c}


def test_target_volume_sits_at_the_joint_and_soft_argmax_reads_it_back():
    cfg = InterNetConfig.preset("tiny")                       # 64 px: 16 x 16 cells, 16 depth bins
    s = _sample()
    j = 5
    t = target_volume(s, cfg, j)
    D, H, W = t["volume"].shape
    assert (D, H, W) == (cfg.depth_bins, 16, 16) and np.isclose(t["volume"].sum(), 1.0)
    assert np.allclose(t["voxel"][:2], s["joints_img"][j] * 16 / 64)          # x, y on the stride-4 grid
    root_z = s["joints_cam"][sk.ROOT_INDEX["right"], 2]
    z_mm = (t["voxel"][2] / cfg.depth_bins * 2 - 1) * cfg.depth_range_mm / 2
    assert np.isclose(z_mm, s["joints_cam"][j, 2] - root_z)                    # depth relative to its wrist
    if t["inside"]:
        assert np.allclose(soft_argmax(t["volume"]), t["voxel"], atol=1e-3)


def test_figure_has_image_and_two_projections():
    cfg = InterNetConfig.preset("tiny")
    s = _sample()
    fig = heatmap_figure(s, target_volume(s, cfg, 3), 3, regressed_uv=(10.0, 20.0))
    assert len(fig.axes) == 3 and len(fig.axes[1].images) == 1 and len(fig.axes[2].images) == 1


def test_compute_split_counts_backbone_and_outputs():
    h2t = Handformer2T(ModelConfig.preset("tiny"))
    net = InterNetBaseline(InterNetConfig.preset("tiny"))
    r = compute_split(h2t, net)
    for k in ("h2t", "internet"):
        assert r[k]["backbone"] > 0 and r[k]["after"] >= 0 and r[k]["total"] == r[k]["backbone"] + r[k]["after"]
    assert r["h2t"]["outputs"] == 42 * 4                                        # p (42 x 3) and u (42)
    cfg = net.cfg
    assert r["internet"]["outputs"] == 42 * cfg.depth_bins * cfg.heatmap_size ** 2
