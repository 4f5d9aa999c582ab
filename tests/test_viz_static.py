"""h2t_lib.viz.static: every plotly figure also carries a PNG of the same scene."""
import base64
import io

import numpy as np
import pytest

pytest.importorskip("plotly")
pytest.importorskip("matplotlib")

from h2t_lib import skeleton as sk  # noqa: E402
from h2t_lib import viz  # noqa: E402
from h2t_lib.viz.static import PLOTLY_MIME, _rotation_to_z, mime_bundle, register_renderer, show, static_figure  # noqa: E402


def _pose(seed=0):
    rng = np.random.default_rng(seed)
    j = rng.normal(0, 40, (sk.NUM_JOINTS, 3))
    j[:, 2] += 500.0
    return j


def _png(b64: str):
    from PIL import Image

    raw = base64.b64decode(b64)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def test_bundle_holds_plotly_json_and_a_png_of_the_scene_when_committed(monkeypatch):
    fig = viz.hands_figure_3d({"a": _pose(0), "b": _pose(1)}, title="two poses", height=300)
    b = mime_bundle(fig, static=True)
    assert set(b) == {PLOTLY_MIME, "image/png", "text/plain"}
    assert len(b[PLOTLY_MIME]["data"]) == len(fig.data)          # the interactive figure, unchanged
    img = _png(b["image/png"])
    assert img.shape[0] == 300                                     # the plotly height, in pixels
    assert (img < 200).any(axis=2).mean() > 0.01                  # something is drawn, not a blank page
    # a learner's run: no PNG, so JupyterLab's plotly renderer draws the live figure at once
    monkeypatch.delenv("H2T_STATIC_FIGURES", raising=False)
    assert set(mime_bundle(fig)) == {PLOTLY_MIME, "text/plain"}
    monkeypatch.setenv("H2T_STATIC_FIGURES", "1")                  # make notebooks
    assert set(mime_bundle(fig)) == {PLOTLY_MIME, "image/png", "text/plain"}


def test_static_figure_draws_every_trace_and_its_legend():
    fig = viz.hands_figure_3d({"ground truth": _pose(0), "prediction": _pose(1)})
    mfig = static_figure(fig)
    (ax,) = mfig.axes
    n_lines = sum(t.mode == "lines" for t in fig.data)
    n_markers = sum(t.mode == "markers" for t in fig.data)
    assert len(ax.lines) == n_lines and len(ax.collections) == n_markers
    (leg,) = mfig.legends
    assert [t.get_text() for t in leg.get_texts()] == ["ground truth", "prediction"]


def test_image_and_3d_subplots_keep_their_layout():
    img = np.zeros((64, 64, 3))
    img[:, :32, 0] = 1.0                                           # left half red
    s = {"image": img, "joints_img": np.full((42, 2), 32.0), "joints_cam": _pose(0),
         "joint_valid": np.ones(42)}
    mfig = static_figure(viz.sample_figure(s, title="t"))
    ax2d, ax3d = sorted(mfig.axes, key=lambda a: a.get_position().x0)
    assert ax3d.name == "3d" and ax2d.name != "3d"
    (im,) = ax2d.images
    shown = np.asarray(im.get_array())
    assert shown.shape == (64, 64, 3) and shown[0, 0, 0] > shown[0, 0, 1]   # the crop, not a blank
    assert ax2d.get_ylim()[0] > ax2d.get_ylim()[1]                           # image rows go down
    assert mfig._suptitle.get_text() == "t"


def test_camera_up_vector_becomes_matplotlib_vertical():
    for up in ([0, -1, 0], [0, 0, 1], [1, 0, 0], [0.3, -0.8, 0.2]):
        R = _rotation_to_z(np.array(up, float))
        assert np.allclose(R @ R.T, np.eye(3)) and np.isclose(np.linalg.det(R), 1.0)
        assert np.allclose(R @ (np.array(up) / np.linalg.norm(up)), [0, 0, 1])


def test_unknown_trace_types_are_named_not_drawn():
    import plotly.graph_objects as go

    fig = go.Figure([go.Scatter(x=[0, 1], y=[1, 0], name="line"), go.Bar(x=[0], y=[1])])
    texts = [t.get_text() for t in static_figure(fig).texts]
    assert any("bar" in t for t in texts)


def test_show_and_the_notebook_renderer_emit_the_same_bundle(monkeypatch):
    import plotly.io as pio

    monkeypatch.setenv("H2T_STATIC_FIGURES", "1")
    fig = viz.hands_figure_3d(_pose(2))
    assert set(show(fig)._repr_mimebundle_()) == {PLOTLY_MIME, "image/png", "text/plain"}
    old = pio.renderers.default
    try:
        pio.renderers.default = register_renderer("h2t")
        assert {PLOTLY_MIME, "image/png"} <= set(fig._repr_mimebundle_())
        monkeypatch.delenv("H2T_STATIC_FIGURES")
        assert "image/png" not in fig._repr_mimebundle_()
    finally:
        pio.renderers.default = old
