"""``gxnor run``: classify images on a board, or on the board core simulated in cocotb."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from gxnor.base import files
from gxnor.base.errors import InputError, StageFailed
from gxnor.export import format

from .device import Device, SerialTransport, session
from .images import read_images, shape_images


def print_report(report: dict, names: list, labels) -> None:
    info = report["info"]
    clock = info.get("clock_hz") or 0
    for k, r in enumerate(report.get("results", [])):
        lat = f"{r['cycles'] / clock * 1e6:8.1f} us" if clock else f"{r['cycles']} cycles"
        lab = "" if labels is None else f"  label {labels[k]}"
        print(f"{names[k]:>14s}: class {r['cls']}{lab}  latency {lat} ({r['cycles']} cycles)"
              f"  events {'/'.join(str(e) for e in r['events'])}")
    for c in report.get("checks", []):
        print(f"{'ok  ' if c['ok'] else 'FAIL'} {c['check']}: got {c['got']}, want {c['want']}")
    if labels is not None and report.get("results"):
        acc = np.mean([r["cls"] == y for r, y in zip(report["results"], labels, strict=True)])
        print(f"accuracy {100 * acc:.2f}% on {len(labels)} images")
    if "bench" in report:
        b = report["bench"]
        per_s = f"{b['images'] * clock / b['cycles']:,.0f} images/s at {clock / 1e6:g} MHz" \
            if clock and b["cycles"] else "no cycles counted"
        print(f"on-chip harness: {b['images']} images in {b['cycles']} cycles, "
              f"{b['mismatches']} mismatches, CRC {b['crc']:08x}: core {per_s}")
        if "bench_expected" in report:
            e = report["bench_expected"]
            print(f"cycle model: {e['cycles']} cycles, CRC {e['crc']:08x}")
    if "run_seconds" in report and report["run_seconds"] > 0:
        print(f"{len(report['results']) / report['run_seconds']:.1f} images/s end to end "
              "(link included)")


#: what `gxnor run --json` writes (an existing file is replaced only if it is one of these)
REPORT_KIND = "gxnor-run-report"
#: the `gxnor run --sim` build folder
SIM_KIND = files.Kind("run-sim", "gxnor run --sim",
                      recognize=lambda f: (f / "images.npy").exists())


def bench_checks(report: dict) -> list[dict]:
    """The checks of a BENCH answer: every image run, none mismatched, and (with a
    prediction, ``bench_expected``) the cycles and the CRC equal to the cycle model's."""
    got = report["bench"]
    want = {"images": report["bench_requested"], "mismatches": 0,
            **{k: report["bench_expected"][k] for k in ("cycles", "crc")
               if "bench_expected" in report}}
    return [{"check": f"BENCH {k}", "got": got[k], "want": v, "ok": got[k] == v}
            for k, v in want.items()]


def board_prediction(report_path, export_dir, info, count: int, data_dir=None) -> dict:
    """The counters a board built by ``gxnor build`` (its report.json at ``report_path``)
    should answer to BENCH ``count``: its stored images are the export's first
    ``info.bench_images`` test images."""
    from gxnor.hw.boards.build import spec_from_report
    from gxnor.hw.link import throughput
    from gxnor.sim import golden

    try:
        built = json.loads(Path(report_path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{report_path}: not a readable build report ({exc})") from exc
    spec = spec_from_report(built, export_dir)
    stored = golden.test_images(export_dir, info.bench_images, data_dir)
    if stored is None or len(stored) != info.bench_images:
        raise InputError(f"{export_dir}: its dataset's first {info.bench_images} test images "
                         "(the ones the board stores) are not at hand; pass --data-dir")
    ref = golden.Network(export_dir).run(stored)
    return throughput.expected(spec, ref.events, ref.classes, count)


def main(args) -> int:
    if args.sim and args.export_dir is None:
        raise InputError("--sim needs --export-dir: the simulated board is built from it")
    bench = getattr(args, "bench", None)
    if bench is not None and args.selftest:
        raise InputError("--bench and --selftest are two different sessions; pick one")
    if not args.images and (args.sim or bench is None):
        raise InputError("no images: name some (mnist:N, .npy files, image files); with "
                         "--sim --bench they are the images the harness stores")
    may_replace = files.is_json_of("kind", REPORT_KIND)
    if args.json:
        files.check_file(args.json, may_replace=may_replace, what="--json")
    if args.sim:
        files.check(args.out, SIM_KIND, [args.export_dir])
    raw = read_images(args.images, getattr(args, "data_dir", None)) if args.images else []
    export = format.load(args.export_dir) if args.export_dir is not None else None
    mode = "selftest" if args.selftest else "bench" if bench is not None else "run"
    if args.sim:
        from gxnor.hw.spec import AcceleratorSpec, PipelineSpec
        from gxnor.verify import runner, suite

        from .simboard import run_board

        AcceleratorSpec.from_export(export, args.lanes)  # runs on the hardware at all?
        images, labels, names = shape_images(raw, math.prod(export.input_shape),
                                             "x".join(map(str, export.input_shape)))
        spec = suite.accelerator_spec(export, args.lanes, getattr(args, "folds", None),
                                      getattr(args, "input_ports", None),
                                      getattr(args, "schedule", None), images,
                                      getattr(args, "slices", None))
        weights = args.weights
        if isinstance(spec, PipelineSpec) and weights != "rom":
            raise InputError("the layer pipeline keeps its weights in ROM: --weights ram is "
                             "the shared engine's")
        failed = None
        with files.output_dir(args.out, SIM_KIND, [args.export_dir]) as tmp:
            try:
                report = run_board(args.export_dir, images, tmp, sim=args.sim, mode=mode,
                                   weights=weights, spec=spec, bench=bench or 0)
            except runner.SimulationFailed as exc:
                failed = exc
        if failed is not None:
            raise StageFailed(f"{failed}\nlogs: {args.out}")
    else:
        from gxnor.hw.boards import board

        b = board(args.board)
        dev = Device(SerialTransport(args.port or b.port, args.baud or b.baud))
        info = dev.ping()
        images, labels, names = (shape_images(raw, info.n_pixels) if raw
                                 else (np.zeros((0, info.n_pixels), np.uint8), None, []))
        report = session(dev, images, args.export_dir, mode, bench or 0)
        built = args.build_report or Path("build") / b.name / "report.json"
        if mode == "bench" and args.export_dir is not None and built.exists():
            report["bench_expected"] = board_prediction(built, args.export_dir, dev.info,
                                                        bench, getattr(args, "data_dir", None))
    if mode == "bench":
        report["checks"] = bench_checks(report)
    print_report(report, names, labels)
    if args.json:
        files.write_file(args.json, json.dumps({"kind": REPORT_KIND, **report}, indent=1),
                         may_replace=may_replace, what="--json")
    failed = [c for c in report.get("checks", []) if not c["ok"]]
    if args.export_dir is not None and report.get("results"):
        from gxnor.sim import golden

        want = golden.Network(args.export_dir).run(images).classes
        got = np.array([r["cls"] for r in report["results"]])
        bad = np.nonzero(got != want)[0]
        print(f"golden model: {len(got) - len(bad)}/{len(got)} classes agree")
        if len(bad):
            print(f"disagree on {[names[i] for i in bad[:10]]}", file=sys.stderr)
            return 1
    return 1 if failed else 0
