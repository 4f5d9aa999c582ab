"""The ``eval`` command: evaluate a checkpoint on a dataset split and print the table."""
from __future__ import annotations

from pathlib import Path

from h2t_lib.apps.common import add_data_arguments
from h2t_lib.engine.evaluate import evaluate, format_table, load_model


def add_arguments(p) -> None:
    p.add_argument("--ckpt", required=True, help="checkpoint (e.g. data/checkpoints/h2t_cpu.pt or RUN/best.pt)")
    p.add_argument("--data", required=True, help="dataset folder (InterHand2.6M format or RHD)")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--json", default=None, help="write everything (per-joint, per-sample errors, occlusion) here")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--root-source", default=None, choices=("gt", "pred"),
                   help="wrists for the keypoint-guided projection: gt (as InterHand's baseline) or pred "
                        "(default: the checkpoint's)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="autocast of the model: auto = bf16 on CUDA and on CPUs with native bf16, else fp32")
    p.add_argument("--max-samples", type=int, default=0, help="evaluate only the first N samples (0 = all)")
    p.add_argument("--noise-sigma", type=float, default=5.0, help="sigma (mm) of the GT + noise reference row")
    add_data_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from h2t_lib.errors import UserError
    from h2t_lib.data.loading import available_splits, open_dataset, subset
    from h2t_lib.utils import atomic_write_json, check_writable, resolve_device, resolve_precision

    if args.batch_size < 1 or args.max_samples < 0:
        raise UserError("--batch-size must be >= 1 and --max-samples >= 0")
    if args.json:
        check_writable(args.json)  # before the evaluation, not after it
    data = Path(args.data)
    if not data.exists():
        raise FileNotFoundError(f"data folder {data} does not exist")
    device = resolve_device(args.device)
    model, _ = load_model(args.ckpt, device=device, root_source=args.root_source)
    files = {"annot_subset": args.annot_subset or "", "image_check": args.image_check or "error"}
    opened = open_dataset(data, args.split, model.cfg.image_size, **files)
    files["annot_subset"] = getattr(opened, "annot_subset", None) or files["annot_subset"]  # mean-pose row: same folder
    dataset = subset(opened, args.max_samples)
    splits = available_splits(data, files["annot_subset"])
    train_set = None
    if "train" in splits and args.split != "train":
        train_set = open_dataset(data, "train", model.cfg.image_size, **files)
    else:
        print(f"note: no train split next to {args.split!r} in {data}; the mean-pose row uses the {args.split} split's own mean")
    res = evaluate(model, dataset, train_dataset=train_set, batch_size=args.batch_size, device=device,
                   noise_sigma=args.noise_sigma, progress=not args.quiet, precision=args.precision)
    precision = resolve_precision(args.precision, device)[0]
    res.update({"checkpoint": str(args.ckpt), "data": str(data), "split": args.split, "precision": precision})
    print(f"{args.ckpt} on {data} [{args.split}], {precision}")
    print(format_table(res))
    if args.json:
        from h2t_lib.utils import jsonable

        atomic_write_json(args.json, jsonable(res))
        print(f"wrote {args.json}")
    return 0
