"""Figures and the logic behind the notebooks' widgets.

Every function here is plain Python that returns a figure (matplotlib ``Figure`` for 2D,
plotly ``Figure`` for 3D) or the data a widget shows, so the unit tests call it directly and
the notebooks only wire it to ``ipywidgets``:

* :mod:`.skeleton2d`: skeletons over images, sample grids (matplotlib)
* :mod:`.plot3d`: rotatable 3D skeletons, image + 3D side by side (plotly), notebook setup
* :mod:`.static`: a PNG of every plotly figure in the same output (``show``), for GitHub
* :mod:`.model_diagram`: the whole model (Fig. 2) with computed shapes (notebook 00)
* :mod:`.heatmap_views`: 2.5D heatmaps vs regression, and their compute (notebook 02)
* :mod:`.probe`: a linear probe from a hand token to its 63 coordinates (notebook 04)
* :mod:`.data_views`: browsing samples, posing a hand (notebooks 00-01)
* :mod:`.model_views`: feature maps, parameter breakdowns, attention (notebooks 02-04)
* :mod:`.refine_views`: KGFF patches, stage-by-stage predictions, RLE densities (05-06)
* :mod:`.eval_views`: training curves, error breakdowns, a 3D GT-vs-prediction viewer (07-08)
* :mod:`.results_views`: the paper's tables beside ours, predictions on user images (09-10)
"""
from h2t_lib.viz.skeleton2d import *  # noqa: F401,F403
from h2t_lib.viz.skeleton2d import HAND_COLORS, draw_skeleton_2d, sample_grid  # noqa: F401
from h2t_lib.viz.plot3d import hands_figure_3d, png_data_uri, sample_figure, setup_notebook, skeleton_traces  # noqa: F401
from h2t_lib.viz.static import figure_png, mime_bundle, show, static_figure  # noqa: F401
from h2t_lib.viz.model_diagram import model_figure, model_shapes  # noqa: F401
from h2t_lib.viz.heatmap_views import compute_split, heatmap_figure, soft_argmax, target_volume  # noqa: F401
from h2t_lib.viz.data_views import *  # noqa: F401,F403
from h2t_lib.viz.model_views import *  # noqa: F401,F403
from h2t_lib.viz.refine_views import *  # noqa: F401,F403
from h2t_lib.viz.eval_views import *  # noqa: F401,F403
from h2t_lib.viz.results_views import *  # noqa: F401,F403
