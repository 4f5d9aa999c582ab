"""Image-space probes for the realism report (docs/realism.md): copy a rendered dataset folder and
rewrite its JPEGs with one post-processing step, the annotations unchanged, so that
``python -m h2t_lib realism`` on the copy is a paired comparison with the original.

    python tools/realism_probe.py SRC DST camera|blur2|gray [--seed 0]

camera: Gaussian blur sigma 1 px, Gaussian noise sigma 4 (grey levels, same on all channels),
JPEG quality 70; blur2: Gaussian blur sigma 2 px (JPEG 95); gray: grayscale (JPEG 95).
It does not change the renderer; it tells which image-level change is worth building into it.
"""
import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

KINDS = ("camera", "blur2", "gray")


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


def main(argv=None):
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
