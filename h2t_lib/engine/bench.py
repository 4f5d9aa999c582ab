"""Speed and size benchmark behind ``python -m h2t_lib bench`` (:mod:`h2t_lib.apps.bench`) (the paper's Tables 1-2, on your machine).

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

from h2t_lib.engine.flops import NO_THOP, has_thop, profile_thop, torch_gflops
from h2t_lib.utils import ROOT

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
        from h2t_lib.model.config import ModelConfig

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
    """Aligned plain-text table, one line per model.

    Used in notebook 09.
    """
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
    root = str(ROOT)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    code = "import sys; from h2t_lib.engine.bench import _child_main; sys.exit(_child_main(sys.argv[1]))"
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
        from h2t_lib.model.config import ModelConfig
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
