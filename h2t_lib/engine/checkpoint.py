"""Checkpoints: a model's config, weights and whatever else you pass, in one atomic file.

    save_checkpoint("runs/tiny/model.pt", model, epoch=3, metrics={"mpjpe": 12.3})
    model, extra = load_checkpoint("runs/tiny/model.pt")      # extra == {"epoch": 3, "metrics": {...}}

File layout (a dict written by ``torch.save``)::

    {"format": "h2t-checkpoint", "version": 1, "model_config": cfg.to_dict(),
     "state_dict": {...}, "dtype": "float32" | "float16", **extra}

The state dict includes the fixed random index buffers of the feature extractor and KGFF, so
a reloaded model reads the same features and predicts exactly as before saving.
"""
from __future__ import annotations

import dataclasses
import numbers
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from h2t_lib.model.config import ModelConfig
from h2t_lib.utils import atomic_torch_save

FORMAT = "h2t-checkpoint"
VERSION = 1
RESERVED = ("format", "version", "model_config", "state_dict", "dtype")


def _plain(x):
    """numpy values -> python / torch, so the file loads with ``weights_only=True``; every tensor on the
    CPU (a GPU run's optimizer state and flows), so a plain ``torch.load`` works on a machine without one."""
    if torch.is_tensor(x):
        return x.detach().cpu()
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    return x


def save_checkpoint(path, model, half: bool = False, **extra) -> Path:
    """Write ``model`` (a Handformer2T: its ``cfg`` and weights) and ``extra`` to ``path`` atomically.

    Every tensor is stored on the CPU, ``extra``'s too. ``half=True`` stores floating-point tensors as
    float16 (about half the file size, for shipping a trained model); :func:`load_checkpoint` turns them
    back into float32. Returns the path.
    """
    cfg = getattr(model, "cfg", None)
    if not isinstance(cfg, ModelConfig):
        raise TypeError("save_checkpoint needs a model with a ModelConfig in model.cfg (a Handformer2T)")
    clash = sorted(set(extra) & set(RESERVED))
    if clash:
        raise ValueError(f"extra keys {clash} are reserved by the checkpoint format; rename them")
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        state[k] = v.half() if half and v.is_floating_point() else v.clone()
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": cfg.to_dict(),
        "state_dict": state,
        "dtype": "float16" if half else "float32",
        **_plain(extra),
    }
    atomic_torch_save(payload, path)
    return Path(path)


def read_checkpoint(path, map_location="cpu") -> dict:
    """The raw checkpoint dict, checked to be an h2t checkpoint (clear errors otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path}; train one (python -m h2t_lib train ...) or pass the path of a "
            f"file written by h2t_lib.engine.checkpoint.save_checkpoint"
        )
    expected = "expected a file written by h2t_lib.engine.checkpoint.save_checkpoint"
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes), not an h2t checkpoint; {expected}: re-copy or re-download it")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - a PNG, a truncated file, a pickle of anything: one line
        with open(path, "rb") as f:
            zipped = f.read(2) == b"PK"  # torch.save writes a zip archive
        if zipped and isinstance(e, RuntimeError) and "zip archive" in str(e):
            raise ValueError(f"{path} is a truncated or damaged checkpoint (its zip archive cannot be read); "
                             f"{expected}: re-copy or re-download it") from None
        raise ValueError(f"{path} is not an h2t checkpoint (torch.load failed: {type(e).__name__}); {expected}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        what = f"a dict with keys {sorted(ckpt)[:5]}" if isinstance(ckpt, dict) else f"a {type(ckpt).__name__}"
        raise ValueError(
            f"{path} is not an h2t checkpoint (it holds {what}); "
            f"expected a file written by h2t_lib.engine.checkpoint.save_checkpoint"
        )
    version = ckpt.get("version")
    if not isinstance(version, numbers.Integral) or version > VERSION:
        raise ValueError(f"{path} has checkpoint version {version!r}; this h2t reads version <= {VERSION}: update h2t")
    for key in ("model_config", "state_dict"):
        if not isinstance(ckpt.get(key), dict):
            raise ValueError(f"{path} is a damaged h2t checkpoint: its {key!r} entry is missing")
    return ckpt


def _describe(cfg_dict: dict) -> str:
    return f"preset {cfg_dict.get('name', '?')!r} ({cfg_dict.get('backbone')}, dim={cfg_dict.get('dim')}, tokens={cfg_dict.get('tokens')})"


def load_checkpoint(path, map_location="cpu", expected_config: Optional[ModelConfig] = None):
    """Rebuild the model saved at ``path``: returns ``(model, extra)``, the model in eval mode.

    ``expected_config``: if given, the checkpoint's architecture must match it (fields that do not
    shape the weights -- name, backbone_weights, root_source, dropout -- may differ and are taken
    from ``expected_config``); otherwise a ValueError says which fields differ and how to fix it.

    Used in notebook 07.
    """
    ckpt = read_checkpoint(path, map_location="cpu")
    try:
        cfg = ModelConfig.from_dict(ckpt["model_config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: its model config does not load ({e})") from None
    if expected_config is not None:
        got, want = cfg.arch_dict(), expected_config.arch_dict()
        diff = [k for k in want if got.get(k) != want[k]]
        if diff:
            shown = ", ".join(f"{k}={got.get(k)!r}" for k in diff[:4])
            wanted = ", ".join(f"{k}={want[k]!r}" for k in diff[:4])
            raise ValueError(
                f"checkpoint {path} was trained with {_describe(ckpt['model_config'])}: {shown}, but the expected "
                f"config ({expected_config.name!r}) has {wanted}; load it without expected_config (the checkpoint "
                f"carries its config) or choose the matching preset"
            )
        cfg = dataclasses.replace(
            cfg, **{k: getattr(expected_config, k) for k in ("name", "root_source", "dropout")}
        )
    # the weights come from the file: never read the backbone_weights path the run was started with
    cfg = dataclasses.replace(cfg, backbone_weights=None)

    from h2t_lib.model.handformer2t import Handformer2T

    model = Handformer2T(cfg)
    state = ckpt["state_dict"]
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}")
        if shape:
            k = shape[0]
            parts.append(f"shape of {k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
        raise ValueError(
            f"the weights in {path} do not fit its config {_describe(ckpt['model_config'])} ({'; '.join(parts)}); "
            f"the file was written by another h2t version or edited: retrain or re-export it"
        )
    # copy_ casts float16 files back to the model's float32
    model.load_state_dict({k: v.to(own[k].dtype) if v.is_floating_point() else v for k, v in state.items()})
    model.to(map_location).eval()
    extra = {k: v for k, v in ckpt.items() if k not in RESERVED}
    return model, extra
