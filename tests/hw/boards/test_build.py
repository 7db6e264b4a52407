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


#: the ULX3S test builds a small fold of the layer pipeline (its planner's default, about 50k
#: LUT4, takes ~10 minutes to place and route: that build is in `make bench`)
SMALL_FOLDS = "32x1x1,32x2x2,10x1"


@pytest.mark.parametrize("name", ["icebreaker", "ulx3s-85f"])
def test_bitstream_builds_fits_and_meets_clock(name, mnist_trained_export, mnist_path, tmp_path):
    from gxnor.hw import plan

    b = boards.board(name)
    folds = plan.parse_folds(SMALL_FOLDS) if b.schedule == "pipelined" else None
    logged = []
    report = boards.build(mnist_trained_export, name, tmp_path, data_dir=mnist_path,
                          log=logged.append, folds=folds, input_ports=2 if folds else None)
    bdir = tmp_path / name
    assert report["timing_met"], f"Fmax {report['fmax_hz'] / 1e6:.2f} MHz"
    assert report["fmax_hz"] >= report["clock_hz"] == b.clock_hz
    assert report["schedule"] == b.schedule
    if folds:
        assert report["folds"] == [[32, 1, 1], [32, 2, 2], [10, 1, 1]]
        assert report["input_ports"] == 2
        p = report["plan"]
        # the planner's table was shown before synthesis, and the report holds it with
        # yosys/nextpnr's numbers beside it
        assert "bounds the pipeline" in logged[0]
        assert p["estimate"]["luts"] > 0 and p["actual"]["luts"] > 0
        assert "estimate vs yosys/nextpnr" in (bdir / "report.md").read_text()
        assert tp_interval(report) >= max(s["mean"] for s in p["stages"].values()) * 0.97
        return
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


def tp_interval(report):
    return report["throughput"]["interval_cycles_mean"]


def test_choose_spec_by_board_and_options(random_export, tmp_path):
    """Which accelerator a build makes, and the clear errors of options that do not go
    together (no synthesis)."""
    from gxnor.hw import plan
    from gxnor.hw.boards.build import choose_spec
    from gxnor.sim import golden

    export = random_export([12, 5], 4, input_shape=(1, 4, 4), seed=2)
    events, _ = golden.dataset_events(export)
    ice, ulx = boards.board("icebreaker"), boards.board("ulx3s-85f")
    spec, p = choose_spec(export, ice, events)
    assert spec.schedule == "shared" and spec.lanes == ice.lanes and p is None
    spec, p = choose_spec(export, ulx, events)  # the planner, for the board's budget
    assert spec.schedule == "pipelined" and p.luts <= p.budget.luts
    assert p.budget == plan.device_budget("LFE5U-85F")
    spec, p = choose_spec(export, ulx, events, lanes=16)  # --lanes: the shared engine
    assert spec.schedule == "shared" and spec.lanes == 16
    spec, p = choose_spec(export, ulx, events, folds=plan.parse_folds("4x2x2,5"),
                          input_ports=2)
    assert [f.lanes for f in spec.folds] == [4, 5] and spec.input_ports == 2
    assert p.stages["L0"]["ports"] == 2
    with pytest.raises(InputError, match="2 folds for 3 layers|3 folds for 2 layers"):
        choose_spec(export, ulx, events, folds=plan.parse_folds("4,4,5"))
    with pytest.raises(InputError, match="--lanes sets the shared engine's lanes"):
        choose_spec(export, ulx, events, lanes=8, schedule="pipelined")
    with pytest.raises(InputError, match="takes --lanes"):
        choose_spec(export, ulx, events, schedule="shared", folds=plan.parse_folds("4,5"))
    with pytest.raises(InputError, match="weights live in spram"):
        choose_spec(export, ice, events, schedule="pipelined")


def test_build_cli_bad_folds_exit_2_and_touch_nothing(random_export, tmp_path, capsys):
    from gxnor import cli

    export = random_export([12, 5], 4, input_shape=(1, 4, 4), seed=2)
    for folds, msg in (("4x3,5", "layer 0: ports must be a power of two"),
                       ("4,5,5", "3 folds for 2 layers")):
        code = cli.main(["build", str(export), "--board", "ulx3s-85f", "--folds", folds,
                         "--out", str(tmp_path / "out")])
        assert code == 2
        assert msg in capsys.readouterr().err
        assert not (tmp_path / "out").exists()
