"""Probes for the realism report (docs/realism.md).

Image-space probes: copy a rendered dataset folder and rewrite its JPEGs with one post-processing
step, the annotations unchanged, so that ``python -m h2t_lib realism`` on the copy is a paired
comparison with the original::

    python tools/realism_probe.py SRC DST camera|blur2|gray [--seed 0]

camera: Gaussian blur sigma 1 px, Gaussian noise sigma 4 (grey levels, same on all channels),
JPEG quality 70; blur2: Gaussian blur sigma 2 px (JPEG 95); gray: grayscale (JPEG 95).

Ablations of the renderer's style "v2": render a dataset with style v2 less some of its parts::

    python tools/realism_probe.py render DST --seed 777 --interacting-frac 0 [--without shading,camera,blend]

shading: v1-like light (no wrap / subsurface tint, creases, flush, mottling, crevice occlusion);
camera: v1's mild blur and noise instead of :func:`synth.camera_effects`; blend: the hard union
of the v2 primitives (:func:`render.rasterize`) instead of the smooth one. The scenes are those
of ``synth --style v1/v2`` with the same seed (the looks share the scene and appearance draws; since
round 6 of docs/realism.md their backgrounds, and every draw after them, differ).

Image factors against MediaPipe's findings: re-render the samples of a report (they depend only on
seed, split, index and the look's revision, ``synth.LOOK_REVISION``) and print the found rate by thirds of each hand's mean luminance, its share of
the image, the colour distance between the hand and the background, and the background's texture::

    python tools/realism_probe.py factors REPORT_JSON --seed 777 --interacting-frac 0 --style v2 [--size 256]
"""
import argparse
import dataclasses
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

KINDS = ("camera", "blur2", "gray")
PARTS = ("shading", "camera", "blend")


def _set(name, value):
    """Replace ``name`` in every module of the synth package that holds it (the package re-exports its modules' names)."""
    import importlib

    for part in ("", ".rig", ".primitives", ".raster", ".blended", ".shading", ".backgrounds", ".scene", ".sample", ".dataset"):
        module = importlib.import_module("h2t_lib.data.synth" + part)
        if hasattr(module, name):
            setattr(module, name, value)


def probe(src, dst, kind, seed=0):
    src, dst = Path(src), Path(dst)
    if not (src / "images").is_dir():
        raise SystemExit(f"realism_probe: {src} has no images/ folder (a dataset written by synth?)")
    if dst.resolve() == src.resolve():
        raise SystemExit("realism_probe: DST must differ from SRC")
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("realism"))
    rng = np.random.default_rng(seed)
    for p in sorted((dst / "images").rglob("*.jpg")):
        im = Image.open(p).convert("RGB")
        if kind == "camera":
            im = im.filter(ImageFilter.GaussianBlur(1.0))
            a = np.asarray(im, dtype=np.float32) + rng.normal(0, 4, size=(im.height, im.width, 1))
            Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(p, quality=70)
        elif kind == "blur2":
            im.filter(ImageFilter.GaussianBlur(2.0)).save(p, quality=95)
        elif kind == "gray":
            im.convert("L").convert("RGB").save(p, quality=95)


def _v1_camera(image, rng):
    """Style v1's mild blur (sigma up to ~0.7 px) and uniform integer noise, on a float image -> uint8."""
    from h2t_lib.data import synth

    pil = Image.fromarray((np.asarray(image) * 255 + 0.5).astype(np.uint8))
    pil = Image.blend(pil, pil.filter(synth.rig._SMOOTH), rng.uniform(0.3, 1.0))
    amp = int(rng.integers(2, 8))
    noise = rng.integers(-amp, amp + 1, size=(image.shape[0], image.shape[1], 3), dtype=np.int16)
    return np.clip(np.asarray(pil, dtype=np.int16) + noise, 0, 255).astype(np.uint8)


def render_without(dst, without, seed, interacting_frac, num=300, size=256, split="test"):
    """Write a style-v2 dataset with the parts in ``without`` (a subset of :data:`PARTS`) turned off,
    in this process (the switches are module attributes, so no worker processes)."""
    from h2t_lib.data import synth as rd
    from h2t_lib.data import synth

    bad = set(without) - set(PARTS)
    if bad:
        raise SystemExit(f"realism_probe: --without takes {', '.join(PARTS)}, got {', '.join(sorted(bad))}")
    sample_look, rasterize_blended = rd.sample_skin_look, rd.rasterize_blended
    if "shading" in without:
        def plain_look(rng, size, finger_radius=8.0):
            look = sample_look(rng, size, finger_radius)  # the same draws, then neutral values
            return dataclasses.replace(look, wrap=0.0, sss=0.0, crease=0.0, flush=0.0, mottle=None, ao=0.0)
        _set("sample_skin_look", plain_look)
    if "camera" in without:
        _set("camera_effects", _v1_camera)
    if "blend" in without:
        _set("rasterize_blended", lambda prims, focal, princpt, size, blend, **kw: rd.rasterize(prims, focal, princpt, size))
    try:
        return synth.write_dataset(dst, split, num, size, seed, interacting_frac, progress=False, style="v2")
    finally:
        _set("sample_skin_look", sample_look)
        _set("rasterize_blended", rasterize_blended)


def image_factors(report, seed, interacting_frac, style, size=256, split="test"):
    """Per hand record of ``report`` (a realism report.json's "hands"): (found, hand luminance,
    hand area / image area, |mean colour of hand - of background|, mean gradient of the background),
    from a re-render of its sample. Colours in [0, 1]."""
    from h2t_lib.data import synth

    rig = synth.camera_rig(size)
    rows, cache = [], {}
    for h in report:
        i = h["index"]
        if i not in cache:
            cache = {i: synth.render_sample(synth.sample_rng(seed, split, i), size, None, interacting_frac,
                                            rig=rig, style=style)}
        s = cache[i]
        img = s["image"].astype(np.float32) / 255
        hand = s["layer"] == (0 if h["hand"] == "right" else 2)
        bg = s["layer"] < 0
        gy, gx = np.gradient(img.mean(-1))
        rows.append((bool(h["found"]), float(img[hand].mean()) if hand.any() else 0.0, float(hand.mean()),
                     float(np.linalg.norm(img[hand].mean(0) - img[bg].mean(0))) if hand.any() else 0.0,
                     float(np.hypot(gx, gy)[bg].mean())))
    return np.array(rows, float)


def print_factors(rows):
    """Found rate by thirds of each factor of :func:`image_factors`."""
    found = rows[:, 0] > 0
    for j, name in enumerate(("hand luminance", "hand area", "hand-bg colour", "bg texture"), start=1):
        q = np.quantile(rows[:, j], [0, 1 / 3, 2 / 3, 1])
        b = np.digitize(rows[:, j], q[1:-1])
        cells = [f"[{q[k]:.3f}, {q[k + 1]:.3f}] {found[b == k].mean():4.0%} (n={int(np.sum(b == k))})" for k in range(3)]
        print(f"{name:15s}" + "   ".join(cells))


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["factors"]:
        import json

        from h2t_lib.data import synth

        ap = argparse.ArgumentParser(description="found rate by image factors of a realism report")
        ap.add_argument("report")
        ap.add_argument("--seed", type=int, required=True)
        ap.add_argument("--interacting-frac", type=float, required=True)
        ap.add_argument("--style", default=synth.DEFAULT_STYLE, choices=synth.STYLES)
        ap.add_argument("--size", type=int, default=256)
        ap.add_argument("--split", default="test")
        a = ap.parse_args(argv[1:])
        report = json.loads(Path(a.report).read_text())["hands"]
        print_factors(image_factors(report, a.seed, a.interacting_frac, a.style, a.size, a.split))
        return 0
    if argv[:1] == ["render"]:
        ap = argparse.ArgumentParser(description="render a style-v2 dataset without some of its parts")
        ap.add_argument("dst")
        ap.add_argument("--seed", type=int, default=777)
        ap.add_argument("--interacting-frac", type=float, default=0.0)
        ap.add_argument("--num", type=int, default=300)
        ap.add_argument("--size", type=int, default=256)
        ap.add_argument("--without", default="", help=f"comma-separated parts to turn off: {', '.join(PARTS)}")
        a = ap.parse_args(argv[1:])
        without = [w for w in a.without.split(",") if w]
        print(render_without(a.dst, without, a.seed, a.interacting_frac, a.num, a.size))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("kind", choices=KINDS)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    probe(a.src, a.dst, a.kind, a.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
