"""The z-buffer rasteriser over pixel fragments (style "v1"): the nearest hit per pixel and layer."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from h2t_lib.data.synth.primitives import CAPSULE, NUM_LAYERS, Primitives, SLAB, _cross


@dataclass
class Raster:
    """Output of :func:`rasterize` (H = W = size).

    layers: (L, H, W) depth per layer (inf where empty); depth: (H, W) composite depth;
    prim: (H, W) index of the visible primitive (-1 background); layer: (H, W) its layer
    (-1 background); normal: (H, W, 3) unit surface normal; t: (H, W) position along the
    visible capsule (0 at a, 1 at b).
    """

    layers: np.ndarray
    depth: np.ndarray
    prim: np.ndarray
    layer: np.ndarray
    normal: np.ndarray
    t: np.ndarray


def _project(p, fx, fy, cx, cy):
    return p[:, 0] / p[:, 2] * fx + cx, p[:, 1] / p[:, 2] * fy + cy


def _split_capsules(a, b, ra, rb, fx, max_ratio=3.0):
    """Cut capsules whose screen length exceeds ``max_ratio`` times their screen radius into
    equal pieces (the union of the pieces is the same solid). Returns the pieces and, per
    piece, its source index and the interval [t0, t1] of the source it covers."""
    la = np.hypot(a[:, 0] / a[:, 2] - b[:, 0] / b[:, 2], a[:, 1] / a[:, 2] - b[:, 1] / b[:, 2]) * fx
    rmin = np.minimum(ra / a[:, 2], rb / b[:, 2]) * fx + 1.0
    n = np.clip(np.ceil(la / (max_ratio * rmin)), 1, 24).astype(np.int64)
    src = np.repeat(np.arange(len(n)), n)
    k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    t0, t1 = k / n[src], (k + 1) / n[src]
    d, dr = (b - a)[src], (rb - ra)[src]
    return (a[src] + t0[:, None] * d, a[src] + t1[:, None] * d, ra[src] + t0 * dr, ra[src] + t1 * dr, src, t0, t1)


def _fragments(x0, x1, y0, y1):
    """All pixels of all boxes [x0, x1] x [y0, y1] (inclusive, ints): (box id, col, row) of each."""
    bw, bh = np.maximum(x1 - x0 + 1, 0), np.maximum(y1 - y0 + 1, 0)
    n = bw * bh
    total = int(n.sum())
    bid = np.repeat(np.arange(len(n), dtype=np.int32), n)
    local = np.arange(total, dtype=np.int32) - np.repeat((np.cumsum(n) - n).astype(np.int32), n)
    w = bw.astype(np.int32)[bid]
    return bid, x0.astype(np.int32)[bid] + local % w, y0.astype(np.int32)[bid] + local // w


def _boxes(us, vs, rad, W, H):
    x0 = np.floor(np.min(us - rad, axis=0)).clip(0, W).astype(np.int64)
    x1 = np.ceil(np.max(us + rad, axis=0)).clip(-1, W - 1).astype(np.int64)
    y0 = np.floor(np.min(vs - rad, axis=0)).clip(0, H).astype(np.int64)
    y1 = np.ceil(np.max(vs + rad, axis=0)).clip(-1, H - 1).astype(np.int64)
    return x0, x1, y0, y1


def _span_fragments(us, vs, pad, W, H):
    """The pixels within ``pad`` px of each of P shapes, by rows: (shape id, col, row) of each (F,),
    and the number of them per shape (P,).

    us, vs: (K, P) the shapes' vertices on screen (px), K = 2 for a segment, 3 for a filled
    triangle; pad: (K, P) px (the largest per shape is used). Tighter than a bounding box for
    slanted shapes: per row y, the span is the x-range of the shape's edges clipped to the band
    [y - pad, y + pad], grown by pad (a superset of the pixels within pad of the shape); for a
    segment also at most pad / sin(its angle to the row) from its line. The fragments come
    grouped by shape, shape 0 first, so a per-shape array ``v`` (..., P) is spread to them with
    ``np.repeat(v, count, axis=-1)`` (the same as ``v[..., id]``, several times faster).
    """
    x0, x1, y0, y1 = _boxes(us, vs, pad, W, H)
    p = pad.max(axis=0)
    ny = np.maximum(y1 - y0 + 1, 0)  # rows per shape; below, per row (R,): sid, y, and the shape's values spread by ny
    sid = np.repeat(np.arange(len(ny)), ny)
    y = np.repeat(y0, ny) + np.arange(ny.sum()) - np.repeat(np.cumsum(ny) - ny, ny)
    ps, K = np.repeat(p, ny), len(us)
    e0 = np.arange(1 if K == 2 else K)  # the edges (e0 -> e0 + 1; one for a segment), all rows at once: (E, R)
    ua, va = np.repeat(us[e0], ny, axis=1), np.repeat(vs[e0], ny, axis=1)
    ub, vb = np.repeat(us[(e0 + 1) % K], ny, axis=1), np.repeat(vs[(e0 + 1) % K], ny, axis=1)
    dv = np.where(np.abs(vb - va) > 1e-9, vb - va, 1e-9)
    ta, tb = (y - ps - va) / dv, (y + ps - va) / dv
    t_lo, t_hi = np.clip(np.minimum(ta, tb), 0, 1), np.clip(np.maximum(ta, tb), 0, 1)
    xa, xb = ua + t_lo * (ub - ua), ua + t_hi * (ub - ua)
    meets = (y >= np.minimum(va, vb) - ps) & (y <= np.maximum(va, vb) + ps)  # rows that meet no edge stay empty
    lo = np.where(meets, np.minimum(xa, xb), 1e9).min(0) - ps
    hi = np.where(meets, np.maximum(xa, xb), -1e9).max(0) + ps
    if K == 2:
        du, dv = ub[0] - ua[0], vb[0] - va[0]
        dv = np.where(np.abs(dv) > 1e-9, dv, 1e-9)
        x_line, half = ua[0] + (y - va[0]) * du / dv, ps * np.hypot(du, dv) / np.abs(dv)
        lo, hi = np.maximum(lo, x_line - half), np.minimum(hi, x_line + half)
    xs0 = np.maximum(np.floor(lo), np.repeat(x0, ny)).astype(np.int32)
    n = np.maximum(np.minimum(np.ceil(hi), np.repeat(x1, ny)).astype(np.int32) - xs0 + 1, 0)  # pixels per row
    px = np.arange(n.sum(), dtype=np.int32) - np.repeat(np.cumsum(n, dtype=np.int32) - n - xs0, n)
    count = np.bincount(sid, n, len(ny)).astype(np.int64)  # pixels per shape
    return np.repeat(sid, n), px, np.repeat(y.astype(np.int32), n), count


def _slab_hits(prims: Primitives, slab, fx, fy, cx, cy, W, H, spans: bool = False):
    """Rays that hit the faces of slabs ``slab`` over their triangles (each face the triangle's
    plane pushed r towards the camera). Returns (slab number (F,), col, row, ray direction vx, vy
    (the ray is X = lam (vx, vy, 1)), depth lam (F,), face normals (T, 3), pushed corners P0 (T, 3)). spans: test only the pixels of :func:`_span_fragments`
    instead of the triangles' bounding boxes (fewer; the same hits)."""
    f32 = np.float32
    fmax = max(fx, fy)
    V = np.stack([prims.a[slab], prims.b[slab], prims.c[slab]])  # (3, T, 3)
    r = prims.ra[slab]
    n = _cross(V[1] - V[0], V[2] - V[0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    n = np.where(((n * V[0]).sum(1) > 0)[:, None], -n, n)  # the face looking at the camera
    us, vs = _project(V.reshape(-1, 3), fx, fy, cx, cy)
    pad = np.repeat((r / np.maximum(V[..., 2].min(0) - r, 1e-3) * fmax * 1.05 + 1.0)[None], 3, 0)
    us, vs = us.reshape(3, -1), vs.reshape(3, -1)
    tid, px, py = _span_fragments(us, vs, pad, W, H)[:3] if spans else _fragments(*_boxes(us, vs, pad, W, H))
    vx = (px.astype(f32) - f32(cx)) / f32(fx)
    vy = (py.astype(f32) - f32(cy)) / f32(fy)
    # per triangle: the plane pushed r towards the camera, n . X = off, and barycentric helpers
    P0 = V[0] + r[:, None] * n  # a corner of the pushed triangle
    e0, e1 = V[1] - V[0], V[2] - V[0]
    d00, d01, d11 = (e0 * e0).sum(1), (e0 * e1).sum(1), (e1 * e1).sum(1)
    den = d00 * d11 - d01 * d01
    consts = np.stack([n[:, 0], n[:, 1], n[:, 2], (n * P0).sum(1), P0[:, 0], P0[:, 1], P0[:, 2],
                       *(e0.T), *(e1.T), d00 / den, d01 / den, d11 / den]).astype(f32)
    q = np.repeat(consts, np.bincount(tid, minlength=len(slab)), axis=1)  # (16, F): = consts[:, tid], tid being sorted
    ndv = q[0] * vx + q[1] * vy + q[2]
    ok = ndv < -0.02
    lam = q[3] / np.where(ok, ndv, f32(-1.0))  # ray X = lam (vx, vy, 1) meets the plane
    wx, wy, wz = vx * lam - q[4], vy * lam - q[5], lam - q[6]
    d20 = wx * q[7] + wy * q[8] + wz * q[9]
    d21 = wx * q[10] + wy * q[11] + wz * q[12]
    beta = q[15] * d20 - q[14] * d21
    gamma = q[13] * d21 - q[14] * d20
    inside = ok & (lam > 0) & (beta >= 0) & (gamma >= 0) & (beta + gamma <= 1)
    return tid[inside], px[inside], py[inside], vx[inside], vy[inside], lam[inside], n, P0


def rasterize(prims: Primitives, focal, princpt, size: int, num_layers: int = NUM_LAYERS, near: float = 10.0) -> Raster:
    """Ray-cast primitives into a size x size z-buffer with ``num_layers`` layers (see module doc)."""
    H = W = int(size)
    fx, fy = (float(v) for v in focal)
    cx, cy = (float(v) for v in princpt)
    fmax = max(fx, fy)
    f32 = np.float32
    layer_of = prims.layer
    hits = []  # per primitive kind: (prim id, pixel, depth, normal (F, 3), t)

    # ---------------- capsules ----------------
    cap = np.flatnonzero((prims.kind == CAPSULE) & (prims.a[:, 2] > near + prims.ra) & (prims.b[:, 2] > near + prims.rb))
    if cap.size:
        a, b, ra, rb, src, t0, t1 = _split_capsules(prims.a[cap], prims.b[cap], prims.ra[cap], prims.rb[cap], fmax)
        ua, va = _project(a, fx, fy, cx, cy)
        ub, vb = _project(b, fx, fy, cx, cy)
        # a sphere's outline is a little larger than r f / z: pad conservatively
        pa = ra / np.maximum(a[:, 2] - ra, 1e-3) * fmax * 1.05 + 1.0
        pb = rb / np.maximum(b[:, 2] - rb, 1e-3) * fmax * 1.05 + 1.0
        box = _boxes(np.stack([ua, ub]), np.stack([va, vb]), np.stack([pa, pb]), W, H)
        pid, px, py = _fragments(*box)
        vx = (px.astype(f32) - f32(cx)) / f32(fx)  # ray direction (vx, vy, 1)
        vy = (py.astype(f32) - f32(cy)) / f32(fy)
        A, B = a.astype(f32), b.astype(f32)
        anx, any_ = A[:, 0] / A[:, 2], A[:, 1] / A[:, 2]  # end points in normalised image coordinates
        dnx, dny = B[:, 0] / B[:, 2] - anx, B[:, 1] / B[:, 2] - any_
        inv = 1.0 / np.maximum(dnx * dnx + dny * dny, f32(1e-12))
        rz_a = ra.astype(f32) / A[:, 2]
        drz = rb.astype(f32) / B[:, 2] - rz_a
        # one gather of the per-piece constants: rows (F,) each
        q = np.take(np.stack([anx, any_, dnx, dny, inv, rz_a, drz]), pid, axis=1)
        # closest point of the projected segment, and a cheap 2D "inside" test first
        ex, ey = vx - q[0], vy - q[1]
        t = np.clip((ex * q[2] + ey * q[3]) * q[4], 0.0, 1.0)
        ex -= t * q[2]
        ey -= t * q[3]
        rz = (q[5] + t * q[6]) * f32(1.1)
        keep = ex * ex + ey * ey < rz * rz
        pid, px, py, vx, vy, t = pid[keep], px[keep], py[keep], vx[keep], vy[keep], t[keep]
        q = np.take(np.stack([A[:, 0], A[:, 1], A[:, 2], B[:, 0] - A[:, 0], B[:, 1] - A[:, 1], B[:, 2],
                              ra.astype(f32), (rb - ra).astype(f32)]), pid, axis=1)
        za, zb = q[2], q[5]
        t3 = t * za / ((1.0 - t) * zb + t * za)  # perspective-correct parameter along the 3D segment
        Cx, Cy, Cz = q[0] + t3 * q[3], q[1] + t3 * q[4], za + t3 * (zb - za)  # sphere centre
        r = q[6] + t3 * q[7]
        vc = vx * Cx + vy * Cy + Cz  # ray . centre
        vv = vx * vx + vy * vy + 1.0
        disc = vc * vc - vv * (Cx * Cx + Cy * Cy + Cz * Cz - r * r)
        hit = disc > 0
        pid, px, py, vx, vy, vc, vv, disc, Cx, Cy, Cz, r, t3 = (
            q_[hit] for q_ in (pid, px, py, vx, vy, vc, vv, disc, Cx, Cy, Cz, r, t3))
        lam = (vc - np.sqrt(disc)) / vv  # nearest intersection; its depth is lam (the ray has z = 1)
        nrm = np.stack([vx * lam - Cx, vy * lam - Cy, lam - Cz], axis=1) / r[:, None]
        tt = t0[pid] + t3 * (t1 - t0)[pid]
        hits.append((cap[src[pid]], py * W + px, lam, nrm, tt))

    # ---------------- slabs ----------------
    slab = np.flatnonzero((prims.kind == SLAB) & (np.min(np.stack([prims.a[:, 2], prims.b[:, 2], prims.c[:, 2]]), 0) > near + prims.ra))
    if slab.size:
        tid, px, py, _, _, lam, n, _ = _slab_hits(prims, slab, fx, fy, cx, cy, W, H)
        hits.append((slab[tid], py * W + px, lam, n[tid].astype(f32), np.full(tid.size, 0.5, f32)))

    layers = np.full((num_layers, H * W), np.inf, dtype=f32)
    prim_img = np.full(H * W, -1, dtype=np.int64)
    layer_img = np.full(H * W, -1, dtype=np.int8)
    normal_img = np.zeros((H * W, 3), dtype=f32)
    t_img = np.zeros(H * W, dtype=f32)
    if hits:
        pid, pix, lam, nrm, tt = (np.concatenate(q) for q in zip(*hits))
        pix = pix.astype(np.int64)
        key = layer_of[pid] * (H * W) + pix
        np.minimum.at(layers.reshape(-1), key, lam.astype(f32))
        depth = layers.min(axis=0)
        win = lam <= depth[pix]
        pix, pid = pix[win], pid[win]
        prim_img[pix] = pid
        layer_img[pix] = layer_of[pid]
        nrm = nrm[win]
        normal_img[pix] = nrm / (np.linalg.norm(nrm, axis=1, keepdims=True) + 1e-12)
        t_img[pix] = tt[win]
    else:
        depth = layers.min(axis=0)
    return Raster(layers.reshape(num_layers, H, W), depth.reshape(H, W), prim_img.reshape(H, W),
                  layer_img.reshape(H, W), normal_img.reshape(H, W, 3), t_img.reshape(H, W))
