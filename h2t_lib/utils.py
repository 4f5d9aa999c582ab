"""Small shared helpers: device choice, seeding, atomic writes, fast mode."""
from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np


def is_fast() -> bool:
    """True when ``H2T_FAST=1`` (set by the tests): shrink data and steps."""
    return os.environ.get("H2T_FAST", "0") not in ("", "0", "false", "False")


def resolve_device(device="auto"):
    """'auto' -> CUDA when present, else CPU; "cpu", "cuda", "cuda:1", ... or a torch.device (returned as is).

    Returns a torch.device. Raises :class:`h2t_lib.cli.UserError` (one line in the CLI) for CUDA
    asked for where there is none, or a name torch does not know.
    """
    import torch

    from .cli import UserError

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={device!r} was asked for but CUDA is not available here; use --device cpu or auto")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise UserError(f"device={device!r}: {e}") from None


def jsonable(x):
    """``x`` (dicts, lists, numpy scalars, floats) as strict JSON can hold it: NaN / inf become None."""
    import math

    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, (np.floating, np.integer)):
        return jsonable(x.item())
    return x


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) so runs repeat."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    A crash leaves only the temporary file behind (never a half-written ``path``).
    Works for files and for directories (the temporary name does not exist yet).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    tmp = Path(tmp)
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def atomic_torch_save(obj, path) -> None:
    """torch.save written atomically (temp file, then rename)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2))
