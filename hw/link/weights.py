"""The board's weight memory: one port, read by the accelerator, written by LOAD frames."""

from amaranth.hdl import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out


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
    """

    def __init__(self, depth: int, width: int, init=None):
        if depth < 1 or width < 1:
            raise ValueError(f"depth and width must be >= 1, got {depth!r} x {width!r}")
        self._depth, self._width = depth, width
        self._init = None if init is None else list(init)
        super().__init__({
            "addr": In(range(max(depth, 2))),
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
        m.submodules.mem = mem = memory.Memory(shape=self._width, depth=self._depth,
                                               init=self._init or [])
        rd, wr = mem.read_port(), mem.write_port()
        m.d.comb += [rd.addr.eq(self.addr), wr.addr.eq(self.addr), wr.data.eq(self.wdata),
                     wr.en.eq(self.we), rd.en.eq(~self.we), self.rdata.eq(rd.data)]
        return m
