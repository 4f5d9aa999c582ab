"""The whole model at a glance (the paper's Fig. 2), with the tensor shapes of a given model.

:func:`model_shapes` runs the model once on a blank batch and records, with forward hooks, the
shape of every tensor the figure names; nothing is typed in, so the figure follows the config
(a preset, a checkpoint's model). :func:`model_figure` draws it: image -> backbone levels ->
feature vectors f_i (Eq. 2-5) -> two hand tokens (Eq. 6) -> coarse predictor (Eq. 7-12) ->
one KGFF + PQE box per refinement stage (Eq. 13-17), each stage's p and u underneath.
"""
from __future__ import annotations


def model_shapes(model, batch: int = 1) -> dict:
    """Run ``model`` on a zero image of its input size and return the shapes (batch dim included):

    {"image", "levels": {level: {"F", "f"}}, "coarse": {"level", "E", "p", "u"},
     "stages": [{"level", "E", "f_kpt", "E_out", "p", "u"}, ...] (one per refinement stage),
     "root"}.

    Used in notebook 00.
    """
    import torch

    cfg = model.cfg
    S = cfg.image_size
    rec: dict = {}
    hooks = []

    def keep(name):
        def hook(_mod, _inp, out):
            rec[name] = out
        return hook

    hooks.append(model.extractor.register_forward_hook(keep("extractor")))
    for s, stage in enumerate(model.stages):
        hooks.append(stage.tokenizer.register_forward_hook(keep(f"E{s}")))
        if s > 0:
            if getattr(stage, "kgff", None) is not None:
                hooks.append(stage.kgff.register_forward_hook(keep(f"kgff{s}")))
            hooks.append(stage.pqe.register_forward_hook(keep(f"pqe{s}")))
    image = torch.zeros(batch, 3, S, S)
    focal = torch.full((batch, 2), float(S))
    princpt = torch.full((batch, 2), S / 2.0)
    root = torch.tensor([[[-60.0, 0.0, 500.0], [60.0, 0.0, 500.0]]]).expand(batch, 2, 3)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(image, focal, princpt, root_cam=root)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    shape = lambda t: tuple(t.shape)  # noqa: E731
    levels = {lvl: {"F": shape(F), "f": shape(f)} for lvl, (F, f, _p) in rec["extractor"].items()}
    res = {
        "image": (batch, 3, S, S),
        "levels": levels,
        "coarse": {"level": cfg.stage_level(0), "E": shape(rec["E0"]), "p": shape(out["p"][0]), "u": shape(out["u"][0])},
        "stages": [],
        "root": shape(out["root"]),
    }
    for s in range(1, len(model.stages)):
        st = {"level": cfg.stage_level(s), "E": shape(rec[f"E{s}"]), "E_out": shape(rec[f"pqe{s}"][0]),
              "p": shape(out["p"][s]), "u": shape(out["u"][s])}
        if f"kgff{s}" in rec:
            st["f_kpt"] = shape(rec[f"kgff{s}"][0])
        res["stages"].append(st)
    return res


def _fmt(shape) -> str:
    return "(" + ", ".join("B" if i == 0 else str(n) for i, n in enumerate(shape)) + ")"


def model_figure(shapes: dict, title: str | None = None, dpi: int = 80):
    """The paper's Fig. 2 as boxes and arrows, every box labelled with its tensor shape
    (``B`` = batch). ``shapes`` from :func:`model_shapes`. Returns a matplotlib ``Figure``.

    Used in notebook 00.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    stages = shapes["stages"]
    levels = sorted(shapes["levels"])
    ncol = 3 + len(stages)
    fig = Figure(figsize=(2.3 * ncol + 1.2, 4.6), dpi=dpi)
    ax = fig.add_axes([0, 0, 1, 0.92 if title else 1])
    ax.set_xlim(0, ncol * 2.3 + 1.2)
    ax.set_ylim(0, 4.6)
    ax.set_axis_off()

    def box(x, y, w, h, text, color):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.04", fc=color, ec="0.3", lw=0.8))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=7.5)

    def arrow(x0, y0, x1, y1):
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=9, lw=0.8, color="0.3"))

    # column 0: the image; column 1: backbone levels and their f_i
    box(0.2, 1.9, 1.6, 0.9, "image I\n" + _fmt(shapes["image"]), "#f0f0f0")
    lvl_y = {}
    h = min(0.9, 3.9 / max(len(levels), 1) - 0.15)
    for k, lvl in enumerate(levels):
        y = 4.3 - (k + 1) * (h + 0.15)
        lvl_y[lvl] = y + h / 2
        L = shapes["levels"][lvl]
        box(2.3, y, 2.0, h, f"layer{lvl}: F {_fmt(L['F'])}\nEq. 2-5: f {_fmt(L['f'])}", "#deebf7")
        arrow(1.8, 2.35, 2.3, y + h / 2)
    # column 2: coarse predictor
    c = shapes["coarse"]
    x = 2.3 * 2 + 0.4
    box(x, 1.5, 2.0, 1.7, "coarse predictor\n(Eq. 6-12)\n2 hand tokens E\n" + _fmt(c["E"]) + "\nL x MHSA + heads", "#fee6ce")
    arrow(4.3, lvl_y[c["level"]], x, 2.35)
    box(x, 0.2, 2.0, 0.8, f"p(1) {_fmt(c['p'])}\nu(1) {_fmt(c['u'])}", "#fff7bc")
    arrow(x + 1.0, 1.5, x + 1.0, 1.0)
    prev_x = x
    for s, st in enumerate(stages, start=2):
        x = 2.3 * (1 + s) + 0.4
        kg = f"KGFF (Eq. 13): f_kpt {_fmt(st['f_kpt'])}\n" if "f_kpt" in st else "no KGFF\n"
        box(x, 1.5, 2.0, 1.7, f"stage {s}\n{kg}tokens E {_fmt(st['E'])}\nPQE (Eq. 14-17)\nE_out {_fmt(st['E_out'])}",
            "#e5f5e0")
        arrow(4.3, lvl_y[st["level"]], x, 2.9)
        arrow(prev_x + 2.0, 0.6, x, 2.0)        # the previous pose guides this stage
        box(x, 0.2, 2.0, 0.8, f"p({s}) {_fmt(st['p'])}\nu({s}) {_fmt(st['u'])}", "#fff7bc")
        arrow(x + 1.0, 1.5, x + 1.0, 1.0)
        prev_x = x
    ax.text(0.2, 0.5, f"root head (ours):\nwrists {_fmt(shapes['root'])}", fontsize=7, color="0.35")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
