import gzip
import re
import shutil

import numpy as np
import pytest

from gxnor.base.errors import InputError
from gxnor.model import data


def _copy_mnist(src, dst):
    dst.mkdir()
    for spec in data.MNIST_FILES.values():
        shutil.copy(src / (spec.name + ".gz"), dst / (spec.name + ".gz"))
    return dst


def test_loads_real_mnist(mnist_path):
    ds = data.load_mnist(mnist_path, download_missing=False)
    assert ds.train.images.shape == (60000, 28, 28) and ds.train.images.dtype == np.uint8
    assert ds.test.images.shape == (10000, 28, 28)
    assert np.bincount(ds.train.labels).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(ds.test.labels).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert ds.train.images.max() == 255 and (ds.train.images == 0).mean() > 0.7


def test_raw_files_load_too(tmp_path, mnist_path):
    spec = data.MNIST_FILES["test_labels"]
    raw = gzip.decompress((mnist_path / (spec.name + ".gz")).read_bytes())
    (tmp_path / spec.name).write_bytes(raw)
    labels = data.read_idx(tmp_path / spec.name, spec)
    assert labels.shape == (10000,)


@pytest.mark.parametrize("damage, message", [
    (lambda raw: b"\x00\x00\x08\x04" + raw[4:], r"bad magic number 0x00000804"),
    (lambda raw: raw[:-1], r"10007 bytes after decompression, expected 10008"),
    (lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]), r"SHA-256 [0-9a-f]{64} does not match"),
    (lambda raw: raw[:4] + (9999).to_bytes(4, "big") + raw[8:], r"shape \(9999,\) in header"),
])
def test_rejects_corrupted_file(tmp_path, mnist_path, damage, message):
    folder = _copy_mnist(mnist_path, tmp_path / "m")
    spec = data.MNIST_FILES["test_labels"]
    path = folder / (spec.name + ".gz")
    path.write_bytes(gzip.compress(damage(gzip.decompress(path.read_bytes()))))
    with pytest.raises(data.DatasetError, match=re.escape(str(path)) + ": " + message):
        data.load_mnist(folder, download_missing=False)


def test_missing_files_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.delenv("GXNOR_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(data.DatasetError, match=r"not found in .*empty"):
        data.load_mnist(tmp_path / "empty", download_missing=False)


def test_offline_download_failure_names_the_folders(tmp_path, monkeypatch):
    monkeypatch.delenv("GXNOR_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "MIRRORS", ("http://127.0.0.1:9/",))  # closed port: refused
    with pytest.raises(data.DatasetError, match=r"Put the four MNIST IDX files .* in one of"):
        data.load_mnist(tmp_path / "empty")
    assert not list((tmp_path / "cache").rglob("*.part"))


def test_search_order(tmp_path, monkeypatch):
    monkeypatch.setenv("GXNOR_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    dirs = data.search_dirs(tmp_path / "arg")
    assert dirs == [tmp_path / "arg", tmp_path / "env", tmp_path / "cache" / "gxnor" / "mnist"]


def test_digits_is_real_and_black_stays_zero():
    ds = data.load_digits()
    assert ds.train.images.shape[1:] == (8, 8)
    assert len(ds.train) + len(ds.test) == 1797
    assert ds.train.images.dtype == np.uint8 and ds.train.images.max() == 255
    assert (ds.train.images == 0).mean() > 0.3
    assert set(np.unique(ds.test.labels)) == set(range(10))


def _npz(path, x_train, y_train, x_test, y_test):
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def test_user_npz_and_idx_folder_load_and_check(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 6, 5), dtype=np.uint8)
    y = rng.integers(0, 4, 30)
    ds = data.load(str(_npz(tmp_path / "d.npz", x[:20], y[:20], x[20:], y[20:])))
    assert ds.input_shape == (1, 6, 5) and ds.num_classes == 4 and len(ds.test) == 10
    assert np.array_equal(ds.train.images, x[:20])
    # the same as an IDX folder (one of the four files gzipped), as Fashion-MNIST ships
    folder = tmp_path / "idx"
    folder.mkdir()
    for name, arr in (("train-images-idx3-ubyte", x[:20]), ("train-labels-idx1-ubyte", y[:20]),
                      ("t10k-images-idx3-ubyte", x[20:]), ("t10k-labels-idx1-ubyte", y[20:])):
        raw = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big")
                                                     for d in arr.shape)
        raw += arr.astype(np.uint8).tobytes()
        if name.startswith("t10k-images"):
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    ds2 = data.load(str(folder))
    assert np.array_equal(ds2.test.images, ds.test.images)
    assert np.array_equal(ds2.train.labels, ds.train.labels)
    # channels-first images
    ds3 = data.load(str(_npz(tmp_path / "c.npz", x[:20].reshape(20, 1, 6, 5), y[:20],
                             x[20:].reshape(10, 1, 6, 5), y[20:])))
    assert ds3.input_shape == (1, 6, 5)


@pytest.mark.parametrize("mutate,message", [
    (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "dtype float32"),
    (lambda a: a.pop("y_test"), "['y_test'] missing"),
    (lambda a: a.update(y_train=a["y_train"][:5]), "y_train must be 20 integer labels"),
    (lambda a: a.update(x_test=a["x_test"][:, :3]), "differ in shape"),
    (lambda a: a.update(y_test=-a["y_test"] - 1), "negative labels"),
])
def test_bad_user_npz_names_the_array(tmp_path, mutate, message):
    rng = np.random.default_rng(1)
    arrays = {"x_train": rng.integers(0, 256, (20, 4, 4), dtype=np.uint8),
              "y_train": rng.integers(0, 3, 20), "x_test": rng.integers(0, 256, (5, 4, 4),
                                                                        dtype=np.uint8),
              "y_test": rng.integers(0, 3, 5)}
    mutate(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError, match=re.escape(message)):
        data.load(str(path))


def test_unknown_dataset_and_bad_idx_folder(tmp_path):
    with pytest.raises(InputError, match="unknown dataset"):
        data.load("fashion")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03" + b"\0" * 8)
    with pytest.raises(InputError, match="header is cut short"):
        data.load(str(tmp_path))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03" + b"\0" * 12)
    with pytest.raises(InputError, match="train-labels-idx1-ubyte"):
        data.load(str(tmp_path))
