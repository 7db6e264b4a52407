"""``gxnor build``: synthesise, place and route a board top, and report on it.

``build`` runs the Amaranth platform build with the YoWASP yosys / nextpnr / pack tools into
``OUT/<board>/`` (written atomically) and writes ``report.json`` and ``report.md``: resources
against the device, nextpnr's Fmax against the chosen clock, and images/s predicted from the
cycle model (``gxnor.hw.timing``) at that clock, for the core and for the UART link.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from gxnor.base import files
from gxnor.base.errors import StageFailed
from gxnor.export import format
from gxnor.sim import golden

from .. import timing, toolchain
from ..link import protocol as P
from ..spec import AcceleratorSpec
from .families import Family
from .table import Board, board
from .top import BoardTop


def predicted_throughput(spec: AcceleratorSpec, export_dir: Path, clock_hz: float, baud: int,
                         images: int = 1000, data_dir=None) -> dict:
    """Images/s from the cycle model: the export's own test images when its dataset is at
    hand (mean events per layer), else the dense worst case."""
    from gxnor.model.data import DatasetError

    io_c = timing.io_cycles(spec.n_pixels, spec.num_classes)
    try:
        imgs = format.dataset_images(format.load(export_dir), images, data_dir)
    except (ValueError, OSError, DatasetError):  # no dataset at hand: the dense bound
        imgs = None
    if imgs is None:
        source = "dense worst case (dataset not found)"
        compute = np.array([timing.dense_cycles([ly.n_in for ly in spec.layers],
                                                **timing.folding(spec))])
    else:
        res = golden.Network(export_dir).run(imgs)
        compute = timing.image_cycles(res.events, **timing.folding(spec))
        source = f"{len(imgs)} test images of the export's dataset"
    mean_c, max_c = float(compute.mean()), int(compute.max())
    interval = float(timing.interval(compute, spec.n_pixels, spec.num_classes).mean())
    sb = P.score_bytes(spec.score_bits)
    answer = P.run_answer_bytes(spec.num_classes, sb, len(spec.layers))
    return {
        "cycles_source": source,
        "compute_cycles_mean": mean_c, "compute_cycles_max": max_c,
        "io_cycles": io_c, "interval_cycles_mean": interval,
        "core_images_per_s": clock_hz / interval,
        "compute_only_images_per_s": clock_hz / mean_c,
        "link_images_per_s": P.link_images_per_s(baud, spec.n_pixels, answer),
        "baud": baud,
    }


def _resources(report: dict, family: Family) -> dict:
    util = report.get("utilization", {})
    return {label: util[key] for label, key in family.resources.items() if key in util}


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
    platform = b.platform_object()
    top = BoardTop(b, spec, platform.default_clk_frequency, clock, baud,
                   P.network_id(export_dir))
    bitfile = dest / b.family.bitstream
    failure = None
    with files.output_dir(bdir, KIND, [export_dir]) as tmp:
        t0 = time.perf_counter()
        flows = (False, True) if b.family.abc_fallback else (False,)  # fallback LUT mapping?
        for k, fallback in enumerate(flows):
            try:
                # build the plan and run it: platform.build() would also insist on the
                # programmer being installed, which a bitstream does not need
                plan = b.platform_object().build(top, name="top", do_build=False,
                                                 **b.family.synth_options(fallback))
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
        f"{tp['compute_cycles_max']}); images back to back: one every "
        f"{tp['interval_cycles_mean']:.0f} cycles (the next image's pixels arrive while one "
        f"computes; its scores and result take {tp['io_cycles']})",
        f"- core: {tp['core_images_per_s']:,.0f} images/s "
        f"({tp['compute_only_images_per_s']:,.0f} on compute alone); "
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
