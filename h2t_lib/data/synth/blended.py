"""The blended rasteriser (style "v2"): one smooth skin over the primitives of a layer."""
from __future__ import annotations

import numpy as np

from h2t_lib.data.synth.primitives import CAPSULE, FOREARM, NUM_LAYERS, PALM, Primitives, SLAB
from h2t_lib.data.synth.raster import Raster, _project, _slab_hits, _span_fragments
from h2t_lib.data.synth.shading import _dot


#: radius of the slab planes seen as spheres by the blended rasteriser (mm): flat to < 0.1 mm over a palm
_PLANE_RADIUS = 2.0e4


def _blend_capsule_fragments(prims, cap, fx, fy, cx, cy, W, H, blend):
    """Fragments of the capsules ``cap`` for :func:`rasterize_blended`.

    Like the hard rasteriser, but every pixel within ``blend`` mm of a capsule (on screen)
    becomes a fragment, hit or not (not for the forearm: it is alone in its layer), one per pixel
    and capsule (the capsules are not cut into pieces: :func:`_span_fragments` follows them row by row).
    Returns (prim id, pixel, ray direction vx, vy (the ray is X = lam (vx, vy, 1)), depth lam, hit,
    sphere centre (3, F), radius, t), all (F,) float32 but the first two, depth being the ray's hit
    of the sweep sphere, or its closest approach to the sphere centre when it misses.
    """
    f32 = np.float32
    fmax = max(fx, fy)
    a, b, ra, rb = prims.a[cap], prims.b[cap], prims.ra[cap], prims.rb[cap]
    grow = np.where(prims.part[cap] == FOREARM, 0.0, blend)  # how far (mm) beyond the capsule to look
    ua, va = _project(a, fx, fy, cx, cy)
    ub, vb = _project(b, fx, fy, cx, cy)
    pa = (ra + grow) / np.maximum(a[:, 2] - ra - grow, 1e-3) * fmax * 1.1  # the spans round outwards
    pb = (rb + grow) / np.maximum(b[:, 2] - rb - grow, 1e-3) * fmax * 1.1
    pid, px, py, count = _span_fragments(np.stack([ua, ub]), np.stack([va, vb]), np.stack([pa, pb]), W, H)
    vx = (px.astype(f32) - f32(cx)) / f32(fx)
    vy = (py.astype(f32) - f32(cy)) / f32(fy)
    A, B = a.astype(f32), b.astype(f32)
    anx, any_ = A[:, 0] / A[:, 2], A[:, 1] / A[:, 2]
    dnx, dny = B[:, 0] / B[:, 2] - anx, B[:, 1] / B[:, 2] - any_
    inv = 1.0 / np.maximum(dnx * dnx + dny * dny, f32(1e-12))
    rz_a = (1.1 * ra + grow).astype(f32) / A[:, 2]
    drz = (1.1 * rb + grow).astype(f32) / B[:, 2] - rz_a
    q = np.repeat(np.stack([anx, any_, dnx, dny, inv, rz_a, drz]), count, axis=1)  # per fragment (7, F)
    ex, ey = vx - q[0], vy - q[1]
    t = np.clip((ex * q[2] + ey * q[3]) * q[4], 0.0, 1.0)  # closest point on the projected axis
    ex -= t * q[2]
    ey -= t * q[3]
    rz = q[5] + t * q[6]
    keep = np.flatnonzero(ex * ex + ey * ey < rz * rz)
    pid, pix, vx, vy, t = pid[keep], (py * W + px)[keep], vx[keep], vy[keep], t[keep]
    count = np.bincount(pid, minlength=len(cap))  # kept fragments per capsule (still grouped by capsule)
    q = np.repeat(np.stack([A[:, 0], A[:, 1], A[:, 2], B[:, 0] - A[:, 0], B[:, 1] - A[:, 1], B[:, 2],
                            ra.astype(f32), (rb - ra).astype(f32)]), count, axis=1)  # per fragment (8, F)
    za, zb = q[2], q[5]
    t3 = t * za / ((1.0 - t) * zb + t * za)
    Cx, Cy, Cz = q[0] + t3 * q[3], q[1] + t3 * q[4], za + t3 * (zb - za)
    r = q[6] + t3 * q[7]
    vc = vx * Cx + vy * Cy + Cz
    vv = vx * vx + vy * vy + 1.0
    disc = vc * vc - vv * (Cx * Cx + Cy * Cy + Cz * Cz - r * r)
    lam = (vc - np.sqrt(np.maximum(disc, 0.0))) / vv  # a miss: the closest approach to the centre
    return cap[pid], pix, vx, vy, lam, disc > 0, np.stack([Cx, Cy, Cz]), r, t3


def _blend_slab_fragments(prims, slab, fx, fy, cx, cy, W, H):
    """Fragments of the slabs ``slab`` for :func:`rasterize_blended`: the rays that hit a slab's
    face over its triangle, each slab face given as a sphere of radius :data:`_PLANE_RADIUS`
    tangent to it (so capsules and slabs are blended by one formula). Same tuple as
    :func:`_blend_capsule_fragments`."""
    f32 = np.float32
    tid, px, py, vx, vy, lam, n, P0 = _slab_hits(prims, slab, fx, fy, cx, cy, W, H, spans=True)
    C = (P0 - _PLANE_RADIUS * n)[tid].astype(f32).T
    return (slab[tid], py * W + px, vx, vy, lam, np.ones(tid.size, bool), C, np.full(tid.size, _PLANE_RADIUS, f32),
            np.full(tid.size, 0.5, f32))


def rasterize_blended(prims: Primitives, focal, princpt, size: int, blend: float, num_layers: int = NUM_LAYERS,
                      near: float = 10.0) -> Raster:
    """Ray-cast the *smooth union* of the primitives of each layer (style "v2"). Same output as :func:`rasterize`.

    Every primitive is a signed distance d_i(X) = |X - C_i| - r_i (mm) to its sweep sphere nearest
    the pixel (a slab face: a huge sphere tangent to it). The layer's skin is F(X) = 0 with the
    polynomial smooth minimum of Quilez (k = ``blend`` mm)::

        m = min_i d_i,   h_i = max(0, 1 - (d_i - m) / k),   F = m - k/4 * sum_{i != argmin} h_i^2

    (exactly smin(a, b) = min - k h^2 / 4 for two primitives), so capsules meeting at a joint
    are joined by a fillet of size ~k instead of a crease. Per pixel and layer, F is evaluated
    at X0 = the first hard hit (or, off the hard silhouette, the closest approach to the nearest
    sphere), then one Newton step along the ray, ``lam = lam0 - F / (grad F . v)`` (-k <= step <= 0),
    gives the depth; the pixel is covered where the hard union is, or where F(X0) < 0 (the
    fillets). The normal is grad F = (1 - H/2) n_min + 1/2 sum h_i n_i (H = sum h_i, i != argmin),
    continuous across the joints. The palm's slabs and rims (part :data:`PALM`) are one piece:
    among them only the nearest counts (their faces coincide at the rims). prim / t are those of
    the nearest primitive (for the colours). A forearm is alone in its layer: it gets no blend
    margin (its fragments are its hard hits and the pixels next to them, and F = its own distance).
    """
    H = W = int(size)
    fx, fy = (float(v) for v in focal)
    cx, cy = (float(v) for v in princpt)
    f32 = np.float32
    k = f32(blend)
    HW = H * W
    parts = []
    margin = near + np.where(prims.part == FOREARM, 0.0, blend)
    cap = np.flatnonzero((prims.kind == CAPSULE) & (prims.a[:, 2] > margin + prims.ra) & (prims.b[:, 2] > margin + prims.rb))
    if cap.size:
        parts.append(_blend_capsule_fragments(prims, cap, fx, fy, cx, cy, W, H, blend))
    slab = np.flatnonzero((prims.kind == SLAB) & (np.min(np.stack([prims.a[:, 2], prims.b[:, 2], prims.c[:, 2]]), 0)
                                                  > near + prims.ra))
    if slab.size:
        parts.append(_blend_slab_fragments(prims, slab, fx, fy, cx, cy, W, H))
    n_keys = num_layers * HW
    if not parts:
        inf = np.full((num_layers, H, W), np.inf, f32)
        return Raster(inf, inf[0].copy(), np.full((H, W), -1, np.int64), np.full((H, W), -1, np.int8),
                      np.zeros((H, W, 3), f32), np.zeros((H, W), f32))
    pid, pix, vx, vy, lam, hit, C, r, tt = (np.concatenate(q, axis=-1) for q in zip(*parts))
    pix = pix.astype(np.int64)
    key = prims.layer[pid].astype(np.int64) * HW + pix
    # the (layer, pixel) keys that have fragments, numbered 0..U-1 (u per fragment); below, per-key arrays are (U,)
    has = np.zeros(n_keys, bool)
    has[key] = True
    keys = np.flatnonzero(has)
    slot = np.empty(n_keys, np.int64)
    slot[keys] = np.arange(keys.size)
    u, U = slot[key], keys.size
    # X0: the first hard hit per pixel and layer, else the nearest closest approach
    big = f32(1e6)
    first = np.full(U, np.inf, f32)
    np.minimum.at(first, u, lam.astype(f32) + np.where(hit, f32(0), big))
    hard = first < big
    lam0 = np.where(hard, first, first - big)
    l0 = lam0[u]
    D = np.stack([vx * l0, vy * l0, l0])
    D -= C  # (3, F): X0 - C_i
    dist = np.sqrt(D[0] * D[0] + D[1] * D[1] + D[2] * D[2])
    d = dist - r
    m = np.full(U, np.inf, f32)
    np.minimum.at(m, u, d)
    mu = m[u]
    is_min = d <= mu
    h = np.clip(1.0 - (d - mu) / k, 0.0, 1.0)
    palm = np.flatnonzero(prims.part[pid] == PALM)  # the palm's slabs and rims: only the nearest of them counts
    if palm.size:
        pm = np.full(U, np.inf, f32)
        up, dp = u[palm], d[palm]
        np.minimum.at(pm, up, dp)
        h[palm[dp > pm[up]]] = 0.0
    h[is_min] = 0.0
    F = m - k / 4 * np.bincount(u, h * h, U).astype(f32)
    kk = np.flatnonzero(hard | (F < 0))  # the covered keys (of the U); below, per covered key
    comp = np.full(U, -1, np.int64)
    comp[kk] = np.arange(kk.size)
    ci = comp[u]
    use = np.flatnonzero((ci >= 0) & ((h > 0) | is_min))
    ci, h, is_min, pid, tt = ci[use], h[use], is_min[use], pid[use], tt[use]
    Hs = np.bincount(ci, h, kk.size)
    w = np.where(is_min, 1.0 - 0.5 * Hs[ci], 0.5 * h)  # grad F = (1 - H/2) n_min + 1/2 sum h_i n_i
    w /= np.maximum(dist[use], f32(1e-6))  # n_i = D_i / |D_i|
    D = np.take(D, use, axis=1)
    grad = np.stack([np.bincount(ci, w * D[c], kk.size) for c in range(3)], axis=1).astype(f32)
    grad /= np.maximum(np.sqrt(_dot(grad, grad)), f32(1e-6))[:, None]
    # one Newton step along the ray X = lam (vx, vy, 1)
    kp = keys[kk] % HW
    gv = grad[:, 0] * ((kp % W).astype(f32) - f32(cx)) / f32(fx) + grad[:, 1] * ((kp // W).astype(f32) - f32(cy)) / f32(fy)
    step = np.clip(-F[kk] / np.minimum(gv + grad[:, 2], f32(-0.3)), -k, 0.0)  # the union only grows
    layers = np.full(n_keys, np.inf, f32)
    layers[keys[kk]] = lam0[kk] + step
    layers = layers.reshape(num_layers, HW)
    win, depth = np.zeros(HW, np.int64), layers[0].copy()
    for layer in range(1, num_layers):  # the nearest layer per pixel
        closer = layers[layer] < depth
        win[closer], depth[closer] = layer, layers[layer][closer]
    seen = np.flatnonzero(np.isfinite(depth))
    wc = comp[slot[win[seen] * HW + seen]]
    prim_c, t_c = np.full(kk.size, -1, np.int64), np.zeros(kk.size, f32)
    nearest = np.flatnonzero(is_min)
    prim_c[ci[nearest]], t_c[ci[nearest]] = pid[nearest], tt[nearest]
    prim_img, layer_img = np.full(HW, -1, np.int64), np.full(HW, -1, np.int8)
    normal_img, t_img = np.zeros((HW, 3), f32), np.zeros(HW, f32)
    prim_img[seen], layer_img[seen], normal_img[seen], t_img[seen] = prim_c[wc], win[seen], np.take(grad, wc, 0), t_c[wc]
    return Raster(layers.reshape(num_layers, H, W), depth.reshape(H, W), prim_img.reshape(H, W),
                  layer_img.reshape(H, W), normal_img.reshape(H, W, 3), t_img.reshape(H, W))
