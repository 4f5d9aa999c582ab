"""Real data as people have it (issue 11): every published InterHand2.6M layout from the library and the
CLI, damaged files reported in one line naming the file, images as viewers show them, RHD by its protocol.

Fixtures are written in the published formats (tests/fixtures.py); the CLI is called in-process
(``h2t_lib.apps.cli.main``) where only its exit code and its one line matter, and as a subprocess once per
kind of file to prove there is no traceback in a real process.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fixtures import RHD_HIDDEN_TIPS, dot_centroid, make_interhand_fixture, make_rhd_fixture
from h2t_lib import metrics, skeleton
from h2t_lib.apps import cli
from h2t_lib.engine.checkpoint import save_checkpoint
from h2t_lib.model.config import ModelConfig
from h2t_lib.data import DataFileError, DataFileNotFoundError, InterHand26M, RHD, available_splits, load_dataset
from h2t_lib.data.files import read_json, read_mask, read_pickle
from h2t_lib.data.transforms import crop_sample
from h2t_lib.model import Handformer2T

REPO = Path(__file__).resolve().parents[1]
S = 64
DOT_TOL = 0.2


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", Handformer2T(ModelConfig.preset("tiny")))


def _main(capsys, *args) -> tuple:
    """(exit code, stdout, stderr) of the CLI run in this process."""
    rc = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _one_line_error(rc, err, *must_contain):
    assert rc == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for text in must_contain:
        assert str(text) in err, (text, err)


def _subprocess(*args):
    env = {**os.environ, "H2T_FAST": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "h2t_lib", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def _same_samples(a, b):
    assert len(a) == len(b)
    for i in range(len(a)):
        sa, sb = a[i], b[i]
        for k in ("image", "joints_cam", "joints_img", "joint_valid", "focal", "princpt"):
            assert torch.equal(sa[k], sb[k]), (i, k)


# ----------------------------------------------------------------------------- 1. annotation subsets
@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The older release: train and test in all/ and machine_annot/, val only in machine_annot/."""
    root = tmp_path_factory.mktemp("release")
    for subset, splits in (("all", ("train", "test")), ("machine_annot", ("train", "val", "test"))):
        for k, split in enumerate(splits):
            make_interhand_fixture(root, split, n=3, annot_subset=subset, seed=10 * k + len(subset))
    return root


def test_val_only_in_machine_annot_is_found(release):
    assert available_splits(release) == ["train", "val", "test"]
    assert available_splits(release, "all") == ["train", "test"]
    ds = load_dataset(release, "val", image_size=S)
    assert ds.annot_subset == "machine_annot" and len(ds) == 3


def test_several_subsets_ask_for_one(release):
    with pytest.raises(ValueError) as e:
        load_dataset(release, "test", image_size=S)
    msg = str(e.value)
    assert "all, machine_annot" in msg and "--annot-subset" in msg and "\n" not in msg
    assert load_dataset(release, "test", image_size=S, annot_subset="machine_annot").annot_subset == "machine_annot"
    with pytest.raises(FileNotFoundError, match="human_annot"):
        load_dataset(release, "test", annot_subset="human_annot")


def test_eval_cli_val_and_annot_subset(release, ckpt, capsys):
    rc, out, err = _main(capsys, "eval", "--ckpt", ckpt, "--data", release, "--split", "val", "--quiet")
    assert rc == 0, err
    assert "3 samples" in out and "mean training pose (3 train samples)" in out  # train of machine_annot
    rc, out, err = _main(capsys, "eval", "--ckpt", ckpt, "--data", release, "--split", "test", "--quiet")
    _one_line_error(rc, err, "all, machine_annot", "--annot-subset")
    rc, out, err = _main(capsys, "eval", "--ckpt", ckpt, "--data", release, "--split", "test", "--annot-subset", "all",
                         "--quiet")
    assert rc == 0, err


def test_train_cli_annot_subset_reaches_the_datasets(release, tmp_path):
    import argparse

    from h2t_lib.apps import train as train_cli
    from h2t_lib.engine import train

    p = argparse.ArgumentParser()
    train_cli.add_arguments(p)
    args = p.parse_args(["--data", str(release), "--out", str(tmp_path), "--preset", "tiny",
                         "--annot-subset", "all", "--image-check", "warn"])
    cfg = train_cli.config_from_args(args)
    assert (cfg.annot_subset, cfg.image_check) == ("all", "warn")
    assert train.pick_val_split(release, "auto", "train", cfg.annot_subset) == "test"
    ds = train.open_dataset(release, "train", 64, annot_subset=cfg.annot_subset, image_check=cfg.image_check)
    assert ds.annot_subset == "all" and ds.image_check == "warn"
    # without a subset the validation split comes from any folder: test (asks for a subset when opened)
    assert train.pick_val_split(release, "auto", "train") == "test"
    assert train.TrainConfig.from_dict(cfg.to_dict()) == cfg  # a run's stored config keeps the subset


# ----------------------------------------------------------------------------- 2. the v1.0 layout
def test_v1_layout_reads_the_same_values(tmp_path):
    old = make_interhand_fixture(tmp_path / "old", "test", n=4, seed=3)
    make_interhand_fixture(tmp_path / "v1", "test", n=4, seed=3, annot_subset="test")  # annotations/test/
    make_interhand_fixture(tmp_path / "v1", "train", n=2, seed=4, annot_subset="train")
    assert (tmp_path / "v1" / "annotations" / "test" / "InterHand2.6M_test_data.json").is_file()
    a = InterHand26M(old["root"], "test", image_size=S)
    b = load_dataset(tmp_path / "v1", "test", image_size=S)
    assert b.annot_subset == "v1.0" and a.annot_subset == "all"
    _same_samples(a, b)
    assert InterHand26M(tmp_path / "v1", "test", annot_subset="v1.0", image_size=S).annot_subset == "v1.0"
    assert available_splits(tmp_path / "v1") == ["train", "test"] == available_splits(tmp_path / "v1", "v1.0")


def test_eval_cli_reads_v1(tmp_path, ckpt, capsys):
    make_interhand_fixture(tmp_path, "test", n=3, seed=3, annot_subset="test")
    make_interhand_fixture(tmp_path, "train", n=3, seed=4, annot_subset="train")
    rc, out, err = _main(capsys, "eval", "--ckpt", ckpt, "--data", tmp_path, "--quiet")
    assert rc == 0, err
    assert "mean training pose (3 train samples)" in out


# ----------------------------------------------------------------------------- 3. the older joint_3d form
def test_older_joint_3d_form(tmp_path):
    fx = make_interhand_fixture(tmp_path / "new", "test", n=4, seed=5)
    make_interhand_fixture(tmp_path / "old", "test", n=4, seed=5)
    path = tmp_path / "old" / "annotations" / "all" / "InterHand2.6M_test_joint_3d.json"
    obj = json.loads(path.read_text())
    obj = {cap: {frame: entry["world_coord"] for frame, entry in frames.items()} for cap, frames in obj.items()}
    path.write_text(json.dumps(obj))  # each frame maps straight to its 42x3 list
    a, b = InterHand26M(fx["root"], "test", image_size=S), InterHand26M(tmp_path / "old", "test", image_size=S)
    _same_samples(a, b)
    np.testing.assert_allclose(b[0]["joints_cam"].numpy(), fx["annotations"][0]["joints_cam"], atol=1e-3)
    obj["0"][next(iter(obj["0"]))] = "nope"
    path.write_text(json.dumps(obj))
    with pytest.raises(DataFileError, match="InterHand2.6M_test_joint_3d.json.*world_coord"):
        InterHand26M(tmp_path / "old", "test")


# ----------------------------------------------------------------------------- 4. damaged images
def _truncate(path: Path, keep: float = 0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("damage", ["truncated", "empty", "wrong_type"])
def test_damaged_image_names_the_file(tmp_path, damage):
    fx = make_interhand_fixture(tmp_path, "test", n=2)
    path = fx["annotations"][1]["path"]
    {"truncated": lambda: _truncate(path), "empty": lambda: path.write_bytes(b""),
     "wrong_type": lambda: path.write_text("not an image")}[damage]()
    ds = InterHand26M(tmp_path, "test", image_size=S)
    ds[0]
    with pytest.raises(DataFileError) as e:
        ds[1]
    msg = str(e.value)
    assert str(path) in msg and "\n" not in msg
    assert {"truncated": "truncated", "empty": "empty (0 bytes)", "wrong_type": "not an image"}[damage] in msg


def test_damaged_image_in_a_dataloader_worker_is_still_one_line(tmp_path):
    fx = make_interhand_fixture(tmp_path, "test", n=2)
    _truncate(fx["annotations"][0]["path"])
    loader = torch.utils.data.DataLoader(InterHand26M(tmp_path, "test", image_size=S), batch_size=2, num_workers=1)
    with pytest.raises(DataFileError) as e:
        next(iter(loader))
    assert "\n" not in str(e.value) and "Traceback" not in str(e.value)
    assert str(fx["annotations"][0]["path"]) in str(e.value)


def test_eval_cli_damaged_image_is_one_line(tmp_path, ckpt, capsys):
    fx = make_interhand_fixture(tmp_path, "test", n=3)
    path = fx["annotations"][2]["path"]
    _truncate(path)
    rc, _, err = _main(capsys, "eval", "--ckpt", ckpt, "--data", tmp_path, "--quiet")
    _one_line_error(rc, err, path, "truncated")
    path.write_bytes(b"")
    r = _subprocess("eval", "--ckpt", ckpt, "--data", tmp_path, "--quiet")  # a real process: no traceback either
    _one_line_error(r.returncode, r.stderr, path, "empty")


# ----------------------------------------------------------------------------- 5. image size vs annotation
def test_image_size_differs_from_annotation(tmp_path, ckpt, capsys):
    fx = make_interhand_fixture(tmp_path, "test", n=4)
    g = fx["annotations"][1]  # camera 400004, annotated 96x120
    with Image.open(g["path"]) as im:
        im.transpose(Image.Transpose.ROTATE_90).save(g["path"], quality=100, subsampling=0)  # stored 120x96
    ds = InterHand26M(tmp_path, "test", image_size=S)
    ds[0]
    with pytest.raises(DataFileError) as e:
        ds[1]
    msg = str(e.value)
    for text in (g["path"], "120x96", "96x120", "rotated", "image_check='warn'", "--image-check warn"):
        assert str(text) in msg, text
    warn = InterHand26M(tmp_path, "test", image_size=S, image_check="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn[1], warn[1], warn[3]  # annotation 3: the same camera, not reported again
    assert len(caught) == 1 and str(g["path"]) in str(caught[0].message) and "400004" in str(caught[0].message)
    rc, _, err = _main(capsys, "eval", "--ckpt", ckpt, "--data", tmp_path, "--quiet")
    _one_line_error(rc, err, g["path"], "--image-check warn")
    with pytest.warns(UserWarning, match="camera 400004") as caught:
        rc, out, err = _main(capsys, "eval", "--ckpt", ckpt, "--data", tmp_path, "--image-check", "warn", "--quiet")
    assert rc == 0 and "4 samples" in out and str(g["path"]) in str(caught[0].message)


def test_synthetic_samples_unchanged_by_the_checks(interhand_dir):
    """Images without EXIF orientation and of the annotated size give the very samples they gave before."""
    ds = InterHand26M(interhand_dir, "train", image_size=S, augment=True, seed=1)
    ds.set_epoch(2)
    for i in range(4):
        s = ds[i]
        _, path, params = ds.locate(i)
        with Image.open(path) as im:
            before = im.convert("RGB")  # what the loader did before EXIF and size checks
        focal, princpt = ds.camera(i)
        ref = crop_sample(before, ds.crop_box(i), focal, princpt, ds.joints_cam(i), ds.joint_valid(i),
                          str(ds.hand_types[i]), i, S, params, joint_vis=ds._vis[i], occlusion=float(ds._occlusion[i]))
        for k in ("image", "joints_cam", "joints_img", "joint_valid", "joint_vis", "focal", "princpt"):
            assert torch.equal(s[k], ref[k]), k


# ----------------------------------------------------------------------------- 6. EXIF orientation
def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def test_dataset_image_with_exif_orientation_is_used_upright(tmp_path):
    fx = make_interhand_fixture(tmp_path, "test", n=2)
    g = fx["annotations"][0]
    with Image.open(g["path"]) as im:
        upright = im.convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # 120x96 pixels, shown upright through Orientation=6
    stored.save(g["path"], quality=100, subsampling=0, exif=_exif(6))
    ds = InterHand26M(tmp_path, "test", image_size=S)
    s = ds[0]  # no size error: the upright image is 96x120 as annotated
    np.testing.assert_allclose(dot_centroid(s["image"]), s["joints_img"][g["dot_joint"]].numpy(), atol=DOT_TOL)
    # what the loader did before: the stored pixels, sideways; the dot lands far from its joint
    focal, princpt = ds.camera(0)
    old = crop_sample(Image.open(g["path"]).convert("RGB"), ds.crop_box(0), focal, princpt, ds.joints_cam(0),
                      ds.joint_valid(0), str(ds.hand_types[0]), 0, S)
    offset = np.linalg.norm(dot_centroid(old["image"]) - s["joints_img"][g["dot_joint"]].numpy())
    assert offset > 5.0


@pytest.fixture(scope="module")
def phone_photo(tmp_path_factory):
    """A phone photo stored 160x120 with Orientation=6 (shown upright as 120x160) and its upright copy."""
    root = tmp_path_factory.mktemp("photo")
    rng = np.random.default_rng(1)
    upright = np.zeros((160, 120, 3), np.uint8)
    upright[20:150, 10:110] = rng.integers(0, 255, (130, 100, 3), dtype=np.uint8)  # not symmetric under rotation
    upright[100:150, 60:110] = 255
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    assert stored.size == (160, 120)
    stored.save(root / "photo.jpg", quality=95, exif=_exif(6))
    with Image.open(root / "photo.jpg") as im:  # the upright copy of the decoded pixels, lossless
        from PIL import ImageOps

        ImageOps.exif_transpose(im).convert("RGB").save(root / "upright.png")
    return root


def test_predict_uses_the_photo_upright(phone_photo):
    from h2t_lib.engine.predict import predict_image

    torch.manual_seed(0)
    model = Handformer2T(ModelConfig.preset("tiny"))
    res = predict_image(model, phone_photo / "photo.jpg")
    ref = predict_image(model, phone_photo / "upright.png")
    assert res["image_size"] == [120, 160] == ref["image_size"]
    assert res["exif_orientation"] == 6 and ref["exif_orientation"] == 1
    uv = np.array([j["uv"] for j in res["joints"]])
    np.testing.assert_allclose(uv, np.array([j["uv"] for j in ref["joints"]]), atol=1e-6)
    assert any("EXIF orientation 6" in n and "120x160" in n and "160x120" in n for n in res["notes"])
    assert not any("EXIF" in n for n in ref["notes"])


def test_predict_cli_says_it_applied_exif(phone_photo, ckpt, tmp_path):
    r = _subprocess("predict", phone_photo / "photo.jpg", "--ckpt", ckpt, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "EXIF orientation 6" in r.stdout
    res = json.loads((tmp_path / "photo_keypoints.json").read_text())
    assert res["image_size"] == [120, 160] and res["exif_orientation"] == 6


# ----------------------------------------------------------------------------- 7. RHD: which hand
@pytest.fixture(scope="module")
def rhd_kinds(tmp_path_factory):
    return make_rhd_fixture(tmp_path_factory.mktemp("rhd_kinds"), "evaluation", n=5, kinds=[0, 1, 2, 3, 4])


def test_rhd_evaluates_the_hand_with_more_mask_pixels(rhd_kinds):
    g = rhd_kinds["samples"][3]  # a large close left hand (12 visible keypoints), a small right one (21 visible)
    assert g["mask_px"][1] > g["mask_px"][0] and g["vis"][:21].sum() == 21 and g["vis"][21:].sum() == 12
    ds = RHD(rhd_kinds["root"], "evaluation", image_size=128)
    assert ds.hands == "mask" and [str(h) for h in ds.hand_types] == ["right", "left", "right", "left", "right"]
    np.testing.assert_array_equal(ds.mask_px[3], g["mask_px"])
    s = ds[3]
    assert s["hand_type"] == "left" and s["joint_valid"][:21].sum() == 0
    np.testing.assert_allclose(dot_centroid(s["image"]), s["joints_img"][g["dot_joint"]].numpy(), atol=DOT_TOL)
    old = RHD(rhd_kinds["root"], "evaluation", image_size=128, hands="dominant")  # the rule before: keypoints
    assert old.hand_types[3] == "right"


def test_rhd_mask_errors_name_the_file(tmp_path):
    make_rhd_fixture(tmp_path, "evaluation", n=2)
    mask = tmp_path / "evaluation" / "mask" / "00001.png"
    good = mask.read_bytes()
    mask.unlink()
    with pytest.raises(DataFileNotFoundError) as e:
        RHD(tmp_path, "evaluation")
    assert str(mask) in str(e.value) and "hands='dominant'" in str(e.value)
    assert RHD(tmp_path, "evaluation", hands="dominant").hand_types[1] == "left"  # a way to proceed without masks
    cases = {
        "truncated": (lambda: mask.write_bytes(good[: len(good) // 2]), "truncated"),
        "empty": (lambda: mask.write_bytes(b""), "empty (0 bytes)"),
        "wrong_type": (lambda: Image.fromarray(np.full((320, 320, 3), (10, 200, 30), np.uint8)).save(mask),
                       "colour image"),
        "wrong_size": (lambda: Image.fromarray(np.zeros((160, 320), np.uint8)).save(mask), "320x160"),
        "wrong_values": (lambda: Image.fromarray(np.full((320, 320), 200, np.uint8)).save(mask), "label 200"),
    }
    for name, (damage, text) in cases.items():
        damage()
        with pytest.raises(DataFileError) as e:
            RHD(tmp_path, "evaluation")
        assert str(mask) in str(e.value) and text in str(e.value) and "\n" not in str(e.value), name


# ----------------------------------------------------------------------------- 8. RHD: EPE by the protocol
def test_rhd_epe_counts_visible_keypoints_per_keypoint_mean(tmp_path):
    """The issue's numbers: two right hands, 10 mm everywhere, 100 mm on 3 invisible keypoints."""
    fx = make_rhd_fixture(tmp_path, "evaluation", n=2, kinds=[4, 0])
    ds = RHD(tmp_path, "evaluation", image_size=64)
    gt, valid = ds.joints_arrays()  # what eval reads
    hidden = list(RHD_HIDDEN_TIPS)
    assert ds.keypoints == "visible" and valid[0, hidden].sum() == 0 and valid[0, :21].sum() == 18
    assert valid[1, :21].sum() == 21 and valid[:, 21:].sum() == 0
    for i in range(2):  # the samples (what training and the eval loop batch) carry the same mask
        np.testing.assert_array_equal(ds[i]["joint_valid"].numpy(), valid[i])
        np.testing.assert_array_equal(ds[i]["joint_vis"].numpy(), fx["samples"][i]["vis"] * (np.arange(42) < 21))
    pred = gt.astype(np.float64).copy()
    pred[:, :20, 0] += 10.0  # every non-wrist keypoint of the right hand 10 mm off
    pred[0, hidden, 0] += 90.0  # the invisible ones 100 mm off
    known = RHD(tmp_path, "evaluation", keypoints="known").joints_arrays()[1]  # the rule before: every keypoint
    assert metrics.epe(pred, gt, known, average="pooled") == pytest.approx(15.95, abs=0.005)
    assert metrics.epe(pred, gt, valid) == pytest.approx(200.0 / 21.0) == pytest.approx(9.52, abs=0.005)
    # training supervises every keypoint whose 3D is known: the training split's default
    train = make_rhd_fixture(tmp_path, "training", n=1, kinds=[4])
    assert RHD(train["root"], "training").joint_valid(0)[:21].sum() == 21


def test_epe_treats_left_and_right_keypoint_as_one():
    gt = np.zeros((3, 42, 3))
    pred = np.zeros((3, 42, 3))
    valid = np.zeros((3, 42))
    valid[0, [0, 20]] = 1  # sample 0: right hand, its thumb tip 6 mm off
    pred[0, 0, 0] = 6.0
    valid[1:, [21, 41]] = 1  # samples 1, 2: left hand, thumb tip 0 mm off
    # RHD evaluates keypoint "thumb tip" over all three samples: (6 + 0 + 0) / 3 = 2; wrist 0 -> mean 1
    assert metrics.epe(pred, gt, valid) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- damaged files, every kind
def _json_cases(ann: Path):
    data, cam, j3d = (ann / f"InterHand2.6M_test_{k}.json" for k in ("data", "camera", "joint_3d"))

    def camrot_2x3():
        obj = json.loads(cam.read_text())
        obj["0"]["camrot"]["400002"] = obj["0"]["camrot"]["400002"][:2]
        cam.write_text(json.dumps(obj))

    return {
        "json_truncated": (lambda: _truncate(data), data, "not valid JSON"),
        "json_empty": (lambda: cam.write_bytes(b""), cam, "empty (0 bytes)"),
        "json_wrong_type": (lambda: j3d.write_text("[1, 2, 3]"), j3d, "holds a list"),
        "json_binary": (lambda: j3d.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe"), j3d, "not a text (JSON) file"),
        "json_wrong_shape": (camrot_2x3, cam, "expected (3, 3)"),
    }


@pytest.mark.parametrize("case", ["json_truncated", "json_empty", "json_wrong_type", "json_binary", "json_wrong_shape"])
def test_damaged_json_is_one_line(tmp_path, ckpt, capsys, case):
    make_interhand_fixture(tmp_path, "test", n=2)
    damage, path, text = _json_cases(tmp_path / "annotations" / "all")[case]
    damage()
    with pytest.raises(DataFileError) as e:
        InterHand26M(tmp_path, "test")
    assert str(path) in str(e.value) and text in str(e.value)
    rc, _, err = _main(capsys, "eval", "--ckpt", ckpt, "--data", tmp_path, "--quiet")
    _one_line_error(rc, err, path, text)


@pytest.mark.parametrize("case", ["truncated", "empty", "wrong_type", "wrong_shape", "not_a_dict"])
def test_damaged_rhd_pickle_is_one_line(tmp_path, ckpt, capsys, case):
    make_rhd_fixture(tmp_path, "evaluation", n=2)
    path = tmp_path / "evaluation" / "anno_evaluation.pickle"
    anno = pickle.loads(path.read_bytes())
    if case == "truncated":
        _truncate(path)
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "wrong_type":
        path.write_bytes(pickle.dumps([1, 2, 3]))
    elif case == "wrong_shape":
        anno[1]["K"] = anno[1]["K"][:2]
        path.write_bytes(pickle.dumps(anno))
    else:
        anno[1] = [1, 2, 3]
        path.write_bytes(pickle.dumps(anno))
    text = {"truncated": "truncated", "empty": "empty (0 bytes)", "wrong_type": "a list",
            "wrong_shape": "K has shape (2, 3), expected (3, 3)", "not_a_dict": "no 'xyz' entry"}[case]
    with pytest.raises(DataFileError) as e:
        RHD(tmp_path, "evaluation")
    assert str(path) in str(e.value) and text in str(e.value)
    rc, _, err = _main(capsys, "eval", "--ckpt", ckpt, "--data", tmp_path, "--split", "evaluation", "--quiet")
    _one_line_error(rc, err, path, text)


def test_rhd_eval_cli_damaged_mask_and_image(tmp_path, ckpt, capsys):
    make_rhd_fixture(tmp_path, "evaluation", n=2)
    mask = tmp_path / "evaluation" / "mask" / "00000.png"
    _truncate(mask)
    r = _subprocess("eval", "--ckpt", ckpt, "--data", tmp_path, "--split", "evaluation", "--quiet")
    _one_line_error(r.returncode, r.stderr, mask, "truncated")
    make_rhd_fixture(tmp_path, "evaluation", n=2)
    image = tmp_path / "evaluation" / "color" / "00001.png"
    image.write_text("not a png")
    rc, _, err = _main(capsys, "eval", "--ckpt", ckpt, "--data", tmp_path, "--split", "evaluation", "--quiet")
    _one_line_error(rc, err, image, "not an image")


@pytest.mark.parametrize("case", ["truncated", "empty", "wrong_type", "wrong_shape"])
def test_damaged_checkpoint_is_one_line(tmp_path, ckpt, capsys, case):
    make_interhand_fixture(tmp_path, "test", n=2)
    bad = tmp_path / "bad.pt"
    if case == "truncated":
        data = Path(ckpt).read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif case == "empty":
        bad.write_bytes(b"")
    elif case == "wrong_type":
        shutil.copy(next((tmp_path / "images").rglob("*.jpg")), bad)
    else:
        model = Handformer2T(ModelConfig.preset("tiny"))
        save_checkpoint(bad, model)
        raw = torch.load(bad, weights_only=True)
        raw["model_config"]["dim"] = 48  # the weights no longer fit the config
        torch.save(raw, bad)
    text = {"truncated": "truncated or damaged", "empty": "empty (0 bytes)", "wrong_type": "not an h2t checkpoint",
            "wrong_shape": "do not fit"}[case]
    rc, _, err = _main(capsys, "eval", "--ckpt", bad, "--data", tmp_path, "--quiet")
    _one_line_error(rc, err, bad, text)
    if case == "truncated":
        r = _subprocess("predict", next((tmp_path / "images").rglob("*.jpg")), "--ckpt", bad, "--out", tmp_path)
        _one_line_error(r.returncode, r.stderr, bad, text)


def test_readers_name_the_file(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    with pytest.raises(DataFileError, match="empty.json is empty"):
        read_json(empty, "x")
    with pytest.raises(DataFileNotFoundError, match="nope.pickle"):
        read_pickle(tmp_path / "nope.pickle", "x")
    with pytest.raises(DataFileError, match="is a folder"):
        read_mask(tmp_path)


def test_annotation_record_reads_every_layout(tmp_path):
    """course.annotation_record (notebook 01) finds v1.0's annotations/<split>/ and reads the early bare joint_3d lists."""
    import json

    from h2t_lib.course.data_views import annotation_record

    old = make_interhand_fixture(tmp_path / "old", "test", n=3, seed=3)
    make_interhand_fixture(tmp_path / "v1", "test", n=3, seed=3, annot_subset="test")
    a, b = annotation_record(old["root"], "test", 2), annotation_record(tmp_path / "v1", "test", 2)
    np.testing.assert_array_equal(a["world_coord"], b["world_coord"])
    assert b["files"]["data"] == tmp_path / "v1" / "annotations" / "test" / "InterHand2.6M_test_data.json"
    path = tmp_path / "v1" / "annotations" / "test" / "InterHand2.6M_test_joint_3d.json"
    j3d = json.loads(path.read_text())
    early = {cap: {frame: entry["world_coord"] for frame, entry in frames.items()} for cap, frames in j3d.items()}
    path.write_text(json.dumps(early))
    np.testing.assert_array_equal(annotation_record(tmp_path / "v1", "test", 2)["world_coord"], a["world_coord"])
