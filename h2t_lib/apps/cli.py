"""Command line: ``python -m h2t_lib COMMAND ...``.

Each command lives in its own module of :mod:`h2t_lib.apps`, imported only when used, which defines
``add_arguments(parser)`` and ``run(args) -> int``; the library below parses no arguments.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from h2t_lib.errors import UserError

COMMANDS = {
    "synth": ("h2t_lib.apps.synth", "render a synthetic two-hand dataset in InterHand2.6M format"),
    "params": ("h2t_lib.apps.params", "print parameter counts of a model preset, per component"),
    "train": ("h2t_lib.apps.train", "train a model"),
    "eval": ("h2t_lib.apps.eval", "evaluate a checkpoint (MPJPE per stage, reference rows)"),
    "bench": ("h2t_lib.apps.bench", "speed / size benchmark of Handformer2T and the heatmap baseline"),
    "predict": ("h2t_lib.apps.predict", "predict both hands' keypoints on your own image"),
    "ablate": ("h2t_lib.apps.ablate", "the paper's ablations (Tables 4-6) as equal-budget runs on synthetic data"),
    "train-speed": ("h2t_lib.apps.train_speed", "where a training step's time goes: backbone, model, data (images/s)"),
    "realism": ("h2t_lib.apps.realism", "MediaPipe Hands on rendered images: detection rate, 2D error, handedness (issue 13)"),
    "demo": ("h2t_lib.apps.demo", "the main job end to end (what `make demo` runs)"),
    "env": ("h2t_lib.apps.env", "the Python, torch and device commands run on; exit 2 when a GPU asked for is not usable"),
}


def _usage() -> str:
    lines = ["usage: python -m h2t_lib COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "python -m h2t_lib COMMAND --help for a command's options"]
    return "\n".join(lines)


def _printable_anywhere() -> None:
    """A character the console's encoding lacks (a non-ASCII path on a cp1252 console) is written as an
    escape (``\\u624b``) instead of ending the command with a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _printable_anywhere()
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"h2t: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"python -m h2t_lib {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except (UserError, FileNotFoundError, ValueError) as e:
        # Bad input: one clear line, no traceback.
        print(f"h2t {name}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        # The file system refused (a read or a write outside the checked paths): one line naming the file.
        where = f" ({e.filename})" if e.filename else ""
        print(f"h2t {name}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"h2t {name}: interrupted", file=sys.stderr)
        return 130
