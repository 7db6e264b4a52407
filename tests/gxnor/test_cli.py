import subprocess
import sys

import pytest

from gxnor import cli

STAGES = ["train", "export", "rtl", "sim", "build", "flash", "run", "bench"]


def gxnor(*args, **kw):
    return subprocess.run([sys.executable, "-m", "gxnor.cli", *args], capture_output=True,
                          text=True, **kw)


def test_help_lists_every_stage():
    out = gxnor("--help")
    assert out.returncode == 0
    for stage in STAGES:
        assert f"    {stage} " in out.stdout
        sub = gxnor(stage, "--help")
        assert sub.returncode == 0 and sub.stdout.startswith(f"usage: gxnor {stage}")


def test_bad_input_exits_2_and_names_the_file(tmp_path):
    out = gxnor("export", str(tmp_path / "nope"), "--out", str(tmp_path / "e"))
    assert out.returncode == 2
    assert f"{tmp_path / 'nope'}" in out.stderr and "no such checkpoint" in out.stderr
    assert not (tmp_path / "e").exists()
    out = gxnor("rtl", str(tmp_path), "--out", str(tmp_path / "v"))
    assert out.returncode == 2 and "manifest.json: missing" in out.stderr


def test_build_and_flash_input_errors_exit_2(tmp_path):
    out = gxnor("build", str(tmp_path), "--board", "icebreaker")
    assert out.returncode == 2 and "manifest.json: missing" in out.stderr
    out = gxnor("build", str(tmp_path), "--board", "upduino-v3")
    assert out.returncode == 2 and "no UART" in out.stderr
    out = gxnor("flash", "--board", "icebreaker", "--out", str(tmp_path))
    assert out.returncode == 2 and "top.bin: no bitstream" in out.stderr


def test_list_configs():
    out = gxnor("train", "--list-configs")
    assert out.returncode == 0
    assert {line.split()[0] for line in out.stdout.splitlines()} >= {
        "mlp-ice40", "cnn-paper", "mlp-digits"}


def test_train_set_rejects_unknown_field(tmp_path):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "--epochs", "x"])
    assert cli.main(["train", "--config", "mlp-digits", "--set", "bogus=1",
                     "--out", str(tmp_path)]) == cli.EXIT_INPUT


@pytest.mark.parametrize("args, error", [
    (["rtl", "x", "--out", "y", "--lanes", "1025"], "--lanes must be in 1..1024, got 1025"),
    (["rtl", "x", "--out", "y", "--lanes", "100000"], "--lanes must be in 1..1024"),
    (["export", "x", "--out", "y", "--lanes", "0"], "--lanes must be in 1..1024, got 0"),
    (["sim", "x", "--images", "-1"], "--images must be in 1..1000000, got -1"),
    (["sim", "x", "--images", "0"], "--images must be in 1..1000000, got 0"),
    (["sim", "x", "--images", "two"], "--images must be an integer, got 'two'"),
    (["build", "x", "--board", "icebreaker", "--clock", "0"], "--clock must be in 1.0..400.0"),
    (["build", "x", "--board", "icebreaker", "--baud", "nan"], "--baud must be an integer"),
    (["run", "--sim", "icarus", "--lanes", "0", "mnist:1"], "--lanes must be in 1..1024"),
    (["train", "--epochs", "0"], "--epochs must be in 1..100000, got 0"),
])
def test_numeric_options_are_range_checked(args, error, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = gxnor(*args)
    assert out.returncode == 2, out.stderr
    assert error in out.stderr and "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_train_set_type_and_range_errors(tmp_path):
    for item, error in (("epochs=abc", "field 'epochs' takes a int"),
                        ("r=-1", "field 'r' = -1.0: expected a number >= 0"),
                        ("loss=l1", "field 'loss' = 'l1': expected one of")):
        out = gxnor("train", "--config", "mlp-digits", "--set", item, "--out",
                    str(tmp_path / "run"))
        assert out.returncode == 2 and error in out.stderr, out.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.mnist
def test_sim_pipeline_option_errors_exit_2_and_leave_nothing(mnist_trained_export, mnist_path,
                                                             tmp_path, capsys):
    out = tmp_path / "sim"
    base = ["sim", str(mnist_trained_export), "--images", "5", "--data-dir", str(mnist_path),
            "--out", str(out)]
    for extra, msg in ((["--folds", "4x3,8,10"], "layer 0: ports must be a power"),
                       (["--folds", "8,8"], "2 folds for 3 layers"),
                       (["--input-ports", "2"], "--input-ports needs the layer pipeline"),
                       (["--folds", "8,8,10", "--lanes", "8"],
                        "--lanes and --slices are the shared engine"),
                       (["--lanes", "8", "--bench", "cocotb"], "the cocotb bench runs the export")):
        assert cli.main(base + extra) == 2, extra
        assert msg in capsys.readouterr().err
        assert not out.exists()
    assert cli.main(["sim", "--folds", "8", "--out", str(out)]) == 2
    assert "apply to an export" in capsys.readouterr().err
