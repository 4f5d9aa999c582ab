"""The Python, torch and device a command will run on: ``python -m h2t_lib env [--device DEV]``.

``make gpu-run`` and ``make bench`` call it first. On a machine with its own torch and no ``.venv``
(an offline GPU machine: ``make gpu-run PY=python3``) it says which Python is used, and it stops
with one line (exit 2) before anything long starts when

* torch is older than :data:`MIN_TORCH`, the lowest version this project supports, or a package
  the commands need is missing;
* a GPU was asked for (``--device cuda`` / ``cuda:N``, or ``--device gpu``: "the GPU, or stop") and
  none is usable: no CUDA build, no driver, or a GPU that fails a first small computation.

``--device auto`` keeps ``resolve_device``'s meaning (CUDA when usable, else the CPU) and says which.
"""
from __future__ import annotations

import importlib.util
import re
import sys

from h2t_lib.errors import UserError

#: the lowest torch this project supports: the unit tests passed under 2.11.0 (README, "Real data and a GPU")
MIN_TORCH = (2, 11)
#: what ``gpu-run`` and ``bench`` import besides torch (thop is optional: ``bench`` reports FLOPs as n/a without it)
NEEDED = ("numpy", "PIL", "tqdm", "matplotlib", "torchvision")


def torch_version(text: str) -> tuple:
    """(major, minor) of a torch version string such as "2.11.0+cu130"; (0, 0) when unreadable."""
    m = re.match(r"(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def check_packages() -> str:
    """Raise UserError (one line) when torch is missing or older than MIN_TORCH, or a NEEDED package is
    missing; return torch's version."""
    where = f"{sys.executable}"
    if importlib.util.find_spec("torch") is None:
        raise UserError(f"{where} has no torch: use a Python that has it (make ... PY=/path/to/python) or build "
                        f".venv with `make setup` (needs internet)")
    import torch

    if torch_version(torch.__version__) < MIN_TORCH:
        raise UserError(f"{where} has torch {torch.__version__}; h2t needs torch >= {'.'.join(map(str, MIN_TORCH))}: "
                        f"use another Python (PY=...) or `make setup` (torch 2.14.1 in .venv)")
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"{where} lacks {', '.join(missing)}: install them there (pip install ...), or carry their "
                        f"wheels to an offline machine (README, 'Real data and a GPU')")
    return torch.__version__


def usable_device(device: str = "auto"):
    """The torch.device that ``device`` names, checked to work.

    ``device``: "auto" (CUDA when usable, else the CPU), "cpu", "cuda", "cuda:N", or "gpu" (CUDA, and an
    error where there is none; ``make gpu-run``'s "auto"). A CUDA device must pass a first small matrix
    product, so a broken driver or a GPU this torch build has no kernels for fails here, in one line.
    Raises UserError (one line) otherwise.
    """
    import torch

    from h2t_lib.utils import resolve_device

    want_gpu = device == "gpu" or str(device).startswith("cuda")
    if device == "gpu":
        device = "cuda"
    if want_gpu and not torch.cuda.is_available():
        why = "this torch has no CUDA" if torch.version.cuda is None else "no usable GPU or driver was found"
        raise UserError(f"a GPU was asked for (device {device!r}) but {why} (torch {torch.__version__}); "
                        f"run on a machine with a GPU, or pass TRAIN_DEVICE=cpu / --device cpu to run on the CPU")
    dev = resolve_device(device)
    if dev.type == "cuda":
        try:
            x = torch.ones(64, 64, device=dev)
            float((x @ x).sum())
        except Exception as e:  # noqa: BLE001 - any CUDA failure: one line naming it
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"device {device!r} does not work: {first}") from None
    return dev


def describe(dev) -> str:
    """One line: the Python, torch, and the device (the GPU's name on CUDA)."""
    import torch

    where = dev.type
    if dev.type == "cuda":
        where = f"{dev} ({torch.cuda.get_device_name(dev)}, CUDA {torch.version.cuda})"
    return f"python {sys.executable} ({sys.version.split()[0]}), torch {torch.__version__}, device {where}"


def add_arguments(p) -> None:
    p.add_argument("--device", default="auto",
                   help="auto (CUDA when usable, else CPU), cpu, cuda, cuda:N, or gpu (CUDA or stop with exit 2)")


def run(args) -> int:
    check_packages()
    print(describe(usable_device(args.device)))
    return 0
