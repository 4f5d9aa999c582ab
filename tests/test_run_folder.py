"""Nothing lost, nothing misread (issue 22): resume mid-epoch repeats every step."""
from __future__ import annotations

import pytest

from h2t_lib.train import TrainConfig, train


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
