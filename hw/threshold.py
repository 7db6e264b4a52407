"""Output units: ternary thresholds for hidden layers, fixed-point scores for the last one."""

from amaranth.hdl import Module, Mux, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .layouts import TernaryCode


def threshold_layout(width: int) -> data.StructLayout:
    """One neuron's folded thresholds (see gxnor.export.thresholds)."""
    return data.StructLayout({"flip": 1, "lo": signed(width), "hi": signed(width)})


def score_layout(coef_bits: int, offset_bits: int) -> data.StructLayout:
    return data.StructLayout({"coef": signed(coef_bits), "offset": signed(offset_bits)})


class ThresholdUnit(wiring.Component):
    """v = flip ? -acc : acc;  out = +1 if v >= hi, -1 if v <= lo, else 0 (as a ternary code).

    Combinational (latency 0); the same rule as ``gxnor.export.thresholds.apply``.
    """

    def __init__(self, acc_width: int, threshold_width: int):
        if threshold_width < 2 or acc_width < 2:
            raise ValueError(f"widths must be >= 2, got acc {acc_width!r}, "
                             f"threshold {threshold_width!r}")
        self._acc_width, self._threshold_width = acc_width, threshold_width
        super().__init__({
            "acc": In(signed(acc_width)),
            "thresholds": In(threshold_layout(threshold_width)),
            "out": Out(TernaryCode),
        })

    latency = 0

    @staticmethod
    def at_least(v, threshold):
        """The rule's upper step: ``v >= hi``."""
        return v >= threshold

    @staticmethod
    def at_most(v, threshold):
        """The rule's lower step: ``v <= lo``."""
        return v <= threshold

    def elaborate(self, platform):
        m = Module()
        v = Mux(self.thresholds.flip, -self.acc, self.acc)
        pos = self.at_least(v, self.thresholds.hi)
        neg = self.at_most(v, self.thresholds.lo)
        m.d.comb += [self.out.nonzero.eq(pos | neg), self.out.sign.eq(neg & ~pos)]
        return m


class ScoreUnit(wiring.Component):
    """score = coef * acc + offset (fixed point, the export's Q format). Combinational."""

    def __init__(self, acc_width: int, coef_bits: int, offset_bits: int, score_bits: int):
        self._score_bits = score_bits
        super().__init__({
            "acc": In(signed(acc_width)),
            "params": In(score_layout(coef_bits, offset_bits)),
            "score": Out(signed(score_bits)),
        })

    latency = 0

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.score.eq(self.params.coef * self.acc + self.params.offset)
        return m
