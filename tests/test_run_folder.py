"""Nothing lost, nothing misread (issue 22): resume mid-epoch repeats every step, a run folder is never
overwritten unasked, outputs that cannot be written fail before the work in one line, no temporary file stays.

Tests run as root, where a folder's mode does not stop writes: a read-only folder or a full disk is
simulated by making ``os.open`` / ``torch.save`` fail as the operating system would.
"""
from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import pytest
import torch

from h2t_lib.apps.cli import main
from h2t_lib.errors import UserError
from h2t_lib.engine.train import TrainConfig, train


class Killed(Exception):
    """Stands in for a kill in the middle of an epoch."""


def _kill_at(step: int):
    def on_step(point):
        if point["step"] == step:
            raise Killed

    return on_step


def _trace(history):
    """Every logged step's (step, running loss, lr) and every epoch's (loss, lr at its start)."""
    return ([(s["step"], s["total"], s["lr"]) for s in history["steps"]],
            [(r["train_total"], r["lr"]) for r in history["epochs"]])


@pytest.mark.parametrize("schedule", [
    {"lr_schedule": "step", "warmup_steps": 5},  # the warm-up runs on past the kill
    {"lr_schedule": "cosine"},
    {"lr_schedule": "cosine", "warmup_steps": 2},
], ids=["step+warmup", "cosine", "cosine+warmup"])
def test_resume_after_a_kill_mid_epoch_repeats_every_step(interhand_dir, tmp_path, schedule):
    cfg = TrainConfig.preset("tiny", val_split="", **schedule)  # 2 epochs x 3 steps, every step logged
    whole = train(cfg, interhand_dir, tmp_path / "whole", device="cpu", progress=False)
    with pytest.raises(Killed):
        train(cfg, interhand_dir, tmp_path / "cut", device="cpu", progress=False, on_step=_kill_at(5))
    resumed = train(None, interhand_dir, tmp_path / "cut", resume=True, device="cpu", progress=False)
    assert [s["step"] for s in resumed["steps"]] == list(range(1, 7))
    assert _trace(resumed) == _trace(whole)  # exactly: loss and learning rate of every step and epoch
    assert len({lr for _, _, lr in _trace(whole)[0]}) > 1  # the schedule moved the lr


def test_a_folder_holding_another_run_is_refused(tmp_path, interhand_dir):
    earlier = {name: f"the earlier run's {name}".encode() for name in ("last.pt", "best.pt", "log.json")}
    for name, content in earlier.items():
        (tmp_path / name).write_bytes(content)
    with pytest.raises(UserError, match="holds another run's results.*--resume.*--overwrite"):
        train(TrainConfig.preset("tiny"), interhand_dir, tmp_path, device="cpu", progress=False)
    code = main(["train", "--preset", "tiny", "--data", str(interhand_dir), "--out", str(tmp_path), "--quiet"])
    assert code == 2
    assert {name: (tmp_path / name).read_bytes() for name in earlier} == earlier  # nothing replaced


def test_overwrite_replaces_the_run_and_stale_temporary_files_go(tmp_path, interhand_dir):
    """--overwrite: the earlier run's files are gone; ``.NAME.*.tmp`` left by a killed save is removed."""
    (tmp_path / "best.pt").write_bytes(b"the earlier run's best")
    (tmp_path / "loss_curve.png").write_bytes(b"the earlier run's curve")
    stale = [tmp_path / ".last.pt.k1ll3d.tmp", tmp_path / ".log.json.abc.tmp"]
    for tmp in stale:
        tmp.write_bytes(b"half a checkpoint")
    cfg = TrainConfig.preset("tiny", epochs=1, steps_per_epoch=1, val_split="")
    train(cfg, interhand_dir, tmp_path, device="cpu", progress=False, overwrite=True)
    assert not any(tmp.exists() for tmp in stale)
    assert [r["epoch"] for r in json.loads((tmp_path / "log.json").read_text())["epochs"]] == [1]
    assert (tmp_path / "best.pt").read_bytes()[:2] == b"PK"  # a torch checkpoint (zip), this run's
    assert not list(tmp_path.glob(".*.tmp"))


def _deny_writes(monkeypatch, folder: Path, err: int = errno.EACCES):
    """Make creating anything under ``folder`` fail with ``err``, as a read-only folder (or a full disk) does."""
    real_open, real_mkdir = os.open, os.mkdir
    folder = str(folder)

    def inside(path) -> bool:
        return os.path.abspath(os.fspath(path)).startswith(folder)

    def fake_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            raise OSError(err, os.strerror(err), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if inside(path):
            raise OSError(err, os.strerror(err), os.fspath(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


def _not_reached(what):
    def fail(*args, **kwargs):
        pytest.fail(f"{what} ran before the output was checked")

    return fail


def _one_line(capsys, *words):
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)


def test_unwritable_outputs_fail_before_the_work(tmp_path, interhand_dir, monkeypatch, capsys):
    import h2t_lib.apps.eval
    import h2t_lib.engine.evaluate
    import h2t_lib.engine.train

    ro = tmp_path / "read_only"
    ro.mkdir()
    image = tmp_path / "hands.png"
    from PIL import Image

    Image.new("RGB", (32, 24)).save(image)
    _deny_writes(monkeypatch, ro)
    monkeypatch.setattr(h2t_lib.engine.evaluate, "load_model", _not_reached("loading the model"))
    monkeypatch.setattr(h2t_lib.apps.eval, "load_model", _not_reached("loading the model"))
    monkeypatch.setattr(h2t_lib.engine.train, "training_data", _not_reached("opening the training data"))
    for argv, path in (
        (["eval", "--ckpt", "x.pt", "--data", str(interhand_dir), "--json", str(ro / "res.json")], ro / "res.json"),
        (["predict", str(image), "--out", str(ro / "pred")], ro / "pred"),
        (["train", "--preset", "tiny", "--data", str(interhand_dir), "--out", str(ro / "run"), "--quiet"], ro / "run"),
        (["synth", "--out", str(ro), "--num", "2", "--size", "64", "--no-progress"], ro),
    ):
        assert main(argv) == 2, argv[0]
        _one_line(capsys, f"cannot write {path}", "Permission denied")
    assert list(ro.iterdir()) == []


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EFBIG])
def test_a_failed_checkpoint_write_is_one_line_and_leaves_no_temporary_file(tmp_path, monkeypatch, err):
    """torch.save on a full disk: to a path, torch's own RuntimeError naming no file; to a file object, the
    OSError of the write (as torch 2.x does on /dev/full). Either way: one line naming last.pt, last.pt kept."""
    from h2t_lib.engine.checkpoint import save_checkpoint
    from h2t_lib.model.config import ModelConfig
    from h2t_lib.model import Handformer2T

    model = Handformer2T(ModelConfig.preset("tiny"))
    path = tmp_path / "last.pt"
    path.write_bytes(b"the previous epoch's checkpoint")
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)):
            real_save(obj, f)
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
        f.write(b"\0" * 1000)
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(UserError, match=re.escape(f"cannot write {path}: {os.strerror(err)}")):
        save_checkpoint(path, model)
    assert path.read_bytes() == b"the previous epoch's checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_log_lines_show_checkout_paths_relative(tmp_path):
    from h2t_lib.utils import ROOT, shown_path

    assert shown_path(ROOT / "runs" / "course_data") == "runs/course_data"
    assert shown_path(tmp_path) == str(tmp_path)  # outside the checkout: as given
