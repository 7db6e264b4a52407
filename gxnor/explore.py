"""``gxnor explore``: the accuracy / sparsity / speed trade-off of a network, as a sweep.

Each point of the sweep is a network config with one activation step ``r`` and one list of
layers: it is trained (a short schedule is fine), exported for the board's lanes, run through
the golden model on the whole test set (test accuracy of the integer network, mean events
per layer, the fraction of each hidden layer's activations that are zero), and the board's
accelerator is predicted on those events by the cycle model (cycles per image, images/s at
the board's clock: the shared engine, or the layer pipeline folded by the planner, as `gxnor
build` would make it). The weight bits say whether it fits.

Points are independent jobs: ``--jobs N`` runs them in N processes here; ``--ray ADDRESS``
sends them to a Ray cluster (``auto``, ``ray://host:10001`` or ``local`` for a Ray instance
started on this machine) for sweeps that outgrow one machine. The result is ``explore.json``,
``explore.md`` (a table) and ``pareto.png`` (accuracy against images/s, the Pareto front
marked) in the output folder, and each point's run and export under ``points/``.
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from gxnor.base import files
from gxnor.base.errors import InputError

#: the sweep's output folder
KIND = files.Kind("explore", "gxnor explore")


@dataclass(frozen=True)
class Point:
    """One network of the sweep."""

    config: str
    r: float
    layers: tuple  # NetConfig.layers
    epochs: int
    seed: int
    sets: tuple  # --set FIELD=VALUE items
    data: str | None  # a dataset name (gxnor.model.data.dataset_name)

    @property
    def tag(self) -> str:
        from gxnor.model.train import format_layers

        return f"r{self.r:g}_{format_layers(self.layers).replace(',', '-')}"

    def net_config(self):
        """The point's checked NetConfig: the base config, the sweep's own fields, --set."""
        from gxnor.model import nets, train

        cfg = nets.get_config(self.config)
        cfg.layers, cfg.r, cfg.epochs = [tuple(x) for x in self.layers], self.r, self.epochs
        train.apply_sets(cfg, self.sets, RESERVED, " (r, layers and epochs are the sweep's "
                         "own options)")
        if self.data:
            cfg.dataset = self.data
        cfg.name = f"{self.config}-{self.tag}"
        return cfg.validate()


#: the fields a point sets itself (not through --set)
RESERVED = ("name", "layers", "r", "epochs")


def run_point(point: Point, board_name: str, out: Path, threads: int, data_dir=None) -> dict:
    """Train, export, evaluate and predict one point; returns its row (also written as the
    point's ``row.json``)."""
    import torch

    before = torch.get_num_threads()
    try:
        return _run_point(point, board_name, out, threads, data_dir)
    finally:
        torch.set_num_threads(before)


def _run_point(point: Point, board_name: str, out: Path, threads: int, data_dir) -> dict:
    import numpy as np
    import torch

    from gxnor.export import exporter
    from gxnor.hw.boards import board
    from gxnor.hw.boards.build import choose_spec, predicted_throughput
    from gxnor.model import data, train
    from gxnor.sim import golden

    torch.set_num_threads(max(1, threads))
    b = board(board_name)
    cfg = point.net_config()
    base = Path(out) / "points" / point.tag
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    summary = train.train(cfg, base / "run", seed=point.seed, data_dir=data_dir,
                          progress=False, threads=threads, log=lambda s: None)
    train_s = time.perf_counter() - t0
    exp = exporter.export_run(base / "run", base / "export", lanes=b.lanes)
    net = golden.Network(exp)
    ds = data.load(cfg.dataset, data_dir)
    res = net.run(ds.test.images)
    accuracy = float(np.mean(res.classes == ds.test.labels))
    events = res.events
    first = events.select(slice(0, 1000))
    spec, _ = choose_spec(exp, b, first)
    tp = predicted_throughput(spec, first, "the export's test images",
                              b.clock_hz, b.baud)
    n_in = [ly.n_in for ly in net.layers]
    row = {
        "tag": point.tag, "r": point.r, "layers": [list(x) for x in point.layers],
        "epochs": point.epochs, "train_seconds": round(train_s, 1),
        "torch_accuracy": summary["final"]["test_accuracy"], "accuracy": accuracy,
        "events_mean": [float(e.mean()) for e in events],
        "hidden_zero_fraction": [1.0 - float(e.mean()) / n
                                 for e, n in zip(events[1:], n_in[1:], strict=True)],
        "weight_sparsity": summary["final"]["weight_sparsity"],
        "weight_bits": int(sum(ly.n_in * ly.n_out for ly in net.layers)
                           * net.export.manifest["weights"]["code_bits"]),
        "board": b.name, "schedule": "pipelined" if hasattr(spec, "folds") else "shared",
        "cycles_per_image": float(tp["interval_cycles_mean"]),
        "images_per_s": float(tp["core_images_per_s"]),
    }
    files.replace_file(base / "row.json", json.dumps(row, indent=1))
    return row


def _ray_map(address: str, points: list[Point], board_name: str, out: Path, threads: int,
             data_dir) -> list[dict]:
    try:
        import ray
    except ImportError:
        from gxnor.base.errors import Unavailable

        raise Unavailable("--ray needs Ray: pip install 'gxnor[ray]'") from None
    if address == "local":
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=threads)(run_point)
        refs = [task.remote(p, board_name, str(out), threads, data_dir) for p in points]
        return ray.get(refs)
    finally:
        ray.shutdown()


def pareto(rows: list[dict]) -> list[bool]:
    """Which rows no other row beats in both accuracy and images/s."""
    front = []
    for r in rows:
        dominated = any(o["accuracy"] >= r["accuracy"] and o["images_per_s"] >= r["images_per_s"]
                        and (o["accuracy"] > r["accuracy"] or o["images_per_s"] > r["images_per_s"])
                        for o in rows)
        front.append(not dominated)
    return front


def table(rows: list[dict]) -> str:
    from gxnor.model.train import format_layers

    front = pareto(rows)
    head = ("| point | r | layers | accuracy % | events / layer (mean) | hidden zeros % | "
            "cycles/image | images/s | weight kbit | Pareto |")
    lines = [head, "|" + "---|" * 10]
    for r, f in zip(rows, front, strict=True):
        layers = format_layers(r["layers"])
        lines.append(
            f"| {r['tag']} | {r['r']:g} | {layers} | {100 * r['accuracy']:.2f} | "
            f"{' / '.join(f'{e:.0f}' for e in r['events_mean'])} | "
            f"{' / '.join(f'{100 * z:.0f}' for z in r['hidden_zero_fraction'])} | "
            f"{r['cycles_per_image']:.0f} | {r['images_per_s']:,.0f} | "
            f"{r['weight_bits'] / 1000:.0f} | {'yes' if f else ''} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front = pareto(rows)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [r["images_per_s"] for r in rows]
    ys = [100 * r["accuracy"] for r in rows]
    ax.scatter(xs, ys, c=["tab:red" if f else "tab:gray" for f in front], zorder=3)
    for r, x, y in zip(rows, xs, ys, strict=True):
        ax.annotate(f"r={r['r']:g}", (x, y), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    pts = sorted((x, y) for x, y, f in zip(xs, ys, front, strict=True) if f)
    if pts:
        ax.plot(*zip(*pts, strict=True), "--", color="tab:red", label="Pareto front")
        ax.legend()
    ax.set_xlabel(f"predicted images/s ({rows[0]['board']}, cycle model)")
    ax.set_ylabel("test accuracy % (golden model)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_list(text: str, what: str, conv=float) -> list:
    try:
        values = [conv(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{what} {text!r}: expected a comma-separated list") from None
    if not values:
        raise InputError(f"{what} {text!r}: empty")
    return values


def main(args) -> int:
    from gxnor.hw.boards import board
    from gxnor.model import data, nets, train

    b = board(args.board)
    cfg = nets.get_config(args.config)
    rs = parse_list(args.r, "--r")
    for r in rs:
        if not (math.isfinite(r) and r >= 0):
            raise InputError(f"--r {args.r!r}: {r} is not a number >= 0")
    layer_sets = [tuple(train.parse_layers(s)) for s in args.layers] if args.layers \
        else [tuple(tuple(x) for x in cfg.layers)]
    epochs = args.epochs or cfg.epochs
    dataset = data.dataset_name(args.data) if args.data else None
    points = [Point(args.config, r, ls, epochs, args.seed, tuple(args.set), dataset)
              for ls in layer_sets for r in rs]
    for p in points:  # every point's config is checked before any training starts
        p.net_config()
    out = files.container(args.out, KIND)
    jobs = max(1, min(args.jobs, len(points)))
    threads = args.threads or max(1, (os.cpu_count() or 1) // jobs)
    print(f"{len(points)} points on {b.name}, {epochs} epochs each, "
          + (f"on Ray ({args.ray})" if args.ray else f"{jobs} processes x {threads} threads"),
          flush=True)
    t0 = time.perf_counter()
    if args.ray:
        rows = _ray_map(args.ray, points, b.name, out, threads, args.data_dir)
    elif jobs == 1:
        rows = [run_point(p, b.name, out, threads, args.data_dir) for p in points]
    else:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run_point, p, b.name, out, threads, args.data_dir)
                       for p in points]
            rows = [f.result() for f in futures]
    wall = time.perf_counter() - t0
    rows.sort(key=lambda r: (r["layers"], r["r"]))
    report = {"board": b.name, "config": args.config, "epochs": epochs, "seed": args.seed,
              "wall_seconds": round(wall, 1), "points": rows}
    files.replace_file(out / "explore.json", json.dumps(report, indent=1))
    md = table(rows)
    files.replace_file(out / "explore.md", md + "\n")
    plot(rows, out / "pareto.png",
         f"{args.config}: accuracy vs speed ({epochs} epochs per point)")
    print(md)
    print(f"{len(points)} points in {wall:.0f} s -> {out}/explore.md, explore.json, pareto.png")
    return 0
