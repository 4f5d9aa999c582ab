"""Can a plain classifier tell a right hand from a left one in a rendered split? (issue 21's diagnostic)

    python tools/chirality_probe.py --data runs/ship [--steps 300] [--no-augment] [--ckpt data/checkpoints/h2t_cpu.pt]

Takes the checkpoint's backbone (to its deepest built level), adds a 3x3 conv, global pooling and one logit,
and trains all of it (Adam, 1e-4 backbone / 1e-3 head, batch 32) on the single-hand crops of the ``train``
split, label "right hand"; the training augmentation (flips swap the label) unless ``--no-augment``. Prints
the loss and accuracy every 50 steps and the accuracy on the single-hand crops of ``val`` every 100.
docs/results.md ("Is right vs left in the pictures at all?") has what it printed on runs/ship.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from h2t_lib.data.loading import open_dataset  # noqa: E402
from h2t_lib.engine.checkpoint import load_checkpoint  # noqa: E402


def batch_of(ds, rows):
    ss = [ds[int(i)] for i in rows]
    x = torch.stack([torch.as_tensor(s["image"]) for s in ss]).contiguous(memory_format=torch.channels_last)
    return x, torch.tensor([1.0 if s["hand_type"] == "right" else 0.0 for s in ss])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a rendered dataset folder with train and val splits")
    ap.add_argument("--ckpt", default="data/checkpoints/h2t_cpu.pt")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, _ = load_checkpoint(args.ckpt)
    size = model.cfg.image_size
    train = open_dataset(args.data, "train", size, augment=not args.no_augment, seed=0)
    val = open_dataset(args.data, "val", size, augment=False)
    tr_idx, va_idx = (np.flatnonzero(d.hand_types != "interacting") for d in (train, val))
    print(f"single-hand crops: train {len(tr_idx)}, val {len(va_idx)}; augment {not args.no_augment}", flush=True)
    trunk = model.extractor.backbone
    channels = model.cfg.channels[max(model.cfg.used_levels()) - 1]
    head = nn.Sequential(nn.Conv2d(channels, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(128, 1))
    opt = torch.optim.Adam([{"params": trunk.parameters(), "lr": 1e-4}, {"params": head.parameters(), "lr": 1e-3}])

    def logits(x):
        return head(trunk(x)[-1]).squeeze(1)

    def val_acc() -> float:
        trunk.eval(), head.eval()
        with torch.no_grad():
            hits = [((logits(x) > 0).float() == y).float() for x, y in
                    (batch_of(val, va_idx[k:k + 64]) for k in range(0, len(va_idx), 64))]
        trunk.train(), head.train()
        return float(torch.cat(hits).mean())

    rng = np.random.default_rng(0)
    print(f"step 0: val acc {val_acc():.3f}", flush=True)
    t0, acc = time.time(), []
    for step in range(1, args.steps + 1):
        train.set_epoch(step)
        x, y = batch_of(train, rng.choice(tr_idx, 32, replace=False))
        z = logits(x)
        loss = nn.functional.binary_cross_entropy_with_logits(z, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        acc.append(float(((z > 0).float() == y).float().mean()))
        if step % 50 == 0:
            print(f"step {step}: loss {loss.item():.3f} train acc (last 50) {np.mean(acc[-50:]):.3f} | "
                  f"{step * 32 / (time.time() - t0):.1f} img/s" + (f" | val acc {val_acc():.3f}" if step % 100 == 0 else ""),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
