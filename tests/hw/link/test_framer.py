# amaranth: UnusedElaboratable=no
"""The frame writer, under back-pressure."""

import random

import pytest
from amaranth.sim import Simulator

from gxnor.hw.link import protocol as P
from gxnor.hw.link.framer import FrameTx


@pytest.mark.parametrize("payload", [b"", b"\x00", bytes(range(40))])
def test_frame_tx_writes_protocol_frames_under_back_pressure(payload):
    dut = FrameTx()
    req = dut.frames
    cmd = 0x83
    got = []

    async def source(ctx):
        await ctx.tick()
        ctx.set(req.cmd, cmd)
        ctx.set(req.length, len(payload))
        ctx.set(req.start, 1)
        await ctx.tick()
        ctx.set(req.start, 0)
        for b in payload:
            ctx.set(req.data.payload, b)
            ctx.set(req.data.valid, 1)
            await ctx.tick().until(req.data.ready)
        ctx.set(req.data.valid, 0)

    async def sink(ctx):
        rng = random.Random(1)
        for _ in range(2000):
            ready = rng.random() < 0.4
            ctx.set(dut.out.ready, ready)
            await ctx.delay(1e-9)
            if ready and ctx.get(dut.out.valid):
                got.append(ctx.get(dut.out.payload))
            await ctx.tick()
        assert ctx.get(req.idle)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source, background=True)
    sim.add_testbench(sink)
    sim.run()
    assert bytes(got) == P.frame(cmd, payload)
