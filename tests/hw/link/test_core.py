# amaranth: UnusedElaboratable=no
"""The board core's parameters and what it reports (its behaviour is tested end to end in
tests/host/test_run.py and under garbage in tests/verify/test_bench_link.py)."""

import pytest

from gxnor.hw.link import protocol as P
from gxnor.hw.link.core import BoardCore
from gxnor.hw.spec import AcceleratorSpec
from gxnor.sim import golden


def test_board_core_rejects_bad_parameters(random_export):
    spec = AcceleratorSpec.from_export(golden.Network(random_export([5, 3], 4)))
    with pytest.raises(ValueError, match="weights"):
        BoardCore(spec, divisor=8, weights="eeprom")
    with pytest.raises(ValueError, match="timeout"):
        BoardCore(spec, divisor=8, timeout=10)
    with pytest.raises(ValueError, match="divisor"):
        BoardCore(spec, divisor=2)
    core = BoardCore(spec, divisor=8, weights="ram", net_id=7)
    info = core.info()
    assert (info.lanes, info.n_pixels, info.num_classes, info.weights_ram, info.net_id) == \
        (4, 16, 3, 1, 7)
    assert P.Info.decode(info.encode()) == info


@pytest.mark.parametrize("pattern", ["free", "stalls"])
def test_skid_buffer_passes_every_byte_in_order(pattern):
    """A byte a cycle with the sink always ready; random stalls on both sides: every byte
    comes out once, in order; its upstream ready is a register (never changes between
    edges with the sink's ready)."""
    import random

    from amaranth.sim import Simulator

    from gxnor.hw.link.core import SkidBuffer

    dut = SkidBuffer(8)
    data = list(range(1, 200))
    rng = random.Random(3)
    got, cycles = [], [0]

    async def source(ctx):
        for byte in data:
            while pattern == "stalls" and rng.random() < 0.3:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        while len(got) < len(data):
            ready = int(not (pattern == "stalls" and rng.random() < 0.4))
            ctx.set(dut.o.ready, ready)
            before = ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, 1 - ready)
            assert ctx.get(dut.i.ready) == before  # not combinational on the sink's ready
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                got.append(payload)
            cycles[0] += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run_until(1e-2)
    assert got == data
    if pattern == "free":
        assert cycles[0] <= len(data) + 2  # a byte a cycle
