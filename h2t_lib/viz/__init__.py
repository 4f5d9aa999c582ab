"""Drawing primitives: arrays in, figures out (matplotlib ``Figure`` for 2D, plotly ``Figure`` for 3D).

A leaf of the library: anything may import it, and it imports only the foundations (``skeleton``,
``camera``, ``utils``); it computes nothing about models or data and calls nothing back. The notebooks'
views, which compute what they show, live in :mod:`h2t_lib.course`.

* :mod:`.skeleton2d`: skeletons over images, sample grids (matplotlib)
* :mod:`.plot3d`: rotatable 3D skeletons, image + 3D side by side (plotly), notebook setup
* :mod:`.static`: a PNG of every plotly figure in the same output (``show``), for GitHub
"""
from h2t_lib.viz.skeleton2d import *  # noqa: F401,F403
from h2t_lib.viz.skeleton2d import HAND_COLORS, draw_skeleton_2d, sample_grid  # noqa: F401
from h2t_lib.viz.plot3d import (hands_figure_3d, png_data_uri, sample_figure, setup_notebook,  # noqa: F401
                                skeleton_traces)
from h2t_lib.viz.static import figure_png, mime_bundle, show, static_figure  # noqa: F401
