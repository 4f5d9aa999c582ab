"""Small shared helpers: device choice, seeding, fast mode, the shipped checkpoint's path, and output files:
checked for writing before the work starts, written atomically, a failed write as one line."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np

#: the repository root (this file is <root>/h2t_lib/utils.py)
ROOT = Path(__file__).resolve().parents[1]
#: the shipped model, found from any working directory
SHIPPED_CHECKPOINT = ROOT / "data" / "checkpoints" / "h2t_cpu.pt"


def shown_path(path) -> str:
    """``path`` as a log line shows it: relative to the checkout when inside it (``runs/course_data``), so what
    a notebook prints does not name this machine's folders; as given otherwise."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def is_fast() -> bool:
    """True when ``H2T_FAST=1`` (set by the tests): shrink data and steps."""
    return os.environ.get("H2T_FAST", "0") not in ("", "0", "false", "False")


def resolve_device(device="auto"):
    """'auto' -> CUDA when present, else CPU; "cpu", "cuda", "cuda:1", ... or a torch.device (returned as is).

    Returns a torch.device. Raises :class:`h2t_lib.errors.UserError` (one line in the CLI) for CUDA
    asked for where there is none, or a name torch does not know.
    """
    import torch

    from h2t_lib.errors import UserError

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


#: the precisions a run can ask for (TrainConfig.precision, ``--precision``)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_has_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX): autocast in bf16 is then ~1.6x
    faster than float32 for this project's training step; elsewhere (e.g. AVX2 only) it is emulated and slower."""
    import torch

    probe = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(probe, name, lambda: False)()) for name in checks)


def resolve_precision(precision: str, device) -> tuple:
    """The autocast dtype a run uses: ``(name, dtype)`` with name "fp32" | "bf16" | "fp16", dtype None for fp32.

    ``precision``: "auto" = bf16 on CUDA where the GPU has it (else fp16), bf16 on a CPU that computes it
    natively (:func:`cpu_has_bf16`), float32 elsewhere; "fp32", "bf16" force one; "fp16" is CUDA only.
    ``device``: a torch.device or its name. Raises ValueError for an unknown name or fp16 on a CPU.
    """
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; use one of {', '.join(PRECISIONS)}")
    kind = torch.device(device).type
    if precision == "auto":
        if kind == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if cpu_has_bf16() else "fp32"
    if precision == "fp16" and kind != "cuda":
        raise ValueError("precision='fp16' is for CUDA only (it needs a gradient scaler); use bf16 or fp32 on a CPU")
    return precision, {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device, dtype):
    """``torch.autocast`` for ``dtype`` on ``device`` (a torch.device or name); a no-op for dtype None (fp32)."""
    import torch

    return torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None)


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
    """Seed python, numpy and torch (CPU and CUDA) so runs repeat.

    Used in every notebook (00-10).
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


#: what to do about a failed write, by its errno
_WRITE_HINTS = {
    errno.ENOSPC: "free some space or write elsewhere", errno.EDQUOT: "free some space or write elsewhere",
    errno.EFBIG: "the file system takes no file this large; write elsewhere",
    errno.EACCES: "choose a folder you can write to", errno.EPERM: "choose a folder you can write to",
    errno.EROFS: "choose a folder you can write to",
}


def write_error(path, e: OSError):
    """The one-line :class:`h2t_lib.errors.UserError` for ``e``, an OSError met while writing ``path``:
    the file, the cause and, for the usual causes (permission, read-only, no space, file too large), the fix."""
    from h2t_lib.errors import UserError

    cause = e.strerror or str(e) or type(e).__name__
    hint = _WRITE_HINTS.get(e.errno)
    return UserError(f"cannot write {path}: {cause}" + (f"; {hint}" if hint else ""))


def check_writable(path, folder: bool = False) -> Path:
    """Check, before any work starts, that ``path`` can be written; return it as a Path.

    ``folder``: ``path`` is a folder that files are written into (a file otherwise). Nothing is created:
    a temporary file is made and removed in the nearest folder that exists (the rest of the path is
    created when written). Raises :class:`h2t_lib.errors.UserError` (one line, exit 2 in the CLI) when the
    path is a file where a folder is wanted or the other way round, or the folder cannot be written.
    """
    from h2t_lib.errors import UserError

    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file; give a folder to write into")
    if not folder and path.is_dir():
        raise UserError(f"{path} is a folder; give a file name to write")
    probe = path if folder else path.parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"cannot write {path}: {probe} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".h2t_write_check.", suffix=".tmp", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise write_error(path, e) from None
    return path


def remove_stale_tmp(folder, names) -> list:
    """Remove the temporary files :func:`atomic_path` left in ``folder`` for the file ``names`` when a
    process was killed while writing them (``.NAME.*.tmp``); return the paths removed."""
    removed = []
    for name in names:
        for tmp in Path(folder).glob(f".{name}.*.tmp"):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    A failed write (an exception, Ctrl-C) removes the temporary file and leaves ``path`` as it was
    (never half-written); a killed process leaves only ``.NAME.*.tmp`` (see :func:`remove_stale_tmp`).
    Works for files and for directories (the temporary name does not exist yet). An OSError while
    writing (permission, no space, file too large) is raised as a one-line :func:`write_error`.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
        os.close(fd)
        os.unlink(name)
        tmp = Path(name)
        yield tmp
        if path.is_dir() and tmp.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as e:
        raise write_error(path, e) from None
    finally:
        if tmp is not None and tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp is not None and tmp.exists():
            tmp.unlink()


def atomic_torch_save(obj, path) -> None:
    """torch.save written atomically (temp file, then rename).

    torch writes through a Python file object here: a full disk is then an OSError (ENOSPC), which
    :func:`atomic_path` reports in one line, rather than torch's own error naming no file."""
    import torch

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(obj, f)


def atomic_write_text(path, text: str) -> None:
    """``text`` written atomically to ``path`` as UTF-8 (whatever the system's locale)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2))
