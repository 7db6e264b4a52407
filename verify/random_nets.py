"""Differential testing at scale: random networks through the RTL against the golden model.

Each case is drawn from its own seed (so a failing one is replayed with ``gxnor sim --random 1
--seed SEED``): 1 to 4 fully connected layers of 1 to 300 neurons (widths 1 and 7 and widths
just off the lane grid on purpose), 1 to 64 lanes, weights from all-zero to all-nonzero with
all-zero and all-nonzero input columns, batch-norm scales of both signs and zero; images sparse
and dense, an all-zero image and a saturating one (every pixel 255). Cases share Verilator
builds (:class:`gxnor.verify.harness.Bank`, ``per_build`` networks each).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gxnor.export import format
from gxnor.hw.spec import AcceleratorSpec, PipelineSpec, conv_taps

from . import harness

LANES = (1, 2, 3, 4, 7, 8, 16, 32, 64)
PORTS = (1, 2, 4, 8)
INPUT_PORTS = (1, 2, 4, 8, 16)
#: a case's work bound: dense lane-updates per image (keeps a shared build's slowest net fast)
MAX_WORK = 60_000


@dataclass
class Case:
    seed: int
    sizes: list[int]  # hidden widths + classes
    lanes: int
    input_shape: tuple[int, int, int]
    weight_zeros: float
    special_columns: float
    images: int
    #: the layer pipeline: (lanes, ports, rate) per layer, the input's events per beat, the
    #: event lists per boundary
    folds: list | None = None
    input_ports: int = 1
    buffers: int = 3
    #: conv and pool layers before the fc ones (``("conv", channels, kernel)``,
    #: ``("pool", size)``): a CNN, which runs as a layer pipeline
    convs: list = ()

    def describe(self) -> str:
        fold = (f"P={self.lanes}" if self.folds is None else
                "pipelined " + ",".join("x".join(map(str, f)) for f in self.folds)
                + f" m={self.input_ports} B={self.buffers}")
        return (f"seed {self.seed}: {self.input_shape} -> {[*self.convs, *self.sizes]}, "
                f"{fold}, weight zeros {self.weight_zeros:.2f}")


def draw(seed: int, images: int = 6, schedule: str = "shared") -> Case:
    """The random network of ``seed``; ``schedule="pipelined"``: the same network as a layer
    pipeline with random folds (lanes, ports, rate per layer; events per input beat)."""
    rng = np.random.default_rng(seed)
    lanes = int(rng.choice(LANES))
    depth = int(rng.integers(1, 5))

    def width():
        kind = rng.random()
        if kind < 0.15:
            return 1
        if kind < 0.25:
            return 7
        if kind < 0.45:  # just off the lane grid
            return max(1, lanes * int(rng.integers(1, 5)) + int(rng.choice([-1, 1])))
        return int(rng.integers(1, 301))

    while True:
        sizes = [width() for _ in range(depth - 1)] + [int(rng.integers(2, 11))]
        h, w = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        fan_in = [h * w, *sizes[:-1]]
        work = sum(i * -(-o // lanes) for i, o in zip(fan_in, sizes, strict=True))
        if work <= MAX_WORK:
            break
        lanes = int(rng.choice([x for x in LANES if x > lanes] or [64]))
    zeros = float(rng.choice([0.0, 1.0, rng.random()]))
    case = Case(seed, sizes, lanes, (1, h, w), zeros, float(rng.choice([0.0, 0.15])), images)
    if schedule == "pipelined":
        # a stream of its own: the shared case of a seed stays what it was
        frng = np.random.default_rng([seed, 1])
        folds = []
        for k, n_out in enumerate(sizes):
            p = int(frng.choice([x for x in LANES if x <= 2 * n_out] or [1]))
            rates = [r for r in (1, 2, 4, 8) if p % r == 0] if k < len(sizes) - 1 else [1]
            folds.append((p, int(frng.choice(PORTS)), int(frng.choice(rates))))
        case.folds, case.input_ports = folds, int(frng.choice(INPUT_PORTS))
        case.buffers = int(frng.choice([2, 3, 3, 4]))
    return case


def draw_cnn(seed: int, images: int = 6) -> Case:
    """A random CNN as a layer pipeline: 1 or 2 conv layers (kernel 1 to 5, 1 to 6 channels,
    max-pool 1 to 3 where the map allows, cropped rows and columns included) on a 1- or
    2-channel map of 5 to 12 rows and columns, then 0 or 1 hidden fc layer and the classes;
    random lanes (off the channel grid too), kernel taps per token and serializer rates."""
    rng = np.random.default_rng([seed, 2])
    c, h, w = int(rng.integers(1, 3)), int(rng.integers(5, 13)), int(rng.integers(5, 13))
    convs, folds = [], []
    hh, ww = h, w
    for _ in range(int(rng.integers(1, 3))):
        k = int(rng.integers(1, min(5, hh, ww) + 1))
        out = int(rng.integers(1, 7))
        hh, ww = hh - k + 1, ww - k + 1
        convs.append(("conv", out, k))
        pool = int(rng.integers(1, 4))
        if pool > 1 and hh >= pool and ww >= pool:
            convs.append(("pool", pool))
            hh, ww = hh // pool, ww // pool
        p = int(rng.choice([x for x in LANES if x <= 2 * out] or [1]))
        # ports: kernel taps per token, part of a row (1 .. k) or whole rows (k .. k^2)
        folds.append((p, int(rng.choice(conv_taps(k))),
                      int(rng.choice([r for r in (1, 2, 4) if p % r == 0]))))
    sizes = ([int(rng.integers(1, 20))] if rng.random() < 0.5 else []) \
        + [int(rng.integers(2, 6))]
    for k, n_out in enumerate(sizes):
        p = int(rng.choice([x for x in LANES if x <= 2 * n_out] or [1]))
        rates = [r for r in (1, 2) if p % r == 0] if k < len(sizes) - 1 else [1]
        folds.append((p, int(rng.choice(PORTS)), int(rng.choice(rates))))
    zeros = float(rng.choice([0.0, 1.0, rng.random()]))
    return Case(seed, sizes, 4, (c, h, w), zeros, float(rng.choice([0.0, 0.15])), images,
                folds, 1, int(rng.choice([2, 3, 4])), convs)


def case_images(case: Case) -> np.ndarray:
    from gxnor.model.random_net import random_images

    rng = np.random.default_rng(case.seed + 1)
    shape = case.input_shape if case.input_shape[0] > 1 else case.input_shape[1:]
    imgs = random_images(case.images, shape, density=float(rng.random()), seed=case.seed)
    imgs[len(imgs) // 2] = 0  # no events at all
    imgs[-1] = 255  # every pixel fires at the largest magnitude
    return imgs


def make(case: Case, folder: Path):
    """Export the case's network into ``folder``: (golden network, spec)."""
    from gxnor.export.exporter import export_run
    from gxnor.model.random_net import save_random
    from gxnor.sim import golden

    save_random(folder / "run", [*case.convs, *case.sizes], input_shape=case.input_shape,
                seed=case.seed,
                weight_zeros=case.weight_zeros, special_columns=case.special_columns)
    export = export_run(folder / "run", folder / "export", lanes=case.lanes)
    net = format.load(export)
    spec = AcceleratorSpec.from_export(net) if case.folds is None else \
        PipelineSpec.from_export(net, case.folds, case.input_ports, case.buffers)
    return golden.Network(export), spec


def run(seeds: list[int], out: Path, *, per_build: int = 40, images: int = 6, jobs: int = 2,
        schedule: str = "shared", log=print) -> dict:
    """Every seed's network through the RTL (``schedule``: shared, pipelined, or cnn: random
    CNNs as layer pipelines, :func:`draw_cnn`); returns the counts and the failing seeds."""
    out = Path(out)
    failures, checked_images = [], 0
    t0 = time.perf_counter()
    build_seconds = 0.0
    for start in range(0, len(seeds), per_build):
        batch = [draw_cnn(s, images) if schedule == "cnn" else draw(s, images, schedule)
                 for s in seeds[start:start + per_build]]
        made = [make(c, out / f"case{c.seed}") for c in batch]
        imgs = [case_images(c) for c in batch]
        h = harness.Harness([spec for _, spec in made], out / f"build{start}",
                            optimize=False).build()
        build_seconds += h.build_seconds
        results = h.run(imgs, jobs=jobs)
        for c, (net, spec), im, res in zip(batch, made, imgs, results, strict=True):
            msgs = harness.compare(net, spec, im, res, limit=3)
            checked_images += len(im)
            if msgs:
                failures.append({"seed": c.seed, "case": c.describe(), "messages": msgs})
                log(f"FAILED {c.describe()}: {msgs[0]}")
        log(f"random networks {start + len(batch)}/{len(seeds)}: {len(failures)} failing "
            f"({time.perf_counter() - t0:.0f} s)")
    return {"networks": len(seeds), "images": checked_images, "failing": failures,
            "seconds": time.perf_counter() - t0, "build_seconds": build_seconds}
