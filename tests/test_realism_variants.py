"""tools/realism_variants.py: what-if renders of style v2 for the realism report (docs/realism.md, round 5)."""
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
