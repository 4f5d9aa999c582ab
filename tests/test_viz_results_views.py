"""Tests of h2t_lib.course.results_views, h2t_lib.course.image_views and h2t_lib.paper_tables (notebooks 09-10)."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from fixtures import make_interhand_fixture  # noqa: E402

from h2t_lib import paper_tables as pt  # noqa: E402
from h2t_lib.course import image_views as iv  # noqa: E402
from h2t_lib.course import results_views as rv  # noqa: E402


# ------------------------------------------------------------------ paper tables
def test_paper_sizes_match_config():
    from h2t_lib.model.config import PAPER_SIZES_M

    for r in pt.TABLE5:
        assert PAPER_SIZES_M[(r["preset"], "hand")] == r["size_m"]
        assert pt.paper_size_m(r["preset"]) == r["size_m"]
    for r in pt.TABLE6:
        assert PAPER_SIZES_M[(r["preset"], r["tokens"])] == r["size_m"]
    assert pt.paper_size_m("cpu") is None


def test_paper_tables_rows_and_claims():
    # the numbers the text quotes: 5.50 mm better than InterNet on interacting hands, 3.92 on single
    t1 = {r["row"]: r for r in pt.TABLE1}
    assert t1[1]["mpjpe_i"] - t1[8]["mpjpe_i"] == pytest.approx(5.30, abs=0.01)  # the paper's text says 5.50
    assert t1[1]["mpjpe_s"] - t1[8]["mpjpe_s"] == pytest.approx(3.88, abs=0.01)  # the text says 3.92
    assert min(pt.TABLE4, key=lambda r: r["mpjpe"])["key"] == "full model"
    assert pt.TABLE2[1]["throughput"] > pt.TABLE2[0]["throughput"] and pt.TABLE2[1]["fps"] < pt.TABLE2[0]["fps"]
    for t, rows in pt.TABLES.items():
        assert [r["row"] for r in rows] == list(range(1, len(rows) + 1))
        assert all(r["table"] == t for r in rows)
    rows = pt.rows(5)
    rows[0]["mpjpe"] = -1.0  # a copy: the module's data is unchanged
    assert pt.TABLE5[0]["mpjpe"] == 11.47
    with pytest.raises(ValueError, match="Tables 1-6"):
        pt.rows(7)


# ------------------------------------------------------------------ ablations
def _row(table, name, config, mpjpe, **kw):
    base = {"table": table, "row": name, "config": config, "params_m": 1.0, "mpjpe_s": mpjpe, "mpjpe_i": mpjpe,
            "mpjpe": mpjpe, "coarse_mpjpe": mpjpe + 10, "minutes": 1.0}
    base.update(kw)
    return base


@pytest.fixture
def ablations_file(tmp_path):
    rows = [
        _row("4", "full", {}, 60.0),
        _row("4", "no MMD", {"use_mmd": False}, 63.0),
        _row("4", "coarse only", {"use_pqe": False}, 73.0),
        _row(4, "no KGFF", {"use_kgff": False}, 68.0),  # an int table is accepted
        _row("5", "d32", {"dim": 32}, 70.0),
        _row("5", "d64", {"dim": 64}, 65.0),
        _row("5", "d128", {"dim": 128}, 66.0),
        _row("6", "hand", {"tokens": "hand"}, 61.0),
        _row("6", "joint", {"tokens": "joint"}, 64.0, coarse_mpjpe=None),
    ]
    path = tmp_path / "ablations.json"
    path.write_text(json.dumps({"command": "python -m h2t_lib ablate", "device": "cpu", "budget": "1 min", "rows": rows}))
    return path


def test_load_ablations(ablations_file, tmp_path):
    assert rv.load_ablations(tmp_path / "absent.json") is None
    a = rv.load_ablations(ablations_file)
    assert len(a["rows"]) == 9 and a["rows"][3]["table"] == "4" and a["rows"][8]["coarse_mpjpe"] is None
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rows": [_row("7", "x", {}, 1.0)]}))
    with pytest.raises(ValueError, match="rows\\[0\\].*table"):
        rv.load_ablations(bad)
    bad.write_text(json.dumps({"rows": [_row("4", "x", {}, 1.0, mpjpe_s="ten")]}))
    with pytest.raises(ValueError, match="not a number"):
        rv.load_ablations(bad)


def test_ablation_key():
    assert rv.ablation_key(_row("4", "full", {}, 1)) == (True, True, True)
    assert rv.ablation_key(_row("4", "x", {"use_pqe": False}, 1)) == (True, False, False)
    assert rv.ablation_key(_row("4", "x", {"loss.mmd_weight": 0}, 1)) == (False, True, True)
    assert rv.ablation_key(_row("4", "no-MMD coarse", {"use_pqe": False}, 1)) == (False, False, False)
    assert rv.ablation_key(_row("5", "x", {"backbone": "resnet34", "dim": 128}, 1)) == ("resnet34", 128)
    assert rv.ablation_key(_row("6", "x", {}, 1)) == (None, "hand")


def test_pairing_and_agreement(ablations_file):
    a = rv.load_ablations(ablations_file)
    p4 = rv.pair_ablation_rows(a, 4)
    assert [p["ours"]["row"] if p["ours"] else None for p in p4] == [None, "coarse only", "no KGFF", "no MMD", "full"]
    assert {p["match"] for p in p4 if p["ours"]} == {"exact"}
    # rank matching: our single backbone's widths 32 / 64 / 128 stand for R50's 128 / 256 / 512
    p5 = rv.pair_ablation_rows(a, "5")
    assert [p["ours"]["row"] if p["ours"] else None for p in p5] == [None, None, None, "d32", "d64", "d128"]
    assert all(p["match"] == "rank" for p in p5[3:])

    ag = rv.trend_agreement(p4)
    assert len(ag) == 6  # 4 measured rows -> 6 pairs
    # reference by hand: paper deltas and ours; only coarse only -> no KGFF disagrees (paper +3.91, ours -5)
    for x in ag:
        pa = {p["label"]: p for p in p4}
        assert x["paper_delta"] == pytest.approx(pa[x["b"]]["paper"]["mpjpe"] - pa[x["a"]]["paper"]["mpjpe"])
        assert x["ours_delta"] == pytest.approx(pa[x["b"]]["ours"]["mpjpe"] - pa[x["a"]]["ours"]["mpjpe"])
        assert x["agree"] == (np.sign(x["paper_delta"]) == np.sign(x["ours_delta"]))
    assert [(x["a"], x["b"]) for x in ag if not x["agree"]] == [("coarse only", "PQE without KGFF")]
    lines = rv.agreement_lines(4, p4, ag)
    assert lines[0].startswith("Table 4: 4 of 5 rows measured") and "5 of 6 pairwise orderings agree" in lines[0]
    assert sum("DISAGREE" in line for line in lines) == 1

    # a mix of the paper's sizes and others is matched by rank throughout (never half exact)
    a["rows"].append(_row("5", "r34-d128", {"backbone": "resnet34", "dim": 128}, 50.0))
    assert "exact" not in {p["match"] for p in rv.pair_ablation_rows(a, 5)}
    # only the paper's own sizes: exact matching
    only = {**a, "rows": [r for r in a["rows"] if r["row"] == "r34-d128"]}
    p5 = rv.pair_ablation_rows(only, 5)
    assert [p["match"] for p in p5] == ["exact", None, None, None, None, None]
    assert rv.trend_agreement(p5) == []

    none = rv.pair_ablation_rows(None, 6)
    assert all(p["ours"] is None for p in none) and len(none) == 4
    assert rv.agreement_lines(6, none, []) == [f"Table 6: none of the paper's rows measured yet ({rv.ABLATE_HINT})."]


def test_ablation_figure(ablations_file):
    a = rv.load_ablations(ablations_file)
    fig = rv.ablation_figure(rv.pair_ablation_rows(a, 4), 4)
    axes = fig.axes
    assert len(axes) == 3
    assert [round(b.get_height(), 2) for b in axes[0].patches] == [r["mpjpe"] for r in pt.TABLE4]
    assert [b.get_height() for b in axes[1].patches] == [0.0, 73.0, 68.0, 63.0, 60.0]
    rel = [b.get_height() for b in axes[2].patches]  # paper then ours, % vs the full model
    assert rel[4] == pytest.approx(0.0) and rel[9] == pytest.approx(0.0)
    assert rel[6] == pytest.approx(100 * (73.0 / 60.0 - 1))
    plt.close(fig)
    fig = rv.ablation_figure(rv.pair_ablation_rows(None, 6), 6)  # nothing measured: the paper alone, and the hint
    assert len(fig.axes) == 3 and len(fig.axes[0].patches) == 4
    assert [t.get_text().replace("\n", " ") for t in fig.axes[1].texts] == [rv.ABLATE_HINT]
    plt.close(fig)


# ------------------------------------------------------------------ bench, parameter counts
def _bench():
    def row(kind, preset, tokens, params, fps, thr, mb=32, capped=True):
        return {"key": preset, "label": f"{kind} {preset} {tokens}", "kind": kind, "preset": preset, "tokens": tokens,
                "params_thop_m": params, "fps": fps, "fps_best": fps + 1, "throughput": thr, "throughput_best": thr + 1,
                "max_batch": mb, "max_batch_capped": capped}

    return {"meta": {"device": "cpu", "device_name": "test cpu"},
            "rows": [row("h2t", "r34-d256", "hand", 31.0, 6.0, 5.0), row("h2t", "r50-d256", "hand", 35.0, 5.0, 3.0),
                     row("internet", "paper", "hand", 47.0, 2.0, 1.0), {"key": "x", "label": "broken", "error": "OOM"}]}


def test_bench_vs_paper(tmp_path):
    assert rv.load_bench(tmp_path / "none.json") is None
    (tmp_path / "b.json").write_text(json.dumps(_bench()))
    b = rv.load_bench(tmp_path / "b.json")
    comp = {c["quantity"]: c for c in rv.bench_vs_paper(b)}
    assert comp["FPS (batch 1)"]["paper_ratio"] == pytest.approx(66.34 / 107.08)
    assert comp["FPS (batch 1)"]["ours_ratio"] == pytest.approx(2.5) and comp["FPS (batch 1)"]["agree"] is False
    assert comp["throughput (img/s)"]["ours_ratio"] == pytest.approx(3.0) and comp["throughput (img/s)"]["agree"] is True
    assert comp["model size (M)"]["agree"] is True  # 35/47 < 1 as 36/47
    assert comp["max batch"]["agree"] is None and "capped" in comp["max batch"]["note"]
    fig = rv.efficiency_figure(b)
    assert len(fig.axes) == 3
    assert len(fig.axes[0].patches) == 3  # the errored row is left out
    assert len(fig.axes[2].patches) == 6  # 3 quantities (capped max batch left out) x paper / ours
    plt.close(fig)
    fig = rv.paper_table1_figure()
    assert len(fig.axes[0].collections) == sum(r["size_m"] is not None for r in pt.TABLE1)
    plt.close(fig)


def test_param_count_rows(monkeypatch):
    import h2t_lib.model.params as params

    fake = {("r34-d128", "hand"): 25.918870e6, ("r50-d256", "joint"): 99.4e6}
    monkeypatch.setattr(params, "preset_counts", lambda preset, tokens="hand": {"total": fake.get((preset, tokens), 1e6)})
    rows = rv.param_count_rows()
    assert [(r["table"], r["preset"], r["tokens"]) for r in rows] == [("5", r["preset"], "hand") for r in pt.TABLE5] + [
        ("6", "r34-d256", "joint"), ("6", "r50-d256", "joint")]
    assert rows[0]["diff_pct"] == pytest.approx(100 * (25.91887 - 24.9) / 24.9)
    assert rows[-1]["diff_pct"] == pytest.approx(0.0)
    fig = rv.param_count_figure(rows)
    assert len(fig.axes[0].patches) == 16
    plt.close(fig)


# ------------------------------------------------------------------ notebook 10
def test_folder_tree(tmp_path):
    for i in range(5):
        (tmp_path / "d" / "images").mkdir(parents=True, exist_ok=True)
        (tmp_path / "d" / "images" / f"{i}.jpg").write_bytes(b"")
    text = iv.folder_tree(tmp_path / "d", max_entries=2)
    assert text.splitlines() == ["d/", "    images/", "        0.jpg", "        1.jpg", "        ... (3 more)"]


@pytest.fixture(scope="module")
def fixture_data(tmp_path_factory):
    from h2t_lib.model.config import ModelConfig
    from h2t_lib.data import InterHand26M
    from h2t_lib.model import Handformer2T

    root = tmp_path_factory.mktemp("ih")
    gt = make_interhand_fixture(root, "test", n=2)
    torch.manual_seed(0)
    model = Handformer2T(ModelConfig.preset("tiny", root_source="pred")).eval()
    return gt, InterHand26M(root, "test", image_size=model.cfg.image_size), model


def test_original_view_and_predict_match_the_loader(fixture_data):
    from h2t_lib.engine.predict import predict_image, square_box

    gt, ds, model = fixture_data
    v = iv.original_view(ds, 0)
    a = gt["annotations"][0]
    assert v["image"].size == (a["width"], a["height"])
    np.testing.assert_allclose(v["focal"], a["focal"])
    np.testing.assert_allclose(v["princpt"], a["princpt"])
    np.testing.assert_allclose(v["joints_cam"], a["joints_cam"], atol=1e-3)
    uv = np.stack([a["joints_cam"][:, 0] / a["joints_cam"][:, 2] * a["focal"][0] + a["princpt"][0],
                   a["joints_cam"][:, 1] / a["joints_cam"][:, 2] * a["focal"][1] + a["princpt"][1]], 1)
    np.testing.assert_allclose(v["joints_uv"], uv, atol=1e-3)
    np.testing.assert_allclose(square_box(v["bbox"], *v["image"].size), ds._bbox[0])  # predict crops as the loader

    # predict on the whole image with the true intrinsics and box == the model on the loader's crop
    res = predict_image(model, v["image"], focal=v["focal"], princpt=v["princpt"], bbox=v["bbox"])
    s = ds[0]
    with torch.no_grad():
        out = model(s["image"][None], torch.as_tensor(s["focal"])[None].float(), torch.as_tensor(s["princpt"])[None].float())
    np.testing.assert_allclose(np.array([res["root_mm"]["right"], res["root_mm"]["left"]]), out["root"][0].numpy(),
                               atol=0.02)
    rows = iv.compare_predictions({"same": res}, gt_cam=np.array([j["cam_mm"] for j in res["joints"]]),
                                  gt_uv=np.array([j["uv"] for j in res["joints"]]))
    assert rows[0]["mpjpe_mm"] == pytest.approx(0.0, abs=0.05) and rows[0]["err_2d_px"] == pytest.approx(0.0, abs=1e-9)
    # the wrist error is against root_mm (the JSON's cam_mm of a wrist adds the model's rel_mm of it, not 0)
    gt_w = np.zeros((42, 3))
    gt_w[[20, 41]] = [res["root_mm"]["right"], res["root_mm"]["left"]]
    assert iv.compare_predictions({"w": res}, gt_cam=gt_w)[0]["wrist_err_mm"] == pytest.approx(0.0, abs=1e-9)
    fig = iv.prediction_overlay_figure(v["image"], {"a": res, "b": res}, gt_uv=v["joints_uv"], gt_valid=v["joint_valid"])
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == 1  # the crop box
    plt.close(fig)


def test_focal_sweep_depth_scales_with_focal(fixture_data):
    _, ds, model = fixture_data
    v = iv.original_view(ds, 1)
    rows = iv.focal_sweep(model, v["image"], factors=(0.5, 1.0, 2.0), princpt=v["princpt"], bbox=v["bbox"])
    z = np.array([r["z_right_mm"] for r in rows])
    np.testing.assert_allclose(z / z[1], [0.5, 1.0, 2.0], rtol=2e-3)  # the root head's depth is ~ focal (Sec. "root")
    assert rows[1]["d_rel_mm"] == 0.0 and rows[1]["d_uv_px"] == 0.0
    assert rows[1]["focal"] == pytest.approx(1.2 * max(v["image"].size))  # predict's default guess
    fig = iv.focal_sweep_figure(rows)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2
    plt.close(fig)


def test_mmd_switch_read_from_the_loss_overrides_of_ablate():
    # python -m h2t_lib ablate writes MMD on/off into the row's "loss", the rest into "config"
    from h2t_lib.course import results_views as rv

    off = {"table": "4", "row": "MMD - / PQE + / KGFF +", "config": {"dim": 64}, "loss": {"use_mmd": False}}
    on = {"table": "4", "row": "MMD + / PQE - / KGFF -", "config": {"dim": 64, "use_pqe": False, "use_kgff": False},
          "loss": {}}
    assert rv.ablation_key(off) == (False, True, True)
    assert rv.ablation_key(on) == (True, False, False)


def test_seed_spread_turns_small_deltas_into_no_ordering(ablations_file):
    a = rv.load_ablations(ablations_file)
    p4 = rv.pair_ablation_rows(a, 4)
    plain = rv.trend_agreement(p4)
    big = max(abs(x["ours_delta"]) for x in plain)
    assert not any(x["within_noise"] for x in plain)                    # noise 0: every pair is judged
    noisy = rv.trend_agreement(p4, noise_mm=big)                        # a spread as large as every delta
    assert all(x["within_noise"] for x in noisy)
    lines = rv.agreement_lines(4, p4, noisy)
    assert "0 of 0 pairwise orderings agree" in lines[0] and f"{len(noisy)} more within our seed spread" in lines[0]
    assert all(line.endswith("within seed spread") for line in lines[1:])
    assert rv.seed_spread_mm({"base_seed_mpjpe": [63.3, 62.9, 63.0]}) == pytest.approx(0.2)  # half the range, as ablate writes it
    assert rv.seed_spread_mm({"seed_spread_mm": 0.22, "base_seed_mpjpe": [1, 5]}) == 0.22
    assert rv.seed_spread_mm(None) == 0.0


def test_load_keeps_the_seed_spread(tmp_path):
    import json

    f = tmp_path / "abl.json"
    f.write_text(json.dumps({"rows": [], "base_seed_mpjpe": [63.3, 62.86], "seed_spread_mm": 0.44}))
    a = rv.load_ablations(f)
    assert a["base_seed_mpjpe"] == [63.3, 62.86] and rv.seed_spread_mm(a) == 0.44
    f.write_text(json.dumps({"rows": [], "seed_spread_mm": "big"}))
    with pytest.raises(ValueError, match="seed_spread_mm"):
        rv.load_ablations(f)


def test_rank_matched_rows_name_our_run(ablations_file):
    p5 = rv.pair_ablation_rows(rv.load_ablations(ablations_file), "5")
    for p in p5:
        if p["match"] == "rank":
            k = rv.ablation_key(p["ours"])
            assert p["label"] == f"{p['paper']['preset']} = ours d{k[1]}"     # the fixture sets no backbone
    assert rv._short_key(("resnet18", 32), "5") == "r18-d32" and rv._short_key(("resnet34", "joint"), "6") == "r34 joint"
