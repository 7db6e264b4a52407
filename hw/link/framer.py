"""Answer frames on the way out: the frame writer, the arbiter between the two answerers, and
the helpers that turn payload layouts and values into bytes."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from . import protocol as P
from .crc import crc8_next


def payload_bits(layout, values: dict):
    """The bits of a protocol payload layout (fields little-endian, in wire order), as a Cat():
    ``values`` holds an int, bytes or an Amaranth value per field."""
    parts = []
    for name, size in P.field_bytes(layout):
        v = values[name]
        if isinstance(v, bytes):
            v = int.from_bytes(v, "little")
        if isinstance(v, int):
            parts.append(Const(v, 8 * size))
        elif len(v) >= 8 * size:
            parts.append(v.as_unsigned()[:8 * size])
        else:
            parts.append(Cat(v, Const(0, 8 * size - len(v))))
    return Cat(*parts)


#: a request to write one frame: pulse ``start`` with ``cmd`` and ``length`` while ``idle``,
#: then hand over ``length`` payload bytes on ``data``
FrameSignature = wiring.Signature({
    "start": Out(1),
    "cmd": Out(8),
    "length": Out(16),
    "idle": In(1),
    "data": Out(stream.Signature(8)),
})


class FrameTx(wiring.Component):
    """Wraps ``length`` payload bytes in a frame (SYNC, command, length, header CRC, payload,
    payload CRC) on ``out``.

    Members
    -------
    frames: In(FrameSignature) — one frame at a time.
    out: Out(stream(8)) — the bytes on the wire.

    Timing: one byte per cycle while ``out`` is ready; the CRC takes each byte a cycle later
    (off the payload's path), so ``idle`` rises the cycle after the last CRC update.
    """

    frames: In(FrameSignature)
    out: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        req = self.frames
        cmd, length = Signal(8), Signal(16)
        crc = Signal(8)
        left = Signal(16)
        hdr = Array([Const(P.SYNC, 8), cmd, length[:8], length[8:], crc])
        hidx = Signal(range(5))
        # the CRC takes each sent byte one cycle later (off the payload's path); a CRC byte
        # goes out only when no update is pending
        crc_byte, crc_pending = Signal(8), Signal()
        fold = Signal()
        m.d.sync += [crc_byte.eq(self.out.payload), crc_pending.eq(fold)]
        with m.If(crc_pending):
            m.d.sync += crc.eq(crc8_next(crc, crc_byte))
        with m.FSM(name="frame_tx"):
            with m.State("IDLE"):
                m.d.comb += req.idle.eq(~crc_pending)
                with m.If(req.start & ~crc_pending):
                    m.d.sync += [cmd.eq(req.cmd), length.eq(req.length), hidx.eq(0),
                                 crc.eq(0)]
                    m.next = "HEADER"
            with m.State("HEADER"):
                m.d.comb += [self.out.valid.eq((hidx != 4) | ~crc_pending),
                             self.out.payload.eq(hdr[hidx])]
                with m.If(self.out.valid & self.out.ready):
                    m.d.sync += hidx.eq(hidx + 1)
                    m.d.comb += fold.eq((hidx != 0) & (hidx != 4))
                    with m.If(hidx == 4):
                        m.d.sync += [crc.eq(0), left.eq(length)]
                        with m.If(length == 0):
                            m.next = "CRC"
                        with m.Else():
                            m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [self.out.valid.eq(req.data.valid),
                             self.out.payload.eq(req.data.payload),
                             req.data.ready.eq(self.out.ready)]
                with m.If(req.data.valid & self.out.ready):
                    m.d.comb += fold.eq(1)
                    m.d.sync += left.eq(left - 1)
                    with m.If(left == 1):
                        m.next = "CRC"
            with m.State("CRC"):
                m.d.comb += [self.out.valid.eq(~crc_pending), self.out.payload.eq(crc)]
                with m.If(self.out.valid & self.out.ready):
                    m.next = "IDLE"
        return m


class FrameMux(wiring.Component):
    """Gives the frame writer to one of two answerers: ``a`` while ``select`` is 0, ``b``
    while it is 1. Whoever selects must not switch in the middle of a frame."""

    select: In(1)
    a: In(FrameSignature)
    b: In(FrameSignature)
    out: Out(FrameSignature)

    def elaborate(self, platform):
        m = Module()
        sel, a, b, out = self.select, self.a, self.b, self.out
        m.d.comb += [
            out.start.eq(Mux(sel, b.start, a.start)),
            out.cmd.eq(Mux(sel, b.cmd, a.cmd)),
            out.length.eq(Mux(sel, b.length, a.length)),
            out.data.valid.eq(Mux(sel, b.data.valid, a.data.valid)),
            out.data.payload.eq(Mux(sel, b.data.payload, a.data.payload)),
            a.idle.eq(out.idle & ~sel), b.idle.eq(out.idle & sel),
            a.data.ready.eq(out.data.ready & ~sel), b.data.ready.eq(out.data.ready & sel),
        ]
        return m


class ValueBytes(wiring.Component):
    """A value of ``nbytes`` bytes in, its bytes out, least significant first; the value is
    taken (``ready``) with its last byte.

    Timing: latency 0, one byte per cycle."""

    def __init__(self, nbytes: int):
        if nbytes < 1:
            raise ValueError(f"nbytes must be >= 1, got {nbytes!r}")
        self._nbytes = nbytes
        super().__init__({
            "value": In(stream.Signature(8 * nbytes)),
            "bytes": Out(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        index = Signal(range(max(self._nbytes, 2)))
        m.d.comb += [self.bytes.valid.eq(self.value.valid),
                     self.bytes.payload.eq(self.value.payload.word_select(index, 8))]
        with m.If(self.bytes.valid & self.bytes.ready):
            m.d.sync += index.eq(index + 1)
            with m.If(index == self._nbytes - 1):
                m.d.comb += self.value.ready.eq(1)
                m.d.sync += index.eq(0)
        return m
