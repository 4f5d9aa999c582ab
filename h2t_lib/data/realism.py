"""Realism report: does a hand model trained on real photos (MediaPipe Hands) see our renders as hands?

``python -m h2t_lib realism --data DIR [--split test] [--out FOLDER]`` (issue 13) runs MediaPipe
Hands 0.10.21 on every image of a rendered split (InterHand2.6M layout, e.g. written by
``python -m h2t_lib synth``) and prints

* the pose and view distribution of the split: finger closure and palm direction (below), and the
  inter-hand occlusion the annotations carry;
* the detection rate: the fraction of ground-truth hands that a MediaPipe hand is matched to, for
  single-hand and two-hand images, by finger closure, by palm direction, by occlusion;
* the 2D error of matched hands (median over hands of the mean landmark distance, px) and the
  hand size it compares with;
* handedness accuracy, raw and with MediaPipe's selfie-mirroring convention undone;
* detections that match no hand (false positives);

and writes ``FOLDER/report.json`` (the summary and one record per hand), ``FOLDER/detections.json``
(MediaPipe's raw output, reusable with ``--detections``) and ``FOLDER/grid.png`` (12 found hands
framed green with MediaPipe's landmarks, then 12 missed hands framed red with the ground truth; each
labelled with side, closure, palm direction and, for two hands, the image's occlusion). FOLDER
defaults to ``DIR/realism``.

MediaPipe wants numpy < 2 and h2t uses numpy 2, so MediaPipe runs in its own virtual
environment (``make realism-env`` makes ``.venv-mp``) as a subprocess,
``tools/mediapipe_hands.py``: it reads the image list and writes its detections as JSON; everything
else happens here. ``--mp-python`` (or ``$H2T_MP_PYTHON``) names that environment's Python;
by default ``.venv-mp/bin/python`` at the repository root, else this Python if it imports mediapipe.
MediaPipe is used with its defaults: the legacy ``mediapipe.solutions.hands`` API, static images,
at most 2 hands, model complexity 1, detection and tracking confidence 0.5.

Definitions (all from the 3D ground-truth joints in the camera frame, mm):

finger closure
    For each of the four long fingers, the total bend along the chain wrist -> MCP -> PIP -> DIP ->
    tip: the sum of the three angles between consecutive bones (metacarpal, proximal, middle,
    distal), in degrees, so 0 for a straight finger in line with its metacarpal and about 270
    for a fist. A hand's closure is the mean over the four fingers (the thumb is left out).
    Bins: ``open`` < 90 deg <= ``half`` < 180 deg <= ``curled``.
palm direction
    The palm normal n points out of the palm (palmar side): from the index MCP -> pinky MCP
    axis x and the wrist -> middle MCP axis y, n = -(x cross y) for a right hand and its mirror for a
    left hand (:func:`h2t_lib.data.hand_model.hand_axes` gives the dorsal direction, n is its
    negative). With v the unit vector from the palm centre to the camera, c = n . v:
    ``palm`` (palm towards the camera) if c > 0.5, ``back`` if c < -0.5, ``side`` otherwise
    (the palm plane within 30 deg of the line of sight).
occlusion
    The annotation's ``occlusion`` of the sample: the fraction of the more hidden hand that the
    other hand covers (0 for single-hand images); both hands of an image share it. Bins: ``none``
    (0: single hands, and two hands that do not overlap), ``low`` < 0.2 <= ``medium`` < 0.5 <=
    ``high``, as the renderer's occlusion levels.
matching
    In each image, MediaPipe's hands are assigned to the ground-truth hands by the assignment with the
    least total cost, the cost of a pair being the mean distance (px) between MediaPipe's 21
    landmarks and the hand's 21 projected joints (same joints, MediaPipe's order mapped to ours).
    A pair counts as a match when that distance is below ``--match-frac`` (0.5) of the hand's
    size (the longer side of its projected joints' box). A matched hand is "found"; a detection
    matched to no hand is a false positive.
handedness
    MediaPipe's legacy API labels hands as if the image were a mirrored selfie: on a camera image as
    ours (not mirrored) its "Left" is a right hand. "raw" compares its label with the true side as it
    is, "mirrored" after swapping Left and Right (the right reading for our images).
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from h2t_lib import skeleton as sk
from h2t_lib.camera import cam_to_pixel
from h2t_lib.errors import UserError
from h2t_lib.utils import ROOT

REPO = ROOT
MP_SCRIPT = REPO / "tools" / "mediapipe_hands.py"
MP_VERSION = "0.10.21"

CLOSURE_BINS = (("open", 0.0, 90.0), ("half", 90.0, 180.0), ("curled", 180.0, np.inf))
VIEW_BINS = ("palm", "side", "back")
OCCLUSION_BINS = (("none", -np.inf, 1e-9), ("low", 1e-9, 0.2), ("medium", 0.2, 0.5), ("high", 0.5, np.inf))

#: ours[MP_TO_OURS[k]] is MediaPipe landmark k (0 wrist; thumb CMC..TIP; index MCP..TIP; ...)
MP_TO_OURS = np.array([sk.WRIST] + [4 * f + 3 - k for f in range(5) for k in range(4)])
_LONG_FINGERS = sk.FINGERS[1:]


# --------------------------------------------------------------------------- #
# Pose measures
# --------------------------------------------------------------------------- #
def _unit(v):
    v = np.asarray(v, dtype=float)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def finger_closure(joints21) -> float:
    """Mean total bend of the four long fingers in degrees (see the module docstring). joints21: (21, 3)."""
    j = np.asarray(joints21, dtype=float)
    total = []
    for f in _LONG_FINGERS:
        chain = j[list(sk.FINGER_CHAINS[f])]  # wrist, MCP, PIP, DIP, tip
        bones = _unit(np.diff(chain, axis=0))  # (4, 3)
        cos = np.clip(np.sum(bones[:-1] * bones[1:], axis=-1), -1.0, 1.0)
        total.append(np.degrees(np.arccos(cos)).sum())
    return float(np.mean(total))


def palm_facing(joints21, side: str) -> float:
    """cos of the angle between the palm's outward normal and the direction to the camera. joints21: (21, 3) camera mm."""
    from h2t_lib.data.hand_model import hand_axes, palm_center

    j = np.asarray(joints21, dtype=float)
    _, _, dorsal = hand_axes(j, side)
    to_cam = _unit(-palm_center(j))
    return float(np.dot(-dorsal, to_cam))


def closure_bin(deg: float) -> str:
    return next(name for name, lo, hi in CLOSURE_BINS if lo <= deg < hi)


def view_bin(c: float) -> str:
    return "palm" if c > 0.5 else "back" if c < -0.5 else "side"


def occlusion_bin(occ: float) -> str:
    occ = 0.0 if not np.isfinite(occ) else occ
    return next(name for name, lo, hi in OCCLUSION_BINS if lo <= occ < hi)


# --------------------------------------------------------------------------- #
# Matching
# --------------------------------------------------------------------------- #
def hand_size(uv21) -> float:
    """Longer side of the 2D box of a hand's projected joints (px)."""
    uv = np.asarray(uv21, dtype=float)
    return float(np.max(uv.max(axis=0) - uv.min(axis=0)))


def landmarks_in_our_order(mp_landmarks) -> np.ndarray:
    """MediaPipe's (21, 2) landmarks reordered to our within-hand joint order."""
    lm = np.asarray(mp_landmarks, dtype=float)
    out = np.empty_like(lm)
    out[MP_TO_OURS] = lm
    return out


def match_hands(gt_uv, det_uv, match_frac: float = 0.5):
    """Assign detections to ground-truth hands by 2D position.

    gt_uv: list of (21, 2) projected joints (our order); det_uv: list of (21, 2) detections (our order).
    Returns a list with, for each ground-truth hand, (detection index, mean distance px) or None.
    The assignment minimises the summed mean landmark distance over all one-to-one pairings; a pair
    is kept only when its distance is below ``match_frac`` x the hand's size.
    """
    n, m = len(gt_uv), len(det_uv)
    cost = np.array([[float(np.linalg.norm(np.asarray(d) - np.asarray(g), axis=-1).mean()) for d in det_uv]
                     for g in gt_uv]).reshape(n, m)
    limit = np.array([match_frac * hand_size(g) for g in gt_uv])
    best, best_key = [None] * n, None
    # every partial one-to-one assignment (hands and detections are at most a few per image)
    for k in range(min(n, m), -1, -1):
        for gts in itertools.combinations(range(n), k):
            for dets in itertools.permutations(range(m), k):
                if any(cost[g, d] >= limit[g] for g, d in zip(gts, dets)):
                    continue
                key = (-k, sum(cost[g, d] for g, d in zip(gts, dets)))  # most matches, then least cost
                if best_key is None or key < best_key:
                    best_key = key
                    best = [None] * n
                    for g, d in zip(gts, dets):
                        best[g] = (d, float(cost[g, d]))
    return best


# --------------------------------------------------------------------------- #
# MediaPipe in its own environment
# --------------------------------------------------------------------------- #
def find_mediapipe_python(explicit=None):
    """The Python that runs MediaPipe: explicit, $H2T_MP_PYTHON, REPO/.venv-mp, or this one; None if none imports it."""
    candidates = [explicit] if explicit else [os.environ.get("H2T_MP_PYTHON"),
                                              str(REPO / ".venv-mp" / "bin" / "python"), sys.executable]
    for c in candidates:
        if not c or not (Path(c).exists() or shutil.which(c)):
            continue
        r = subprocess.run([c, "-c", "import mediapipe, sys; sys.stdout.write(mediapipe.__version__)"],
                           capture_output=True, text=True)
        if r.returncode == 0:
            return c
        if explicit:
            raise UserError(f"--mp-python {explicit} cannot import mediapipe (make realism-env installs "
                            f"mediapipe=={MP_VERSION} into .venv-mp)")
    return None


def run_mediapipe(paths, python, out_json) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        lst = Path(tmp) / "images.json"
        lst.write_text(json.dumps([str(p) for p in paths]))
        r = subprocess.run([python, str(MP_SCRIPT), str(lst), str(out_json)], capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise UserError(f"MediaPipe ({python} {MP_SCRIPT.name}) failed: {tail[0]}")
    return json.loads(Path(out_json).read_text())


# --------------------------------------------------------------------------- #
# The report
# --------------------------------------------------------------------------- #
def hand_records(ds, detections: dict, match_frac: float = 0.5, num=None) -> tuple:
    """One record per ground-truth hand (and the false-positive count) of the first ``num`` samples of ``ds``."""
    records, false_pos = [], 0
    for i in range(len(ds) if num is None else num):
        path = str(ds.image_path(i))
        if path not in detections:
            raise UserError(f"no MediaPipe result for {path} in the detections (made for another split or folder?)")
        hand_type = str(ds.hand_types[i])
        present = sk.hands_present(hand_type)
        joints = ds.joints_cam(i)
        focal, princpt = ds.camera(i)
        uv = cam_to_pixel(joints, focal, princpt)
        occ = float(ds._occlusion[i]) if hand_type == "interacting" else 0.0
        gts = [uv[sk.HAND_SLICE[h]] for h in present]
        dets = detections[path]
        det_uv = [landmarks_in_our_order(d["landmarks"]) for d in dets]
        matches = match_hands(gts, det_uv, match_frac)
        false_pos += len(dets) - sum(m is not None for m in matches)
        for h, g, m in zip(present, gts, matches):
            j3 = joints[sk.HAND_SLICE[h]]
            close, face = finger_closure(j3), palm_facing(j3, h)
            rec = dict(index=i, path=path, hand=h, two_hands=hand_type == "interacting", occlusion=occ,
                       closure=close, closure_bin=closure_bin(close), facing=face, view=view_bin(face),
                       occlusion_bin=occlusion_bin(occ), size=hand_size(g), found=m is not None,
                       gt_uv=g.tolist())
            if m is not None:
                d = dets[m[0]]
                rec.update(error=m[1], joint_error_median=float(np.median(np.linalg.norm(det_uv[m[0]] - g, axis=-1))),
                           label=d["label"], score=d["score"],
                           det_uv=det_uv[m[0]].tolist(),
                           handed_raw=d["label"].lower() == h,
                           handed_mirrored=d["label"].lower() != h)
            records.append(rec)
    return records, false_pos


def _rate(recs) -> dict:
    n = len(recs)
    k = sum(r["found"] for r in recs)
    return {"n": n, "found": k, "rate": (k / n) if n else None}


def summarise(records, false_pos: int, num_images: int) -> dict:
    groups = {"single-hand images": [r for r in records if not r["two_hands"]],
              "two-hand images": [r for r in records if r["two_hands"]]}
    out = {"images": num_images, "hands": len(records), "false_positives": false_pos, "groups": {}}
    for name, recs in groups.items():
        if not recs:
            continue
        found = [r for r in recs if r["found"]]
        g = {"detection": _rate(recs),
             "by_closure": {b: _rate([r for r in recs if r["closure_bin"] == b]) for b, _, _ in CLOSURE_BINS},
             "by_view": {b: _rate([r for r in recs if r["view"] == b]) for b in VIEW_BINS},
             "by_occlusion": {b: _rate([r for r in recs if r["occlusion_bin"] == b]) for b, _, _ in OCCLUSION_BINS},
             "by_closure_view": {f"{c}/{v}": _rate([r for r in recs if r["closure_bin"] == c and r["view"] == v])
                                 for c, _, _ in CLOSURE_BINS for v in VIEW_BINS},
             "distribution": {
                 "closure": {b: sum(r["closure_bin"] == b for r in recs) / len(recs) for b, _, _ in CLOSURE_BINS},
                 "view": {b: sum(r["view"] == b for r in recs) / len(recs) for b in VIEW_BINS},
                 "occlusion": {b: sum(r["occlusion_bin"] == b for r in recs) / len(recs) for b, _, _ in OCCLUSION_BINS},
                 "closure_deg_quartiles": np.percentile([r["closure"] for r in recs], [25, 50, 75]).tolist(),
             },
             "median_hand_size_px": float(np.median([r["size"] for r in recs]))}
        if found:
            g["median_error_px"] = float(np.median([r["error"] for r in found]))
            g["median_joint_error_px"] = float(np.median([r["joint_error_median"] for r in found]))
            g["median_error_frac_of_size"] = float(np.median([r["error"] / r["size"] for r in found]))
            g["median_found_hand_size_px"] = float(np.median([r["size"] for r in found]))
            g["handedness_raw"] = float(np.mean([r["handed_raw"] for r in found]))
            g["handedness_mirrored"] = float(np.mean([r["handed_mirrored"] for r in found]))
        out["groups"][name] = g
    return out


def _pct(x) -> str:
    return "  -  " if x is None else f"{100 * x:4.0f}%"


def format_report(summary: dict) -> str:
    lines = [f"{summary['images']} images, {summary['hands']} hands; "
             f"MediaPipe detections matching no hand: {summary['false_positives']}"]
    for name, g in summary["groups"].items():
        d = g["detection"]
        lines += ["", f"== {name}: {d['found']}/{d['n']} hands found = {_pct(d['rate'])}"]
        dist = g["distribution"]
        lines.append("  distribution  closure: " + ", ".join(f"{b} {_pct(v)}" for b, v in dist["closure"].items())
                     + f" (quartiles {', '.join(f'{q:.0f}' for q in dist['closure_deg_quartiles'])} deg)")
        lines.append("                palm direction: " + ", ".join(f"{b} {_pct(v)}" for b, v in dist["view"].items()))
        if name.startswith("two"):
            lines.append("                occlusion: " + ", ".join(f"{b} {_pct(v)}" for b, v in dist["occlusion"].items()
                                                               if b != "none"))
        for key, title in (("by_closure", "closure"), ("by_view", "palm direction"), ("by_occlusion", "occlusion")):
            cells = [f"{b} {_pct(r['rate'])} (n={r['n']})" for b, r in g[key].items() if r["n"]]
            lines.append(f"  found by {title:<15} " + ", ".join(cells))
        lines.append("  found by closure x view:")
        lines.append("           " + "".join(f"{v:>14}" for v in VIEW_BINS))
        for c, _, _ in CLOSURE_BINS:
            cells = [g["by_closure_view"][f"{c}/{v}"] for v in VIEW_BINS]
            lines.append(f"    {c:<7}" + "".join(f"{_pct(r['rate']):>7} n={r['n']:<4}" for r in cells))
        if "median_error_px" in g:
            lines.append(f"  2D error of found hands: median {g['median_error_px']:.1f} px "
                         f"(median joint: {g['median_joint_error_px']:.1f} px; "
                         f"{100 * g['median_error_frac_of_size']:.0f}% of the hand size; found hands' median size "
                         f"{g['median_found_hand_size_px']:.0f} px, all hands' {g['median_hand_size_px']:.0f} px)")
            lines.append(f"  handedness of found hands: {_pct(g['handedness_mirrored'])} right with MediaPipe's "
                         f"selfie mirroring undone (raw labels: {_pct(g['handedness_raw'])})")
    return "\n".join(lines)


def save_grid(records, path, per_kind: int = 12, cols: int = 6, cell: int = 128, seed: int = 0) -> None:
    """A PNG: found hands (MediaPipe landmarks in green) then missed hands (ground truth in red)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    found = [r for r in records if r["found"]]
    missed = [r for r in records if not r["found"]]
    pick = lambda rs: [rs[k] for k in sorted(rng.choice(len(rs), size=min(per_kind, len(rs)), replace=False))] if rs else []
    rows = []
    for title, rs, colour in (("found", pick(found), (40, 220, 60)), ("missed", pick(missed), (235, 50, 50))):
        for r in rs:
            img = Image.open(r["path"]).convert("RGB")
            uv = np.asarray(r["det_uv"] if r["found"] else r["gt_uv"])
            lo, hi = uv.min(axis=0), uv.max(axis=0)
            c, half = (lo + hi) / 2, max(hi - lo) * 0.7 + 8
            box = (c[0] - half, c[1] - half, c[0] + half, c[1] + half)
            scale = cell / (2 * half)
            crop = img.crop(tuple(int(round(b)) for b in box)).resize((cell, cell))
            dr = ImageDraw.Draw(crop)
            p = (uv - np.array(box[:2])) * scale
            for a, b in sk.HAND_BONES:
                dr.line([tuple(p[a]), tuple(p[b])], fill=colour, width=1)
            dr.rectangle([0, 0, cell - 1, cell - 1], outline=colour, width=3)
            txt = f"{r['hand'][0].upper()} {r['closure_bin']} {r['view']}"
            if r["two_hands"]:
                txt += f" occ{r['occlusion']:.2f}"
            dr.rectangle([3, cell - 14, 3 + 6 * len(txt), cell - 3], fill=(0, 0, 0))
            dr.text((4, cell - 14), txt, fill=(255, 255, 255))
            rows.append(crop)
    n_rows = max(1, -(-len(rows) // cols))
    grid = Image.new("RGB", (cols * cell, n_rows * cell), (255, 255, 255))
    for k, im in enumerate(rows):
        grid.paste(im, ((k % cols) * cell, (k // cols) * cell))
    grid.quantize(colors=256, dither=Image.Dither.NONE).save(path, optimize=True)  # a figure: 256 colours suffice


def realism_report(data, split: str = "test", out=None, mp_python=None, detections=None,
                   match_frac: float = 0.5, limit=None, verbose: bool = True) -> dict:
    """Run the report (see the module docstring); returns the summary dict (also in OUT/report.json)."""
    from h2t_lib.data.interhand import InterHand26M

    ds = InterHand26M(data, split)
    out = Path(out) if out else Path(data) / "realism"
    out.mkdir(parents=True, exist_ok=True)
    n = len(ds) if limit is None else min(int(limit), len(ds))
    paths = [str(ds.image_path(i)) for i in range(n)]
    if detections:
        det = json.loads(Path(detections).read_text())
    else:
        python = find_mediapipe_python(mp_python)
        if python is None:
            raise UserError(f"MediaPipe is not installed: run `make realism-env` (mediapipe=={MP_VERSION} in .venv-mp, "
                            f"numpy < 2) or pass --mp-python PYTHON of an environment that has it")
        if verbose:
            print(f"MediaPipe ({python}) on {n} images of {data} [{split}] ...", flush=True)
        det = run_mediapipe(paths, python, out / "detections.json")

    records, fp = hand_records(ds, det["images"], match_frac, n)
    summary = summarise(records, fp, n)
    summary.update(data=str(data), split=split, match_frac=match_frac,
                   mediapipe=det.get("mediapipe"), settings=det.get("settings"))
    (out / "report.json").write_text(json.dumps({"summary": summary, "hands": [
        {k: v for k, v in r.items() if k not in ("gt_uv", "det_uv")} for r in records]}, indent=1))
    save_grid(records, out / "grid.png")
    if verbose:
        print(format_report(summary))
        print(f"\nwrote {out / 'report.json'}, {out / 'grid.png'}" + ("" if detections else f", {out / 'detections.json'}"))
    return summary
