"""A board's top: PLL, power-on reset, the board core on the UART pins, two LEDs."""

from __future__ import annotations

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Module, Signal
from amaranth.lib import io

from gxnor.base.errors import InputError

from ..link.core import BoardCore
from ..spec import AcceleratorSpec
from .table import Board


class BoardTop(Elaboratable):
    """PLL + power-on reset + :class:`BoardCore` on the board's UART pins and LEDs."""

    def __init__(self, board: Board, spec: AcceleratorSpec, f_in: float, clock_hz: int,
                 baud: int, net_id: int, bench=None):
        """``f_in``: the board oscillator; the PLL (none when ``clock_hz`` equals it), the
        actual clock and the UART divisor follow from it here, before any build. ``bench``:
        (images, classes) for the on-chip throughput harness (:class:`BoardCore`)."""
        self.board, self.spec, self.baud, self.net_id = board, spec, baud, net_id
        self.bench = bench
        self.f_in = f_in
        if abs(f_in - clock_hz) < 1:
            self.pll = None
            self.clock_hz = int(clock_hz)
        else:
            self.pll = board.family.pll(f_in, clock_hz)
            self.clock_hz = int(round(self.pll["f_out"]))
        self.divisor = round(self.clock_hz / baud)
        if self.divisor < 4 or abs(self.clock_hz / self.divisor / baud - 1) > 0.02:
            raise InputError(f"{baud} baud is not within 2% of {self.clock_hz} Hz / an "
                             "integer >= 4; choose another --baud or --clock")

    def elaborate(self, platform):
        m = Module()
        if self.pll is not None:
            m.domains.sync = cd = ClockDomain("sync")
            lock = Signal()
            clk_in = platform.request(platform.default_clk, dir="-")
            self.board.family.pll_instance(m, clk_in, self.pll, self.f_in, self.clock_hz,
                                           cd.clk, lock)
            # power-on reset: held until the PLL locks, then 15 us more (iCE40 block RAMs read
            # as zero for ~3 us after configuration)
            m.domains.por = ClockDomain("por", reset_less=True, local=True)
            m.d.comb += ClockSignal("por").eq(cd.clk)
            delay = max(16, int(15e-6 * self.clock_hz))
            timer = Signal(range(delay + 1))
            with m.If(~lock):
                m.d.por += timer.eq(0)
            with m.Elif(timer != delay):
                m.d.por += timer.eq(timer + 1)
            m.d.comb += cd.rst.eq(timer != delay)
            # nextpnr derives the PLL output's frequency constraint from its parameters
        divisor = self.divisor
        m.submodules.core = core = BoardCore(
            self.spec, divisor=divisor,
            weights=self.board.family.weight_store(self.spec, self.board.weights),
            timeout=max(16 * divisor, self.clock_hz // 100), clock_hz=self.clock_hz,
            net_id=self.net_id, bench=self.bench)
        uart = platform.request(*self.board.uart, dir="-")
        m.submodules.uart_rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx_buf.i), tx_buf.o.eq(core.tx)]
        leds = [r for r in platform.resources if r[0] == "led"]
        if len(leds) >= 2:  # LED 0 toggles per answered image, LED 1: weights loaded
            for k, sig in enumerate((core.activity, core.loaded)):
                m.submodules[f"led{k}"] = led = io.Buffer("o", platform.request("led", k,
                                                                                 dir="-"))
                m.d.comb += led.o.eq(sig)
        return m
