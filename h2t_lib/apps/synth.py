"""The ``synth`` command: render a synthetic two-hand dataset, a grid of examples, or the renderer's speed."""
from __future__ import annotations

import time
from pathlib import Path

from h2t_lib.data.synth import DEFAULT_STYLE, OCCLUSION_LEVELS, STYLES, benchmark, example_grid, write_dataset
from h2t_lib.data.synth.dataset import _check_args
from h2t_lib.utils import ROOT


def add_arguments(parser) -> None:
    parser.add_argument("--out", help="dataset folder (InterHand2.6M layout); required unless --bench or --grid")
    parser.add_argument("--split", default="train", help="split name: train, val, test (default train)")
    parser.add_argument("--num", type=int, default=1000, help="number of images (default 1000)")
    parser.add_argument("--size", type=int, default=256, help="image size in pixels, square (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--interacting-frac", type=float, default=0.6,
                        help="fraction of two-hand samples, the rest are single hands (default 0.6)")
    parser.add_argument("--occlusion", default="any", choices=OCCLUSION_LEVELS,
                        help="how strongly the hands overlap in two-hand samples (default any)")
    parser.add_argument("--workers", type=int, default=1, help="render processes (default 1; output is identical)")
    parser.add_argument("--style", default=DEFAULT_STYLE, choices=STYLES,
                        help=f"the renderer's look: v2 smooth skin, skin shading and camera effects, or v1 capsules "
                             f"(the first look; docs/realism.md); default {DEFAULT_STYLE}")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--bench", action="store_true",
                        help="print images/second at 128 and 256 px (1 process; with --workers N also N processes) "
                             "and write docs/synth_speed.json")
    parser.add_argument("--bench-json", default=None,
                        help="where --bench writes its json (default docs/synth_speed.json for the default look, "
                             "docs/synth_speed_<style>.json for another)")
    parser.add_argument("--grid", default=None, metavar="PNG",
                        help="instead of a dataset, save a 4x4 grid of examples (--size, --seed) to this image")


def run(args) -> int:
    from h2t_lib.errors import UserError
    from h2t_lib.utils import atomic_write_json, check_writable

    if args.bench:
        if args.workers < 1:
            raise UserError(f"--workers must be at least 1, got {args.workers}")
        name = "synth_speed.json" if args.style == DEFAULT_STYLE else f"synth_speed_{args.style}.json"
        path = Path(args.bench_json) if args.bench_json else ROOT / "docs" / name
        check_writable(path)
        res = benchmark(workers=args.workers, style=args.style)
        for size in (128, 256):
            r = res[str(size)]
            print(f"synth {size:>3} px, style {args.style}: {r['images_per_s']:6.1f} img/s ({r['images_per_cpu_s']:.1f} per CPU second) rendered, "
                  f"{r['with_jpeg_images_per_s']:6.1f} img/s ({r['with_jpeg_images_per_cpu_s']:.1f}) with JPEG encoding, 1 process")
            if args.workers > 1:
                print(f"synth {size:>3} px: {r['workers_images_per_s']:6.1f} img/s with JPEG encoding, {args.workers} processes")
        if res.get("load_average"):
            print(f"load average {res['load_average'][0]:.2f} on {res['cpu_count']} cores (a busy machine slows the wall-clock rate)")
        atomic_write_json(path, res)
        print(f"wrote {path}")
        return 0
    if args.grid:
        check_writable(args.grid)
        example_grid(args.grid, args.size, args.seed, style=args.style)
        print(f"wrote {args.grid}")
        return 0
    if not args.out:
        raise UserError("--out DIR is required (or use --bench or --grid)")
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    try:
        _check_args(args.num, args.size, args.interacting_frac, args.occlusion, args.split, args.style)
    except ValueError as e:
        raise UserError(str(e)) from None
    check_writable(args.out, folder=True)
    t0 = time.perf_counter()
    summary = write_dataset(args.out, args.split, args.num, args.size, args.seed, args.interacting_frac,
                            args.occlusion, progress=not args.no_progress, workers=args.workers, style=args.style)
    print(f"wrote {summary['num']} images ({summary['interacting']} interacting) of {args.size} px to "
          f"{args.out} split {args.split} in {time.perf_counter() - t0:.1f} s")
    return 0
