"""The ``realism`` command: MediaPipe Hands on a rendered split (docs/realism.md)."""
from __future__ import annotations

from pathlib import Path

from h2t_lib.data.realism import realism_report
from h2t_lib.errors import UserError
from h2t_lib.utils import check_writable


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True, help="dataset folder (InterHand2.6M layout, e.g. from synth)")
    parser.add_argument("--split", default="test", help="split (default test)")
    parser.add_argument("--out", default=None, help="output folder (default DATA/realism)")
    parser.add_argument("--mp-python", default=None,
                        help="Python of an environment with mediapipe (default $H2T_MP_PYTHON, .venv-mp, this one)")
    parser.add_argument("--detections", default=None, help="reuse a detections.json of an earlier run (no MediaPipe)")
    parser.add_argument("--match-frac", type=float, default=0.5,
                        help="a detection matches a hand when its mean landmark distance < this x hand size (0.5)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")


def run(args) -> int:
    if not Path(args.data).is_dir():
        raise UserError(f"--data {args.data}: no such folder (render one: python -m h2t_lib synth --out DIR --split test)")
    if not 0 < args.match_frac:
        raise UserError(f"--match-frac must be > 0, got {args.match_frac}")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be >= 1, got {args.limit}")
    if args.detections and not Path(args.detections).is_file():
        raise UserError(f"--detections {args.detections}: no such file")
    check_writable(args.out or Path(args.data) / "realism", folder=True)
    realism_report(args.data, args.split, args.out, args.mp_python, args.detections, args.match_frac, args.limit)
    return 0
