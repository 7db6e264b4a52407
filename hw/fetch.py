"""The weight fetch: each token's weight word, from the weight memory."""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

WEIGHT_MEMORIES = ("rom", "loadable", "external")


def load_layout(words: int, word_bits: int) -> data.StructLayout:
    """One weight word for the ``weights_in`` stream: its address and its codes."""
    return data.StructLayout({"addr": range(max(words, 2)), "data": word_bits})


#: the aspect ratios of an 18-kbit block RAM (ECP5 DP16KD): (words, bits); a true-dual-port
#: use (two read ports) has all but the widest
BLOCK_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


def word_slice(word: int, t: int, width: int) -> int:
    """Slice t (``width`` bits from bit t * width) of a weight word."""
    return word >> (t * width) & ((1 << width) - 1)


def sliced_read(words, addrs, word_bits: int) -> int:
    """What an external weight memory answers for ``addrs`` (one address per slice, as
    ``WeightFetch.weight_addr`` gives them): slice t of the word at ``addrs[t]`` (0 beyond
    the memory's words)."""
    width = word_bits // len(addrs)
    return sum(word_slice(words[a] if a < len(words) else 0, t, width) << (t * width)
               for t, a in enumerate(addrs))


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
    slices: S column slices of the memory (``word_bits / S`` bits each) with their own
        addresses: slice t reads event t's word for the sliced last layer's tokens (``last``),
        event 0's for the others (:attr:`gxnor.hw.spec.AcceleratorSpec.slices`); ``ports``
        then 1. ``weight_addr`` has an address per slice.

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
                 init=(), ports: int = 1, slices: int = 1):
        if memory not in WEIGHT_MEMORIES:
            raise ValueError(f"memory must be one of {WEIGHT_MEMORIES}, got {memory!r}")
        if memory == "external" and ports != 1:
            raise ValueError(f"an external weight memory has one port, not {ports}")
        self._words, self._word_bits, self._memory = words, word_bits, memory
        if slices > 1 and (ports != 1 or word_bits % slices):
            raise ValueError(f"{slices} slices need one port and words that divide into them, "
                             f"not {ports} ports of {word_bits} bits")
        self._ports, self._slices = ports, slices
        self._init = list(init)
        ports = {
            "tokens": In(stream.Signature(token, always_ready=True)),
            "out": Out(stream.Signature(token, always_ready=True)),
            "busy": Out(1),
        }
        if memory == "loadable":
            ports["weights_in"] = In(stream.Signature(load_layout(words, word_bits)))
        if memory == "external":
            ports["weight_addr"] = Out(data.ArrayLayout(range(max(words, 2)), slices))
            ports["weight_data"] = In(word_bits)
        super().__init__(ports)

    def address(self, tok, t: int):
        """The weight address of event ``t`` of token ``tok``: the group's base plus the
        event's input index (a fully connected layer's weight row)."""
        return tok.base + tok.event[t].index

    def elaborate(self, platform):
        m = Module()
        n_s = self._slices
        width = self._word_bits // n_s
        if self._memory == "external":
            reads = [[(self.weight_addr[t], self.weight_data.word_select(t, width))
                      for t in range(n_s)]]
        else:
            # a ROM of more than BLOCK_ROM_BITS goes to block RAM even where yosys would make
            # it logic (a 256 x 20-bit ROM with 4 read ports: 2,559 LUT4 on the ECP5)
            big = self._words * self._word_bits > self.BLOCK_ROM_BITS
            mems = []
            for t in range(n_s):
                init = [word_slice(w, t, width) for w in self._init] \
                    if self._memory == "rom" else []
                m.submodules[f"weights{t}" if n_s > 1 else "weights"] = mem = memory.Memory(
                    shape=unsigned(width), depth=max(self._words, 1), init=init,
                    attrs={"ram_style": "block"} if big else None)
                mems.append(mem)
            # reads[port][slice]: (address, data)
            reads = [[(rd.addr, rd.data) for rd in (mem.read_port() for mem in mems)]
                     for _ in range(self._ports)]
        if self._memory == "loadable":
            m.d.comb += self.weights_in.ready.eq(1)
            for t, mem in enumerate(mems):
                wr = mem.write_port()
                m.d.comb += [wr.addr.eq(self.weights_in.payload.addr),
                             wr.data.eq(self.weights_in.payload.data.word_select(t, width)),
                             wr.en.eq(self.weights_in.valid)]

        # the addresses from the token (registered by the event lists), the words one cycle
        # later; a slice t > 0 reads event t's word for the sliced last layer
        tok = self.tokens.payload
        p3 = Signal.like(tok)
        p3_valid = Signal()
        m.d.sync += [p3.eq(tok), p3_valid.eq(self.tokens.valid)]
        m.d.sync += [self.out.payload.eq(p3), self.out.valid.eq(p3_valid)]
        for t, slices in enumerate(reads):
            for s, (addr, _) in enumerate(slices):
                own = self.address(tok, t)
                m.d.comb += addr.eq(Mux(tok.last, self.address(tok, s), own) if s else own)
            m.d.sync += self.out.payload.word[t].eq(Cat(word for _, word in slices))
        m.d.comb += self.busy.eq(p3_valid | self.out.valid)
        return m
