"""``gxnor sim``: RTL verification from the command line.

* ``gxnor sim EXPORT --images N``: the export's first N test images through its Verilog on the
  fast path (:mod:`.harness`: Verilator runs free, both cores), compared with the golden model
  and the cycle model image by image; ``--bench cocotb`` takes the cycle-level cocotb bench
  instead (random idle cycles and back-pressure, Icarus or Verilator).
* ``gxnor sim --random N [--seed S]``: N random networks (seeds S..S+N-1) on the fast path
  (:mod:`.random_nets`); a failing seed replays with ``--random 1 --seed SEED``.
* ``gxnor sim``: the cocotb suite of hand-picked networks, with and without pauses.

Prints one summary line; exit code 1 on a mismatch.
"""

from __future__ import annotations

import json
from pathlib import Path

from gxnor.base import files
from gxnor.base.errors import InputError
from gxnor.export import format

from . import runner

SUITE = [  # (hidden sizes + classes, lanes, input shape, weight zeros, pixel density)
    ([8, 4], 4, (1, 4, 4), 0.5, 0.4),
    ([9, 5, 3], 4, (1, 4, 4), 0.3, 0.3),
    ([1, 2], 2, (1, 3, 3), 0.5, 0.5),
    ([7, 3], 1, (1, 3, 3), 0.5, 0.9),
    ([6, 3], 4, (1, 3, 3), 1.0, 0.5),
    ([6, 3], 4, (1, 3, 3), 0.0, 0.5),
    ([33, 17, 10], 8, (1, 8, 8), 0.6, 0.2),
    ([64, 10], 32, (1, 8, 8), 0.4, 0.5),
]


def _line(name: str, r: dict) -> str:
    return (f"{name}: {r['checked']}/{r['images']} images, {r['mismatches']} mismatches, "
            f"{r['cycles_per_image']:.0f} cycles/image, {r['images_per_s']:.2f} images/s, "
            f"{r['cycles_per_s']:.0f} cycles/s ({r['simulator']})")


def run_suite(out: Path, sim: str, images: int = 20, waves: bool = False) -> list[dict]:
    from gxnor.export.exporter import export_run
    from gxnor.model.random_net import random_images, save_random

    reports = []
    for k, (sizes, lanes, shape, zeros, density) in enumerate(SUITE):
        d = out / f"net{k}"
        save_random(d / "run", sizes, input_shape=shape, seed=k, weight_zeros=zeros)
        export = export_run(d / "run", d / "export", lanes=lanes)
        imgs = random_images(images, shape[1:], density=density, seed=k)
        imgs[len(imgs) // 2] = 0  # an all-zero image, after real ones
        for pause in (0.0, 0.3):
            r = runner.run(export, imgs, d / f"sim-{pause}", sim=sim, idle=pause,
                           stall=pause, seed=k, waves=waves)
            print(_line(f"net{k} {sizes} P={lanes} pause={pause}", r), flush=True)
            reports.append(r)
    return reports


#: a `gxnor sim` output folder, OUT/NAME (NAME: the export's folder name, or "suite")
KIND = files.Kind("sim", "gxnor sim",
                  recognize=lambda f: any((f / d).is_dir() for d in
                                          ("sim_build-icarus", "sim_build-verilator", "suite")))


def main(args) -> int:
    """``gxnor sim``: the output folder OUT/NAME is written atomically and kept when the
    simulation finds mismatches (its logs and waves are what one looks at then)."""
    sim = args.sim or runner.default_simulator()
    random = getattr(args, "random", None)
    name = ("suite" if random is None else "random") if args.export_dir is None \
        else Path(args.export_dir).name
    dest = Path(args.out) / name
    files.check(dest, KIND, [args.export_dir])
    images = export = None
    if args.export_dir is None and (getattr(args, "folds", None) or args.lanes):
        raise InputError("--folds and --lanes apply to an export (gxnor sim EXPORT ...)")
    if args.export_dir is not None:
        # a bad export fails here, before anything is written
        export = format.load(args.export_dir)
        images = format.dataset_images(export, args.images, args.data_dir)
    spec = None
    if images is not None and args.bench == "cocotb":
        if args.lanes or getattr(args, "slices", None):
            raise InputError("the cocotb bench runs the export's lanes; --lanes and "
                             "--slices need --bench fast")
        spec = accelerator_spec(export, None, getattr(args, "folds", None),
                                getattr(args, "input_ports", None),
                                getattr(args, "schedule", None), images)
    failed = None
    with files.output_dir(dest, KIND, [args.export_dir]) as tmp:
        try:
            if random is not None:
                failed = _random(random, args.seed, tmp, getattr(args, "schedule", None)
                                 or "shared")
            elif images is None:
                reports = run_suite(tmp, sim, waves=args.waves)
                total = sum(r["checked"] for r in reports)
                print(f"suite: {len(SUITE)} random networks, {len(reports)} runs, {total} "
                      "images, 0 mismatches")
            elif args.bench == "fast":
                failed = _fast(args.export_dir, export, images, args.lanes, args.jobs, tmp,
                               getattr(args, "folds", None), getattr(args, "input_ports", None),
                               getattr(args, "schedule", None), getattr(args, "slices", None))
            else:
                r = runner.run(args.export_dir, images, tmp, sim=sim, waves=args.waves,
                               pipeline=spec if spec.schedule == "pipelined" else None)
                print(_line(str(args.export_dir), r))
                (tmp / f"summary-{sim}.json").write_text(json.dumps(r, indent=1))
        except runner.SimulationFailed as exc:
            failed = exc
    if args.waves:
        for wave in sorted(dest.rglob("*.fst")) + sorted(dest.rglob("*.vcd")):
            print(f"waves: {wave}")
    if failed is not None:
        print(f"gxnor sim: FAILED: {failed}")
        print(f"logs: {dest}")
        return 1
    return 0


def accelerator_spec(export, lanes, folds, input_ports, schedule, images, slices=None):
    """The accelerator ``gxnor sim`` and ``gxnor run --sim`` build: the shared engine
    (``--lanes``, ``--slices``), or the layer
    pipeline folded by ``--folds`` (``--schedule pipelined`` alone: folded by the planner for
    the ECP5-85F's default budget, as ``gxnor build --board ulx3s-85f`` does)."""
    from gxnor.hw import plan
    from gxnor.hw.spec import AcceleratorSpec, PipelineSpec
    from gxnor.sim import golden

    if folds or schedule == "pipelined":
        if lanes or slices:
            raise InputError("--lanes and --slices are the shared engine's; --folds folds "
                             "the pipeline")
        if folds:
            return PipelineSpec.from_export(export, plan.parse_folds(folds), input_ports or 1)
        events = golden.Network(export.dir).run(images).events
        p = plan.plan(export, events, plan.device_budget("LFE5U-85F"))
        print(p.table())
        if input_ports:
            return PipelineSpec.from_export(export, p.spec.folds, input_ports)
        return p.spec
    if input_ports:
        raise InputError("--input-ports needs the layer pipeline (--folds or --schedule "
                         "pipelined)")
    return AcceleratorSpec.from_export(export, lanes, slices=slices or 1)


def _fast(export_dir: Path, export, images, lanes, jobs: int, out: Path, folds=None,
          input_ports=None, schedule=None, slices=None):
    """The export's images on the fast path; the failure message, or None."""
    from gxnor.sim import golden

    from . import harness

    spec = accelerator_spec(export, lanes, folds, input_ports, schedule, images, slices)
    h = harness.Harness([spec], out / "harness").build()
    res = h.run([images], jobs=jobs)[0]
    msgs = harness.compare(golden.Network(export_dir), spec, images, res)
    summary = {"images": len(images), "checked": len(res.cls), "mismatches": len(msgs),
               "messages": msgs, "schedule": spec.schedule,
               "folds": [[f.lanes, f.ports, f.rate] for f in spec.folds], "jobs": jobs,
               "cycles_per_image": float(res.cycles.mean()) if len(res.cycles) else 0.0,
               "latency_per_image": float(res.latency.mean()) if len(res.latency) else 0.0,
               "sim_cycles": res.sim_cycles, "seconds": res.seconds,
               "build_seconds": h.build_seconds, "images_per_s": len(images) / res.seconds,
               "cycles_per_s": res.sim_cycles / res.seconds, "simulator": "verilator"}
    (out / "summary-fast.json").write_text(json.dumps(summary, indent=1))
    print(f"{export_dir}: {summary['checked']}/{len(images)} images, {len(msgs)} mismatches, "
          f"{summary['cycles_per_image']:.0f} cycles/image (model and counted both agree"
          f"{'' if not msgs else ' NOT'}), {summary['images_per_s']:.0f} images/s (Verilator "
          f"fast harness, {_fold_text(spec)}, {jobs} jobs; build {h.build_seconds:.0f} s)")
    return "\n".join(msgs) if msgs else None


def _fold_text(spec) -> str:
    if spec.schedule == "pipelined":
        return "pipelined " + ",".join(f"{f.lanes}x{f.ports}x{f.rate}" for f in spec.folds)
    return f"P={spec.lanes}" + (f", last layer in {spec.slices} slices" if spec.slices > 1
                                else "")


def _random(n: int, seed: int, out: Path, schedule: str = "shared"):
    from . import random_nets

    report = random_nets.run(list(range(seed, seed + n)), out, schedule=schedule)
    (out / "summary-random.json").write_text(json.dumps(report, indent=1))
    bad = report["failing"]
    print(f"random networks ({schedule}): {report['networks']} networks "
          f"(seeds {seed}..{seed + n - 1}), "
          f"{report['images']} images, {len(bad)} failing"
          + (f": seeds {[f['seed'] for f in bad]}" if bad else ""))
    return "\n".join(f"{f['case']}: {f['messages'][0]}" for f in bad) or None
