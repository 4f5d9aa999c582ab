"""Render speed of the two looks on the same images, interleaved, on one core (issue 13).

    OMP_NUM_THREADS=1 python tools/style_speed.py [--size 128] [--num 60] [--rounds 5]

Renders samples 0..num-1 of ``synth --bench``'s sequence (seed 0, 60% two hands) once in style
"v1" and once in "v2", image by image, ``rounds`` times, and prints per style the images per CPU
second of each round, their median, and the ratio v2 / v1. On a shared machine the rate of one
style drifts with the load within a minute; interleaving the two makes their ratio steadier than
two separate ``synth --bench`` runs, and the ratio times v1's rate on a quiet core (README) estimates
v2's. Run it in two checkouts for a before / after.
"""
from __future__ import annotations

import argparse
import statistics
import time

from h2t_lib.data import synth


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--num", type=int, default=60)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    rig = synth.camera_rig(args.size)
    for style in synth.STYLES:  # warm-up
        synth.render_sample(synth.sample_rng(0, "bench", 0), args.size, rig=rig, style=style)
    rates = {style: [] for style in synth.STYLES}
    for _ in range(args.rounds):
        cpu = dict.fromkeys(synth.STYLES, 0.0)
        for i in range(args.num):
            for style in synth.STYLES:
                t = time.process_time()
                synth.render_sample(synth.sample_rng(0, "bench", i), args.size, rig=rig, style=style)
                cpu[style] += time.process_time() - t
        for style in synth.STYLES:
            rates[style].append(args.num / cpu[style])
    med = {style: statistics.median(r) for style, r in rates.items()}
    for style, r in rates.items():
        print(f"{args.size} px, style {style}: {med[style]:6.1f} images per CPU second (median of {args.rounds} rounds "
              f"of {args.num}: {', '.join(f'{x:.1f}' for x in r)})")
    print(f"ratio v2 / v1: {med['v2'] / med['v1']:.3f}")


if __name__ == "__main__":
    main()
