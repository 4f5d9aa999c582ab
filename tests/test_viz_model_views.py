"""Tests of h2t_lib.course.model_views (the functions behind notebooks 02-04)."""
import numpy as np
import pytest
import torch

from h2t_lib import skeleton as sk
from h2t_lib import course
from h2t_lib.model.config import PAPER_SIZES_M, ModelConfig
from h2t_lib.model import Handformer2T
from h2t_lib.model.feature_extractor import LevelFeature, fixed_generator
from h2t_lib.model.params import count_parameters, preset_counts


@pytest.fixture(scope="module")
def tiny_model():
    return Handformer2T(ModelConfig.preset("tiny")).eval()


@pytest.fixture(scope="module")
def samples():
    from h2t_lib import course

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("H2T_FAST", "1")  # the course's small test split (as the test session sets it)
        ds = course.dataset("test", image_size=64)
        return [ds[i] for i in range(6)]


def _level_feature():
    return LevelFeature(channels=8, size=4, sampled_channels=2, feat_len=8 + 2 * 16 + 20, generator=fixed_generator(0, 1, 4))


# ---------------------------------------------------------------- notebook 02
def test_feature_parts_and_mask_match_level_feature():
    lf = _level_feature()
    parts = course.feature_parts(lf)
    assert parts == {"c": 8, "hw": 16, "c_tilde": 2, "n1": 8, "n2": 32, "n3": 20, "total": 60}
    mask = course.sampling_mask(lf)
    assert mask.shape == (8, 16)
    assert (mask == 2).sum() == parts["n2"] and (mask == 3).sum() == parts["n3"]
    assert (mask[lf.chan_idx.numpy()] == 2).all()
    # the mask, read in flat (channel-major) order, selects exactly f_i,3 of the library's forward
    F = torch.randn(3, 8, 4, 4)
    f, pooled = lf(F)
    flat = F.reshape(3, -1)[:, torch.from_numpy(np.flatnonzero(mask.reshape(-1) == 3))]
    assert torch.allclose(f[:, parts["n1"] + parts["n2"]:], flat)
    assert torch.allclose(f[:, : parts["n1"]], F.mean(dim=(2, 3)))


def test_feature_figures():
    lf = _level_feature()
    maps = [torch.randn(8, 4, 4), torch.randn(16, 2, 2)]
    fig = course.feature_maps_figure(maps, channels=3)
    assert len(fig.axes) == 6
    fig = course.feature_maps_figure({"a": maps[0]}, channels=[[1, 5]])
    assert len(fig.axes) == 2 and fig.axes[1].get_title() == "ch 5"
    with pytest.raises(ValueError):
        course.feature_maps_figure([torch.randn(1, 8, 4, 4)])
    assert len(course.sampling_mask_figure(lf).axes) == 1
    f, _ = lf(torch.randn(1, 8, 4, 4))
    fig = course.feature_vector_figure(f[0], course.feature_parts(lf))
    assert len(fig.axes[0].lines) == 3
    with pytest.raises(ValueError):
        course.feature_vector_figure(f[0, :-1], course.feature_parts(lf))


# ---------------------------------------------------------------- notebook 03
@pytest.mark.parametrize("T,d,heads", [(2, 32, 2), (7, 16, 4)])
def test_mhsa_flops_formula_matches_pytorch_counter(T, d, heads):
    formula = course.mhsa_flops(T, d, 2 * d)
    assert formula["total"] == sum(v for k, v in formula.items() if k != "total")
    assert course.measure_mhsa_flops(T, d, heads, 2 * d) == formula["total"]
    assert course.measure_mhsa_flops(T, d, heads, 2 * d, batch=3) == course.mhsa_flops(T, d, 2 * d, batch=3)["total"]


def test_mhsa_flops_scaling():
    a, b = course.mhsa_flops(10, 64, 128), course.mhsa_flops(20, 64, 128)
    assert b["attention"] == 4 * a["attention"]
    assert b["qkv_out_proj"] == 2 * a["qkv_out_proj"] and b["ffn"] == 2 * a["ffn"]


def test_time_mhsa_positive():
    assert course.time_mhsa(2, 16, 2, 32, batch=2, min_run_time=0.01) > 0


def test_param_breakdown_tokens():
    bd = course.param_breakdown(("tiny",), ("hand", "joint"))
    hand, joint = bd["tiny hand"], bd["tiny joint"]
    cfg = ModelConfig.preset("tiny")
    assert hand["total"] == count_parameters(Handformer2T(cfg))["total"]
    assert hand["components"]["backbone"] == joint["components"]["backbone"]
    # one tokenizer MLP per token: 42 / 2 = 21 times the parameters
    assert joint["components"]["tokenizers"] == 21 * hand["components"]["tokenizers"]
    fig = course.param_breakdown_figure(bd)
    assert len(fig.axes[0].patches) == 2 * len(hand["components"])


def test_paper_size_rows():
    rows = course.paper_size_rows()
    assert len(rows) == len(PAPER_SIZES_M) == 8
    r = next(r for r in rows if r["preset"] == "r50-d256" and r["tokens"] == "joint")
    assert r["table"] == 6 and r["paper_m"] == 99.4
    assert r["ours_m"] == pytest.approx(preset_counts("r50-d256", "joint")["total"] / 1e6)
    assert all(abs(r["diff_pct"]) < 10 for r in rows)
    assert all(r["diff_pct"] == pytest.approx(100 * (r["ours_m"] - r["paper_m"]) / r["paper_m"]) for r in rows)


def test_attention_cost_figure():
    T = [2, 8, 42]
    flops = {k: [course.mhsa_flops(t, 32, 64)[k] for t in T] for k in ("qkv_out_proj", "attention", "ffn")}
    assert len(course.attention_cost_figure(T, flops).axes) == 1
    fig = course.attention_cost_figure(T, flops, seconds=[1e-3, 2e-3, 5e-3])
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 1


# ---------------------------------------------------------------- notebook 04
def test_coarse_attention_matches_forward(tiny_model, samples):
    from h2t_lib.engine.train import gt_roots

    maps = course.coarse_attention(tiny_model, samples)
    cfg = tiny_model.cfg
    assert maps.shape == (len(samples), cfg.num_layers, cfg.num_heads, 2, 2)
    assert np.allclose(maps.sum(-1), 1.0, atol=1e-5)
    batch = course.stack_samples(samples)
    assert batch["image"].shape == (len(samples), 3, 64, 64)
    with torch.no_grad():
        out = tiny_model(batch["image"], batch["focal"], batch["princpt"], gt_roots(batch), return_attention=True)
    assert np.allclose(maps[:, 0], out["attention"]["coarse"][0].numpy(), atol=1e-6)
    cross = course.cross_hand_attention(maps)
    assert cross.shape == (len(samples), cfg.num_layers) and ((cross >= 0) & (cross <= 1)).all()
    fig = course.attention_heatmaps_figure(maps, row_titles=[str(i) for i in range(len(samples))])
    assert len(fig.axes) == len(samples) * cfg.num_layers
    fig = course.attention_heatmaps_figure(maps[:1], per_head=True)
    assert len(fig.axes) == cfg.num_layers * cfg.num_heads
    types = [s["hand_type"] for s in samples]
    assert len(course.cross_hand_attention_figure(cross, types).axes) == 1


def test_cross_hand_attention_values():
    eye = np.broadcast_to(np.eye(2), (3, 2, 4, 2, 2))
    assert np.allclose(course.cross_hand_attention(eye), 0.0)
    assert np.allclose(course.cross_hand_attention(np.full((3, 2, 4, 2, 2), 0.5)), 0.5)
    m = np.zeros((1, 1, 2, 2, 2))
    m[0, 0, 0] = [[0.0, 1.0], [0.0, 1.0]]  # head 0: right -> left 1.0, left -> left (self)
    m[0, 0, 1] = [[1.0, 0.0], [1.0, 0.0]]  # head 1: right -> self, left -> right 1.0
    assert np.allclose(course.cross_hand_attention(m), 0.5)
    with pytest.raises(ValueError):
        course.cross_hand_attention(np.zeros((1, 1, 1, 42, 42)))


def _fake_pred(M=5, seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.normal(0, 50, (M, 42, 3)) + np.array([0, 0, 500.0])
    offset = rng.normal(0, 10, (M, 42, 3))
    offset[:, [20, 41]] = 0.0
    rel = sk.root_relative(gt) + offset  # predicted root-relative joints
    err = np.linalg.norm(offset, axis=-1)  # (M, 42)
    valid = np.ones((M, 42))
    valid[0, 3] = 0
    return {"p": rel[None], "sigma": (2.0 * err + 1.0)[None], "joints_cam": gt, "joint_valid": valid}, err


def test_uncertainty_vs_error_reference():
    pred, err = _fake_pred()
    data = course.uncertainty_vs_error(pred, stage=0)
    M = err.shape[0]
    assert len(data["sigma"]) == M * 40 - 1  # wrists and one invalid joint left out
    assert not np.isin(data["joint"], [20, 41]).any()
    assert np.allclose(data["error"], (data["sigma"] - 1.0) / 2.0)
    assert data["spearman"] == pytest.approx(1.0)
    assert np.allclose(data["joint_error"][4], err[:, 4].mean())
    assert np.allclose(data["joint_error"][3], err[1:, 3].mean())  # sample 0 invalid at joint 3
    assert np.isnan(data["joint_sigma"][20]) and np.isnan(data["joint_sigma"][41])
    fig = course.uncertainty_error_figure(data)
    assert len(fig.axes) == 2 and len(fig.axes[1].collections) == 2


def test_exports_do_not_clash_with_other_course_modules():
    import importlib

    from h2t_lib.course import model_views

    for name in model_views.__all__:
        assert getattr(course, name) is getattr(model_views, name), name
    for other in ("data_views", "refine_views", "eval_views", "results_views", "image_views"):
        mod = importlib.import_module(f"h2t_lib.course.{other}")
        assert not set(model_views.__all__) & set(getattr(mod, "__all__", [])), other
