"""The ablation runner (python -m h2t_lib ablate): rows, shared runs, reuse of finished runs, the JSON."""
import json

import pytest

from h2t_lib.engine import ablate as ab
from h2t_lib.apps.cli import main

TINY = ab.Budget(epochs=1, steps=1, batch=2, num_test=4, extra_seeds=1)


def test_rows_cover_the_papers_tables():
    tables = [r[0] for r in ab.ROWS]
    assert tables.count("4") == 5 and tables.count("5") == 6 and tables.count("6") == 4
    # rows that describe the same model share one run: Table 4's full model = Table 5's r18/c_e 64
    # = Table 6's hand tokens/r18
    full = ab.run_key({}, {}, 0)
    keys = {label: ab.run_key(m, l, 0) for _, label, m, l in ab.ROWS}
    assert keys["MMD + / PQE + / KGFF +"] == full
    assert keys["resnet18 / c_e 64"] == full and keys["hand tokens / resnet18"] == full
    assert len(set(keys.values())) == 12  # 15 rows, 12 distinct models
    assert ab.run_key({}, {}, 1) != full  # another seed is another run


def test_seed_spread():
    assert ab.seed_spread([60.0, 64.0, 61.0]) == pytest.approx(2.0)
    assert ab.seed_spread([60.0]) == 0.0


def test_table4_end_to_end_and_reuse(interhand_dir, tmp_path, monkeypatch):
    table = ab.ablate(interhand_dir, tmp_path / "runs", TINY, device="cpu", tables=("4",), progress=False)
    rows = {r["row"]: r for r in table["rows"]}
    assert len(rows) == 5 and table["rows"] == json.loads((tmp_path / "runs" / "ablations.json").read_text())["rows"]
    full, coarse_only = rows["MMD + / PQE + / KGFF +"], rows["MMD + / PQE - / KGFF -"]
    # switching the pose query enhancer off removes the refiner stage: fewer parameters, and the
    # output is the coarse prediction itself
    assert coarse_only["params_m"] < full["params_m"]
    assert coarse_only["mpjpe"] == coarse_only["coarse_mpjpe"]
    assert "use_kgff" not in full["config"] and rows["MMD + / PQE + / KGFF -"]["config"]["use_kgff"] is False
    assert rows["MMD - / PQE + / KGFF +"]["loss"] == {"use_mmd": False}
    for r in rows.values():
        assert r["num_test"] == 4 and 0 < r["mpjpe"] < 1000
    assert len(table["base_seed_mpjpe"]) == 2 and table["base_seed_mpjpe"][0] == full["mpjpe"]

    # finished runs are reused: a second call trains nothing
    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr("h2t_lib.engine.train.train", no_training)
    again = ab.ablate(interhand_dir, tmp_path / "runs", TINY, device="cpu", tables=("4",), progress=False)
    assert again["rows"] == table["rows"]


def test_cli_rejects_unknown_table(interhand_dir, capsys):
    assert main(["ablate", "--data", str(interhand_dir), "--tables", "7"]) == 2
    err = capsys.readouterr().err
    assert "tables" in err and "Traceback" not in err


def test_table4_with_a_trained_backbone_in_shards(interhand_dir, tmp_path, capsys):
    from h2t_lib.engine.train import TrainConfig, train

    init = tmp_path / "init"
    train(TrainConfig.preset("tiny", epochs=1), interhand_dir, init, device="cpu", progress=False)
    budget = ab.Budget(epochs=1, steps=1, batch=2, num_test=4, extra_seeds=0, schedule="cosine",
                       init_backbone=str(init / "last.pt"))
    # two shards share the 5 runs (Table 4's rows), no table yet
    for k in range(2):
        assert ab.ablate(interhand_dir, tmp_path / "runs", budget, device="cpu", tables=("4",), progress=False,
                         shard=(k, 2)) is None
    done = sorted(p.parent.name for p in (tmp_path / "runs").glob("*/result.json"))
    assert len(done) == 5
    # every run's backbone is the init's
    from h2t_lib.engine.checkpoint import load_checkpoint

    src = load_checkpoint(init / "last.pt")[0].state_dict()
    run = load_checkpoint(tmp_path / "runs" / done[0] / "last.pt")[0]
    assert run.cfg.image_size == 64
    table = ab.ablate(interhand_dir, tmp_path / "runs", budget, device="cpu", tables=("4",), progress=False)
    assert "--schedule cosine --init-backbone" in table["command"] and "from scratch" not in table["budget"]
    assert table["mean_pose_mpjpe"] > 0 and len(table["rows"]) == 5 and table["skipped"] == []
    # with a trained backbone, Table 5's ResNet-34 rows cannot start from it: they are skipped, not run
    rows5 = [(m, l) for t, _, m, l in ab.ROWS if t == "5" and m["backbone"] == "resnet18" and m["dim"] != 64]
    for m, l in rows5:  # pretend the two other widths ran, so that the table can be written without training
        key = ab.run_key(m, l, 0, ab.BASE, "tiny")
        (tmp_path / "runs" / key).mkdir()
        result = {k: v for k, v in table["rows"][0].items() if k not in ("table", "row")}
        (tmp_path / "runs" / key / "result.json").write_text(json.dumps({**result, "config": m}))
    t5 = ab.ablate(interhand_dir, tmp_path / "runs", budget, device="cpu", tables=("5",), progress=False)
    assert [r["row"] for r in t5["rows"]] == ["resnet18 / c_e 32", "resnet18 / c_e 64", "resnet18 / c_e 128"]
    assert t5["skipped"] == ["resnet34 / c_e 32", "resnet34 / c_e 64", "resnet34 / c_e 128"]
    assert src  # the source had weights to copy (the copy itself is tested in test_train)
