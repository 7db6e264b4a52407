import gzip
import re
import shutil

import numpy as np
import pytest

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
