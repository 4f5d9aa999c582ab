"""The on-the-fly renderer's loader, images per CPU-second, for each render reuse K (docs/scale.md).

    python tools/loader_speed.py --size 256 --batch 64 --batches 2 --reuse 1 2 4 [--json FILE]

One process, no workers, one torch thread: what one core delivers (process CPU time, so the
figures do not depend on other load). ``--workers N`` times the loader with N workers instead
(wall-clock images/s only).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    import torch

    from h2t_lib.data.stream import SynthStream
    from h2t_lib.engine.train_speed import loader_speed

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256, help="crop and render side, px (default 256)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--batches", type=int, default=2, help="timed batches per K (after one untimed)")
    p.add_argument("--reuse", type=int, nargs="+", default=[1, 2, 4], help="K values (default 1 2 4)")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for k in args.reuse:
        stream = SynthStream((args.batches + 1) * args.batch, args.size, seed=0, reuse=k)
        r = loader_speed(stream, args.batch, args.batches, args.workers, group=k)
        rows.append({"reuse": k, "size": args.size, **r})
        rate = f"{r['img_per_cpu_s']:.1f} img per CPU-s" if r["img_per_cpu_s"] else f"{r['img_per_s']:.1f} img/s"
        print(f"K={k}: {rate} ({r['images']} images, {r['wall_s']:.1f} s wall, {args.workers} workers)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
