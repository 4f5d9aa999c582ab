"""Views of the model's insides for notebooks 02-04: feature maps, tokens, attention, uncertainty.

Every function returns data (numpy / dicts) or a figure (matplotlib ``Figure``), so the tests call
it directly and the notebooks only print, show, or wire it to ``ipywidgets``:

* feature extractor (Sec. 3.1, Eq. 2-5, notebook 02): :func:`feature_maps_figure`,
  :func:`feature_parts`, :func:`sampling_mask`, :func:`sampling_mask_figure`,
  :func:`feature_vector_figure`
* tokenization (Sec. 3.2, Eq. 6, Table 6, notebook 03): :func:`param_breakdown`,
  :func:`param_breakdown_figure`, :func:`paper_size_rows`, :func:`mhsa_flops`,
  :func:`measure_mhsa_flops`, :func:`time_mhsa`, :func:`attention_cost_figure`
* coarse predictor (Sec. 3.3, Eq. 7-12, notebook 04): :func:`stack_samples`,
  :func:`coarse_attention`, :func:`cross_hand_attention`, :func:`attention_heatmaps_figure`,
  :func:`cross_hand_attention_figure`, :func:`uncertainty_vs_error`, :func:`uncertainty_error_figure`
"""
from __future__ import annotations

import numpy as np

from h2t_lib import skeleton as sk

__all__ = [
    "feature_maps_figure", "feature_parts", "sampling_mask", "sampling_mask_figure", "feature_vector_figure",
    "param_breakdown", "param_breakdown_figure", "paper_size_rows", "mhsa_flops", "measure_mhsa_flops",
    "time_mhsa", "attention_cost_figure",
    "stack_samples", "coarse_attention", "cross_hand_attention", "attention_heatmaps_figure",
    "cross_hand_attention_figure", "uncertainty_vs_error", "uncertainty_error_figure",
]

#: colours of the three parts of f_i (Eq. 2, 3, 4)
PART_COLORS = ("#4c72b0", "#dd8452", "#55a868")
PART_NAMES = ("f_i,1 pooled (Eq. 2)", "f_i,2 whole channels (Eq. 3)", "f_i,3 random elements (Eq. 4)")


def _np(x) -> np.ndarray:
    return x.detach().cpu().float().numpy() if hasattr(x, "detach") else np.asarray(x)


def _figure(w: float, h: float, dpi: int = 80):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=dpi)


# ====================================================================== notebook 02: Eq. 2-5
def feature_maps_figure(maps, channels=4, level_names=None, cell: float = 1.3):
    """A grid of feature maps: one row per backbone level, one column per shown channel.

    maps: a list (or dict name -> map) of (c, h, w) tensors/arrays (one image, no batch axis);
    channels: an int (show the first n channels of every level) or one list of channel indices
    per level (e.g. the channels f_i,2 keeps). Each panel is scaled to its own min..max.

    Used in notebook 02.
    """
    if isinstance(maps, dict):
        level_names = list(maps) if level_names is None else level_names
        maps = list(maps.values())
    maps = [_np(m) for m in maps]
    if any(m.ndim != 3 for m in maps):
        raise ValueError("feature_maps_figure expects one (c, h, w) map per level (take [0] of a batch)")
    if isinstance(channels, int):
        channels = [list(range(min(channels, m.shape[0]))) for m in maps]
    channels = [list(map(int, c)) for c in channels]
    level_names = level_names or [f"level {i + 1}" for i in range(len(maps))]
    ncols = max(len(c) for c in channels)
    fig = _figure(cell * ncols + 0.6, cell * len(maps) + 0.2)
    for r, (m, chans) in enumerate(zip(maps, channels)):
        for k, ch in enumerate(chans):
            ax = fig.add_subplot(len(maps), ncols, r * ncols + k + 1)
            ax.imshow(m[ch], cmap="viridis", interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"ch {ch}", fontsize=7, pad=2)
            if k == 0:
                ax.set_ylabel(f"{level_names[r]}\n{m.shape[0]}x{m.shape[1]}x{m.shape[2]}", fontsize=7)
    fig.tight_layout(pad=0.3)
    return fig


def feature_parts(sampler) -> dict:
    """Lengths of the three parts of f_i for a :class:`~h2t_lib.model.feature_extractor.LevelFeature`.

    Returns {"c": c_i, "hw": h_i w_i, "c_tilde": c~_i, "n1": c_i, "n2": h_i w_i c~_i,
    "n3": c_i* - c_i - h_i w_i c~_i, "total": c_i*}.

    Used in notebook 02.
    """
    c, hw = int(sampler.channels), int(sampler.size) ** 2
    ct = int(sampler.chan_idx.numel())
    n3 = int(sampler.extra_idx.numel())
    return {"c": c, "hw": hw, "c_tilde": ct, "n1": c, "n2": hw * ct, "n3": n3, "total": c + hw * ct + n3}


def sampling_mask(sampler) -> np.ndarray:
    """(c_i, h_i w_i) int array: 2 where an element of F_i goes into f_i,2 (a whole kept channel),
    3 where it is one of the random elements of f_i,3, 0 where it is only seen through the pooling."""
    c, hw = int(sampler.channels), int(sampler.size) ** 2
    mask = np.zeros(c * hw, dtype=np.int64)
    mask[_np(sampler.extra_idx).astype(np.int64)] = 3
    mask = mask.reshape(c, hw)
    mask[_np(sampler.chan_idx).astype(np.int64)] = 2
    return mask


def sampling_mask_figure(sampler, title: str | None = None):
    """Which elements of F_i the vector f_i reads: channels as rows, the h_i w_i positions as columns.

    Used in notebook 02.
    """
    from matplotlib.colors import ListedColormap

    mask = sampling_mask(sampler)
    fig = _figure(4.2, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    cmap = ListedColormap(["#eeeeee", "#eeeeee", PART_COLORS[1], PART_COLORS[2]])
    ax.imshow(mask, cmap=cmap, vmin=0, vmax=3, aspect="auto", interpolation="nearest")
    ax.set_xlabel("spatial position (row-major, h_i w_i)")
    ax.set_ylabel("channel")
    p = feature_parts(sampler)
    ax.set_title(title or f"c~={p['c_tilde']} whole channels (orange), {p['n3']} random elements (green)",
                 fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


def feature_vector_figure(f, parts: dict, title: str | None = None):
    """The vector f_i (Eq. 5) as a line, its three parts (Eq. 2-4) shaded in their colours.

    Used in notebook 02.
    """
    f = _np(f).reshape(-1)
    if f.size != parts["total"]:
        raise ValueError(f"f has {f.size} elements, the parts add up to {parts['total']}")
    fig = _figure(7.0, 2.2)
    ax = fig.add_subplot(1, 1, 1)
    start = 0
    for n, col, name in zip((parts["n1"], parts["n2"], parts["n3"]), PART_COLORS, PART_NAMES):
        ax.axvspan(start - 0.5, start + n - 0.5, color=col, alpha=0.2, label=f"{name}: {n}")
        ax.plot(np.arange(start, start + n), f[start:start + n], color=col, linewidth=0.6)
        start += n
    ax.set_xlim(-0.5, f.size - 0.5)
    ax.set_xlabel("index in f_i")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(title or f"f_i, length c_i* = {f.size}", fontsize=9)
    fig.tight_layout(pad=0.3)
    return fig


# ====================================================================== notebook 03: Eq. 6, Table 6
def param_breakdown(presets=("r50-d256",), tokens=("hand", "joint")) -> dict:
    """{"<preset> <tokens>": count_parameters(...)} for each preset and token level (meta device, instant).

    Used in notebook 03.
    """
    from h2t_lib.model.params import preset_counts

    return {f"{p} {t}": preset_counts(p, t) for p in presets for t in tokens}


def param_breakdown_figure(breakdown: dict, title: str = "parameters per component"):
    """Grouped horizontal bars, millions of parameters per component, one colour per model.

    Used in notebook 03.
    """
    names = list(breakdown)
    comps = list(next(iter(breakdown.values()))["components"])
    fig = _figure(6.5, 0.35 * len(comps) * max(1, len(names) / 2) + 1.0)
    ax = fig.add_subplot(1, 1, 1)
    height = 0.8 / len(names)
    y = np.arange(len(comps))
    for k, name in enumerate(names):
        vals = np.array([breakdown[name]["components"].get(c, 0) for c in comps]) / 1e6
        bars = ax.barh(y + (k - (len(names) - 1) / 2) * height, vals, height=height,
                       label=f"{name} ({breakdown[name]['total'] / 1e6:.1f} M)")
        ax.bar_label(bars, labels=[f"{v:.2f}" if v > 0 else "" for v in vals], fontsize=6, padding=2)
    ax.set_yticks(y, comps, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("parameters (M)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout(pad=0.3)
    return fig


def paper_size_rows() -> list:
    """Our parameter counts beside the paper's Tables 5 and 6: a list of dicts
    {"preset", "tokens", "table", "ours_m", "paper_m", "diff_pct"} (models built on the meta device).

    Used in notebook 03.
    """
    from h2t_lib.model.config import PAPER_SIZES_M
    from h2t_lib.model.params import preset_counts

    rows = []
    for (preset, tokens), paper in PAPER_SIZES_M.items():
        ours = preset_counts(preset, tokens)["total"] / 1e6
        rows.append({"preset": preset, "tokens": tokens, "table": 5 if tokens == "hand" else 6,
                     "ours_m": ours, "paper_m": paper, "diff_pct": 100.0 * (ours - paper) / paper})
    return rows


def mhsa_flops(num_tokens: int, dim: int, ffn_dim: int, batch: int = 1) -> dict:
    """FLOPs of one pre-norm MHSA layer (Eq. 9-11 + FFN) on T tokens, a multiply-add counted as 2.

    {"qkv_out_proj": 2 T (4 d^2), "attention": 2 T^2 d (Q K^T) + 2 T^2 d (A V), "ffn": 2 T (2 d f),
    "total": their sum}, times ``batch``. Norms, softmax and biases are left out (O(T d)).
    Only "attention" grows with T^2; the rest grows with T.

    Used in notebook 03.
    """
    T, d, f = int(num_tokens), int(dim), int(ffn_dim)
    out = {
        "qkv_out_proj": 2 * T * 4 * d * d,
        "attention": 2 * T * T * d * 2,
        "ffn": 2 * T * 2 * d * f,
    }
    out = {k: v * batch for k, v in out.items()}
    out["total"] = sum(out.values())
    return out


def _mhsa_layer(dim: int, num_heads: int, ffn_dim: int):
    import torch

    from h2t_lib.model.coarse import SelfAttentionLayer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SelfAttentionLayer(dim, num_heads, ffn_dim).eval()


def measure_mhsa_flops(num_tokens: int, dim: int, num_heads: int, ffn_dim: int, batch: int = 1) -> int:
    """FLOPs of one :class:`~h2t_lib.model.coarse.SelfAttentionLayer` counted by PyTorch's
    ``FlopCounterMode`` (matrix products only). The layer runs in training mode (dropout is 0, so the
    maths is the same) with ``need_weights=True``: then PyTorch takes the explicit path whose
    attention products are ``bmm`` calls the counter sees; the fused eval-mode kernel it would skip.

    Used in notebook 03.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    layer = _mhsa_layer(dim, num_heads, ffn_dim).train()
    x = torch.randn(batch, num_tokens, dim, generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        layer(x, need_weights=True)
    return int(counter.get_total_flops())


def time_mhsa(num_tokens: int, dim: int, num_heads: int, ffn_dim: int, batch: int = 32,
              min_run_time: float = 0.2, num_threads: int = 1) -> float:
    """Median seconds of one forward of one MHSA layer on (batch, T, d), by ``torch.utils.benchmark``,
    on ``num_threads`` threads (one by default: on a shared machine a busy core stalls every
    multi-threaded run, and the curve against T is lost in that noise).

    Used in notebook 03.
    """
    import logging

    import torch

    cpp_log = logging.getLogger("torch.utils.cpp_extension")  # silence its "no CUDA runtime" note on import
    level = cpp_log.level
    cpp_log.setLevel(logging.ERROR)
    try:
        from torch.utils import benchmark
    finally:
        cpp_log.setLevel(level)

    layer = _mhsa_layer(dim, num_heads, ffn_dim)
    x = torch.randn(batch, num_tokens, dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        timer = benchmark.Timer(stmt="layer(x)", globals={"layer": layer, "x": x}, num_threads=num_threads)
        return float(timer.blocked_autorange(min_run_time=min_run_time).median)


def attention_cost_figure(token_counts, flops: dict, seconds=None, mark=(2, 42)):
    """FLOPs (stacked: projections, attention, FFN) and, when given, measured time against T.

    token_counts: (K,) T values; flops: {part: (K,) values} as :func:`mhsa_flops` parts; seconds: (K,)
    or None. The token counts in ``mark`` (hand-level 2, joint-level 42) are labelled.

    Used in notebook 03.
    """
    T = np.asarray(token_counts)
    fig = _figure(8.0 if seconds is not None else 4.5, 3.0)
    ax = fig.add_subplot(1, 2 if seconds is not None else 1, 1)
    bottom = np.zeros(len(T))
    for part in ("qkv_out_proj", "ffn", "attention"):
        vals = np.asarray(flops[part], dtype=float) / 1e6
        ax.fill_between(T, bottom, bottom + vals, step=None, alpha=0.6, label=part)
        bottom = bottom + vals
    ax.set_xlabel("tokens T")
    ax.set_ylabel("MFLOPs per sample")
    ax.set_title("one MHSA layer: FLOPs", fontsize=9)
    for t in mark:
        if t in T:
            v = bottom[list(T).index(t)]
            ax.annotate(f"T={t}: {v:.1f}", (t, v), fontsize=7, xytext=(3, 5), textcoords="offset points")
            ax.plot([t], [v], "ko", markersize=3)
    ax.legend(fontsize=7)
    if seconds is not None:
        ax2 = fig.add_subplot(1, 2, 2)
        ms = np.asarray(seconds, dtype=float) * 1e3
        ax2.plot(T, ms, "o-", markersize=3)
        for t in mark:
            if t in T:
                v = ms[list(T).index(t)]
                ax2.annotate(f"T={t}: {v:.2f} ms", (t, v), fontsize=7, xytext=(3, 5), textcoords="offset points")
        ax2.set_xlabel("tokens T")
        ax2.set_ylabel("ms per batch")
        ax2.set_title("one MHSA layer: measured time (CPU)", fontsize=9)
    fig.tight_layout(pad=0.3)
    return fig


# ====================================================================== notebook 04: Eq. 7-12
def stack_samples(samples) -> dict:
    """A list of sample dicts -> one batch dict (tensors stacked, strings kept as a list).

    Used in notebooks 02 and 04.
    """
    from torch.utils.data import default_collate

    return default_collate(list(samples))


def coarse_attention(model, samples) -> np.ndarray:
    """The coarse predictor's attention weights (Eq. 9-11) of the samples: (n, L, H, T, T).

    Row t of a (T, T) map is how token t (0 = right hand, 1 = left hand) distributes its attention
    over the tokens; rows sum to 1. Uses ``model.get_attention_maps`` with the GT wrists.

    Used in notebook 04.
    """
    import torch

    from h2t_lib.model.batch import gt_roots

    batch = stack_samples(samples)
    maps = model.get_attention_maps(batch["image"], batch["focal"], batch["princpt"], root_cam=gt_roots(batch))
    return torch.stack(maps["coarse"], dim=1).float().cpu().numpy()  # (n, L, H, T, T)


def cross_hand_attention(maps) -> np.ndarray:
    """(n, L): the attention a hand token pays to the OTHER hand's token, averaged over heads and the
    two hands (hand-level maps (n, L, H, 2, 2)); 0 = each hand attends only to itself.

    Used in notebook 04.
    """
    maps = np.asarray(maps)
    if maps.shape[-2:] != (2, 2):
        raise ValueError(f"cross_hand_attention needs hand-level maps (..., 2, 2), got {maps.shape}")
    return 0.5 * (maps[..., 0, 1] + maps[..., 1, 0]).mean(axis=2)


def attention_heatmaps_figure(maps, row_titles=None, token_names=("right", "left"), per_head: bool = False,
                              cell: float = 1.5):
    """Heatmaps of attention maps (n, L, H, T, T): one row per sample, one column per layer
    (``per_head``: one column per layer and head), head-averaged otherwise; values written in the cells.

    Used in notebook 04.
    """
    maps = np.asarray(maps)
    n, L, H, T, _ = maps.shape
    cols = [(l, h) for l in range(L) for h in (range(H) if per_head else [None])]
    fig = _figure(cell * len(cols) + 0.8, cell * n + 0.3)
    for r in range(n):
        for k, (l, h) in enumerate(cols):
            a = maps[r, l].mean(axis=0) if h is None else maps[r, l, h]
            ax = fig.add_subplot(n, len(cols), r * len(cols) + k + 1)
            ax.imshow(a, cmap="magma", vmin=0.0, vmax=1.0)
            if T <= 4:
                for i in range(T):
                    for j in range(T):
                        ax.text(j, i, f"{a[i, j]:.2f}", ha="center", va="center", fontsize=7,
                                color="white" if a[i, j] < 0.6 else "black")
            names = token_names if T == len(token_names) else [str(t) for t in range(T)]
            if T <= 4:
                ax.set_xticks(range(T), names, fontsize=6)
                ax.set_yticks(range(T), names, fontsize=6)
            else:
                ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(f"layer {l + 1}" + ("" if h is None else f" head {h + 1}"), fontsize=7)
            if k == 0 and row_titles is not None:
                ax.set_ylabel(row_titles[r], fontsize=7)
    fig.tight_layout(pad=0.3)
    return fig


def cross_hand_attention_figure(values, hand_types):
    """Box plots of :func:`cross_hand_attention` values (n, L) per layer, single vs interacting samples.

    Used in notebook 04.
    """
    values = np.asarray(values)
    ht = np.asarray(hand_types)
    groups = {"single": (ht == "right") | (ht == "left"), "interacting": ht == "interacting"}
    L = values.shape[1]
    fig = _figure(1.6 * L + 2.0, 2.8)
    ax = fig.add_subplot(1, 1, 1)
    for g, (name, m) in enumerate(groups.items()):
        pos = np.arange(L) * 3 + g
        data = [values[m, l] for l in range(L)]
        if m.any():
            ax.boxplot(data, positions=pos, widths=0.8, patch_artist=True,
                       boxprops=dict(facecolor=PART_COLORS[g], alpha=0.5), medianprops=dict(color="black"))
        ax.plot([], [], "s", color=PART_COLORS[g], alpha=0.5, label=f"{name} ({int(m.sum())})")
    ax.set_xticks(np.arange(L) * 3 + 0.5, [f"layer {l + 1}" for l in range(L)])
    ax.set_ylabel("attention to the other hand")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout(pad=0.3)
    return fig


def uncertainty_vs_error(pred: dict, stage: int = 0) -> dict:
    """Predicted sigma against the actual root-relative error, per (sample, joint), for one stage.

    pred: the output of :func:`h2t_lib.engine.evaluate.predict_dataset`. Wrists are left out (their
    root-aligned error is 0 by construction), and so are invalid joints.
    Returns {"sigma", "error", "joint" (K,) flat over valid (sample, joint) pairs; "joint_sigma",
    "joint_error" (42,) means per joint (NaN for wrists); "spearman": rank correlation of the pairs}.

    Used in notebook 04.
    """
    from h2t_lib.metrics import joint_errors

    err, valid = joint_errors(pred["p"][stage], pred["joints_cam"], pred["joint_valid"])  # (M, 42)
    valid = valid.copy()
    valid[:, sk.ROOTS] = False
    sigma = np.asarray(pred["sigma"][stage])  # (M, 42) mm
    m, j = np.nonzero(valid)
    s, e = sigma[m, j], err[m, j]
    count = valid.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        js = np.where(count > 0, np.where(valid, sigma, 0).sum(0) / np.maximum(count, 1), np.nan)
        je = np.where(count > 0, np.where(valid, np.nan_to_num(err), 0).sum(0) / np.maximum(count, 1), np.nan)
    return {"sigma": s, "error": e, "joint": j, "joint_sigma": js, "joint_error": je,
            "spearman": _spearman(s, e)}


def _spearman(a, b) -> float:
    """Spearman rank correlation (ties broken by order; enough for continuous values)."""
    if len(a) < 2:
        return float("nan")
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def uncertainty_error_figure(data: dict, title: str | None = None):
    """Left: every (sample, joint) as a point, predicted sigma vs actual error. Right: the same per
    joint (means over the samples), coloured by hand. Data from :func:`uncertainty_vs_error`.

    Used in notebook 04.
    """
    fig = _figure(8.0, 3.2)
    ax = fig.add_subplot(1, 2, 1)
    ax.scatter(data["sigma"], data["error"], s=3, alpha=0.25, color="gray", linewidths=0)
    ax.set_xlabel("predicted sigma (mm)")
    ax.set_ylabel("actual error (mm)")
    ax.set_title(title or f"every joint of every sample (Spearman {data['spearman']:.2f})", fontsize=8)
    ax2 = fig.add_subplot(1, 2, 2)
    for hand, col in zip(sk.HANDS, ("#d62728", "#1f77b4")):
        sl = sk.HAND_SLICE[hand]
        ax2.scatter(data["joint_sigma"][sl], data["joint_error"][sl], s=14, color=col, label=f"{hand} hand")
    js, je = data["joint_sigma"], data["joint_error"]
    ok = np.isfinite(js) & np.isfinite(je)
    if ok.any():
        hi = float(max(js[ok].max(), 1e-9))
        k = float(je[ok].sum() / max(js[ok].sum(), 1e-9))  # least-squares-free scale: mean ratio
        ax2.plot([0, hi], [0, k * hi], "k--", linewidth=0.8, label=f"error = {k:.2f} sigma")
    ax2.set_xlabel("mean predicted sigma (mm)")
    ax2.set_ylabel("mean actual error (mm)")
    ax2.set_title("per joint (40 joints: the 2 wrists, 0 by construction, left out)", fontsize=8)
    ax2.legend(fontsize=7)
    fig.tight_layout(pad=0.3)
    return fig
