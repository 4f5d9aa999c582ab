"""Training at scale, on CPU: torchrun with two gloo processes, on-the-fly rendering, the time budget."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from h2t_lib.engine.checkpoint import load_checkpoint
from h2t_lib.data.loading import EpochDataset, EpochSampler, make_loader
from h2t_lib.data.stream import SynthStream
from h2t_lib.engine.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
RUN_FILES = {"last.pt", "best.pt", "log.csv", "log.json", "loss_curve.png"}


def _losses(history):
    return [(r["train_total"], r["train_rle"], r["train_mmd"], r["train_root"]) for r in history["epochs"]]


# --------------------------------------------------------------------------- #
# the sampler's shards
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("n", [16, 17])
def test_ranks_share_one_order_without_overlap(n):
    one = EpochSampler(n, seed=3)
    one.set_epoch(5)
    order = list(one)
    assert sorted(order) == list(range(n))
    shards = []
    for rank in range(2):
        s = EpochSampler(n, seed=3, rank=rank, world_size=2)
        s.set_epoch(5)
        shards.append(list(s))
        assert len(shards[-1]) == len(s) == -(-n // 2)
    assert shards[0] == order[0::2][: len(shards[0])]  # rank r takes every 2nd sample from r
    assert set(shards[0]) | set(shards[1]) == set(range(n))
    overlap = set(shards[0]) & set(shards[1])
    assert len(overlap) == (0 if n % 2 == 0 else 1)  # only the padding repeats a sample
    again = EpochSampler(n, seed=3, rank=1, world_size=2)
    again.set_epoch(5)
    assert list(again) == shards[1]
    again.set_epoch(6)
    assert list(again) != shards[1]
    with pytest.raises(ValueError, match="rank"):
        EpochSampler(n, seed=3, rank=2, world_size=2)


# --------------------------------------------------------------------------- #
# torchrun: two gloo processes on CPU
# --------------------------------------------------------------------------- #
def _torchrun(*args):
    env = {**os.environ, "H2T_FAST": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "h2t_lib", "train", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_torchrun_two_gloo_processes_train_resume_and_split_the_data(interhand_dir, tmp_path):
    out = tmp_path / "ddp"
    common = ["--preset", "tiny", "--data", str(interhand_dir), "--out", str(out), "--device", "cpu", "--quiet"]
    # one full pass per epoch: 16 samples, batch 4 per process -> 2 steps per rank
    r = _torchrun(*common, "--set", "steps_per_epoch=0", "epochs=1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "batch 4 per process, global batch 8" in r.stdout
    assert r.stdout.count("done: 1 epochs") == 1  # rank 0 alone reports
    r = _torchrun(*common, "--resume", "--epochs", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == RUN_FILES  # one of each, nothing left half-written

    log = json.loads((out / "log.json").read_text())
    assert (log["world_size"], log["batch_per_process"], log["global_batch"]) == (2, 4, 8)
    assert [row["epoch"] for row in log["epochs"]] == [1, 2]
    for row in log["epochs"]:
        # the ranks saw different samples: together each of the 16 once, none on both ranks
        assert row["train_samples_seen"] == 16 and row["train_samples_distinct"] == 16
        assert row["train_samples_on_several_ranks"] == 0
        assert np.isfinite(row["val_mpjpe_stage2"]) and np.isfinite(row["train_total"])
    _, extra = load_checkpoint(out / "last.pt")
    assert extra["train_state"]["epoch"] == 2 and extra["train_state"]["step"] == 4  # 2 steps per epoch

    # the files load like a single-process run's: the bare model (no DDP "module." prefix)
    from h2t_lib.engine.evaluate import load_model, validate
    from h2t_lib.model import Handformer2T

    model, _ = load_model(out / "best.pt", device="cpu")
    assert model.state_dict().keys() == Handformer2T(model.cfg).state_dict().keys()
    from h2t_lib.data.loading import open_dataset

    res = validate(model, open_dataset(interhand_dir, "test", model.cfg.image_size), "cpu")
    assert np.isfinite(res["stage2"]["all"])


def test_torchrun_through_the_l1_warm_up_then_resume_on_fewer_processes(interhand_dir, tmp_path):
    from h2t_lib.engine.state import build

    out = tmp_path / "warm"
    common = ["--data", str(interhand_dir), "--out", str(out), "--device", "cpu", "--quiet"]
    # 2 steps per rank and epoch; the first 3 are the L1 warm-up, where the flows get no gradient
    r = _torchrun("--preset", "tiny", *common, "--set", "steps_per_epoch=0", "epochs=2", "loss.l1_warmup_steps=3")
    assert r.returncode == 0, r.stderr[-3000:]
    _, extra = load_checkpoint(out / "last.pt")
    cfg = TrainConfig.from_dict(extra["train_config"])
    _, fresh, _ = build(cfg, "cpu")  # the flows the run started from
    trained = extra["train_state"]["criterion"]
    assert extra["train_state"]["step"] == 4
    assert any(not torch.equal(v, trained[k]) for k, v in fresh.state_dict().items() if k.startswith("flows."))
    # the run saved by 2 processes goes on in one: its data split changes, nothing else
    env = {**os.environ, "H2T_FAST": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "h2t_lib", "train", "--preset", "tiny", *common, "--resume", "--epochs", "3"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    log = json.loads((out / "log.json").read_text())
    assert [row["epoch"] for row in log["epochs"]] == [1, 2, 3] and log["world_size"] == 1
    assert log["epochs"][-1]["train_samples_seen"] == 16 and np.isfinite(log["epochs"][-1]["val_mpjpe_stage2"])
    _, extra = load_checkpoint(out / "last.pt")
    assert extra["train_state"]["step"] == 8  # + 4 steps of 4 in one process


# --------------------------------------------------------------------------- #
# on-the-fly rendering
# --------------------------------------------------------------------------- #
def test_stream_samples_are_functions_of_seed_epoch_and_index():
    s = SynthStream(6, 64, seed=3, render_size=96)
    a = s[2]
    assert a["image"].shape == (3, 64, 64) and a["index"] == 2
    from h2t_lib.camera import cam_to_pixel

    uv = cam_to_pixel(a["joints_cam"].double().numpy(), a["focal"].double().numpy(), a["princpt"].double().numpy())
    assert np.allclose(uv, a["joints_img"].numpy(), atol=1e-3)  # the loaders' contract
    assert torch.equal(SynthStream(6, 64, seed=3, render_size=96)[2]["image"], a["image"])
    assert not torch.equal(s[3]["image"], a["image"])
    s.set_epoch(1)
    assert not torch.equal(s[2]["image"], a["image"])  # another epoch, another image
    fixed = SynthStream(6, 64, seed=3, render_size=96, fixed_epoch=0, augment=False)
    first = fixed[2]["image"]
    fixed.set_epoch(7)
    assert torch.equal(fixed[2]["image"], first)  # a validation stream stays the same
    with pytest.raises(ValueError):
        SynthStream(0, 64)
    with pytest.raises(IndexError):
        s[6]


def test_stream_style_v1_renders_the_same_scenes_in_another_look():
    v1 = SynthStream(4, 64, seed=3, render_size=96, augment=False, style="v1")
    v2 = SynthStream(4, 64, seed=3, render_size=96, augment=False)
    r1, r2 = v1.render(1), v2.render(1)
    assert np.array_equal(r1["joints_cam"], r2["joints_cam"]) and r1["hand_type"] == r2["hand_type"]
    assert r1["look"] is None and r2["look"] is not None
    a, b = v1[1], v2[1]
    assert torch.equal(a["joints_cam"], b["joints_cam"]) and not torch.equal(a["image"], b["image"])
    assert torch.equal(v2[1]["image"], b["image"])  # deterministic
    assert "style v2" in repr(v2)
    with pytest.raises(ValueError, match="'v3'"):
        SynthStream(4, 64, style="v3")


def test_render_training_passes_the_render_style_to_the_streams():
    from h2t_lib.engine.distributed import Dist
    from h2t_lib.engine.train import training_data

    cfg = TrainConfig.preset("tiny", train_data="render", render_samples=4, max_val_samples=2, render_style="v1",
                             num_workers=0)
    data = training_data(cfg, None, 64, Dist(device=torch.device("cpu")))
    assert data.train_set.style == "v1" and data.val_set.style == "v1"
    assert TrainConfig.preset("tiny").render_style == "v2"
    with pytest.raises(ValueError, match="render_style='v9'"):
        TrainConfig.preset("tiny", render_style="v9")


def test_stream_batches_do_not_depend_on_the_number_of_workers():
    def batches(workers):
        ds = EpochDataset(SynthStream(8, 64, seed=1))
        sampler = EpochSampler(8, seed=1)
        ds.set_epoch(3)
        sampler.set_epoch(3)
        loader = make_loader(ds, 4, False, torch.device("cpu"), workers, sampler=sampler, persistent=False)
        return [b["image"] for b in loader]

    assert all(torch.equal(a, b) for a, b in zip(batches(0), batches(2), strict=True))


def test_render_training_needs_no_folder_and_repeats_exactly(tmp_path):
    cfg = TrainConfig.preset("tiny", train_data="render", render_samples=12)
    a = train(cfg, None, tmp_path / "a", device="cpu", progress=False)
    assert a["data"]["train_data"] == "render" and a["data"]["val_split"] == "rendered"
    assert np.isfinite(a["epochs"][-1]["val_mpjpe_stage2"])
    b = train(TrainConfig.preset("tiny", train_data="render", render_samples=12, epochs=1), None, tmp_path / "b",
              device="cpu", progress=False)
    b = train(None, None, tmp_path / "b", resume=True, epochs=2, device="cpu", progress=False)
    assert _losses(b) == _losses(a)  # same seed, same numbers, also across a resume
    other = train(TrainConfig.preset("tiny", train_data="render", render_samples=12, epochs=1, seed=1), None,
                  tmp_path / "c", device="cpu", progress=False)
    assert _losses(other)[0] != _losses(a)[0]


def test_cli_without_data_is_one_line_unless_rendering(tmp_path):
    env = {**os.environ, "H2T_FAST": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "h2t_lib", "train", "--preset", "tiny", "--out", str(tmp_path / "r")],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--render" in r.stderr
    with pytest.raises(ValueError, match="train_data"):
        TrainConfig.preset("tiny", train_data="stream")


# --------------------------------------------------------------------------- #
# the time budget
# --------------------------------------------------------------------------- #
def test_time_budget_stops_with_a_checkpoint_and_a_validation(interhand_dir, tmp_path):
    cfg = TrainConfig.preset("tiny", epochs=10_000)
    h = train(cfg, interhand_dir, tmp_path, device="cpu", progress=False, time_budget=0.02)  # 1.2 s
    stopped = h["stopped"]
    assert stopped["reason"] == "time budget" and stopped["epoch"] == len(h["epochs"]) < 10_000
    last = h["epochs"][-1]
    assert np.isfinite(last["val_mpjpe_stage2"]) and last["step"] == stopped["step"] >= 1
    _, extra = load_checkpoint(tmp_path / "last.pt")
    assert extra["train_state"]["step"] == stopped["step"] and extra["history"]["stopped"] == stopped
    assert json.loads((tmp_path / "log.json").read_text())["stopped"] == stopped
    with pytest.raises(ValueError, match="time-budget"):
        train(cfg, interhand_dir, tmp_path / "x", device="cpu", progress=False, time_budget=0)


def test_a_render_run_saved_before_the_look_was_a_field_resumes_in_v1():
    old = TrainConfig.preset("tiny", train_data="render").to_dict()
    del old["render_style"]                                   # a run's stored config from before the field
    assert TrainConfig.from_dict(old).render_style == "v1"    # what it was trained on
    assert TrainConfig.from_dict(TrainConfig.preset("tiny", train_data="render").to_dict()).render_style == "v2"
    folder = TrainConfig.preset("tiny").to_dict()
    del folder["render_style"]                                # a folder run: the field is unused, today's default
    assert TrainConfig.from_dict(folder).render_style == "v2"
