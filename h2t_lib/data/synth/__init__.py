"""Synthetic two-hand images in the InterHand2.6M format: the project's default data.

Real InterHand2.6M images cannot be had here, so h2t renders its own. A sample is

1. a *scene*: two procedural hands (:mod:`h2t_lib.data.hand_model`) posed so that
   they really interact (stacked, crossing, touching, one grasping the other,
   palm to palm) with one in front of the other, or a single hand;
2. seen by one camera of a fixed rig (known intrinsics and a non-identity pose,
   so the annotations go through ``cam = R (world - campos)`` like the real data);
3. ray-cast over a random textured background (the renderer, below) in one of two looks
   (:data:`STYLES`): "v2", the default, a smooth skin over capsules, palm slabs and palm pads,
   skin-shaded, through a camera (blur, noise, JPEG), in front of noise, blobs and gradients; "v1",
   the first look, shaded capsules and palm slabs with mild blur and noise, whose backgrounds also
   have stripes and checker boards;
4. annotated with the 42 joints (world, camera, pixel), validity, per-joint
   visibility from the renderer's depth test and the fraction of a hand hidden by
   the other (``occlusion``).

``python -m h2t_lib synth --out DIR --split train --num N --size 256 --seed S`` writes
``DIR/images/<split>/...jpg`` and ``DIR/annotations/all/InterHand2.6M_<split>_{data,camera,joint_3d}.json``
plus ``DIR/annotations/skeleton.txt``; ``--bench`` measures the rendering speed.
Sample ``i`` of a split depends only on ``(seed, split, i)``: the same seed gives the same
bytes (images are JPEG at quality 95) whatever ``--workers``, a longer run starts with the
samples of a shorter one, and two splits written with one seed share no sample.

The package, in the order a sample is made:

* :mod:`.rig`: the looks (:data:`STYLES`), interaction and occlusion settings, the camera rig
* :mod:`.scene`: two hands posed to interact (or one), placed in view
* :mod:`.primitives`, :mod:`.raster`, :mod:`.blended`, :mod:`.shading`, :mod:`.backgrounds`: the renderer
* :mod:`.sample`: one sample (render, visibility, box, look, camera effects)
* :mod:`.dataset`: the dataset on disk, the rendering benchmark, a grid of examples

Every public name of these modules is importable from the package (``from h2t_lib.data import synth``).

The renderer is a small vectorised ray-caster for hands made of capsules and slabs (numpy only).

A hand is drawn from two kinds of primitives:

* *capsules*: a segment swept by a sphere whose radius goes linearly from ``ra`` to
  ``rb``: one per finger bone, the palm's edges, a thenar pad and the forearm;
* *slabs*: a triangle swept by a sphere of radius ``r`` (a flat plate with rounded
  edges): two of them make the flattened palm between the wrist and the knuckles.

The renderer is a z-buffer over pixel "fragments":

1. Every primitive is cut into pieces short enough on screen, then only the pixels
   inside each piece's screen bounding box become fragments (for all pieces at once,
   no Python loop over primitives).
2. For a capsule fragment, the ray through the pixel centre is intersected with the
   sphere of the sweep whose projection is closest to the pixel (exact for the end
   spheres, a tight approximation along the body); for a slab fragment, with the
   triangle's plane pushed ``r`` towards the camera, kept when the hit lies over the
   triangle (the rounded rims are capsules along its edges).
3. ``np.minimum.at`` keeps the nearest hit per pixel and *layer* (layers separate the
   right hand, the left hand and their forearms, so the occlusion of one hand by the
   other can be measured), then the layers are composited by depth.
4. Shading (:func:`shade`): Lambert + ambient + a little Blinn-Phong specular, a skin
   tone per hand, lighter palms, nails on the distal phalanges, optional sleeves.

That is the first look, style "v1". The default look, "v2" (issue 13, docs/realism.md), adds
soft palm volumes (:func:`palm_volumes`), a palm and forearm :data:`V2_THICKNESS` as thick,
blends each layer's primitives into one smooth skin (:func:`rasterize_blended`) and shades it as
skin (:func:`shade_skin`: wrap light, crevices, creases), in front of backgrounds without stripes and
checker boards (:func:`random_background`); :mod:`h2t_lib.data.synth` chooses.

Camera frame and pixel conventions are those of :mod:`h2t_lib.camera` (x right,
y down, z forward; ``u = X/Z fx + cx``); pixel ``(row i, col j)`` is centred at
``(u, v) = (j, i)``.
"""
from h2t_lib.data.synth.rig import *  # noqa: F401,F403
from h2t_lib.data.synth.primitives import *  # noqa: F401,F403
from h2t_lib.data.synth.raster import *  # noqa: F401,F403
from h2t_lib.data.synth.blended import *  # noqa: F401,F403
from h2t_lib.data.synth.shading import *  # noqa: F401,F403
from h2t_lib.data.synth.backgrounds import *  # noqa: F401,F403
from h2t_lib.data.synth.scene import *  # noqa: F401,F403
from h2t_lib.data.synth.sample import *  # noqa: F401,F403
from h2t_lib.data.synth.dataset import *  # noqa: F401,F403
