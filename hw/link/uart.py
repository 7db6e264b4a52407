"""UART (8N1) transmitter and receiver with stream interfaces: the host link of the board tops.

One start bit (0), eight data bits LSB first, one stop bit (1); ``divisor`` clock cycles per
bit (clock frequency / baud rate).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class _UARTBase(wiring.Component):
    """Holds and checks ``divisor``, the clock cycles per bit (clock frequency / baud)."""

    def __init__(self, divisor: int):
        if not isinstance(divisor, int) or divisor < 4:
            raise ValueError(f"divisor must be an integer >= 4 (clock cycles per bit), "
                             f"got {divisor!r}")
        self._divisor = divisor
        super().__init__()

    @property
    def divisor(self) -> int:
        return self._divisor


class UARTTx(_UARTBase):
    """Sends each byte of the ``data`` stream on ``tx``.

    Timing: a byte takes 10 * divisor cycles; ``data.ready`` is high only while the line is
    idle, so bytes go out back to back when the stream keeps ``valid`` high.
    """

    data: In(stream.Signature(8))
    tx: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()
        frame = Signal(10, init=0x3FF)  # bit 0 is on the line
        bits_left = Signal(range(11))
        timer = Signal(range(self._divisor))
        m.d.comb += [self.data.ready.eq(bits_left == 0),
                     self.tx.eq(Mux(bits_left == 0, 1, frame[0]))]
        with m.If(bits_left == 0):
            with m.If(self.data.valid):
                # start bit, data LSB first, stop bit
                m.d.sync += [frame.eq(Cat(Const(0, 1), self.data.payload, Const(1, 1))),
                             bits_left.eq(10), timer.eq(self._divisor - 1)]
        with m.Elif(timer == 0):
            m.d.sync += [frame.eq(Cat(frame[1:], Const(1, 1))), bits_left.eq(bits_left - 1),
                         timer.eq(self._divisor - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m


class UARTRx(_UARTBase):
    """Receives bytes from ``rx`` into the ``data`` stream.

    The line is synchronised with two flip-flops and sampled in the middle of each bit. A frame
    whose stop bit is 0 is dropped and pulses ``framing_error``; a byte that arrives while the
    previous one is still waiting on ``data`` is dropped and pulses ``overrun``.

    Timing: a byte appears on ``data`` 2 + 9.5 * divisor cycles after its start bit begins.
    """

    rx: In(1, init=1)
    data: Out(stream.Signature(8))
    framing_error: Out(1)
    overrun: Out(1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        sync1 = Signal(init=1)
        line = Signal(init=1)
        m.d.sync += [sync1.eq(self.rx), line.eq(sync1)]
        timer = Signal(range(d))
        bit = Signal(range(8))
        shift = Signal(8)
        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        with m.FSM(name="rx"):
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):  # middle of the start bit: still 0?
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(~line):
                    m.d.sync += [timer.eq(d - 1), bit.eq(0)]
                    m.next = "DATA"
                with m.Else():
                    m.next = "IDLE"  # a glitch, not a start bit
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), bit.eq(bit + 1),
                                 timer.eq(d - 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(~line):
                        m.d.comb += self.framing_error.eq(1)
                    with m.Elif(self.data.valid & ~self.data.ready):
                        m.d.comb += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
                    m.next = "IDLE"
        return m
