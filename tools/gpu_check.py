"""The prepared device check for a GPU lent for a few minutes: run by tools/gpu_check.sh (see there).

Steps, each timed and recorded in FOLDER/gpu_check.json (rewritten after every step, so a run cut
short keeps what it measured; a step that fails records its error and the others still run):

1. ``versions``: Python, torch, CUDA, cuDNN, the GPU (name, memory), CPU cores, thop present;
2. ``train_step``: the ``paper`` TrainStep (forward + loss + backward + Adam) on one in-memory batch
   at B = 64 and 128, mixed precision as ``train`` chooses it (bf16 on a GPU that has it),
   synchronised: images/s, ms per step, peak GPU memory;
3. ``gpu_run``: ``make gpu-run MINUTES=3`` (validation images, on-the-fly training with
   ``render_reuse`` 4, evaluation): its log's last lines, the epochs' ``train_samples_per_s``, eval's MPJPE;
4. ``render_loader``: the on-the-fly renderer's training loader with 15 workers (cores - 1), K = 1 and 4;
5. ``folder_loader``: the folder loader (JPEG decode + crop + augment) over step 3's validation images,
   15 workers.

``--tiny``: the same on the CPU in well under a minute (``tiny`` preset, 64 px, B = 2 and 4, one
worker, a 3-second gpu-run), as ``make test`` runs it (tests/test_gpu_ready.py).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FULL = {"preset": "paper", "device": "gpu", "batches": (64, 128), "warmup": 3, "steps": 10, "size": 256,
        "loader_batch": 64, "workers": None, "reuse": (1, 4), "make": {"MINUTES": "3", "REUSE": "4"}}
TINY = {"preset": "tiny", "device": "cpu", "batches": (2, 4), "warmup": 1, "steps": 1, "size": 64,
        "loader_batch": 4, "workers": 1, "reuse": (1, 2),
        "make": {"PRESET": "tiny", "SIZE": "64", "MINUTES": "0.02", "EPOCHS": "100000", "TRAIN_DEVICE": "cpu",
                 "VAL_NUM": "8", "REUSE": "2"}}


def versions() -> dict:
    import torch

    from h2t_lib.engine.bench import has_thop

    out = {"python": sys.version.split()[0], "executable": sys.executable, "torch": torch.__version__,
           "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "cpus": os.cpu_count(),
           "platform": platform.platform(), "thop": has_thop(), "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        out.update(gpu=p.name, gpu_memory_gib=p.total_memory / 2**30, gpus=torch.cuda.device_count(),
                   bf16=torch.cuda.is_bf16_supported())
    if shutil.which("nvidia-smi"):
        out["nvidia_smi"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip()
    return out


def in_memory_batch(size: int, batch: int, device) -> dict:
    """``batch`` training samples (8 renders repeated) collated and on ``device``."""
    import torch

    from h2t_lib.data.loading import to_device
    from h2t_lib.data.stream import SynthStream

    stream = SynthStream(8, size, seed=0)
    samples = [stream[i % 8] for i in range(batch)]
    return to_device(torch.utils.data.default_collate(samples), device)


def train_step(s: dict) -> dict:
    """images/s of the preset's TrainStep at each batch size (see the module docstring, step 2)."""
    import torch

    from h2t_lib.apps.env import usable_device
    from h2t_lib.engine.train import MixedPrecision, TrainConfig, TrainStep
    from h2t_lib.engine.state import build

    device = usable_device(s["device"])
    cfg = TrainConfig.preset(s["preset"])
    cuda = device.type == "cuda"
    model, criterion, optimizer = build(cfg, device)
    amp = MixedPrecision(cfg, device)
    step = TrainStep(model, criterion, amp.dtype, cfg.pred_root_frac).train()

    def one(batch, i):
        terms = step(batch, i)
        optimizer.zero_grad(set_to_none=True)
        amp.backward(terms["total"], optimizer)
        amp.step(optimizer)

    rows = {}
    for b in s["batches"]:
        batch = None
        try:
            batch = in_memory_batch(model.cfg.image_size, b, device)
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            for i in range(s["warmup"]):
                one(batch, i)
            if cuda:
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            for i in range(s["steps"]):
                one(batch, s["warmup"] + i)
            if cuda:
                torch.cuda.synchronize(device)
            dt = (time.perf_counter() - t0) / s["steps"]
            rows[str(b)] = {"img_per_s": b / dt, "ms_per_step": dt * 1e3, "dtype": str(amp.dtype or "float32"),
                            "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None}
        except Exception as e:  # noqa: BLE001 - e.g. out of memory at the larger batch: recorded, go on
            rows[str(b)] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
        finally:
            batch = None
            optimizer.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.empty_cache()
    return {"device": str(device), "preset": cfg.name, "steps": s["steps"], "warmup": s["warmup"], "batches": rows}


def workers_for(s: dict) -> int:
    return s["workers"] if s["workers"] is not None else max(1, (os.cpu_count() or 2) - 1)


def render_loader(s: dict) -> dict:
    from h2t_lib.data.stream import SynthStream
    from h2t_lib.engine.train_speed import loader_speed

    w, b = workers_for(s), s["loader_batch"]
    batches = max(2, 4 * w)  # past the first round of prefetched batches: the steady rate
    rows = {}
    for k in s["reuse"]:
        stream = SynthStream((batches + 1) * b, s["size"], seed=0, reuse=k)
        rows[str(k)] = loader_speed(stream, b, batches, w, group=k)
    return {"size": s["size"], "workers": w, "by_reuse": rows}


def folder_loader(s: dict, folder: Path) -> dict:
    import torch

    from h2t_lib.data.loading import open_dataset
    from h2t_lib.engine.train_speed import loader_speed

    w, b = workers_for(s), s["loader_batch"]
    batches = max(2, 4 * w)
    base = open_dataset(folder, "test", s["size"], augment=True)
    copies = -(-(batches + 1) * b // len(base))
    data = torch.utils.data.ConcatDataset([base] * copies)  # the folder read again as often as needed
    return {"folder": str(folder), "images_in_folder": len(base), **loader_speed(data, b, batches, w)}


def gpu_run(s: dict, work: Path, out: Path) -> dict:
    """``make gpu-run`` with this Python (PY=...), its run folder in ``work``; the log's tail in ``out``."""
    run = work / "gpu_run"
    args = ["make", "-s", "--no-print-directory", "-C", str(REPO), "gpu-run", f"PY={sys.executable}", f"RUN={run}"]
    args += [f"{k}={v}" for k, v in s["make"].items()]
    t0 = time.perf_counter()
    r = subprocess.run(args, capture_output=True, text=True)
    log = (r.stdout + r.stderr).splitlines()
    (out / "gpu_run.log").write_text("\n".join(log[-200:]) + "\n")
    res = {"command": " ".join(args), "returncode": r.returncode, "seconds": time.perf_counter() - t0,
           "log_tail": log[-8:], "val_folder": f"{run}_val"}
    if (run / "log.json").exists():
        hist = json.loads((run / "log.json").read_text())
        res.update(epochs=len(hist["epochs"]), stopped=hist.get("stopped"), data=hist.get("data"),
                   train_samples_per_s=[r.get("train_samples_per_s") for r in hist["epochs"]],
                   last_epoch={k: v for k, v in (hist["epochs"] or [{}])[-1].items() if not isinstance(v, (list, dict))})
    if (run / "eval.json").exists():
        ev = json.loads((run / "eval.json").read_text())
        res["eval"] = {"num_samples": ev.get("num_samples"),
                       "mpjpe_mm": {r["name"]: {k: r.get(k) for k in ("single", "interacting", "all")}
                                    for r in ev.get("rows", [])}}
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="the prepared GPU check (tools/gpu_check.sh)")
    p.add_argument("folder", nargs="?", default=None, help="where gpu_check.json goes (default: $OUT, else runs/gpu_check)")
    p.add_argument("--tiny", action="store_true", help="a CPU run in well under a minute (make test)")
    p.add_argument("--skip", nargs="*", default=[], help="steps to leave out (train_step gpu_run render_loader folder_loader)")
    args = p.parse_args(argv)
    s = TINY if args.tiny else FULL
    if args.tiny:  # one thread: the CPU run shares its cores (make test runs two test processes)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch

        torch.set_num_threads(1)
    from h2t_lib.errors import UserError
    from h2t_lib.apps.env import check_packages, describe, usable_device

    try:  # no usable GPU (or torch too old): one line, exit 2, before anything is measured
        check_packages()
        print(describe(usable_device(s["device"])), flush=True)
    except UserError as e:
        print(f"gpu_check: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.folder or os.environ.get("OUT") or REPO / "runs" / "gpu_check")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="h2t_gpu_check_"))
    result = {"mode": "tiny" if args.tiny else "full", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "steps": {}}
    t_all = time.perf_counter()

    def step(name, fn, *a):
        if name in args.skip:
            return None
        t0 = time.perf_counter()
        print(f"gpu_check: {name} ...", flush=True)
        try:
            res = {"ok": True, **fn(*a)}
        except Exception as e:  # noqa: BLE001 - recorded; the next steps still run
            traceback.print_exc()
            res = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        res["seconds"] = time.perf_counter() - t0
        result["steps"][name] = res
        result["seconds"] = time.perf_counter() - t_all
        (out / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str))
        print(f"gpu_check: {name}: {json.dumps(res, default=str)[:600]}", flush=True)
        return res

    step("versions", versions)
    step("train_step", train_step, s)
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the step's model is gone: its memory back for gpu-run's process
    run = step("gpu_run", gpu_run, s, work, out)
    step("render_loader", render_loader, s)
    val = Path(run["val_folder"]) if run and run.get("val_folder") else None
    if val is not None and val.exists():
        step("folder_loader", folder_loader, s, val)
    shutil.rmtree(work, ignore_errors=True)
    failed = [k for k, v in result["steps"].items() if not v["ok"] or v.get("returncode", 0)]
    print(f"gpu_check: wrote {out / 'gpu_check.json'} in {result['seconds']:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
