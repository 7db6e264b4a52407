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
from gxnor.base.errors import InputError, StageFailed
from gxnor.export import format
from gxnor.sim import golden

from .. import plan, timing, toolchain
from ..link import protocol as P
from ..link.throughput import stored_bits
from ..spec import AcceleratorSpec, PipelineSpec
from .families import Family
from .table import Board, board
from .top import BoardTop


def predicted_throughput(spec, events, source: str, clock_hz: float, baud: int,
                         request_bytes: float | None = None) -> dict:
    """Images/s from the cycle model on ``events`` per layer and image (the export's test
    images, or the dense worst case: :func:`gxnor.sim.golden.dataset_events`, which says
    which in ``source``); the link's images/s with ``request_bytes`` per request frame (the
    mean RUN/RUNZ frame of the test images, :func:`mean_request_bytes`), else dense RUN frames."""
    common = {"cycles_source": source, "link_images_per_s": _link(spec, baud, request_bytes),
              "baud": baud, "request_frame_bytes": request_bytes}
    if isinstance(spec, PipelineSpec):
        # the mean interval between results in the exact timeline, images back to back
        tl = timing.pipeline_timeline(spec, events)
        interval = timing.result_interval(tl["result"])
        stages = timing.stage_cycles(spec, events)
        return {**common, "interval_cycles_mean": interval,
                "latency_cycles_mean": float(np.mean(tl["cycles"])),
                "latency_cycles_max": int(np.max(tl["cycles"])),
                "stage_cycles_mean": {k: float(np.mean(v)) for k, v in stages.items()},
                "core_images_per_s": clock_hz / interval}
    compute = np.atleast_1d(timing.image_cycles(events, **timing.folding(spec)))
    mean_c, max_c = float(compute.mean()), int(compute.max())
    interval = float(timing.interval(compute, spec.n_pixels, spec.num_classes).mean())
    return {**common, "compute_cycles_mean": mean_c, "compute_cycles_max": max_c,
            "io_cycles": timing.io_cycles(spec.n_pixels, spec.num_classes),
            "interval_cycles_mean": interval, "core_images_per_s": clock_hz / interval,
            "compute_only_images_per_s": clock_hz / mean_c}


def _link(spec, baud: int, request_bytes: float | None = None) -> float:
    """The UART link's images/s."""
    sb = P.score_bytes(spec.score_bits)
    answer = P.run_answer_bytes(spec.num_classes, sb, len(spec.layers))
    return P.link_images_per_s(baud, spec.n_pixels, answer, request_bytes)


def mean_request_bytes(images) -> float | None:
    """The mean request frame (RUNZ where shorter than RUN, as ``gxnor run`` sends them) of
    ``images`` (:func:`gxnor.sim.golden.test_images`; None without them)."""
    if images is None:
        return None
    return float(np.mean([len(P.run_frame(im.reshape(-1))) for im in images]))


def _resources(report: dict, family: Family) -> dict:
    util = report.get("utilization", {})
    return {label: util[key] for label, key in family.resources.items() if key in util}


#: a board build folder, OUT/BOARD (marker file; older ones are recognized by their report)
KIND = files.Kind("build", "gxnor build",
                  recognize=lambda f: files.is_json_of("board", f.name)(f / "report.json"))


def choose_spec(export_dir: Path, b: Board, events, *, lanes: int | None = None,
                schedule=None, folds=None, input_ports: int | None = None,
                slices: int | None = None):
    """The accelerator a build makes: ``--lanes`` (the shared engine with that many lanes),
    ``--folds`` (the layer pipeline folded so), else the board's schedule: the shared engine
    with the board's lanes, or the pipeline folded by the planner for the board's budget from
    ``events`` (per layer and test image). Returns (spec, plan or None)."""
    net = format.load(export_dir)
    if schedule is None:
        schedule = "pipelined" if folds else "shared" if lanes else b.schedule
    if schedule == "shared":
        if folds:
            raise InputError("--folds folds the layer pipeline; the shared schedule takes "
                             "--lanes")
        lanes = lanes or b.lanes
        if slices is None:  # the board's, where the last layer fits them
            slices = b.slices
            while slices > 1 and net.layers[-1].n_out > lanes // slices:
                slices //= 2
        return AcceleratorSpec.from_export(net, lanes, slices=slices), None
    if slices:
        raise InputError("--slices cuts the shared engine's last layer; the layer pipeline "
                         "folds it with --folds")
    if lanes:
        raise InputError("--lanes sets the shared engine's lanes; fold the pipeline with "
                         "--folds LANESxPORTSxRATE,... (one per layer)")
    if b.weights != "rom":
        raise InputError(f"{b.name}: the layer pipeline keeps its weights in block RAM; this "
                         f"board's weights live in {b.weights} (use --schedule shared)")
    budget = plan.device_budget(b.device)
    if folds:
        spec = PipelineSpec.from_export(net, folds, input_ports or 1)
        return spec, plan.describe(spec, events, budget)
    p = plan.plan(net, events, budget)
    if input_ports:
        p = plan.describe(PipelineSpec.from_export(net, p.spec.folds, input_ports), events,
                          budget)
    return p.spec, p


def spec_from_report(report: dict, export_dir: Path):
    """The accelerator a build made (its report.json as ``report``), rebuilt from its export
    (which must be the one it was built from)."""
    nid = f"{P.network_id(export_dir):08x}"
    if report.get("net_id") != nid:
        raise InputError(f"{export_dir}: network id {nid}, the build report's is "
                         f"{report.get('net_id')} (built from another export)")
    net = format.load(export_dir)
    try:
        if report["schedule"] == "pipelined":
            return PipelineSpec.from_export(net, [tuple(f) for f in report["folds"]],
                                            report["input_ports"], report.get("buffers", 3))
        lanes, ports, rate = report["folds"][0]
        return AcceleratorSpec.from_export(net, lanes, ports=ports, rate=rate,
                                           slices=report.get("slices", 1))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"the build report has no usable schedule / folds ({exc!r})") from exc


def bench_store(export_dir: Path, images: int, data_dir=None):
    """(images, classes) the on-chip throughput harness of a build stores: the export's first
    ``images`` test images and the golden model's class of each."""
    stored = golden.test_images(export_dir, images, data_dir)
    if stored is None or len(stored) < images:
        raise InputError(f"{export_dir}: --bench-images {images} needs that many test images "
                         "of the export's dataset (pass --data-dir)")
    return stored, golden.Network(export_dir).run(stored).classes


def build(export_dir: Path, board_name: str, out: Path, *, lanes: int | None = None,
          clock_hz: float | None = None, baud: int | None = None, data_dir=None,
          log=print, schedule: str | None = None, folds=None,
          input_ports: int | None = None, bench_images: int = 0,
          slices: int | None = None) -> dict:
    """Synthesise, place and route ``export_dir`` for ``board_name`` into ``out/<board>``
    (written atomically, see :mod:`gxnor.base.files`); returns the report (also written as
    report.json / report.md). The accelerator: :func:`choose_spec` (the planner's table is
    logged before synthesis). ``bench_images`` > 0 builds in the on-chip throughput harness
    with that many test images (:mod:`gxnor.hw.link.throughput`). A toolchain failure raises
    StageFailed; the folder then holds the tools' logs and no bitstream."""
    b = board(board_name)
    export_dir = Path(export_dir)
    bdir = Path(out) / b.name
    dest = files.check(bdir, KIND, [export_dir])
    toolchain.setup()
    # the golden model's events on the export's test images, for the planner and the report
    images = golden.test_images(export_dir, 1000, data_dir)
    events, source = golden.events_of(export_dir, images)
    spec, fold_plan = choose_spec(export_dir, b, events, lanes=lanes, schedule=schedule,
                                  folds=folds, input_ports=input_ports, slices=slices)
    if fold_plan is not None:
        log(f"{b.name}: layer pipeline plan\n{fold_plan.table()}")
    clock = int(clock_hz or b.clock_hz)
    baud = int(baud or b.baud)
    platform = b.platform_object()
    bench = bench_store(export_dir, bench_images, data_dir) if bench_images else None
    top = BoardTop(b, spec, platform.default_clk_frequency, clock, baud,
                   P.network_id(export_dir), bench)
    bitfile = dest / b.family.bitstream
    failure = None
    with files.output_dir(bdir, KIND, [export_dir]) as tmp:
        t0 = time.perf_counter()
        flows = (False, True) if b.family.abc_fallback else (False,)  # fallback LUT mapping?
        if isinstance(spec, PipelineSpec) and b.family.abc_fallback:
            # the pipeline's adder trees: ABC9 maps them to wide muxes (16 lanes x 4 ports of
            # 1-bit terms: 1479 LUT4 + 672 PFUMX, the classic ABC 359 LUT4), so the classic
            # mapping goes first
            flows = (True,)
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
            tp = predicted_throughput(spec, events, source, top.clock_hz, baud,
                                      mean_request_bytes(images))
            report = _report(b, platform, top, spec, export_dir, tmp, bitfile, fallback,
                             seconds, baud, tp, fold_plan)
            (tmp / "report.json").write_text(json.dumps(report, indent=1))
            (tmp / "report.md").write_text(report_markdown(report))
    if failure is not None:
        raise StageFailed(f"{b.name}: the toolchain failed ({failure}); logs in {bdir} "
                          "(top.rpt: yosys, top.tim: nextpnr)")
    return report


def _report(b: Board, platform, top, spec, export_dir: Path, tmp: Path, bitfile: Path,
            fallback: bool, seconds: float, baud: int, tp: dict, fold_plan=None) -> dict:
    """The build report, from nextpnr's JSON report in ``tmp`` and the cycle model's
    throughput ``tp`` (:func:`predicted_throughput`)."""
    flow = "abc -lut 4" if fallback else "abc9"
    pnr = json.loads((tmp / "nextpnr-report.json").read_text())
    fmax = pnr.get("fmax", {})
    target = top.clock_hz
    # the core clock's entry (nextpnr names clocks after their nets); every clock must pass
    core = [v for v in fmax.values() if abs(v["constraint"] * 1e6 / target - 1) < 0.01]
    achieved = min((v["achieved"] for v in core or fmax.values()), default=0.0) * 1e6
    met = bool(fmax) and all(v["achieved"] >= v["constraint"] for v in fmax.values())
    res = _resources(pnr, b.family)
    luts = next(iter(res.values()))["used"] if res else 0
    pipelined = isinstance(spec, PipelineSpec)
    extra = {}
    if fold_plan is not None:
        used = {k.split()[0]: v["used"] for k, v in res.items()}
        extra["plan"] = {**fold_plan.to_json(), "actual": {
            "luts": used.get("LUT4"), "brams": used.get("EBR"),
            "note": "the whole board (UART core and top included); the estimate is the "
                    "pipeline's engines alone"}}
    return {
        "board": b.name, "device": f"{platform.device}-{platform.package}",
        "export": str(export_dir.resolve()), "net_id": f"{P.network_id(export_dir):08x}",
        "layers": [[ly.n_in, ly.n_out] for ly in spec.layers], "schedule": spec.schedule,
        "lanes": [f.lanes for f in spec.folds] if pipelined else spec.lanes,
        "folds": [[f.lanes, f.ports, f.rate] for f in spec.folds],
        "input_ports": spec.input_ports if pipelined else 1,
        "slices": 1 if pipelined else spec.slices,
        "buffers": spec.buffers if pipelined else None,
        "bench_images": 0 if top.bench is None else len(top.bench[1]),
        "bench_store_bits": 0 if top.bench is None else stored_bits(spec, top.bench[0]),
        "weights": b.weights,
        "weight_bits": sum(len(ly.words) * 2 * f.lanes for ly, f in
                           zip(spec.layers, spec.folds, strict=True)),
        "clock_hz": target, "pll": top.pll, "fmax_hz": achieved,
        "fmax_per_clock": {k: v for k, v in fmax.items()},
        "timing_met": met,
        "baud": baud, "divisor": top.divisor,
        "resources": res, "synthesis": flow,
        "build_seconds": round(seconds, 1),
        "bitstream": str(bitfile), "bitstream_bytes": (tmp / bitfile.name).stat().st_size,
        "throughput": tp,
        "core_images_per_s_per_klut": tp["core_images_per_s"] / max(luts, 1) * 1000,
        **extra,
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
        f"{r['synthesis']}; build {r['build_seconds']} s; bitstream {r['bitstream']}",
        *([f"- on-chip throughput harness: {r['bench_images']} test images stored "
           f"({r['bench_store_bits']:,} bits); measure with `gxnor run --board {r['board']} "
           f"--bench COUNT --export-dir EXPORT`"] if r.get("bench_images") else []), "",
        "| resource | used | available | % |", "|---|---|---|---|",
    ]
    for name, u in r["resources"].items():
        pct = 100 * u["used"] / u["available"] if u.get("available") else 0
        lines.append(f"| {name} | {u['used']} | {u['available']} | {pct:.1f} |")
    if "plan" in r:
        lines += _plan_markdown(r)
    lines += [
        "", f"Throughput predicted by the cycle model at {r['clock_hz'] / 1e6:.2f} MHz "
        f"({tp['cycles_source']}):", ""]
    if r.get("schedule") == "pipelined":
        stages = ", ".join(f"{k} {v:.1f}" for k, v in tp["stage_cycles_mean"].items())
        lines += [
            f"- layer pipeline: one result every {tp['interval_cycles_mean']:.1f} cycles "
            f"(stages, mean cycles/image: {stages}); latency {tp['latency_cycles_mean']:.0f} "
            f"cycles (max {tp['latency_cycles_max']})",
            f"- core: {tp['core_images_per_s']:,.0f} images/s; "
            f"{r['core_images_per_s_per_klut']:,.0f} images/s per kLUT",
            _link_line(tp), ""]
        return "\n".join(lines)
    lines += [
        f"- compute {tp['compute_cycles_mean']:.0f} cycles/image (max "
        f"{tp['compute_cycles_max']}); images back to back: one every "
        f"{tp['interval_cycles_mean']:.0f} cycles (the next image's pixels arrive while one "
        f"computes; its scores and result take {tp['io_cycles']})",
        f"- core: {tp['core_images_per_s']:,.0f} images/s "
        f"({tp['compute_only_images_per_s']:,.0f} on compute alone); "
        f"{r['core_images_per_s_per_klut']:,.0f} images/s per kLUT",
        _link_line(tp), "",
    ]
    return "\n".join(lines)


def _link_line(tp: dict) -> str:
    frames = tp.get("request_frame_bytes")
    how = (f"RUNZ/RUN frames of the test images, {frames:.0f} bytes on average" if frames
           else "dense RUN frames")
    return (f"- UART link at {tp['baud']:,} baud: {tp['link_images_per_s']:,.0f} images/s "
            f"(the end-to-end limit; {how})")


def _plan_markdown(r: dict) -> list[str]:
    p = r["plan"]
    lines = ["", f"Layer pipeline (B={p['buffers']} buffers per boundary, input "
             f"{p['input_ports']} pixels/beat), folded for {p['budget']['luts']} LUT4 / "
             f"{p['budget']['brams']} BRAM ({p['budget']['name'] or 'given folds'}); cycles "
             f"from {p['images']} test images:", "",
             "| stage | lanes | ports | rate | cycles mean | max | weight bits | est LUT4 | "
             "est BRAM |", "|---|---|---|---|---|---|---|---|---|"]
    for name, s in p["stages"].items():
        mark = " (bound)" if name == p["bottleneck"] else ""
        lines.append(f"| {name}{mark} | {s.get('lanes', '')} | {s.get('ports', '')} | "
                     f"{s.get('rate', '')} | {s['mean']:.1f} | {s['max']} | "
                     f"{s.get('weight_bits', '')} | {s.get('luts', '')} | {s.get('brams', '')} |")
    a = p["actual"]
    lines.append(f"| estimate vs yosys/nextpnr | | | | | | | {p['estimate']['luts']} vs "
                 f"{a['luts']} | {p['estimate']['brams']} vs {a['brams']} |")
    lines.append("")
    lines.append(f"(actual: {a['note']})")
    return lines


def build_main(args) -> int:
    folds = plan.parse_folds(args.folds) if getattr(args, "folds", None) else None
    report = build(args.export_dir, args.board, args.out, lanes=args.lanes,
                   clock_hz=args.clock * 1e6 if args.clock else None, baud=args.baud,
                   data_dir=getattr(args, "data_dir", None),
                   schedule=getattr(args, "schedule", None), folds=folds,
                   slices=getattr(args, "slices", None),
                   input_ports=getattr(args, "input_ports", None),
                   bench_images=getattr(args, "bench_images", 0) or 0)
    print(report_markdown(report))
    if not report["timing_met"]:
        print(f"gxnor build: timing NOT met: Fmax {report['fmax_hz'] / 1e6:.2f} MHz < "
              f"{report['clock_hz'] / 1e6:.2f} MHz; rebuild with --clock "
              f"{math.floor(report['fmax_hz'] / 1e6)}", file=sys.stderr)
        return 1
    return 0


# ---- flash -------------------------------------------------------------------------------
