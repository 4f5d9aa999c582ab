"""Training loop: logs, checkpoints, exact resume, seeds, config overrides, the demo (H2T_FAST=1)."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures import make_interhand_fixture
from h2t_lib.engine.checkpoint import load_checkpoint
from h2t_lib.engine.train import TrainConfig, parse_overrides, train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(interhand_dir):
    return interhand_dir


@pytest.fixture(scope="module")
def two_epochs(data_dir, tmp_path_factory):
    """An uninterrupted tiny run of 2 epochs (shared by several tests)."""
    out = tmp_path_factory.mktemp("run_a")
    calls = []
    history = train(TrainConfig.preset("tiny"), data_dir, out, device="cpu", progress=False,
                    on_epoch_end=lambda h: calls.append(len(h["epochs"])))
    return out, history, calls


def _losses(history):
    return [(r["train_total"], r["train_rle"], r["train_mmd"], r["train_root"]) for r in history["epochs"]]


def _weights(path):
    model, _ = load_checkpoint(path)
    return model.state_dict()


def test_tiny_run_writes_logs_checkpoints_and_plot(two_epochs):
    out, history, calls = two_epochs
    assert calls == [1, 2]  # the notebook hook saw every epoch
    for name in ("last.pt", "best.pt", "log.csv", "log.json", "loss_curve.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    with open(out / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    # MPJPE of both stages (coarse, refined) on the fixture's test split, every epoch
    for r in rows:
        for key in ("val_mpjpe_stage1", "val_mpjpe_stage2", "val_mpjpe_stage2_interacting", "train_total"):
            assert np.isfinite(float(r[key])), key
    log = json.loads((out / "log.json").read_text())
    assert log["data"]["val_split"] == "test" and log["data"]["val_samples"] == 8
    assert len(log["steps"]) == 6  # tiny: 2 epochs x 3 steps, logged every step
    # the step schedule: lr 1e-3 in epoch 1, x0.5 in epoch 2 (tiny preset: lr_step 1, gamma 0.5)
    assert [r["lr"] for r in history["epochs"]] == pytest.approx([1e-3, 5e-4])
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # last.pt holds everything needed to continue
    _, extra = load_checkpoint(out / "last.pt")
    state = extra["train_state"]
    assert state["epoch"] == 2 and state["step"] == 6
    assert {"optimizer", "scheduler", "criterion", "rng"} <= set(state)
    assert TrainConfig.from_dict(extra["train_config"]) == TrainConfig.preset("tiny")
    best = history["best"]
    _, best_extra = load_checkpoint(out / "best.pt")
    assert best_extra["epoch"] == best["epoch"] and best["metric"] == "val_mpjpe_stage2"


def test_resume_equals_uninterrupted(two_epochs, data_dir, tmp_path):
    out_a, hist_a, _ = two_epochs
    train(TrainConfig.preset("tiny", epochs=1), data_dir, tmp_path, device="cpu", progress=False)
    assert json.loads((tmp_path / "log.json").read_text())["epochs"][-1]["epoch"] == 1
    hist_b = train(None, data_dir, tmp_path, resume=True, epochs=2, device="cpu", progress=False)
    assert [r["epoch"] for r in hist_b["epochs"]] == [1, 2]
    assert _losses(hist_b) == _losses(hist_a)  # exactly, not approximately
    wa, wb = _weights(out_a / "last.pt"), _weights(tmp_path / "last.pt")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_with_a_loader_worker_equals_uninterrupted_without(two_epochs, data_dir, tmp_path):
    # workers change the speed, not the numbers: epoch 2 resumed with one worker (the tiny preset has none)
    out_a, hist_a, _ = two_epochs
    train(TrainConfig.preset("tiny", epochs=1), data_dir, tmp_path, device="cpu", progress=False)
    hist_b = train(None, data_dir, tmp_path, resume=True, epochs=2, device="cpu", progress=False, workers=1)
    assert hist_b["config"]["num_workers"] == 0 and hist_b["data"]["workers"] == 1  # stored config unchanged
    assert _losses(hist_b) == _losses(hist_a)
    wa, wb = _weights(out_a / "last.pt"), _weights(tmp_path / "last.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_same_seed_same_numbers_other_seed_differs(two_epochs, data_dir, tmp_path):
    _, hist_a, _ = two_epochs
    again = train(TrainConfig.preset("tiny"), data_dir, tmp_path / "again", device="cpu", progress=False)
    assert _losses(again) == _losses(hist_a)
    other = train(TrainConfig.preset("tiny", seed=1, epochs=1), data_dir, tmp_path / "other", device="cpu",
                  progress=False)
    assert _losses(other)[0] != _losses(hist_a)[0]


def test_init_with_another_config_is_a_clear_error(two_epochs, data_dir, tmp_path):
    out, _, _ = two_epochs
    cfg = TrainConfig.preset("tiny", init=str(out / "best.pt"), model_preset="cpu")
    with pytest.raises(ValueError, match="was trained with"):
        train(cfg, data_dir, tmp_path, device="cpu", progress=False)


def test_parse_overrides():
    cfg = parse_overrides(["lr=1e-4", "epochs=3", "model.dim=64", "loss.use_mmd=False", "train_split=val"],
                          TrainConfig.preset("tiny"))
    assert (cfg.lr, cfg.epochs, cfg.train_split) == (1e-4, 3, "val")
    assert cfg.model == {"dim": 64} and cfg.loss == {"use_mmd": False}
    assert cfg.model_config().dim == 64 and cfg.loss_config().use_mmd is False
    for bad, msg in (("nope=1", "unknown TrainConfig field"), ("model.nope=1", "unknown field"),
                     ("lr", "key=value"), ("epochs=0", "positive integer")):
        with pytest.raises(ValueError, match=msg):
            parse_overrides([bad], TrainConfig.preset("tiny"))


def test_presets_follow_the_paper():
    paper = TrainConfig.preset("paper")
    assert (paper.model_preset, paper.lr, paper.lr_step, paper.lr_gamma, paper.epochs) == ("paper", 1e-3, 80, 0.25, 270)
    assert paper.augment and paper.batch_size == 64
    cpu = TrainConfig.preset("cpu")
    assert cpu.model_preset == "cpu" and cpu.lr_step == round(cpu.epochs * 80 / 270)
    with pytest.raises(ValueError, match="unknown train preset"):
        TrainConfig.preset("huge")


def _cli(*args, env_extra=None):
    env = {**os.environ, "H2T_FAST": "1", "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "h2t_lib", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_cli_bad_input_is_one_line(data_dir, tmp_path):
    r = _cli("train", "--preset", "tiny", "--data", str(data_dir), "--out", str(tmp_path / "r"), "--set", "nope=1")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "unknown TrainConfig field" in r.stderr
    r = _cli("train", "--preset", "tiny", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r"), "--resume")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "last.pt" in r.stderr


def test_demo_fast(two_epochs, tmp_path):
    """`make demo` end to end, shrunk by H2T_FAST=1 (a tiny checkpoint stands in for the shipped one)."""
    from h2t_lib.apps.demo import main_job

    out, _, _ = two_epochs
    res = main_job(tmp_path / "data", tmp_path / "ft", ckpt=out / "best.pt", device="cpu", fast=True, progress=False)
    assert (tmp_path / "data" / "annotations" / "all" / "InterHand2.6M_test_data.json").is_file()
    assert (tmp_path / "ft" / "loss_curve.png").is_file()
    for key in ("before", "after"):
        names = [r["name"] for r in res[key]["rows"]]
        assert names[0].startswith("stage 1") and any("mean training pose" in n for n in names)
    assert len(res["history"]["epochs"]) == 2


def test_demo_without_checkpoint_trains_a_short_run(tmp_path, capsys):
    from h2t_lib.apps.demo import main_job

    res = main_job(tmp_path / "data", tmp_path / "ft", ckpt=tmp_path / "absent.pt", device="cpu", fast=True,
                   progress=False)
    assert "is not there" in capsys.readouterr().out  # it says so
    assert (tmp_path / "ft" / "from_scratch" / "last.pt").is_file()
    assert np.isfinite(res["after"]["rows"][-3]["all"])


def test_cosine_schedule_warms_up_then_decays_to_its_floor():
    import math

    import torch

    from h2t_lib.engine.train import TrainConfig, lr_factor, make_scheduler

    assert [lr_factor(k, 100, 4, 0.1) for k in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 100, 4, 0.1) == 1.0 and lr_factor(99, 100, 4, 0.1) == pytest.approx(0.1)
    mid = 4 + (100 - 4 - 1) / 2  # half-way through the cosine: half-way between 1 and the floor
    assert lr_factor(math.ceil(mid), 100, 4, 0.1) == pytest.approx(0.55, abs=0.02)
    # the scheduler, stepped once per optimizer step, follows lr_factor exactly
    cfg = TrainConfig.preset("tiny", lr_schedule="cosine", warmup_steps=2, epochs=2, lr=1e-3, min_lr_frac=0.0)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched, per_step = make_scheduler(opt, cfg, steps_per_epoch=3)
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert per_step and seen == pytest.approx([1e-3 * lr_factor(k, 6, 2, 0.0) for k in range(6)])
    assert seen[-1] == 0.0 and seen[1] == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig.preset("tiny", lr_schedule="linear")


def test_init_backbone_copies_the_backbone_only(two_epochs):
    from h2t_lib.engine.state import build

    out, _, _ = two_epochs
    source = _weights(out / "last.pt")
    model, _, _ = build(TrainConfig.preset("tiny", init_backbone=str(out / "last.pt"), seed=5), "cpu")
    fresh, _, _ = build(TrainConfig.preset("tiny", seed=5), "cpu")
    mine = model.state_dict()
    backbone = [k for k in mine if k.startswith("extractor.backbone.")]
    assert backbone and all(torch.equal(mine[k].float(), source[k].float()) for k in backbone)
    # the backbone differs from a fresh model's; everything after it is the fresh model's, not the source's
    assert not all(torch.equal(mine[k], fresh.state_dict()[k]) for k in backbone)
    rest = [k for k in mine if not k.startswith("extractor.backbone.") and mine[k].is_floating_point()]
    assert rest and all(torch.equal(mine[k], fresh.state_dict()[k]) for k in rest)
    assert not all(torch.equal(mine[k].float(), source[k].float()) for k in rest)


def test_init_backbone_of_another_backbone_is_a_clear_error(two_epochs):
    from h2t_lib.engine.state import build

    out, _, _ = two_epochs
    cfg = TrainConfig.preset("tiny", init_backbone=str(out / "last.pt"), model={"backbone": "resnet34"})
    with pytest.raises(ValueError, match="does not fit this model"):
        build(cfg, "cpu")
    with pytest.raises(ValueError, match="both set"):
        TrainConfig.preset("tiny", init=str(out / "last.pt"), init_backbone=str(out / "last.pt"))


def test_pred_root_frac_chooses_the_wrists_kgff_projects_with(two_epochs, data_dir):
    from h2t_lib.data.loading import open_dataset
    from h2t_lib.model.batch import forward

    model, _ = load_checkpoint(two_epochs[0] / "last.pt")
    model.eval()
    ds = open_dataset(data_dir, "train", model.cfg.image_size)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    with torch.no_grad():
        gt, pred = forward(model, batch, "gt"), forward(model, batch, "pred")
        all_pred, none = forward(model, batch, "gt", pred_root_frac=1.0), forward(model, batch, "gt", pred_root_frac=0.0)
        torch.manual_seed(0)
        half = forward(model, batch, "gt", pred_root_frac=0.5)
        torch.manual_seed(0)
        chosen = torch.rand(4) < 0.5  # the draw forward made
    assert not torch.allclose(gt["p"][-1], pred["p"][-1])  # the wrists matter to the refiner
    torch.testing.assert_close(all_pred["p"][-1], pred["p"][-1])
    torch.testing.assert_close(none["p"][-1], gt["p"][-1])
    assert 0 < int(chosen.sum()) < 4
    for i in range(4):
        torch.testing.assert_close(half["p"][-1][i], (pred if chosen[i] else gt)["p"][-1][i])


def test_demo_says_whether_the_fine_tune_changed_the_error():
    from h2t_lib.apps.demo import mpjpe_change

    rng = np.random.default_rng(0)
    base = rng.uniform(40, 80, size=200)

    def res(errors):
        return {"num_stages": 1, "per_sample": {"error": [list(errors)]}}

    noise = rng.normal(0, 1.0, size=200)
    assert "improved" in mpjpe_change(res(base), res(base - 3 + noise), 160, 1000)
    assert "worse" in mpjpe_change(res(base), res(base + 3 + noise), 160, 1000)
    same = mpjpe_change(res(base), res(base + noise - noise.mean()), 160, 1000, "182k image presentations in 5 legs")
    assert "no change beyond the noise" in same and "160 steps" in same and "1000 images" in same
    assert "(182k image presentations in 5 legs, docs/results.md)" in same
    assert "0.00 mm +- 0.07" in same  # mean of the paired difference, its standard error: 1 / sqrt(200)


def test_demo_reads_the_models_training_from_its_checkpoint():
    from h2t_lib.apps.demo import prior_training

    legs = ["leg 0", "leg 1", "leg 2"]
    assert prior_training({"legs": legs, "presentations": 182400}) == "182k image presentations in 3 legs"
    assert prior_training({"presentations": 3200}) == "3k image presentations"
    assert prior_training({"legs": legs}) == "3 training legs"
    assert prior_training({}) is None
    from h2t_lib.apps.demo import mpjpe_change

    res = {"num_stages": 1, "per_sample": {"error": [[50.0, 60.0, 70.0]]}}
    assert "shipped model's own training (3k image presentations, docs/results.md); " in mpjpe_change(
        res, res, 160, 1000, "3k image presentations")
    assert "little next to the starting model's own training; " in mpjpe_change(res, res, 160, 1000)
