# amaranth: UnusedElaboratable=no
"""The combinational CRC-8 equals the protocol's table-driven one."""

import random

from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from gxnor.hw.link import protocol as P
from gxnor.hw.link.crc import crc8_next


def test_crc8_next_matches_the_protocol():
    m = Module()
    crc, byte = Signal(8), Signal(8)
    out = Signal(8)
    m.d.comb += out.eq(crc8_next(crc, byte))
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
