"""``gxnor sim``: the cocotb verification from the command line.

With an export directory: its dataset's first N test images through the Verilog. Without:
the random-network suite (shapes, sparsities, lane counts), each network with random images.
Prints images, mismatches, cycles per image and simulator speed; exit code 1 on a mismatch.
"""

from __future__ import annotations

import json
from pathlib import Path

from gxnor.base import files
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
    name = "suite" if args.export_dir is None else Path(args.export_dir).name
    dest = Path(args.out) / name
    files.check(dest, KIND, [args.export_dir])
    images = None
    if args.export_dir is not None:
        # a bad export fails here, before anything is written
        images = format.dataset_images(format.load(args.export_dir), args.images,
                                       args.data_dir)
    failed = None
    with files.output_dir(dest, KIND, [args.export_dir]) as tmp:
        try:
            if images is None:
                reports = run_suite(tmp, sim, waves=args.waves)
                total = sum(r["checked"] for r in reports)
                print(f"suite: {len(SUITE)} random networks, {len(reports)} runs, {total} "
                      "images, 0 mismatches")
            else:
                r = runner.run(args.export_dir, images, tmp, sim=sim, waves=args.waves)
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
