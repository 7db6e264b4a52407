"""The processing-element array: P gated-XNOR accumulators."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .codes import TernaryCode


class PEArray(wiring.Component):
    """P lanes; lane j holds the accumulator of one output neuron of the current group.

    Per event every lane takes its weight code from the ROM word and the event's sign and
    magnitude. The gate opens only for a nonzero weight (a zero weight disables the lane's
    clock enable: no add of zero); the product's sign is the XNOR of the two sign bits, so the
    lane adds +magnitude when the signs agree and -magnitude otherwise. For ternary
    activations the magnitude is 1; for the first layer it is the 8-bit pixel.

    An ``end`` token moves all accumulators into the shadow bank and clears them in the same
    cycle; ``shift`` moves the shadow bank down one lane (lane 0 is read by the serializer).
    ``end`` wins over ``shift``.

    Parameters
    ----------
    lanes: P.
    acc_width: accumulator width in bits (signed), from the export's worst-case fan-in.

    Members
    -------
    valid, end, magnitude, sign, weights: In — the token at the array this cycle.
    shift: In — advance the shadow bank.
    shadow: Out(P x signed(acc_width)) — the last finished group.

    Timing: latency 1 (accumulators and shadow update at the end of the cycle the token is
    presented); throughput one event per cycle.
    """

    def __init__(self, lanes: int, acc_width: int):
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be a positive integer, got {lanes!r}")
        if not isinstance(acc_width, int) or acc_width < 2:
            raise ValueError(f"acc_width must be an integer >= 2, got {acc_width!r}")
        self._lanes, self._acc_width = lanes, acc_width
        super().__init__({
            "valid": In(1),
            "end": In(1),
            "magnitude": In(8),
            "sign": In(1),
            "weights": In(data.ArrayLayout(TernaryCode, lanes)),
            "shift": In(1),
            "shadow": Out(data.ArrayLayout(signed(acc_width), lanes)),
        })

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def acc_width(self) -> int:
        return self._acc_width

    latency = 1

    def elaborate(self, platform):
        m = Module()
        for j in range(self._lanes):
            acc = Signal(signed(self._acc_width), name=f"acc{j}")
            code = self.weights[j]
            # the control gate: an event meets a nonzero weight
            gate = Signal(name=f"gate{j}")
            m.d.comb += gate.eq(self.valid & ~self.end & code.nonzero)
            # XNOR of the sign bits: +magnitude when the signs agree
            positive = ~(code.sign ^ self.sign)
            step = Mux(positive, self.magnitude, -self.magnitude)
            with m.If(self.valid & self.end):
                # group finished: hand the sums to the serializer, start again from zero
                m.d.sync += [self.shadow[j].eq(acc), acc.eq(0)]
            with m.Else():
                with m.If(gate):
                    m.d.sync += acc.eq(acc + step)
                with m.If(self.shift):
                    m.d.sync += self.shadow[j].eq(self.shadow[j + 1] if j + 1 < self._lanes else 0)
        return m
