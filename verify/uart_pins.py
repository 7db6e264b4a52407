"""The host side of a board core's serial line in cocotb: bytes in and out of its ``rx`` and
``tx`` pins at the core's baud rate, in simulated time. Used by the protocol robustness bench
(:mod:`.bench_link`) and by the simulated board of the host runtime
(:mod:`gxnor.host.simboard_bench`)."""

from __future__ import annotations

from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import Event, FallingEdge, First, RisingEdge, Timer


async def start_board(dut, clock_ns: int) -> None:
    """Start the clock, hold reset for four cycles, let the core settle four more."""
    import cocotb

    cocotb.start_soon(Clock(dut.clk, clock_ns, unit="ns").start())
    dut.rx.value = 1
    dut.rst.value = 1
    for _ in range(4):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    for _ in range(4):
        await RisingEdge(dut.clk)


class UARTPins:
    """The host side of the serial line, in simulated time."""

    def __init__(self, dut, divisor: int, read_timeout_cycles: int, clock_ns: int):
        self.dut = dut
        self.bit_ns = divisor * clock_ns
        self.timeout_ns = read_timeout_cycles * clock_ns
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
