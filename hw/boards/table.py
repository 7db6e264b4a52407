"""The boards gxnor builds for: one table entry per board."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from gxnor.base.errors import InputError

from .families import ECP5, ICE40, Family


@dataclass(frozen=True)
class Board:
    name: str
    platform: str  # "module:Class" of amaranth-boards
    family: Family
    lanes: int  # default PE lanes
    clock_hz: int  # default core clock (PLL output), chosen below the measured Fmax
    # (ECP5 at 128 lanes: 86 MHz when asked for 100; the unregistered score multiply-add
    # is the critical path, see docs/BENCHMARKS.md)
    weights: str  # the weight memory: "rom" (block RAM, in the bitstream) or the family's
    # own ("spram": empty after configuration, loaded over the UART)
    program: tuple  # programmer command, the bitstream appended
    port: str  # the serial port the board's FTDI usually gets on Linux
    # the fastest rate the board's USB UART takes that the core clock divides exactly
    baud: int = 1_000_000
    notes: str = ""
    uart: tuple = field(default=("uart", 0))
    #: the default schedule: "shared" (one engine, ``lanes`` lanes) or "pipelined" (an engine
    #: per layer, folded by ``gxnor.hw.plan`` for ``device``'s budget)
    schedule: str = "shared"
    device: str = ""
    #: the shared engine's last layer in this many slices of the lanes where it fits
    #: (``gxnor.hw.spec.AcceleratorSpec.slices``)
    slices: int = 1

    def platform_object(self):
        """A fresh amaranth-boards platform of this board."""
        mod, cls = self.platform.split(":")
        return getattr(importlib.import_module(mod), cls)()


BOARDS = {
    "icebreaker": Board(
        "icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", ICE40, 32, 30_000_000,
        "spram", ("iceprog",), "/dev/ttyUSB1",
        # FT2232H (up to 12 Mbaud); 30 MHz / 5 = 6 Mbaud (the UART needs >= 4 cycles a bit)
        baud=6_000_000,
        # 10 classes in 2 slices of 16 lanes (two SPRAMs each): two of the last layer's
        # events a cycle, 3,074 -> 2,983 compute cycles an image over the MNIST test images
        slices=2,
        notes="iCE40UP5K: weights live in the four SPRAMs and are loaded over the UART "
              "(`gxnor run --export-dir` does it)"),
    "ulx3s-85f": Board(
        "ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", ECP5, 128, 75_000_000,
        "rom", ("openFPGALoader", "-b", "ulx3s"), "/dev/ttyUSB0",
        baud=3_000_000,  # FT231X: 3 Mbaud at most; 75 MHz / 25
        notes="ECP5 LFE5U-85F: weights initialised in block RAM",
        schedule="pipelined", device="LFE5U-85F"),
    "ecpix5-85f": Board(
        "ecpix5-85f", "amaranth_boards.ecpix5:ECPIX585Platform", ECP5, 128, 75_000_000,
        "rom", ("openFPGALoader", "-b", "ecpix5"), "/dev/ttyUSB1",
        baud=3_000_000,  # FT2232H takes more, but 75 MHz divides 3 Mbaud exactly
        notes="ECP5 LFE5UM5G-85F: weights initialised in block RAM",
        schedule="pipelined", device="LFE5U-85F"),
}

UNSUPPORTED = {
    "upduino-v3": "amaranth-boards defines no UART for the UPduino v3 (its FTDI only programs "
                  "the flash); wire a USB-serial adapter and add a UARTResource to use it",
    "orangecrab": "the OrangeCrab has USB but no UART to the host; gxnor's protocol runs over "
                  "a UART",
}


def board(name: str) -> Board:
    if name in BOARDS:
        return BOARDS[name]
    if name in UNSUPPORTED:
        raise InputError(f"board {name!r} is not supported: {UNSUPPORTED[name]}")
    raise InputError(f"unknown board {name!r}; boards: {', '.join(BOARDS)}")
