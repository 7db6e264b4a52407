"""Images for `gxnor run` are checked against the network before any simulator is built or any
byte is sent (issue 11: wrong sizes used to end in a traceback inside cocotb)."""

import numpy as np
import pytest

from gxnor import cli
from gxnor.base.errors import InputError
from gxnor.host.images import read_images, shape_images


@pytest.fixture
def digits_like_export(random_export):
    return random_export([6, 3], 4, input_shape=(1, 8, 8), seed=3)


def _save(path, arr):
    np.save(path, arr)
    return str(path)


@pytest.mark.parametrize("arr, error", [
    (np.zeros((2, 7, 7), np.uint8), r"shape \[2, 7, 7\] does not hold images of 64 pixels"),
    (np.zeros(65, np.uint8), r"shape \[65\] does not hold images of 64 pixels"),
    (np.zeros((3, 64), np.float32), r"dtype float32, expected uint8"),
    (np.full((1, 8, 8), 300, np.int32), r"pixel values 300\.\.300 outside 0\.\.255"),
    (np.zeros((0, 8, 8), np.uint8), r"no images given"),
])
def test_bad_arrays_exit_2_before_the_simulator(digits_like_export, tmp_path, capsys, arr,
                                                 error):
    npy = _save(tmp_path / "bad.npy", arr)
    out = tmp_path / "sim"
    code = cli.main(["run", "--sim", "icarus", "--export-dir", str(digits_like_export),
                     "--out", str(out), npy])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INPUT, err
    assert "Traceback" not in err
    assert "bad.npy" in err or "no images" in err
    import re

    assert re.search(error, err), err
    assert not out.exists()  # nothing built


def test_image_files_and_datasets_of_the_wrong_size(digits_like_export, tmp_path, capsys,
                                                    mnist_path):
    from PIL import Image

    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "nine.png")
    for spec, error in ((str(tmp_path / "nine.png"), "a 9x9 image has 81 pixels; the network "
                                                      "takes 64 (1x8x8)"),
                        ("mnist:3", "mnist:3: these images have 784 pixels (28x28); the "
                                    "network takes 64 (1x8x8)"),
                        ("mnist:9999:2", "images 9999..10000 are not all in the mnist test set"),
                        ("mnist:0", "mnist:0: N must be in 1..")):
        code = cli.main(["run", "--sim", "icarus", "--export-dir", str(digits_like_export),
                         "--out", str(tmp_path / "sim"), "--data-dir", str(mnist_path), spec])
        err = capsys.readouterr().err
        assert code == cli.EXIT_INPUT and error in err, err
    assert not (tmp_path / "sim").exists()


def test_batches_of_any_layout_are_accepted(tmp_path):
    imgs = np.arange(2 * 64).reshape(2, 1, 8, 8) % 256
    for arr in (imgs, imgs[:, 0], imgs.reshape(2, 64), imgs[0, 0], imgs[0].reshape(64)):
        npy = _save(tmp_path / "x.npy", arr.astype(np.int64))  # integers in 0..255 are fine
        got, labels, names = shape_images(read_images([npy]), 64)
        assert got.dtype == np.uint8 and got.shape[1] == 64 and labels is None
        assert np.array_equal(got[0], imgs[0].reshape(64))
        assert names[0] == "x.npy[0]"


def test_read_images_checks_files(tmp_path):
    with pytest.raises(InputError, match=r"nope\.npy: no such image file"):
        read_images([str(tmp_path / "nope.npy")])
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"junk\.png: not an image file"):
        read_images([str(tmp_path / "junk.png")])
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(InputError, match=r"junk\.npy: not a NumPy array file"):
        read_images([str(tmp_path / "junk.npy")])
    with pytest.raises(InputError, match=r"mnist:x: expected mnist:N or mnist:START:N"):
        read_images(["mnist:x"])
