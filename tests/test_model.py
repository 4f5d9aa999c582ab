"""Handformer2T (paper Sec. 3): config, shapes, gradients, KGFF geometry, determinism, checkpoints, sizes.

Only the tiny preset (64 px) runs forward passes; the big presets are built on the meta device.
"""
import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from h2t_lib import camera
from h2t_lib.engine.checkpoint import load_checkpoint, save_checkpoint
from h2t_lib.apps.cli import main as cli_main
from h2t_lib.model.config import PAPER_SIZES_M, PRESETS, ModelConfig
from h2t_lib.model import (
    GroupedLinear, Handformer2T, KeypointGuidedFusion, LevelFeature, ResNetBackbone, TokenMLP, build_resnet,
    count_parameters,
)
from h2t_lib.model.params import build_for_counting, preset_counts

TINY = ModelConfig.preset("tiny")


def make_inputs(cfg, B=2, seed=0, depth=500.0):
    """Random crops with plausible crop intrinsics and GT wrists in front of the camera."""
    g = torch.Generator().manual_seed(seed)
    S = cfg.image_size
    image = torch.rand(B, 3, S, S, generator=g)
    focal = torch.full((B, 2), 1.2 * S)
    princpt = torch.full((B, 2), S / 2) + torch.randn(B, 2, generator=g)
    root = torch.randn(B, 2, 3, generator=g) * torch.tensor([40.0, 40.0, 20.0]) + torch.tensor([0.0, 0.0, depth])
    return image, focal, princpt, root


@pytest.fixture(scope="module")
def tiny_model():
    return Handformer2T(TINY).eval()


# ---------------------------------------------------------------------- config
def test_presets_validate_and_round_trip_through_dicts():
    assert {"tiny", "cpu", "paper", "r34-d128", "r34-d256", "r34-d512", "r50-d128", "r50-d256", "r50-d512"} <= set(PRESETS)
    for name in PRESETS:
        cfg = ModelConfig.preset(name)
        d = json.loads(json.dumps(cfg.to_dict()))  # JSON-able
        assert ModelConfig.from_dict(d) == cfg
    assert ModelConfig.preset("paper") == ModelConfig.preset("r50-d256")
    assert ModelConfig.preset("r34-d128").backbone == "resnet34" and ModelConfig.preset("r34-d128").dim == 128
    joint = dataclasses.replace(TINY, tokens="joint")
    assert joint.num_joint_tokens == 42 and TINY.num_joint_tokens == 2
    assert dataclasses.replace(TINY, use_pqe=False).effective_stages == 1


@pytest.mark.parametrize(
    "change, fix",
    [
        (dict(feat_len=(0, 0, 512, 560)), "raise feat_len"),  # level 4 needs 512 + 4 * 16 = 576
        (dict(image_size=100), "multiple of 32"),
        (dict(dim=33), "divisible by num_heads"),
        (dict(tokens="finger"), "'hand'"),
        (dict(backbone="vgg16"), "resnet50"),
        (dict(root_source="oracle"), "'gt' or 'pred'"),
        (dict(kpt_channels=(0, 0, 0, 2)), "kpt_channels"),
    ],
)
def test_bad_config_gives_a_clear_error(change, fix):
    with pytest.raises(ValueError, match=fix):
        dataclasses.replace(TINY, **change)


def test_unknown_preset_and_unknown_fields_are_named():
    with pytest.raises(ValueError, match="tiny"):
        ModelConfig.preset("huge")
    with pytest.raises(ValueError, match="colour"):
        ModelConfig.from_dict({**TINY.to_dict(), "colour": "red"})


# ---------------------------------------------------------------------- shapes
@pytest.mark.parametrize("preset", ["tiny", "cpu"])
def test_forward_shapes(preset):
    cfg = ModelConfig.preset(preset)
    model = Handformer2T(cfg).eval()
    image, focal, princpt, root = make_inputs(cfg, B=2)
    with torch.no_grad():
        out = model(image, focal, princpt, root_cam=root)
    N = cfg.num_stages
    assert len(out["p"]) == len(out["u"]) == N
    for p, u in zip(out["p"], out["u"]):
        assert p.shape == (2, 42, 3) and u.shape == (2, 42, 1)
        assert torch.isfinite(p).all() and (u > 0).all() and (u <= 1 + 1e-6).all()
    assert out["root"].shape == (2, 2, 3) and (out["root"][..., 2] > 0).all()


@pytest.mark.parametrize("preset", [p for p in PRESETS if p not in ("tiny", "cpu")])
def test_big_presets_build_with_their_shapes(preset):
    model = build_for_counting(ModelConfig.preset(preset))  # meta device: shapes only
    cfg = model.cfg
    assert len(model.stages) == cfg.num_stages
    level = cfg.stage_level(0)
    f1_len = cfg.feat_len[level - 1]
    assert model.stages[0].tokenizer.mlp.fc1.weight.shape == (2 * cfg.dim, f1_len)  # two MLPs f_1 -> c_e (Eq. 6)
    kgff = model.stages[1].kgff
    assert kgff.out_dim == 9 * 21 * cfg.kpt_channels[cfg.stage_level(1) - 1] + cfg.channels[cfg.stage_level(1) - 1]


def test_variants_run_joint_tokens_no_kgff_no_pqe_three_stages():
    image, focal, princpt, root = make_inputs(TINY, B=2)
    for change, T, N in [
        (dict(tokens="joint"), 42, 2),
        (dict(use_kgff=False), 2, 2),
        (dict(use_pqe=False), 2, 1),
        (dict(num_stages=3, refine_residual=True), 2, 3),
        (dict(tokens="joint", use_kgff=False), 42, 2),
    ]:
        cfg = dataclasses.replace(TINY, **change)
        model = Handformer2T(cfg).eval()
        with torch.no_grad():
            out = model(image, focal, princpt, root, return_attention=True)
        assert len(out["p"]) == N and out["p"][-1].shape == (2, 42, 3), change
        att = out["attention"]
        assert [w.shape for w in att["coarse"]] == [(2, cfg.num_heads, T, T)] * cfg.num_layers
        assert len(att["cross"]) == N - 1 and all(w.shape == (2, cfg.num_heads, T, T) for w in att["cross"])
        # attention rows are distributions over the keys
        for w in att["coarse"] + att["self"] + att["cross"]:
            assert torch.allclose(w.sum(-1), torch.ones(()), atol=1e-5)
        assert len(out["kgff_uv"]) == (N - 1 if cfg.use_kgff else 0)
        if not cfg.use_kgff:
            assert all(stage.kgff is None for stage in model.stages[1:])


# ---------------------------------------------------------------------- gradients
@pytest.mark.parametrize("change", [{}, {"tokens": "joint"}, {"use_kgff": False, "num_stages": 3}])
def test_gradients_reach_every_trainable_parameter(change):
    cfg = dataclasses.replace(TINY, **change)
    model = Handformer2T(cfg).train()
    image, focal, princpt, root = make_inputs(cfg, B=3)
    out = model(image, focal, princpt, root_cam=root)
    loss = sum(p.square().mean() for p in out["p"]) + sum(u.log().mean() for u in out["u"]) + out["root"].square().mean()
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not dead, f"no gradient reaches {dead[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_stages_are_detached_from_each_other():
    model = Handformer2T(TINY).train()
    image, focal, princpt, root = make_inputs(TINY, B=2)
    out = model(image, focal, princpt, root_cam=root)
    out["p"][-1].sum().backward()  # the refiner's output only
    coarse_head = model.stages[0].head.mlp.fc2.weight
    assert coarse_head.grad is None or coarse_head.grad.abs().sum() == 0  # p^(1) was detached (Poseur-like)
    assert model.stages[1].head.mlp.fc2.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------- KGFF geometry
def test_kgff_projection_matches_camera_cam_to_pixel():
    kgff = KeypointGuidedFusion(channels=8, kpt_channels=2, image_size=64)
    joints = torch.randn(4, 42, 3) * 30 + torch.tensor([0.0, 0.0, 400.0])
    focal, princpt = torch.rand(4, 2) * 50 + 60, torch.rand(4, 2) * 10 + 27
    assert torch.allclose(kgff.project(joints, focal, princpt), camera.cam_to_pixel(joints, focal, princpt))
    # behind the camera, at infinity or NaN: finite, clamped, far outside the crop
    joints[0, :3] = torch.tensor([[10.0, 0.0, -5.0], [float("inf"), 0.0, 100.0], [float("nan"), 0.0, 100.0]])
    uv = kgff.project(joints, focal, princpt)
    assert torch.isfinite(uv).all() and uv.min() >= -64 and uv.max() <= 128


def test_kgff_samples_the_feature_values_at_the_projected_points():
    """A map whose channels hold each cell's own (x, y) returns, bilinearly, the projected point's position."""
    S, h = 64, 8  # stride 8
    stride = S // h
    kgff = KeypointGuidedFusion(channels=3, kpt_channels=3, image_size=S, patch_size=3, tokens="hand")
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(h, dtype=torch.float32), indexing="ij")
    fmap = torch.stack([xs, ys, xs + 10 * ys])[None]  # (1, 3, h, w): channel 2 is another linear encoding
    pooled = fmap.mean(dim=(2, 3))
    g = torch.Generator().manual_seed(0)
    uv = 16 + 32 * torch.rand(1, 42, 2, generator=g)  # pixels well inside: the whole 3x3 patch is on the map
    focal, princpt = torch.tensor([[70.0, 75.0]]), torch.tensor([[31.0, 33.0]])
    depth = 300 + 100 * torch.rand(1, 42, generator=g)
    joints = camera.pixel_to_cam(uv, depth, focal, princpt)
    f_kpt, uv_out = kgff(fmap, pooled, joints, focal, princpt)
    assert f_kpt.shape == (1, 2, 9 * 21 * 3 + 3) and torch.allclose(uv_out, uv, atol=1e-3)
    assert torch.allclose(f_kpt[0, :, -3:], pooled.expand(2, 3))  # pooled f_i,1 appended per hand (Fig. 3)
    patches = f_kpt[0, :, :-3].reshape(42, 9, 3)  # (joint, patch position row-major (dy, dx), channel)
    centre = (uv[0] + 0.5) / stride - 0.5  # (42, 2) feature-grid coordinates of the projected points
    offsets = torch.tensor([(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], dtype=torch.float32)
    expect = centre[:, None, :] + offsets[None]  # (42, 9, 2)
    assert torch.allclose(patches[..., 0], expect[..., 0], atol=1e-3)
    assert torch.allclose(patches[..., 1], expect[..., 1], atol=1e-3)
    assert torch.allclose(patches[..., 2], expect[..., 0] + 10 * expect[..., 1], atol=1e-2)
    # a point far outside the crop samples only the zero padding
    joints_out = joints.clone()
    joints_out[0, 5] = torch.tensor([1e4, 1e4, 10.0])
    f_out, _ = kgff(fmap, pooled, joints_out, focal, princpt)
    assert f_out[0, 0, :-3].reshape(21, 9, 3)[5].abs().max() == 0


def test_model_projects_with_gt_root_when_given_else_its_own(tiny_model):
    image, focal, princpt, root = make_inputs(TINY, B=2)
    out = tiny_model(image, focal, princpt, root_cam=root, return_attention=True)
    joints = out["p"][0] + root.repeat_interleave(21, dim=1)
    assert torch.allclose(out["kgff_uv"][0], camera.cam_to_pixel(joints, focal, princpt), atol=1e-3)
    out = tiny_model(image, focal, princpt, return_attention=True)  # no root_cam: the predicted root
    joints = out["p"][0] + out["root"].repeat_interleave(21, dim=1)
    assert torch.allclose(out["kgff_uv"][0], camera.cam_to_pixel(joints, focal, princpt).clamp(-64, 128), atol=1e-3)
    # an absent hand (invalid wrist) falls back to the predicted root; nothing becomes NaN
    bad = root.clone()
    bad[0, 1] = float("nan")
    bad[1, 0] = 0.0
    out2 = tiny_model(image, focal, princpt, root_cam=bad, return_attention=True)
    used = torch.where(torch.tensor([[[0.0], [1.0]], [[1.0], [0.0]]]) > 0, out2["root"], root)
    joints = out2["p"][0] + used.repeat_interleave(21, dim=1)
    assert torch.allclose(out2["kgff_uv"][0], camera.cam_to_pixel(joints, focal, princpt).clamp(-64, 128), atol=1e-3)
    assert all(torch.isfinite(p).all() for p in out2["p"])
    # root_source="pred" ignores the given wrists
    pred_model = Handformer2T(dataclasses.replace(TINY, root_source="pred")).eval()
    a = pred_model(image, focal, princpt, root_cam=root)["p"][-1]
    b = pred_model(image, focal, princpt)["p"][-1]
    assert torch.equal(a, b)


def test_root_depth_scales_with_the_focal_length(tiny_model):
    image, focal, princpt, _ = make_inputs(TINY, B=2)
    r1 = tiny_model(image, focal, princpt)["root"]
    r2 = tiny_model(image, 2 * focal, princpt)["root"]
    assert torch.allclose(r2[..., 2], 2 * r1[..., 2], rtol=1e-5)  # the same crop seen with twice the focal: twice as far


# ---------------------------------------------------------------------- building blocks
def test_grouped_token_mlp_equals_separate_linears():
    torch.manual_seed(0)
    mlp = TokenMLP(2, 10, 6, 4, shared_input=True)
    x = torch.randn(5, 10)
    y = mlp(x)  # (5, 2, 4)
    for t in range(2):
        h = nn.functional.gelu(x @ mlp.fc1.weight[t * 6 : (t + 1) * 6].T + mlp.fc1.bias[t * 6 : (t + 1) * 6])
        assert torch.allclose(y[:, t], h @ mlp.fc2.weight[t] + mlp.fc2.bias[t], atol=1e-6)
    lin = GroupedLinear(2, 3, 4)  # 2 groups over 6 tokens: tokens 0-2 use group 0, 3-5 group 1
    xt = torch.randn(5, 6, 3)
    yt = lin(xt)
    assert torch.allclose(yt[:, 4], xt[:, 4] @ lin.weight[1] + lin.bias[1], atol=1e-6)
    assert torch.allclose(yt[:, 1], xt[:, 1] @ lin.weight[0] + lin.bias[0], atol=1e-6)


def test_level_feature_layout_eq_2_to_5():
    g = torch.Generator().manual_seed(3)
    lf = LevelFeature(channels=6, size=4, sampled_channels=2, feat_len=6 + 32 + 20, generator=g)
    fmap = torch.arange(2 * 6 * 16, dtype=torch.float32).reshape(2, 6, 4, 4)  # every element unique
    f, pooled = lf(fmap)
    assert f.shape == (2, 58) and torch.equal(f[:, :6], fmap.mean(dim=(2, 3))) and torch.equal(pooled, f[:, :6])
    chans = lf.chan_idx.tolist()
    assert torch.equal(f[:, 6:38], fmap[:, chans].reshape(2, -1))  # f_i,2: whole channels, flattened
    local = f[0, 6:].tolist()
    assert len(set(local)) == len(local)  # f_i,3 never repeats an element of f_i,2
    assert {int(v) // 16 for v in f[0, 38:].tolist()}.isdisjoint(chans)


def test_backbone_maps_and_weights_file(tmp_path):
    net = ResNetBackbone("resnet18")
    maps = net(torch.rand(1, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 2, 2)]
    src = build_resnet("resnet18")
    torch.save(src.state_dict(), tmp_path / "r18.pth")
    loaded = build_resnet("resnet18", tmp_path / "r18.pth")
    assert torch.equal(loaded.conv1.weight, src.conv1.weight)
    with pytest.raises(FileNotFoundError, match="backbone_weights=None"):
        build_resnet("resnet18", tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="do not fit torchvision resnet34"):
        build_resnet("resnet34", tmp_path / "r18.pth")


# ---------------------------------------------------------------------- determinism and checkpoints
def test_same_seed_same_model_other_seed_other_indices_and_outputs(tiny_model):
    state = tiny_model.state_dict()
    idx_keys = [k for k in state if k.endswith(("chan_idx", "extra_idx"))]
    assert any("extractor" in k for k in idx_keys) and any("kgff" in k for k in idx_keys)  # buffers are persistent
    again = Handformer2T(TINY).state_dict()
    assert all(torch.equal(state[k], again[k]) for k in state)
    other = Handformer2T(dataclasses.replace(TINY, seed=1)).eval()
    assert any(not torch.equal(state[k], other.state_dict()[k]) for k in idx_keys)
    image, focal, princpt, root = make_inputs(TINY)
    with torch.no_grad():
        assert not torch.allclose(tiny_model(image, focal, princpt, root)["p"][-1], other(image, focal, princpt, root)["p"][-1])


def test_saved_and_loaded_model_predicts_identically(tmp_path):
    model = Handformer2T(dataclasses.replace(TINY, seed=7)).eval()
    with torch.no_grad():  # make the weights differ from any fresh init
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    image, focal, princpt, root = make_inputs(TINY)
    path = save_checkpoint(tmp_path / "m.pt", model, epoch=4, metrics={"mpjpe": np.float64(12.5)}, note="x")
    loaded, extra = load_checkpoint(path, expected_config=TINY)  # the seed does not have to match
    assert extra == {"epoch": 4, "metrics": {"mpjpe": 12.5}, "note": "x"}
    assert not loaded.training and loaded.cfg.seed == 7
    with torch.no_grad():
        a, b = model(image, focal, princpt, root), loaded(image, focal, princpt, root)
    assert all(torch.equal(x, y) for x, y in zip(a["p"] + a["u"] + [a["root"]], b["p"] + b["u"] + [b["root"]]))
    half = save_checkpoint(tmp_path / "h.pt", model, half=True)
    assert half.stat().st_size < 0.6 * path.stat().st_size
    h, _ = load_checkpoint(half)
    assert next(h.parameters()).dtype == torch.float32
    with torch.no_grad():
        assert (h(image, focal, princpt, root)["p"][-1] - a["p"][-1]).abs().max() < 2.0  # mm
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "x.pt", model, state_dict={})


def test_load_checkpoint_errors_are_clear(tmp_path, tiny_model):
    from PIL import Image

    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")
    Image.new("RGB", (4, 4)).save(tmp_path / "img.png")
    with pytest.raises(ValueError, match="not an h2t checkpoint"):
        load_checkpoint(tmp_path / "img.png")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "random.pt")
    with pytest.raises(ValueError, match="not an h2t checkpoint"):
        load_checkpoint(tmp_path / "random.pt")
    path = save_checkpoint(tmp_path / "tiny.pt", tiny_model)
    with pytest.raises(ValueError, match=r"trained with preset 'tiny'.*dim=32.*dim=64"):
        load_checkpoint(path, expected_config=dataclasses.replace(TINY, dim=64))
    ckpt = torch.load(path, weights_only=True)
    del ckpt["state_dict"]["stages.0.pos"]
    torch.save(ckpt, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="do not fit its config"):
        load_checkpoint(tmp_path / "broken.pt")


# ---------------------------------------------------------------------- input validation
def test_bad_inputs_give_clear_errors(tiny_model):
    image, focal, princpt, root = make_inputs(TINY)
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, 64, 64\).*cfg.image_size"):
        tiny_model(torch.rand(2, 3, 128, 128), focal, princpt)
    with pytest.raises(ValueError, match=r"pass focal \(B,2\) and princpt \(B,2\)"):
        tiny_model(image)
    with pytest.raises(ValueError, match=r"pass focal \(B,2\) and princpt \(B,2\)"):
        tiny_model(image, focal[:1].repeat(3, 1), princpt)
    with pytest.raises(ValueError, match="root_cam"):
        tiny_model(image, focal, princpt, root_cam=root[:, :1])
    with pytest.raises(ValueError, match="float"):
        tiny_model((image * 255).to(torch.uint8), focal, princpt)
    with pytest.raises(ValueError, match="divide by 255"):
        tiny_model.predict(image[0] * 255, focal[0], princpt[0])


def test_predict_and_attention_maps(tiny_model):
    image, focal, princpt, root = make_inputs(TINY)
    one = tiny_model.predict(image[0], focal[0], princpt[0])
    assert one["joints"].shape == (42, 3) and one["sigma"].shape == (42, 1) and one["root"].shape == (2, 3)
    assert torch.allclose(one["joints_cam"][20], one["joints"][20] + one["root"][0])
    maps = tiny_model.get_attention_maps(image, focal, princpt, root)
    assert maps["coarse"][0].shape == (2, TINY.num_heads, 2, 2) and maps["kgff_uv"][0].shape == (2, 42, 2)


# ---------------------------------------------------------------------- sizes (Tables 5 and 6)
def test_parameter_counts_match_the_paper():
    hand = {}
    for (preset, tokens), paper_m in PAPER_SIZES_M.items():
        total = preset_counts(preset, tokens)["total"]
        assert abs(total / 1e6 - paper_m) <= 0.10 * paper_m, (preset, tokens, total)
        if tokens == "hand":
            hand[preset] = total
    for preset in ("r34-d256", "r50-d256"):
        assert preset_counts(preset, "joint")["total"] >= 2.5 * hand[preset]  # Table 6: about threefold
    assert hand["r34-d128"] < hand["r34-d256"] < hand["r34-d512"]


def test_params_command_json_parses_and_sums(capsys):
    assert cli_main(["params", "--preset", "tiny", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert sum(res["components"].values()) == res["total"]
    assert res["total"] == count_parameters(Handformer2T(TINY))["total"]
    assert res["components"]["backbone"] == sum(p.numel() for p in ResNetBackbone("resnet18").parameters())
    assert cli_main(["params", "--preset", "r50-d256"]) == 0
    text = capsys.readouterr().out
    assert "Table 5" in text and "35.9" in text and "kgff_queries" in text
    assert cli_main(["params", "--preset", "r50-d256", "--tokens", "joint", "--json"]) == 0
    joint = json.loads(capsys.readouterr().out)
    assert sum(joint["components"].values()) == joint["total"]
    assert joint["components"]["tokenizers"] > 15 * preset_counts("r50-d256")["components"]["tokenizers"]  # 42 vs 2 MLPs
    assert cli_main(["params", "--preset", "nope"]) == 2
    assert "unknown model preset" in capsys.readouterr().err
