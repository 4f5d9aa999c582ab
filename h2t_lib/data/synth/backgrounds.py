"""Random textured backgrounds (noise, blobs, gradients; "v1" also stripes and checker boards) and cast shadows."""
from __future__ import annotations

import colorsys
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from h2t_lib.data.synth.shading import _smoothstep


def _random_color(rng, s=(0.05, 0.8), v=(0.1, 0.95)):
    return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*s), rng.uniform(*v)), dtype=np.float32)


def _value_noise(rng, size, cells):
    small = (rng.uniform(size=(cells, cells, 3)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0


@lru_cache(maxsize=8)
def _unit_grid(S: int):
    """(yy, xx): (S, S) float32 pixel rows / columns divided by S (in [0, 1)); read-only, made once per size."""
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) / S
    yy.flags.writeable = xx.flags.writeable = False
    return yy, xx


def _mix(c0, c1, w):
    """``c0 + w (c1 - c0)``: (S, S) float32 weights w between two (3,) float32 colours -> (S, S, 3) float32.

    Channel by channel: the same numbers as broadcasting ``w[..., None]`` against the colours, which
    numpy runs three values at a time (several times slower on a whole image)."""
    out = np.empty(w.shape + (3,), np.float32)
    for ch in range(3):
        out[..., ch] = c0[ch] + w * (c1 - c0)[ch]
    return out


#: style "v2"'s background layers in place of the regular patterns (:func:`random_background`)
PATTERN_STANDINS = {"stripes": "noise", "checker": "blobs"}


def random_background(rng: np.random.Generator, size: int, skin=None, style: str = "v1") -> np.ndarray:
    """A random textured background (size, size, 3) float32 in [0, 1].

    A gradient, then one to three of: multi-octave value noise, stripes, a checker
    board, random blobs; sometimes a skin-coloured blob (a distractor, as faces and
    arms are in real images) when ``skin`` (3,) is given. Drawn at half the size (at least 32,
    at most 128 px) and upsampled: backgrounds are out of focus anyway, and it keeps rendering fast.
    ``style`` "v2": the same choice of layers, but stripes are painted as noise and checker boards as
    blobs (:data:`PATTERN_STANDINS`; MediaPipe finds more of the same hands in front of them,
    docs/realism.md round 6), drawn at a quarter of the size (at least 32, at most 128 px; the stand-ins
    cost more than the patterns). ValueError for another style.
    """
    if style not in ("v1", "v2"):
        raise ValueError(f"style must be 'v1' or 'v2', got {style!r}")
    S = int(min(max(size // (4 if style == "v2" else 2), 32), 128, size))
    patterns = style == "v1"
    yy, xx = _unit_grid(S)
    ang = rng.uniform(0, 2 * np.pi)
    g = np.float32(np.cos(ang)) * xx + np.float32(np.sin(ang)) * yy
    g = (g - g.min()) / max(float(np.ptp(g)), 1e-6)
    c0, c1 = _random_color(rng), _random_color(rng)
    img = _mix(c0, c1, g)
    for kind in rng.choice(["noise", "stripes", "checker", "blobs"], size=rng.integers(1, 4), replace=False):
        kind = kind if patterns else PATTERN_STANDINS.get(kind, kind)
        alpha = np.float32(rng.uniform(0.3, 1.0))
        if kind == "noise":
            layer = 0.6 * _value_noise(rng, S, int(rng.integers(3, 7))) + 0.4 * _value_noise(rng, S, int(rng.integers(10, 24)))
            layer = layer * np.float32(0.6) + _random_color(rng) * np.float32(0.4)
        elif kind == "stripes":
            period = rng.uniform(0.04, 0.25)
            a = rng.uniform(0, np.pi)
            wave = np.sin(np.float32(2 * np.pi / period) * (np.float32(np.cos(a)) * xx + np.float32(np.sin(a)) * yy)
                          + np.float32(rng.uniform(0, 6.3)))
            m = _smoothstep(np.float32(-0.15), np.float32(0.15), wave * np.float32(rng.uniform(0.3, 3.0)))
            c0, c1 = _random_color(rng), _random_color(rng)
            layer = _mix(c0, c1, m)
        elif kind == "checker":
            cell = rng.uniform(0.05, 0.2)
            m = (np.floor(xx / cell) + np.floor(yy / cell)) % 2
            c0, c1 = _random_color(rng), _random_color(rng)
            layer = _mix(c0, c1, m)
        else:  # blobs
            canvas = Image.fromarray((img * 255).astype(np.uint8))
            draw = ImageDraw.Draw(canvas)
            for _ in range(int(rng.integers(4, 14))):
                cx, cy = rng.uniform(-0.1, 1.1, size=2) * S
                rx, ry = rng.uniform(0.03, 0.3, size=2) * S
                draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=tuple(int(c) for c in _random_color(rng) * 255))
            layer = np.asarray(canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.5))), dtype=np.float32) / 255
        img = img + alpha * (layer - img)
    if skin is not None and rng.uniform() < 0.25:  # a skin-coloured distractor (a face, an arm, ...)
        canvas = Image.new("L", (S, S), 0)
        cx, cy = rng.uniform(0, 1, size=2) * S
        rx, ry = rng.uniform(0.1, 0.35, size=2) * S
        ImageDraw.Draw(canvas).ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
        m = np.asarray(canvas.filter(ImageFilter.GaussianBlur(S * 0.03)), dtype=np.float32)[..., None] / 255
        col = np.asarray(skin, dtype=np.float32) * (0.6 + 0.4 * (1 - yy[..., None]))
        img = img + m * (col - img)
    out = Image.fromarray((np.clip(img, 0.0, 1.0) * 255 + 0.5).astype(np.uint8))
    if S != size:
        out = out.resize((size, size), Image.BICUBIC)
    return np.asarray(out, dtype=np.float32) / 255.0


def cast_shadow(img, mask, offset, strength, blur):
    """Darken ``img`` (H, W, 3) under a soft copy of ``mask`` (H, W) bool shifted by ``offset`` (dx, dy) px.

    The mask is shifted, shrunk 4x, blurred by ``blur`` px (full-size units) and enlarged again.
    """
    H, W = mask.shape
    dx, dy = int(round(offset[0])), int(round(offset[1]))
    shifted = np.zeros_like(mask)
    ys, yd = slice(max(0, -dy), min(H, H - dy)), slice(max(0, dy), min(H, H + dy))
    xs, xd = slice(max(0, -dx), min(W, W - dx)), slice(max(0, dx), min(W, W + dx))
    shifted[yd, xd] = mask[ys, xs]
    small = (max(W // 4, 1), max(H // 4, 1))
    m = Image.fromarray(shifted.astype(np.uint8) * 255).resize(small, Image.BILINEAR)
    m = m.filter(ImageFilter.GaussianBlur(blur / 4)).resize((W, H), Image.BILINEAR)
    return img * (1.0 - np.float32(strength / 255.0) * np.asarray(m, dtype=np.float32)[..., None])
