"""The ``params`` command: parameter counts of a model preset, per component."""
from __future__ import annotations

import dataclasses
import json

from h2t_lib.model.params import COMPONENTS, build_for_counting, count_parameters


def add_arguments(parser) -> None:
    from h2t_lib.model.config import PRESETS

    parser.add_argument("--preset", default="paper", help=f"model preset: {', '.join(PRESETS)} (default: paper)")
    parser.add_argument("--tokens", choices=("hand", "joint"), default=None,
                        help="token level (default: the preset's, i.e. hand; joint = Table 6)")
    parser.add_argument("--json", action="store_true", help='print one JSON object {"total": n, "components": {...}}')


def run(args) -> int:
    from h2t_lib.model.config import PAPER_SIZES_M, ModelConfig

    cfg = ModelConfig.preset(args.preset)
    if args.tokens and args.tokens != cfg.tokens:
        cfg = dataclasses.replace(cfg, tokens=args.tokens)
    counts = count_parameters(build_for_counting(cfg))
    if args.json:
        print(json.dumps({"total": counts["total"], "components": counts["components"]}))
        return 0
    total = counts["total"]
    print(f"Handformer2T preset {args.preset!r} ({cfg.backbone}, dim={cfg.dim}, tokens={cfg.tokens}, "
          f"N={cfg.effective_stages}, L={cfg.num_layers}, {cfg.image_size} px)")
    print(f"  {'component':<22}{'parameters':>14}  {'share':>6}  implements")
    for name, n in counts["components"].items():
        print(f"  {name:<22}{n:>14,}  {100 * n / max(total, 1):5.1f}%  {COMPONENTS.get(name, '')}")
    print(f"  {'total':<22}{total:>14,}  = {total / 1e6:.1f} M")
    stage_names = ["coarse predictor"] + [f"refiner stage {i}" for i in range(2, len(counts['stages']) + 1)]
    print("  per stage (tokenizer + attention + heads): " + ", ".join(
        f"{s} {n / 1e6:.2f} M" for s, n in zip(stage_names, counts["stages"])))
    paper = PAPER_SIZES_M.get((cfg.name, cfg.tokens))
    if paper is not None:
        print(f"  paper (Table {5 if cfg.tokens == 'hand' else 6}): {paper} M -> ours is "
              f"{100 * (total / 1e6 - paper) / paper:+.1f}%")
    return 0
