"""The ``train-speed`` command: where a training step's time goes, per thread count and precision."""
from __future__ import annotations

import datetime

import torch

from h2t_lib.engine.train_speed import format_table, measure
from h2t_lib.errors import UserError
from h2t_lib.utils import atomic_write_json, check_writable


def add_arguments(p) -> None:
    p.add_argument("--preset", default="cpu", help="training preset (default cpu)")
    p.add_argument("--data", default=None, help="dataset folder with a train split (not with --render)")
    p.add_argument("--render", action="store_true", help="data rendered on the fly (train --render) instead of a folder")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to measure (default 1 2)")
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"],
                   help="autocast precisions to measure (default both; bf16 is fast only on CPUs with native bf16)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per measurement (default 5)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers for the data / loop rows (default 0)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    p.add_argument("--json", default=None, help="write the rows here")


def run(args) -> int:
    import dataclasses

    from h2t_lib.engine.bench import _cpu_name
    from h2t_lib.engine.config import TrainConfig
    from h2t_lib.utils import cpu_has_bf16

    if args.steps < 1 or any(t < 1 for t in args.threads) or args.workers < 0:
        raise UserError("--steps and --threads must be >= 1, --workers >= 0")
    if not args.render and not args.data:
        raise UserError("give --data DIR (a dataset folder) or --render")
    if args.json:
        check_writable(args.json)
    cfg = TrainConfig.preset(args.preset)
    if args.batch_size:
        cfg = dataclasses.replace(cfg, batch_size=args.batch_size)
    rows = [measure(cfg, args.data, t, args.steps, args.workers, args.render, precision)
            for t in args.threads for precision in args.precision]
    print(format_table(rows))
    if args.json:
        atomic_write_json(args.json, {"rows": rows, "preset": args.preset, "cpu": _cpu_name(),
                                      "torch": torch.__version__, "cpu_bf16": cpu_has_bf16(), "date": datetime.datetime.now().isoformat(timespec="seconds")})
        print(f"wrote {args.json}")
    return 0
