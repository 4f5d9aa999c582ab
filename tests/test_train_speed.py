"""The training-throughput benchmark runs on the tiny preset and reports every part (no timing asserted)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_train_speed_reports_each_part(interhand_dir, tmp_path, fast_env):
    out = tmp_path / "speed.json"
    r = subprocess.run([sys.executable, "-m", "h2t_lib", "train-speed", "--preset", "tiny", "--data", str(interhand_dir),
                        "--threads", "1", "--steps", "1", "--batch-size", "2", "--json", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["threads"], r["precision"]) for r in rows] == [(1, "fp32"), (1, "bf16")]  # both precisions by default
    assert rows[0]["batch"] == 2 and rows[0]["image_size"] == 64
    for row in rows:
        for key in ("backbone", "model_step", "data", "train_loop"):
            assert row[key] > 0, key
    assert "| 1 | fp32 |" in r.stdout and "| 1 | bf16 |" in r.stdout and "model / backbone" in r.stdout
    bad = subprocess.run([sys.executable, "-m", "h2t_lib", "train-speed", "--data", str(interhand_dir), "--threads", "0"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_train_speed_measures_rendered_data_without_a_folder(fast_env):
    import dataclasses

    from h2t_lib.engine.config import TrainConfig
    from h2t_lib.engine.train_speed import format_table, measure

    cfg = dataclasses.replace(TrainConfig.preset("tiny"), batch_size=2)
    row = measure(cfg, None, threads=1, steps=1, workers=0, render=True)
    assert row["render"] and row["data"] > 0 and row["train_loop"] > 0
    assert "rendered on the fly" in format_table([row])
