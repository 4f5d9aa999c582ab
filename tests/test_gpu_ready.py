"""Ready for the first GPU (issue 24), checked on CPU: the machine's own Python, a GPU asked for and
missing, CPU-only checkpoints, RNG states from more GPUs, render reuse, the budget's learning rate,
optional thop, and the prepared device check in its tiny mode."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from h2t_lib.apps import cli
from h2t_lib.data.loading import EpochDataset, EpochSampler, auto_workers, make_loader
from h2t_lib.data.stream import SynthStream
from h2t_lib.engine.distributed import Dist
from h2t_lib.engine.train import TimeBudget, TrainConfig
from h2t_lib.engine.config import budget_lr_factor

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "H2T_FAST": "1", "OMP_NUM_THREADS": "1"}
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")


def _one_line_error(r, *needles):
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("h2t ")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# --------------------------------------------------------------------------- #
# the Python and the device
# --------------------------------------------------------------------------- #
@no_cuda
def test_a_gpu_asked_for_without_one_is_one_line_and_exit_2(capsys):
    r = subprocess.run([sys.executable, "-m", "h2t_lib", "env", "--device", "gpu"], cwd=REPO, env=ENV,
                       capture_output=True, text=True, timeout=300)
    _one_line_error(r, "GPU was asked for", "--device cpu")
    for device in ("cuda", "cuda:1"):
        assert cli.main(["env", "--device", device]) == 2
        assert "GPU was asked for" in capsys.readouterr().err
    assert cli.main(["env", "--device", "auto"]) == 0
    out = capsys.readouterr().out
    assert f"torch {torch.__version__}" in out and out.strip().endswith("device cpu")


@no_cuda
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_gpu_run_with_the_machines_python_stops_before_rendering_without_a_gpu(tmp_path):
    run = tmp_path / "run"
    r = subprocess.run(["make", "-s", "gpu-run", f"PY={sys.executable}", f"RUN={run}"], cwd=REPO, env=ENV,
                       capture_output=True, text=True, timeout=300)
    _one_line_error(r, "GPU was asked for")
    assert f"using {sys.executable} as it is" in r.stdout  # no .venv built, nothing installed
    assert not Path(f"{run}_val").exists()  # stopped before the validation images
    dry = subprocess.run(["make", "-n", "bench", f"PY={sys.executable}"], cwd=REPO, env=ENV, capture_output=True,
                         text=True, timeout=60).stdout
    assert "pip install" not in dry and f"{sys.executable} -m h2t_lib bench" in dry


def test_an_old_torch_or_a_missing_package_is_one_line(monkeypatch):
    from h2t_lib.apps import env

    assert env.torch_version("2.11.0+cu130") == (2, 11) and env.torch_version("2.9.1") == (2, 9)
    assert env.check_packages() == torch.__version__
    monkeypatch.setattr(torch, "__version__", "2.9.1")
    with pytest.raises(cli.UserError, match=r"torch 2\.9\.1; h2t needs torch >= 2\.11"):
        env.check_packages()
    monkeypatch.setattr(torch, "__version__", "2.11.0")
    monkeypatch.setattr(env, "NEEDED", ("numpy", "no_such_package_h2t"))
    with pytest.raises(cli.UserError, match="lacks no_such_package_h2t"):
        env.check_packages()


# --------------------------------------------------------------------------- #
# checkpoints and RNG states
# --------------------------------------------------------------------------- #
class _OnGpu(torch.Tensor):
    """A stand-in for a CUDA tensor on a machine without one: says it is on cuda:0 until moved."""

    @property
    def device(self):
        return torch.device("cuda", 0)

    def cpu(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor)


def test_every_saved_tensor_is_a_plain_cpu_tensor(tmp_path):
    from h2t_lib.engine.checkpoint import save_checkpoint
    from h2t_lib.model.config import ModelConfig
    from h2t_lib.model import Handformer2T

    model = Handformer2T(ModelConfig.preset("tiny"))
    gpu = torch.arange(6.0).as_subclass(_OnGpu)
    assert gpu.device.type == "cuda"
    extra = {"train_state": {"optimizer": {"state": {0: {"exp_avg": gpu, "step": gpu[:1]}}, "param_groups": []},
                             "criterion": {"flows.0.w": gpu}, "rng": {"cuda": [gpu]}}}
    save_checkpoint(tmp_path / "c.pt", model, **extra)
    loaded = torch.load(tmp_path / "c.pt", map_location=None, weights_only=True)  # a plain load, no map_location

    def tensors(x):
        if torch.is_tensor(x):
            yield x
        elif isinstance(x, dict):
            for v in x.values():
                yield from tensors(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                yield from tensors(v)

    found = list(tensors(loaded))
    assert len(found) > len(model.state_dict())
    assert all(type(t) is torch.Tensor and t.device.type == "cpu" for t in found)
    assert torch.equal(loaded["train_state"]["optimizer"]["state"][0]["exp_avg"], torch.arange(6.0))


def test_rng_states_of_more_gpus_resume_on_one(monkeypatch):
    from h2t_lib.engine import state as train_state

    state = train_state.rng_state()
    state["cuda"] = [torch.full((16,), i, dtype=torch.uint8) for i in range(8)]  # last.pt of an 8-GPU machine
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device="cuda": calls.append(int(s[0])))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: [torch.cuda.set_rng_state(s, i) for i, s
                                                                          in enumerate(states)] and None)
    train_state.set_rng_state(state)
    assert calls == [0]  # the current GPU's, one state; the others are left
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    calls.clear()
    train_state.set_rng_state(state)  # on a CPU machine: the CUDA part is skipped
    assert calls == []


# --------------------------------------------------------------------------- #
# feeding the GPU: render reuse, workers
# --------------------------------------------------------------------------- #
def test_a_render_gives_k_samples_each_a_function_of_seed_index_epoch():
    plain = SynthStream(8, 64, seed=2, render_size=96, augment=False, reuse=2)
    a, b, c = plain[2], plain[3], plain[4]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["joints_cam"], b["joints_cam"])  # one render
    assert not torch.equal(a["image"], c["image"])
    aug = SynthStream(8, 64, seed=2, render_size=96, reuse=2)
    assert not torch.equal(aug[2]["image"], aug[3]["image"])  # one render, two augmentations
    for i in (5, 0, 3, 2, 7):  # any order, a fresh stream: the same sample (the cache changes nothing)
        fresh = SynthStream(8, 64, seed=2, render_size=96, reuse=2)
        assert torch.equal(fresh[i]["image"], aug[i]["image"])
    aug.set_epoch(1)
    first = aug[2]["image"]
    aug.set_epoch(0)
    assert not torch.equal(first, aug[2]["image"])
    # K = 1 is the stream without reuse: sample i renders image i
    assert torch.equal(SynthStream(8, 64, seed=2, render_size=96, reuse=1)[3]["image"],
                       SynthStream(8, 64, seed=2, render_size=96)[3]["image"])
    assert "reuse 2" in repr(aug)
    with pytest.raises(ValueError, match="reuse"):
        SynthStream(8, 64, reuse=0)


@pytest.mark.parametrize("world", [1, 2])
def test_grouped_sampler_keeps_each_renders_samples_together(world):
    shards = []
    for rank in range(world):
        s = EpochSampler(24, seed=3, rank=rank, world_size=world, group=4)
        s.set_epoch(2)
        order = list(s)
        assert len(order) == len(s) == 24 // world
        groups = [order[i:i + 4] for i in range(0, len(order), 4)]
        assert all(g == list(range(g[0], g[0] + 4)) and g[0] % 4 == 0 for g in groups)  # whole, in order
        shards.append(order)
    assert sorted(sum(shards, [])) == list(range(24))
    again = EpochSampler(24, seed=3, rank=0, world_size=world, group=4)
    again.set_epoch(3)
    assert list(again) != shards[0]  # another epoch, another order
    one = EpochSampler(24, seed=3, group=1)
    plain = EpochSampler(24, seed=3)
    one.set_epoch(2), plain.set_epoch(2)
    assert list(one) == list(plain)
    with pytest.raises(ValueError, match="group=5"):
        EpochSampler(24, seed=3, group=5)


def test_reused_renders_load_the_same_batches_with_or_without_workers():
    def batches(workers):
        ds = EpochDataset(SynthStream(8, 64, seed=1, reuse=2))
        sampler = EpochSampler(8, seed=1, group=2)
        ds.set_epoch(3), sampler.set_epoch(3)
        loader = make_loader(ds, 4, False, torch.device("cpu"), workers, sampler=sampler, persistent=False)
        return [b["image"] for b in loader]

    assert all(torch.equal(a, b) for a, b in zip(batches(0), batches(2), strict=True))


def test_render_reuse_is_checked_and_reaches_the_stream():
    from h2t_lib.engine.train import training_data

    cfg = TrainConfig.preset("tiny", train_data="render", render_samples=10, render_reuse=2)
    data = training_data(cfg, None, 64, Dist(device=torch.device("cpu")))
    assert data.train_set.reuse == 2 and len(data.train_set) == 10 and data.sampler.group == 2
    assert data.val_set.reuse == 1  # validation: one sample per render
    with pytest.raises(ValueError, match="render_reuse=3 must be an integer in 1..8 that divides batch_size=4"):
        TrainConfig.preset("tiny", render_reuse=3)


def test_on_cuda_the_loader_workers_take_every_core_but_one(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    cuda = torch.device("cuda")
    assert auto_workers(cuda) == auto_workers(cuda, render=True) == 15
    assert auto_workers(cuda, processes=2) == 7
    assert auto_workers(torch.device("cpu")) == 2


# --------------------------------------------------------------------------- #
# the learning rate over a time budget
# --------------------------------------------------------------------------- #
def test_budget_schedule_warms_up_then_anneals_to_its_end():
    f = [budget_lr_factor(x / 100, 0.01) for x in range(101)]
    assert f[0] == 0.01 and f[5] == pytest.approx(1.0) and f[100] == pytest.approx(0.01)
    assert all(a <= b for a, b in zip(f[:6], f[1:6]))  # warm-up: rising
    assert all(a >= b for a, b in zip(f[5:], f[6:]))  # then falling
    assert budget_lr_factor(1.7, 0.01) == pytest.approx(0.01) and budget_lr_factor(-1, 0.01) == 0.01


def test_time_budget_drives_the_learning_rate(monkeypatch):
    import h2t_lib.engine.train as train_mod

    clock = [1000.0]
    monkeypatch.setattr(train_mod.time, "monotonic", lambda: clock[0])
    budget = TimeBudget(1.0)  # 60 s
    cfg = TrainConfig.preset("tiny")
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler, per_step = budget.scheduler(opt, cfg)
    assert per_step and opt.param_groups[0]["lr"] == pytest.approx(1e-3 * cfg.min_lr_frac)  # warm-up's start
    lrs = []
    for t in (3, 30, 50, 59.5):
        clock[0] = 1000.0 + t
        stopped = budget.spent(Dist())
        opt.step()
        scheduler.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(1e-3) and lrs[0] > lrs[1] > lrs[2] > lrs[3] and stopped is False
    budget.reserve = 10.0  # the epoch's end takes 10 s: the cosine ends 10 s early, where the steps stop
    clock[0] = 1050.0
    assert budget.spent(Dist()) and budget.used == 1.0
    assert "lr_schedule" not in json.dumps(scheduler.state_dict(), default=str)  # a plain state dict
    assert TimeBudget(None).scheduler(opt, cfg) is None
    assert TimeBudget(1.0).scheduler(opt, TrainConfig.preset("tiny", lr_over_budget=False)) is None


# --------------------------------------------------------------------------- #
# thop optional; the prepared device check
# --------------------------------------------------------------------------- #
def test_bench_without_thop_reports_flops_as_n_a(tmp_path, monkeypatch, capsys):
    from h2t_lib.engine import bench

    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "thop.py").write_text("raise ImportError('thop is hidden by the test')\n")
    monkeypatch.syspath_prepend(str(shim))
    monkeypatch.delitem(sys.modules, "thop", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(shim) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    assert not bench.has_thop()
    out = tmp_path / "b.json"
    rc = cli.main(["bench", "--quick", "--device", "cpu", "--threads", "1", "--repeats", "1", "--warmup", "0",
                   "--no-throughput", "--models", "h2t-tiny", "--json", str(out)])
    stdout = capsys.readouterr().out
    assert rc == 0, stdout
    row = json.loads(out.read_text())["rows"][0]
    assert "error" not in row and "gflops" not in row and row["gflops_torch"] > 0
    line = next(ln for ln in stdout.splitlines() if ln.startswith(row["label"]))
    assert line.count("n/a") == 2  # params M (thop) and GFLOPs
    assert "thop is not installed" in stdout and "thop is not installed" in out.with_suffix(".md").read_text()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_gpu_check_runs_end_to_end_in_its_tiny_mode(tmp_path):
    if not torch.cuda.is_available():  # the full check wants a GPU: it stops at once, one line
        r = subprocess.run(["bash", "tools/gpu_check.sh", str(tmp_path / "full")], cwd=REPO,
                           env={**ENV, "PY": sys.executable}, capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "GPU was asked for" in r.stderr, r.stderr
        assert not (tmp_path / "full" / "gpu_check.json").exists()
    r = subprocess.run(["bash", "tools/gpu_check.sh", "--tiny", str(tmp_path)], cwd=REPO,
                       env={**ENV, "PY": sys.executable}, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    steps = res["steps"]
    assert set(steps) == {"versions", "train_step", "gpu_run", "render_loader", "folder_loader"}
    assert all(s["ok"] for s in steps.values())
    assert steps["versions"]["torch"] == torch.__version__
    for b in ("2", "4"):
        assert np.isfinite(steps["train_step"]["batches"][b]["img_per_s"])
    run = steps["gpu_run"]
    assert run["returncode"] == 0 and run["stopped"]["reason"] == "time budget" and run["data"]["train_data"] == "render"
    assert np.isfinite(run["eval"]["mpjpe_mm"]["stage 2 (refined, final)"]["all"])
    assert set(steps["render_loader"]["by_reuse"]) == {"1", "2"}
    assert steps["folder_loader"]["img_per_s"] > 0
    assert (tmp_path / "gpu_run.log").exists()
