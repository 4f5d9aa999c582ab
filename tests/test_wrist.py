"""Our wrist path and training aids: the heatmap wrist head, its targets and decoding, wrists moved in 2D,
the residual refiner's start, growing a checkpoint with new modules, the precision choice."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from h2t_lib.camera import cam_to_pixel
from h2t_lib.model.config import ModelConfig
from h2t_lib.losses import Handformer2TLoss, LossConfig, gaussian_heatmaps, hands_absent, heatmap_mse
from h2t_lib.model import Handformer2T
from h2t_lib.model.batch import perturb_wrists
from h2t_lib.model.params import count_parameters
from h2t_lib.model.wrist import WristHeatmapHead, cell_centres

TINY = ModelConfig.preset("tiny")
HEAT = dataclasses.replace(TINY, wrist_head="heatmap")


def _batch(B=4, S=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    focal, princpt = torch.full((B, 2), 90.0), torch.full((B, 2), S / 2)
    joints = torch.randn(B, 42, 3, generator=g) * 25 + torch.tensor([0.0, 0.0, 450.0])
    return {"image": torch.rand(B, 3, S, S, generator=g), "focal": focal, "princpt": princpt, "joints_cam": joints,
            "joint_valid": torch.ones(B, 42), "joints_img": cam_to_pixel(joints, focal, princpt)}


def test_gaussian_heatmaps_match_the_closed_form():
    uv = torch.tensor([[[11.5, 27.5], [30.2, 3.9]]])  # (1, 2, 2) pixels; the first on a cell centre (stride 8)
    hm = gaussian_heatmaps(uv, 4, 5, 8.0, 6.0)  # (1, 2, 4, 5)
    assert hm.shape == (1, 2, 4, 5)
    assert hm[0, 0, 3, 1] == pytest.approx(1.0)  # cell (row 3, col 1) is centred at (11.5, 27.5)
    x, y = 8 * 4 + 3.5, 8 * 0 + 3.5  # centre of cell (row 0, col 4)
    want = np.exp(-((x - 30.2) ** 2 + (y - 3.9) ** 2) / (2 * 6.0**2))
    assert float(hm[0, 1, 0, 4]) == pytest.approx(want, rel=1e-5)
    torch.testing.assert_close(cell_centres(3, 8.0, uv), torch.tensor([3.5, 11.5, 19.5]))


@pytest.mark.parametrize("uv", [(60.3, 40.7), (20.0, 100.0), (97.1, 33.3)])
def test_decode_finds_a_gaussian_heatmaps_centre(uv):
    head = WristHeatmapHead((64, 128, 256, 512), image_size=128)
    target = torch.tensor([[uv, (64.0, 64.0)]])
    hm = gaussian_heatmaps(target, 16, 16, 8.0, 8.0)  # one cell's std, as the loss's default
    got = head.decode(hm)
    assert (got - target).abs().max() < 0.6  # sub-cell: a cell is 8 px
    # a second, weaker blob elsewhere in the same map does not move the local estimate
    far = gaussian_heatmaps(torch.tensor([[(10.0, 10.0), (10.0, 10.0)]]), 16, 16, 8.0, 8.0) * 0.7
    torch.testing.assert_close(head.decode(hm + far)[0, 0], got[0, 0], atol=0.05, rtol=0)


def test_decode_near_the_border_is_not_pulled_inwards():
    head = WristHeatmapHead((64, 128, 256, 512), image_size=128)
    on_border = torch.tensor([[(3.5, 64.0), (123.5, 3.5)]])  # on the centres of border cells: found exactly
    torch.testing.assert_close(head.decode(gaussian_heatmaps(on_border, 16, 16, 8.0, 8.0)), on_border,
                               atol=0.35, rtol=0)  # 0.3 px: the interior axis's own sub-cell error
    near = torch.tensor([[(9.0, 64.0), (118.0, 100.0)]])  # a cell in from the border
    assert (head.decode(gaussian_heatmaps(near, 16, 16, 8.0, 8.0)) - near).abs().max() < 1.5


def test_right_and_left_wrists_stay_apart():
    head = WristHeatmapHead((64, 128, 256, 512), image_size=128)
    target = torch.tensor([[(30.0, 40.0), (90.0, 70.0)]])
    hm = gaussian_heatmaps(target, 16, 16, 8.0, 8.0)
    torch.testing.assert_close(head.decode(hm.flip(1)), head.decode(hm).flip(1))


def test_decode_of_an_empty_map_is_the_argmax_cell():
    head = WristHeatmapHead((64, 128, 256, 512), image_size=128)
    hm = torch.full((1, 2, 16, 16), -1.0)
    hm[0, 0, 5, 9] = -0.5  # the largest value, still negative
    assert head.decode(hm)[0, 0].tolist() == [9 * 8 + 3.5, 5 * 8 + 3.5]


def test_heatmap_mse_targets_labelled_absent_and_unlabelled_maps():
    uv = torch.tensor([[[20.0, 20.0], [40.0, 40.0], [5.0, 5.0]]])
    valid = torch.tensor([[True, False, False]])
    absent = torch.tensor([[False, True, False]])
    target = gaussian_heatmaps(uv, 8, 8, 8.0, 8.0)
    pred = torch.zeros(1, 3, 8, 8)
    pred[0, 0] = target[0, 0]  # a perfect first map
    pred[0, 1] = 0.5  # an absent hand's map should be zero: 64 cells x 0.25
    pred[0, 2] = 3.0  # unlabelled point of a present hand: does not count
    assert float(heatmap_mse(pred, uv, valid, absent, 64, 1.0)) == pytest.approx(64 * 0.25)
    v = torch.ones(2, 42, dtype=torch.bool)
    v[1, 21:] = False
    absent42 = hands_absent(v)
    assert not absent42[0].any() and absent42[1, 21:].all() and not absent42[1, :21].any()


def test_perturbed_wrists_project_to_the_shifted_pixel_at_the_same_depth():
    b = _batch()
    wrists = b["joints_cam"][:, [20, 41]]
    shift = torch.tensor([[3.0, -4.0], [0.5, 7.0]]).expand(4, 2, 2)
    moved = perturb_wrists(wrists, shift, b["focal"])
    before, after = cam_to_pixel(wrists, b["focal"], b["princpt"]), cam_to_pixel(moved, b["focal"], b["princpt"])
    torch.testing.assert_close(after - before, shift, atol=1e-4, rtol=0)
    torch.testing.assert_close(moved[..., 2], wrists[..., 2])


def test_root_noise_moves_only_what_kgff_sees():
    from h2t_lib.model.batch import forward

    model = Handformer2T(TINY).eval()
    b = _batch()
    with torch.no_grad():
        clean = forward(model, b, "gt")
        noisy = forward(model, b, "gt", root_noise_px=5.0)
    torch.testing.assert_close(noisy["p"][0], clean["p"][0])  # the coarse stage does not read the wrists
    assert not torch.allclose(noisy["p"][-1], clean["p"][-1])  # the refiner does


def test_heatmap_wrist_head_sets_the_wrists_pixel_and_learns():
    model = Handformer2T(HEAT)
    b = _batch()
    out = model(b["image"], b["focal"], b["princpt"])
    assert out["wrist_heatmaps"].shape == (4, 2, 8, 8) and out["wrist_neck"].shape == (4, 64, 8, 8)
    uv = cam_to_pixel(out["root"], b["focal"], b["princpt"])
    torch.testing.assert_close(uv, model.wrist_head.decode(out["wrist_heatmaps"]), atol=1e-3, rtol=0)
    crit = Handformer2TLoss(HEAT, LossConfig(joint_heatmap_weight=0.5))
    terms = crit(out, b)
    assert {"wrist_heatmap", "joint_heatmap"} <= set(terms)
    terms["total"].backward()
    for p in (model.wrist_head.out.weight, model.wrist_head.lateral3.weight,
              model.extractor.backbone.layer2[0].conv1.weight, crit.joint_heatmap.conv.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    # the root term alone (no heatmap MSE) trains the head through the decoded pixel
    model.zero_grad()
    only_root = Handformer2TLoss(HEAT, LossConfig(wrist_heatmap_weight=0.0))
    only_root(model(b["image"], b["focal"], b["princpt"]), b)["root"].backward()
    assert model.wrist_head.out.weight.grad.abs().sum() > 0
    # the wrist term falls on a fixed batch
    torch.manual_seed(0)
    model, crit = Handformer2T(HEAT), Handformer2TLoss(HEAT)
    opt = torch.optim.Adam(list(model.parameters()) + list(crit.parameters()), lr=1e-3)
    first = None
    for _ in range(25):
        t = crit(model(b["image"], b["focal"], b["princpt"]), b)
        first = float(t["wrist_heatmap"].detach()) if first is None else first
        opt.zero_grad()
        t["wrist_heatmap"].backward()
        opt.step()
    assert float(t["wrist_heatmap"].detach()) < 0.5 * first


def test_a_checkpoint_from_before_the_wrist_head_loads_and_predicts_as_before(tmp_path):
    from h2t_lib.engine.checkpoint import load_checkpoint, save_checkpoint

    model = Handformer2T(TINY).eval()
    path = save_checkpoint(tmp_path / "old.pt", model)
    ckpt = torch.load(path, weights_only=True)
    for key in ("wrist_head", "wrist_width"):  # as written before these fields existed
        del ckpt["model_config"][key]
    torch.save(ckpt, path)
    loaded, _ = load_checkpoint(path)
    assert loaded.cfg.wrist_head == "tokens" and loaded.wrist_head is None
    b = _batch()
    with torch.no_grad():
        want, got = model(b["image"], b["focal"], b["princpt"]), loaded(b["image"], b["focal"], b["princpt"])
    for key in ("p", "u"):
        for w, g in zip(want[key], got[key]):
            assert torch.equal(w, g)
    assert torch.equal(want["root"], got["root"])


def test_init_refuses_changes_that_change_what_the_weights_mean(tmp_path):
    from h2t_lib.engine.checkpoint import save_checkpoint
    from h2t_lib.engine.config import TrainConfig
    from h2t_lib.engine.state import build

    save_checkpoint(tmp_path / "a.pt", Handformer2T(TINY))
    for change in ({"dim": 64}, {"image_size": 128}):
        cfg = TrainConfig.preset("tiny", init=str(tmp_path / "a.pt"), model_preset=None, model=change)
        with pytest.raises(ValueError, match="change what the weights"):
            build(cfg, torch.device("cpu"))


def test_wrist_stats_and_the_footer():
    from h2t_lib.engine.evaluate import wrist_stats

    px = np.array([[2.0, np.nan], [12.0, 4.0], [30.0, 6.0]])
    s = wrist_stats(px)
    assert s["root_error_px"] == pytest.approx(54 / 5) and s["root_error_px_median"] == pytest.approx(6.0)
    assert s["root_error_px_over10"] == pytest.approx(2 / 5)
    assert np.isnan(wrist_stats(np.full((2, 2), np.nan))["root_error_px"])


def test_the_wrist_head_leaves_the_other_weights_as_they_were():
    plain, heat = Handformer2T(TINY).state_dict(), Handformer2T(HEAT).state_dict()
    assert not any(k.startswith("wrist_head.") for k in plain)
    assert all(torch.equal(v, heat[k]) for k, v in plain.items())
    assert ModelConfig.from_dict({k: v for k, v in TINY.to_dict().items() if k != "wrist_head"}).wrist_head == "tokens"
    with pytest.raises(ValueError, match="wrist_head"):
        dataclasses.replace(TINY, wrist_head="fist")
    with pytest.raises(ValueError, match="levels 2 and 3"):
        ModelConfig.preset("cpu", wrist_head="heatmap", levels=(2, 1))


def test_joint_heatmaps_need_the_heatmap_wrist_head():
    with pytest.raises(ValueError, match="wrist_head='heatmap'"):
        Handformer2TLoss(TINY, LossConfig(joint_heatmap_weight=1.0))


def test_residual_refiner_starts_as_the_identity():
    model = Handformer2T(dataclasses.replace(TINY, refine_residual=True)).eval()
    b = _batch()
    with torch.no_grad():
        out = model(b["image"], b["focal"], b["princpt"], b["joints_cam"][:, [20, 41]])
        plain = Handformer2T(TINY).eval()(b["image"], b["focal"], b["princpt"], b["joints_cam"][:, [20, 41]])
    step = (out["p"][1] - out["p"][0]).norm(dim=-1).mean()
    assert step < 2.0  # mm: the delta starts near zero
    assert (plain["p"][1] - plain["p"][0]).norm(dim=-1).mean() > 10 * step


def test_init_with_a_new_wrist_head_keeps_every_trained_weight(tmp_path, capsys):
    from h2t_lib.engine.checkpoint import save_checkpoint
    from h2t_lib.engine.config import TrainConfig
    from h2t_lib.engine.state import build

    src = Handformer2T(TINY)
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.5)  # "trained": unlike a fresh init
    save_checkpoint(tmp_path / "a.pt", src)
    cfg = TrainConfig.preset("tiny", init=str(tmp_path / "a.pt"), model_preset=None,
                             model={"wrist_head": "heatmap", "refine_residual": True})
    model, _, _ = build(cfg, torch.device("cpu"))
    assert model.cfg.wrist_head == "heatmap" and model.wrist_head is not None
    theirs = src.state_dict()
    for k, v in model.state_dict().items():
        if k.startswith("wrist_head."):
            continue
        if k.startswith("stages.1.head.mlp.fc2"):  # restarted near zero for the residual's coordinates
            assert not torch.equal(v, theirs[k])
            continue
        torch.testing.assert_close(v, theirs[k], msg=k)
    note = capsys.readouterr().out
    assert "wrist_head" in note and "refine_residual" in note


def test_precision_choice(monkeypatch):
    import h2t_lib.utils as utils

    monkeypatch.setattr(utils, "cpu_has_bf16", lambda: True)
    assert utils.resolve_precision("auto", "cpu") == ("bf16", torch.bfloat16)
    monkeypatch.setattr(utils, "cpu_has_bf16", lambda: False)
    assert utils.resolve_precision("auto", "cpu") == ("fp32", None)
    assert utils.resolve_precision("bf16", "cpu") == ("bf16", torch.bfloat16)
    with pytest.raises(ValueError, match="CUDA only"):
        utils.resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="precision"):
        utils.resolve_precision("fp8", "cpu")


def test_a_bf16_run_says_so_and_trains_in_bf16(interhand_dir, tmp_path, monkeypatch):
    from h2t_lib.engine.train import TrainConfig, train

    import h2t_lib.engine.train as train_module

    seen = []
    real = train_module.forward

    def spy(*args, **kwargs):  # the model's own output dtype, before TrainStep casts it for the loss
        out = real(*args, **kwargs)
        seen.append(out["p"][-1].dtype)
        return out

    monkeypatch.setattr(train_module, "forward", spy)
    cfg = TrainConfig.preset("tiny", epochs=1, steps_per_epoch=2, precision="bf16",
                             model={"wrist_head": "heatmap", "hand_presence": True}, root_noise_px=3.0)
    history = train(cfg, interhand_dir, tmp_path / "run", device="cpu", progress=False)
    assert history["precision"] == "bf16" and seen[:2] == [torch.bfloat16, torch.bfloat16]
    assert json.loads((tmp_path / "run" / "log.json").read_text())["precision"] == "bf16"
    row = history["epochs"][-1]
    assert np.isfinite(row["train_wrist_heatmap"]) and np.isfinite(row["val_wrist_px"])
    assert "val_pred_mpjpe_stage2" in row and np.isfinite(row["train_presence"])
    assert 0.0 <= row["val_hand_named"] <= 1.0  # val_wrist_own_side only where interacting samples were scored
    assert all(np.isfinite(v) for v in row.values() if isinstance(v, float))  # no NaN: a resumed log equals itself


def test_presence_head_targets_follow_the_hands_in_the_image_and_it_learns():
    cfg = dataclasses.replace(TINY, hand_presence=True)
    b = _batch()
    b["joint_valid"][0, 21:] = 0  # sample 0 shows only its right hand, sample 1 only its left
    b["joint_valid"][1, :21] = 0
    b["hand_type"] = ["right", "left", "interacting", "interacting"]
    want = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    torch.manual_seed(0)
    model, crit = Handformer2T(cfg), Handformer2TLoss(cfg)
    out = model(b["image"], b["focal"], b["princpt"])
    assert out["presence"].shape == (4, 2)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(out["presence"], want)
    terms = crit(out, b)
    torch.testing.assert_close(terms["presence"], bce)
    terms["presence"].backward()
    assert model.extractor.backbone.layer1[0].conv1.weight.grad.abs().sum() > 0  # it reaches the backbone
    # the other weights are those of a model without the head; the term falls on a fixed batch
    plain = Handformer2T(TINY).state_dict()
    assert all(torch.equal(v, Handformer2T(cfg).state_dict()[k]) for k, v in plain.items())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = float(bce.detach())
    for _ in range(30):
        loss = crit(model(b["image"], b["focal"], b["princpt"]), b)["presence"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first
    assert "presence_head" in count_parameters(model)["components"]


def test_handedness_stats_count_wrists_on_their_own_hand_and_the_hand_named():
    from h2t_lib.engine.evaluate import handedness_stats

    focal, princpt = np.full((4, 2), 100.0), np.full((4, 2), 32.0)
    joints = np.zeros((4, 42, 3))
    joints[:, :21] = [-40.0, 0.0, 400.0]  # right hand on the image's left, left hand on its right
    joints[:, 21:] = [40.0, 0.0, 400.0]
    root = joints[:, [20, 41]].copy()
    root[1] = root[1, ::-1]  # sample 1: the two wrists swapped
    root[2, 1] = root[2, 0] + [5.0, 0.0, 0.0]  # sample 2: both wrists on the right hand
    pred = {"root": root, "joints_cam": joints, "joint_valid": np.ones((4, 42)), "focal": focal, "princpt": princpt,
            "hand_type": np.array(["interacting", "interacting", "interacting", "right"], dtype=object)}
    s = handedness_stats(pred)
    assert s["wrist_own_side"] == pytest.approx(3 / 6) and np.isnan(s["hand_named"])  # 2 + 0 + 1 of 6 wrists
    pred["presence"] = np.array([[0.0, 0.0]] * 3 + [[2.0, -1.0]])
    assert handedness_stats(pred)["hand_named"] == 1.0
    pred["presence"][3] = [-1.0, 2.0]
    assert handedness_stats(pred)["hand_named"] == 0.0
    pred["hand_type"][:] = "right"
    assert np.isnan(handedness_stats(pred)["wrist_own_side"])


def test_the_eval_footer_says_right_vs_left_only_where_measured():
    from h2t_lib.engine.evaluate import format_table

    rows = [{"name": f"stage {i}", "single": 40.0, "interacting": 60.0, "all": 50.0} for i in (1, 2)]
    res = {"rows": rows + [{"name": "mean pose", "single": 100.0, "interacting": 100.0, "all": 100.0}],
           "num_stages": 2, "num_samples": 10, "num_single": 4, "num_interacting": 6, "root_error_mm": 30.0,
           "root_source": "pred"}
    assert "right vs left" not in format_table(res)                                     # nothing measured
    res |= {"wrist_own_side": 0.5, "hand_named": float("nan")}
    (line,) = [ln for ln in format_table(res).splitlines() if ln.startswith("right vs left")]
    assert "in 50% of interacting samples" in line and "presence head" not in line     # no presence head
    res["hand_named"] = 0.75
    (line,) = [ln for ln in format_table(res).splitlines() if ln.startswith("right vs left")]
    assert line.endswith("names the hand of single-hand samples in 75%")
    res["wrist_own_side"] = float("nan")                                                 # single-hand data only
    assert "n/a of interacting samples" in format_table(res)
