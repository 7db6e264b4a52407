"""``gxnor bench``: the measurements behind docs/BENCHMARKS.md.

Each benchmark writes JSON under ``--out`` (default build/bench) and prints a Markdown table.
Benchmarks: ``train`` (accuracy, time, memory of DST/STE runs; long; or name single runs;
``table`` only tabulates finished runs), ``golden`` (torch vs
golden agreement, golden throughput, events and cycles on MNIST), ``hw`` (cycles vs the event
bound and the dense array, yosys resource counts for several lane counts), ``verify`` (RTL
simulation speed on the whole MNIST test set, a thousand random networks), ``boards``
(bitstreams per board: resources, Fmax, predicted images/s, wall time), ``cnn`` (the
paper's CNN in the layer pipeline: zero-skipping and tiles per conv layer, the planner's
ULX3S fold and its bitstream).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from gxnor.base import files
from gxnor.base.errors import InputError

# name -> (config, extra `gxnor train` arguments, minutes allowed)
TRAIN_RUNS = {
    "mlp-dst-adam": ("mlp-ice40", [], 15),
    "mlp-dst-norm": ("mlp-ice40", ["--proposal", "norm", "--lr", "0.003",
                                   "--set", "lr_final=0.0001"], 15),
    "mlp-ste": ("mlp-ice40", ["--method", "ste", "--lr", "0.003", "--set", "lr_final=0.0001"],
                15),
    "mlp-wide-dst-adam": ("mlp-ice40-wide", [], 15),
    "mlp-dst-packed": ("mlp-ice40", ["--proposal", "packed", "--lr", "0.003"], 15),
    "mlp-384-dst-adam": ("mlp-ice40-384", [], 15),
    "mlp-3x256-dst-adam": ("mlp-ice40", ["--layers", "fc256,fc256,fc256,fc10", "--epochs",
                                         "300"], 15),
    "cnn-dst-adam": ("cnn-paper", [], 60),
}


def _table(rows: list[dict], cols: list[str]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(out)


def bench_train(out: Path, data_dir, names=None, threads: int | None = None) -> list[dict]:
    """Train the requested runs (each in its own process: its own peak RSS), then tabulate
    every run found under ``out/runs``."""
    for name, (config, extra, minutes) in TRAIN_RUNS.items():
        if names is not None and name not in names:
            continue
        run = out / "runs" / name
        cmd = [sys.executable, "-m", "gxnor.cli", "train", "--config", config, "--out", str(run),
               "--time-limit", str(minutes), "--no-progress", *extra]
        if data_dir:
            cmd += ["--data-dir", str(data_dir)]
        if threads:
            cmd += ["--threads", str(threads)]
        subprocess.run(cmd, check=True)
    rows = []
    for name, (config, _, _) in TRAIN_RUNS.items():
        path = out / "runs" / name / "metrics.json"
        if not path.exists():
            continue
        m = json.loads(path.read_text())
        f = m["final"]
        rows.append({
            "run": name, "config": config, "epochs": m["epochs_done"],
            "threads": m.get("torch_threads"),
            "train min": round(m["train_seconds"] / 60, 1),
            "s/epoch": round(m["train_seconds"] / m["epochs_done"], 1),
            "final test acc %": round(100 * f["test_accuracy"], 2),
            "state B/weight": round(f["state_bytes_per_weight"], 2),
            "peak RSS MB": round(f["peak_rss_mb"]),
            "act. zeros % per layer": " / ".join(f"{100 * a:.0f}" for a in
                                                 f["activation_sparsity"]),
            "input zeros %": round(100 * f["input_sparsity"], 1),
        })
    files.replace_file(out / "train.json", json.dumps(rows, indent=1))
    print(_table(rows, list(rows[0]) if rows else []))
    return rows


def bench_golden(out: Path, run_dir: Path, data_dir, lanes: int = 8) -> dict:
    import torch

    from gxnor.export.exporter import export_run
    from gxnor.hw import timing
    from gxnor.model import checkpoint, data
    from gxnor.sim import golden

    exp = export_run(run_dir, out / "export" / f"{run_dir.name}-p{lanes}", lanes=lanes)
    net, _ = checkpoint.load(run_dir)
    ds = data.load(net.cfg.dataset, data_dir)
    images, labels = ds.test.images, ds.test.labels
    with torch.no_grad():
        torch_cls = np.concatenate([
            net(net.prepare(torch.from_numpy(images[s:s + 1000]))).argmax(1).numpy()
            for s in range(0, len(images), 1000)])
    g = golden.Network(exp)
    g.run(images[:100])  # warm up
    t0 = time.perf_counter()
    reps = 3
    for _ in range(reps):
        res = g.run(images)
    seconds = (time.perf_counter() - t0) / reps
    differ = np.nonzero(res.classes != torch_cls)[0]
    outs = [ly.n_out for ly in g.layers]
    ins = [ly.n_in for ly in g.layers]
    if all(ly.type == "fc" for ly in g.layers):
        cyc = timing.image_cycles(res.events, outs, lanes)
        bound = sum(timing.event_bound(e, n, lanes) for e, n in zip(res.events, outs,
                                                                    strict=True))
        dense = timing.dense_cycles(ins, outs, lanes)
        cycle_stats = {"cycles_mean": float(cyc.mean()), "cycles_max": int(cyc.max()),
                       "event_bound_mean": float(bound.mean()),
                       "overhead_vs_bound_pct": float(100 * (cyc.mean() / bound.mean() - 1)),
                       "dense_cycles": dense, "dense_over_event": float(dense / cyc.mean())}
    else:
        cycle_stats = {"cycles": "conv layers: the layer pipeline's cycles are the cnn "
                                 "benchmark's"}
    result = {
        "run": str(run_dir), "lanes": lanes, "images": len(images),
        "torch_accuracy": float((torch_cls == labels).mean()),
        "golden_accuracy": float((res.classes == labels).mean()),
        "identical_predictions_pct": float(100 * (1 - len(differ) / len(images))),
        "disagreements": [int(i) for i in differ],
        "golden_images_per_s": len(images) / seconds,
        "events_mean": [float(e.mean()) for e in res.events],
        "events_max": [int(e.max()) for e in res.events],
        "gate_open_mean": [float(gop.mean()) for gop in res.gate_open],
        "dense_ops": res.dense_ops,
        **cycle_stats,
    }
    files.replace_file(out / f"golden-{run_dir.name}-p{lanes}.json", json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "disagreements"}, indent=1))
    return result


def bench_hw(out: Path, run_dir: Path, lanes_list=(8, 32, 128)) -> list[dict]:
    """yosys resource counts of the core (synth_ice40 / synth_ecp5, no place and route)."""
    from gxnor.export.exporter import export_run
    from gxnor.hw import boards, rtl

    rows = []
    for lanes in lanes_list:
        exp = export_run(run_dir, out / "export" / f"{run_dir.name}-p{lanes}", lanes=lanes)
        vdir = out / "rtl" / f"p{lanes}"
        vdir.mkdir(parents=True, exist_ok=True)
        spec = rtl.load_spec(exp)
        # the core: weights stay in an external memory (SPRAM / BRAM beside the core)
        (vdir / "gxnor_accel.v").write_text(rtl.verilog_text(spec, external_weights=True))
        for family in (boards.ICE40, boards.ECP5):
            t0 = time.perf_counter()
            cells, note = family.cell_counts(vdir, "gxnor_accel.v", "gxnor_accel")
            rows.append({"lanes": lanes, "family": family.name, "note": note,
                         "seconds": round(time.perf_counter() - t0, 1),
                         "weight_memory_bits": spec.weight_words * spec.word_bits, **cells})
            print(rows[-1], flush=True)
    files.replace_file(out / "hw.json", json.dumps(rows, indent=1))
    return rows


def bench_boards(out: Path, export: Path, data_dir, names=("icebreaker", "ulx3s-85f"),
                 tag: str = "boards") -> list:
    """Bitstreams of the default net per board: resources, Fmax, predicted images/s, wall
    time (the same build as `make bitstream`), into ``out/TAG`` and ``out/TAG.json``."""
    from gxnor.hw import boards

    rows = []
    for name in names:
        t0 = time.perf_counter()
        r = boards.build(export, name, out / tag, data_dir=data_dir)
        tp = r["throughput"]
        rows.append({"board": name, "schedule": r["schedule"], "lanes": r["lanes"],
                     "folds": r["folds"], "input ports": r["input_ports"],
                     "estimate": r.get("plan", {}).get("estimate"),
                     "interval cycles": round(tp["interval_cycles_mean"], 2),
                     "clock MHz": r["clock_hz"] / 1e6,
                     "Fmax MHz": round(r["fmax_hz"] / 1e6, 2), "timing met": r["timing_met"],
                     "resources": {k: v["used"] for k, v in r["resources"].items()},
                     "core images/s": round(tp["core_images_per_s"]),
                     "link images/s": round(tp["link_images_per_s"], 1),
                     "wall s": round(time.perf_counter() - t0, 1)})
        print(rows[-1], flush=True)
    files.replace_file(out / f"{tag}.json", json.dumps(rows, indent=1))
    return rows


def bench_qonnx(out: Path, data_dir, epochs: int = 20) -> dict:
    """A Brevitas user's path, end to end: a ternary 784-256-256-10 MLP defined and trained
    with Brevitas on MNIST, ``export_qonnx``, ``gxnor import``; on the 10,000 test images the
    classes of Brevitas, QONNX's executor, gxnor's golden model and the RTL (fast path); then
    the iCEBreaker bitstream of the imported network."""
    import numpy as np

    from gxnor.export import format, qonnx
    from gxnor.hw.spec import AcceleratorSpec
    from gxnor.model import data
    from gxnor.sim import golden
    from gxnor.verify import brevitas_mlp, harness

    ds = data.load("mnist", data_dir)
    images, labels = ds.test.images, ds.test.labels
    model = brevitas_mlp.make((784, 256, 256, 10), seed=0)
    train_s = brevitas_mlp.train(model, ds.train.images, ds.train.labels, epochs=epochs,
                                 log=print)
    theirs = brevitas_mlp.predict(model, images)
    (out / "qonnx").mkdir(exist_ok=True)
    onnx_file = brevitas_mlp.export(model, out / "qonnx" / "brevitas-mlp.onnx")
    t0 = time.perf_counter()
    exp, _ = qonnx.import_model(onnx_file, out / "export" / "brevitas-mlp", lanes=8)
    import_s = time.perf_counter() - t0
    net = golden.Network(exp)
    ours = net.run(images).classes
    executor = np.argmax(qonnx.run_qonnx(onnx_file, images.astype(np.float32) / 255), axis=1)
    spec = AcceleratorSpec.from_export(format.load(exp))
    h = harness.Harness([spec], out / "verify" / "brevitas-mlp").build()
    res = h.run([images], jobs=2)[0]
    rtl_mismatches = len(harness.compare(net, spec, images, res))
    result = {"epochs": epochs, "train_seconds": round(train_s, 1),
              "import_seconds": round(import_s, 2), "images": len(images),
              "accuracy": {"brevitas": float(np.mean(theirs == labels)),
                           "qonnx_executor": float(np.mean(executor == labels)),
                           "golden": float(np.mean(ours == labels)),
                           "rtl": float(np.mean(res.cls == labels))},
              "identical_predictions": {"golden_vs_brevitas": int(np.sum(ours == theirs)),
                                        "golden_vs_qonnx_executor": int(np.sum(ours == executor)),
                                        "rtl_vs_golden": len(images) - rtl_mismatches},
              "rtl_images_per_s": round(len(images) / res.seconds)}
    print(result, flush=True)
    result["boards"] = bench_boards(out, exp, data_dir, names=("icebreaker",),
                                    tag="boards-brevitas")
    files.replace_file(out / "qonnx.json", json.dumps(result, indent=1))
    return result


#: the benchmark folder: results accumulate over runs (training runs are long)
KIND = files.Kind("bench", "gxnor bench")


def bench_verify(out: Path, run_dir: Path, data_dir, networks: int = 1000) -> dict:
    """RTL simulation speed and depth: the whole MNIST test set through the default net's
    Verilog on the fast path (P = 8 and 32, one and two processes), the cocotb bench for
    comparison, and ``networks`` random networks against the golden model."""
    from gxnor.export import format
    from gxnor.export.exporter import export_run
    from gxnor.hw.spec import AcceleratorSpec
    from gxnor.model import data
    from gxnor.sim import golden
    from gxnor.verify import harness, random_nets, runner

    result: dict = {"fast": [], "cocotb": []}
    images = data.load("mnist", data_dir).test.images
    for lanes in (8, 32):
        exp = export_run(run_dir, out / "export" / f"{run_dir.name}-p{lanes}", lanes=lanes)
        net, spec = golden.Network(exp), AcceleratorSpec.from_export(format.load(exp))
        h = harness.Harness([spec], out / "verify" / f"p{lanes}").build()
        for jobs in (1, 2):
            res = h.run([images], jobs=jobs)[0]
            msgs = harness.compare(net, spec, images, res)
            row = {"lanes": lanes, "jobs": jobs, "images": len(images),
                   "mismatches": len(msgs), "seconds": round(res.seconds, 2),
                   "images_per_s": round(len(images) / res.seconds),
                   "cycles_per_s": round(res.sim_cycles / res.seconds),
                   "cycles_per_image": float(res.cycles.mean()),
                   "build_seconds": round(h.build_seconds, 1)}
            result["fast"].append(row)
            print(row, flush=True)
        if lanes == 8:
            for sim in ("verilator", "icarus"):
                n = 20 if sim == "icarus" else 100
                r = runner.run(exp, images[:n], out / "verify" / f"cocotb-{sim}", sim=sim)
                row = {"simulator": sim, "images": n, "mismatches": r["mismatches"],
                       "images_per_s": round(r["images_per_s"], 2),
                       "cycles_per_s": round(r["cycles_per_s"])}
                result["cocotb"].append(row)
                print(row, flush=True)
    # the layer pipeline (the 256x4x8, 256x4x8, 10x4x1 fold, 4 pixels a beat) on the test set
    from gxnor.hw.spec import PipelineSpec

    exp = out / "export" / f"{run_dir.name}-p8"
    net = golden.Network(exp)
    spec = PipelineSpec.from_export(format.load(exp), [(256, 4, 8), (256, 4, 8), (10, 4, 1)],
                                    4)
    h = harness.Harness([spec], out / "verify" / "pipeline").build()
    res = h.run([images], jobs=2)[0]
    msgs = harness.compare(net, spec, images, res)
    result["pipeline"] = {"folds": "256x4x8,256x4x8,10x4x1", "input_ports": 4, "jobs": 2,
                          "images": len(images), "mismatches": len(msgs),
                          "images_per_s": round(len(images) / res.seconds),
                          "build_seconds": round(h.build_seconds, 1)}
    print(result["pipeline"], flush=True)
    report = random_nets.run(list(range(networks)), out / "verify" / "random")
    result["random"] = report
    pipe = random_nets.run(list(range(networks // 10)), out / "verify" / "random-pipelined",
                           schedule="pipelined")
    result["random_pipelined"] = pipe
    print({k: v for k, v in pipe.items() if k != "failing"}, pipe["failing"][:5])
    files.replace_file(out / "verify.json", json.dumps(result, indent=1))
    print({k: v for k, v in report.items() if k != "failing"}, report["failing"][:5])
    return result


def bench_cnn(out: Path, run_dir: Path, data_dir, images: int = 10000,
              build: bool = True) -> dict:
    """The paper's CNN in the layer pipeline: per conv layer the events, the work with and
    without skipping zero activations, the tokens at one tap and at the planner's tile; the
    planner's fold for the ULX3S-85F with its per-stage cycles (the cycle model, verified
    cycle-exact against the RTL) and its bitstream (``out/boards-cnn``)."""
    from gxnor.export import format
    from gxnor.export.exporter import export_run
    from gxnor.hw import plan
    from gxnor.hw.boards import BOARDS
    from gxnor.hw.conv import tokens_per_event
    from gxnor.sim import golden

    if not (run_dir / "checkpoint.pt").exists():
        raise InputError(f"{run_dir}: no trained CNN (gxnor bench cnn-dst-adam trains it)")
    exp = export_run(run_dir, out / "export" / f"{run_dir.name}-cnn", lanes=8)
    net = format.load(exp)
    ev, source = golden.dataset_events(exp, images, data_dir)
    board = BOARDS["ulx3s-85f"]
    p = plan.plan(net, ev, plan.device_budget(board.device))
    layers = []
    for i, (ly, e) in enumerate(zip(p.spec.layers, ev, strict=True)):
        fold = p.spec.folds[i]
        row = {"layer": i, "type": "conv" if ly.conv else "fc",
               "fold": f"{fold.lanes}x{fold.ports}x{fold.rate}",
               "events mean": round(float(e.mean()), 1), "events max": int(e.max()),
               "inputs (dense)": ly.inputs, "cycles mean": round(p.stages[f"L{i}"]["mean"], 1),
               "cycles max": p.stages[f"L{i}"]["max"]}
        if ly.conv:
            groups = -(-ly.n_out // fold.lanes)
            one = tokens_per_event(ly.conv, 1)
            row.update({
                "tokens/group, 1 tap": round(float(e.mean()) * one, 1),
                "tokens/group, dense": ly.inputs * one,
                "zero-skipping saves": round(ly.inputs / float(e.mean()), 2),
                "tokens/group, tile": round(float(e.mean())
                                            * tokens_per_event(ly.conv, fold.ports), 1),
                "groups": groups})
        layers.append(row)
    clock = board.clock_hz
    result = {"run": str(run_dir), "export": str(exp), "images": len(ev[0]), "events": source,
              "plan": p.to_json(), "layers": layers,
              "interval cycles": round(p.interval, 1),
              "predicted images/s": round(clock / p.interval),
              "clock MHz": clock / 1e6, "estimate LUT4": p.luts, "estimate BRAM": p.brams}
    print(p.table(), flush=True)
    print(_table(layers, list(dict.fromkeys(k for row in layers for k in row))))
    if build:
        result["build"] = bench_boards(out, exp, data_dir, names=("ulx3s-85f",),
                                       tag="boards-cnn")
    files.replace_file(out / "cnn.json", json.dumps(result, indent=1))
    return result


def bench_explore(out: Path, data_dir) -> None:
    """docs/EXPLORE.md: the r sweep of the default MLP on the iCEBreaker."""
    cmd = [sys.executable, "-m", "gxnor.cli", "explore", "--r", "0.25,0.5,0.75,1,1.5,2,3",
           "--epochs", "30", "--jobs", "1", "--threads", "1", "--board", "icebreaker",
           "--out", str(out / "explore-mlp")]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    subprocess.run(cmd, check=True)


def main(args) -> int:
    what = set(args.what or ["train", "golden", "hw", "verify", "boards", "cnn", "qonnx",
                             "explore"])
    unknown = what - {"train", "golden", "hw", "verify", "boards", "cnn", "qonnx", "explore",
                      "table"} - set(TRAIN_RUNS)
    if unknown:
        raise InputError(f"unknown benchmark(s) {sorted(unknown)}")
    out = files.container(args.out, KIND)
    if "train" in what or what & set(TRAIN_RUNS):
        names = None if "train" in what else what & set(TRAIN_RUNS)
        bench_train(out, args.data_dir, names=names, threads=args.threads)
    if "table" in what:
        bench_train(out, args.data_dir, names=set())
    default_run = out / "runs" / "mlp-dst-adam"
    if not (default_run / "checkpoint.pt").exists():
        default_run = Path("runs/mlp-ice40")
    if "golden" in what:
        for run in sorted((out / "runs").glob("*")) or [default_run]:
            bench_golden(out, run, args.data_dir)
        for lanes in (32, 128):
            bench_golden(out, default_run, args.data_dir, lanes=lanes)
    if "hw" in what:
        bench_hw(out, default_run)
    if "verify" in what:
        bench_verify(out, default_run, args.data_dir)
    if "boards" in what:
        from gxnor.export.exporter import export_run

        export = export_run(default_run, out / "export" / f"{default_run.name}-boards", lanes=8)
        bench_boards(out, export, args.data_dir)
    if "cnn" in what:
        cnn_run = out / "runs" / "cnn-dst-adam"
        if not (cnn_run / "checkpoint.pt").exists():
            cnn_run = Path("runs/cnn-paper")
        bench_cnn(out, cnn_run, args.data_dir)
    if "qonnx" in what:
        bench_qonnx(out, args.data_dir)
    if "explore" in what:
        bench_explore(out, args.data_dir)
    return 0
