"""The board without a board: the board core's Verilog in cocotb, driven through its UART pins
by the host runtime itself (``gxnor run --sim``, the test bench is :mod:`.simboard_bench`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gxnor.hw import rtl
from gxnor.hw.link import protocol, throughput
from gxnor.sim import golden
from gxnor.verify.runner import cocotb_run

BOARD_TOP = "gxnor_board"
BOARD_DIVISOR = 8  # clock cycles per UART bit in simulation (the board tops use their baud)
BOARD_CLOCK_NS = 10  # the simulated board clock (reported by PING as 100 MHz)


def run_board(export_dir: Path, images: np.ndarray, build_dir: Path, *, sim: str | None = None,
              mode: str = "run", lanes: int | None = None, weights: str = "ram",
              waves: bool = False, spec=None, bench: int = 0) -> dict:
    """The board core (:class:`gxnor.hw.link.core.BoardCore`) in cocotb, driven through its
    UART pins by the host runtime (:func:`gxnor.host.device.session`, ``mode`` "run" or
    "selftest").

    ``spec``: the accelerator to build (default: the shared engine for ``lanes``); a
    :class:`~gxnor.hw.spec.PipelineSpec` builds the layer pipeline (``weights="rom"``).
    ``weights="ram"`` starts with an empty weight memory, as the iCE40 SPRAM does, so the host
    loads the weights over the UART first. ``mode="bench"``: the core stores ``images`` in
    its on-chip throughput harness (checked against the golden model's classes) and the host
    asks it to replay ``bench`` images; the report's ``bench_expected`` is the prediction
    (:func:`gxnor.hw.link.throughput.expected`). Returns the session's report; raises
    SimulationFailed when the cocotb test failed.
    """
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    spec = rtl.load_spec(Path(export_dir), lanes) if spec is None else spec
    divisor = BOARD_DIVISOR
    # abandon a stalled frame after 64 byte times
    timeout = 64 * 10 * divisor
    # a read may wait for a whole batch's worth of compute and the device's own timeout
    read_timeout = 4 * timeout + 4 * sum(ly.n_in * ly.n_out for ly in spec.layers)
    harness, want = None, None
    if mode == "bench":
        ref = golden.Network(export_dir).run(images)
        harness = (np.asarray(images, np.uint8), ref.classes)
        want = throughput.expected(spec, ref.events, ref.classes, bench)
        read_timeout += 2 * want["cycles"]
    verilog = build_dir / f"{BOARD_TOP}.v"
    verilog.write_text(rtl.board_verilog_text(
        spec, name=BOARD_TOP, divisor=divisor, weights=weights, timeout=timeout,
        clock_hz=int(1e9 // BOARD_CLOCK_NS), net_id=protocol.network_id(export_dir),
        bench=harness))
    img_path = build_dir / "images.npy"
    np.save(img_path, np.asarray(images, np.uint8))
    report = cocotb_run(verilog, BOARD_TOP, "gxnor.host.simboard_bench", build_dir, sim=sim,
                      waves=waves, env={
                       "GXNOR_EXPORT": str(Path(export_dir).resolve()),
                       "GXNOR_IMAGES": str(img_path), "GXNOR_MODE": mode,
                       "GXNOR_DIVISOR": str(divisor), "GXNOR_CLOCK_NS": str(BOARD_CLOCK_NS),
                       "GXNOR_READ_TIMEOUT": str(read_timeout), "GXNOR_BENCH": str(bench)})
    if want is not None:
        report["bench_expected"] = want
    return report
