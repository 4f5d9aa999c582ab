"""Tiny datasets written in the EXACT published formats, with the ground truth they encode.

* :func:`make_interhand_fixture`: InterHand2.6M layout (COCO-style data json, camera json,
  joint_3d json, skeleton.txt, JPEG images under images/<split>/Capture.../cam.../image....jpg).
* :func:`make_rhd_fixture`: RHD layout (<split>/{color,mask,depth}/%05d.png, anno_<split>.pickle).

Both return the ground truth they wrote, computed here by hand (independently of
``h2t_lib.camera`` and of ``h2t_lib.skeleton.RHD_TO_OURS``), so tests can compare the
loaders against it. Each image is black with one bright Gaussian dot drawn at the
projection of one joint (``dot_joint``), so a test can find where the image content
went after cropping and augmentation.

Reusable by other tests: ``from fixtures import make_interhand_fixture`` (tests/ is on
pytest's path as the rootdir-relative module directory).
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

J = 42  # joints, both hands
H = 21  # joints per hand
RIGHT, LEFT = slice(0, 21), slice(21, 42)
MIDDLE_TIP = 8  # within a hand, h2t / InterHand2.6M order: middle4
HAND_TYPES = ("interacting", "right", "left")


# ----------------------------------------------------------------------------- helpers
def make_hand(rng: np.random.Generator, wrist, mirror: bool = False) -> np.ndarray:
    """A plausible open hand in h2t's order (tip first, wrist last), fingers pointing to -y. (21, 3) mm."""
    joints = np.zeros((H, 3))
    joints[20] = wrist
    for f in range(5):  # thumb, index, middle, ring, pinky
        ang = np.radians(-60.0 + 30.0 * f) + rng.normal(0.0, 0.05)
        d = np.array([np.sin(ang), -np.cos(ang), rng.normal(0.0, 0.2)])
        if mirror:
            d[0] = -d[0]
        d /= np.linalg.norm(d)
        for k, dist in enumerate((35.0, 60.0, 80.0, 95.0)):  # k = 0: joint "1" (nearest the wrist) ... 3: tip "4"
            joints[4 * f + 3 - k] = np.asarray(wrist) + dist * d + rng.normal(0.0, 1.0, 3)
    return joints


def rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


def project(cam: np.ndarray, focal, princpt) -> np.ndarray:
    """Pinhole projection written out: u = X/Z fx + cx, v = Y/Z fy + cy. (J, 3) -> (J, 2)."""
    return np.stack([cam[:, 0] / cam[:, 2] * focal[0] + princpt[0], cam[:, 1] / cam[:, 2] * focal[1] + princpt[1]], 1)


def draw_dot(width: int, height: int, uv, sigma: float = 1.5) -> np.ndarray:
    """Black RGB image with a white Gaussian dot centred at uv (integer coordinates = pixel centres)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    g = np.exp(-((xs - uv[0]) ** 2 + (ys - uv[1]) ** 2) / (2.0 * sigma**2))
    return np.repeat((np.round(255.0 * g)).astype(np.uint8)[..., None], 3, axis=2)


def dot_centroid(image) -> np.ndarray:
    """(u, v) centroid of the bright dot in a (3, S, S) image tensor / array in [0, 1] (pixel-centre coordinates)."""
    w = np.asarray(image, dtype=np.float64).mean(axis=0)
    w = np.where(w > 0.05 * w.max(), w, 0.0)
    ys, xs = np.mgrid[0 : w.shape[0], 0 : w.shape[1]]
    return np.array([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])


def enlarge_box(bbox, scale: float = 1.25) -> np.ndarray:
    """The baseline's box processing, written out: square around the centre, then x scale."""
    x, y, w, h = bbox
    cx, cy = x + w / 2, y + h / 2
    side = max(w, h) * scale
    return np.array([cx - side / 2, cy - side / 2, side, side])


# ----------------------------------------------------------------------------- InterHand2.6M
#: two cameras of capture 0: (name, yaw about y in degrees, roll in degrees, focal, princpt, width, height)
_CAMERAS = (
    ("400002", 10.0, 15.0, (150.0, 162.0), (47.3, 61.8), 96, 120),  # fx != fy on purpose
    ("400004", -12.0, -8.0, (140.0, 140.0), (49.0, 58.5), 96, 120),
)
_CAM_DIST = 600.0  # mm from the scene centre


def _camera_pose(yaw: float, roll: float):
    """camrot (world -> camera rows) and campos of a camera looking at the world origin."""
    t = np.radians(yaw)
    look = np.array([[np.cos(t), 0.0, np.sin(t)], [0.0, 1.0, 0.0], [-np.sin(t), 0.0, np.cos(t)]])
    camrot = rot_z(roll) @ look
    campos = -_CAM_DIST * camrot[2]  # the optical axis (row 2) points at the origin
    return camrot, campos


def make_interhand_fixture(
    root,
    split: str = "test",
    n: int = 4,
    *,
    annot_subset: str = "all",
    seed: int = 0,
    extra_fields: bool = False,
    flat_joint_valid: bool = False,
    dot_sigma: float = 1.5,
) -> dict:
    """Write ``n`` annotations of InterHand2.6M data under ``root`` and return their ground truth.

    Frames k = 0, 1, ... are each seen by the two cameras (annotations 2k and 2k+1), so the
    joint_3d entry of a frame is shared, as in the release. hand_type of frame k cycles
    interacting, right, left. Annotation 1 (if n > 1) has an invalid LEFT wrist (so the
    whole left hand must come out invalid); every annotation has one invalid non-root
    joint; the last annotation has hand_type_valid = 0.
    extra_fields: also write the synthetic data's ``joint_vis``, ``occlusion``, ``occlusion_level``.

    Returns ``{"root", "split", "annot_subset", "annotations": [per-annotation dict]}`` where each
    dict holds: id, image_id, file_name, path, hand_type, hand_type_valid, world (42,3), camrot (3,3),
    campos (3,), focal (2,), princpt (2,), joints_cam (42,3) = camrot @ (world - campos),
    joint_valid_raw (42,), joint_valid (42,) expected after the loader's rules, bbox (4,) as written,
    width, height, dot_joint, joint_vis (42,) expected, occlusion (float, NaN without extra fields).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    ann_dir = root / "annotations" / annot_subset
    ann_dir.mkdir(parents=True, exist_ok=True)
    cams = {name: _camera_pose(yaw, roll) for name, yaw, roll, *_ in _CAMERAS}

    images, annotations, joint3d, gts = [], [], {"0": {}}, []
    n_frames = (n + 1) // 2
    frames = []
    for k in range(n_frames):
        right = make_hand(rng, np.array([-35.0, 40.0, 0.0]) + rng.normal(0, 5, 3))
        left = make_hand(rng, np.array([35.0, 40.0, 0.0]) + rng.normal(0, 5, 3), mirror=True)
        world = np.concatenate([right, left])  # (42, 3) mm
        hand_type = HAND_TYPES[k % 3]
        frame_idx = 1000 + 7 * k
        frames.append((frame_idx, world, hand_type))
        valid = np.zeros(J)
        valid[RIGHT] = hand_type in ("right", "interacting")
        valid[LEFT] = hand_type in ("left", "interacting")
        joint3d["0"][str(frame_idx)] = {
            "world_coord": world.tolist(),
            "joint_valid": [[float(v)] for v in valid],
            "hand_type": hand_type,
            "hand_type_valid": 1,
        }

    for i in range(n):
        frame_idx, world, hand_type = frames[i // 2]
        cam_name, _, _, focal, princpt, width, height = _CAMERAS[i % 2]
        camrot, campos = cams[cam_name]
        joints_cam = np.einsum("ij,nj->ni", camrot, world - campos)  # cam = R (world - campos)
        uv = project(joints_cam, focal, princpt)

        present = {"right": hand_type in ("right", "interacting"), "left": hand_type in ("left", "interacting")}
        valid_raw = np.zeros(J)
        valid_raw[RIGHT] = present["right"]
        valid_raw[LEFT] = present["left"]
        valid_raw[5 + (21 if hand_type == "left" else 0)] = 0.0  # one invalid non-root joint
        if i == 1:
            valid_raw[41] = 0.0  # the left wrist: the whole left hand becomes invalid
        expected = valid_raw.copy()
        for sl, root_j in ((RIGHT, 20), (LEFT, 41)):
            expected[sl] *= expected[root_j]

        ok = valid_raw > 0
        lo, hi = uv[ok].min(0) - 2.0, uv[ok].max(0) + 2.0  # a silhouette-like margin around the joints
        bbox = [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]

        dot_joint = MIDDLE_TIP + (21 if hand_type == "left" else 0)
        seq = "ROM01_No_Interaction_2_Hand" if hand_type != "interacting" else "ROM04_RT_Occlusion"
        file_name = f"Capture0/{seq}/cam{cam_name}/image{frame_idx}.jpg"
        path = root / "images" / split / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(draw_dot(width, height, uv[dot_joint], dot_sigma)).save(path, quality=100, subsampling=0)

        image_id, ann_id = 100 + i, 500 + i
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height, "capture": 0,
                       "seq_name": seq, "camera": cam_name, "frame_idx": frame_idx})
        ann = {
            "id": ann_id,
            "image_id": image_id,
            "bbox": bbox,
            "joint_valid": [float(v) for v in valid_raw] if flat_joint_valid else [[float(v)] for v in valid_raw],
            "hand_type": hand_type,
            "hand_type_valid": 0 if i == n - 1 else 1,
        }
        vis = expected.copy()
        occlusion = float("nan")
        if extra_fields:
            raw_vis = (rng.random(J) > 0.3).astype(float)
            occlusion = round(0.1 * (i + 1), 3)
            ann.update(joint_vis=raw_vis.tolist(), occlusion=occlusion, occlusion_level="medium")
            vis = raw_vis * expected
        annotations.append(ann)
        gts.append(dict(
            id=ann_id, image_id=image_id, file_name=file_name, path=path, hand_type=hand_type,
            hand_type_valid=ann["hand_type_valid"], world=world, camrot=camrot, campos=campos,
            focal=np.array(focal), princpt=np.array(princpt), joints_cam=joints_cam,
            joint_valid_raw=valid_raw, joint_valid=expected, bbox=np.array(bbox), width=width, height=height,
            dot_joint=dot_joint, joint_vis=vis, occlusion=occlusion,
        ))

    camera = {"0": {"campos": {}, "camrot": {}, "focal": {}, "princpt": {}}}
    for name, _, _, focal, princpt, *_ in _CAMERAS:
        camrot, campos = cams[name]
        camera["0"]["campos"][name] = campos.tolist()
        camera["0"]["camrot"][name] = camrot.tolist()
        camera["0"]["focal"][name] = list(focal)
        camera["0"]["princpt"][name] = list(princpt)

    prefix = ann_dir / f"InterHand2.6M_{split}"
    Path(f"{prefix}_data.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    Path(f"{prefix}_camera.json").write_text(json.dumps(camera))
    Path(f"{prefix}_joint_3d.json").write_text(json.dumps(joint3d))
    _write_skeleton_txt(root / "annotations" / "skeleton.txt")
    return {"root": root, "split": split, "annot_subset": annot_subset, "annotations": gts}


def _write_skeleton_txt(path: Path) -> None:
    """annotations/skeleton.txt as released: '# joint_name joint_id joint_parent_id' then one line per joint."""
    names = [f"{f}{k}" for f in ("thumb", "index", "middle", "ring", "pinky") for k in (4, 3, 2, 1)] + ["wrist"]
    lines = ["# joint_name joint_id joint_parent_id"]
    for h, prefix in enumerate(("r_", "l_")):
        for j, name in enumerate(names):
            parent = -1 if j == 20 else (j + 1 if j % 4 != 3 else 20)
            lines.append(f"{prefix}{name} {j + 21 * h} {parent + 21 * h if parent >= 0 else -1}")
    path.write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- RHD
def ours_to_rhd(ours: np.ndarray) -> np.ndarray:
    """Written out independently of h2t_lib.skeleton: (42, ...) in h2t order -> RHD order.

    RHD: left hand 0..20 then right 21..41; within a hand 0 = wrist, then per finger
    tip -> mcp at 1 + 4 f + k (k = 0 tip .. 3 mcp). h2t: right first; within a hand the
    finger's tip (4) at 4 f, its mcp (1) at 4 f + 3, the wrist at 20.
    """
    rhd = np.zeros_like(ours)
    for rhd_hand, our_hand in ((0, 21), (21, 0)):  # RHD left <- our left (21..), RHD right <- our right (0..)
        rhd[rhd_hand + 0] = ours[our_hand + 20]
        for f in range(5):
            for k in range(4):
                rhd[rhd_hand + 1 + 4 * f + k] = ours[our_hand + 4 * f + k]
    return rhd


#: RHD fixture sample kinds: (what the sample shows, the expected hand type of the RHD loader's
#: hands="mask" (the published protocol), "dominant" and "visible" modes)
RHD_KINDS = {
    0: ("only the right hand visible", "right", "right", "right"),
    1: ("only the left hand visible", "left", "left", "left"),
    2: ("both: right 21 visible keypoints, left 15", "right", "right", "interacting"),
    3: ("a large close left hand (12 visible keypoints, more mask pixels) and a small far right hand "
        "(21 visible)", "left", "right", "interacting"),
    4: ("only the right hand, 3 of its fingertips invisible", "right", "right", "right"),
}
#: the right-hand fingertips (h2t order) kind 4 hides: thumb, index, middle tips
RHD_HIDDEN_TIPS = (0, 4, 8)


def _rhd_visibility(kind: int) -> np.ndarray:
    vis = np.zeros(J)
    if kind in (0, 2, 3, 4):
        vis[RIGHT] = 1.0
    if kind == 1:
        vis[LEFT] = 1.0
    if kind == 2:
        vis[21:36] = 1.0  # 15 left keypoints visible
    if kind == 3:
        vis[[21 + j for j in (4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 20)]] = 1.0  # 12 left keypoints
    if kind == 4:
        vis[list(RHD_HIDDEN_TIPS)] = 0.0
    return vis


def draw_rhd_mask(size: int, uv: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """An RHD-style segmentation mask: a disk around each visible keypoint of each hand, radius 8% of
    the hand's 2D extent (a close hand is large); ids 2..17 left hand parts, 18..33 right. (size, size) uint8."""
    mask = np.zeros((size, size), np.uint8)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    for sl, first_id in ((LEFT, 2), (RIGHT, 18)):
        hand_uv = uv[sl]
        radius = max(2.0, 0.08 * float(np.linalg.norm(hand_uv.max(0) - hand_uv.min(0))))
        for k in np.flatnonzero(vis[sl] > 0):
            disk = (xs - hand_uv[k, 0]) ** 2 + (ys - hand_uv[k, 1]) ** 2 <= radius**2
            mask[disk] = first_id + k % 16
    return mask


def make_rhd_fixture(root, split: str = "evaluation", n: int = 3, *, size: int = 320, seed: int = 0,
                     dot_sigma: float = 2.0, kinds=None) -> dict:
    """Write ``n`` RHD samples under ``root/<split>`` in the release's format; return their ground truth.

    Sample i is of kind ``kinds[i]`` (default ``i % 3``), see :data:`RHD_KINDS`: 0 only the right hand
    visible; 1 only the left; 2 both (right 21 visible keypoints, left 15); 3 a large close left hand
    with 12 visible keypoints and a small far right hand with 21; 4 the right hand with three fingertips
    invisible. Expected hand types: "mask" (default) and "dominant" modes right / left / right for kinds
    0-2, "visible" mode right / left / interacting; kind 3: mask left, dominant right, visible interacting.
    The masks (``mask/%05d.png``) hold a disk of hand-part ids around each visible keypoint.

    Returns ``{"root", "split", "samples": [dict]}``; each dict: id, kind, path, joints_cam (42,3) in h2t's
    order and mm (the known skeleton), xyz (42,3) metres in RHD order (as written), uv_vis (42,3), K (3,3),
    vis (42,) in h2t's order, mask_px (right, left) hand pixels of the mask, hand_type_mask,
    hand_type_dominant, hand_type_visible, dot_joint (h2t index, on the "mask" mode's hand).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for sub in ("color", "mask", "depth"):
        (root / split / sub).mkdir(parents=True, exist_ok=True)
    anno, gts = {}, []
    for i in range(n):
        kind = i % 3 if kinds is None else int(kinds[i])
        right = make_hand(rng, np.array([-45.0, 45.0, 480.0]) + rng.normal(0, 5, 3))
        left = make_hand(rng, np.array([45.0, 45.0, 500.0]) + rng.normal(0, 5, 3), mirror=True)
        if kind == 3:  # the left hand close to the camera, the right one far
            left = left + np.array([0.0, 0.0, -250.0])
            right = right + np.array([0.0, 0.0, 220.0])
        ours = np.concatenate([right, left])  # (42, 3) mm, h2t order
        fx = 300.0 + 10.0 * i
        K = np.array([[fx, 0.0, 160.0 + i], [0.0, fx + 3.0, 158.0], [0.0, 0.0, 1.0]])
        uv = project(ours, (K[0, 0], K[1, 1]), (K[0, 2], K[1, 2]))  # (42, 2), h2t order
        vis = _rhd_visibility(kind)
        _, intended, dominant, visible = RHD_KINDS[kind]
        mask = draw_rhd_mask(size, uv, vis)
        mask_px = np.array([(mask >= 18).sum(), ((mask >= 2) & (mask <= 17)).sum()])
        mask_hand = "right" if mask_px[0] >= mask_px[1] else "left"  # what the written mask says (tie: right)
        if size >= 320:  # the release's size: the hands lie inside the image, the mask says what the kind means
            assert mask_hand == intended, (kind, mask_px)
        dot_joint = MIDDLE_TIP + (21 if mask_hand == "left" else 0)

        xyz = ours_to_rhd(ours) / 1000.0  # metres, RHD order
        uv_vis = ours_to_rhd(np.concatenate([uv, vis[:, None]], axis=1))
        anno[i] = {"xyz": xyz.astype(np.float32), "uv_vis": uv_vis.astype(np.float32), "K": K.astype(np.float32)}

        path = root / split / "color" / f"{i:05d}.png"
        Image.fromarray(draw_dot(size, size, uv[dot_joint], dot_sigma)).save(path)
        Image.fromarray(mask).save(root / split / "mask" / f"{i:05d}.png")
        depth = np.zeros((size, size, 3), np.uint8)  # depth = (R * 256 + G) / (2^16 - 1) * 5 m
        depth[..., 0], depth[..., 1] = 0x33, 0x33  # ~1 m everywhere
        Image.fromarray(depth).save(root / split / "depth" / f"{i:05d}.png")
        gts.append(dict(id=i, kind=kind, path=path, joints_cam=ours, xyz=xyz, uv_vis=uv_vis, K=K, vis=vis,
                        mask_px=mask_px, hand_type_mask=mask_hand, hand_type_dominant=dominant,
                        hand_type_visible=visible, dot_joint=dot_joint))
    with open(root / split / f"anno_{split}.pickle", "wb") as f:
        pickle.dump(anno, f)
    return {"root": root, "split": split, "samples": gts}
