"""``gxnor run``: classify images on a board, or on the board core simulated in cocotb."""

from __future__ import annotations

import json
import math
import sys

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
    if "run_seconds" in report and report["run_seconds"] > 0:
        print(f"{len(report['results']) / report['run_seconds']:.1f} images/s end to end "
              "(link included)")


#: what `gxnor run --json` writes (an existing file is replaced only if it is one of these)
REPORT_KIND = "gxnor-run-report"
#: the `gxnor run --sim` build folder
SIM_KIND = files.Kind("run-sim", "gxnor run --sim",
                      recognize=lambda f: (f / "images.npy").exists())


def main(args) -> int:
    if args.sim and args.export_dir is None:
        raise InputError("--sim needs --export-dir: the simulated board is built from it")
    may_replace = files.is_json_of("kind", REPORT_KIND)
    if args.json:
        files.check_file(args.json, may_replace=may_replace, what="--json")
    if args.sim:
        files.check(args.out, SIM_KIND, [args.export_dir])
    raw = read_images(args.images, getattr(args, "data_dir", None))
    export = format.load(args.export_dir) if args.export_dir is not None else None
    mode = "selftest" if args.selftest else "run"
    if args.sim:
        from gxnor.hw.spec import AcceleratorSpec
        from gxnor.verify import runner

        from .simboard import run_board

        AcceleratorSpec.from_export(export, args.lanes)  # runs on the hardware at all?
        images, labels, names = shape_images(raw, math.prod(export.input_shape),
                                             "x".join(map(str, export.input_shape)))
        failed = None
        with files.output_dir(args.out, SIM_KIND, [args.export_dir]) as tmp:
            try:
                report = run_board(args.export_dir, images, tmp, sim=args.sim, mode=mode,
                                   lanes=args.lanes, weights=args.weights)
            except runner.SimulationFailed as exc:
                failed = exc
        if failed is not None:
            raise StageFailed(f"{failed}\nlogs: {args.out}")
    else:
        from gxnor.hw.boards import board

        b = board(args.board)
        dev = Device(SerialTransport(args.port or b.port, args.baud or b.baud))
        n_pixels = dev.ping().n_pixels
        images, labels, names = shape_images(raw, n_pixels)
        report = session(dev, images, args.export_dir, mode)
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
