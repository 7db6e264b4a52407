"""Images for the host runtime: ``mnist:N``, ``mnist:START:N``, ``.npy`` arrays, image files.

Every image is checked against the network before anything is sent or simulated: its pixel
count (a ``.npy`` array holds one image or a batch: its trailing dimensions must hold exactly
the network's pixels), its type (uint8, or integers in 0..255) and its range. Errors name the
file (or dataset spec) and say what the network takes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gxnor.base import limits
from gxnor.base.errors import InputError

DATASETS = ("mnist", "digits")


def _pixels(arr: np.ndarray, where: str) -> np.ndarray:
    """``arr`` as uint8 after checking its type and range."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind not in "iu":
        raise InputError(f"{where}: dtype {arr.dtype}, expected uint8 pixels (or integers in "
                         "0..255)")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise InputError(f"{where}: pixel values {int(arr.min())}..{int(arr.max())} outside "
                         "0..255")
    return arr.astype(np.uint8)


def _batch(arr: np.ndarray, n_pixels: int, what: str, where: str) -> np.ndarray:
    """(N, n_pixels): the trailing dimensions of ``arr`` that hold exactly one image."""
    for k in range(arr.ndim, 0, -1):  # fewest leading (batch) dimensions first
        if math.prod(arr.shape[arr.ndim - k:]) == n_pixels and k >= arr.ndim - 1:
            return arr.reshape(-1, n_pixels)
    raise InputError(f"{where}: an array of shape {list(arr.shape)} does not hold images of "
                     f"{n_pixels} pixels ({what}): expected [N, ...] or one image")


def _dataset(spec: str, data_dir):
    from gxnor.model import data

    name, *nums = spec.split(":")
    try:
        start, n = (0, int(nums[0])) if len(nums) == 1 else (int(nums[0]), int(nums[1]))
        if len(nums) > 2:
            raise ValueError
    except (ValueError, IndexError):
        raise InputError(f"{spec}: expected {name}:N or {name}:START:N") from None
    ds = data.load(name, data_dir).test
    limits.IMAGES.check(n, f"{spec}: N")
    if start < 0 or start + n > len(ds):
        raise InputError(f"{spec}: images {start}..{start + n - 1} are not all in the {name} "
                         f"test set (0..{len(ds) - 1})")
    return ds.images[start:start + n], [int(x) for x in ds.labels[start:start + n]], \
        [f"{name}[{k}]" for k in range(start, start + n)]


def read_images(specs: list[str], data_dir=None) -> list[tuple]:
    """Read what ``specs`` name, checking type and range: (where, uint8 array, labels or None,
    names or None) per spec. :func:`shape_images` then checks them against the network."""
    out = []
    for spec in specs:
        if spec.split(":")[0] in DATASETS and ":" in spec:
            imgs, labels, names = _dataset(spec, data_dir)
            out.append((spec, imgs, labels, names))
            continue
        path = Path(spec)
        if not path.is_file():
            raise InputError(f"{path}: no such image file")
        if path.suffix == ".npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except ValueError as exc:
                raise InputError(f"{path}: not a NumPy array file ({exc})") from None
            out.append((str(path), _pixels(arr, str(path)), None, None))
        else:
            from PIL import Image, UnidentifiedImageError

            try:
                img = np.asarray(Image.open(path).convert("L"), np.uint8)
            except (UnidentifiedImageError, OSError) as exc:
                raise InputError(f"{path}: not an image file ({exc})") from None
            out.append((str(path), img[None], None, [path.name]))
    if not out:
        raise InputError("no images given (mnist:N, .npy or image files)")
    return out


def shape_images(read: list[tuple], n_pixels: int,
                 what: str = "") -> tuple[np.ndarray, np.ndarray | None, list]:
    """The images of :func:`read_images` as (N, ``n_pixels``) uint8, their labels (when all
    come from a dataset) and a name per image. ``what`` describes the network's input in
    errors (e.g. ``"1x28x28"``)."""
    what = what or f"{n_pixels} pixels"
    images, labels, names = [], [], []
    for where, arr, labs, nms in read:
        if nms is not None and labs is None:  # an image file: one image
            if arr[0].size != n_pixels:
                raise InputError(f"{where}: a {arr.shape[2]}x{arr.shape[1]} image has "
                                 f"{arr[0].size} pixels; the network takes {n_pixels} ({what})")
        elif labs is not None and math.prod(arr.shape[1:]) != n_pixels:
            raise InputError(f"{where}: these images have {math.prod(arr.shape[1:])} pixels "
                             f"({'x'.join(map(str, arr.shape[1:]))}); the network takes "
                             f"{n_pixels} ({what})")
        batch = _batch(arr, n_pixels, what, where)
        images.append(batch)
        labels += labs if labs is not None else [None] * len(batch)
        names += nms if nms is not None else [f"{Path(where).name}[{k}]"
                                              for k in range(len(batch))]
    if sum(len(a) for a in images) == 0:
        raise InputError("no images given (the arrays are empty)")
    lab = np.array(labels) if all(x is not None for x in labels) else None
    return np.concatenate(images), lab, names
