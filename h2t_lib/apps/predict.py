"""The ``predict`` command: both hands' keypoints on your own image (JSON + overlay PNG)."""
from __future__ import annotations

from pathlib import Path

from h2t_lib.engine.predict import DEFAULT_FOCAL_FACTOR, draw_overlay, predict_image, read_image
from h2t_lib.skeleton import HANDS


def add_arguments(p) -> None:
    p.add_argument("image", help="an RGB image (PNG, JPEG, ...)")
    p.add_argument("--ckpt", default=None,
                   help="checkpoint (default: the shipped data/checkpoints/h2t_cpu.pt of the h2t checkout)")
    p.add_argument("--focal", type=float, nargs=2, metavar=("FX", "FY"), default=None,
                   help=f"focal length in pixels (default: {DEFAULT_FOCAL_FACTOR} * max(W, H))")
    p.add_argument("--princpt", type=float, nargs=2, metavar=("CX", "CY"), default=None,
                   help="principal point in pixels (default: the image centre)")
    p.add_argument("--bbox", type=float, nargs=4, metavar=("X", "Y", "W", "H"), default=None,
                   help="box around the hands in pixels (default: the whole image)")
    p.add_argument("--out", default="runs/predict", help="output folder (default: runs/predict)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")


def run(args) -> int:
    from h2t_lib.engine.evaluate import load_model
    from h2t_lib.utils import SHIPPED_CHECKPOINT, atomic_write_json, check_writable

    out = check_writable(args.out, folder=True)  # before the work: a folder that cannot take the files fails now
    image, orientation = read_image(args.image)  # a bad image fails before the model loads
    ckpt = args.ckpt or SHIPPED_CHECKPOINT
    model, _ = load_model(ckpt, device=args.device, root_source="pred")
    res = predict_image(model, image, focal=args.focal, princpt=args.princpt, bbox=args.bbox,
                        exif_orientation=orientation)
    res = {"image": str(args.image), "checkpoint": str(ckpt), **res}
    stem = Path(args.image).stem
    json_path, png_path = out / f"{stem}_keypoints.json", out / f"{stem}_overlay.png"
    atomic_write_json(json_path, res)
    draw_overlay(image, res, png_path)
    for note in res["notes"]:
        print(f"note: {note}")
    for h in HANDS:
        print(f"{h} wrist at {res['root_mm'][h]} mm (camera frame)")
    print(f"wrote {json_path} and {png_path}")
    return 0
