# amaranth: UnusedElaboratable=no
"""Blocks of the board core (gxnor.hw.link.core)."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from gxnor.hw.link import core as board
from gxnor.hw.link import protocol as P
from gxnor.hw.spec import AcceleratorSpec
from gxnor.sim import golden


def test_crc8_next_matches_the_protocol():
    m = Module()
    crc, byte = Signal(8), Signal(8)
    out = Signal(8)
    m.d.comb += out.eq(board.crc8_next(crc, byte))
    rng = random.Random(0)
    pairs = [(0, b) for b in range(256)] + [(rng.randrange(256), rng.randrange(256))
                                            for _ in range(500)]
    bad = []

    async def bench(ctx):
        for c, b in pairs:
            ctx.set(crc, c)
            ctx.set(byte, b)
            if ctx.get(out) != P.crc8_update(c, b):
                bad.append((c, b))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not bad


@pytest.mark.parametrize("payload", [b"", b"\x00", bytes(range(40))])
def test_frame_tx_writes_protocol_frames_under_back_pressure(payload):
    dut = board.FrameTx()
    cmd = 0x83
    got = []

    async def source(ctx):
        await ctx.tick()
        ctx.set(dut.cmd, cmd)
        ctx.set(dut.length, len(payload))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for b in payload:
            ctx.set(dut.data.payload, b)
            ctx.set(dut.data.valid, 1)
            await ctx.tick().until(dut.data.ready)
        ctx.set(dut.data.valid, 0)

    async def sink(ctx):
        rng = random.Random(1)
        for _ in range(2000):
            ready = rng.random() < 0.4
            ctx.set(dut.out.ready, ready)
            await ctx.delay(1e-9)
            if ready and ctx.get(dut.out.valid):
                got.append(ctx.get(dut.out.payload))
            await ctx.tick()
        assert ctx.get(dut.idle)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source, background=True)
    sim.add_testbench(sink)
    sim.run()
    assert bytes(got) == P.frame(cmd, payload)


def test_spram_capacity_is_checked():
    with pytest.raises(ValueError, match="SPRAM blocks"):
        board.WeightStore(depth=16384 * 2, width=64, kind="spram")
    board.WeightStore(depth=8576, width=64, kind="spram")  # the default net at P=32 fits
    with pytest.raises(ValueError, match="weight memory"):
        board.WeightStore(depth=4, width=4, kind="flash")


def test_board_core_rejects_bad_parameters(random_export):
    spec = AcceleratorSpec.from_export(golden.Network(random_export([5, 3], 4)))
    with pytest.raises(ValueError, match="weights"):
        board.BoardCore(spec, divisor=8, weights="eeprom")
    with pytest.raises(ValueError, match="timeout"):
        board.BoardCore(spec, divisor=8, timeout=10)
    with pytest.raises(ValueError, match="divisor"):
        board.BoardCore(spec, divisor=2)
    core = board.BoardCore(spec, divisor=8, weights="ram", net_id=7)
    info = core.info()
    assert (info.lanes, info.n_pixels, info.num_classes, info.weights_ram, info.net_id) == \
        (4, 16, 3, 1, 7)
    assert P.Info.decode(info.encode()) == info
