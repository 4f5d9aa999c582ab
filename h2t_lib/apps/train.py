"""The ``train`` command: its options, the config they make, and the one-line report."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from h2t_lib.apps.common import add_data_arguments
from h2t_lib.engine import distributed
from h2t_lib.engine.config import TRAIN_PRESETS, TrainConfig, parse_overrides
from h2t_lib.engine.train import train
from h2t_lib.errors import UserError


def add_arguments(p) -> None:
    p.add_argument("--preset", default="cpu", choices=sorted(TRAIN_PRESETS), help="training recipe (default: cpu)")
    p.add_argument("--data", default=None,
                   help="dataset folder (InterHand2.6M format, e.g. from `h2t_lib synth`, or RHD); with --render only "
                        "its validation split is used, and it may be left out")
    p.add_argument("--out", required=True, help="run directory: last.pt, best.pt, log.csv, log.json, loss_curve.png")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an OUT that holds another run (its last.pt, best.pt, logs are deleted); "
                        "without it (or --resume) such an OUT is refused")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--epochs", type=int, default=None, help="number of epochs (default: the preset's)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the preset's, 0)")
    p.add_argument("--init", default=None, help="start from the weights of this checkpoint (fine-tuning)")
    p.add_argument("--model-preset", default=None, help="model preset (default: the train preset's)")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override TrainConfig fields, model.FIELD or loss.FIELD, e.g. --set lr=1e-4 model.dim=64")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's own, all cores); 1 leaves a core for other work")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader workers (default: the config's num_workers, -1 = auto); also applies with --resume, "
                        "as it changes the speed, not the numbers")
    p.add_argument("--render", action="store_true",
                   help="render synthetic training samples on the fly in the loader's workers (= --set train_data=render): "
                        "no folder of images, a new image every epoch")
    p.add_argument("--precision", default=None, choices=("auto", "fp32", "bf16", "fp16"),
                   help="autocast of the model (= --set precision=...): auto (default) = bf16 on CUDA and on CPUs "
                        "with native bf16, else fp32; fp16 is CUDA only")
    p.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                   help="stop in time for a last validation and checkpoint after this many minutes of wall-clock")
    add_data_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args) -> TrainConfig:
    cfg = TrainConfig.preset(args.preset)
    changes = {}
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.init is not None:
        if not Path(args.init).exists():
            raise FileNotFoundError(f"--init {args.init}: no such file")
        changes["init"] = args.init
    if getattr(args, "render", False):
        changes["train_data"] = "render"
    if getattr(args, "precision", None) is not None:
        changes["precision"] = args.precision
    if args.model_preset is not None:
        changes["model_preset"] = args.model_preset
    elif args.init is not None:
        changes["model_preset"] = None  # the checkpoint's architecture, whatever it is
    for key in ("annot_subset", "image_check"):
        if getattr(args, key, None) is not None:
            changes[key] = getattr(args, key)
    cfg = dataclasses.replace(cfg, **changes)
    cfg = parse_overrides(args.overrides, cfg)
    if not cfg.init:
        cfg.model_config()  # fail now, with the config's own message, on a bad preset / field
    return cfg


def run(args) -> int:
    if args.resume:
        if not (Path(args.out) / "last.pt").exists():
            raise UserError(f"--resume: {Path(args.out) / 'last.pt'} does not exist; run without --resume to start")
        given = [name for name, value in (("--set", args.overrides), ("--init", args.init),
                                          ("--model-preset", args.model_preset), ("--seed", args.seed),
                                          ("--render", args.render), ("--precision", args.precision),
                                          ("--annot-subset", args.annot_subset),
                                          ("--image-check", args.image_check)) if value not in (None, False, [])]
        if given:
            print(f"note: --resume continues with the run's stored config; {', '.join(given)} ignored")
        cfg = None
    else:
        cfg = config_from_args(args)
    if args.workers is not None and args.workers < 0:
        raise UserError(f"--workers {args.workers}: give 0 (load in the training process) or more")
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads {args.threads}: give 1 or more")
        torch.set_num_threads(args.threads)
    history = train(cfg, args.data, args.out, resume=args.resume, epochs=args.epochs, device=args.device,
                    progress=not args.quiet, verbose=True, time_budget=args.time_budget, overwrite=args.overwrite,
                    workers=args.workers)
    if distributed.from_env().rank != 0:
        return 0  # rank 0 reports
    best = history.get("best")
    last = history["epochs"][-1] if history["epochs"] else {}
    print(f"done: {len(history['epochs'])} epochs in {args.out}; final loss {last.get('train_total', float('nan')):.4f}")
    if best:
        print(f"best: epoch {best['epoch']} {best['metric']} = {best['value']:.3f} -> {Path(args.out) / 'best.pt'}")
    return 0


