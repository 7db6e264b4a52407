"""End to end without a board: the host runtime (gxnor.host) talks the UART protocol to the
board core's Verilog running in cocotb, through its rx/tx pins (gxnor.host.simboard)."""

import json

import numpy as np
import pytest

from gxnor import cli
from gxnor.host import simboard
from gxnor.model.random_net import random_images
from gxnor.sim import golden

pytestmark = pytest.mark.sim


def test_selftest_with_weight_load_and_malformed_frames(random_export, tmp_path):
    """Empty weight memory (the SPRAM case) loaded over the UART, then the self-test: six kinds
    of malformed frame between good images, a RUN with a bad checksum back to back between two
    good ones, a frame cut off mid-way; every good image gets the golden model's answer."""
    export = random_export([9, 5, 3], 4, input_shape=(1, 4, 4), seed=3)
    images = random_images(8, (4, 4), density=0.4, seed=3)
    rep = simboard.run_board(export, images, tmp_path, sim="icarus", mode="selftest",
                           weights="ram")
    failed = [c for c in rep["checks"] if not c["ok"]]
    assert not failed
    assert len(rep["checks"]) >= 10
    assert rep["info"]["loaded_words"] == rep["info"]["weight_words"]
    want = golden.Network(export).run(images)
    got = rep["results"]
    assert [r["cls"] for r in got] == want.classes.tolist()
    assert [r["scores"] for r in got] == want.scores.tolist()
    assert [r["events"] for r in got] == np.stack(want.events, 1).tolist()


@pytest.mark.mnist
@pytest.mark.slow
def test_trained_mnist_net_back_to_back_on_verilator(mnist_trained_export, mnist_path, tmp_path):
    """The trained 784-256-256-10 net as the iCEBreaker runs it (32 lanes, repacked from the
    8-lane export), test images back to back through the UART pins."""
    from gxnor.model import data

    images = data.load("mnist", mnist_path).test.images[:6]
    rep = simboard.run_board(mnist_trained_export, images, tmp_path, sim="verilator",
                           mode="run", lanes=32, weights="rom")
    want = golden.Network(mnist_trained_export).run(images)
    assert [r["cls"] for r in rep["results"]] == want.classes.tolist()
    assert [r["scores"] for r in rep["results"]] == want.scores.tolist()
    assert rep["stats"] == {"images": 6, "errors": 0, "dropped": 0, "rx_errors": 0}
    assert rep["info"]["lanes"] == 32


def test_gxnor_run_sim_cli(random_export, tmp_path, capsys):
    export = random_export([6, 3], 4, input_shape=(1, 3, 3), seed=5)
    images = random_images(5, (3, 3), density=0.5, seed=5)
    np.save(tmp_path / "imgs.npy", images)
    out = tmp_path / "report.json"
    code = cli.main(["run", "--sim", "icarus", "--export-dir", str(export), "--selftest",
                     "--out", str(tmp_path / "sim"), "--json", str(out),
                     str(tmp_path / "imgs.npy")])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "golden model: 5/5 classes agree" in text
    assert "FAIL" not in text and "ok   RUN cut off (timeout)" in text
    assert len(json.loads(out.read_text())["results"]) == 5


def test_gxnor_run_input_errors(tmp_path, capsys):
    assert cli.main(["run", "--port", str(tmp_path / "ttyNONE"), str(tmp_path / "x.npy")]) == 2
    assert "x.npy: no such image file" in capsys.readouterr().err
    np.save(tmp_path / "f.npy", np.zeros((2, 3, 3), np.float32))
    assert cli.main(["run", str(tmp_path / "f.npy")]) == 2
    assert "expected uint8" in capsys.readouterr().err
    np.save(tmp_path / "u.npy", np.zeros((2, 3, 3), np.uint8))
    assert cli.main(["run", "--port", str(tmp_path / "ttyNONE"), str(tmp_path / "u.npy")]) == 2
    assert "ttyNONE: cannot open the serial port" in capsys.readouterr().err
    assert cli.main(["run", "mnist:x"]) == 2
    assert "mnist:N or mnist:START:N" in capsys.readouterr().err


def test_layer_pipeline_behind_the_uart(random_export, tmp_path):
    """The layer pipeline as a board runs it: pixels from RUN frames become beats, images back
    to back with malformed frames between them; a LOAD is refused (its weights are ROMs)."""
    from gxnor.hw.spec import PipelineSpec

    export = random_export([9, 5, 3], 4, input_shape=(1, 4, 4), seed=4)
    images = random_images(8, (4, 4), density=0.4, seed=4)
    images[3] = 0  # an all-black image: one empty last beat
    spec = PipelineSpec.from_export(golden.Network(export), [(4, 2, 2), (5, 1, 1), (2, 4, 1)])
    rep = simboard.run_board(export, images, tmp_path, sim="icarus", mode="selftest",
                           weights="rom", spec=spec)
    failed = [c for c in rep["checks"] if not c["ok"]]
    assert not failed
    assert rep["info"]["weight_words"] == 0 and rep["info"]["weights_ram"] == 0
    want = golden.Network(export).run(images)
    got = rep["results"]
    assert [r["cls"] for r in got] == want.classes.tolist()
    assert [r["scores"] for r in got] == want.scores.tolist()
    assert [r["events"] for r in got] == np.stack(want.events, 1).tolist()


@pytest.mark.parametrize("schedule", ["shared", "pipelined"])
def test_on_chip_harness_in_cocotb(random_export, tmp_path, schedule):
    """The board core built with the throughput harness, driven by the host's BENCH request
    through the UART pins: the stored images replayed more times than stored, every counter
    (images, mismatches, cycles, CRC) equal to the golden and cycle models' prediction, and
    RUN frames answered as before once the harness is done."""
    from gxnor.host.run import bench_checks
    from gxnor.hw.link import throughput
    from gxnor.hw.spec import AcceleratorSpec, PipelineSpec

    export = random_export([9, 5, 3], 4, input_shape=(1, 4, 4), seed=6)
    net = golden.Network(export)
    images = random_images(5, (4, 4), density=0.4, seed=6)
    images[2] = 0
    spec = (AcceleratorSpec.from_export(net.export, 4) if schedule == "shared" else
            PipelineSpec.from_export(net.export, [(4, 2, 2), (5, 1, 1), (2, 4, 1)], 2))
    rep = simboard.run_board(export, images, tmp_path, sim="icarus", mode="bench",
                             weights="rom", spec=spec, bench=13)
    ref = net.run(images)
    assert rep["bench_expected"] == throughput.expected(spec, ref.events, ref.classes, 13)
    assert rep["bench"] == rep["bench_expected"]
    assert all(c["ok"] for c in bench_checks({**rep, "bench_requested": 13}))
    assert rep["info"]["bench_images"] == 5
    assert [r["cls"] for r in rep["results"]] == ref.classes.tolist()
    assert [r["scores"] for r in rep["results"]] == ref.scores.tolist()


def test_gxnor_run_bench_cli(random_export, tmp_path, capsys):
    export = random_export([6, 3], 4, input_shape=(1, 3, 3), seed=5)
    np.save(tmp_path / "imgs.npy", random_images(3, (3, 3), density=0.5, seed=5))
    out = tmp_path / "report.json"
    code = cli.main(["run", "--sim", "icarus", "--export-dir", str(export), "--bench", "7",
                     "--out", str(tmp_path / "sim"), "--json", str(out),
                     str(tmp_path / "imgs.npy")])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "on-chip harness: 7 images" in text and "0 mismatches" in text
    rep = json.loads(out.read_text())
    assert [c["check"] for c in rep["checks"]] == ["BENCH images", "BENCH mismatches",
                                                   "BENCH cycles", "BENCH crc"]
    assert all(c["ok"] for c in rep["checks"])
    # no harness on a board built without one; --bench with --selftest is refused
    assert cli.main(["run", "--sim", "icarus", "--export-dir", str(export), "--bench", "7",
                     "--selftest", str(tmp_path / "imgs.npy")]) == 2
