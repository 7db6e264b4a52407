"""cocotb test of the board core through its UART pins, driven by the host runtime itself.

The host client (:class:`gxnor.host.device.Device`) runs in a cocotb bridge thread; its transport
turns ``write`` into bits on ``rx`` and ``read`` into bytes decoded from ``tx``, both in
simulated time at the core's baud rate. Nothing else of the host path is replaced.

Parameters come from the environment (set by ``gxnor.host.simboard.run_board``):
``GXNOR_EXPORT``, ``GXNOR_IMAGES`` (.npy), ``GXNOR_MODE`` (``run``, ``selftest`` or
``bench``: ``GXNOR_BENCH`` images through the on-chip harness, which stores the images),
``GXNOR_DIVISOR`` (clock cycles per bit), ``GXNOR_CLOCK_NS`` (clock period),
``GXNOR_READ_TIMEOUT`` (cycles a read may wait),
``GXNOR_REPORT`` (JSON written at the end).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.simtime import get_sim_time
from cocotb.task import bridge, resume

from gxnor.host import device as host
from gxnor.verify.uart_pins import UARTPins, start_board

CLOCK_NS = int(os.environ.get("GXNOR_CLOCK_NS", "10"))  # set by the runner


class SimTransport:
    """The blocking transport the host client expects, on top of :class:`UARTPins`."""

    def __init__(self, pins: UARTPins):
        self._write = resume(pins.send)
        self._read = resume(pins.read)

    def write(self, data: bytes) -> None:
        self._write(data)

    def read(self, n: int) -> bytes:
        return self._read(n)


@cocotb.test()
async def host_session(dut):
    export = Path(os.environ["GXNOR_EXPORT"])
    images = np.load(os.environ["GXNOR_IMAGES"])
    mode = os.environ.get("GXNOR_MODE", "run")
    pins = UARTPins(dut, int(os.environ["GXNOR_DIVISOR"]),
                    int(os.environ.get("GXNOR_READ_TIMEOUT", "4000000")), CLOCK_NS)
    await start_board(dut, CLOCK_NS)
    cocotb.start_soon(pins.monitor())
    dev = host.Device(SimTransport(pins))
    t_start = get_sim_time("ns")
    report = await bridge(host.session)(dev, images, export, mode,
                                        int(os.environ.get("GXNOR_BENCH", "0")))
    report["sim_cycles"] = int((get_sim_time("ns") - t_start) // CLOCK_NS)
    report["bytes_sent"] = pins.bytes_sent
    Path(os.environ["GXNOR_REPORT"]).write_text(json.dumps(report, indent=1))
    failed = [c for c in report.get("checks", []) if not c["ok"]]
    assert not failed, f"self-test checks failed: {failed}"
