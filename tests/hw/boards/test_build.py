"""Bitstreams for the default net (784-256-256-10, trained one epoch on MNIST): they build with
the YoWASP tools, fit, meet the chosen clock, and the reports say so; flashing fails clearly
without a tool or a board."""

import json
import os
import shutil

import pytest

from gxnor.base.errors import InputError, StageFailed
from gxnor.hw import boards

pytestmark = [pytest.mark.synth, pytest.mark.slow, pytest.mark.mnist]


@pytest.mark.parametrize("name", ["icebreaker", "ulx3s-85f"])
def test_bitstream_builds_fits_and_meets_clock(name, mnist_trained_export, mnist_path, tmp_path):
    report = boards.build(mnist_trained_export, name, tmp_path, data_dir=mnist_path,
                          log=lambda s: None)
    b = boards.board(name)
    bdir = tmp_path / name
    assert report["timing_met"], f"Fmax {report['fmax_hz'] / 1e6:.2f} MHz"
    assert report["fmax_hz"] >= report["clock_hz"] == b.clock_hz
    assert report["lanes"] == b.lanes
    assert (bdir / b.family.bitstream).stat().st_size > 100_000
    assert json.loads((bdir / "report.json").read_text()) == report
    assert "timing met" in (bdir / "report.md").read_text()
    for res in report["resources"].values():
        assert 0 <= res["used"] <= res["available"]
    used = {k.split()[0]: v["used"] for k, v in report["resources"].items()}
    if name == "icebreaker":
        assert used["SPRAM"] == 4  # the weights live in all four SPRAMs
    tp = report["throughput"]
    assert tp["cycles_source"].startswith("1000 test images")
    assert tp["core_images_per_s"] == pytest.approx(
        report["clock_hz"] / tp["interval_cycles_mean"])
    assert tp["interval_cycles_mean"] >= tp["compute_cycles_mean"] + tp["io_cycles"]


def test_flash_errors(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="no bitstream; run `make bitstream"):
        boards.flash("ulx3s-85f", out=tmp_path)
    bit = tmp_path / "top.bit"
    bit.write_bytes(b"\xff" * 64)
    # no programmer installed: the message says how to get it
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    with pytest.raises(InputError, match="apt-get install openfpgaloader"):
        boards.flash("ulx3s-85f", bit)
    monkeypatch.undo()
    tool = shutil.which("openFPGALoader")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("CI installs openFPGALoader (.ci/run); it is missing")
        pytest.skip("openFPGALoader not installed")
    # the real programmer, no board attached
    with pytest.raises(StageFailed, match="is the ulx3s-85f connected"):
        boards.flash("ulx3s-85f", bit)
