"""The ``gxnor`` command: one subcommand per pipeline stage.

Exit codes: 0 success, 1 the stage ran and found a problem (e.g. simulation mismatches),
2 bad usage or bad input (missing/corrupt files), 3 a stage this build does not provide yet.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gxnor.base import limits
from gxnor.base.errors import InputError, StageFailed, Unavailable

EXIT_OK, EXIT_FAIL, EXIT_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3
EXIT_INTERRUPTED = 130


def _limited(limit: limits.Limit):
    """An argparse ``type=`` that checks ``limit`` (argparse prints the message, exit 2)."""

    def parse(text: str):
        try:
            return limit.parse(text)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = limit.option
    return parse


def _cmd_train(args: argparse.Namespace) -> int:
    from gxnor.model import train

    summary = train.main(args)
    return EXIT_INTERRUPTED if summary and summary.get("interrupted") else EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from gxnor.export import exporter

    if args.qonnx is None and args.out is None:
        raise InputError("--out is required (or --qonnx FILE to write an export as QONNX)")
    if args.qonnx is not None:
        from gxnor.export import qonnx

        qonnx.check_target(args.qonnx)  # before anything is written
        if args.out is None:
            if not exporter.is_export(args.run_dir):
                raise InputError(f"{args.run_dir}: not an export folder; give --out to export "
                                 "a training run first")
            print(f"wrote {qonnx.to_qonnx(args.run_dir, args.qonnx)}")
            return EXIT_OK
    out = exporter.export_run(args.run_dir, args.out, lanes=args.lanes)
    print(f"exported {args.run_dir} -> {out}")
    if args.qonnx is not None:
        print(f"wrote {qonnx.to_qonnx(out, args.qonnx)}")
    return EXIT_OK


def _cmd_import(args: argparse.Namespace) -> int:
    from gxnor.export import qonnx

    out, imp = qonnx.import_model(
        args.model, args.out, lanes=args.lanes, input_scale=args.input_scale,
        input_offset=args.input_offset, dataset=args.dataset, input_shape=args.input_shape)
    print(imp.table())
    print(f"input: pixel x {imp.input_scale:.6g} + {imp.input_offset:.6g}")
    print(f"imported {args.model} -> {out}")
    return EXIT_OK


def _number(text: str) -> float:
    from gxnor.export.qonnx import parse_number

    try:
        return parse_number(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _shape(text: str) -> tuple[int, int, int]:
    try:
        dims = tuple(int(d) for d in text.split(","))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not C,H,W (three positive integers)")
    return dims


def _cmd_explore(args: argparse.Namespace) -> int:
    from gxnor import explore

    return explore.main(args)


def _cmd_rtl(args: argparse.Namespace) -> int:
    from gxnor.hw import rtl

    files = rtl.write_rtl(args.export_dir, args.out, lanes=args.lanes)
    for f in files:
        print(f)
    return EXIT_OK


def _cmd_sim(args: argparse.Namespace) -> int:
    from gxnor.verify import suite

    return suite.main(args)


def _cmd_build(args: argparse.Namespace) -> int:
    from gxnor.hw import boards

    return boards.build_main(args)


def _cmd_flash(args: argparse.Namespace) -> int:
    from gxnor.hw import boards

    return boards.flash_main(args)


def _cmd_run(args: argparse.Namespace) -> int:
    from gxnor.host import run

    return run.main(args)


def _cmd_bench(args: argparse.Namespace) -> int:
    from gxnor import bench

    return bench.main(args)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from gxnor.hw import toolchain

    if args.warm:
        for tool, seconds in toolchain.warm().items():
            print(f"warmed {tool:24s} {seconds:6.1f} s")
    missing = 0
    for tool, where in toolchain.report():
        print(f"{tool:16s} {where}")
        missing += where.startswith("missing") and tool not in ("openFPGALoader", "iceprog")
    return EXIT_FAIL if missing else EXIT_OK


def _cmd_data(args: argparse.Namespace) -> int:
    import numpy as np

    from gxnor.model import data

    ds = data.load(args.dataset, args.data_dir)
    for split in ("train", "test"):
        s = getattr(ds, split)
        counts = " ".join(str(c) for c in np.bincount(s.labels))
        print(f"{ds.name} {split}: images {s.images.shape} labels per class: {counts}")
    return EXIT_OK


def _schedule_options(p: argparse.ArgumentParser, schedule_help: str) -> None:
    """--schedule, --folds, --input-ports: which accelerator (``gxnor sim``, ``build`` and
    ``run --sim``)."""
    p.add_argument("--schedule", choices=["shared", "pipelined"], help=schedule_help)
    p.add_argument("--folds", metavar="LxKxR,...",
                   help="fold the layer pipeline by hand: lanes x event ports x serializer "
                   "rate per layer, e.g. 256x4x8,256x4x8,10x4 (a conv layer's ports: kernel "
                   "taps a token, 1..k or whole rows up to k*k)")
    p.add_argument("--input-ports", type=_limited(limits.PORTS),
                   help="the pipeline's nonzero pixels per input beat (default: the plan's, "
                   "or 1 with --folds)")
    p.add_argument("--slices", type=_limited(limits.PORTS),
                   help="the shared engine's last layer in this many slices of the lanes, as "
                   "many events a cycle (default: the board's, iCEBreaker 2; else 1)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gxnor",
        description="Train a ternary GXNOR network, export it to integers, generate the "
        "event-driven accelerator, verify it and put it on an FPGA.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a discrete network (GXNOR/DST or STE baseline)")
    t.add_argument("--config", default="mlp-ice40",
                   help="network config (see --list-configs); default %(default)s")
    t.add_argument("--list-configs", action="store_true", help="list the configs and exit")
    t.add_argument("--epochs", type=_limited(limits.EPOCHS), help="epochs (default: the config's)")
    t.add_argument("--seed", type=_limited(limits.SEED), default=0)
    t.add_argument("--out", type=Path, help="run directory (default runs/CONFIG)")
    t.add_argument("--method", choices=["dst", "ste"], help="override the config's method")
    t.add_argument("--proposal", choices=["norm", "adam", "packed"],
                   help="DST update proposal: norm (per-layer normalised gradient, 1 byte per "
                   "weight), adam (two fp32 moments, 9 bytes) or packed (a 6-bit momentum in "
                   "the spare bits of the weight's byte, 1 byte)")
    t.add_argument("--lr", type=_limited(limits.LEARNING_RATE),
                   help="learning rate (default: the config's)")
    t.add_argument("--batch-size", type=_limited(limits.BATCH))
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set r=1.0 --set loss=hinge")
    t.add_argument("--time-limit", type=_limited(limits.TIME_LIMIT_MIN),
                   help="stop after this many minutes of training")
    t.add_argument("--data-dir", type=Path, help="folder with the MNIST IDX files")
    t.add_argument("--layers", metavar="SPEC",
                   help="the network's layers instead of the config's, e.g. fc256,fc256,fc10 "
                   "or conv16k5,pool2,fc128,fc10 (the last fc = the classes)")
    t.add_argument("--data", metavar="DATASET",
                   help="train on mnist, digits, your .npz (uint8 x_train, y_train, x_test, "
                   "y_test) or a folder of IDX files (e.g. Fashion-MNIST)")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to train (default: cuda when torch sees a GPU)")
    t.add_argument("--threads", type=_limited(limits.THREADS), help="torch CPU threads")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("export", help="turn a trained run into integer ROM images + manifest")
    e.add_argument("run_dir", type=Path, help="training run directory (holds checkpoint.pt), "
                   "or with --qonnx alone an export folder")
    e.add_argument("--out", type=Path, help="output directory (written atomically)")
    e.add_argument("--lanes", type=_limited(limits.LANES),
                   default=8, help="PE lanes P (ROM word = 2P bits)")
    e.add_argument("--qonnx", type=Path, metavar="FILE",
                   help="also write the network as a QONNX graph with the same integer "
                   "arithmetic (needs the qonnx extra)")
    e.set_defaults(func=_cmd_export)

    x = sub.add_parser("explore", help="sweep r (and widths) for the accuracy / sparsity / "
                       "speed trade-off on a board: table + Pareto plot")
    x.add_argument("--config", default="mlp-ice40", help="base config (default %(default)s)")
    x.add_argument("--r", default="0.25,0.5,0.75,1,1.5,2", metavar="R,...",
                   help="activation steps to try (default %(default)s)")
    x.add_argument("--layers", action="append", metavar="SPEC",
                   help="a layer list to try (repeat for several widths; default: the "
                   "config's), e.g. fc128,fc128,fc10")
    x.add_argument("--epochs", type=_limited(limits.EPOCHS),
                   help="epochs per point (default: the config's; short is fine)")
    x.add_argument("--board", default="icebreaker",
                   help="board whose accelerator the cycle model predicts (default %(default)s)")
    x.add_argument("--jobs", type=_limited(limits.THREADS), default=2,
                   help="points trained in parallel processes (default %(default)s)")
    x.add_argument("--threads", type=_limited(limits.THREADS),
                   help="torch threads per point (default: cores / jobs)")
    x.add_argument("--ray", metavar="ADDRESS",
                   help="run the points on a Ray cluster (auto, ray://HOST:PORT, or local)")
    x.add_argument("--seed", type=_limited(limits.SEED), default=0)
    x.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field for every point")
    x.add_argument("--data", metavar="DATASET", help="as gxnor train --data")
    x.add_argument("--data-dir", type=Path, help="folder with the MNIST IDX files")
    x.add_argument("--out", type=Path, default=Path("runs/explore"),
                   help="sweep folder (default %(default)s)")
    x.set_defaults(func=_cmd_explore)

    m = sub.add_parser("import", help="turn a QONNX model (Brevitas, FINN) into an export")
    m.add_argument("model", type=Path, help="QONNX .onnx file")
    m.add_argument("--out", type=Path, required=True, help="output directory (written atomically)")
    m.add_argument("--lanes", type=_limited(limits.LANES),
                   default=8, help="PE lanes P (ROM word = 2P bits)")
    m.add_argument("--input-scale", type=_number, metavar="S",
                   help="the graph's input is pixel x S + OFFSET (default: 1 when the input is "
                   "annotated UINT8, else 1/255, as torchvision's ToTensor)")
    m.add_argument("--input-offset", type=_number, default=0.0, metavar="OFFSET",
                   help="see --input-scale (default 0)")
    m.add_argument("--dataset", choices=["mnist", "digits"],
                   help="the test images' dataset (default: from the input shape)")
    m.add_argument("--input-shape", type=_shape, metavar="C,H,W",
                   help="the image shape when the graph's input is flat")
    m.set_defaults(func=_cmd_import)

    r = sub.add_parser("rtl", help="write Verilog for an exported network")
    r.add_argument("export_dir", type=Path)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--lanes", type=_limited(limits.LANES), help="PE lanes (default: the export's)")
    r.set_defaults(func=_cmd_rtl)

    s = sub.add_parser("sim", help="verify the Verilog against the golden model")
    s.add_argument("export_dir", type=Path, nargs="?",
                   help="exported network (default: run the random-network suite)")
    s.add_argument("--images", type=_limited(limits.IMAGES),
                   default=100, help="test images to simulate")
    s.add_argument("--bench", choices=["fast", "cocotb"], default="fast",
                   help="fast: Verilator runs whole image sets (default); cocotb: the "
                   "cycle-level bench with idle cycles and back-pressure")
    s.add_argument("--lanes", type=_limited(limits.LANES),
                   help="PE lanes (default: the export's)")
    _schedule_options(s, "the shared engine (default) or the layer pipeline (folded by the "
                      "planner for an ECP5-85F unless --folds)")
    s.add_argument("--jobs", type=_limited(limits.JOBS), default=2,
                   help="processes for the fast path (default %(default)s)")
    s.add_argument("--random", type=_limited(limits.NETWORKS), metavar="N",
                   help="N random networks through the RTL (no export needed)")
    s.add_argument("--seed", type=_limited(limits.SEED), default=0,
                   help="--random: the first network's seed (default %(default)s)")
    s.add_argument("--sim", choices=["icarus", "verilator"], default=None,
                   help="simulator (default $SIM or icarus)")
    s.add_argument("--waves", action="store_true", help="dump waveforms")
    s.add_argument("--data-dir", type=Path)
    s.add_argument("--out", type=Path, default=Path("build/sim"))
    s.set_defaults(func=_cmd_sim)

    b = sub.add_parser("build", help="synthesise, place and route a bitstream for a board")
    b.add_argument("export_dir", type=Path)
    b.add_argument("--board", required=True, help="icebreaker, ulx3s-85f, ecpix5-85f")
    b.add_argument("--lanes", type=_limited(limits.LANES),
                   help="the shared engine with this many PE lanes")
    _schedule_options(b, "one engine for all layers, or one per layer (default: the board's: "
                      "pipelined on the ECP5 boards, folded by the planner)")
    b.add_argument("--clock", type=_limited(limits.CLOCK_MHZ),
                   help="core clock in MHz (default: the board's)")
    b.add_argument("--baud", type=_limited(limits.BAUD),
                   help="UART baud rate (default: the board's: the fastest its USB UART takes)")
    b.add_argument("--out", type=Path, default=Path("build"),
                   help="outputs go to OUT/BOARD (default %(default)s)")
    b.add_argument("--data-dir", type=Path, help="dataset for the throughput prediction")
    b.add_argument("--bench-images", type=_limited(limits.BENCH_IMAGES),
                   help="build in the on-chip throughput harness with the export's first N "
                   "test images (measure with gxnor run --bench)")
    b.set_defaults(func=_cmd_build)

    f = sub.add_parser("flash", help="program a board with openFPGALoader / iceprog")
    f.add_argument("--board", required=True)
    f.add_argument("--bitstream", type=Path, help="default OUT/BOARD/top.bin|bit")
    f.add_argument("--out", type=Path, default=Path("build"))
    f.set_defaults(func=_cmd_flash)

    u = sub.add_parser("run", help="classify images on a board (or the simulated board)")
    u.add_argument("images", nargs="*",
                   help="mnist:N, mnist:START:N, .npy files of uint8 images, or image files "
                   "(--sim --bench: the images the simulated harness stores; a board's "
                   "harness holds the ones it was built with)")
    u.add_argument("--board", default="icebreaker",
                   help="the board (default %(default)s): its serial port and baud rate "
                   "are the defaults of --port and --baud")
    u.add_argument("--port", help="serial port (default: the board's, iCEBreaker "
                   "/dev/ttyUSB1, ULX3S /dev/ttyUSB0)")
    u.add_argument("--baud", type=_limited(limits.BAUD),
                   help="UART baud rate (default: the board's, as its bitstream was built: "
                   "iCEBreaker 6,000,000, ULX3S 3,000,000)")
    u.add_argument("--export-dir", type=Path,
                   help="the exported network: checked against the board, loaded into its "
                   "weight memory if needed, and used to check the classes")
    u.add_argument("--selftest", action="store_true",
                   help="also send malformed frames and check the board's error answers")
    u.add_argument("--sim", choices=["icarus", "verilator"],
                   help="no board: run the board core in cocotb behind the same client")
    u.add_argument("--lanes", type=_limited(limits.LANES),
                   help="--sim: PE lanes (default: the export's)")
    _schedule_options(u, "--sim: one engine for all layers (default), or one per layer")
    u.add_argument("--weights", choices=["rom", "ram"], default="rom",
                   help="--sim: weights built in (rom, as on the ECP5 boards) or an empty "
                   "memory the host loads over the UART first (ram, as the iCEBreaker's SPRAM)")
    u.add_argument("--bench", type=_limited(limits.BENCH_COUNT), metavar="COUNT",
                   help="measure the core with the on-chip throughput harness: replay its "
                   "stored images in turn, COUNT images in all, every class checked on chip; the "
                   "cycles and CRC are "
                   "checked against the cycle model (a board: from --build-report)")
    u.add_argument("--build-report", type=Path,
                   help="--bench on a board: the report.json of its build (default "
                   "build/BOARD/report.json)")
    u.add_argument("--out", type=Path, default=Path("build/run-sim"), help="--sim build folder")
    u.add_argument("--json", type=Path, help="write the report as JSON")
    u.add_argument("--data-dir", type=Path)
    u.set_defaults(func=_cmd_run)

    k = sub.add_parser("bench", help="run the measurements recorded in docs/BENCHMARKS.md")
    k.add_argument("what", nargs="*", help="which benchmarks (default: all)")
    k.add_argument("--out", type=Path, default=Path("build/bench"))
    k.add_argument("--data-dir", type=Path)
    k.add_argument("--threads", type=_limited(limits.THREADS),
                   help="torch threads for the training runs")
    k.set_defaults(func=_cmd_bench)

    d = sub.add_parser("doctor", help="show where the external tools are")
    d.add_argument("--warm", action="store_true",
                   help="run each YoWASP tool once to compile and cache it")
    d.set_defaults(func=_cmd_doctor)

    a = sub.add_parser("data", help="check a dataset and print its shapes and label counts")
    a.add_argument("dataset", choices=["mnist", "digits"])
    a.add_argument("--data-dir", type=Path)
    a.set_defaults(func=_cmd_data)
    return p


def main(argv: list[str] | None = None) -> int:
    from gxnor.hw import toolchain

    toolchain.setup()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"gxnor {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        # a file the user named that cannot be read as asked
        print(f"gxnor {args.command}: error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return EXIT_INPUT
    except StageFailed as exc:
        print(f"gxnor {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except Unavailable as exc:
        print(f"gxnor {args.command}: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except ImportError as exc:
        if exc.name and exc.name.startswith("gxnor."):
            print(f"gxnor {args.command}: not available in this build yet ({exc.name})",
                  file=sys.stderr)
            return EXIT_UNAVAILABLE
        raise


if __name__ == "__main__":
    sys.exit(main())
