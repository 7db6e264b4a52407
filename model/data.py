"""Datasets: MNIST from the standard IDX files, and the 8x8 UCI digits that ship with scikit-learn.

MNIST is looked for in ``--data-dir``, then ``$GXNOR_DATA``, then the user cache
(``$XDG_CACHE_HOME/gxnor/mnist``). Each file may be gzip-compressed or raw; its magic number,
shape and the SHA-256 of the decompressed bytes are checked. Missing files are downloaded from
the usual public mirrors into the cache; offline, the error says where to put them.

Pixels stay ``uint8`` (0..255): a black pixel is exactly 0, so the hardware can skip it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gxnor.base.errors import InputError

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


@dataclass(frozen=True)
class IdxFile:
    name: str  # base name without .gz
    shape: tuple[int, ...]
    sha256: str  # of the decompressed bytes


MNIST_FILES = {
    "train_images": IdxFile(
        "train-images-idx3-ubyte", (60000, 28, 28),
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train_labels": IdxFile(
        "train-labels-idx1-ubyte", (60000,),
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "test_images": IdxFile(
        "t10k-images-idx3-ubyte", (10000, 28, 28),
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "test_labels": IdxFile(
        "t10k-labels-idx1-ubyte", (10000,),
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}


class DatasetError(InputError):
    """A dataset file is missing or not what it should be; the message names the file."""


@dataclass
class Split:
    """Images as uint8 ``(n, H, W)`` (0 = black) and labels as int64 ``(n,)``."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Dataset:
    name: str
    train: Split
    test: Split
    num_classes: int = 10

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.train.images.shape[1:]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the network's input."""
        shape = tuple(int(d) for d in self.image_shape)
        return shape if len(shape) == 3 else (1, *shape)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gxnor" / "mnist"


def search_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where MNIST is looked for, in order."""
    dirs = []
    if data_dir:
        dirs.append(Path(data_dir))
    if os.environ.get("GXNOR_DATA"):
        dirs.append(Path(os.environ["GXNOR_DATA"]))
    dirs.append(cache_dir())
    return dirs


def parse_idx(raw: bytes, source: str, ndim: int, spec: IdxFile | None = None) -> np.ndarray:
    """Check and decode one decompressed unsigned-byte IDX file of ``ndim`` dimensions; with
    ``spec`` (MNIST's pinned files) also its exact shape and SHA-256."""
    if len(raw) < 8:
        raise DatasetError(f"{source}: too short to be an IDX file ({len(raw)} bytes)")
    magic = struct.unpack(">I", raw[:4])[0]
    expected_magic = 0x0800 | ndim  # unsigned bytes, ndim dimensions
    if magic != expected_magic:
        raise DatasetError(
            f"{source}: bad magic number {magic:#010x}, expected {expected_magic:#010x}"
            + (f" ({spec.name})" if spec else f" ({ndim}-dimensional unsigned bytes)"))
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{source}: the header is cut short ({len(raw)} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if spec and tuple(dims) != spec.shape:
        raise DatasetError(f"{source}: shape {tuple(dims)} in header, expected {spec.shape}")
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DatasetError(f"{source}: {len(raw)} bytes after decompression, expected {expected}")
    if spec:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != spec.sha256:
            raise DatasetError(f"{source}: SHA-256 {digest} does not match {spec.sha256}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _read_maybe_gzip(path: Path) -> bytes:
    """A file's bytes, decompressed when it is gzip (IDX files come either way)."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DatasetError(f"{path}: corrupt gzip data ({exc})") from exc
    return data


def read_idx(path: Path, spec: IdxFile) -> np.ndarray:
    return parse_idx(_read_maybe_gzip(path), str(path), len(spec.shape), spec)


def _find(spec: IdxFile, dirs: list[Path]) -> Path | None:
    for d in dirs:
        for candidate in (d / spec.name, d / (spec.name + ".gz")):
            if candidate.exists():
                return candidate
    return None


def download(spec: IdxFile, dest_dir: Path) -> Path:
    """Fetch ``spec`` from the first mirror that answers; atomic (temp file + rename)."""
    from tqdm import tqdm

    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / (spec.name + ".gz")
    errors = []
    for mirror in MIRRORS:
        url = mirror + spec.name + ".gz"
        tmp = dest.with_suffix(".gz.part")
        try:
            with urllib.request.urlopen(url, timeout=30) as resp, open(tmp, "wb") as out:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=spec.name) as bar:
                    while chunk := resp.read(1 << 16):
                        out.write(chunk)
                        bar.update(len(chunk))
            read_idx(tmp, spec)  # verify before it takes the real name
            tmp.replace(dest)
            return dest
        except (OSError, DatasetError) as exc:
            errors.append(f"{url}: {exc}")
            tmp.unlink(missing_ok=True)
    raise DatasetError(
        f"MNIST file {spec.name}.gz not found and could not be downloaded:\n  "
        + "\n  ".join(errors)
        + "\nPut the four MNIST IDX files (gzip or raw) in one of: "
        + ", ".join(str(d) for d in search_dirs())
        + " (or pass --data-dir / set GXNOR_DATA).")


def load_mnist(data_dir: str | os.PathLike | None = None, download_missing: bool = True) -> Dataset:
    dirs = search_dirs(data_dir)
    arrays = {}
    for key, spec in MNIST_FILES.items():
        path = _find(spec, dirs)
        if path is None:
            if not download_missing:
                raise DatasetError(
                    f"MNIST file {spec.name}[.gz] not found in "
                    + ", ".join(str(d) for d in dirs))
            path = download(spec, cache_dir())
        arrays[key] = read_idx(path, spec)
    return Dataset(
        "mnist",
        Split(arrays["train_images"], arrays["train_labels"].astype(np.int64)),
        Split(arrays["test_images"], arrays["test_labels"].astype(np.int64)),
    )


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 UCI digits (1,797 images, 16 grey levels), scaled to 0..255.

    Always available offline. Values 0..16 are mapped to 0..255 (0 stays 0), then split
    deterministically into train and test.
    """
    from sklearn.datasets import load_digits as sk_load

    bunch = sk_load()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = int(round(len(labels) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return Dataset("digits", Split(images[train], labels[train]), Split(images[test], labels[test]))




def load_idx_folder(folder: Path) -> Dataset:
    """A folder with the four IDX files under MNIST's names (gzip or raw), e.g. Fashion-MNIST:
    shapes and magic numbers are checked, contents are not pinned."""
    arrays = {}
    for key, spec in MNIST_FILES.items():  # the same file names, any sizes
        path = _find(spec, [folder])
        if path is None:
            raise DatasetError(f"{folder}: {spec.name}[.gz] not found (an IDX dataset folder "
                               f"holds {', '.join(f.name for f in MNIST_FILES.values())})")
        arrays[key] = parse_idx(_read_maybe_gzip(path), str(path), len(spec.shape))
    return _checked(str(folder), arrays["train_images"], arrays["train_labels"],
                    arrays["test_images"], arrays["test_labels"])


def load_npz(path: Path) -> Dataset:
    """An ``.npz`` with ``x_train``, ``y_train``, ``x_test``, ``y_test`` (Keras' names): uint8
    images ``(n, H, W)`` or ``(n, C, H, W)`` with 0 = black, integer labels 0..K-1."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z]
            if missing:
                raise DatasetError(f"{path}: arrays {missing} missing (expected x_train, "
                                   "y_train, x_test, y_test)")
            arrays = [z[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from None
    return _checked(str(path), *arrays)


def _checked(name: str, xtr, ytr, xte, yte) -> Dataset:
    for what, x, y in (("train", xtr, ytr), ("test", xte, yte)):
        if x.dtype != np.uint8:
            raise DatasetError(f"{name}: x_{what} has dtype {x.dtype}; gxnor reads uint8 "
                               "pixels (0 = black): scale and round to 0..255 first")
        if x.ndim not in (3, 4) or len(x) == 0:
            raise DatasetError(f"{name}: x_{what} has shape {list(x.shape)}, expected "
                               "(n, H, W) or (n, C, H, W)")
        if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
            raise DatasetError(f"{name}: y_{what} must be {len(x)} integer labels, got shape "
                               f"{list(y.shape)} dtype {y.dtype}")
        if y.min() < 0:
            raise DatasetError(f"{name}: y_{what} has negative labels")
    if xtr.shape[1:] != xte.shape[1:]:
        raise DatasetError(f"{name}: train images {list(xtr.shape[1:])} and test images "
                           f"{list(xte.shape[1:])} differ in shape")
    classes = int(max(ytr.max(), yte.max())) + 1
    return Dataset(name, Split(xtr, ytr.astype(np.int64)), Split(xte, yte.astype(np.int64)),
                   num_classes=classes)


def dataset_name(text: str) -> str:
    """``--data``'s value as a config stores it: ``mnist``, ``digits``, or the absolute path
    of the user's dataset (so that a run's export finds it from any folder)."""
    return text if text in ("mnist", "digits") else str(Path(text).resolve())


def load(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """``mnist``, ``digits``, or the path of a user's dataset: an ``.npz`` (see
    :func:`load_npz`) or a folder of IDX files (see :func:`load_idx_folder`)."""
    if name == "mnist":
        return load_mnist(data_dir)
    if name == "digits":
        return load_digits()
    path = Path(name)
    if path.suffix == ".npz" and path.is_file():
        return load_npz(path)
    if path.is_dir():
        return load_idx_folder(path)
    raise InputError(f"unknown dataset {name!r}; expected 'mnist', 'digits', an .npz file or "
                     "a folder of IDX files")
