"""The processing-element array: P gated-XNOR accumulators."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import TernaryCode


def sums_layout(lanes: int, acc_bits: int, token: data.Layout) -> data.StructLayout:
    """A finished group: the P accumulators and where their neurons are (from the token)."""
    fields = {name: token[name].shape
              for name in ("nbase", "taddr", "size", "last", "image_end", "buffer")}
    return data.StructLayout({"acc": data.ArrayLayout(signed(acc_bits), lanes), **fields})


def tree_sum(m: Module, terms, name: str):
    """The sum of ``terms`` (signed values) as a balanced tree of two-input adders (depth
    log2 of their number). Each partial sum is a signal of its own, kept by synthesis: left
    to itself, yosys merges the whole tree and the accumulator into one multi-operand add
    and maps it to full adders in LUTs; kept apart, each add is a carry chain (ECP5, 16
    lanes x 4 ports of 8-bit terms: 4400 LUT4 + 164 CCU2C -> 1046 LUT4 + 420 CCU2C)."""
    terms = list(terms)
    level = 0
    while len(terms) > 1:
        nxt = []
        for i in range(0, len(terms), 2):
            if i + 1 < len(terms):
                a, b = terms[i], terms[i + 1]
                part = Signal(signed(max(len(a), len(b)) + 1), name=f"{name}_s{level}_{i // 2}",
                              attrs={"keep": 1})
                m.d.comb += part.eq(a + b)
                nxt.append(part)
            else:
                nxt.append(terms[i])
        terms, level = nxt, level + 1
    return terms[0]


class PEArray(wiring.Component):
    """P lanes; lane j holds the accumulator of one output neuron of the current group.

    A token carries up to ``ports`` events (``token.n`` of them); for each, every lane takes
    its weight code from the event's word and the event's sign and magnitude, and adds the
    gated products of all of them in one cycle (an adder tree per lane). The gate opens only
    for a nonzero weight (a lane whose gates are all closed keeps its clock enable low: no add
    of zero); the product's sign is the XNOR of the two sign bits,
    so the lane adds +magnitude when the signs agree and -magnitude otherwise. For ternary
    activations the magnitude is 1; for the first layer it is the 8-bit pixel.

    An END token puts the accumulators on ``sums`` (with the token's neuron base, threshold
    address, group size and last-layer flag) once the events before it are in, and clears
    them in the same cycle.

    Parameters
    ----------
    lanes: P.
    acc_width: accumulator width in bits (signed), from the export's worst-case fan-in.
    token: the token layout (each ``word`` holds P codes).
    ports: k, the events per token.
    slices: S: for the sliced last layer's tokens (``last``), the lanes of slice t (P/S
        lanes each) take event t (:attr:`gxnor.hw.spec.AcceleratorSpec.slices`); every
        other token's event 0 reaches every lane.

    Members
    -------
    tokens: In(stream(token)) — always ready.
    sums: Out(stream(sums_layout)) — valid in the cycle the END token arrives; always ready
        downstream (the sequencer's credits guarantee the serializer can take it).

    busy: Out(1) — a token is in the array (its register stage).

    Timing: latency 2 (an event's terms are registered, then in the accumulators the cycle
    after); the sums leave ``latency - 1`` cycles after the END token arrives; one token
    (``ports`` events) per cycle.
    """

    latency = 2

    def __init__(self, lanes: int, acc_width: int, token: data.Layout, ports: int = 1,
                 slices: int = 1):
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be a positive integer, got {lanes!r}")
        if not isinstance(acc_width, int) or acc_width < 2:
            raise ValueError(f"acc_width must be an integer >= 2, got {acc_width!r}")
        if slices > 1 and (ports != 1 or lanes % slices):
            raise ValueError(f"{slices} slices need one port and lanes that divide into "
                             f"them, not {ports} ports and {lanes} lanes")
        self._lanes, self._acc_width, self._ports = lanes, acc_width, ports
        self._slices = slices
        super().__init__({
            "tokens": In(stream.Signature(token, always_ready=True)),
            "sums": Out(stream.Signature(sums_layout(lanes, acc_width, token),
                                         always_ready=True)),
            "busy": Out(1),
        })

    @staticmethod
    def gate(token_valid, token_end, code):
        """The control gate: an event meets a nonzero weight."""
        return token_valid & ~token_end & code.nonzero

    @staticmethod
    def agree(weight_sign, event_sign):
        """The product is positive when the signs agree: XNOR."""
        return ~(weight_sign ^ event_sign)

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def acc_width(self) -> int:
        return self._acc_width

    def elaborate(self, platform):
        m = Module()
        tok = self.tokens.payload
        words = [data.View(data.ArrayLayout(TernaryCode, self._lanes),
                           tok.word[t][:2 * self._lanes]) for t in range(self._ports)]
        # stage 1 registers each lane's gated terms and the END with the group's fields: the
        # token reaches every lane (a fan-out of P), then the terms' adder tree and the
        # accumulator have a cycle of their own (ECP5, 64 lanes x 4 ports of 8-bit terms:
        # 68.9 MHz with both in one cycle)
        end, valid = Signal(name="end_q"), Signal(name="valid_q")
        fields = ("nbase", "taddr", "size", "last", "image_end", "buffer")
        m.d.sync += [end.eq(self.tokens.valid & tok.end), valid.eq(self.tokens.valid)]
        for name in fields:
            m.d.sync += getattr(self.sums.payload, name).eq(getattr(tok, name))
        m.d.comb += [self.sums.valid.eq(end), self.busy.eq(valid)]
        # per slice of lanes: its event and whether the token carries it (slice 0 and an
        # unsliced array: event 0 of every token)
        width = self._lanes // self._slices
        sliced = [(tok.event[0], tok.n > 0)]
        for s in range(1, self._slices):
            ev, here = Signal.like(tok.event[0], name=f"slice{s}_event"), Signal(
                name=f"slice{s}_here")
            m.d.comb += [ev.eq(Mux(tok.last, tok.event[s], tok.event[0])),
                         here.eq(Mux(tok.last, tok.n > s, tok.n > 0))]
            sliced.append((ev, here))
        for j in range(self._lanes):
            acc = Signal(signed(self._acc_width), name=f"acc{j}")
            opened = Signal(name=f"opened{j}")  # some gate of the lane opened
            gates, terms = [], []
            for t in range(self._ports):
                code, (event, here) = words[t][j], sliced[j // width] if t == 0 else (
                    tok.event[t], tok.n > t)
                # the control gate: an event (slot t of the token) meets a nonzero weight
                gate = Signal(name=f"gate{j}_{t}" if self._ports > 1 else f"gate{j}")
                m.d.comb += gate.eq(self.gate(self.tokens.valid & here, tok.end, code))
                # XNOR of the sign bits: +magnitude when the signs agree
                positive = self.agree(code.sign, event.sign)
                step = Mux(positive, event.magnitude, -event.magnitude)
                gates.append(gate)
                # (reset-less: written every cycle, and only added when ``opened``, which
                # resets; the reset net reaching every term register was the ECP5's critical
                # path at 74.5 MHz)
                term = Signal(signed(len(event.magnitude) + 1), name=f"term{j}_{t}",
                              reset_less=True)
                # a closed gate adds nothing (one port: its clock enable stays low instead)
                m.d.sync += term.eq(Mux(gate, step, 0) if self._ports > 1 else step)
                terms.append(term)
            m.d.sync += opened.eq(Cat(*gates).any())
            m.d.comb += self.sums.payload.acc[j].eq(acc)
            total = tree_sum(m, terms, f"lane{j}")  # (outside the If: unconditional wires)
            with m.If(end):
                m.d.sync += acc.eq(0)  # group finished: its sums leave, start again from zero
            with m.Elif(opened):
                m.d.sync += acc.eq(acc + total)
        return m
