"""Does a checkpoint tell a right hand from a left one? A check on a rendered split (issue 21's diagnosis).

    python tools/handedness.py --ckpt runs/NAME/last.pt --data runs/ab --split val [--num 300]

The renderer places the two hands anywhere (right wrist left of the left one in 155 of 300 interacting val
samples of seed 102), so only the hands themselves (thumb side against palm and nails) say which is which.
Printed, over the first ``--num`` samples of the split:

* interacting samples: for each wrist estimate the model makes (the token root head's projected wrists,
  and with ``wrist_head="heatmap"`` the decoded heatmap channels), its mean error in crop pixels and how
  often it lies nearer its own hand's ground-truth wrist than the other hand's (0.5 = a coin toss), and how
  often the two estimates fall within 8 px of each other;
* single-hand samples: with ``hand_presence=True``, how often the presence logits name the hand shown
  (the present hand's logit above the absent one's); with the heatmap head, the mean peak of the shown
  hand's channel and of the other one.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from h2t_lib.data.loading import open_dataset  # noqa: E402
from h2t_lib.engine.evaluate import load_model  # noqa: E402
from h2t_lib.skeleton import ROOT_INDEX  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--num", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=50)
    a = p.parse_args(argv)
    torch.manual_seed(0)
    model, _ = load_model(a.ckpt, device="cpu", root_source="pred")
    model.eval()
    ds = open_dataset(Path(a.data), a.split, model.cfg.image_size)
    roots = [ROOT_INDEX["right"], ROOT_INDEX["left"]]  # 20, 41: the two wrists in the 42-joint order
    rows = {"inter": [], "single": []}
    for k in range(0, min(a.num, len(ds)), a.batch_size):
        b = torch.utils.data.default_collate([ds[i] for i in range(k, min(k + a.batch_size, a.num, len(ds)))])
        with torch.no_grad():
            out = model(b["image"], b["focal"], b["princpt"])
        gt = b["joints_img"][:, roots]  # (B, 2, 2) crop px
        root = out["root"]
        est = {"token root head": root[..., :2] / root[..., 2:3] * b["focal"][:, None] + b["princpt"][:, None]}
        if "wrist_heatmaps" in out:
            est = {"heatmap channels": model.wrist_head.decode(out["wrist_heatmaps"])}  # root's pixel is this one
        for i, t in enumerate(b["hand_type"]):
            r = {name: e[i] for name, e in est.items()}
            r["gt"] = gt[i]
            if "presence" in out:
                r["presence"] = out["presence"][i]
            if "wrist_heatmaps" in out:
                r["peaks"] = out["wrist_heatmaps"][i].flatten(1).amax(-1)
            r["type"] = str(t)
            rows["inter" if str(t) == "interacting" else "single"].append(r)
    inter, single = rows["inter"], rows["single"]
    print(f"{a.ckpt} on {a.data} [{a.split}]: {len(inter)} interacting, {len(single)} single-hand samples")
    for name in (n for n in (inter[0] if inter else {}) if n.endswith(("head", "channels"))):
        e = torch.stack([r[name] for r in inter])  # (n, 2, 2)
        g = torch.stack([r["gt"] for r in inter])
        own = (e - g).norm(dim=-1)  # (n, 2)
        other = (e - g.flip(1)).norm(dim=-1)
        same = ((e[:, 0] - e[:, 1]).norm(dim=-1) < 8).float().mean()
        print(f"  interacting, {name}: error {own.mean():.1f} px mean; nearer its own wrist {(own < other).float().mean():.2f}"
              f" (right {(own < other)[:, 0].float().mean():.2f}, left {(own < other)[:, 1].float().mean():.2f});"
              f" the two within 8 px {same:.2f}")
    if single and "presence" in single[0]:
        hits = [float(r["presence"][0] > r["presence"][1]) == float(r["type"] == "right") for r in single]
        print(f"  single-hand, presence logits name the hand shown: {sum(hits) / len(hits):.2f}")
    if single and "peaks" in single[0]:
        shown = torch.stack([r["peaks"][0 if r["type"] == "right" else 1] for r in single])
        other = torch.stack([r["peaks"][1 if r["type"] == "right" else 0] for r in single])
        print(f"  single-hand, heatmap peak: shown hand's channel {shown.mean():.3f}, the other channel {other.mean():.3f};"
              f" shown above other {(shown > other).float().mean():.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
