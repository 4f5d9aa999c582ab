"""Reading a dataset's files, with one clear line for every way a file can be damaged.

Every reader here names the file, says what it expected and how to fix it, and raises
:class:`DataFileError` (a ``ValueError``) or :class:`DataFileNotFoundError` (a
``FileNotFoundError``): the command line prints either as one line and exits with code 2.

Images are returned *as viewers show them*: the EXIF ``Orientation`` tag of a file (phone
photos store the sensor's pixels and that tag) is applied, so the pixels a loader crops and
the width x height it checks are those of the upright picture.

The exceptions survive a ``torch.utils.data.DataLoader`` worker: PyTorch re-raises a worker's
exception as ``type(message)`` with the worker's whole traceback in ``message``; these classes
keep only the original line, so a damaged file met by a worker is still reported in one line.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: the EXIF tag id of Orientation (1 = upright; 2-8 = mirrored and / or rotated)
EXIF_ORIENTATION = 0x0112


def _worker_line(message: str) -> str:
    """The original one-line message of an exception PyTorch re-raised from a DataLoader worker."""
    if message.startswith("Caught ") and "Original Traceback" in message:
        last = [line for line in message.strip().splitlines() if line.strip()][-1]
        name, sep, rest = last.partition(": ")
        if sep and " " not in name:  # "h2t_lib.data.files.DataFileError: <the message>"
            return rest
    return message


class _OneLine:
    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], str):
            args = (_worker_line(args[0]),)
        super().__init__(*args)


class DataFileError(_OneLine, ValueError):
    """A data file that exists but cannot be used (empty, truncated, wrong type, shape or size)."""


class DataFileNotFoundError(_OneLine, FileNotFoundError):
    """A data file that is not where the layout puts it."""


def _check_file(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataFileNotFoundError(f"{what} not found: {path}")
    if path.is_dir():
        raise DataFileError(f"{path} is a folder; expected {what} (a file)")
    if path.stat().st_size == 0:
        raise DataFileError(f"{path} is empty (0 bytes); expected {what}: re-download or re-copy it")
    return path


def read_json(path, what: str):
    """The parsed JSON of ``path`` (``what`` describes the expected content, for the messages)."""
    path = _check_file(path, what)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except UnicodeDecodeError:
        raise DataFileError(f"{path} is not a text (JSON) file; expected {what}") from None
    except json.JSONDecodeError as e:
        hint = "it ends early: truncated download?" if e.pos >= path.stat().st_size - 1 else f"{e.msg}"
        raise DataFileError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {hint}); "
                            f"expected {what}: re-download it") from None


def read_pickle(path, what: str):
    """The unpickled content of ``path`` (latin1: the RHD release is a Python-2 pickle)."""
    path = _check_file(path, what)
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except EOFError:
        raise DataFileError(f"{path} ends early (truncated pickle); expected {what}: re-download it") from None
    except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError, IndexError, KeyError) as e:
        raise DataFileError(f"{path} is not a readable pickle ({type(e).__name__}: {e}); expected {what}: "
                            f"re-download it") from None


def _decode(path: Path, what: str, use):
    """``use(image)`` of the fully decoded image file (decoded inside the open file: lazy PIL decoding
    would otherwise fail later, without the file's name)."""
    try:
        with Image.open(path) as im:
            im.load()
            return use(im)
    except UnidentifiedImageError:
        raise DataFileError(f"{path} is not an image file PIL can read; expected {what} (PNG, JPEG, ...)") from None
    except Image.DecompressionBombError as e:
        raise DataFileError(f"{path}: {e}; expected {what}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise DataFileError(f"{path} could not be decoded ({e}: truncated or damaged file?); expected {what}: "
                            f"re-download or re-copy it") from None


def exif_orientation(image: Image.Image) -> int:
    """The EXIF Orientation tag of a decoded PIL image (1 when absent or unreadable)."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block: treat the image as stored
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def to_rgb8(im: Image.Image, path, what: str = "an RGB image") -> Image.Image:
    """An image of any mode Pillow opens as 8-bit RGB, each value scaled from its own range (not clamped).

    16-bit grayscale ("I;16", "I;16B", ..., and "I" holding 0..65535, as some Pillow versions open 16-bit
    PNGs) is scaled by 255 / 65535; floating point ("F") in 0..1 by 255. Colour modes (CMYK, YCbCr, LAB,
    HSV), palette (P, PA), alpha (RGBA, LA, PA: the colour is kept, the alpha dropped) and 1-bit images go
    through Pillow's own conversion. Raises :class:`DataFileError` (one line) for an "I" or "F" image
    whose values lie outside those ranges: its brightness scale is unknown.
    """
    mode = im.mode
    if mode.startswith("I") or mode == "F":
        a = np.asarray(im, dtype=np.float64)
        top = 1.0 if mode == "F" else 65535.0
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo < 0 or hi > top:
            raise DataFileError(f"{path} is a {mode!r} image with values {lo:g}..{hi:g}, outside 0..{top:g}: its "
                                f"brightness scale is unknown; save it as 8- or 16-bit (PNG); expected {what}")
        gray = np.round(a * (255.0 / top)).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[..., None], 3, axis=2), "RGB")
    if mode in ("La", "RGBa"):  # premultiplied alpha: Pillow converts these only to their straight twins
        im = im.convert(mode.upper())
    return im.convert("RGB")


def open_image(path, what: str = "an RGB image") -> tuple:
    """(RGB PIL image as viewers show it, EXIF orientation applied (1 = none)) of an image file.

    Any mode is converted to 8-bit RGB by :func:`to_rgb8` (16-bit scaled, not clamped), or refused in
    one line. An 8-bit RGB image without an Orientation tag (or with tag 1) is returned exactly as decoded.
    """
    def upright(im):
        orientation = exif_orientation(im)
        return to_rgb8(ImageOps.exif_transpose(im) if orientation != 1 else im, path, what), orientation

    return _decode(_check_file(path, what), what, upright)


def read_mask(path, size=None, max_label: int = 33,
              what: str = "an RHD segmentation mask (one channel, ids 0..33)") -> np.ndarray:
    """(H, W) uint8 label image of a segmentation mask; ``size`` (W, H), the colour image's, is checked,
    and so is that no label exceeds ``max_label``."""
    path = _check_file(path, what)
    arr, mode, shape = _decode(path, what, lambda im: (np.array(im), im.mode, im.size))
    if arr.ndim == 3:
        if not (arr[..., :1] == arr[..., 1:3]).all():
            raise DataFileError(f"{path} is a colour image ({mode}); expected {what}")
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise DataFileError(f"{path} has shape {arr.shape}; expected {what}")
    if size is not None and tuple(shape) != tuple(size):
        raise DataFileError(f"{path} is {shape[0]}x{shape[1]} pixels but its colour image is "
                            f"{size[0]}x{size[1]}; expected {what} of the same size: re-download it")
    if arr.size and int(arr.max()) > max_label:
        raise DataFileError(f"{path} holds label {int(arr.max())}; expected {what}")
    return arr.astype(np.uint8, copy=False)


def image_size(path) -> tuple:
    """(width, height) of an image file as viewers show it (EXIF orientation applied), read from its header."""
    path = _check_file(path, "an image")
    try:
        with Image.open(path) as im:
            w, h = im.size
            return (h, w) if exif_orientation(im) in (5, 6, 7, 8) else (w, h)
    except UnidentifiedImageError:
        raise DataFileError(f"{path} is not an image file PIL can read (PNG, JPEG, ...)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataFileError(f"{path} could not be read ({e}: truncated or damaged file?)") from None
