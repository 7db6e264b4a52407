"""Board tops, bitstreams and flashing: ``gxnor build`` and ``gxnor flash``.

A board top is :class:`~gxnor.hw.link.core.BoardCore` (accelerator + UART protocol engine) with the
board's clock through a PLL, a power-on reset, the UART pins and two LEDs. ``build`` runs the
Amaranth platform build with the YoWASP yosys / nextpnr / pack tools into ``build/<board>/`` and
writes ``report.json`` and ``report.md``: resources against the device, nextpnr's Fmax against
the chosen clock, and images/s predicted from the cycle model (``gxnor.hw.timing``) at that
clock, for the core and for the UART link.
"""

import importlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.hdl import ClockDomain, ClockSignal, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import io

from gxnor.base import files
from gxnor.base.errors import InputError, StageFailed
from gxnor.export import format
from gxnor.sim import golden

from .. import timing, toolchain
from ..link import protocol as P
from ..link.core import BoardCore
from ..spec import AcceleratorSpec


@dataclass(frozen=True)
class Board:
    name: str
    platform: str  # "module:Class" of amaranth-boards
    family: str  # "ice40" | "ecp5"
    lanes: int  # default PE lanes
    clock_hz: int  # default core clock (PLL output), chosen below the measured Fmax
    # (ECP5 at 128 lanes: 86 MHz when asked for 100; the unregistered score multiply-add
    # is the critical path, see docs/BENCHMARKS.md)
    weights: str  # BoardCore weight memory: "spram" (loaded over UART) or "rom"
    program: tuple  # programmer command, the bitstream appended
    port: str  # the serial port the board's FTDI usually gets on Linux
    baud: int = 1_000_000
    notes: str = ""
    uart: tuple = field(default=("uart", 0))


BOARDS = {
    "icebreaker": Board(
        "icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40", 32, 30_000_000,
        "spram", ("iceprog",), "/dev/ttyUSB1",
        notes="iCE40UP5K: weights live in the four SPRAMs and are loaded over the UART "
              "(`gxnor run --export-dir` does it)"),
    "ulx3s-85f": Board(
        "ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5", 128, 75_000_000,
        "rom", ("openFPGALoader", "-b", "ulx3s"), "/dev/ttyUSB0",
        notes="ECP5 LFE5U-85F: weights initialised in block RAM"),
    "ecpix5-85f": Board(
        "ecpix5-85f", "amaranth_boards.ecpix5:ECPIX585Platform", "ecp5", 128, 75_000_000,
        "rom", ("openFPGALoader", "-b", "ecpix5"), "/dev/ttyUSB1",
        notes="ECP5 LFE5UM5G-85F: weights initialised in block RAM"),
}

UNSUPPORTED = {
    "upduino-v3": "amaranth-boards defines no UART for the UPduino v3 (its FTDI only programs "
                  "the flash); wire a USB-serial adapter and add a UARTResource to use it",
    "orangecrab": "the OrangeCrab has USB but no UART to the host; gxnor's protocol runs over "
                  "a UART",
}

ICE40_VCO = (533e6, 1066e6)
ICE40_PFD = (10e6, 133e6)
ECP5_VCO = (400e6, 800e6)
ECP5_PFD = (3.125e6, 400e6)


def board(name: str) -> Board:
    if name in BOARDS:
        return BOARDS[name]
    if name in UNSUPPORTED:
        raise InputError(f"board {name!r} is not supported: {UNSUPPORTED[name]}")
    raise InputError(f"unknown board {name!r}; boards: {', '.join(BOARDS)}")


# ---- PLLs ----------------------------------------------------------------------------------
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


class BoardTop(Elaboratable):
    """PLL + power-on reset + :class:`BoardCore` on the board's UART pins and LEDs."""

    def __init__(self, board: Board, spec: AcceleratorSpec, f_in: float, clock_hz: int,
                 baud: int, net_id: int):
        """``f_in``: the board oscillator; the PLL (none when ``clock_hz`` equals it), the
        actual clock and the UART divisor follow from it here, before any build."""
        self.board, self.spec, self.baud, self.net_id = board, spec, baud, net_id
        self.f_in = f_in
        if abs(f_in - clock_hz) < 1:
            self.pll = None
            self.clock_hz = int(clock_hz)
        else:
            pll = ice40_pll if board.family == "ice40" else ecp5_pll
            self.pll = pll(f_in, clock_hz)
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
            if self.board.family == "ice40":
                p = self.pll
                m.submodules.pll = Instance(
                    "SB_PLL40_PAD",
                    p_FEEDBACK_PATH="SIMPLE", p_DIVR=p["DIVR"], p_DIVF=p["DIVF"],
                    p_DIVQ=p["DIVQ"], p_FILTER_RANGE=p["FILTER_RANGE"],
                    i_PACKAGEPIN=clk_in.io, i_RESETB=Const(1), i_BYPASS=Const(0),
                    o_PLLOUTGLOBAL=cd.clk, o_LOCK=lock)
            else:
                m.submodules.clk_buf = buf = io.Buffer("i", clk_in)
                p = self.pll
                m.submodules.pll = Instance(
                    "EHXPLLL",
                    p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                    p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
                    p_OUTDIVIDER_MUXB="DIVB", p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
                    p_CLKI_DIV=p["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED",
                    p_CLKOP_DIV=p["CLKOP_DIV"], p_CLKOP_CPHASE=p["CLKOP_DIV"] - 1,
                    p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p["CLKFB_DIV"],
                    i_CLKI=buf.i, i_CLKFB=cd.clk, i_RST=Const(0), i_STDBY=Const(0),
                    i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(1),
                    i_PHASESTEP=Const(1), i_PHASELOADREG=Const(1), i_PLLWAKESYNC=Const(0),
                    i_ENCLKOP=Const(0), o_CLKOP=cd.clk, o_LOCK=lock,
                    a_FREQUENCY_PIN_CLKI=f"{self.f_in / 1e6:g}",
                    a_FREQUENCY_PIN_CLKOP=f"{self.clock_hz / 1e6:g}")
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
            self.spec, divisor=divisor, weights=self.board.weights,
            timeout=max(16 * divisor, self.clock_hz // 100), clock_hz=self.clock_hz,
            net_id=self.net_id)
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


# ---- build + report ------------------------------------------------------------------------
def _platform(b: Board):
    mod, cls = b.platform.split(":")
    return getattr(importlib.import_module(mod), cls)()


def _overrides(b: Board, fallback: bool) -> dict:
    opts = {"nextpnr_opts": "--timing-allow-fail --report nextpnr-report.json"}
    if b.family == "ice40":
        opts["synth_opts"] = "-dsp"
    elif fallback:
        # ABC9 has been seen to exit silently inside YoWASP's yosys on larger ECP5 netlists:
        # the same flow with the classic ABC mapping LUTs
        opts["synth_opts"] = "-run :map_luts"
        opts["script_after_synth"] = "abc -lut 4\nclean\nsynth_ecp5 -run map_cells: -top top"
    return opts


def predicted_throughput(spec: AcceleratorSpec, export_dir: Path, clock_hz: float, baud: int,
                         images: int = 1000, data_dir=None) -> dict:
    """Images/s from the cycle model: the export's own test images when its dataset is at
    hand (mean events per layer), else the dense worst case."""
    from gxnor.model.data import DatasetError

    outs = [ly.n_out for ly in spec.layers]
    io_c = timing.io_cycles(spec.n_pixels, spec.num_classes)
    try:
        imgs = format.dataset_images(format.load(export_dir), images, data_dir)
    except (ValueError, OSError, DatasetError):  # no dataset at hand: the dense bound
        imgs = None
    if imgs is None:
        source = "dense worst case (dataset not found)"
        mean_c = max_c = timing.dense_cycles([ly.n_in for ly in spec.layers], outs, spec.lanes)
    else:
        res = golden.Network(export_dir).run(imgs)
        compute = timing.image_cycles(res.events, outs, spec.lanes)
        mean_c, max_c = float(compute.mean()), int(compute.max())
        source = f"{len(imgs)} test images of the export's dataset"
    sb = P.score_bytes(spec.score_bits)
    answer = P.run_answer_bytes(spec.num_classes, sb, len(spec.layers))
    return {
        "cycles_source": source,
        "compute_cycles_mean": mean_c, "compute_cycles_max": max_c,
        "io_cycles": io_c,
        "core_images_per_s": clock_hz / (mean_c + io_c),
        "compute_only_images_per_s": clock_hz / mean_c,
        "link_images_per_s": P.link_images_per_s(baud, spec.n_pixels, answer),
        "baud": baud,
    }


def _resources(report: dict, family: str) -> dict:
    util = report.get("utilization", {})
    names = {"ice40": {"LUT/FF cells (ICESTORM_LC)": "ICESTORM_LC", "EBR (ICESTORM_RAM)":
                       "ICESTORM_RAM", "SPRAM": "ICESTORM_SPRAM", "DSP": "ICESTORM_DSP",
                       "PLL": "ICESTORM_PLL"},
             "ecp5": {"LUT4 (TRELLIS_COMB)": "TRELLIS_COMB",
                      "FF (TRELLIS_FF)": "TRELLIS_FF", "EBR (DP16KD)": "DP16KD",
                      "DSP (MULT18X18D)": "MULT18X18D", "PLL (EHXPLLL)": "EHXPLLL"}}[family]
    return {label: util[key] for label, key in names.items() if key in util}


#: a board build folder, OUT/BOARD (marker file; older ones are recognized by their report)
KIND = files.Kind("build", "gxnor build",
                  recognize=lambda f: files.is_json_of("board", f.name)(f / "report.json"))


def build(export_dir: Path, board_name: str, out: Path, *, lanes: int | None = None,
          clock_hz: float | None = None, baud: int | None = None, data_dir=None,
          log=print) -> dict:
    """Synthesise, place and route ``export_dir`` for ``board_name`` into ``out/<board>``
    (written atomically, see :mod:`gxnor.base.files`); returns the report (also written as
    report.json / report.md). A toolchain failure raises StageFailed; the folder then holds
    the tools' logs and no bitstream."""
    b = board(board_name)
    export_dir = Path(export_dir)
    bdir = Path(out) / b.name
    dest = files.check(bdir, KIND, [export_dir])
    toolchain.setup()
    spec = AcceleratorSpec.from_export(format.load(export_dir), lanes or b.lanes)
    clock = int(clock_hz or b.clock_hz)
    baud = int(baud or b.baud)
    platform = _platform(b)
    top = BoardTop(b, spec, platform.default_clk_frequency, clock, baud,
                   P.network_id(export_dir))
    bitfile = dest / ("top.bin" if b.family == "ice40" else "top.bit")
    failure = None
    with files.output_dir(bdir, KIND, [export_dir]) as tmp:
        t0 = time.perf_counter()
        flows = (False, True) if b.family == "ecp5" else (False,)  # fallback LUT mapping?
        for k, fallback in enumerate(flows):
            try:
                # build the plan and run it: platform.build() would also insist on the
                # programmer being installed, which a bitstream does not need
                plan = _platform(b).build(top, name="top", do_build=False,
                                          **_overrides(b, fallback))
                plan.execute_local(str(tmp))
                failure = None
                break
            except subprocess.CalledProcessError as exc:
                failure = exc
                if k < len(flows) - 1:
                    log(f"{b.name}: synthesis with ABC9 failed; retrying with `abc -lut 4`")
        if failure is None:
            seconds = time.perf_counter() - t0
            report = _report(b, platform, top, spec, export_dir, tmp, bitfile, fallback,
                             seconds, baud, data_dir)
            (tmp / "report.json").write_text(json.dumps(report, indent=1))
            (tmp / "report.md").write_text(report_markdown(report))
    if failure is not None:
        raise StageFailed(f"{b.name}: the toolchain failed ({failure}); logs in {bdir} "
                          "(top.rpt: yosys, top.tim: nextpnr)")
    return report


def _report(b: Board, platform, top, spec, export_dir: Path, tmp: Path, bitfile: Path,
            fallback: bool, seconds: float, baud: int, data_dir) -> dict:
    """The build report, from nextpnr's JSON report in ``tmp`` and the cycle model."""
    flow = "abc -lut 4" if fallback else "abc9"
    pnr = json.loads((tmp / "nextpnr-report.json").read_text())
    fmax = pnr.get("fmax", {})
    target = top.clock_hz
    # the core clock's entry (nextpnr names clocks after their nets); every clock must pass
    core = [v for v in fmax.values() if abs(v["constraint"] * 1e6 / target - 1) < 0.01]
    achieved = min((v["achieved"] for v in core or fmax.values()), default=0.0) * 1e6
    met = bool(fmax) and all(v["achieved"] >= v["constraint"] for v in fmax.values())
    tp = predicted_throughput(spec, export_dir, target, baud, data_dir=data_dir)
    res = _resources(pnr, b.family)
    luts = next(iter(res.values()))["used"] if res else 0
    return {
        "board": b.name, "device": f"{platform.device}-{platform.package}",
        "export": str(export_dir.resolve()), "net_id": f"{P.network_id(export_dir):08x}",
        "layers": [[ly.n_in, ly.n_out] for ly in spec.layers], "lanes": spec.lanes,
        "weights": b.weights, "weight_bits": spec.weight_words * spec.word_bits,
        "clock_hz": target, "pll": top.pll, "fmax_hz": achieved,
        "fmax_per_clock": {k: v for k, v in fmax.items()},
        "timing_met": met,
        "baud": baud, "divisor": top.divisor,
        "resources": res, "synthesis": flow,
        "build_seconds": round(seconds, 1),
        "bitstream": str(bitfile), "bitstream_bytes": (tmp / bitfile.name).stat().st_size,
        "throughput": tp,
        "core_images_per_s_per_klut": tp["core_images_per_s"] / max(luts, 1) * 1000,
    }


def report_markdown(r: dict) -> str:
    tp = r["throughput"]
    lines = [
        f"# {r['board']} ({r['device']}): gxnor bitstream report", "",
        f"- network {r['net_id']}: layers {r['layers']}, {r['lanes']} lanes, weights in "
        f"{r['weights']} ({r['weight_bits']:,} bits)",
        f"- clock {r['clock_hz'] / 1e6:.2f} MHz"
        + (f" (PLL {r['pll']})" if r["pll"] else " (board oscillator)")
        + f"; nextpnr Fmax {r['fmax_hz'] / 1e6:.2f} MHz: timing "
        + ("met" if r["timing_met"] else "NOT met"),
        f"- UART {r['baud']} baud (divisor {r['divisor']}); synthesis LUT mapping: "
        f"{r['synthesis']}; build {r['build_seconds']} s; bitstream {r['bitstream']}", "",
        "| resource | used | available | % |", "|---|---|---|---|",
    ]
    for name, u in r["resources"].items():
        pct = 100 * u["used"] / u["available"] if u.get("available") else 0
        lines.append(f"| {name} | {u['used']} | {u['available']} | {pct:.1f} |")
    lines += [
        "", f"Throughput predicted by the cycle model at {r['clock_hz'] / 1e6:.2f} MHz "
        f"({tp['cycles_source']}):", "",
        f"- compute {tp['compute_cycles_mean']:.0f} cycles/image (max "
        f"{tp['compute_cycles_max']}), pixel input + results {tp['io_cycles']} cycles",
        f"- core: {tp['core_images_per_s']:,.0f} images/s "
        f"({tp['compute_only_images_per_s']:,.0f} if input overlapped compute); "
        f"{r['core_images_per_s_per_klut']:,.0f} images/s per kLUT",
        f"- UART link at {tp['baud']:,} baud: {tp['link_images_per_s']:,.0f} images/s "
        "(the end-to-end limit with pixels sent as bytes)", "",
    ]
    return "\n".join(lines)


def build_main(args) -> int:
    report = build(args.export_dir, args.board, args.out, lanes=args.lanes,
                   clock_hz=args.clock * 1e6 if args.clock else None, baud=args.baud,
                   data_dir=getattr(args, "data_dir", None))
    print(report_markdown(report))
    if not report["timing_met"]:
        print(f"gxnor build: timing NOT met: Fmax {report['fmax_hz'] / 1e6:.2f} MHz < "
              f"{report['clock_hz'] / 1e6:.2f} MHz; rebuild with --clock "
              f"{math.floor(report['fmax_hz'] / 1e6)}", file=sys.stderr)
        return 1
    return 0


# ---- flash -------------------------------------------------------------------------------
def flash_command(b: Board, bitstream: Path) -> list[str]:
    tool, *rest = b.program
    env = {"iceprog": "ICEPROG", "openFPGALoader": "OPENFPGALOADER"}[tool]
    exe = os.environ.get(env) or shutil.which(tool)
    if exe is None and tool == "iceprog" and shutil.which("openFPGALoader"):
        # openFPGALoader programs the iCEBreaker's flash too
        return [shutil.which("openFPGALoader"), "-b", "ice40_generic", "-f", str(bitstream)]
    if exe is None:
        pkg = {"iceprog": "fpga-icestorm", "openFPGALoader": "openfpgaloader"}[tool]
        raise InputError(f"{tool} not found: install it (Debian/Ubuntu: `sudo apt-get "
                                f"install {pkg}`) or point ${env} at it")
    return [exe, *rest, str(bitstream)]


def flash(board_name: str, bitstream: Path | None = None, out: Path = Path("build")) -> None:
    b = board(board_name)
    if bitstream is None:
        bitstream = Path(out) / b.name / ("top.bin" if b.family == "ice40" else "top.bit")
    if not Path(bitstream).exists():
        raise InputError(f"{bitstream}: no bitstream; run `make bitstream BOARD={b.name}`"
                                " first")
    cmd = flash_command(b, Path(bitstream))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise StageFailed(f"{' '.join(cmd)} failed (exit {done.returncode}): is the "
                           f"{b.name} connected and accessible (USB permissions)?\n"
                           f"{(done.stdout + done.stderr).strip()[-1500:]}")


def flash_main(args) -> int:
    flash(args.board, args.bitstream, getattr(args, "out", Path("build")))
    print(f"flashed {args.board}")
    return 0
