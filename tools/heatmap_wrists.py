"""How well the training-only 2D term's heatmap heads find the wrists, next to the root head.

    python tools/heatmap_wrists.py RUN/last.pt DATA [SPLIT] [N]

RUN must have been trained with ``loss.heatmap_weight > 0`` (its ``last.pt`` holds the loss's heads,
:class:`h2t_lib.losses.KeypointHeatmapTerm`). Prints the median 2D distance (crop pixels) to the true
wrist of the root head's prediction and of each level's soft-argmax, and of all joints, over the
first N samples of SPLIT (valid joints only). A diagnostic for docs/results.md, not part of the library.
"""
import sys

import torch

from h2t_lib.camera import cam_to_pixel
from h2t_lib.engine.checkpoint import load_checkpoint
from h2t_lib.data.loading import open_dataset, subset
from h2t_lib.engine.config import TrainConfig
from h2t_lib.engine.state import _criterion


def main(ckpt, data, split="val", n=200):
    model, extra = load_checkpoint(ckpt, map_location="cpu")
    criterion = _criterion(model, TrainConfig.from_dict(extra["train_config"]), "cpu")
    criterion.load_state_dict(extra["train_state"]["criterion"])
    heads = getattr(criterion, "heatmap", None)
    if heads is None:
        sys.exit(f"{ckpt}: trained without the 2D term (loss.heatmap_weight=0): no heatmap heads to probe")
    loader = torch.utils.data.DataLoader(subset(open_dataset(data, split, model.cfg.image_size), int(n)), batch_size=50)
    S, wrists, errs = model.cfg.image_size, [20, 41], {}
    model.eval()
    with torch.no_grad():
        for b in loader:
            out = model(b["image"], b["focal"], b["princpt"])
            gt, ok = b["joints_img"][..., :2].float(), b["joint_valid"] > 0.5
            pairs = [("root head, wrists", cam_to_pixel(out["root"], b["focal"], b["princpt"]), wrists)]
            for level, head, fmap in zip(model.cfg.used_levels(), heads.heads, out["fmaps"]):
                uv = heads.expected_pixels(head(fmap), S)
                pairs += [(f"layer{level} soft-argmax, wrists", uv[:, wrists], wrists),
                          (f"layer{level} soft-argmax, all joints", uv, list(range(42)))]
            for name, uv, idx in pairs:
                d = (uv - gt[:, idx]).norm(dim=-1)[ok[:, idx]]
                errs.setdefault(name, []).append(d)
    for name, d in errs.items():
        print(f"{name:<36} median {torch.cat(d).median():5.1f} px  (of a {S} px crop)")


if __name__ == "__main__":
    main(*sys.argv[1:])
