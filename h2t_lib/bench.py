"""Speed and size benchmark: ``python -m h2t_lib bench`` (the paper's Tables 1-2, on your machine).

Side by side, at one input size, for Handformer2T R34-d256 and R50-d256 (hand tokens, and the
joint-token variant of Table 6), the InterNet-style heatmap baseline (:mod:`h2t_lib.model.baseline`,
paper preset) and the bare ResNet-34 / ResNet-50 trunks, it reports:

* **params**: with *thop* (``thop.profile``, as the paper) and a plain count of ``model.parameters()``.
  thop only sees modules it has a rule for and that run in the forward; we add rules
  (``custom_ops``, :func:`thop_custom_ops`) for ``nn.MultiheadAttention``, the ``nn.Transformer*Layer``
  blocks, Handformer2T's ``GroupedLinear`` token MLPs, ``nn.Embedding`` and ``nn.GroupNorm``, so
  attention and the tokenizers are counted. Where thop still misses parameters (an ``nn.Parameter``
  held directly by a container module, e.g. the positional embeddings) the JSON and markdown list
  them (``thop_missed``; thop + missed = plain count).
* **GFLOPs** = 2 x thop's multiply-accumulates (MACs) at batch 1. thop counts modules only:
  functional ops (``F.grid_sample``, ``torch.matmul``, the soft-argmax, ...) are not in it. thop's
  rule for transposed convolutions counts stride^2 too many MACs (every kernel tap at every output
  pixel); we replace it with the input-side count. **GFLOPs (torch)** is a cross-check by
  ``torch.utils.flop_counter`` (matrix products and convolutions at the ATen level, functional too).
* **FPS** at batch 1: eval mode, ``torch.inference_mode``, warm-up, then the median of
  ``--repeats`` timed forwards (CUDA synchronised).
* **throughput** (paper, Table 2): ``max batch / time per batch``, the max batch being the largest
  that fits ``--memory-budget-gb``: batch sizes double from 1 until out-of-memory or over budget,
  then bisect (exactly on CUDA; on CPU to within 1/8 of the batch, as each CPU forward is slow),
  capped at ``--max-batch`` (64 on CPU by default: "capped" in the table means the budget was
  never reached). The time per batch is the median of ``--throughput-repeats`` forwards.
* **peak memory** of one forward: CUDA: ``torch.cuda.max_memory_allocated`` (weights, input and
  activations). CPU: the peak resident set size (Linux ``VmHWM``, reset through
  ``/proc/self/clear_refs`` and after ``malloc_trim``) minus the RSS before the model was built,
  so again weights + input + activations. Every model runs in a fresh child process, so one
  model's allocator state does not leak into the next one's numbers.

``--quick`` (or ``H2T_FAST=1``) swaps in the tiny presets at their small image size with 1-2
repeats, so a test runs it in seconds. Results: an aligned table on stdout, ``--json OUT``
(plus ``OUT`` with ``.md``: a markdown table), with the device, torch version and date.
"""
from __future__ import annotations

import argparse
import ctypes
import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from h2t_lib.cli import UserError
from h2t_lib.utils import atomic_write_json, atomic_write_text, check_writable, is_fast

_RESULT_TAG = "H2T_BENCH_RESULT "
_PROGRESS_TAG = "H2T_BENCH_PROGRESS "


@dataclasses.dataclass
class ModelSpec:
    """One row of the benchmark: what to build."""

    key: str  # name on the command line
    label: str  # name in the table
    kind: str  # "h2t" | "internet" | "backbone"
    preset: str  # ModelConfig / InterNetConfig preset, or the torchvision ResNet name
    tokens: str = "hand"  # Handformer2T only


def model_specs(quick: bool) -> dict:
    """The rows: the paper setting, or (``quick``) their tiny stand-ins."""
    if quick:
        from h2t_lib.config import ModelConfig

        tiny_backbone = ModelConfig.preset("tiny").backbone
        specs = [
            ModelSpec("h2t-tiny", "Handformer2T tiny, hand tokens", "h2t", "tiny", "hand"),
            ModelSpec("h2t-tiny-joint", "Handformer2T tiny, joint tokens", "h2t", "tiny", "joint"),
            ModelSpec("internet-tiny", "InterNet-style heatmaps, tiny", "internet", "tiny"),
            ModelSpec(tiny_backbone, f"{tiny_backbone} trunk alone", "backbone", tiny_backbone),
        ]
    else:
        specs = [
            ModelSpec("h2t-r34", "Handformer2T R34-d256, hand tokens", "h2t", "r34-d256", "hand"),
            ModelSpec("h2t-r34-joint", "Handformer2T R34-d256, joint tokens", "h2t", "r34-d256", "joint"),
            ModelSpec("h2t-r50", "Handformer2T R50-d256, hand tokens", "h2t", "r50-d256", "hand"),
            ModelSpec("h2t-r50-joint", "Handformer2T R50-d256, joint tokens", "h2t", "r50-d256", "joint"),
            ModelSpec("internet", "InterNet-style heatmaps (R50)", "internet", "paper"),
            ModelSpec("resnet34", "ResNet-34 trunk alone", "backbone", "resnet34"),
            ModelSpec("resnet50", "ResNet-50 trunk alone", "backbone", "resnet50"),
        ]
    return {s.key: s for s in specs}


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------

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
        from h2t_lib.config import ModelConfig

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


# ------------------------------------------------------------------------------------------------
# reporting
# ------------------------------------------------------------------------------------------------

DEFINITIONS_SHORT = (
    "params: thop.profile / plain count of parameters (M). GFLOPs = 2 x thop MACs at batch 1 (modules only);\n"
    "GFLOPs (torch): torch.utils.flop_counter at batch 1 (matrix products and convolutions), a cross-check.\n"
    "FPS: batch 1, median of the timed forwards. throughput = max batch / median time per batch (paper, Table 2);\n"
    "'best': the same from the fastest repeat (less sensitive to other load on the machine).\n"
    "peak mem: CUDA max_memory_allocated; CPU peak RSS of the forward minus RSS before the model was built."
)

_COLUMNS = [  # (header, row key, format)
    ("model", "label", "{}"),
    ("params M (thop)", "params_thop_m", "{:.2f}"),
    ("params M", "params_m", "{:.2f}"),
    ("GFLOPs", "gflops", "{:.2f}"),
    ("GFLOPs (torch)", "gflops_torch", "{:.2f}"),
    ("FPS@1", "fps", "{:.1f}"),
    ("FPS@1 best", "fps_best", "{:.1f}"),
    ("peak MB@1", "peak_mem_mb", "{:.0f}"),
    ("max batch", "max_batch_str", "{}"),
    ("throughput img/s", "throughput", "{:.1f}"),
    ("best", "throughput_best", "{:.1f}"),
    ("peak MB@max", "peak_mem_max_mb", "{:.0f}"),
]


_THOP_KEYS = ("params_thop_m", "gflops")


def _cells(row: dict) -> list:
    if row.get("error"):
        return [row["label"], f"error: {row['error']}"[:60]] + [""] * (len(_COLUMNS) - 2)
    cells = []
    for _, key, fmt in _COLUMNS:
        if key == "max_batch_str":
            mb = row.get("max_batch")
            v = "-" if mb is None else f"{mb}{' (capped)' if row.get('max_batch_capped') else ''}"
        elif key in _THOP_KEYS and key not in row:
            v = "n/a"  # thop not installed (NO_THOP)
        else:
            v = row.get(key)
            v = "-" if v is None else fmt.format(v)
        cells.append(v)
    return cells


def format_table(rows: list) -> str:
    """Aligned plain-text table, one line per model."""
    header = [h for h, _, _ in _COLUMNS]
    body = [_cells(r) for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(c) for c in body])


def format_markdown(result: dict) -> str:
    """The markdown file written next to the JSON."""
    m = result["meta"]
    lines = [
        f"# h2t bench: {m['device_name']}",
        "",
        f"- date: {m['date']}; torch {m['torch']}; device `{m['device']}`; {m['threads_note']}",
        f"- input {m['image_size']} x {m['image_size']} px; {m['repeats']} timed forwards at batch 1 after "
        f"{m['warmup']} warm-up; max batch searched up to {m['max_batch_cap']} under a "
        f"{m['memory_budget_gb']:.1f} GiB budget{' (' + m['budget_note'] + ')' if m['budget_note'] else ''}"
        f"{'; float16 autocast' if m['amp'] else ''}{'; QUICK run (tiny presets)' if m['quick'] else ''}",
    ]
    if m.get("note"):
        lines.append(f"- note: {m['note']}")
    if not m.get("thop", True):
        lines.append(f"- note: {NO_THOP}")
    lines += ["", "| " + " | ".join(h for h, _, _ in _COLUMNS) + " |",
              "|" + "|".join(["---"] + ["---:"] * (len(_COLUMNS) - 1)) + "|"]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in result["rows"]]
    lines += ["", "Definitions:", ""] + [f"- {k}: {v}" for k, v in m["definitions"].items()]
    missed = [(r["label"], r["thop_missed"]) for r in result["rows"] if r.get("thop_missed")]
    if missed:
        lines += ["", "Parameters thop did not see (plain count minus thop):", ""]
        lines += [f"- {label}: " + ", ".join(f"`{k}` {v}" for k, v in gaps.items()) for label, gaps in missed]
    return "\n".join(lines) + "\n"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _device_memory_bytes(device: str):
    """Total memory of the CUDA device, or MemAvailable on CPU (None if unknown)."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_properties(torch.device(device)).total_memory
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _meta(s: dict) -> dict:
    if s["device"].startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(s["device"]))
        threads_note = f"CUDA {torch.version.cuda}"
    else:
        name = f"{_cpu_name()}, {os.cpu_count()} logical CPUs"
        threads_note = f"torch threads: {s['threads'] or torch.get_num_threads()}"
    return {
        "device": s["device"], "device_name": name, "threads_note": threads_note, "torch": torch.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "image_size": s["image_size"], "repeats": s["repeats"], "warmup": s["warmup"],
        "throughput_repeats": s["throughput_repeats"], "max_batch_cap": s["max_batch"],
        "memory_budget_gb": s["budget_bytes"] / 2**30, "budget_note": s["budget_note"], "amp": s["amp"],
        "quick": s["quick"], "note": s["note"], "thop": has_thop(),
        "definitions": {
            "params_thop_m": "thop.profile parameter count (modules thop has a rule for, incl. our attention rules), M",
            "params_m": "plain count of model.parameters(), M",
            "gflops": "2 x thop MACs for one image (thop counts modules, not functional ops)",
            "gflops_torch": "FLOPs of one image by torch.utils.flop_counter.FlopCounterMode (matmuls, convolutions, "
                            "attention; no element-wise ops), a cross-check of thop",
            "fps": "1 / median time of a batch-1 forward (eval, inference_mode)",
            "max_batch": "largest batch whose forward fits the memory budget (doubling, then bisection"
                         + (", exact)" if s["device"].startswith("cuda") else " to within 1/8, CPU)")
                         + "; capped = the search cap was reached first",
            "throughput": "max batch / median time per batch at the max batch, images/s (paper Table 2)",
            "fps_best, throughput_best": "the same from the fastest repeat instead of the median "
                                         "(the less noisy figure on a shared machine)",
            "peak_mem_mb": "peak memory of a batch-1 forward, MiB: "
                           + ("torch.cuda.max_memory_allocated (weights + input + activations)"
                              if s["device"].startswith("cuda") else
                              "peak RSS (VmHWM after clear_refs and malloc_trim) minus RSS before the model was "
                              "built (weights + input + activations), in a fresh process per model"),
            "peak_mem_max_mb": "the same at the max batch, MiB",
        },
    }


# ------------------------------------------------------------------------------------------------
# the child process: one model, measured in a fresh interpreter
# ------------------------------------------------------------------------------------------------

def _run_child(spec: ModelSpec, settings: dict) -> dict:
    payload = {**settings, "specs": None, "spec": dataclasses.asdict(spec)}
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    code = "import sys; from h2t_lib.bench import _child_main; sys.exit(_child_main(sys.argv[1]))"
    base = {"key": spec.key, "label": spec.label, "kind": spec.kind, "preset": spec.preset, "tokens": spec.tokens}
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(payload)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    result, tail = None, []
    for line in proc.stdout:  # the child's progress lines are echoed, the rest kept for an error message
        line = line.rstrip("\n")
        if line.startswith(_RESULT_TAG):
            result = json.loads(line[len(_RESULT_TAG):])
        elif line.startswith(_PROGRESS_TAG):
            print(line[len(_PROGRESS_TAG):], end=" ", flush=True)
        elif line.strip():
            tail = (tail + [line])[-5:]
    proc.wait()
    if result is not None:
        return {**base, **result}
    why = f"child process exited with {proc.returncode}"
    if proc.returncode < 0:
        why += f" (signal {-proc.returncode}{'; out of memory?' if -proc.returncode == 9 else ''})"
    return {**base, "error": why + (f": {tail[-1]}" if tail else "")}


def _child_main(payload: str) -> int:
    settings = json.loads(payload)
    try:
        result = measure(settings)
    except Exception as e:  # noqa: BLE001 - reported as this model's row, the others still run
        import traceback

        traceback.print_exc(file=sys.stderr)
        result = {"error": f"{type(e).__name__}: {e}"}
    print(_RESULT_TAG + json.dumps(result), flush=True)
    return 0


class TrunkOnly(nn.Module):
    """The bare-backbone row: a torchvision ResNet without pooling and classifier, with the models' call
    signature (the intrinsics and wrists are ignored). (B, 3, S, S) -> (B, C, S/32, S/32)."""

    def __init__(self, name: str):
        super().__init__()
        from h2t_lib.model.backbone import build_resnet

        self.net = nn.Sequential(*list(build_resnet(name).children())[:-2])

    def forward(self, image, focal=None, princpt=None, root_cam=None):
        return self.net(image)


def build_model(spec: dict, image_size: int):
    """The nn.Module of one benchmark row, in eval mode, at ``image_size``."""
    kind, preset = spec["kind"], spec["preset"]
    if kind == "h2t":
        from h2t_lib.config import ModelConfig
        from h2t_lib.model import Handformer2T

        cfg = ModelConfig.preset(preset, tokens=spec["tokens"], image_size=image_size)
        return Handformer2T(cfg).eval()
    if kind == "internet":
        from h2t_lib.model.baseline import InterNetBaseline, InterNetConfig

        return InterNetBaseline(InterNetConfig.preset(preset, image_size=image_size)).eval()
    if kind == "backbone":
        return TrunkOnly(preset).eval()
    raise ValueError(f"unknown model kind {kind!r}")


def make_inputs(batch: int, image_size: int, device, seed: int = 0) -> tuple:
    """A batch like the data loader's: crops in [0, 1], crop intrinsics, ground-truth wrists (mm)."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, image_size, image_size, generator=g)
    focal = torch.full((batch, 2), 1500.0 * image_size / 256)  # a typical InterHand2.6M crop focal length
    princpt = torch.full((batch, 2), image_size / 2)
    root_cam = torch.tensor([[-60.0, 0.0, 600.0], [60.0, 0.0, 600.0]]).expand(batch, 2, 3).contiguous()
    return tuple(t.to(device) for t in (image, focal, princpt, root_cam))


# --- thop with rules for attention ---------------------------------------------------------------

def _seq_dims(t, batch_first: bool):
    """(batch, length) of a (B, L, E) / (L, B, E) / unbatched (L, E) tensor."""
    if t.dim() == 2:
        return 1, t.shape[0]
    return (t.shape[0], t.shape[1]) if batch_first else (t.shape[1], t.shape[0])


def _mha_macs(m, q_len: int, k_len: int, batch: int) -> int:
    """MACs of nn.MultiheadAttention: Q/K/V and output projections + Q K^T + attention x V."""
    e = m.embed_dim
    proj = q_len * e * e + k_len * e * m.kdim + k_len * e * m.vdim + q_len * e * e
    return batch * (proj + 2 * q_len * k_len * e)


def _count_mha(m, x, y):
    q = x[0] if len(x) > 0 else (y[0] if isinstance(y, tuple) else y)  # kwargs-only calls: fall back to the output
    b, lq = _seq_dims(q, m.batch_first)
    lk = _seq_dims(x[1], m.batch_first)[1] if len(x) > 1 else lq
    m.total_ops += torch.DoubleTensor([_mha_macs(m, lq, lk, b)])


def _ffn_norm_macs(layer, tokens: int, num_norms: int) -> int:
    e, f = layer.linear1.in_features, layer.linear1.out_features
    return tokens * (2 * e * f) + num_norms * 4 * tokens * e  # two linears + affine LayerNorms (thop's norm rule)


def _count_encoder_layer(m, x, y):
    """nn.TransformerEncoderLayer as a whole (its eval fast path skips its children's hooks)."""
    b, l = _seq_dims(x[0] if x else y, m.self_attn.batch_first)
    m.total_ops += torch.DoubleTensor([_mha_macs(m.self_attn, l, l, b) + _ffn_norm_macs(m, b * l, 2)])


def _count_decoder_layer(m, x, y):
    bf = m.self_attn.batch_first
    b, l = _seq_dims(x[0] if x else y, bf)
    lm = _seq_dims(x[1], bf)[1] if len(x) > 1 else l
    macs = _mha_macs(m.self_attn, l, l, b) + _mha_macs(m.multihead_attn, l, lm, b) + _ffn_norm_macs(m, b * l, 3)
    m.total_ops += torch.DoubleTensor([macs])


def _count_zero(m, x, y):
    """Modules with parameters but no multiply-accumulates (a lookup): params counted, 0 MACs."""


def _count_groupnorm(m, x, y):
    m.total_ops += torch.DoubleTensor([2 * x[0].numel()])


def _count_grouped_linear(m, x, y):
    """Handformer2T's GroupedLinear (T Linears in one bmm): in_dim MACs per output element, like nn.Linear."""
    m.total_ops += torch.DoubleTensor([y.numel() * m.weight.shape[1]])


def _count_conv_transpose(m, x, y):
    """Transposed convolution: every input element meets k*k*out/groups weights. (thop's own rule counts
    k*k*in/groups per *output* element, stride^2 times too many for a stride-2 deconvolution.)"""
    k = 1
    for size in m.kernel_size:
        k *= size
    m.total_ops += torch.DoubleTensor([x[0].numel() * (m.out_channels // m.groups) * k])


def thop_custom_ops() -> dict:
    """The ``custom_ops`` we give thop: attention (thop has no rule for it) and Handformer2T's grouped
    linear layers (the token MLPs, Eq. 6), so neither counts as zero; and transposed convolutions
    (the heatmap baseline's deconvolutions), which thop's own rule over-counts by stride^2."""
    ops = {
        nn.MultiheadAttention: _count_mha,
        nn.TransformerEncoderLayer: _count_encoder_layer,
        nn.TransformerDecoderLayer: _count_decoder_layer,
        nn.Embedding: _count_zero,
        nn.GroupNorm: _count_groupnorm,
        nn.ConvTranspose1d: _count_conv_transpose,
        nn.ConvTranspose2d: _count_conv_transpose,
        nn.ConvTranspose3d: _count_conv_transpose,
    }
    try:
        from h2t_lib.model.tokenizer import GroupedLinear
    except ImportError:  # pragma: no cover - the model package is incomplete
        pass
    else:
        ops[GroupedLinear] = _count_grouped_linear
    return ops


def _thop_gaps(model, layer_info: dict, prefix: str = "") -> dict:
    """Where thop's parameter count falls short of the plain one: {parameter or module path: missing count}."""
    gaps = {}
    for pname, p in model.named_parameters(recurse=False):  # held directly by a container module
        gaps[prefix + pname] = p.numel()
    for name, (_, params, sub) in layer_info.items():
        child = getattr(model, name)
        plain = sum(p.numel() for p in child.parameters())
        if plain == int(params):
            continue
        if sub:  # thop went into the children: find which
            gaps.update(_thop_gaps(child, sub, f"{prefix}{name}."))
        else:  # no rule for this module (or it never ran in the forward)
            gaps[f"{prefix}{name}"] = plain - int(params)
    return gaps


def has_thop() -> bool:
    """thop is optional (a machine with its own torch may lack it): without it the thop columns are n/a."""
    try:
        import thop  # noqa: F401
    except ImportError:
        return False
    return True


#: the table's and the JSON's note when thop is missing
NO_THOP = ("thop is not installed here: params M (thop) and GFLOPs are n/a; GFLOPs (torch) "
           "(torch.utils.flop_counter) is the FLOP count (pip install thop for the thop columns)")


def profile_thop(model, inputs) -> dict:
    """thop params and MACs of one forward (``inputs`` at batch 1), plus what thop missed.
    Raises ImportError without thop (:func:`has_thop`)."""
    import thop

    macs, params, info = thop.profile(model, inputs=inputs, custom_ops=thop_custom_ops(), verbose=False,
                                      ret_layer_info=True)
    for m in model.modules():  # thop leaves its counters on modules it had no rule for
        m._buffers.pop("total_ops", None)
        m._buffers.pop("total_params", None)
    return {"macs": float(macs), "params": int(params), "missed": _thop_gaps(model, info)}


def torch_gflops(model, inputs) -> float:
    """Cross-check of thop: GFLOPs of one forward by ``torch.utils.flop_counter.FlopCounterMode``, which
    counts the matrix products and convolutions at the ATen level (functional ones too: ``bmm``,
    ``matmul``; not ``grid_sample``) and no element-wise ops. Run with autograd on and the "math"
    attention kernel, so attention runs as countable matrix products (the fused CPU kernel is not counted)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        model(*inputs)
    return counter.get_total_flops() / 1e9


# --- timing and memory ---------------------------------------------------------------------------

class _Memory:
    """Peak memory of one forward: CUDA allocator statistics, or Linux RSS high-water mark on CPU."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        self.device = device
        self.libc = None
        self.base = 0
        self.method = "cuda.max_memory_allocated" if self.cuda else "VmHWM"
        if not self.cuda:
            try:
                self.libc = ctypes.CDLL("libc.so.6")
            except OSError:
                self.libc = None
            try:  # can the high-water mark be reset here?
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self.method = "ru_maxrss (not resettable: an upper bound)"
        if self.cuda:
            torch.cuda.synchronize(device)
            self.base = 0  # allocated bytes count from zero: weights are included
        else:
            self.base = self._rss()

    @staticmethod
    def _status(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise OSError(f"{field} not in /proc/self/status")

    def _rss(self) -> int:
        try:
            return self._status("VmRSS")
        except OSError:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        if self.libc is not None:
            self.libc.malloc_trim(0)  # hand freed heap pages back, so the baseline is what is live
        if self.method == "VmHWM":
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS

    def peak(self) -> int:
        """Peak bytes since :meth:`reset`, counted from before the model was built."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
            return int(torch.cuda.max_memory_allocated(self.device))
        if self.method == "VmHWM":
            return self._status("VmHWM") - self.base
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self.base


def _is_oom(e: BaseException) -> bool:
    if isinstance(e, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                            or "not enough memory" in text)


def _preload(spec: dict, device) -> None:
    """Import what building and profiling will import, and run one small convolution, so that library
    code and the math library's one-off set-up are already resident when the baseline RSS is read."""
    import importlib

    import torchvision  # noqa: F401

    has_thop()  # imports thop where it is

    importlib.import_module({"h2t": "h2t_lib.model", "internet": "h2t_lib.model.baseline",
                             "backbone": "h2t_lib.model.backbone"}[spec["kind"]])
    with torch.inference_mode():
        x = torch.rand(1, 3, 32, 32, device=device)
        nn.functional.conv2d(x, torch.rand(4, 3, 3, 3, device=device)).sum().item()
        nn.functional.linear(torch.rand(2, 8, device=device), torch.rand(4, 8, device=device)).sum().item()


def search_max_batch(fits, cap: int, exact: bool = True) -> tuple:
    """Largest batch ``b <= cap`` with ``fits(b)``: double from 1 until a batch does not fit (or the cap),
    then bisect between the last that fits and the first that does not; ``exact=False`` stops when the
    bracket is within 1/8 of the batch (each CPU forward at a large batch is slow).
    Returns (max batch, 0 when even 1 does not fit; capped: True when the cap was reached still fitting).
    """
    lo, hi, b = 0, None, 1
    while True:
        if not fits(b):
            hi = b
            break
        lo = b
        if b >= cap:
            return lo, True
        b = min(2 * b, cap)
    tol = 1 if exact else max(1, lo // 8)
    while hi - lo > tol:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo, False


def measure(s: dict) -> dict:
    """Build one model in this (fresh) process and measure it. ``s``: the settings plus ``spec``."""
    import contextlib

    from h2t_lib.utils import seed_everything

    if s.get("threads"):
        torch.set_num_threads(int(s["threads"]))
    seed_everything(0)
    device = torch.device(s["device"])
    cuda = device.type == "cuda"
    _preload(s["spec"], device)  # libraries in memory first: the RSS baseline then excludes their code
    mem = _Memory(device)  # baseline: before the model exists
    size = s["image_size"]

    model = build_model(s["spec"], size)
    params = sum(p.numel() for p in model.parameters())
    prof = profile_thop(model, make_inputs(1, size, "cpu")) if has_thop() else None
    gflops_torch = torch_gflops(model, make_inputs(1, size, "cpu"))
    model.to(device)

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    amp = torch.autocast("cuda", dtype=torch.float16) if s["amp"] else contextlib.nullcontext()

    def forward(inputs):
        with torch.inference_mode(), amp:
            out = model(*inputs)
        sync()
        return out

    def timed(batch, warmup, repeats):
        inputs = make_inputs(batch, size, device)
        for _ in range(warmup):
            forward(inputs)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            forward(inputs)
            times.append(time.perf_counter() - t0)
        return times

    def peak_of(batch):
        """Peak memory of one forward at ``batch``, or None when it runs out of memory."""
        inputs = None
        try:
            mem.reset()
            inputs = make_inputs(batch, size, device)
            out = forward(inputs)
            del out
            return mem.peak()
        except Exception as e:  # noqa: BLE001
            if not _is_oom(e):
                raise
            return None
        finally:
            del inputs
            if cuda:
                torch.cuda.empty_cache()

    def progress(text):
        print(_PROGRESS_TAG + text, flush=True)

    progress(f"built ({params / 1e6:.1f} M params, {gflops_torch:.1f} GFLOPs by torch);")
    times1 = timed(1, s["warmup"], s["repeats"])
    progress(f"{1 / statistics.median(times1):.1f} FPS;")
    median1 = statistics.median(times1)
    peak1 = peak_of(1)
    row = {
        "params": params, "params_m": params / 1e6,
        "gflops_torch": gflops_torch,
        "fps": 1.0 / median1, "fps_best": 1.0 / min(times1), "time_bs1_ms": [t * 1e3 for t in times1],
        "median_ms": median1 * 1e3,
        "peak_mem_mb": None if peak1 is None else peak1 / 2**20, "memory_method": mem.method,
        "threads": None if cuda else torch.get_num_threads(),
    }
    if prof is not None:
        row.update(params_thop=prof["params"], params_thop_m=prof["params"] / 1e6, thop_missed=prof["missed"],
                   macs=prof["macs"], gflops=2 * prof["macs"] / 1e9)
    if not s["throughput"]:
        return row

    budget, cap = s["budget_bytes"], s["max_batch"]
    peaks = {1: peak1}

    def fits(b):
        if b not in peaks:
            peaks[b] = peak_of(b)
            progress(f"b={b}:" + ("OOM" if peaks[b] is None else f"{peaks[b] / 2**20:.0f}MB"))
        return peaks[b] is not None and peaks[b] <= budget

    lo, capped = search_max_batch(fits, cap, exact=cuda)
    row.update(max_batch=lo or None, max_batch_capped=capped,
               batch_peaks_mb={str(k): (None if v is None else v / 2**20) for k, v in sorted(peaks.items())})
    if lo:
        # the search has run a forward at this batch size already: on CPU that is the warm-up
        times = timed(lo, 1 if cuda else 0, s["throughput_repeats"])
        med = statistics.median(times)
        row.update(throughput=lo / med, throughput_best=lo / min(times), time_max_batch_ms=[t * 1e3 for t in times],
                   peak_mem_max_mb=peaks[lo] / 2**20)
    return row


if __name__ == "__main__":  # python -m h2t_lib.bench ... works as well as python -m h2t_lib bench ...
    _p = argparse.ArgumentParser(prog="python -m h2t_lib bench")
    add_arguments(_p)
    try:
        sys.exit(run(_p.parse_args()))
    except (UserError, ValueError, FileNotFoundError) as _e:
        print(f"h2t bench: error: {_e}", file=sys.stderr)
        sys.exit(2)
