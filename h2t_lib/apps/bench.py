"""The ``bench`` command: speed / size benchmark of Handformer2T and the heatmap baseline (:mod:`h2t_lib.engine.bench`)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from h2t_lib.engine.bench import (DEFINITIONS_SHORT, _device_memory_bytes, _meta, _run_child, format_markdown,
                                  format_table, model_specs)
from h2t_lib.engine.flops import NO_THOP
from h2t_lib.errors import UserError
from h2t_lib.utils import atomic_write_json, atomic_write_text, check_writable, is_fast


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto (CUDA when present); default auto")
    parser.add_argument("--json", metavar="OUT", default=None,
                        help="write the results as JSON to OUT and a markdown table to OUT with .md")
    parser.add_argument("--models", nargs="+", default=None, metavar="NAME",
                        help="rows to run (default all): h2t-r34 h2t-r34-joint h2t-r50 h2t-r50-joint internet "
                             "resnet34 resnet50; with --quick: h2t-tiny h2t-tiny-joint internet-tiny resnet18")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input crop side S for every model (default 256; --quick: the tiny preset's)")
    parser.add_argument("--repeats", type=int, default=None, help="timed forwards at batch 1 (default 10; quick 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed forwards first (default 3; quick 1)")
    parser.add_argument("--throughput-repeats", type=int, default=None,
                        help="timed forwards at the max batch (default 3; quick 1)")
    parser.add_argument("--memory-budget-gb", type=float, default=None,
                        help="memory a forward may use for the max-batch search (default: CUDA 24, the paper's "
                             "24 GB card, at most the device's memory; CPU 4)")
    parser.add_argument("--max-batch", type=int, default=None,
                        help="cap of the batch-size search (default: CPU 64, CUDA 1024; quick 4)")
    parser.add_argument("--no-throughput", action="store_true", help="skip the max-batch search")
    parser.add_argument("--amp", action="store_true", help="CUDA only: run the forwards under float16 autocast")
    parser.add_argument("--threads", type=int, default=None, help="CPU: torch threads (default: torch's choice)")
    parser.add_argument("--note", default=None, help="free text stored with the results (e.g. 'shared machine')")
    parser.add_argument("--quick", action="store_true",
                        help="tiny presets, small images, 1-2 repeats (also when H2T_FAST=1)")


def _resolve(args) -> dict:
    """Check the arguments and fill in the defaults; returns the settings the children get."""
    quick = bool(args.quick or is_fast())
    device = args.device
    if device not in ("cpu", "cuda", "auto") and not device.startswith("cuda:"):
        raise UserError(f"--device {device!r}: use cpu, cuda or auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: CUDA is not available on this machine; use --device cpu or auto")
    cuda = device.startswith("cuda")
    if args.amp and not cuda:
        raise UserError("--amp is for CUDA only (float16 autocast); drop it for a CPU run")

    specs = model_specs(quick)
    keys = args.models or list(specs)
    unknown = [k for k in keys if k not in specs]
    if unknown:
        raise UserError(f"unknown model(s) {unknown}; {'with' if quick else 'without'} --quick choose from "
                        f"{' '.join(specs)}")

    if args.image_size is not None:
        size = args.image_size
    elif quick:
        from h2t_lib.model.config import ModelConfig

        size = ModelConfig.preset("tiny").image_size
    else:
        size = 256
    if size < 32 or size % 32:
        raise UserError(f"--image-size {size}: must be a multiple of 32 (the ResNet stride), e.g. 64, 128, 256")

    def pick(value, full, fast, name, minimum):
        v = value if value is not None else (fast if quick else full)
        if v < minimum:
            raise UserError(f"--{name} {v}: must be >= {minimum}")
        return v

    repeats = pick(args.repeats, 10, 2, "repeats", 1)
    warmup = pick(args.warmup, 3, 1, "warmup", 0)
    t_repeats = pick(args.throughput_repeats, 3, 1, "throughput-repeats", 1)
    max_batch = pick(args.max_batch, 1024 if cuda else 64, 4, "max-batch", 1)
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads {args.threads}: must be >= 1")

    total_mem = _device_memory_bytes(device)
    if args.memory_budget_gb is not None:
        if args.memory_budget_gb <= 0:
            raise UserError(f"--memory-budget-gb {args.memory_budget_gb}: must be > 0")
        budget = args.memory_budget_gb * 2**30
    else:
        budget = 24 * 2**30 if cuda else 4 * 2**30
    budget_note = ""
    if total_mem and budget > 0.9 * total_mem:
        budget, budget_note = 0.9 * total_mem, "capped at 90% of the device's (available) memory"
    return dict(quick=quick, device=device, specs=[specs[k] for k in keys], image_size=size, repeats=repeats,
                warmup=warmup, throughput_repeats=t_repeats, max_batch=max_batch, budget_bytes=int(budget),
                budget_note=budget_note, throughput=not args.no_throughput, amp=bool(args.amp),
                threads=args.threads, note=args.note)


def run(args) -> int:
    if args.json:
        check_writable(args.json)  # before the benchmark, not after it
    settings = _resolve(args)
    meta = _meta(settings)
    print(f"h2t bench on {meta['device_name']} ({settings['device']}), image {settings['image_size']} px, "
          f"{len(settings['specs'])} models, memory budget {settings['budget_bytes'] / 2**30:.1f} GiB"
          + (" [quick]" if settings["quick"] else ""), flush=True)
    rows = []
    for i, spec in enumerate(settings["specs"], 1):
        t0 = time.perf_counter()
        print(f"[{i}/{len(settings['specs'])}] {spec.label} ...", end=" ", flush=True)
        row = _run_child(spec, settings)
        status = f"error: {row['error']}" if row.get("error") else "done"
        print(f"{status} ({time.perf_counter() - t0:.0f} s)", flush=True)
        rows.append(row)
    table = format_table(rows)
    print()
    print(table)
    print()
    print(DEFINITIONS_SHORT)
    if not meta["thop"]:
        print(f"note: {NO_THOP}")
    result = {"meta": meta, "rows": rows}
    if args.json:
        out = Path(args.json)
        atomic_write_json(out, result)
        atomic_write_text(out.with_suffix(".md"), format_markdown(result))
        print(f"wrote {out} and {out.with_suffix('.md')}")
    failed = [r["key"] for r in rows if r.get("error")]
    if failed:
        print(f"h2t bench: {len(failed)} model(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # python -m h2t_lib.apps.bench ... works as well as python -m h2t_lib bench ...
    _p = argparse.ArgumentParser(prog="python -m h2t_lib bench")
    add_arguments(_p)
    try:
        sys.exit(run(_p.parse_args()))
    except (UserError, ValueError, FileNotFoundError) as _e:
        print(f"h2t bench: error: {_e}", file=sys.stderr)
        sys.exit(2)
