"""The board's weight memory: one port, read by the accelerator, written by LOAD frames."""

from amaranth.hdl import Module
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ..fetch import word_slice


class WeightStore(wiring.Component):
    """The weight memory of a board core: one port, synchronous read (data the cycle after the
    address); ``we`` writes ``wdata`` at ``addr`` instead of reading.

    This one is block RAM: initialised with ``init`` (a ROM that LOAD can still overwrite), or
    empty when ``init`` is None (as the iCE40's SPRAM after configuration: LOAD first). An FPGA
    family with other memories subclasses it (``gxnor.hw.boards.families``: SPRAM).

    Parameters
    ----------
    depth, width: words and bits per word.
    init: the words, or None.
    slices: column slices of ``width / slices`` bits with their own addresses (``addr[t]``;
        a write gives every slice the same one): the accelerator's sliced last layer
        (:attr:`gxnor.hw.spec.AcceleratorSpec.slices`).
    """

    def __init__(self, depth: int, width: int, init=None, slices: int = 1):
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be >= 1, got {depth!r} x {width!r}")
        if slices < 1 or width % slices:
            raise ValueError(f"{slices} slices do not divide a {width}-bit word")
        self._depth, self._width, self._slices = depth, width, slices
        self._init = None if init is None else list(init)
        super().__init__({
            "addr": In(data.ArrayLayout(range(max(depth, 2)), slices)),
            "wdata": In(width),
            "we": In(1),
            "rdata": Out(width),
        })

    @property
    def starts_empty(self) -> bool:
        """The memory holds nothing after configuration: the host must LOAD the weights."""
        return self._init is None

    def elaborate(self, platform):
        m = Module()
        n_s = self._slices
        width = self._width // n_s
        for t in range(n_s):
            init = [word_slice(w, t, width) for w in self._init or []]
            m.submodules[f"mem{t}" if n_s > 1 else "mem"] = mem = memory.Memory(
                shape=width, depth=self._depth, init=init)
            rd, wr = mem.read_port(), mem.write_port()
            m.d.comb += [rd.addr.eq(self.addr[t]), wr.addr.eq(self.addr[t]),
                         wr.data.eq(self.wdata.word_select(t, width)), wr.en.eq(self.we),
                         rd.en.eq(~self.we), self.rdata.word_select(t, width).eq(rd.data)]
        return m
