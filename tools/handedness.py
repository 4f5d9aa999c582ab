"""Does a checkpoint tell a right hand from a left one? A check on a rendered split (issue 21's diagnosis).

    python tools/handedness.py --ckpt runs/NAME/last.pt --data runs/ab --split val [--num 300]

The renderer places the two hands anywhere (right wrist left of the left one in 155 of 300 interacting val
samples of seed 102), so only the hands themselves (thumb side against palm and nails) say which is which.
Printed, over the first ``--num`` samples of the split, with the model's own wrists (the token root head's,
or with ``wrist_head="heatmap"`` the decoded heatmaps'):

* interacting samples: the wrists' mean error in crop pixels, how often a wrist lies nearer its own hand's
  true wrist than the other hand's (``evaluate.handedness_stats``; 0.5 = a coin toss), and how often the
  two predicted wrists fall within 8 px of each other;
* single-hand samples, with ``hand_presence=True``: how often the presence logits name the hand shown.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from h2t_lib.camera import cam_to_pixel  # noqa: E402
from h2t_lib.data.loading import open_dataset, subset  # noqa: E402
from h2t_lib.engine.evaluate import handedness_stats, load_model, predict_dataset, wrist_pixel_errors  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--num", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=50)
    a = p.parse_args(argv)
    model, _ = load_model(a.ckpt, device="cpu", root_source="pred")
    ds = subset(open_dataset(Path(a.data), a.split, model.cfg.image_size), a.num)
    pred = predict_dataset(model, ds, batch_size=a.batch_size, root_source="pred")
    inter = pred["hand_type"] == "interacting"
    print(f"{a.ckpt} on {a.data} [{a.split}]: {inter.sum()} interacting, {(~inter).sum()} single-hand samples")
    stats = handedness_stats(pred)
    if inter.any():
        err = wrist_pixel_errors(pred["root"], pred["joints_cam"], pred["joint_valid"], pred["focal"], pred["princpt"])
        est = cam_to_pixel(pred["root"][inter], pred["focal"][inter], pred["princpt"][inter])  # (n, 2, 2) px
        same = (np.linalg.norm(est[:, 0] - est[:, 1], axis=-1) < 8).mean()
        print(f"  interacting: wrists {np.nanmean(err[inter]):.1f} px off; nearer their own hand's wrist "
              f"{stats['wrist_own_side']:.2f}; the two within 8 px {same:.2f}")
    if np.isfinite(stats["hand_named"]):
        print(f"  single-hand: presence logits name the hand shown {stats['hand_named']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
