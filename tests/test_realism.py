"""The realism report (issue 13): pose measures, matching MediaPipe hands to ground-truth hands,
the summary on constructed detections, and MediaPipe itself on a few renders when it is installed."""
import json
import subprocess
import sys

import numpy as np
import pytest

from h2t_lib import skeleton as sk
from h2t_lib.data import hand_model as hm
from h2t_lib.data import realism as rl


def _hand(side="right", closure=None, rotation=(0.0, 0.0, 0.0), seed=0):
    """A hand 500 mm in front of the camera (camera frame: z forward); closure None = the neutral pose."""
    if closure is None:
        pose = hm.HandPose.neutral()
        pose.rotation = np.asarray(rotation, dtype=float)
        pose.wrist = np.array([0.0, 0.0, 500.0])
    else:
        pose = hm.sample_hand_pose(np.random.default_rng(seed), closure=closure, rotation=rotation, wrist=[0, 0, 500])
    return hm.hand_joints(pose, hm.HandShape.average(), side)


@pytest.mark.parametrize("side", sk.HANDS)
def test_closure_open_vs_closed(side):
    open_ = rl.finger_closure(_hand(side))
    assert open_ < 20 and rl.closure_bin(open_) == "open"
    for seed in range(3):
        fist = rl.finger_closure(_hand(side, closure=1.0, seed=seed))
        assert fist > 180 and rl.closure_bin(fist) == "curled"
    # a straight finger in line with its metacarpal bends 0; fold one finger at a right angle -> + 90 for it
    j = _hand(side).copy()
    wrist, mcp, pip_, dip, tip = sk.FINGER_CHAINS["middle"]
    along = j[mcp] - j[wrist]
    along /= np.linalg.norm(along)
    straight = j.copy()
    straight[[pip_, dip, tip]] = j[mcp] + along * np.array([[20.0], [40.0], [60.0]])
    bent = straight.copy()
    perp = np.cross(along, [1.0, 0.0, 0.0])
    perp /= np.linalg.norm(perp)
    bent[[pip_, dip, tip]] = j[mcp] + perp * np.array([[20.0], [40.0], [60.0]])
    assert rl.finger_closure(bent) - rl.finger_closure(straight) == pytest.approx(90.0 / 4, abs=1e-6)


@pytest.mark.parametrize("side", sk.HANDS)
def test_palm_direction(side):
    # the hand model's palm faces its -z: with no rotation, towards a camera looking along +z
    assert rl.view_bin(rl.palm_facing(_hand(side), side)) == "palm"
    assert rl.view_bin(rl.palm_facing(_hand(side, rotation=(0, 180, 0)), side)) == "back"
    assert rl.view_bin(rl.palm_facing(_hand(side, rotation=(0, 90, 0)), side)) == "side"
    # "palm" is where the fingers curl to: a fist's fingertips lie on the side the palm normal points to
    fist = _hand(side, closure=1.0)
    tips = fist[[sk.FINGER_CHAINS[f][-1] for f in sk.FINGERS[1:]]]
    _, _, dorsal = hm.hand_axes(fist, side)
    assert np.all((tips - hm.palm_center(fist)) @ -dorsal > 0)


def test_mediapipe_order():
    assert sorted(rl.MP_TO_OURS.tolist()) == list(range(21))
    names = [sk.HAND_JOINT_NAMES[k] for k in rl.MP_TO_OURS]
    assert names[:6] == ["wrist", "thumb1", "thumb2", "thumb3", "thumb4", "index1"]
    assert names[8] == "index4" and names[20] == "pinky4"
    lm = np.arange(42, dtype=float).reshape(21, 2)  # MediaPipe order
    ours = rl.landmarks_in_our_order(lm)
    assert np.array_equal(ours[sk.WRIST], lm[0]) and np.array_equal(ours[0], lm[4])  # thumb tip


def _two_hands_2d():
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 60, size=(21, 2))
    return [base + [40.0, 40.0], base + [110.0, 60.0]]  # two 60 px hands, 76 px apart


def test_match_hands_constructed():
    right, left = _two_hands_2d()
    noise = np.random.default_rng(4).normal(0, 2, size=(21, 2))
    # detections listed in the other order, plus one on the background
    dets = [left + noise, np.full((21, 2), 220.0) + noise, right - noise]
    m = rl.match_hands([right, left], dets)
    assert m[0][0] == 2 and m[1][0] == 0  # right <- det 2, left <- det 0
    assert m[0][1] < 5 and m[1][1] < 5
    # one detection: matched to the hand it lies on, the other hand is missed
    m = rl.match_hands([right, left], [right + [10.0, 5.0]])
    assert m[0] == (0, pytest.approx(np.hypot(10, 5))) and m[1] is None
    # too far from every hand (> 0.5 x its size): no match
    assert rl.match_hands([right], [right + [40.0, 0.0]]) == [None]
    assert rl.match_hands([right], [right + [25.0, 0.0]])[0][0] == 0
    assert rl.match_hands([right, left], []) == [None, None]
    # two detections on one hand: one match, the other is left over (a false positive for the report)
    m = rl.match_hands([right, left], [right + [1.0, 0.0], right + [3.0, 0.0]])
    assert m[0][0] == 0 and m[1] is None


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    from h2t_lib.data.synth import write_dataset

    root = tmp_path_factory.mktemp("realism_data")
    write_dataset(root, "test", num=6, size=96, seed=5, interacting_frac=0.5, progress=False)
    return root


def _fake_detections(ds, drop=(), label="mirrored"):
    """Detections made from the ground truth (MediaPipe's order and labels); hand (i, side) in drop left out."""
    from h2t_lib.camera import cam_to_pixel

    images = {}
    for i in range(len(ds)):
        uv = cam_to_pixel(ds.joints_cam(i), *ds.camera(i))
        found = []
        for h in sk.hands_present(str(ds.hand_types[i])):
            if (i, h) in drop:
                continue
            lm = uv[sk.HAND_SLICE[h]][rl.MP_TO_OURS] + 1.0
            other = "Left" if h == "right" else "Right"
            found.append({"landmarks": lm.tolist(), "score": 0.9,
                          "label": other if label == "mirrored" else h.capitalize()})
        images[str(ds.image_path(i))] = found
    return {"mediapipe": "fake", "settings": {}, "images": images}


def test_report_on_constructed_detections(tiny_split, tmp_path, capsys):
    from h2t_lib.data.interhand import InterHand26M

    ds = InterHand26M(tiny_split, "test")
    two = [i for i in range(len(ds)) if ds.hand_types[i] == "interacting"]
    assert two and len(two) < len(ds)
    det = tmp_path / "det.json"
    det.write_text(json.dumps(_fake_detections(ds, drop={(two[0], "left")})))
    s = rl.realism_report(tiny_split, "test", tmp_path / "out", detections=det)
    single, pair = s["groups"]["single-hand images"], s["groups"]["two-hand images"]
    assert single["detection"] == {"n": len(ds) - len(two), "found": len(ds) - len(two), "rate": 1.0}
    assert pair["detection"]["n"] == 2 * len(two) and pair["detection"]["found"] == 2 * len(two) - 1
    assert pair["median_error_px"] == pytest.approx(np.sqrt(2))
    assert single["handedness_mirrored"] == 1.0 and single["handedness_raw"] == 0.0
    assert s["false_positives"] == 0
    assert sum(r["n"] for r in pair["by_closure"].values()) == 2 * len(two)
    assert sum(single["distribution"]["view"].values()) == pytest.approx(1.0)
    hands = json.loads((tmp_path / "out" / "report.json").read_text())["hands"]
    assert [h["found"] for h in hands if h["index"] == two[0]] == [True, False]  # right found, left missed
    assert (tmp_path / "out" / "grid.png").stat().st_size > 0
    assert "hands found" in capsys.readouterr().out


def test_cli_bad_input(tmp_path):
    def cli(*a):
        return subprocess.run([sys.executable, "-m", "h2t_lib", "realism", *a], capture_output=True, text=True)

    r = cli("--data", str(tmp_path / "nope"))
    assert r.returncode == 2 and "no such folder" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("--data", str(tmp_path), "--detections", str(tmp_path / "missing.json"))
    assert r.returncode == 2 and "no such file" in r.stderr


def test_mediapipe_on_renders(tiny_split, tmp_path):
    """MediaPipe itself on a few 256 px renders; skipped when no environment imports mediapipe."""
    python = rl.find_mediapipe_python()
    if python is None:
        pytest.skip("MediaPipe is not installed (make realism-env puts mediapipe==0.10.21 into .venv-mp; "
                    "or set H2T_MP_PYTHON)")
    from h2t_lib.data.synth import write_dataset

    root = tmp_path / "data"
    write_dataset(root, "test", num=4, size=256, seed=777, interacting_frac=0.5, progress=False)
    s = rl.realism_report(root, "test", tmp_path / "out", verbose=False)
    assert s["mediapipe"] == rl.MP_VERSION
    assert s["settings"] == {"static_image_mode": True, "max_num_hands": 2, "model_complexity": 1,
                             "min_detection_confidence": 0.5, "min_tracking_confidence": 0.5}
    det = json.loads((tmp_path / "out" / "detections.json").read_text())["images"]
    assert len(det) == 4
    for hands in det.values():
        assert len(hands) <= 2
        for h in hands:
            assert np.asarray(h["landmarks"]).shape == (21, 2) and h["label"] in ("Left", "Right")
    from h2t_lib.data.interhand import InterHand26M

    n = sum(g["detection"]["n"] for g in s["groups"].values())
    assert n == sum(len(sk.hands_present(t)) for t in InterHand26M(root, "test").hand_types)
