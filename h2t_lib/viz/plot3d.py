"""Interactive 3D views of the 42-joint skeleton (plotly), shared by every notebook.

* :func:`setup_notebook` picks the plotly renderer the course uses: ``plotly_mimetype``
  stores each figure as JSON in the notebook (rendered by JupyterLab's built-in plotly
  extension), so a saved notebook does not embed the 3.5 MB plotly.js bundle per figure.
* :func:`hands_figure_3d` draws one or more poses (ground truth, coarse, refined, ...)
  as rotatable skeletons, in the camera frame (x right, y down, z away from the camera)
  seen from the camera, so the default view matches the image.
* :func:`sample_figure` puts a sample's image (with its 2D skeleton) beside its 3D skeleton.

Colours follow :data:`h2t_lib.viz.skeleton2d.HAND_COLORS` (right hand warm, left hand cool); a pose named
"ground truth" is drawn in :data:`~h2t_lib.viz.skeleton2d.GT_COLOR` instead, so it never reads as a prediction.
"""
from __future__ import annotations

import numpy as np

from h2t_lib import skeleton as sk
from h2t_lib.utils import is_fast
from h2t_lib.viz.skeleton2d import GT_COLOR, GT_COLORS, HAND_COLORS, joint_color

#: line styles of the poses drawn together (in the order given): solid, dashed, dotted, ...
DASHES = ("solid", "dash", "dot", "dashdot", "longdash")


def setup_notebook(renderer: str = "h2t") -> bool:
    """Set the plotly renderer for the course notebooks; return whether ``H2T_FAST`` is on.

    The default ``"h2t"`` renderer (:mod:`h2t_lib.viz.static`) puts a PNG of each plotly figure in
    the same output as the rotatable one, so the committed notebooks show it without a kernel.

    Used in every notebook (00-10).
    """
    import plotly.io as pio

    if renderer == "h2t":
        from h2t_lib.viz.static import register_renderer

        register_renderer("h2t")
    pio.renderers.default = renderer
    try:  # matplotlib Figures (built without pyplot) display inline when a cell returns them
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            shell.run_line_magic("matplotlib", "inline")
    except ImportError:  # pragma: no cover - IPython comes with the notebooks extra
        pass
    return is_fast()


def _as_array(joints) -> np.ndarray:
    a = np.asarray(joints.detach().cpu() if hasattr(joints, "detach") else joints, dtype=np.float64)
    if a.shape != (sk.NUM_JOINTS, 3):
        raise ValueError(f"joints must be (42, 3) camera-frame mm (right hand 0..20, left 21..41), got {a.shape}")
    return a


def skeleton_traces(joints, name: str = "pose", valid=None, dash: str = "solid", opacity: float = 1.0,
                    show_joints: bool = True, legendgroup: str | None = None, colors=None, width: float = 5) -> list:
    """plotly Scatter3d traces of one 42-joint pose: one line trace per finger per hand (+ joints).

    joints: (42, 3) mm; valid: (42,) 0/1 (bones with an invalid end are not drawn). A hand whose
    joints are all invalid is skipped. colors: {"right": 5 colours, "left": 5 colours} per finger
    (default :data:`HAND_COLORS`; :data:`GT_COLORS` for a ground truth). Returns a list of traces
    sharing ``legendgroup``.
    """
    import plotly.graph_objects as go

    j = _as_array(joints)
    ok = np.ones(sk.NUM_JOINTS, bool) if valid is None else np.asarray(valid).reshape(-1) > 0
    group = legendgroup or name
    colors = HAND_COLORS if colors is None else colors
    traces = []
    for hand in sk.HANDS:
        off = sk.HAND_OFFSET[hand]
        if not ok[off:off + sk.JOINTS_PER_HAND].any():
            continue
        for f, finger in enumerate(sk.FINGERS):
            chain = [off + k for k in sk.FINGER_CHAINS[finger]]  # wrist .. tip
            xs, ys, zs = [], [], []
            for a, b in zip(chain[:-1], chain[1:]):
                if ok[a] and ok[b]:
                    xs += [j[a, 0], j[b, 0], None]
                    ys += [j[a, 1], j[b, 1], None]
                    zs += [j[a, 2], j[b, 2], None]
            traces.append(go.Scatter3d(
                x=xs, y=ys, z=zs, mode="lines", line=dict(color=colors[hand][f], width=width, dash=dash),
                opacity=opacity, name=name, legendgroup=group, showlegend=False, hoverinfo="skip"))
        if show_joints:
            idx = [i for i in range(off, off + sk.JOINTS_PER_HAND) if ok[i]]
            traces.append(go.Scatter3d(
                x=j[idx, 0], y=j[idx, 1], z=j[idx, 2], mode="markers",
                marker=dict(size=3, color=[joint_color(i, colors) for i in idx]),
                opacity=opacity, name=name, legendgroup=group, showlegend=False,
                text=[sk.JOINT_NAMES[i] for i in idx], hovertemplate="%{text}<br>(%{x:.0f}, %{y:.0f}, %{z:.0f}) mm"))
    if traces:
        traces[0].showlegend = True  # one legend entry per pose; clicking it hides the whole pose
    return traces


def hands_figure_3d(poses, valid=None, title: str | None = None, height: int = 420):
    """A rotatable 3D figure of one or more poses.

    poses: a (42, 3) array, or a dict ``{name: (42, 3)}`` (e.g. ``{"ground truth": gt, "refined": p}``),
    drawn solid, dashed, dotted, ... in that order, in the hands' finger colours; a pose whose name starts
    with "ground truth" in :data:`GT_COLOR` (thinner, under the others). The scene keeps true proportions
    (``aspectmode="data"``) and starts looking from the camera (y down, z into the screen).

    Used in notebooks 01 and 04.
    """
    import plotly.graph_objects as go

    if not isinstance(poses, dict):
        poses = {"pose": poses}
    fig = go.Figure()
    for k, (name, joints) in enumerate(poses.items()):
        gt = str(name).startswith("ground truth")
        for tr in skeleton_traces(joints, name=name, valid=valid, dash=DASHES[k % len(DASHES)],
                                  colors=GT_COLORS if gt else None, width=4 if gt else 5):
            fig.add_trace(tr)
    fig.update_layout(
        title=title, height=height, margin=dict(l=0, r=0, t=30 if title else 0, b=0),
        legend=dict(x=0, y=1), scene=_scene(),
    )
    return fig


def _scene() -> dict:
    """Camera-frame axes in mm, seen from behind the camera: x right, y down, z away."""
    return dict(
        aspectmode="data",
        xaxis_title="x (mm)", yaxis_title="y (mm)", zaxis_title="z (mm)",
        camera=dict(up=dict(x=0, y=-1, z=0), eye=dict(x=0.0, y=-0.3, z=-2.0)),
    )


def png_data_uri(img: np.ndarray) -> str:
    """(H, W, 3) uint8 -> a PNG data URI: plotly's ``go.Image(source=...)`` stores it as a few kB
    instead of a JSON list of every pixel value (keeps saved notebooks small)."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def sample_figure(sample: dict, title: str | None = None, height: int = 380):
    """A sample's image (with its 2D skeleton) beside its rotatable root-relative 3D skeleton.

    ``sample`` is the dict every loader yields (``image`` (3, S, S) in [0, 1], ``joints_img``,
    ``joints_cam``, ``joint_valid``). The 3D view is root-relative per hand (each wrist at 0),
    the frame the model predicts in; the two hands are placed side by side (right at x = -80 mm,
    left at x = +80 mm as the image shows them) so they do not overlap.

    Used in notebook 00.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    img = np.asarray(sample["image"].permute(1, 2, 0) if hasattr(sample["image"], "permute") else sample["image"])
    img = (np.clip(img, 0, 1) * 255).astype(np.uint8) if img.dtype != np.uint8 else img
    valid = np.asarray(sample["joint_valid"]).reshape(-1) > 0
    uv = np.asarray(sample["joints_img"])
    rel = sk.root_relative(np.asarray(sample["joints_cam"], dtype=np.float64))
    rel = rel + np.repeat(np.array([[-80.0, 0, 0], [80.0, 0, 0]]), sk.JOINTS_PER_HAND, axis=0)

    fig = make_subplots(rows=1, cols=2, specs=[[{"type": "xy"}, {"type": "scene"}]],
                        subplot_titles=("image (crop)", "3D, root-relative per hand (drag to rotate)"))
    fig.add_trace(go.Image(source=png_data_uri(img), hoverinfo="skip"), row=1, col=1)
    for hand in sk.HANDS:
        off = sk.HAND_OFFSET[hand]
        for f, finger in enumerate(sk.FINGERS):
            chain = [off + k for k in sk.FINGER_CHAINS[finger]]  # wrist .. tip
            pts = [uv[i] for i in chain if valid[i]]
            if len(pts) > 1:
                pts = np.array(pts)
                fig.add_trace(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="lines+markers", showlegend=False,
                                         line=dict(color=HAND_COLORS[hand][f], width=2), marker=dict(size=3),
                                         hoverinfo="skip"), row=1, col=1)
    for tr in skeleton_traces(rel, name="ground truth", valid=valid):
        tr.showlegend = False
        fig.add_trace(tr, row=1, col=2)
    fig.update_xaxes(visible=False, row=1, col=1)
    fig.update_yaxes(visible=False, scaleanchor="x", row=1, col=1)
    fig.update_layout(title=dict(text=title, y=0.98, yanchor="top") if title else None, height=height,
                      margin=dict(l=0, r=0, t=70 if title else 40, b=0), scene=_scene())
    return fig
