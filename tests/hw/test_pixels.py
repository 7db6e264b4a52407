# amaranth: UnusedElaboratable=no
"""The input stage: nonzero pixels become events, black ones nothing; `last` ends the image."""

import numpy as np

from gxnor.hw.pixels import PixelEvents


def test_nonzero_pixels_become_events(simulate, small_event):
    image = np.array([0, 5, 0, 0, 255, 1, 0, 9], np.uint8)
    dut = PixelEvents(len(image), small_event)
    events, lasts = [], []

    async def bench(ctx):
        for enable in (0, 1):
            ctx.set(dut.enable, enable)
            for k, px in enumerate(np.concatenate([image, image])):
                ctx.set(dut.pixels.payload, int(px))
                ctx.set(dut.pixels.valid, 1)
                assert ctx.get(dut.pixels.ready) == enable
                if ctx.get(dut.events.valid):
                    bundle = ctx.get(dut.events.payload)
                    assert bundle.n == 1
                    ev = bundle.events[0]
                    events.append((ev.index, ev.magnitude, ev.sign))
                if ctx.get(dut.last):
                    lasts.append(k)
                await ctx.tick()

    simulate(dut, bench)
    one = [(i, int(v), 0) for i, v in enumerate(image) if v]
    assert events == one + one  # nothing while disabled, then two images
    assert lasts == [len(image) - 1, 2 * len(image) - 1]
