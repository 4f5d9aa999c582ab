"""A static picture of every plotly figure, carried in the same output as the interactive one.

GitHub and ``jupyter nbconvert --to html`` run no JavaScript, so a plotly output shows there as
a blank cell. :func:`show` (and the ``"h2t"`` plotly renderer that :func:`setup_notebook` makes
the default) emits one output bundle holding

* ``application/vnd.plotly.v1+json``: the rotatable figure JupyterLab draws, and
* ``image/png``, when the notebook is executed to be committed (``make notebooks`` sets
  ``H2T_STATIC_FIGURES=1``): the same scene drawn by matplotlib, which every static viewer shows.

A learner's own run gets no PNG: JupyterLab's plotly renderer, given a bundle that holds ``image/png``,
shows that picture and draws the live figure only once the mouse passes over it (and again after every
widget update); without one it draws the live figure at once.

kaleido (plotly's own exporter) would draw the PNG, but kaleido 1.x drives a Chrome browser, and
neither the course machine nor a fresh ``make test`` has one; :func:`static_figure` draws the
trace types the course uses (``Scatter3d``, ``Scatter``, ``Image``) with matplotlib instead:
the subplot layout, the 3D camera (eye and up vector), true proportions (``aspectmode="data"``),
colours, dashes, legends, titles and subplot titles. Other trace types are listed in a note on
the picture rather than drawn wrongly.
"""
from __future__ import annotations

import base64
import io
import math

import numpy as np

PLOTLY_MIME = "application/vnd.plotly.v1+json"
_DASHES = {"solid": "-", "dash": "--", "dot": ":", "dashdot": "-.", "longdash": "--", "longdashdot": "-."}
_DRAWN = {"scatter3d", "scatter", "image"}


def _fig_dict(fig) -> dict:
    if isinstance(fig, dict):
        return fig
    return fig.to_plotly_json() if hasattr(fig, "to_plotly_json") else fig.to_dict()


def _get(d, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d or d[k] is None:
            return default
        d = d[k]
    return d


def _text(v) -> str | None:
    if isinstance(v, dict):
        v = v.get("text")
    return None if v in (None, "") else str(v).replace("<br>", "\n")


def _plain(s: str | None) -> str | None:
    import re

    return None if s is None else re.sub(r"<[^>]+>", "", s)


def _arr(v) -> np.ndarray:
    """A plotly coordinate list (None marks a break) -> float array with NaN breaks."""
    if v is None:
        return np.zeros(0)
    if isinstance(v, dict) and "bdata" in v:  # plotly's typed-array JSON form
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v.get("dtype", "f8"))).astype(float)
    return np.array([np.nan if x is None else x for x in np.asarray(v, dtype=object).ravel()], dtype=float)


def _color(c, default="#1f77b4"):
    """A plotly colour ("#rrggbb", "rgb(..)", "rgba(..)", a name) -> something matplotlib takes."""
    if c is None or isinstance(c, (list, tuple, np.ndarray)) and len(c) == 0:
        return default
    if isinstance(c, str) and c.startswith("rgb"):
        nums = [float(x) for x in c[c.index("(") + 1:c.index(")")].split(",")]
        rgb = [x / 255.0 for x in nums[:3]]
        return tuple(rgb + ([nums[3]] if len(nums) > 3 else []))
    return c


def _image_array(tr: dict) -> np.ndarray | None:
    src = tr.get("source")
    if isinstance(src, str) and src.startswith("data:image"):
        from PIL import Image

        raw = base64.b64decode(src.split(",", 1)[1])
        return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
    z = tr.get("z")
    return None if z is None else np.clip(np.asarray(z, dtype=float), 0, 255).astype(np.uint8)


def _rotation_to_z(up: np.ndarray) -> np.ndarray:
    """The rotation taking the plotly camera's up vector to matplotlib's vertical (+z)."""
    u = up / (np.linalg.norm(up) or 1.0)
    z = np.array([0.0, 0.0, 1.0])
    v, c = np.cross(u, z), float(u @ z)
    if np.linalg.norm(v) < 1e-9:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def _scene_axes(mfig, rect, scene: dict):
    """A matplotlib 3D axes at ``rect`` looking like the plotly ``scene``; returns (ax, R)."""
    ax = mfig.add_axes(rect, projection="3d")
    cam = scene.get("camera") or {}
    up = np.array([_get(cam, "up", k, default=d) for k, d in (("x", 0), ("y", 0), ("z", 1))], float)
    eye = np.array([_get(cam, "eye", k, default=d) for k, d in (("x", 1.25), ("y", 1.25), ("z", 1.25))], float)
    R = _rotation_to_z(up)
    e = R @ eye
    ax.view_init(elev=math.degrees(math.asin(np.clip(e[2] / (np.linalg.norm(e) or 1), -1, 1))),
                 azim=math.degrees(math.atan2(e[1], e[0])))
    return ax, R


def _finish_scene(ax, R, scene: dict, pts: list):
    """Axis limits with true proportions, and plotly's axis titles on the matching matplotlib axes."""
    if not pts:
        return
    P = np.concatenate(pts)
    P = P[np.isfinite(P).all(1)]
    if len(P) == 0:
        return
    lo, hi = P.min(0), P.max(0)
    span = np.maximum(hi - lo, 1e-6)
    pad = 0.05 * span.max()
    ax.set_xlim(lo[0] - pad, hi[0] + pad)
    ax.set_ylim(lo[1] - pad, hi[1] + pad)
    ax.set_zlim(lo[2] - pad, hi[2] + pad)
    if scene.get("aspectmode", "auto") in ("data", "auto", None):
        ax.set_box_aspect(span + 2 * pad)
    # label a matplotlib axis with the plotly axis it shows when the rotation is a signed permutation
    if np.allclose(np.abs(R), np.round(np.abs(R))):
        from matplotlib.ticker import FuncFormatter

        for k, axis in enumerate((ax.xaxis, ax.yaxis, ax.zaxis)):
            src = int(np.argmax(np.abs(R[k])))
            sign = float(np.sign(R[k, src]))
            name = "xyz"[src]
            axis.set_label_text(_plain(_text(_get(scene, f"{name}axis", "title"))) or name, fontsize=8)
            axis.set_major_formatter(FuncFormatter(lambda v, _p, s=sign: f"{s * v:g}"))
    ax.tick_params(labelsize=7)


def _plot_scatter3d(ax, R, tr: dict, pts: list):
    x, y, z = _arr(tr.get("x")), _arr(tr.get("y")), _arr(tr.get("z"))
    if not len(x):
        return None
    P = (R @ np.stack([x, y, z])).T
    pts.append(P)
    mode = tr.get("mode") or "lines+markers"
    alpha = tr.get("opacity", 1.0)
    handle = None
    if "lines" in mode:
        line = tr.get("line") or {}
        (handle,) = ax.plot(P[:, 0], P[:, 1], P[:, 2], color=_color(line.get("color")), alpha=alpha,
                            lw=0.6 * (line.get("width") or 2), ls=_DASHES.get(line.get("dash") or "solid", "-"))
    if "markers" in mode:
        m = tr.get("marker") or {}
        col = m.get("color")
        col = [_color(c) for c in col] if isinstance(col, (list, tuple)) else _color(col)
        ok = np.isfinite(P).all(1)
        sc = ax.scatter(P[ok, 0], P[ok, 1], P[ok, 2], s=(m.get("size") or 4) ** 2 * 0.8,
                        c=[c for c, o in zip(col, ok) if o] if isinstance(col, list) else col,
                        alpha=alpha, depthshade=False)
        handle = handle or sc
    return handle


def _plot_scatter2d(ax, tr: dict):
    x, y = _arr(tr.get("x")), _arr(tr.get("y"))
    if not len(y):
        return None
    if not len(x):
        x = np.arange(len(y), dtype=float)
    mode = tr.get("mode") or ("lines+markers" if len(y) < 20 else "lines")
    line, m = tr.get("line") or {}, tr.get("marker") or {}
    color = _color(line.get("color") or (m.get("color") if isinstance(m.get("color"), str) else None), None)
    kw = dict(color=color, alpha=tr.get("opacity", 1.0))
    ls = _DASHES.get(line.get("dash") or "solid", "-") if "lines" in mode else "none"
    marker = "o" if "markers" in mode else None
    (h,) = ax.plot(x, y, ls=ls, marker=marker, ms=0.5 * (m.get("size") or 6), lw=0.7 * (line.get("width") or 2), **kw)
    return h


def _axis_setup(ax, lay: dict, xname: str, yname: str, has_image: bool):
    xa, ya = lay.get(xname) or {}, lay.get(yname) or {}
    for a, spec, set_label, set_scale, set_lim in ((ax.xaxis, xa, ax.set_xlabel, ax.set_xscale, ax.set_xlim),
                                                   (ax.yaxis, ya, ax.set_ylabel, ax.set_yscale, ax.set_ylim)):
        if spec.get("type") == "log":
            set_scale("log")
        if spec.get("range") and spec.get("type") != "log":
            set_lim(*spec["range"])
        t = _plain(_text(spec.get("title")))
        if t:
            set_label(t, fontsize=8)
        if spec.get("visible") is False:
            a.set_visible(False)
    if ya.get("autorange") == "reversed" and not has_image:
        ax.invert_yaxis()
    if ya.get("scaleanchor") or has_image:
        ax.set_aspect("equal")
    if xa.get("visible") is False and ya.get("visible") is False:
        ax.set_axis_off()
    ax.tick_params(labelsize=7)


def _legend_name(tr: dict, n_traces: int) -> str | None:
    show = tr.get("showlegend")
    if show is False or (show is None and n_traces < 2) or not tr.get("name"):
        return None
    return _plain(str(tr["name"]))


def static_figure(fig, width: int = 900, dpi: int = 80):
    """A matplotlib ``Figure`` of a plotly figure (object or dict): the same subplots, traces,
    3D camera, legend and titles. ``width`` in pixels when the plotly layout sets none."""
    from matplotlib.figure import Figure

    d = _fig_dict(fig)
    lay, traces = d.get("layout") or {}, [t for t in d.get("data") or [] if t.get("visible", True) is True]
    W, H = lay.get("width") or width, lay.get("height") or 450
    mfig = Figure(figsize=(W / dpi, H / dpi), dpi=dpi)
    title = _plain(_text(lay.get("title")))
    top = 1.0 - (0.09 if title else 0.02) - (0.05 if lay.get("annotations") else 0)

    # 2D-only figures with a legend keep it to the right of the plots, 3D ones in the empty top-left corner
    only_2d = not any(t.get("type") == "scatter3d" for t in traces)
    legend_right = only_2d and any(_legend_name(t, len(traces)) for t in traces)
    left, width, bottom = 0.07, (0.72 if legend_right else 0.9), 0.12

    def rect(xd, yd):
        xd, yd = xd or [0, 1], yd or [0, 1]
        return [left + width * xd[0], bottom + (top - bottom) * yd[0], width * (xd[1] - xd[0]) - (0.04 if xd[1] < 1 else 0),
                (top - bottom) * (yd[1] - yd[0])]

    axes, handles, skipped = {}, [], set()
    scene_pts: dict[str, list] = {}
    for tr in traces:
        kind = tr.get("type", "scatter")
        if kind not in _DRAWN:
            skipped.add(kind)
            continue
        if kind == "scatter3d":
            key = tr.get("scene", "scene")
            sc = lay.get(key) or {}
            if key not in axes:
                axes[key] = _scene_axes(mfig, rect(_get(sc, "domain", "x"), _get(sc, "domain", "y")), sc)
            ax, R = axes[key]
            h = _plot_scatter3d(ax, R, tr, scene_pts.setdefault(key, []))
        else:
            xk, yk = tr.get("xaxis", "x"), tr.get("yaxis", "y")
            xname, yname = "xaxis" + xk[1:], "yaxis" + yk[1:]
            key = (xname, yname)
            if key not in axes:
                axes[key] = [mfig.add_axes(rect(_get(lay, xname, "domain"), _get(lay, yname, "domain"))), False]
            ax = axes[key][0]
            if kind == "image":
                img = _image_array(tr)
                if img is not None:
                    x0, y0 = tr.get("x0", 0), tr.get("y0", 0)
                    dx, dy = tr.get("dx", 1), tr.get("dy", 1)
                    ax.imshow(img, extent=(x0 - 0.5 * dx, x0 + (img.shape[1] - 0.5) * dx,
                                           y0 + (img.shape[0] - 0.5) * dy, y0 - 0.5 * dy))
                    axes[key][1] = True
                h = None
            else:
                h = _plot_scatter2d(ax, tr)
        name = _legend_name(tr, len(traces))
        if h is not None and name:
            handles.append((h, name))
    for key, val in axes.items():
        if isinstance(key, str):
            _finish_scene(val[0], val[1], lay.get(key) or {}, scene_pts.get(key, []))
        else:
            ax, has_image = val
            _axis_setup(ax, lay, key[0], key[1], has_image)
            if has_image:  # the image fixes the view; the skeleton drawn over it must not widen it
                ax.autoscale(False)
    if title:
        mfig.suptitle(title, fontsize=11)
    for ann in lay.get("annotations") or []:
        if ann.get("xref", "paper") == "paper" and ann.get("text"):
            xd, yd = ann.get("x", 0.5), ann.get("y", 1.0)
            mfig.text(left + width * xd, bottom + (top - bottom) * yd + 0.01, _plain(_text(ann["text"])),
                      ha="center", va="bottom", fontsize=9)
    if handles and lay.get("showlegend", True) is not False:
        mfig.legend([h for h, _ in handles], [n for _, n in handles], fontsize=8, frameon=False, handlelength=5,
                    **({"loc": "center right"} if legend_right else {"loc": "upper left"}))
    if skipped:
        mfig.text(0.99, 0.01, "not drawn here: " + ", ".join(sorted(skipped)), ha="right", fontsize=7)
    return mfig


def figure_png(fig, width: int = 900, dpi: int = 80) -> bytes:
    """PNG bytes of :func:`static_figure`."""
    buf = io.BytesIO()
    static_figure(fig, width=width, dpi=dpi).savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def static_figures_wanted() -> bool:
    """True where figures should carry a static PNG: ``H2T_STATIC_FIGURES=1`` (set by ``make notebooks``)."""
    import os

    return os.environ.get("H2T_STATIC_FIGURES", "") == "1"


def mime_bundle(fig, width: int = 900, dpi: int = 80, static: bool | None = None) -> dict:
    """One display bundle: the interactive plotly JSON, a text line, and with ``static`` (None =
    :func:`static_figures_wanted`) a PNG of the same scene."""
    import json

    import plotly.io as pio

    d = _fig_dict(fig)
    title = _plain(_text(_get(d, "layout", "title"))) or "3D figure"
    static = static_figures_wanted() if static is None else static
    bundle = {PLOTLY_MIME: json.loads(pio.to_json(d, validate=False, remove_uids=False)),
              "text/plain": f"<plotly figure: {title}" + ("; a static PNG beside it>" if static else ">")}
    if static:
        bundle["image/png"] = base64.b64encode(figure_png(d, width=width, dpi=dpi)).decode("ascii")
    return bundle


class Shown:
    """What :func:`show` returns: displays as :func:`mime_bundle` (plotly, and a PNG where wanted, in one output)."""

    def __init__(self, fig, width: int = 900, dpi: int = 80):
        self.fig, self.width, self.dpi = fig, width, dpi

    def _repr_mimebundle_(self, include=None, exclude=None):
        return mime_bundle(self.fig, width=self.width, dpi=self.dpi)


def show(fig, width: int = 900, dpi: int = 80) -> Shown:
    """Wrap a plotly figure so that a notebook shows it rotatable (JupyterLab) *and*, when executed to be
    committed, as a PNG (GitHub, nbconvert's HTML): ``viz.show(fig)`` as a cell's last line, or ``display(viz.show(fig))``."""
    return Shown(fig, width=width, dpi=dpi)


def register_renderer(name: str = "h2t") -> str:
    """Register the plotly renderer ``name`` whose bundles are :func:`mime_bundle`'s, so a cell
    that ends in a plotly figure carries its static picture without calling :func:`show`."""
    import plotly.io as pio
    from plotly.io._base_renderers import MimetypeRenderer

    class _H2TRenderer(MimetypeRenderer):
        def to_mimebundle(self, fig_dict):
            return mime_bundle(fig_dict)

    pio.renderers[name] = _H2TRenderer()
    return name
