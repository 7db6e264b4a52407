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


def test_pixel_beats_under_back_pressure(simulate, small_event):
    """Nonzero pixels become one-event beats, the last pixel always ends a beat (empty when
    black); a beat that is not taken holds its pixel."""
    from gxnor.hw.pixels import PixelBeats

    images = [np.array([0, 5, 0, 0, 255, 1, 0, 9], np.uint8),
              np.array([3, 0, 0, 0, 0, 0, 0, 0], np.uint8), np.zeros(8, np.uint8)]
    dut = PixelBeats(8, small_event, ports=2)
    beats = []

    async def bench(ctx):
        stream = np.concatenate(images)
        k = cycle = 0
        while k < len(stream):
            ready = cycle % 3 != 1  # back-pressure every third cycle
            ctx.set(dut.pixels.payload, int(stream[k]))
            ctx.set(dut.pixels.valid, 1)
            ctx.set(dut.beats.ready, ready)
            if ctx.get(dut.beats.valid) and ready:
                b = ctx.get(dut.beats.payload)
                ev = b.events[0]
                beats.append((b.n, b.last, (ev.index, ev.magnitude) if b.n else None))
            if ctx.get(dut.pixels.ready):
                k += 1
            await ctx.tick()
            cycle += 1

    simulate(dut, bench)
    assert beats == expected_beats(images, range(8))


def test_pixel_beats_pack_a_conv_layers_pixels(simulate):
    """For a conv first layer, a pixel's event index packs its channel, row and column
    (``ConvShape.index``), as the one encoding (the spec's index map) does, image after
    image."""
    from gxnor.hw.layouts import event_layout
    from gxnor.hw.pixels import PixelBeats
    from gxnor.hw.spec import ConvShape

    shape = ConvShape(2, 3, 5, 3)  # 2 x 3 x 5: rows of 5 (3 bits), 3 rows (2 bits)
    packed = shape.flat_to_index()
    assert packed[5] == 1 << 3 and packed[15] == 1 << 5  # row 1; channel 1
    rng = np.random.default_rng(1)
    images = np.where(rng.random((3, 30)) < 0.4, rng.integers(1, 256, (3, 30)), 0)
    images[1] = 0
    images[2, -1] = 7  # a last pixel that is not black
    images = images.astype(np.uint8)
    dut = PixelBeats(30, event_layout(shape.index_bits), shape=shape)
    beats = []

    async def bench(ctx):
        ctx.set(dut.beats.ready, 1)
        for px in images.reshape(-1):
            ctx.set(dut.pixels.payload, int(px))
            ctx.set(dut.pixels.valid, 1)
            await ctx.delay(1e-9)
            if ctx.get(dut.beats.valid):
                b = ctx.get(dut.beats.payload)
                ev = b.events[0]
                beats.append((b.n, b.last, (ev.index, ev.magnitude) if b.n else None))
            await ctx.tick()

    simulate(dut, bench)
    assert beats == expected_beats(images, packed)


def expected_beats(images, index):
    """(n, last, (event index, value) or None) of each beat the images should become:
    a beat per nonzero pixel (its index from ``index``), the last pixel always ending one."""
    want = []
    for img in images:
        for i, v in enumerate(img):
            last = i == len(img) - 1
            if v or last:
                want.append((int(v != 0), int(last), (int(index[i]), int(v)) if v else None))
    return want
