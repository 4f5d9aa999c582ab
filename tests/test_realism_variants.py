"""tools/realism_variants.py: what-if renders of style v2 for the realism report (docs/realism.md, rounds 5 and 6)."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from h2t_lib.data import synth

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "realism_variants.py"


def _load():
    spec = importlib.util.spec_from_file_location("realism_variants", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _images(folder):
    return {p.relative_to(folder): np.asarray(Image.open(p)) for p in sorted(Path(folder).rglob("*.jpg"))}


def _joints(folder):
    (ann,) = Path(folder).rglob("*_joint_3d.json")
    return json.loads(ann.read_text())


def test_base_writes_what_synth_writes(tmp_path):
    assert _load().main(["base", str(tmp_path / "a"), "--seed", "3", "--num", "3", "--size", "64"]) == 0
    synth.write_dataset(tmp_path / "b", "test", 3, 64, 3, 0.0, progress=False, style="v2")
    a, b = _images(tmp_path / "a"), _images(tmp_path / "b")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_a_variant_changes_the_look_not_the_joints(tmp_path):
    # patches are process-wide: run the tool in its own process
    args = ["--seed", "3", "--num", "3", "--size", "64"]
    subprocess.run([sys.executable, str(TOOL), "palmthick1.4+noao", str(tmp_path / "v"), *args], check=True,
                   capture_output=True, cwd=ROOT)
    _load().main(["base", str(tmp_path / "b"), *args])
    v, b = _images(tmp_path / "v"), _images(tmp_path / "b")
    assert v.keys() == b.keys() and not all(np.array_equal(v[k], b[k]) for k in v)
    assert _joints(tmp_path / "v") == _joints(tmp_path / "b")


def test_an_unknown_variant_is_one_line_and_exit_2(tmp_path):
    r = subprocess.run([sys.executable, str(TOOL), "noao+shiny", str(tmp_path / "x"), "--seed", "1"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "realism_variants: unknown variant 'shiny'; see the module docstring"]
    assert not (tmp_path / "x").exists()


def test_bgpatterns_puts_the_same_hands_in_front_of_v1_backgrounds(tmp_path):
    from h2t_lib.camera import cam_to_pixel
    from h2t_lib.data.interhand import InterHand26M
    from h2t_lib.skeleton import FINGER_CHAINS, HAND_SLICE

    args = ["--seed", "3", "--num", "3", "--size", "64", "--interacting-frac", "0"]
    subprocess.run([sys.executable, str(TOOL), "bgpatterns", str(tmp_path / "v"), *args], check=True,
                   capture_output=True, cwd=ROOT)
    _load().main(["base", str(tmp_path / "b"), *args])
    ds_v, ds_b = InterHand26M(tmp_path / "v", "test"), InterHand26M(tmp_path / "b", "test")
    background_moved = []
    for i in range(len(ds_b)):
        v, b = (np.asarray(Image.open(d.image_path(i))).astype(int) for d in (ds_v, ds_b))
        hand = [h for h in HAND_SLICE if ds_b.joint_valid(i)[HAND_SLICE[h]].all()][0]
        uv = cam_to_pixel(ds_b.joints_cam(i), *ds_b.camera(i))[HAND_SLICE[hand]][FINGER_CHAINS["middle"][1]]
        x, y = np.round(uv).astype(int)  # the middle finger's knuckle: on the palm, the hand's pixels
        assert np.abs(v[y - 1:y + 2, x - 1:x + 2] - b[y - 1:y + 2, x - 1:x + 2]).mean() < 6
        background_moved.append(np.abs(v - b).mean())
    assert min(background_moved) > 3  # the rest of the image is another background
    assert _joints(tmp_path / "v") == _joints(tmp_path / "b")
