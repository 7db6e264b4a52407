"""Images for the host runtime: ``mnist:N``, ``mnist:START:N``, ``.npy`` arrays, image files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gxnor.base.errors import InputError


def load_images(specs: list[str], data_dir=None) -> tuple[np.ndarray, np.ndarray | None, list]:
    """``mnist:N`` / ``mnist:START:N`` (test images, with labels), ``.npy`` (uint8 arrays),
    or image files (PNG/PGM/..., grayscale)."""
    images, labels, names = [], [], []
    for spec in specs:
        if spec.startswith(("mnist:", "digits:")):
            from gxnor.model import data

            name, *nums = spec.split(":")
            try:
                start, n = (0, int(nums[0])) if len(nums) == 1 else (int(nums[0]), int(nums[1]))
            except (ValueError, IndexError) as exc:
                raise InputError(f"{spec}: expected {name}:N or {name}:START:N") from exc
            ds = data.load(name, data_dir).test
            images += list(ds.images[start:start + n])
            labels += [int(x) for x in ds.labels[start:start + n]]
            names += [f"{name}[{k}]" for k in range(start, start + n)]
            continue
        path = Path(spec)
        if not path.exists():
            raise InputError(f"{path}: no such image file")
        if path.suffix == ".npy":
            arr = np.load(path)
            if arr.dtype != np.uint8:
                raise InputError(f"{path}: dtype {arr.dtype}, expected uint8 pixels")
            arr = arr.reshape(-1, *arr.shape[-2:]) if arr.ndim >= 2 else arr.reshape(1, -1)
            images += list(arr)
            labels += [None] * len(arr)
            names += [f"{path.name}[{k}]" for k in range(len(arr))]
        else:
            from PIL import Image, UnidentifiedImageError

            try:
                img = np.asarray(Image.open(path).convert("L"), np.uint8)
            except UnidentifiedImageError as exc:
                raise InputError(f"{path}: not an image file") from exc
            images.append(img)
            labels.append(None)
            names.append(path.name)
    if not images:
        raise InputError("no images given (mnist:N, .npy or image files)")
    lab = np.array(labels) if all(x is not None for x in labels) else None
    return np.stack([np.asarray(i).reshape(-1) for i in images]), lab, names
