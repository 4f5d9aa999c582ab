"""The paper's tables beside ours: the benchmark, parameter counts and ablations (notebook 09).

Notebook 09 (ablations and efficiency):

* :func:`load_bench` / :func:`bench_vs_paper` / :func:`efficiency_figure`: ``docs/bench_cpu.json``
  (``python -m h2t_lib bench``) beside the paper's Tables 1-2.
* :func:`param_count_rows` / :func:`param_count_figure`: our parameter counts beside Tables 5-6.
* :func:`load_ablations` / :func:`pair_ablation_rows` / :func:`trend_agreement` /
  :func:`ablation_figure` / :func:`agreement_lines`: ``docs/ablations.json`` (equal-budget runs,
  ``python -m h2t_lib ablate``) beside Tables 4-6, and where the trends agree, computed from the data.
* :func:`paper_table1_figure`: Table 1 as accuracy vs size vs speed.

The views of notebook 10 (a real dataset's samples, predictions on your own images) are in
:mod:`h2t_lib.course.image_views`.

Everything returns a figure or plain data; nothing here keeps state.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = [
    "ABLATE_HINT",
    "load_bench",
    "bench_vs_paper",
    "efficiency_figure",
    "param_count_rows",
    "param_count_figure",
    "load_ablations",
    "ablation_key",
    "pair_ablation_rows",
    "trend_agreement",
    "seed_spread_mm",
    "agreement_lines",
    "ablation_figure",
    "paper_table1_figure",
]

#: what notebook 09 shows when docs/ablations.json does not exist yet
ABLATE_HINT = "not measured yet: run python -m h2t_lib ablate"

_BACKBONE_ORDER = ("resnet18", "resnet34", "resnet50")
_ABLATION_TABLES = ("4", "5", "6")
_ABLATION_FIELDS = ("mpjpe_s", "mpjpe_i", "mpjpe", "coarse_mpjpe", "params_m", "minutes")


# ================================================================================================
# Tables 1-2: the benchmark
# ================================================================================================
def load_bench(path) -> Optional[dict]:
    """``docs/bench_cpu.json`` as written by ``python -m h2t_lib bench --json``; None when the file is absent.

    Used in notebook 09.
    """
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list) or "meta" not in data:
        raise ValueError(f"{path}: expected {{'meta': ..., 'rows': [...]}} as written by `python -m h2t_lib bench --json`")
    return data


def _bench_row(bench: dict, kind: str, preset: str = None, tokens: str = "hand") -> Optional[dict]:
    for r in bench["rows"]:
        if r.get("error") or r.get("kind") != kind:
            continue
        if kind == "h2t" and (r.get("preset") != preset or r.get("tokens") != tokens):
            continue
        return r
    return None


def bench_vs_paper(bench: dict) -> list:
    """Handformer2T R50-d256 against the InterNet-style baseline: the paper (Tables 1-2, GPU) beside our bench.

    Returns one dict per quantity: ``{"quantity", "paper_h2t", "paper_internet", "paper_ratio", "ours_h2t",
    "ours_internet", "ours_ratio", "agree"}``, ratio = Handformer2T / InterNet; ``agree``: both ratios on
    the same side of 1 (None when a number is missing). Quantities: model size (M), FPS at batch 1,
    max batch, throughput (images/s). Ours uses the median columns (``fps``, ``throughput``).

    Used in notebook 09.
    """
    from h2t_lib import paper_tables as pt

    h2t = _bench_row(bench, "h2t", "r50-d256", "hand")
    net = _bench_row(bench, "internet")
    p1 = {r["row"]: r for r in pt.TABLE1}
    p2 = {r["row"]: r for r in pt.TABLE2}
    paper = {  # (Handformer2T, InterNet) in the paper
        "model size (M)": (p1[8]["size_m"], p1[1]["size_m"]),
        "FPS (batch 1)": (p2[2]["fps"], p2[1]["fps"]),
        "max batch": (p2[2]["max_batch"], p2[1]["max_batch"]),
        "throughput (img/s)": (p2[2]["throughput"], p2[1]["throughput"]),
    }
    keys = {"model size (M)": "params_thop_m", "FPS (batch 1)": "fps", "max batch": "max_batch",
            "throughput (img/s)": "throughput"}
    out = []
    for q, (ph, pn) in paper.items():
        oh = None if h2t is None else h2t.get(keys[q])
        on = None if net is None else net.get(keys[q])
        pr = ph / pn
        orat = None if oh is None or on in (None, 0) else oh / on
        agree = None if orat is None else bool((pr > 1) == (orat > 1))
        row = {"quantity": q, "paper_h2t": ph, "paper_internet": pn, "paper_ratio": pr,
               "ours_h2t": oh, "ours_internet": on, "ours_ratio": orat, "agree": agree}
        if q == "max batch" and h2t is not None and (h2t.get("max_batch_capped") or (net or {}).get("max_batch_capped")):
            row["note"] = "search capped on CPU: the ratio says nothing"
            row["agree"] = None
        out.append(row)
    return out


def efficiency_figure(bench: dict, use_best: bool = False):
    """Three panels: (a) size and (b) FPS at batch 1 / throughput of every benchmarked model; (c) the
    Handformer2T / InterNet ratios, paper (GPU) vs ours (a capped max-batch search is left out).
    ``use_best``: the fastest-repeat columns instead of the medians.

    Used in notebook 09.
    """
    from matplotlib.figure import Figure

    rows = [r for r in bench["rows"] if not r.get("error")]
    fps_key, thr_key = ("fps_best", "throughput_best") if use_best else ("fps", "throughput")
    fig = Figure(figsize=(12, 3.4), dpi=80)
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.2, 1, 1.2]})
    labels = [r["label"].replace("Handformer2T ", "H2T ").replace(", hand tokens", "").replace(", joint tokens", " joint")
              .replace("InterNet-style heatmaps", "InterNet") for r in rows]
    y = np.arange(len(rows))
    axes[0].barh(y, [r.get("params_thop_m") or 0 for r in rows], color="tab:gray")
    axes[0].set_yticks(y, labels, fontsize=7)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("parameters (M, thop)", fontsize=8)
    axes[0].set_title("(a) size", fontsize=9)
    axes[1].barh(y - 0.2, [r.get(fps_key) or 0 for r in rows], 0.4, color="tab:blue", label="FPS @ batch 1")
    axes[1].barh(y + 0.2, [r.get(thr_key) or 0 for r in rows], 0.4, color="tab:orange", label="throughput")
    axes[1].set_yticks(y, [""] * len(rows))
    axes[1].invert_yaxis()
    axes[1].set_xlabel(f"images / s ({bench['meta'].get('device', '?')})", fontsize=8)
    axes[1].set_title("(b) speed", fontsize=9, loc="left")
    axes[1].legend(fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, frameon=False,
                   borderaxespad=0.2)  # above the bars, beside the title

    ax = axes[2]
    comp = [c for c in bench_vs_paper(bench) if c["ours_ratio"] is not None and "note" not in c]
    x = np.arange(len(comp))
    ax.bar(x - 0.2, [c["paper_ratio"] for c in comp], 0.4, label="paper (RTX 3090 Ti)", color="tab:green")
    ax.bar(x + 0.2, [c["ours_ratio"] for c in comp], 0.4, label=f"ours ({bench['meta'].get('device', '?')})",
           color="tab:purple")
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xticks(x, [c["quantity"] for c in comp], fontsize=7)
    ax.set_ylabel("Handformer2T R50 / InterNet", fontsize=8)
    ax.set_title("(c) ratios (> 1: Handformer2T has more)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def paper_table1_figure():
    """Table 1 as a scatter: model size (x) vs MPJPE-I (y), marker area ~ FPS; methods without a size are left out.

    Used in notebook 09.
    """
    from matplotlib.figure import Figure

    from h2t_lib import paper_tables as pt

    fig = Figure(figsize=(5.5, 3.6), dpi=80)
    ax = fig.subplots()
    for r in pt.TABLE1:
        if r["size_m"] is None or r["mpjpe_i"] is None:
            continue
        ours = r["row"] == 8
        ax.scatter(r["size_m"], r["mpjpe_i"], s=4 * (r["fps"] or 1), alpha=0.6,
                   color="tab:red" if ours else "tab:blue")
        ax.annotate(r["method"].split(" (")[0] + f"\n{r['fps']:.0f} FPS", (r["size_m"], r["mpjpe_i"]), fontsize=6,
                    xytext=(8, -14) if ours else (6, 2), textcoords="offset points")
    ax.margins(x=0.12, y=0.15)
    ax.set_xlabel("model size (M parameters)", fontsize=8)
    ax.set_ylabel("MPJPE-I (mm), lower is better", fontsize=8)
    ax.set_title("Paper, Table 1 (InterHand2.6M; marker area ~ FPS)", fontsize=9)
    fig.tight_layout()
    return fig


# ================================================================================================
# Tables 5-6: parameter counts
# ================================================================================================
def param_count_rows() -> list:
    """Our parameter count of every Table 5 / 6 cell beside the paper's (M).

    Returns ``[{"table", "preset", "tokens", "paper_m", "ours_m", "diff_pct"}]``; counts of
    :func:`h2t_lib.model.params.preset_counts` (models built on the meta device: no memory, seconds).

    Used in notebook 09.
    """
    from h2t_lib import paper_tables as pt
    from h2t_lib.model.params import preset_counts

    out = []
    for r in pt.TABLE5:
        out.append({"table": "5", "preset": r["preset"], "tokens": "hand", "paper_m": r["size_m"]})
    for r in pt.TABLE6:
        if r["tokens"] == "joint":  # the hand rows of Table 6 are the same cells as in Table 5
            out.append({"table": "6", "preset": r["preset"], "tokens": "joint", "paper_m": r["size_m"]})
    for r in out:
        n = preset_counts(r["preset"], r["tokens"])["total"]
        r["ours_m"] = n / 1e6
        r["diff_pct"] = 100.0 * (r["ours_m"] - r["paper_m"]) / r["paper_m"]
    return out


def param_count_figure(rows: list):
    """Grouped bars: paper vs our parameter counts (M) per Table 5 / 6 cell (rows from :func:`param_count_rows`).

    Used in notebook 09.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.2), dpi=80)
    ax = fig.subplots()
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["paper_m"] for r in rows], 0.4, label="paper (thop)", color="tab:green")
    ax.bar(x + 0.2, [r["ours_m"] for r in rows], 0.4, label="ours (model.parameters())", color="tab:purple")
    for i, r in enumerate(rows):
        ax.text(i + 0.2, r["ours_m"] + 1, f"{r['diff_pct']:+.0f}%", ha="center", fontsize=7)
    ax.set_xticks(x, [f"T{r['table']} {r['preset']}\n{r['tokens']}" for r in rows], fontsize=7)
    ax.set_ylabel("parameters (M)", fontsize=8)
    ax.set_title("Model size: Tables 5 (hand tokens) and 6 (joint tokens)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ================================================================================================
# Tables 4-6: the ablation runs
# ================================================================================================
def load_ablations(path) -> Optional[dict]:
    """``docs/ablations.json`` (``python -m h2t_lib ablate``), checked; None when the file is absent.

    Format: ``{"command", "device", "budget", "rows": [{"table": "4"|"5"|"6", "row": str, "config":
    {ModelConfig overrides}, "params_m", "mpjpe_s", "mpjpe_i", "mpjpe", "coarse_mpjpe", "minutes"}]}``.
    A row's table may be given as an int; missing numbers may be null. A malformed file is a
    ValueError that names the row and the field.

    Used in notebook 09.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ValueError(f"{path}: expected an object with a 'rows' list")
    rows = []
    for i, r in enumerate(data["rows"]):
        if not isinstance(r, dict):
            raise ValueError(f"{path}: rows[{i}] is not an object")
        t = str(r.get("table"))
        if t not in _ABLATION_TABLES:
            raise ValueError(f"{path}: rows[{i}] has table {r.get('table')!r}; expected one of {_ABLATION_TABLES}")
        if "row" not in r or not isinstance(r.get("config", {}), dict):
            raise ValueError(f"{path}: rows[{i}] needs 'row' (a name) and 'config' (an object of ModelConfig overrides)")
        row = {"table": t, "row": str(r["row"]), "config": dict(r.get("config") or {}),
               "loss": dict(r.get("loss") or {})}  # LossConfig overrides (ablate.py: MMD on/off)
        for k in _ABLATION_FIELDS:
            v = r.get(k)
            if v is not None and not isinstance(v, (int, float)):
                raise ValueError(f"{path}: rows[{i}] ({row['row']}): {k} = {v!r} is not a number")
            row[k] = None if v is None else float(v)
        rows.append(row)
    seeds = data.get("base_seed_mpjpe")
    if seeds is not None and not (isinstance(seeds, list) and all(isinstance(v, (int, float)) for v in seeds)):
        raise ValueError(f"{path}: base_seed_mpjpe = {seeds!r} is not a list of numbers")
    spread = data.get("seed_spread_mm")
    if spread is not None and not isinstance(spread, (int, float)):
        raise ValueError(f"{path}: seed_spread_mm = {spread!r} is not a number")
    return {"command": data.get("command", ""), "device": data.get("device", ""), "budget": data.get("budget", ""),
            "base_seed_mpjpe": seeds, "seed_spread_mm": spread, "rows": rows, "path": str(path)}


def _mmd_on(row: dict) -> bool:
    """Whether a run trained with the MMD loss: a config or loss key naming MMD (use_mmd / loss.use_mmd /
    mmd_weight) set off or to 0, or a row name saying "no MMD", turns it off."""
    for k, v in {**row.get("config", {}), **row.get("loss", {})}.items():  # ablate.py puts it in "loss"
        if "mmd" in k.lower() and (v is False or v == 0):
            return False
    name = row.get("row", "").lower().replace("-", " ").replace("_", " ")
    return not any(s in name for s in ("no mmd", "without mmd", "w/o mmd"))


def ablation_key(row: dict):
    """What a row varies, in the paper's terms: Table 4 (mmd, pqe, kgff); Table 5 (backbone, dim);
    Table 6 (backbone, tokens). Config fields a row does not set are None (for 5-6) or on (for 4)."""
    c = row.get("config", {})
    t = str(row["table"])
    if t == "4":
        pqe = bool(c.get("use_pqe", True)) and c.get("num_stages", 2) != 1
        return (_mmd_on(row), pqe, pqe and bool(c.get("use_kgff", True)))
    if t == "5":
        return (c.get("backbone"), c.get("dim"))
    return (c.get("backbone"), c.get("tokens", "hand"))


def _rank_match(paper: list, p: dict, ours: list, keys: list, t: str):
    """Our row standing for paper row ``p`` by rank (Tables 5-6), or None. Two backbones of ours map to
    R34 / R50 in order; a single one to R50 (the paper's main model). Table 5: our widths, sorted, map to
    128 / 256 / 512 when we ran as many; Table 6: tokens must be equal."""
    pb = sorted({q["backbone"] for q in paper}, key=_BACKBONE_ORDER.index)
    ob = sorted({k[0] for k in keys}, key=lambda b: (_BACKBONE_ORDER.index(b) if b in _BACKBONE_ORDER else 99, str(b)))
    if len(ob) == len(pb):
        mine = ob[pb.index(p["backbone"])]
    elif len(ob) == 1 and p["backbone"] == pb[-1]:
        mine = ob[0]
    else:
        return None
    cand = [(r, k) for r, k in zip(ours, keys) if k[0] == mine]
    if t == "6":
        return next((r for r, k in cand if k[1] == p["tokens"]), None)
    pd = sorted({q["dim"] for q in paper if q["backbone"] == p["backbone"]})
    od = sorted({k[1] for _, k in cand if k[1] is not None})
    if len(od) != len(pd):
        return None
    want = od[pd.index(p["dim"])]
    return next((r for r, k in cand if k[1] == want), None)


def _short_key(key, t: str) -> str:
    """Our run in the paper's preset spelling: ("resnet18", 32) -> "r18-d32", ("resnet34", "joint") -> "r34 joint"."""
    bb = str(key[0]).replace("resnet", "r") + ("-" if t == "5" else " ") if key[0] else ""
    return f"{bb}d{key[1]}" if t == "5" else f"{bb}{key[1]}"


def pair_ablation_rows(ablations: Optional[dict], table) -> list:
    """Each of the paper's rows of Table ``table`` (4, 5 or 6) with our measured row for it.

    Matching: Table 4 by the (MMD, PQE, KGFF) switches; Tables 5-6 by (backbone, width or tokens)
    when our runs used the paper's backbones and widths, otherwise by *rank* (our smaller / larger
    backbone and our narrowest ... widest token width stand in for the paper's R34 / R50 and
    128 / 256 / 512: equal-budget CPU runs cannot afford the paper's sizes). Returns
    ``[{"paper": paper row, "ours": our row or None, "match": "exact" | "rank" | None, "label"}]``.

    Used in notebook 09.
    """
    from h2t_lib import paper_tables as pt

    t = str(table)
    paper = pt.rows(t)
    ours = [r for r in (ablations or {}).get("rows", []) if r["table"] == t]
    keys = [ablation_key(r) for r in ours]
    paper_keys = [(p["mmd"], p["pqe"], p["kgff"]) if t == "4" else
                  (p["backbone"], p["dim"] if t == "5" else p["tokens"]) for p in paper]
    # exact matching only when every run of ours used the paper's own backbones and widths; a mix
    # (e.g. ResNet-18/34 standing for the paper's ResNet-34/50) is matched by rank throughout
    all_exact = t == "4" or all(k in paper_keys for k in keys)
    out = []
    for p in paper:
        if t == "4":
            want = (p["mmd"], p["pqe"], p["kgff"])
            label = p["key"]
        elif t == "5":
            want = (p["backbone"], p["dim"])
            label = p["preset"]
        else:
            want = (p["backbone"], p["tokens"])
            label = f"{p['preset'][:3]} {p['tokens']}"
        hit = [r for r, k in zip(ours, keys) if k == want][:1] if all_exact else []
        match = "exact" if hit else None
        if not all_exact:
            r = _rank_match(paper, p, ours, keys, t)
            if r is not None:
                hit, match = [r], "rank"
                label = f"{label} = ours {_short_key(ablation_key(r), t)}"  # say which run stands for it
        out.append({"paper": p, "ours": hit[0] if hit else None, "match": match, "label": label})
    return out


def trend_agreement(pairs: list, metric: str = "mpjpe", noise_mm: float = 0.0) -> list:
    """For every two rows that both the paper and we measured: does the same one win?

    Returns ``[{"a", "b", "paper_delta", "ours_delta", "agree", "within_noise"}]`` with delta =
    MPJPE(b) - MPJPE(a) in mm (negative: b is better) and agree = the deltas have the same sign (a tie,
    |delta| < 1e-9, agrees only with a tie). ``within_noise``: |ours_delta| <= ``noise_mm`` (e.g. the
    seed-to-seed spread stored in ``docs/ablations.json``), an ordering our runs cannot tell.

    Used in notebook 09.
    """
    done = [p for p in pairs if p["ours"] is not None and p["ours"].get(metric) is not None]
    out = []
    for i in range(len(done)):
        for j in range(i + 1, len(done)):
            a, b = done[i], done[j]
            pd = b["paper"]["mpjpe"] - a["paper"]["mpjpe"]
            od = b["ours"][metric] - a["ours"][metric]
            sign = lambda x: 0 if abs(x) < 1e-9 else (1 if x > 0 else -1)  # noqa: E731
            out.append({"a": a["label"], "b": b["label"], "paper_delta": pd, "ours_delta": od,
                        "agree": sign(pd) == sign(od), "within_noise": abs(od) <= noise_mm})
    return out


def agreement_lines(table, pairs: list, agreement: list) -> list:
    """Sentences, computed from the numbers, on where our trend agrees with the paper's (one per pair).

    Used in notebook 09.
    """
    t = str(table)
    n_ours = sum(p["ours"] is not None for p in pairs)
    if n_ours == 0:
        return [f"Table {t}: none of the paper's rows measured yet ({ABLATE_HINT})."]
    noisy = [a for a in agreement if a.get("within_noise")]
    clear = [a for a in agreement if not a.get("within_noise")]
    lines = [f"Table {t}: {n_ours} of {len(pairs)} rows measured"
             + (" (matched by rank, not by the paper's sizes)" if any(p["match"] == "rank" for p in pairs) else "")
             + (f"; {sum(a['agree'] for a in clear)} of {len(clear)} pairwise orderings agree with the paper"
                + (f", {len(noisy)} more within our seed spread (no ordering)" if noisy else "") + "."
                if agreement else "; too few rows to compare an ordering.")]
    for a in agreement:
        verdict = "within seed spread" if a.get("within_noise") else ("agree" if a["agree"] else "DISAGREE")
        lines.append(f"  {a['a']} -> {a['b']}: paper {a['paper_delta']:+.2f} mm, ours {a['ours_delta']:+.2f} mm: "
                     + verdict)
    return lines


def seed_spread_mm(ablations: Optional[dict]) -> float:
    """The seed-to-seed spread (mm) of the base configuration stored by ``ablate --extra-seeds``:
    half the range (max - min) / 2 of its MPJPE over seeds, as :func:`h2t_lib.engine.ablate.seed_spread`
    writes it; computed from ``base_seed_mpjpe`` when the file has no ``seed_spread_mm``; 0.0 without seeds.

    Used in notebook 09.
    """
    v = (ablations or {}).get("seed_spread_mm")
    if v is None:
        seeds = (ablations or {}).get("base_seed_mpjpe") or []
        v = (max(seeds) - min(seeds)) / 2 if len(seeds) > 1 else 0.0
    return float(v)


def ablation_figure(pairs: list, table, metric: str = "mpjpe"):
    """Three panels for one table: the paper's MPJPE, ours (own scale: other data, other budget), and both
    relative to the paper's proposed row (Table 4: full model; 5: R50-d256; 6: R50 hand tokens), in %.

    Used in notebook 09.
    """
    from matplotlib.figure import Figure

    from h2t_lib import paper_tables as pt

    t = str(table)
    labels = [p["label"] for p in pairs]
    x = np.arange(len(pairs))
    paper_v = np.array([p["paper"]["mpjpe"] for p in pairs])
    ours_v = np.array([np.nan if p["ours"] is None or p["ours"].get(metric) is None else p["ours"][metric]
                       for p in pairs])
    ref = {"4": 4, "5": 4, "6": 1}[t]  # index of the proposed configuration in the table
    fig = Figure(figsize=(11, 3.2), dpi=80)
    axes = fig.subplots(1, 3)
    axes[0].bar(x, paper_v, color="tab:green")
    axes[0].set_title("paper (InterHand2.6M, GPU)", fontsize=9)
    axes[1].bar(x, np.nan_to_num(ours_v), color="tab:purple")
    if np.isnan(ours_v).all():
        axes[1].text(0.5, 0.5, ABLATE_HINT.replace(": ", ":\n"), ha="center", va="center", fontsize=8,
                     transform=axes[1].transAxes)
        axes[1].set_yticks([])
    else:
        for i in np.flatnonzero(np.isnan(ours_v)):
            axes[1].text(i, 0, " not measured", ha="center", va="bottom", fontsize=7, rotation=90)  # side by side
    axes[1].set_title("ours (synthetic, equal CPU budget)", fontsize=9)
    rel_p = 100 * (paper_v / paper_v[ref] - 1)
    rel_o = 100 * (ours_v / ours_v[ref] - 1) if not np.isnan(ours_v[ref]) else np.full_like(ours_v, np.nan)
    axes[2].bar(x - 0.2, rel_p, 0.4, color="tab:green", label="paper")
    axes[2].bar(x + 0.2, np.nan_to_num(rel_o), 0.4, color="tab:purple", label="ours")
    axes[2].axhline(0, color="k", lw=0.8)
    axes[2].set_title(f"% vs '{labels[ref]}' (> 0: worse)", fontsize=9)
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.set_xticks(x, labels, fontsize=7, rotation=30, ha="right")
    axes[0].set_ylabel(f"{metric.replace('mpjpe', 'MPJPE')} (mm)", fontsize=8)
    fig.suptitle(pt.TITLES[t], fontsize=10)
    fig.tight_layout()
    return fig
