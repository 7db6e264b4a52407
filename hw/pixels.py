"""The input stage: pixels in, the image's nonzero pixels out as first-layer events."""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import MAGNITUDE_BITS, beat_layout, bundle_layout


class _PixelInput(wiring.Component):
    """What both input stages share: the ``pixels`` stream of an image of ``n_pixels``, the
    position of the next pixel in its image, and the event a pixel becomes."""

    def __init__(self, n_pixels: int, members: dict, shape=None):
        if n_pixels < 1:
            raise ValueError(f"n_pixels must be >= 1, got {n_pixels!r}")
        if shape is not None and shape.events != n_pixels:
            raise ValueError(f"a {shape.channels}x{shape.height}x{shape.width} input map is not "
                             f"{n_pixels} pixels")
        self._n_pixels, self._shape = n_pixels, shape
        super().__init__({"pixels": In(stream.Signature(unsigned(MAGNITUDE_BITS))), **members})

    def _position(self, m: Module, take):
        """(the position of the current pixel in its image, it is the image's last); the
        position moves on when ``take``. With a conv first layer's ``shape``
        (:class:`~gxnor.hw.spec.ConvShape`), the position is packed: channel, row, column as
        bit fields (:meth:`~gxnor.hw.spec.ConvShape.index`)."""
        s = self._shape
        if s is None:
            index = Signal(range(max(self._n_pixels, 2)))
            last = index == self._n_pixels - 1
            with m.If(take):
                m.d.sync += index.eq(Mux(last, 0, index + 1))
            return index, last
        c, y, x = (Signal(range(max(n, 2)), name=name) for n, name in
                   ((s.channels, "c"), (s.height, "y"), (s.width, "x")))
        row_end, map_end = x == s.width - 1, y == s.height - 1
        last = (c == s.channels - 1) & map_end & row_end
        with m.If(take):
            m.d.sync += x.eq(Mux(row_end, 0, x + 1))
            with m.If(row_end):
                m.d.sync += y.eq(Mux(map_end, 0, y + 1))
                with m.If(map_end):
                    m.d.sync += c.eq(Mux(last, 0, c + 1))
        return s.index(c, y, x), last

    def _event(self, event, index) -> list:
        """The pixel as an event: its position, its value, sign +."""
        return [event.index.eq(index), event.magnitude.eq(self.pixels.payload),
                event.sign.eq(0)]


class PixelEvents(_PixelInput):
    """Turns the pixel stream into events: a nonzero pixel becomes an event (index = the
    pixel's position in the image, magnitude = its value, sign +); a black pixel becomes
    nothing.

    Parameters
    ----------
    n_pixels: pixels per image (row-major (C, H, W)).
    event: the event layout.
    ports: the slots of an event bundle (the event lists' banks); one is used.

    Members
    -------
    pixels: In(stream(uint8)) — ready while ``enable`` is high.
    enable: In(1) — accept pixels.
    events: Out(stream(bundle)) — one event per bundle; always ready downstream (the event
        list).
    last: Out(1) — pulse: the image's last pixel was accepted this cycle.

    Timing: latency 0 (combinational), one pixel per cycle.
    """

    latency = 0

    def __init__(self, n_pixels: int, event: data.Layout, ports: int = 1):
        super().__init__(n_pixels, {
            "enable": In(1),
            "events": Out(stream.Signature(bundle_layout(event, ports), always_ready=True)),
            "last": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        take = self.pixels.valid & self.enable
        index, last = self._position(m, take)
        m.d.comb += [
            self.pixels.ready.eq(self.enable),
            self.events.valid.eq(take & (self.pixels.payload != 0)),
            self.events.payload.n.eq(1),
            self.last.eq(take & last),
            *self._event(self.events.payload.events[0], index),
        ]
        return m


class PixelBeats(_PixelInput):
    """Turns the pixel stream into the layer pipeline's input beats
    (:func:`gxnor.hw.layouts.beat_layout`): a nonzero pixel becomes a beat of one event, the
    image's last pixel always ends a beat (flagged ``last``; it carries no event when black).
    A black pixel that is not the last becomes nothing.

    Parameters
    ----------
    n_pixels: pixels per image (row-major (C, H, W)).
    event: the first layer's event layout (:func:`gxnor.hw.pipeline.engine_event`).
    ports: the slots of a beat (the pipeline's ``input_ports``); one is used.
    shape: a conv first layer's :class:`~gxnor.hw.spec.ConvShape` (events indexed packed by
        channel, row and column); None: indexed flat.

    Members
    -------
    pixels: In(stream(uint8)).
    beats: Out(stream(beat)) — a pixel is taken when its beat is (or at once when it makes
        none).

    Timing: latency 0 (combinational), one pixel per cycle.
    """

    latency = 0

    def __init__(self, n_pixels: int, event: data.Layout, ports: int = 1, shape=None):
        super().__init__(n_pixels, {"beats": Out(stream.Signature(beat_layout(event, ports)))},
                         shape)

    def elaborate(self, platform):
        m = Module()
        index, last = self._position(m, self.pixels.valid & self.pixels.ready)
        nonzero = self.pixels.payload != 0
        beat = self.beats.payload
        m.d.comb += [
            self.beats.valid.eq(self.pixels.valid & (nonzero | last)),
            self.pixels.ready.eq(self.beats.ready | ~(nonzero | last)),
            beat.n.eq(nonzero),
            beat.last.eq(last),
            *self._event(beat.events[0], index),
        ]
        return m


class BeatPixels(wiring.Component):
    """The inverse of :class:`PixelBeats`: turns one-event beats back into the dense pixel
    stream (the shared engine's input, fed from the on-chip harness's event store). At each
    position the pixel is the beat's magnitude if the beat's event sits there, else 0; a beat
    is taken once its event is out, the image's last beat at the image's last pixel (so an
    empty last beat, an all-black image, gives ``n_pixels`` zeros).

    Members
    -------
    beats: In(stream(beat)) — one slot used; events in ascending index order.
    pixels: Out(stream(uint8)) — valid whenever a beat is.

    Timing: latency 0 (combinational), one pixel per cycle.
    """

    latency = 0

    def __init__(self, n_pixels: int, event: data.Layout):
        if n_pixels < 1:
            raise ValueError(f"n_pixels must be >= 1, got {n_pixels!r}")
        self._n_pixels = n_pixels
        super().__init__({"beats": In(stream.Signature(beat_layout(event, 1))),
                          "pixels": Out(stream.Signature(unsigned(MAGNITUDE_BITS)))})

    def elaborate(self, platform):
        m = Module()
        beat = self.beats.payload
        index = Signal(range(max(self._n_pixels, 2)))
        end = index == self._n_pixels - 1
        hit = (beat.n != 0) & (beat.events[0].index == index)
        take = self.pixels.valid & self.pixels.ready
        m.d.comb += [
            self.pixels.valid.eq(self.beats.valid),
            self.pixels.payload.eq(Mux(hit, beat.events[0].magnitude, 0)),
            self.beats.ready.eq(self.pixels.ready & ((hit & ~beat.last) | end)),
        ]
        with m.If(take):
            m.d.sync += index.eq(Mux(end, 0, index + 1))
        return m
