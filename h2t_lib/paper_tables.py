"""The published numbers of the Handformer2T paper (Sec. 4), as plain Python data.

Every row says which table (and which row of it, counted from 1 below the header) it was
copied from, so a reader can check it against /work/shared/paper/handformer2t.md. ``None``
stands for a cell the paper leaves empty ("-"). Units: MPJPE (the paper writes "MJPJE") and
EPE in mm, model sizes in millions of parameters (measured by the paper with *thop*), FPS and
throughput on one NVIDIA RTX 3090 Ti (24 GB), batch 1 for FPS.

    from h2t_lib import paper_tables as pt
    pt.TABLE5[4]            # {'table': '5', 'row': 5, 'backbone': 'resnet50', 'dim': 256, ...}
    pt.rows("6")            # the rows of Table 6
    pt.paper_size_m("r50-d256", "joint")   # 99.4

Used by notebook 09 (the paper's tables beside our measurements, :mod:`h2t_lib.course.results_views`).
"""
from __future__ import annotations

#: where the numbers come from
SOURCE = "Zhang & Kong, Handformer2T, Sec. 4 (Tables 1-6); /work/shared/paper/handformer2t.md"

#: Table 1: comparison with the state of the art on InterHand2.6M (MPJPE-S / -I in mm, FPS, size in M).
#: The paper cites reference [47] for both Fan et al. and Zhang et al.; copied as printed.
TABLE1 = [
    {"table": "1", "row": 1, "method": "Moon et al. [27] (InterNet)", "mpjpe_s": 12.16, "mpjpe_i": 16.02, "fps": 107.08, "size_m": 47.0},
    {"table": "1", "row": 2, "method": "Fan et al. [47]", "mpjpe_s": 11.32, "mpjpe_i": 15.57, "fps": None, "size_m": None},
    {"table": "1", "row": 3, "method": "Hampali et al. [6]", "mpjpe_s": 10.99, "mpjpe_i": 14.34, "fps": 19.66, "size_m": 48.0},
    {"table": "1", "row": 4, "method": "Zhang et al. [47]", "mpjpe_s": None, "mpjpe_i": 13.48, "fps": 17.02, "size_m": 143.0},
    {"table": "1", "row": 5, "method": "Meng et al. [26]", "mpjpe_s": 8.51, "mpjpe_i": 13.12, "fps": 15.47, "size_m": 55.0},
    {"table": "1", "row": 6, "method": "Li et al. [21]", "mpjpe_s": None, "mpjpe_i": 12.40, "fps": 18.05, "size_m": 39.0},
    {"table": "1", "row": 7, "method": "Jiang et al. [9] (A2J-Transformer)", "mpjpe_s": 8.10, "mpjpe_i": 10.96, "fps": 25.65, "size_m": 42.0},
    {"table": "1", "row": 8, "method": "Handformer2T (ours in the paper, R50-d256)", "mpjpe_s": 8.28, "mpjpe_i": 10.72, "fps": 66.34, "size_m": 36.0},
]

#: Table 2: throughput = max batch / time per batch (images/s), on the 24 GB GPU.
TABLE2 = [
    {"table": "2", "row": 1, "method": "Moon et al. [27] (InterNet)", "fps": 107.08, "max_batch": 48, "throughput": 137.0},
    {"table": "2", "row": 2, "method": "Handformer2T R50 (paper)", "fps": 66.34, "max_batch": 128, "throughput": 298.0},
]

#: Table 3: RHP (= RHD) end point error in mm; gt_scale / gt_handedness: ground truth used at test time.
TABLE3 = [
    {"table": "3", "row": 1, "method": "Zimmermann et al. [49]", "gt_scale": True, "gt_handedness": True, "epe": 30.42},
    {"table": "3", "row": 2, "method": "Chen et al. [2]", "gt_scale": True, "gt_handedness": True, "epe": 24.20},
    {"table": "3", "row": 3, "method": "Moon et al. [27] (InterNet)", "gt_scale": False, "gt_handedness": False, "epe": 20.89},
    {"table": "3", "row": 4, "method": "Yang et al. [46]", "gt_scale": True, "gt_handedness": True, "epe": 19.95},
    {"table": "3", "row": 5, "method": "Spurr et al. [35]", "gt_scale": True, "gt_handedness": True, "epe": 19.73},
    {"table": "3", "row": 6, "method": "A2J-Transformer [9]", "gt_scale": False, "gt_handedness": False, "epe": 17.75},
    {"table": "3", "row": 7, "method": "Handformer2T (paper)", "gt_scale": False, "gt_handedness": False, "epe": 17.20},
]

#: Table 4: component ablation on InterHand2.6M (R50-d256), MPJPE over all test images in mm.
#: ``key``: our short name of the row; ``config`` / ``loss``: the ModelConfig / LossConfig switches
#: that reproduce it in h2t (``use_pqe=False`` drops KGFF too, as the paper says).
TABLE4 = [
    {"table": "4", "row": 1, "key": "coarse only, no MMD", "mmd": False, "pqe": False, "kgff": False, "mpjpe": 12.49,
     "config": {"use_pqe": False}, "loss": {"use_mmd": False}},
    {"table": "4", "row": 2, "key": "coarse only", "mmd": True, "pqe": False, "kgff": False, "mpjpe": 12.32,
     "config": {"use_pqe": False}, "loss": {}},
    {"table": "4", "row": 3, "key": "PQE without KGFF", "mmd": True, "pqe": True, "kgff": False, "mpjpe": 16.23,
     "config": {"use_kgff": False}, "loss": {}},
    {"table": "4", "row": 4, "key": "no MMD", "mmd": False, "pqe": True, "kgff": True, "mpjpe": 11.20,
     "config": {}, "loss": {"use_mmd": False}},
    {"table": "4", "row": 5, "key": "full model", "mmd": True, "pqe": True, "kgff": True, "mpjpe": 10.72,
     "config": {}, "loss": {}},
]

#: Table 5: backbone x token width c_e (hand tokens); ``preset`` = our ModelConfig preset of that cell.
TABLE5 = [
    {"table": "5", "row": 1, "preset": "r34-d128", "backbone": "resnet34", "dim": 128, "size_m": 24.9, "mpjpe": 11.47},
    {"table": "5", "row": 2, "preset": "r34-d256", "backbone": "resnet34", "dim": 256, "size_m": 31.7, "mpjpe": 11.10},
    {"table": "5", "row": 3, "preset": "r34-d512", "backbone": "resnet34", "dim": 512, "size_m": 46.9, "mpjpe": 11.02},
    {"table": "5", "row": 4, "preset": "r50-d128", "backbone": "resnet50", "dim": 128, "size_m": 29.1, "mpjpe": 11.14},
    {"table": "5", "row": 5, "preset": "r50-d256", "backbone": "resnet50", "dim": 256, "size_m": 35.9, "mpjpe": 10.72},
    {"table": "5", "row": 6, "preset": "r50-d512", "backbone": "resnet50", "dim": 512, "size_m": 51.1, "mpjpe": 10.76},
]

#: Table 6: hand-level vs joint-level tokens at c_e = 256, trained on "a small subset" of InterHand2.6M
#: (hence the larger errors than in Table 5).
TABLE6 = [
    {"table": "6", "row": 1, "preset": "r34-d256", "tokens": "hand", "backbone": "resnet34", "size_m": 31.7, "mpjpe": 15.19},
    {"table": "6", "row": 2, "preset": "r50-d256", "tokens": "hand", "backbone": "resnet50", "size_m": 35.9, "mpjpe": 14.28},
    {"table": "6", "row": 3, "preset": "r34-d256", "tokens": "joint", "backbone": "resnet34", "size_m": 95.1, "mpjpe": 16.77},
    {"table": "6", "row": 4, "preset": "r50-d256", "tokens": "joint", "backbone": "resnet50", "size_m": 99.4, "mpjpe": 16.05},
]

TABLES = {"1": TABLE1, "2": TABLE2, "3": TABLE3, "4": TABLE4, "5": TABLE5, "6": TABLE6}

#: what each table is about, for figure titles
TITLES = {
    "1": "Table 1: state of the art on InterHand2.6M",
    "2": "Table 2: throughput vs InterNet",
    "3": "Table 3: RHP end point error",
    "4": "Table 4: component ablation (MMD, PQE, KGFF)",
    "5": "Table 5: backbone x token width",
    "6": "Table 6: hand-level vs joint-level tokens",
}


def rows(table) -> list:
    """The rows of a table ("1".."6" or an int), as copies (so callers may annotate them).

    Used in notebook 09.
    """
    key = str(table)
    if key not in TABLES:
        raise ValueError(f"the paper has Tables 1-6; got {table!r}")
    return [dict(r) for r in TABLES[key]]


def paper_size_m(preset: str, tokens: str = "hand"):
    """The paper's model size (M) of one of our presets (Tables 5-6), or None when the paper has no such cell."""
    for r in TABLE5 if tokens == "hand" else []:
        if r["preset"] == preset:
            return r["size_m"]
    for r in TABLE6:
        if r["preset"] == preset and r["tokens"] == tokens:
            return r["size_m"]
    return None
