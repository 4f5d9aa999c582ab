"""Prediction on a user's image: JSON with 42 named joints, overlay PNG, one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from h2t_lib.camera import cam_to_pixel
from h2t_lib.engine.checkpoint import save_checkpoint
from h2t_lib.model.config import ModelConfig
from h2t_lib.model import Handformer2T
from h2t_lib.engine.predict import DEFAULT_FOCAL_FACTOR, predict_image, square_box
from h2t_lib.skeleton import JOINT_NAMES

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    model = Handformer2T(ModelConfig.preset("tiny"))  # root_source "gt" by default: predict must not need it
    ckpt = save_checkpoint(root / "tiny.pt", model)
    rng = np.random.default_rng(0)
    image = root / "hands.png"
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(image)
    return root, model, ckpt, image


def _cli(*args):
    env = {**os.environ, "H2T_FAST": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "h2t_lib", "predict", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_square_box():
    np.testing.assert_allclose(square_box(None, 120, 90), [0, -15, 120, 120])  # whole image, made square
    np.testing.assert_allclose(square_box((10, 20, 40, 20), 120, 90), [5, 5, 50, 50])  # 1.25 x the longer side
    with pytest.raises(ValueError, match="positive"):
        square_box((0, 0, 0, 10), 120, 90)
    with pytest.raises(ValueError, match="outside"):
        square_box((500, 0, 10, 10), 120, 90)


def test_predict_image_is_consistent(setup):
    _, model, _, image = setup
    res = predict_image(model, image)
    assert [j["name"] for j in res["joints"]] == list(JOINT_NAMES)
    assert res["focal"] == [DEFAULT_FOCAL_FACTOR * 120] * 2 and res["princpt"] == [60.0, 45.0]
    assert any("focal" in n for n in res["notes"]) and any("princpt" in n for n in res["notes"])
    cam = np.array([j["cam_mm"] for j in res["joints"]])
    rel = np.array([j["rel_mm"] for j in res["joints"]])
    uv = np.array([j["uv"] for j in res["joints"]])
    root = np.array([res["root_mm"]["right"]] * 21 + [res["root_mm"]["left"]] * 21)
    np.testing.assert_allclose(cam, rel + root, atol=0.02)  # camera mm = root-relative + predicted wrist
    assert np.all(rel[[20, 41]] == 0) and np.allclose(cam[[20, 41]], root[[20, 41]], atol=0.01)  # wrists = root
    np.testing.assert_allclose(uv, cam_to_pixel(cam, np.array(res["focal"]), np.array(res["princpt"])), atol=0.05)
    assert all(j["sigma_mm"] > 0 and 0 <= j["confidence"] <= 1 for j in res["joints"])
    assert model.cfg.root_source == "gt"  # left as it was
    # given intrinsics and a box: no assumptions reported, and they are used
    res2 = predict_image(model, image, focal=(200.0, 210.0), princpt=(55.0, 40.0), bbox=(30, 20, 40, 30))
    assert res2["notes"] == [] and res2["focal"] == [200.0, 210.0]
    assert res2["crop_box"] == [25.0, 10.0, 50.0, 50.0]


def test_predict_cli_writes_json_and_overlay(setup, tmp_path):
    _, _, ckpt, image = setup
    r = _cli(image, "--ckpt", ckpt, "--out", tmp_path, "--bbox", 10, 10, 60, 50)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "hands_keypoints.json").read_text())
    assert len(res["joints"]) == 42 and res["joints"][41]["name"] == "left_wrist"
    assert {"cam_mm", "rel_mm", "uv", "sigma_mm", "confidence"} <= set(res["joints"][0])
    assert "assumed focal" in r.stdout  # the default intrinsics are said out loud
    with Image.open(tmp_path / "hands_overlay.png") as im:
        assert im.size[0] > 100


@pytest.mark.parametrize("case", ["text_file", "missing_image", "not_a_checkpoint"])
def test_predict_cli_errors_are_one_line(setup, tmp_path, case):
    _, _, ckpt, image = setup
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    args = {"text_file": (text, "--ckpt", ckpt), "missing_image": (tmp_path / "nope.png", "--ckpt", ckpt),
            "not_a_checkpoint": (image, "--ckpt", text)}[case]
    r = _cli(*args, "--out", tmp_path)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert {"text_file": "not an image", "missing_image": "does not exist", "not_a_checkpoint": "not an h2t checkpoint"}[case] in r.stderr


def test_images_of_any_mode_become_faithful_8bit_rgb(tmp_path):
    """16-bit grayscale scaled (not clamped to white), every other mode as Pillow converts it, or one line."""
    from h2t_lib.data.files import DataFileError, open_image

    ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).round().astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "gray16.png")  # Pillow opens it as "I;16"
    Image.fromarray((ramp / 257).round().astype(np.uint8)).save(tmp_path / "gray8.png")  # its 8-bit twin
    got16, got8 = (np.asarray(open_image(tmp_path / f"{n}.png")[0]).astype(int) for n in ("gray16", "gray8"))
    assert got16.shape == got8.shape == (48, 64, 3)
    assert np.abs(got16 - got8).max() <= 1 and got16.max() == 255 and got16.min() == 0
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    base = Image.fromarray(rgb)
    cases = {  # mode -> (the file, the 8-bit RGB it shows)
        "I": (Image.fromarray(ramp.astype(np.int32)), np.repeat((ramp / 257).round()[..., None], 3, 2)),
        "F": (Image.fromarray((ramp / 65535).astype(np.float32)), np.repeat((ramp / 257).round()[..., None], 3, 2)),
        "RGBA": (base.convert("RGBA"), rgb),
        "P": (base.quantize(256), np.asarray(base.quantize(256).convert("RGB"))),
        "LA": (base.convert("LA"), np.repeat(np.asarray(base.convert("L"))[..., None], 3, 2)),
        "1": (base.convert("1"), np.repeat(np.asarray(base.convert("1"), np.uint8)[..., None] * 255, 3, 2)),
        "CMYK": (base.convert("CMYK"), rgb),
    }
    for mode, (im, want) in cases.items():
        path = tmp_path / f"{mode}.tif"
        im.save(path)
        got, _ = open_image(path)
        assert got.mode == "RGB", mode
        assert np.abs(np.asarray(got).astype(int) - want.astype(int)).max() <= 1, mode
    Image.fromarray(np.full((4, 4), 70000, np.int32)).save(tmp_path / "big.tif")
    with pytest.raises(DataFileError, match=r"big.tif is a 'I' image with values 70000..70000, outside 0..65535"):
        open_image(tmp_path / "big.tif")


def test_predict_and_demo_find_the_shipped_checkpoint_from_any_folder(setup, tmp_path, monkeypatch):
    from h2t_lib.apps import demo

    _, _, _, image = setup
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "h2t_lib", "predict", str(image), "--out", "out"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "out" / "hands_keypoints.json").read_text())["checkpoint"] == str(
        REPO / "data" / "checkpoints" / "h2t_cpu.pt")
    seen = {}
    monkeypatch.setattr(demo, "main_job", lambda data, out, ckpt, **kw: seen.setdefault("ckpt", Path(ckpt)))
    monkeypatch.chdir(tmp_path)
    import argparse

    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    demo.run(parser.parse_args([]))
    assert seen["ckpt"].is_file()


def test_predict_on_a_console_that_is_not_utf8(setup, tmp_path):
    """cp1252 (Windows, output redirected) cannot encode every path: the command still ends well."""
    _, _, ckpt, image = setup
    folder = tmp_path / "hände_手"
    folder.mkdir()
    (folder / "hands.png").write_bytes(image.read_bytes())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "cp1252"}
    r = subprocess.run([sys.executable, "-m", "h2t_lib", "predict", str(folder / "hands.png"), "--ckpt", str(ckpt),
                        "--out", str(folder)], cwd=REPO, env=env, capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode("cp1252")
    assert "hände_\\u624b" in out and "wrote" in out and "right wrist at" in out
    assert (folder / "hands_keypoints.json").is_file() and (folder / "hands_overlay.png").is_file()
