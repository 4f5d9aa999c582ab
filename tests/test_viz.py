"""The viz package and the course's views: their modules export distinct names, and the shared 3D views
draw what they should."""
import importlib

import numpy as np
import pytest

from h2t_lib import skeleton as sk
from h2t_lib import viz

#: package -> its modules whose names it re-exports (viz: the drawing primitives; course: the notebooks' views)
MODULES = {"viz": ["skeleton2d", "plot3d"],
           "course": ["data_views", "model_views", "refine_views", "eval_views", "results_views",
                      "image_views"]}


def test_view_modules_export_distinct_names():
    # h2t_lib.viz and h2t_lib.course star-import their modules: a name exported twice would silently shadow another
    seen = {}
    for package, modules in MODULES.items():
        pkg = importlib.import_module(f"h2t_lib.{package}")
        for m in modules:
            mod = importlib.import_module(f"h2t_lib.{package}.{m}")
            for name in getattr(mod, "__all__", []):
                assert name not in seen, f"{name} exported by both {seen[name]} and {package}.{m}"
                assert getattr(pkg, name) is getattr(mod, name)
                seen[name] = f"{package}.{m}"


def _pose(seed=0):
    return np.random.default_rng(seed).normal(0, 50, size=(42, 3)) + [0, 0, 500]


def test_hands_figure_3d_draws_every_bone_of_every_pose():
    gt, pred = _pose(0), _pose(1)
    fig = viz.hands_figure_3d({"ground truth": gt, "refined": pred})
    lines = [t for t in fig.data if t.mode == "lines"]
    assert len(lines) == 2 * 2 * 5  # poses x hands x fingers
    segments = sum(sum(v is None for v in t.x) for t in lines)
    assert segments == 2 * len(sk.BONES)  # every bone once per pose
    # the line coordinates are the joints themselves
    xs = np.array([v for t in lines[:10] for v in t.x if v is not None])
    assert set(np.round(xs, 6)) <= set(np.round(gt[:, 0], 6))
    assert [t.name for t in fig.data if t.showlegend] == ["ground truth", "refined"]
    assert fig.layout.scene.aspectmode == "data"


def test_invalid_hand_is_not_drawn_and_bad_shape_is_an_error():
    valid = np.ones(42)
    valid[21:] = 0
    traces = viz.skeleton_traces(_pose(), valid=valid)
    assert len(traces) == 5 + 1  # right hand's fingers + its joints only
    with pytest.raises(ValueError, match="42, 3"):
        viz.hands_figure_3d(np.zeros((21, 3)))


def test_figure_widget_can_be_built():
    # plotly >= 6 FigureWidget needs anywidget: the notebooks' interactive views rely on it
    go = pytest.importorskip("plotly.graph_objects")
    w = go.FigureWidget(viz.hands_figure_3d(_pose()))
    assert len(w.data) == 12


def test_png_data_uri_round_trips():
    import base64
    import io

    from PIL import Image

    img = (np.arange(12 * 10 * 3) % 256).astype(np.uint8).reshape(12, 10, 3)
    uri = viz.png_data_uri(img)
    assert uri.startswith("data:image/png;base64,")
    back = np.array(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    assert np.array_equal(back, img)


def test_joint_color_is_the_hands_finger_shade_everywhere():
    assert viz.joint_color(sk.WRIST) == viz.HAND_COLORS["right"][0]  # the wrist takes the thumb's shade
    assert viz.joint_color(21 + 4 * 3) == viz.HAND_COLORS["left"][3]  # left ring4 (tip)
    assert viz.joint_color(19) == viz.HAND_COLORS["right"][4]  # right pinky1
    # the 3D joint markers use the same colours as the 2D drawings
    markers = [t for t in viz.skeleton_traces(_pose()) if t.mode == "markers"]
    assert list(markers[0].marker.color) == [viz.joint_color(j) for j in range(21)]
