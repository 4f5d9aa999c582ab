"""Appearance and shading: skin tones, Lambert + ambient + Blinn-Phong (style "v1") and skin shading
(style "v2": wrap light, crevices, creases).
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image

from h2t_lib.data.synth.primitives import DISTAL, FOREARM, PHALANX, Primitives, damped_cast
from h2t_lib.data.synth.raster import Raster


#: skin tones from light to dark (RGB in [0, 1]); a sample interpolates between neighbours
SKIN_TONES = np.array(
    [
        [0.97, 0.82, 0.72],
        [0.92, 0.72, 0.60],
        [0.82, 0.60, 0.46],
        [0.68, 0.47, 0.34],
        [0.52, 0.35, 0.25],
        [0.36, 0.24, 0.17],
    ]
)


@dataclass
class Appearance:
    """Colours and light of a sample. skin / palm / nail: (2, 3) RGB per hand (right, left);
    sleeve: (3,) RGB or None for bare forearms; light_dir: (3,) unit vector towards the light
    (camera frame); ambient, specular, shininess: shading constants; light_color: (3,)."""

    skin: np.ndarray
    palm: np.ndarray
    nail: np.ndarray
    sleeve: np.ndarray | None
    light_dir: np.ndarray
    ambient: float = 0.35
    specular: float = 0.08
    shininess: float = 20.0
    light_color: np.ndarray | None = None

    def __post_init__(self):
        if self.light_color is None:
            self.light_color = np.ones(3)


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """A random skin tone (both hands alike, not identical), palm and nail tints, sleeve, light."""
    k = rng.uniform(0, len(SKIN_TONES) - 1)
    i = int(min(k, len(SKIN_TONES) - 2))
    base = SKIN_TONES[i] + (k - i) * (SKIN_TONES[i + 1] - SKIN_TONES[i])
    base = np.clip(base * rng.uniform(0.9, 1.1, size=3), 0.05, 1.0)
    skin = np.clip(base[None] * rng.normal(1.0, 0.035, size=(2, 3)), 0.03, 1.0)
    palm = np.clip(skin + 0.4 * (np.array([0.98, 0.78, 0.72]) - skin), 0, 1)  # palms are lighter, pinker
    nail = np.clip(skin + 0.55 * (np.array([1.0, 0.86, 0.84]) - skin), 0, 1)
    sleeve = None
    if rng.uniform() < 0.6:
        h, s, v = rng.uniform(), rng.uniform(0.1, 0.8), rng.uniform(0.15, 0.9)
        sleeve = np.array(colorsys.hsv_to_rgb(h, s, v))
    light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 0.6), -rng.uniform(0.4, 1.2)])  # from the camera side
    light /= np.linalg.norm(light)
    tint = np.clip(rng.normal(1.0, 0.05, size=3), 0.85, 1.15)
    return Appearance(skin, palm, nail, sleeve, light, float(rng.uniform(0.25, 0.5)),
                      float(rng.uniform(0.0, 0.15)), float(rng.uniform(8, 30)), tint)


def _smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _dot(u, v):
    """Row-wise dot products of (N, 3) arrays."""
    return np.einsum("ij,ij->i", u, v)


def _normalize_rows(v):
    """Divide each row of ``v`` (N, 3) by its length, in place; returns v. Column by column: the
    same numbers as ``v /= length[:, None]``, which numpy runs three values at a time (slower)."""
    length = np.sqrt(_dot(v, v))
    for ch in range(3):
        v[:, ch] /= length
    return v


def _albedo(raster: Raster, prims: Primitives, app: Appearance, idx, cuff: float = 0.0):
    """Per covered pixel ``idx`` (N,): (albedo (N, 3), normal (N, 3), t (N,), hand (N,), part (N,),
    s (N,)): the hand's skin, blended to the palm tone where the normal turns away from the back
    of the hand (s = n . dorsal: +1 back, -1 palm side), to the nail tone on the back of the distal
    phalanges, or the sleeve on the forearm from ``cuff`` (its t, 0..1) on."""
    f32 = np.float32
    p = raster.prim.reshape(-1)[idx]
    n = raster.normal.reshape(-1, 3)[idx]
    t = raster.t.reshape(-1)[idx]
    hand, part = prims.hand[p], prims.part[p]
    s = _dot(n, prims.dorsal.astype(f32)[p])  # +1 on the back of the hand, -1 on the palm side
    skin, palm, nail = (q.astype(f32) for q in (app.skin, app.palm, app.nail))
    w_palm = _smoothstep(f32(0.1), f32(-0.45), s)
    albedo = np.empty((len(p), 3), f32)  # skin + w_palm (palm - skin), channel by channel (see _normalize_rows)
    for ch in range(3):
        albedo[:, ch] = skin[hand, ch] + w_palm * (palm - skin)[hand, ch]
    d = np.flatnonzero(part == DISTAL)
    w_nail = _smoothstep(f32(0.45), f32(0.75), s[d]) * _smoothstep(f32(0.35), f32(0.55), t[d])
    albedo[d] += w_nail[:, None] * (nail[hand[d]] - albedo[d])
    if app.sleeve is not None:
        albedo[(part == FOREARM) & (t >= cuff)] = app.sleeve
    return albedo, n, t, hand, part, s


def _canvas(raster: Raster, background):
    """(a float32 copy of ``background`` as (H * W, 3), the flat indices of the hand pixels (N,))."""
    H, W = raster.depth.shape
    img = np.array(background, dtype=np.float32, copy=True).reshape(H * W, 3)
    return img, np.flatnonzero(raster.prim.reshape(-1) >= 0)


def _view_dirs(idx, W, focal, princpt):
    """(N, 3) unit vectors from the surface at pixels ``idx`` (flat, row-major, width W) towards the camera."""
    f32 = np.float32
    fx, fy = (float(v) for v in focal)
    cx, cy = (float(v) for v in princpt)
    view = np.empty((idx.size, 3), f32)
    view[:, 0] = (cx - idx % W) / fx
    view[:, 1] = (cy - idx // W) / fy
    view[:, 2] = -1.0
    return _normalize_rows(view)


def _specular(n, L, view, strength, shininess) -> np.ndarray:
    """Blinn-Phong highlight per pixel: strength * max(0, n.h)^shininess, h the half vector of L and view.

    n, view: (K, 3) unit normals and directions towards the camera; L: (3,) unit direction to the light -> (K,).
    """
    f32 = np.float32
    h = _normalize_rows(L + view)
    return f32(strength) * np.maximum(_dot(n, h), 0.0) ** f32(shininess)


def shade(raster: Raster, prims: Primitives, app: Appearance, background, focal, princpt) -> np.ndarray:
    """Composite shaded hands over ``background`` (H, W, 3) in [0, 1] -> (H, W, 3) float32.

    colour = albedo * light * (ambient + (1 - ambient) max(0, n.l) + fill) + specular * (n.h)^shininess,
    albedo from :func:`_albedo`.
    """
    H, W = raster.depth.shape
    img, idx = _canvas(raster, background)
    if idx.size == 0:
        return img.reshape(H, W, 3)
    f32 = np.float32
    albedo, n, _, _, _, _ = _albedo(raster, prims, app, idx)
    view = _view_dirs(idx, W, focal, princpt)
    L = np.asarray(app.light_dir, dtype=f32)
    diff = np.maximum(n @ L, 0.0)
    spec = _specular(n, L, view, app.specular, app.shininess)
    fill = f32(0.12) * np.clip(_dot(n, view), 0.0, 1.0)  # a touch of light from the camera side
    col = albedo * app.light_color.astype(f32) * (f32(app.ambient) + f32(1 - app.ambient) * diff + fill)[:, None]
    img[idx] = np.clip(col + spec[:, None], 0.0, 1.0)
    return img.reshape(H, W, 3)


# --------------------------------------------------------------------------- #
# Style "v2": skin shading
# --------------------------------------------------------------------------- #
#: colour of the light scattered under the skin (blood): the red channel wraps furthest round the terminator
SSS_TINT = np.array([0.22, 0.02, -0.04])


@dataclass
class SkinLook:
    """The extra appearance of style "v2" (drawn after the scene, appearance, background and shadow,
    see :func:`sample_skin_look`). wrap: how far diffuse light wraps round the terminator (0 =
    Lambert; the red channel wraps ``sss`` * :data:`SSS_TINT` further, a subsurface-like tint);
    crease: darkening of the flexion creases at the finger joints (palm side) and wrinkles
    (back); flush: reddening of the knuckles and fingertips; mottle: (h, w) low-frequency
    albedo variation, multiplied as (1 + mottle); ao: darkening of crevices (0..1); specular,
    shininess: a weak Blinn-Phong highlight; blend: smooth-union radius (mm) of
    :func:`rasterize_blended`; cuff: a sleeve starts this far along the forearm capsule (0 = at the
    wrist, as style "v1"; 1 = its far end), the wrist and the forearm before it in skin."""

    wrap: float = 0.45
    sss: float = 1.0
    crease: float = 0.25
    flush: float = 0.15
    mottle: np.ndarray | None = None
    ao: float = 0.35
    specular: float = 0.05
    shininess: float = 14.0
    blend: float = 3.5
    cuff: float = 0.3


def sample_skin_look(rng: np.random.Generator, size: int, finger_radius: float = 8.0) -> SkinLook:
    """A random :class:`SkinLook` for an image of ``size`` px; ``finger_radius`` (mm) sets the blend radius."""
    wrap, sss = rng.uniform(0.3, 0.6), rng.uniform(0.6, 1.4)
    crease, flush = rng.uniform(0.12, 0.35), rng.uniform(0.05, 0.25)
    cells = rng.uniform(size=(6, 6)).astype(np.float32)
    mottle = np.asarray(Image.fromarray(cells, mode="F").resize((size, size), Image.BICUBIC), dtype=np.float32)
    mottle = (mottle - 0.5) * np.float32(rng.uniform(0.04, 0.12))
    return SkinLook(wrap, sss, crease, flush, mottle, rng.uniform(0.2, 0.5), rng.uniform(0.02, 0.08),
                    rng.uniform(8, 24), float(rng.uniform(0.35, 0.5) * finger_radius))


def _box_sum(a, r):
    """Sums of (..., H, W) ``a`` over the (2r+1)^2 boxes around each pixel (zero outside the image), by cumulative sums."""
    *lead, H, W = a.shape
    k = 2 * r + 1
    c = np.zeros((*lead, H + k, W + k), a.dtype)  # a leading row and column of zeros, then r zeros each side
    c[..., r + 1:r + 1 + H, r + 1:r + 1 + W] = a
    c = c.cumsum(-2).cumsum(-1)
    return c[..., k:, k:] - c[..., :-k, k:] - c[..., k:, :-k] + c[..., :-k, :-k]


def crevice_occlusion(raster: Raster, radius: int, depth_scale: float) -> np.ndarray:
    """Screen-space ambient occlusion (H, W) in [0, 1]: how far a hand pixel lies behind the mean
    depth of the hand pixels around it (``radius`` px), over ``depth_scale`` mm. Crevices between
    fingers and under the thumb are behind their surroundings. The mean depth is a soft, slowly
    varying term: it is taken over every other pixel and row (radius halved) and repeated back up,
    a quarter of the work."""
    f32 = np.float32
    hand = raster.layer >= 0
    occ = np.zeros(hand.shape, f32)
    rows, cols = np.flatnonzero(hand.any(1)), np.flatnonzero(hand.any(0))
    if rows.size == 0:
        return occ
    box = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)  # the hands' bounding box: zeros outside
    hand, depth = hand[box], raster.depth[box]
    h2, d2 = hand[::2, ::2], depth[::2, ::2]
    z_sum, n = _box_sum(np.stack([np.where(h2, d2, 0.0), h2]).astype(f32), max(1, round(radius / 2)))
    zm = (z_sum / np.maximum(n, f32(1e-3))).repeat(2, 0).repeat(2, 1)[:hand.shape[0], :hand.shape[1]]
    occ[box] = np.where(hand, np.clip((depth - zm) / f32(depth_scale), 0.0, 1.0), 0.0)
    return occ


def shade_skin(raster: Raster, prims: Primitives, app: Appearance, look: SkinLook, background, focal,
               princpt) -> np.ndarray:
    """Style "v2" shading: composite skin-shaded hands over ``background`` (H, W, 3) -> (H, W, 3) float32.

    albedo: :func:`_albedo`, times (1 + mottle), reddened at the knuckles and fingertips
    (``flush``), darkened along the flexion creases (``crease``). Light, per colour channel c::

        diffuse_c = clip((n.l + w_c) / (1 + w_c), 0, 1),  w_c = wrap + sss * SSS_TINT_c   (wrap lighting)
        colour    = albedo * light' * (ambient * (1 - ao * occ) + (1 - ambient) * diffuse + fill)
                    + specular * (n.h)^shininess * (1 - ao * occ)

    with occ from :func:`crevice_occlusion` and light' = :func:`damped_cast` (light colour).
    """
    H, W = raster.depth.shape
    img, idx = _canvas(raster, background)
    if idx.size == 0:
        return img.reshape(H, W, 3)
    f32 = np.float32
    albedo, n, t, hand, part, s = _albedo(raster, prims, app, idx, look.cuff)
    if look.mottle is not None:
        albedo *= 1.0 + look.mottle.reshape(-1)[idx, None]
    skin = (part != FOREARM) | (t < look.cuff) if app.sleeve is not None else np.ones(idx.size, bool)
    finger = (part == PHALANX) | (part == DISTAL)
    near_joint = np.exp(-(np.minimum(t, np.where(part == DISTAL, 1.0, 1.0 - t)) / f32(0.07)) ** 2)
    crease = np.where(finger, near_joint, 0.0) * _smoothstep(f32(0.0), f32(-0.5), s)  # palm side of the joints
    wrinkle = np.where(finger, near_joint, 0.0) * _smoothstep(f32(0.2), f32(0.7), s) * f32(0.4)  # knuckle skin
    tip = np.where(part == DISTAL, _smoothstep(f32(0.5), f32(1.0), t), 0.0)
    flush = (np.clip(wrinkle + tip, 0.0, 1.0) * f32(look.flush))[:, None]
    albedo = albedo * (1.0 - flush * np.array([0.0, 0.35, 0.35], f32))
    albedo *= (1.0 - f32(look.crease) * np.clip(crease + wrinkle, 0.0, 1.0))[:, None] * skin[:, None] + ~skin[:, None]
    view = _view_dirs(idx, W, focal, princpt)
    L = np.asarray(app.light_dir, dtype=f32)
    ndl = (n @ L)[:, None]
    w = (f32(look.wrap) + f32(look.sss) * SSS_TINT.astype(f32))[None]
    diff = np.clip((ndl + w) / (1.0 + w), 0.0, 1.0)
    occ = f32(look.ao) * crevice_occlusion(raster, max(2, H // 40), 12.0).reshape(-1)[idx]
    spec = _specular(n, L, view, look.specular, look.shininess) * (1.0 - occ)
    fill = f32(0.1) * np.clip(_dot(n, view), 0.0, 1.0)
    light = f32(app.ambient) * (1.0 - occ)[:, None] + f32(1 - app.ambient) * diff + fill[:, None]
    col = albedo * damped_cast(app.light_color).astype(f32) * light
    img[idx] = np.clip(col + spec[:, None], 0.0, 1.0)
    return img.reshape(H, W, 3)
