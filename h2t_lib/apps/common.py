"""Options more than one command shares."""
from __future__ import annotations


def add_data_arguments(p) -> None:
    """--annot-subset and --image-check (InterHand2.6M files; docs/your_data.md), shared with eval."""
    p.add_argument("--annot-subset", default=None, metavar="NAME",
                   help="InterHand2.6M annotation folder: all | human_annot | machine_annot | v1.0 "
                        "(annotations/<split>/); default: the one folder holding the split")
    p.add_argument("--image-check", default=None, choices=("error", "warn"),
                   help="an InterHand2.6M image whose size differs from its annotation: error (default) or warn "
                        "and use it as it is")
