"""The ``ablate`` command: the paper's ablations (Tables 4-6) as equal-budget runs."""
from __future__ import annotations

from h2t_lib.engine.ablate import Budget, ablate, format_table
from h2t_lib.utils import check_writable, is_fast


def add_arguments(p) -> None:
    p.add_argument("--data", required=True, help="synthetic (or InterHand2.6M-format) folder with train and test splits")
    p.add_argument("--out", default="runs/ablations", help="folder of the runs (finished runs are reused)")
    p.add_argument("--json", default=None, help="where to write the table (default: OUT/ablations.json)")
    p.add_argument("--tables", default="4,5,6", help="which of the paper's tables, e.g. 4 or 4,6")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="steps per epoch")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--num-test", type=int, default=None, help="test images (0 = all)")
    p.add_argument("--extra-seeds", type=int, default=None, help="extra runs of the base row (seed spread)")
    p.add_argument("--preset", default=None, choices=("tiny", "cpu"), help="model preset of every row (default tiny)")
    p.add_argument("--schedule", default=None, choices=("step", "cosine"),
                   help="step: the paper's decay scaled (default); cosine: warm-up + cosine, the shipped recipe")
    p.add_argument("--init-backbone", default=None, dest="init_backbone",
                   help="start every row's backbone from this checkpoint's (ours; Table 4 only), e.g. data/checkpoints/h2t_cpu.pt")
    p.add_argument("--shard", default="1/1", help="K/N: run every N-th configuration from the K-th (N processes share the work)")
    p.add_argument("--device", default="auto")


def run(args) -> int:
    budget = Budget.fast() if is_fast() else Budget()
    for field in ("epochs", "steps", "batch", "num_test", "extra_seeds", "preset", "schedule", "init_backbone"):
        value = getattr(args, field)
        if value is not None:
            setattr(budget, field, value)
    tables = tuple(t.strip() for t in args.tables.split(",") if t.strip())
    bad = [t for t in tables if t not in ("4", "5", "6")]
    if bad:
        raise ValueError(f"--tables {args.tables}: the ablation tables are 4, 5 and 6")
    try:
        k, n = (int(x) for x in args.shard.split("/"))
        assert 1 <= k <= n
    except (ValueError, AssertionError):
        raise ValueError(f"--shard {args.shard}: give K/N with 1 <= K <= N, e.g. 1/2 and 2/2 for two processes")
    check_writable(args.out, folder=True)
    if args.json:
        check_writable(args.json)
    table = ablate(args.data, args.out, budget, device=args.device, tables=tables, json_path=args.json,
                   shard=(k - 1, n))
    if table is None:
        print(f"shard {k}/{n} done; run the command again without --shard to write the table")
        return 0
    print(format_table(table))
    if table["skipped"]:
        print(f"not run (another backbone than --init-backbone's): {', '.join(table['skipped'])}")
    return 0
