"""The weight fetch: each token's weight word, from the weight memory."""

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

WEIGHT_MEMORIES = ("rom", "loadable", "external")


def load_layout(words: int, word_bits: int) -> data.StructLayout:
    """One weight word for the ``weights_in`` stream: its address and its codes."""
    return data.StructLayout({"addr": range(max(words, 2)), "data": word_bits})


#: the aspect ratios of an 18-kbit block RAM (ECP5 DP16KD): (words, bits); a true-dual-port
#: use (two read ports) has all but the widest
BLOCK_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


class WeightFetch(wiring.Component):
    """Reads the weight word of each event of a token: P two-bit codes, one per lane, at
    address ``token.base + event.index`` (the group's base in the layer's ROM image plus the
    event's input index; the order of the export's ROM images, layer after layer). A token
    carries up to ``ports`` events: the memory has that many read ports (synthesis gives each
    pair of ports a true dual-port block RAM, or copies it).

    Parameters
    ----------
    words: the weight-memory words (every layer's ROM image, in order).
    word_bits: bits of a word (2 P).
    token: the token layout.
    memory: ``"rom"`` (initialised with ``init``), ``"loadable"`` (starts empty, as iCE40 SPRAM
        does after configuration; the ``weights_in`` stream writes it, one word per cycle,
        while the engine is idle) or ``"external"`` (no memory inside: ``weight_addr`` out,
        ``weight_data`` in, read synchronously, e.g. from SPRAM in a board top).
    init: the words of a ``"rom"``.
    ports: k (``"external"``: 1).

    Members
    -------
    tokens: In(stream(token)) — always ready.
    out: Out(stream(token)) — the token with its word, ``latency`` cycles later.
    busy: Out(1) — a token is in flight.

    Timing: latency 2 (the memory read, then a register); one token per cycle.
    """

    latency = 2
    #: weight memories larger than this are forced into block RAM
    BLOCK_ROM_BITS = 2048

    def __init__(self, words: int, word_bits: int, token: data.Layout, memory: str = "rom",
                 init=(), ports: int = 1):
        if memory not in WEIGHT_MEMORIES:
            raise ValueError(f"memory must be one of {WEIGHT_MEMORIES}, got {memory!r}")
        if memory == "external" and ports != 1:
            raise ValueError(f"an external weight memory has one port, not {ports}")
        self._words, self._word_bits, self._memory = words, word_bits, memory
        self._ports = ports
        self._init = list(init)
        ports = {
            "tokens": In(stream.Signature(token, always_ready=True)),
            "out": Out(stream.Signature(token, always_ready=True)),
            "busy": Out(1),
        }
        if memory == "loadable":
            ports["weights_in"] = In(stream.Signature(load_layout(words, word_bits)))
        if memory == "external":
            ports["weight_addr"] = Out(range(max(words, 2)))
            ports["weight_data"] = In(word_bits)
        super().__init__(ports)

    def address(self, tok, t: int):
        """The weight address of event ``t`` of token ``tok``: the group's base plus the
        event's input index (a fully connected layer's weight row)."""
        return tok.base + tok.event[t].index

    def elaborate(self, platform):
        m = Module()
        if self._memory == "external":
            ports = [(self.weight_addr, self.weight_data)]
        else:
            # a ROM of more than BLOCK_ROM_BITS goes to block RAM even where yosys would make
            # it logic (a 256 x 20-bit ROM with 4 read ports: 2,559 LUT4 on the ECP5)
            big = self._words * self._word_bits > self.BLOCK_ROM_BITS
            m.submodules.weights = mem = memory.Memory(
                shape=unsigned(self._word_bits), depth=max(self._words, 1),
                init=self._init if self._memory == "rom" else [],
                attrs={"ram_style": "block"} if big else None)
            ports = [(rd.addr, rd.data) for rd in (mem.read_port()
                                                    for _ in range(self._ports))]
        if self._memory == "loadable":
            wr = mem.write_port()
            m.d.comb += [
                self.weights_in.ready.eq(1),
                wr.addr.eq(self.weights_in.payload.addr),
                wr.data.eq(self.weights_in.payload.data),
                wr.en.eq(self.weights_in.valid),
            ]

        # the addresses from the token (registered by the event lists), the words one cycle
        # later
        tok = self.tokens.payload
        p3 = Signal.like(tok)
        p3_valid = Signal()
        m.d.sync += [p3.eq(tok), p3_valid.eq(self.tokens.valid)]
        m.d.sync += [self.out.payload.eq(p3), self.out.valid.eq(p3_valid)]
        for t, (addr, word) in enumerate(ports):
            m.d.comb += addr.eq(self.address(tok, t))
            m.d.sync += self.out.payload.word[t].eq(word)
        m.d.comb += self.busy.eq(p3_valid | self.out.valid)
        return m
