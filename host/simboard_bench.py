"""cocotb test of the board core through its UART pins, driven by the host runtime itself.

The host client (:class:`gxnor.host.device.Device`) runs in a cocotb bridge thread; its transport
turns ``write`` into bits on ``rx`` and ``read`` into bytes decoded from ``tx``, both in
simulated time at the core's baud rate. Nothing else of the host path is replaced.

Parameters come from the environment (set by ``gxnor.host.simboard.run_board``):
``GXNOR_EXPORT``, ``GXNOR_IMAGES`` (.npy), ``GXNOR_MODE`` (``run`` or ``selftest``),
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
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.task import bridge, resume
from cocotb.triggers import Event, FallingEdge, First, RisingEdge, Timer

from gxnor.host import device as host

CLOCK_NS = int(os.environ.get("GXNOR_CLOCK_NS", "10"))  # set by the runner


class UARTPins:
    """The host side of the serial line, in simulated time."""

    def __init__(self, dut, divisor: int, read_timeout_cycles: int):
        self.dut = dut
        self.bit_ns = divisor * CLOCK_NS
        self.timeout_ns = read_timeout_cycles * CLOCK_NS
        self.received = bytearray()
        self.arrived = Event()
        self.bytes_sent = 0

    async def send(self, data: bytes) -> None:
        for byte in data:
            for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
                self.dut.rx.value = bit
                await Timer(self.bit_ns, unit="ns")
        self.bytes_sent += len(data)

    async def monitor(self) -> None:
        tx = self.dut.tx
        while True:
            await FallingEdge(tx)
            await Timer(self.bit_ns // 2, unit="ns")  # middle of the start bit
            if tx.value != 0:
                continue
            byte = 0
            for i in range(8):
                await Timer(self.bit_ns, unit="ns")
                byte |= int(tx.value) << i
            await Timer(self.bit_ns, unit="ns")
            if tx.value != 1:
                raise AssertionError("framing error on tx (stop bit is 0)")
            self.received.append(byte)
            self.arrived.set()

    async def read(self, n: int) -> bytes:
        deadline = get_sim_time("ns") + self.timeout_ns
        while len(self.received) < n:
            left = int(deadline - get_sim_time("ns"))
            if left <= 0:
                break
            self.arrived.clear()
            await First(self.arrived.wait(), Timer(left, unit="ns"))
        out = bytes(self.received[:n])
        del self.received[:n]
        return out


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
                    int(os.environ.get("GXNOR_READ_TIMEOUT", "4000000")))
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    dut.rx.value = 1
    dut.rst.value = 1
    for _ in range(4):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    for _ in range(4):
        await RisingEdge(dut.clk)
    cocotb.start_soon(pins.monitor())
    dev = host.Device(SimTransport(pins))
    t_start = get_sim_time("ns")
    report = await bridge(host.session)(dev, images, export, mode)
    report["sim_cycles"] = int((get_sim_time("ns") - t_start) // CLOCK_NS)
    report["bytes_sent"] = pins.bytes_sent
    Path(os.environ["GXNOR_REPORT"]).write_text(json.dumps(report, indent=1))
    failed = [c for c in report.get("checks", []) if not c["ok"]]
    assert not failed, f"self-test checks failed: {failed}"
