"""One sample: render a scene, its per-joint visibility, its box, the look and the camera effects."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from h2t_lib import camera as camlib, skeleton as sk
from h2t_lib.data.synth.backgrounds import cast_shadow, random_background
from h2t_lib.data.synth.blended import rasterize_blended
from h2t_lib.data.synth.primitives import damped_cast, joint_cover
from h2t_lib.data.synth.raster import rasterize
from h2t_lib.data.synth.rig import (CAPTURE, CameraRig, DEFAULT_STYLE, OCCLUSION_LEVELS, VIS_TOLERANCE, _SMOOTH,
                                    camera_rig, check_style)
from h2t_lib.data.synth.scene import Scene, occlusion_from_layers, sample_scene
from h2t_lib.data.synth.shading import Appearance, SkinLook, sample_appearance, sample_skin_look, shade, shade_skin


def joint_visibility(joints_cam, cover, depth, focal, princpt, tol: float = VIS_TOLERANCE) -> np.ndarray:
    """Per-joint visibility from the depth buffer. (J,) bool

    A joint is visible when its pixel lies in the image and the first surface the
    renderer drew there is not in front of the joint by more than the joint's own
    tissue (``cover``, see :func:`synth.joint_cover`) plus ``tol`` mm.
    """
    H, W = depth.shape
    uv = camlib.cam_to_pixel(np.asarray(joints_cam, float), np.asarray(focal, float), np.asarray(princpt, float))
    col, row = np.round(uv[:, 0]).astype(np.int64), np.round(uv[:, 1]).astype(np.int64)
    inside = (col >= 0) & (col < W) & (row >= 0) & (row < H) & (joints_cam[:, 2] > 0)
    d = depth[row.clip(0, H - 1), col.clip(0, W - 1)]
    return inside & (d >= joints_cam[:, 2] - cover - tol)


def _bbox(mask, uv, size):
    """[x, y, w, h] around the pixels of ``mask`` (S, S) bool (each pixel a unit square) and the
    points ``uv`` (N, 2) px that lie in the image; the whole image when there are none."""
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    xs, ys = cols[[0, -1]] if cols.size else cols, rows[[0, -1]] if rows.size else rows  # the extreme pixels
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < size) & (uv[:, 1] >= 0) & (uv[:, 1] < size)
    x = np.concatenate([xs - 0.5, xs + 0.5, uv[inside, 0]])
    y = np.concatenate([ys - 0.5, ys + 0.5, uv[inside, 1]])
    if x.size == 0:
        return [0.0, 0.0, float(size), float(size)]
    x0, x1 = max(float(x.min()), 0.0), min(float(x.max()), size - 1.0)
    y0, y1 = max(float(y.min()), 0.0), min(float(y.max()), size - 1.0)
    return [round(x0, 2), round(y0, 2), round(max(x1 - x0, 1.0), 2), round(max(y1 - y0, 1.0), 2)]


def render_scene(scene: Scene, focal, princpt, size: int, appearance: Appearance, background,
                 joints=None, dorsal=None, shadow=None, look: SkinLook | None = None) -> dict:
    """Draw a scene (no blur, no noise) and read the annotations the renderer gives.

    joints / dorsal: (42, 3) to draw instead of the scene's own kinematics (render_sample
    passes the joints as they come back from the world frame). background: (S, S, 3) in
    [0, 1]. shadow: None or ((dx, dy) px, strength) of the hands' shadow on the background.
    look: None for style "v1" (capsules and slabs, :func:`synth.shade`), or the
    :class:`synth.SkinLook` of style "v2" (a smooth skin, :func:`synth.rasterize_blended` and
    :func:`synth.shade_skin`).
    Returns image (S, S, 3) float32, joint_vis (42,) float32, layer (S, S) int8 (-1 background,
    0 right hand, 1 right forearm, 2 left hand, 3 left forearm), occlusion, raster, primitives.
    """
    if joints is None:
        joints, dorsal = scene.kinematics()
    prims = scene.primitives(joints, dorsal, style="v1" if look is None else "v2")
    if look is None:
        ras = rasterize(prims, focal, princpt, size)
    else:
        ras = rasterize_blended(prims, focal, princpt, size, look.blend)
    layer = ras.layer
    if shadow is not None:
        background = cast_shadow(background, layer >= 0, shadow[0], shadow[1], size * 0.02)
    if look is None:
        img = shade(ras, prims, appearance, background, focal, princpt)
    else:
        img = shade_skin(ras, prims, appearance, look, background, focal, princpt)
    vis = np.zeros(sk.NUM_JOINTS, np.float32)
    for h in scene.present:
        sl = sk.HAND_SLICE[h]
        cover = joint_cover(joints[sl], prims, sk.HANDS.index(h))
        vis[sl] = joint_visibility(joints[sl], cover, ras.depth, focal, princpt)
    occ = occlusion_from_layers(ras.layers) if scene.hand_type == "interacting" else 0.0
    return {"image": img, "joint_vis": vis, "layer": layer.astype(np.int8), "occlusion": occ, "raster": ras,
            "primitives": prims}


def render_sample(rng_or_seed=0, size: int = 256, hand_type: str | None = None, interacting_frac: float = 0.6,
                  occlusion: str = "any", rig: CameraRig | None = None, camera: int | None = None,
                  interaction: str | None = None, style: str = DEFAULT_STYLE) -> dict:
    """Render one random sample; everything a notebook wants to look at.

    rng_or_seed: a ``np.random.Generator`` or an int seed. hand_type: "right" | "left" |
    "interacting" or None (interacting with probability ``interacting_frac``, else a
    random single hand). occlusion: "low" | "medium" | "high" | "any" (two-hand samples).
    rig / camera: the camera rig (default ``camera_rig(size)``) and camera index (default random).
    interaction: force one kind of two-hand interaction (see :data:`INTERACTIONS`).
    style: "v2" (:data:`DEFAULT_STYLE`) or "v1" (:data:`STYLES`); both draw the same scene and
    appearance from a seed, so a seed gives the same poses, views and skin tones in both looks (their
    backgrounds differ: v1's have stripes and checker boards, see :func:`synth.random_background`;
    and so does everything drawn after the background).

    Returns a dict: image (S, S, 3) uint8; joints_world, joints_cam (42, 3) mm; joints_img
    (42, 2) px; joint_valid, joint_vis (42,) float32 0/1; hand_type; interaction; camera
    (id), capture, camrot (3, 3), campos (3,), focal (2,), princpt (2,); bbox [x, y, w, h]
    around the visible hands; occlusion (float, fraction of the more hidden hand covered by
    the other); occlusion_level; layer (S, S) int8 map (-1 background, 0 right hand,
    1 right forearm, 2 left hand, 3 left forearm); scene, appearance, background, look (to re-render;
    look: None for "v1", the :class:`synth.SkinLook` of "v2").

    Used in notebook 01.
    """
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)
    size = int(size)
    if occlusion not in OCCLUSION_LEVELS:
        raise ValueError(f"occlusion must be one of {OCCLUSION_LEVELS}, got {occlusion!r}")
    check_style(style)
    rig = camera_rig(size) if rig is None else rig
    if hand_type is None:
        hand_type = "interacting" if rng.uniform() < interacting_frac else ("right" if rng.uniform() < 0.5 else "left")
    cam = int(rng.integers(len(rig))) if camera is None else int(camera)
    focal, princpt = rig.focal[cam], rig.princpt[cam]
    scene, _ = sample_scene(rng, hand_type, focal, princpt, size, occlusion, interaction)
    app = sample_appearance(rng)
    background = random_background(rng, size, skin=app.skin[0], style=style)

    # annotations go through the world frame exactly as a reader will do it
    cam_scene, dorsal = scene.kinematics()
    world = np.round(camlib.cam_to_world(cam_scene, rig.camrot[cam], rig.campos[cam]), 4)
    joints_cam = camlib.world_to_cam(world, rig.camrot[cam], rig.campos[cam])
    joints_img = camlib.cam_to_pixel(joints_cam, focal, princpt)

    shadow = None
    if rng.uniform() < 0.7:  # soft shadow of the hands on the "wall" behind them
        off = -app.light_dir[:2] / max(abs(app.light_dir[2]), 0.3) * size * rng.uniform(0.02, 0.06)
        shadow = (off, rng.uniform(0.2, 0.45))
    look = sample_look(rng, scene, size, style)
    out = render_scene(scene, focal, princpt, size, app, background, joints_cam, dorsal, shadow, look)
    if look is not None:
        image = camera_effects(out["image"], rng)
    else:
        pil = Image.fromarray((out["image"] * 255 + 0.5).astype(np.uint8))
        pil = Image.blend(pil, pil.filter(_SMOOTH), rng.uniform(0.3, 1.0))  # mild blur (sigma up to ~0.7 px)
        amp = int(rng.integers(2, 8))  # sensor noise: uniform integers in [-amp, amp]
        noise = rng.integers(-amp, amp + 1, size=(size, size, 3), dtype=np.int16)
        image = np.clip(np.asarray(pil, dtype=np.int16) + noise, 0, 255).astype(np.uint8)

    valid = np.zeros(sk.NUM_JOINTS, np.float32)
    for h in scene.present:
        valid[sk.HAND_SLICE[h]] = 1.0
    layer = out["layer"]
    bbox = _bbox((layer == 0) | (layer == 2), joints_img[valid > 0], size)
    vis, occ = out["joint_vis"], out["occlusion"]
    return {
        "image": image,
        "joints_world": world,
        "joints_cam": joints_cam,
        "joints_img": joints_img,
        "joint_valid": valid,
        "joint_vis": vis,
        "hand_type": hand_type,
        "interaction": scene.interaction,
        "capture": CAPTURE,
        "camera": rig.names[cam],
        "camrot": rig.camrot[cam],
        "campos": rig.campos[cam],
        "focal": np.asarray(focal, np.float64),
        "princpt": np.asarray(princpt, np.float64),
        "bbox": bbox,
        "occlusion": occ,
        "occlusion_level": occlusion if hand_type == "interacting" else "none",
        "layer": layer,
        "scene": scene,
        "appearance": app,
        "background": background,
        "look": look,
    }


def sample_look(rng: np.random.Generator, scene: Scene, size: int, style: str = DEFAULT_STYLE) -> SkinLook | None:
    """The extra appearance of ``style`` (:data:`STYLES`), drawn from ``rng`` after the scene, appearance,
    background and shadow: None for "v1" (draws nothing), a :class:`synth.SkinLook` for "v2" (its
    blend radius from the scene's finger radii) for an image of ``size`` px. Raises ValueError for another style."""
    if check_style(style) == "v1":
        return None
    radius = float(np.mean([scene.shapes[h].radii[1:, 1:4].mean() for h in scene.present]))
    return sample_skin_look(rng, size, radius)


def camera_effects(image, rng: np.random.Generator) -> np.ndarray:
    """Style "v2": what a camera does to the rendered float image (S, S, 3) in [0, 1] -> uint8 (S, S, 3).

    White balance (a gain of 0.92-1.08 per channel drawn, :data:`synth.COLOUR_CAST` of its spread kept:
    0.976-1.024) and gamma (0.85-1.15); defocus, a blur of
    sigma 0.5-1.5 px per 256 px of image (docs/realism.md: blur hides the hard edges that put
    MediaPipe off; one box filter of that variance, :func:`box_radius`, is a third of the cost of
    PIL's Gaussian); sensor noise, Gaussian, sigma 1-4 grey levels in brightness plus a third of
    that per channel in 2 x 2 blocks (colour noise is coarser after demosaicing); half the time a
    JPEG round trip at quality 55-90.
    """
    f32 = np.float32
    size = image.shape[0]
    gain, gamma = rng.uniform(0.92, 1.08, size=3), rng.uniform(0.85, 1.15)
    gain = damped_cast(gain)  # what auto white balance leaves of a colour cast
    levels = np.arange(256) / 255.0
    lut = np.concatenate([np.clip(levels * g, 0.0, 1.0) ** gamma for g in gain]) * 255 + 0.5  # (768,) per channel
    levels8 = np.clip(image, 0.0, 1.0)  # (S, S, 3) float32 -> 8 bits, in place on the copy
    levels8 *= 255
    levels8 += 0.5
    pil = Image.fromarray(levels8.astype(np.uint8)).point(lut.astype(np.uint8).tolist())
    pil = pil.filter(ImageFilter.BoxBlur(box_radius(rng.uniform(0.5, 1.5) * size / 256)))
    sigma = f32(rng.uniform(1.0, 4.0))
    half = (size + 1) // 2
    noise = (rng.standard_normal((half, half, 3), dtype=f32) / f32(3)).repeat(2, 0).repeat(2, 1)[:size, :size]
    noise += rng.standard_normal((size, size, 1), dtype=f32)  # colour in 2 x 2 blocks + grey; in place from here
    noise *= sigma
    noise += np.asarray(pil, f32)
    noise += f32(0.5)
    out = np.clip(noise, 0, 255, out=noise).astype(np.uint8)
    if rng.uniform() < 0.5:
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=int(rng.integers(55, 91)))
        out = np.asarray(Image.open(buf))  # an RGB JPEG decodes to RGB
    return out


def box_radius(sigma: float) -> float:
    """The radius r of PIL's ``BoxBlur`` whose kernel has standard deviation ``sigma`` (px).

    ``BoxBlur(r)``, r = n + f (n whole, 0 <= f < 1), averages 2n + 1 pixels with weight 1 and the next
    two with weight f, so its variance is (n (n+1) (2n+1) / 3 + 2 f (n+1)^2) / (2n + 1 + 2f); solved for f.
    """
    var = float(sigma) ** 2
    n = int((np.sqrt(1.0 + 12.0 * var) - 1.0) // 2)  # the largest n with n (n+1) / 3 <= var
    a = n * (n + 1) * (2 * n + 1) / 3.0
    return n + (var * (2 * n + 1) - a) / (2.0 * (n + 1) ** 2 - 2.0 * var)
