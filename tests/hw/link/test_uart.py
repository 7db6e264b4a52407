# amaranth: UnusedElaboratable=no
"""UART against a bit-level reference of 8N1 framing (Amaranth simulator)."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from gxnor.hw.link.uart import UARTRx, UARTTx

pytestmark = pytest.mark.sim


def frame_bits(byte: int, stop: int = 1) -> list[int]:
    """The line levels of one 8N1 frame: start 0, data LSB first, stop."""
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


@pytest.mark.parametrize("divisor", [4, 7])
def test_tx_waveform_matches_reference(divisor):
    dut = UARTTx(divisor)
    data = [0x00, 0xFF, 0xA5, 0x3C]
    line = []

    async def bench(ctx):
        for byte in data:
            ctx.set(dut.data.payload, byte)
            ctx.set(dut.data.valid, 1)
            await ctx.tick().until(dut.data.ready)
            ctx.set(dut.data.valid, 0)
            for _ in range(10 * divisor):
                line.append(ctx.get(dut.tx))
                await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    expected = [b for byte in data for b in frame_bits(byte) for _ in range(divisor)]
    assert line == expected


@pytest.mark.parametrize("divisor", [4, 9])
def test_rx_reference_frames_with_framing_error_and_back_pressure(divisor):
    dut = UARTRx(divisor)
    rng = random.Random(divisor)
    frames = [(rng.randrange(256), 1) for _ in range(12)]
    frames[5] = (0x55, 0)  # stop bit 0: must be dropped and flagged
    got, errors = [], []

    async def drive(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        for byte, stop in frames:
            for level in frame_bits(byte, stop):
                ctx.set(dut.rx, level)
                await ctx.tick().repeat(divisor)
            ctx.set(dut.rx, 1)
            await ctx.tick().repeat(rng.randrange(1, 3 * divisor))  # idle gap

    async def collect(ctx):
        ready = 1
        for _ in range(len(frames) * (14 * divisor + 10)):
            ready = rng.random() < 0.7  # back-pressure, never long enough to overrun
            ctx.set(dut.data.ready, ready)
            await ctx.delay(1e-9)
            if ctx.get(dut.framing_error):
                errors.append(len(got))
            if ready and ctx.get(dut.data.valid):
                got.append(ctx.get(dut.data.payload))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive, background=True)
    sim.add_testbench(collect)
    sim.run()
    assert got == [b for b, stop in frames if stop]
    assert errors == [5]


def test_loopback_back_to_back():
    m = Module()
    m.submodules.tx = tx = UARTTx(5)
    m.submodules.rx = rx = UARTRx(5)
    m.d.comb += rx.rx.eq(tx.tx)
    data = list(range(0, 256, 17))
    got = []

    async def send(ctx):
        for byte in data:
            ctx.set(tx.data.payload, byte)
            ctx.set(tx.data.valid, 1)
            await ctx.tick().until(tx.data.ready)
        ctx.set(tx.data.valid, 0)

    async def receive(ctx):
        ctx.set(rx.data.ready, 1)
        while len(got) < len(data):
            await ctx.tick()
            if ctx.get(rx.data.valid):
                got.append(ctx.get(rx.data.payload))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(send, background=True)
    sim.add_testbench(receive)
    sim.run()
    assert got == data


def test_divisor_is_checked():
    with pytest.raises(ValueError, match=r"^divisor must be an integer >= 4 .* got 2$"):
        UARTTx(2)
