"""The dataset on disk in the InterHand2.6M format, the rendering benchmark and a grid of examples."""
from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from h2t_lib import skeleton as sk
from h2t_lib.data.synth.rig import CAPTURE, CameraRig, DEFAULT_STYLE, JPEG_QUALITY, OCCLUSION_LEVELS, STYLES, camera_rig
from h2t_lib.data.synth.sample import render_sample


def _split_key(split: str) -> int:
    return zlib.crc32(split.encode("utf-8"))


def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of ``split``: independent of the dataset size, and
    different splits written with the same seed do not share images."""
    return np.random.default_rng([int(seed), _split_key(split), int(index)])


def skeleton_text() -> str:
    """InterHand2.6M's ``skeleton.txt``: one "name id parent_id" line per joint (-1 for the wrists)."""
    lines = ["# keypoint name, keypoint index, parent index"]
    for j, name in enumerate(sk.JOINT_NAMES):
        hand, joint = name.split("_")
        lines.append(f"{hand[0]}_{joint} {j} {int(sk.PARENTS[j])}")
    return "\n".join(lines) + "\n"


def _nested(v):
    return [[int(x)] for x in v]


def _record(args):
    """Render sample i and build its json entries (module-level so worker processes can run it)."""
    i, seed, split, size, interacting_frac, occlusion, rig, style = args
    s = render_sample(sample_rng(seed, split, i), size, None, interacting_frac, occlusion, rig, style=style)
    seq = f"synth_{s['hand_type']}"
    file_name = f"Capture{CAPTURE}/{seq}/cam{s['camera']}/image{i:06d}.jpg"
    buf = io.BytesIO()
    Image.fromarray(s["image"]).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    image = {"id": i, "file_name": file_name, "width": size, "height": size, "capture": CAPTURE,
             "seq_name": seq, "camera": s["camera"], "frame_idx": i}
    ann = {"id": i, "image_id": i, "bbox": s["bbox"], "joint_valid": _nested(s["joint_valid"]),
           "hand_type": s["hand_type"], "hand_type_valid": 1,
           "joint_vis": [int(v) for v in s["joint_vis"]], "occlusion": round(float(s["occlusion"]), 4),
           "occlusion_level": s["occlusion_level"]}
    j3d = {"world_coord": s["joints_world"].tolist(), "joint_valid": _nested(s["joint_valid"]),
           "hand_type": s["hand_type"], "hand_type_valid": 1}
    return file_name, buf.getvalue(), image, ann, j3d


def _dump(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _check_args(num, size, interacting_frac, occlusion, split, style=DEFAULT_STYLE):
    if int(num) < 1:
        raise ValueError(f"--num must be at least 1, got {num}")
    if int(size) < 32:
        raise ValueError(f"--size must be at least 32 pixels, got {size}")
    if not 0.0 <= float(interacting_frac) <= 1.0:
        raise ValueError(f"--interacting-frac must be in [0, 1], got {interacting_frac}")
    if occlusion not in OCCLUSION_LEVELS:
        raise ValueError(f"--occlusion must be one of {', '.join(OCCLUSION_LEVELS)}, got {occlusion!r}")
    if style not in STYLES:
        raise ValueError(f"--style must be one of {', '.join(STYLES)}, got {style!r}")
    if not split or "/" in split or "\\" in split or split.startswith("."):
        raise ValueError(f"--split must be a plain name such as train, val or test, got {split!r}")


def write_dataset(out, split: str = "train", num: int = 1000, size: int = 256, seed: int = 0,
                  interacting_frac: float = 0.6, occlusion: str = "any", progress: bool = True,
                  workers: int = 1, style: str = DEFAULT_STYLE) -> dict:
    """Render ``num`` samples into ``out`` in the InterHand2.6M layout (JPEG quality 95, 4:4:4).

    style: the renderer's look, "v2" (:data:`DEFAULT_STYLE`) or "v1" (:data:`STYLES`, :func:`render_sample`).

    Atomic per split: images go to a hidden temporary folder and the json files to
    temporary names; at the end the old split (if any) is made unloadable (its data json
    removed first), the images folder renamed into place, then the camera and joint_3d
    json, and the data json last. An exception or a kill part-way leaves no loadable new
    split; other splits in ``out`` are never touched. Returns a small summary dict.
    """
    _check_args(num, size, interacting_frac, occlusion, split, style)
    from tqdm.auto import tqdm

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder (it is created if missing)")
    ann_dir = out / "annotations" / "all"
    img_root = out / "images"
    ann_dir.mkdir(parents=True, exist_ok=True)
    img_root.mkdir(parents=True, exist_ok=True)
    rig = camera_rig(size)
    tmp_img = Path(tempfile.mkdtemp(prefix=f".{split}.", suffix=".tmp", dir=img_root))
    os.chmod(tmp_img, 0o755)  # mkdtemp makes it private; the split folder should not be
    tmp_json = {}
    try:
        images, anns, joints = [], [], {}
        jobs = [(i, seed, split, size, interacting_frac, occlusion, rig, style) for i in range(int(num))]
        if workers > 1:
            import multiprocessing as mp

            pool = mp.get_context("spawn").Pool(workers)
            results = pool.imap(_record, jobs, chunksize=8)
        else:
            pool, results = None, map(_record, jobs)
        try:
            for file_name, jpeg, image, ann, j3d in tqdm(results, total=len(jobs), desc=f"synth {split}",
                                                          disable=not progress, unit="img"):
                path = tmp_img / file_name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(jpeg)
                images.append(image)
                anns.append(ann)
                joints[str(image["frame_idx"])] = j3d
        finally:
            if pool is not None:
                pool.terminate()
        cams = {
            "campos": {n: rig.campos[c].tolist() for c, n in enumerate(rig.names)},
            "camrot": {n: rig.camrot[c].tolist() for c, n in enumerate(rig.names)},
            "focal": {n: rig.focal[c].tolist() for c, n in enumerate(rig.names)},
            "princpt": {n: rig.princpt[c].tolist() for c, n in enumerate(rig.names)},
        }
        contents = {
            "camera": _dump({str(CAPTURE): cams}),
            "joint_3d": _dump({str(CAPTURE): joints}),
            "data": _dump({"images": images, "annotations": anns}),
        }
        for kind, text in contents.items():
            fd, tmp = tempfile.mkstemp(prefix=f".InterHand2.6M_{split}_{kind}.", suffix=".json.tmp", dir=ann_dir)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.chmod(tmp, 0o644)
            tmp_json[kind] = Path(tmp)
        skel = out / "annotations" / "skeleton.txt"
        if not skel.exists() or skel.read_text() != skeleton_text():
            fd, tmp = tempfile.mkstemp(prefix=".skeleton.", suffix=".tmp", dir=skel.parent)
            with os.fdopen(fd, "w") as fh:
                fh.write(skeleton_text())
            os.chmod(tmp, 0o644)
            os.replace(tmp, skel)
        # --- commit: old split unloadable first, images in place, data json last ---
        final = {kind: ann_dir / f"InterHand2.6M_{split}_{kind}.json" for kind in contents}
        final["data"].unlink(missing_ok=True)
        dest = img_root / split
        if dest.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{split}.old.", dir=img_root))
            os.replace(dest, trash / split)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp_img, dest)
        for kind in ("camera", "joint_3d", "data"):
            os.replace(tmp_json.pop(kind), final[kind])
    finally:
        shutil.rmtree(tmp_img, ignore_errors=True)
        for tmp in tmp_json.values():
            tmp.unlink(missing_ok=True)
    n_inter = sum(a["hand_type"] == "interacting" for a in anns)
    return {"out": str(out), "split": split, "num": len(anns), "interacting": n_inter, "size": size,
            "style": style, "data_json": str(final["data"])}


# --------------------------------------------------------------------------- #
# Benchmark and CLI
# --------------------------------------------------------------------------- #
def benchmark(sizes=(128, 256), num: int | None = None, seed: int = 0, workers: int = 1, style: str = DEFAULT_STYLE) -> dict:
    """Images per second of :func:`render_sample`, and with JPEG encoding, in this one process.

    Both wall-clock and CPU-time rates are reported: on a shared machine the CPU-time rate
    is the better estimate of what one free core does. With ``workers`` > 1 also the wall-clock
    rate of ``synth --workers N`` (render + JPEG in N processes, as :func:`write_dataset` runs
    them; the pool's start-up is not timed): ``result[size]["workers_images_per_s"]``. style: the
    renderer's look (:data:`STYLES`).
    """
    import platform

    from h2t_lib.utils import is_fast

    num = num or (10 if is_fast() else 200)
    result = {"num": num, "process": "single", "python": platform.python_version(), "numpy": np.__version__,
              "machine": platform.machine(), "cpu_count": os.cpu_count(),
              "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
              "interacting_frac": 0.6, "occlusion": "any", "style": style}
    for size in sizes:
        rig = camera_rig(size)
        render_sample(sample_rng(seed, "bench", 0), size, rig=rig, style=style)  # warm-up
        w0, c0 = time.perf_counter(), time.process_time()
        for i in range(num):
            render_sample(sample_rng(seed, "bench", i), size, rig=rig, style=style)
        w1, c1 = time.perf_counter(), time.process_time()
        for i in range(num):
            _record((i, seed, "bench", size, 0.6, "any", rig, style))
        w2, c2 = time.perf_counter(), time.process_time()
        result[str(size)] = {"images_per_s": round(num / (w1 - w0), 1), "images_per_cpu_s": round(num / (c1 - c0), 1),
                             "with_jpeg_images_per_s": round(num / (w2 - w1), 1),
                             "with_jpeg_images_per_cpu_s": round(num / (c2 - c1), 1)}
        if workers > 1:
            result[str(size)]["workers_images_per_s"] = round(_pool_rate(num, seed, size, rig, workers, style), 1)
    if workers > 1:
        result["workers"] = int(workers)
    return result


def _pool_rate(num: int, seed: int, size: int, rig: CameraRig, workers: int, style: str = DEFAULT_STYLE) -> float:
    """Wall-clock images/s of rendering + JPEG-encoding ``num`` samples in ``workers`` spawned processes."""
    import multiprocessing as mp

    jobs = [(i, seed, "bench", size, 0.6, "any", rig, style) for i in range(num)]
    with mp.get_context("spawn").Pool(workers) as pool:
        list(pool.imap(_record, jobs[:workers]))  # start-up and imports, not timed
        t0 = time.perf_counter()
        for _ in pool.imap(_record, jobs, chunksize=4):
            pass
        return num / (time.perf_counter() - t0)


def example_grid(path=None, size: int = 256, seed: int = 0, n: int = 16, ncols: int = 4, style: str = DEFAULT_STYLE):
    """A grid of ``n`` samples (3 of 4 interacting) in the renderer's ``style``, every other one with
    its skeleton drawn over it (hollow circles: joints the renderer found hidden). Saved to ``path`` when given."""
    from h2t_lib import viz

    rig = camera_rig(size)
    samples = [render_sample(sample_rng(seed, "grid", i), size, "interacting" if i % 4 != 3 else None,
                             interacting_frac=0.0, rig=rig, style=style) for i in range(n)]
    titles = [f"{s['hand_type']}" + (f" ({s['interaction']}, occ {s['occlusion']:.2f})" if s["hand_type"] == "interacting"
                                      else "") for s in samples]
    fig = viz.sample_grid(samples, ncols, None, overlay=[i % 2 == 1 for i in range(n)], titles=titles)
    if path is not None:  # a 256-colour PNG: a quarter of the bytes, fine for a README
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        with Image.open(buf) as im:
            im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
                path, optimize=True)
    return fig
