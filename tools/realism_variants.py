"""What-if renders for the realism report (docs/realism.md, rounds 5 and 6): style "v2" with one or more
changes patched into the renderer of this checkout, written as a test split like ``synth --style v2``::

    python tools/realism_variants.py VARIANT[+VARIANT...] OUT --seed 5001 [--interacting-frac 0] [--num 300] [--size 256]
    python -m h2t_lib realism --data OUT --out OUT_report

The patches replace module attributes for this process only (no worker processes), on top of the
code as it is: a row measured before a change was adopted is not reproduced by the same name after.
The scenes are the same as without the patch unless the variant changes the skeleton or the
random draws (marked). Variants (k a number):

    noao, aox2        crevice occlusion off / twice as strong
    fatK              finger radii (index..pinky, base joint to tip) x K
    taperK            finger radii thinner towards the tip: joints 2, 3, tip x (1 - K/3, 1 - 2K/3, 1 - K)
    thumbfatK         thumb radii x K
    palmthickK        palm half thickness x K (the forearm, 1.9 x it, follows)
    forearmK          forearm radius x K
    palmliftK         palm tone lifted K towards the pink palm colour (default 0.4)
    ambK              ambient light raised by K of the way to 1
    tintK             light colour and camera white balance gains K x as far from grey
    noshadow          no shadow of the hands on the background
    bggray            a uniform grey background (a diagnostic)
    bgnopat           backgrounds without stripes and checker boards (noise and blobs instead); NOT paired:
                      the other layers draw other numbers, and every later draw of the sample (shadow,
                      skin look, camera effects) moves with them
    bgplain           bgnopat paired: the background drawn as usual (so every later draw is the same),
                      the image gets a pattern-free twin drawn from a copy of the generator
                      (round 6 adopted it: since then v2 has no patterns and these two change nothing)
    bgpatterns        paired, the other way: v2 in front of v1's backgrounds (stripes and checkers, half
                      size), drawn from a copy of the generator; v2's own background is drawn and dropped
    ss2               2 x 2 supersampling of the hand render (a diagnostic of anti-aliasing)
    volK              the soft palm volumes (thenar, hypothenar, pads, knuckles) K x as thick
    webK              skin webs between the proximal phalanges, K along them from the knuckles
    spreadK           knuckles (MCPs) K x as far from the middle finger's      [skeleton changes]
    lenK, thumblenK   finger / thumb bone lengths x K                          [skeleton changes]
    convergeK         finger splay fades with MCP flexion by K                 [skeleton changes]
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import sys

import numpy as np


class _NoPatterns:
    """A generator whose choice of background layers paints stripes as noise and checker boards as
    blobs (``render.PATTERN_STANDINS``); every other draw passes through."""

    def __init__(self, rng):
        self.rng = rng

    def choice(self, a, *args, **kw):
        from h2t_lib.data.synth import PATTERN_STANDINS

        out = self.rng.choice(a, *args, **kw)
        if isinstance(a, list) and "checker" in a:
            out = np.array([PATTERN_STANDINS.get(x, x) for x in out])
        return out

    def __getattr__(self, attr):
        return getattr(self.rng, attr)


def _set(name, value):
    """Replace ``name`` in every module of the synth package that holds it (the package re-exports its modules' names)."""
    import importlib

    for part in ("", ".rig", ".primitives", ".raster", ".blended", ".shading", ".backgrounds", ".scene", ".sample", ".dataset"):
        module = importlib.import_module("h2t_lib.data.synth" + part)
        if hasattr(module, name):
            setattr(module, name, value)


def apply(variant: str) -> None:
    """Patch one named variant (see the module docstring) into the renderer; ValueError if unknown."""
    from h2t_lib.data import hand_model as hm
    from h2t_lib.data import synth as rd
    from h2t_lib.data import synth

    name = variant.rstrip("0123456789.")
    k = float(variant[len(name):]) if variant[len(name):] else None

    def paired_background(twin):
        """The background drawn as usual (so every later draw of the sample stays the same); the image
        gets ``twin(random_background, copy of the generator, size, skin, style)`` instead."""
        f = rd.random_background

        def background(rng, size, skin=None, style="v1"):
            out = twin(f, copy.deepcopy(rng), size, skin, style)
            f(rng, size, skin, style)
            return out
        _set("random_background", background)

    def wrap_look(edit):
        f = rd.sample_skin_look
        _set("sample_skin_look", lambda rng, size, finger_radius=8.0: edit(f(rng, size, finger_radius)))

    def wrap_app(edit):
        f = rd.sample_appearance

        def g(rng):
            app = f(rng)
            edit(app)
            return app
        _set("sample_appearance", g)

    if name == "noao":
        wrap_look(lambda look: dataclasses.replace(look, ao=0.0))
    elif name == "aox":
        wrap_look(lambda look: dataclasses.replace(look, ao=k * look.ao))
    elif name == "fat":
        hm.TEMPLATE_RADII[1:, 1:] *= k
    elif name == "taper":
        hm.TEMPLATE_RADII[:, 2:] *= np.array([1 - k / 3, 1 - 2 * k / 3, 1 - k])
    elif name == "thumbfat":
        hm.TEMPLATE_RADII[0] *= k
    elif name == "palmthick":
        f_palm = rd.palm_radius
        _set("palm_radius", lambda radii, *a, **kw: k * f_palm(radii, *a, **kw))
    elif name == "forearm":
        f_arm = rd.forearm_primitive

        def arm(*a, **kw):
            p = f_arm(*a, **kw)
            return dataclasses.replace(p, ra=p.ra * k, rb=p.rb * k)
        _set("forearm_primitive", arm)
    elif name == "palmlift":
        wrap_app(lambda app: setattr(app, "palm", np.clip(app.skin + k / 0.4 * (app.palm - app.skin), 0, 1)))
    elif name == "amb":
        wrap_app(lambda app: setattr(app, "ambient", app.ambient + k * (1 - app.ambient)))
    elif name == "tint":
        wrap_app(lambda app: setattr(app, "light_color", 1 + k * (app.light_color - 1)))
        f_cam = synth.camera_effects

        class FirstGainsScaled:  # camera_effects' first draw is the white-balance gains
            def __init__(self, rng):
                self.rng, self.n = rng, 0

            def uniform(self, *a, **kw):
                x = self.rng.uniform(*a, **kw)
                self.n += 1
                return 1 + k * (x - 1) if self.n == 1 else x

            def __getattr__(self, attr):
                return getattr(self.rng, attr)
        _set("camera_effects", lambda image, rng: f_cam(image, FirstGainsScaled(rng)))
    elif name == "noshadow":
        f_sh = rd.cast_shadow
        _set("cast_shadow", lambda img, mask, offset, strength, blur: f_sh(img, mask, offset, 0.0, blur))
    elif name == "bggray":
        f_bg = rd.random_background
        _set("random_background", lambda rng, size, skin=None, style="v1": f_bg(rng, size, skin, style) * 0 + np.float32(0.5))
    elif name == "bgnopat":
        f_bg2 = rd.random_background
        _set("random_background", lambda rng, size, skin=None, style="v1": f_bg2(_NoPatterns(rng), size, skin, style))
    elif name == "bgplain":
        paired_background(lambda f, rng, size, skin, style: f(_NoPatterns(rng), size, skin, style))
    elif name == "bgpatterns":
        paired_background(lambda f, rng, size, skin, style: f(rng, size, skin, "v1"))
    elif name == "ss" and k == 2:
        f_scene = synth.render_scene

        def scene2(scene, focal, princpt, size, app, background, joints=None, dorsal=None, shadow=None, look=None):
            out = f_scene(scene, focal, princpt, size, app, background, joints, dorsal, shadow, look)
            if look is not None:  # the image again at twice the size (pixel centres kept), averaged 2 x 2
                look2 = dataclasses.replace(look, mottle=None if look.mottle is None else look.mottle.repeat(2, 0).repeat(2, 1))
                sh2 = None if shadow is None else (np.asarray(shadow[0]) * 2, shadow[1])
                big = f_scene(scene, np.asarray(focal) * 2, np.asarray(princpt) * 2 + 0.5, 2 * size, app,
                              np.asarray(background).repeat(2, 0).repeat(2, 1), joints, dorsal, sh2, look2)
                out["image"] = big["image"].reshape(size, 2, size, 2, 3).mean((1, 3))
            return out
        _set("render_scene", scene2)
    elif name == "web":
        f_vol = rd.palm_volumes

        def volumes(j, radii, x, z, r_palm):
            rows = f_vol(j, radii, x, z, r_palm)
            ch = [synth.sk.FINGER_CHAINS[n] for n in hm.FINGERS]
            for f in (1, 2, 3):
                p, q = (j[ch[g][1]] + k * (j[ch[g][2]] - j[ch[g][1]]) - 0.2 * radii[g, 1] * z for g in (f, f + 1))
                rows.append((rd.CAPSULE, p, q, q, 0.6 * radii[f, 1], 0.6 * radii[f + 1, 1]))
            return rows
        _set("palm_volumes", volumes)
    elif name == "vol":
        f_v = rd.palm_volumes
        _set("palm_volumes", lambda *a: [(kd, p, q, c, k * ra, k * rb) for kd, p, q, c, ra, rb in f_v(*a)])
    elif name == "spread":
        b = hm.TEMPLATE_BASES
        b[1:, 0] = b[2, 0] + (b[1:, 0] - b[2, 0]) * k
    elif name == "len":
        hm.TEMPLATE_LENGTHS[1:] *= k
    elif name == "thumblen":
        hm.TEMPLATE_LENGTHS[0] *= k
    elif name == "converge":
        f_fk = hm.forward_kinematics

        def fk(pose, shape, side="right"):
            abd = np.array(pose.abduction, float)
            w = k * np.clip(np.asarray(pose.flexion, float)[1:, 0] / 90.0, 0, 1)
            splay = (hm.REST_SPLAY[1:] + hm.ABDUCTION_SIGN[1:] * abd[1:]) * (1 - w)
            abd[1:] = (splay - hm.REST_SPLAY[1:]) / hm.ABDUCTION_SIGN[1:]
            return f_fk(dataclasses.replace(pose, abduction=abd), shape, side)
        hm.forward_kinematics = fk
    else:
        raise ValueError(f"unknown variant {variant!r}; see the module docstring")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("variants", help="e.g. noao or palmthick1.3+forearm1.15 ('base': none)")
    p.add_argument("out")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--interacting-frac", type=float, default=0.0)
    p.add_argument("--num", type=int, default=300)
    p.add_argument("--size", type=int, default=256)
    a = p.parse_args(argv)
    from h2t_lib.data import synth

    for v in a.variants.split("+"):
        if v != "base":
            try:
                apply(v)
            except ValueError as e:
                print(f"realism_variants: {e}", file=sys.stderr)
                return 2
    print(synth.write_dataset(a.out, "test", a.num, a.size, a.seed, a.interacting_frac, progress=False, style="v2"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
