"""The fast RTL path: the accelerators' Verilog under a Verilator C++ harness that runs whole
image sets without waking Python, on both cores.

The cocotb benches (:mod:`.bench_accel`, :mod:`.bench_link`) wake Python on every clock edge
they care about: right for handshakes and back-pressure, 3 images/s for the default net. Here
the simulator runs free: a generated C++ ``main`` feeds each image's pixels back to back, takes
every score and result the cycle it is offered, counts clock edges itself (from the cycle after
an image's last pixel is accepted to the cycle its result is valid) and writes everything to a
file; Python compares it with the golden model and the cycle model afterwards, all images at
once.

Several accelerators can share one build (:class:`Bank`): the random-network suite compiles a
few dozen networks into one Verilator model instead of one model each. The images are split
over processes (``jobs``), each simulating its share from reset.
"""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring

from gxnor.base.errors import StageFailed
from gxnor.hw import timing, toolchain
from gxnor.hw.accelerator import Accelerator
from gxnor.hw.layouts import MAGNITUDE_BITS, beat_layout
from gxnor.hw.pipeline import PipelinedAccelerator, engine_event, image_beats
from gxnor.hw.spec import AcceleratorSpec, PipelineSpec, result_layout
from gxnor.sim import golden

from . import runner

TOP = "bank"
RESET_CYCLES = 4


def accelerator(a):
    """``a`` itself if it is an accelerator (any variant), else the accelerator of spec ``a``
    (:class:`Accelerator` or :class:`PipelinedAccelerator` by its schedule)."""
    if isinstance(a, (Accelerator, PipelinedAccelerator)):
        return a
    return PipelinedAccelerator(a) if a.schedule == "pipelined" else Accelerator(a)


def input_port(spec) -> tuple[str, int]:
    """The accelerator's input stream and its payload width: pixels (shared) or beats
    (pipelined)."""
    if spec.schedule == "pipelined":
        return "events", beat_layout(engine_event(spec, 0), spec.input_ports).size
    return "pixels", MAGNITUDE_BITS


def input_transfers(spec, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the harness offers on the input stream: (payloads as rows of uint32 words, the
    transfers of each image): pixels one by one, or the pipeline's beats."""
    images = np.asarray(images, np.uint8).reshape(len(images), -1)
    if spec.schedule != "pipelined":
        return images.reshape(-1, 1).astype(np.uint32), np.full(len(images), spec.n_pixels)
    words, counts = image_beats(spec, images)
    return words, counts


class Bank(wiring.Component):
    """Accelerators side by side in one design: accelerator i's ports are ``d{i}_<port>``.
    ``accelerators``: specs (an accelerator each, :func:`accelerator`) or accelerators (any
    variant)."""

    def __init__(self, accelerators: list):
        self._accels = [accelerator(a) for a in accelerators]
        members = {}
        for i, acc in enumerate(self._accels):
            for name, member in acc.signature.members.items():
                members[f"d{i}_{name}"] = member
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for i, acc in enumerate(self._accels):
            m.submodules[f"d{i}"] = acc
            for name, member in acc.signature.members.items():
                port, inner = getattr(self, f"d{i}_{name}"), getattr(acc, name)
                if member.is_port:
                    m.d.comb += inner.eq(port) if member.flow == wiring.In else port.eq(inner)
                elif member.flow == wiring.In:
                    wiring.connect(m, wiring.flipped(port), inner)
                else:
                    wiring.connect(m, inner, wiring.flipped(port))
        return m


def _cname(port: str) -> str:
    """Verilator's C++ name of an Amaranth port (``__`` is escaped as ``___05F``)."""
    return port.replace("__", "___05F")


def _write_bits(name: str, width: int, src: str) -> str:
    """C++ that drives port ``name`` of ``width`` bits from uint32_t ``src``[] (least word
    first)."""
    if width <= 32:
        return f"top->{name} = {src}[0];"
    if width <= 64:
        return f"top->{name} = (uint64_t){src}[0] | ((uint64_t){src}[1] << 32);"
    words = (width + 31) // 32
    return f"for (int k = 0; k < {words}; k++) top->{name}[k] = {src}[k];"


def _read_bits(name: str, width: int) -> str:
    """C++ that copies port ``name`` of ``width`` bits into uint32_t w[] (least word first)."""
    if width <= 32:
        return f"w[0] = (uint32_t)top->{name};"
    if width <= 64:
        return (f"w[0] = (uint32_t)top->{name}; w[1] = (uint32_t)(top->{name} >> 32);")
    words = (width + 31) // 32
    return f"for (int k = 0; k < {words}; k++) w[k] = top->{name}[k];"


@dataclass
class Target:
    """One accelerator of a bank and its images."""

    spec: AcceleratorSpec | PipelineSpec
    images: np.ndarray  # (N, n_pixels) uint8

    @property
    def result_words(self) -> int:
        return (result_layout(self.spec).size + 31) // 32


@dataclass
class Results:
    """What the harness saw, per image of one accelerator."""

    cls: np.ndarray
    scores: np.ndarray  # (N, classes) int64
    cycles: np.ndarray  # the accelerator's own count
    events: np.ndarray  # (N, layers)
    latency: np.ndarray  # counted by the harness: last pixel -> result valid
    first_pixel: np.ndarray  # the cycles (from the first after reset) the harness saw:
    last_pixel: np.ndarray  # the image's first and last pixel accepted,
    result: np.ndarray  # its result valid
    job: np.ndarray = None  # the process that simulated it (each starts from reset)
    sim_cycles: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def harness_cpp(specs: list) -> str:
    """The C++ ``main`` for a bank of ``specs``."""
    per_dut = []
    for i, spec in enumerate(specs):
        p = f"d{i}_"
        rbits = result_layout(spec).size
        sbits = spec.score_bits
        port, ibits = input_port(spec)
        iw = (ibits + 31) // 32
        per_dut.append(f"""
    {{  // accelerator {i}
        Dut& d = duts[{i}];
        if (phase == 0) {{  // drive: the next image's input, back to back; take every output
            bool send = d.ks < d.n;
            top->{_cname(p + port + "__valid")} = send;
            const uint32_t* w = send ? &d.img[d.at * {iw}] : d.zero;
            {_write_bits(_cname(p + port + "__payload"), ibits, "w")}
            top->{_cname(p + "scores__ready")} = 1;
            top->{_cname(p + "result__ready")} = 1;
        }} else {{  // sample, before the edge
            if (top->{_cname(p + port + "__valid")} && top->{_cname(p + port + "__ready")}) {{
                if (d.p == 0) d.first[d.ks] = cycle;
                d.p++; d.at++;
                if (d.p == d.count[d.ks]) {{ d.last[d.ks] = cycle; d.ks++; d.p = 0; }}
            }}
            if (top->{_cname(p + "scores__valid")}) {{
                uint64_t raw = top->{_cname(p + "scores__payload")};
                int64_t s = (int64_t)(raw << {64 - sbits}) >> {64 - sbits};  // sign-extend
                if (d.ns < {spec.num_classes}) d.scores[d.ns] = s;
                d.ns++;
            }}
            if (top->{_cname(p + "result__valid")}) {{
                uint32_t w[{(rbits + 31) // 32 + 2}] = {{0}};
                {_read_bits(_cname(p + "result__payload"), rbits)}
                fwrite(w, 4, {(rbits + 31) // 32}, d.out);
                fwrite(d.scores, 8, {spec.num_classes}, d.out);
                uint64_t when[3] = {{d.first[d.kr], d.last[d.kr], cycle}};
                fwrite(when, 8, 3, d.out);
                d.kr++; d.ns = 0;
            }}
        }}
    }}""")
    body = "\n".join(per_dut)
    n = len(specs)
    return f"""// generated by gxnor.verify.harness: {n} accelerator(s); images in, results out
#include "V{TOP}.h"
#include "verilated.h"
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

struct Dut {{
    long n = 0, ks = 0, kr = 0, p = 0, ns = 0;  // images sent, results taken, transfer, score
    size_t at = 0;  // the next input transfer
    std::vector<uint64_t> first, last;  // the cycles each image's first / last transfer went in
    std::vector<uint32_t> img, count;  // the transfers (payload words), per image how many
    uint32_t zero[64] = {{0}};
    int64_t scores[256];
    FILE* out = nullptr;
}};

static bool load(const char* path, void* data, size_t bytes) {{
    FILE* f = fopen(path, "rb");
    bool ok = f && fread(data, 1, bytes, f) == bytes;
    if (f) fclose(f);
    if (!ok) perror(path);
    return ok;
}}

int main(int argc, char** argv) {{
    // argv[1]: a config file, one line per accelerator: images transfers words_per_transfer
    // input_file counts_file result_file; argv[2]: the cycle limit
    if (argc < 3) {{ fprintf(stderr, "usage: harness CONFIG MAX_CYCLES\\n"); return 2; }}
    Dut duts[{n}];
    FILE* cfg = fopen(argv[1], "r");
    if (!cfg) {{ perror(argv[1]); return 2; }}
    for (int i = 0; i < {n}; i++) {{
        long n_img, n_tr, n_w; char ipath[4096], cpath[4096], opath[4096];
        if (fscanf(cfg, "%ld %ld %ld %4095s %4095s %4095s", &n_img, &n_tr, &n_w, ipath, cpath,
                   opath) != 6) return 2;
        duts[i].n = n_img;
        duts[i].first.resize(n_img);
        duts[i].last.resize(n_img);
        duts[i].img.resize((size_t)n_tr * n_w);
        duts[i].count.resize(n_img);
        if (!load(ipath, duts[i].img.data(), duts[i].img.size() * 4)) return 2;
        if (!load(cpath, duts[i].count.data(), duts[i].count.size() * 4)) return 2;
        duts[i].out = fopen(opath, "wb");
        if (!duts[i].out) {{ perror(opath); return 2; }}
    }}
    fclose(cfg);
    uint64_t max_cycles = strtoull(argv[2], nullptr, 10);
    VerilatedContext* ctx = new VerilatedContext;
    V{TOP}* top = new V{TOP}{{ctx}};
    top->rst = 1;
    for (int c = 0; c < {RESET_CYCLES}; c++) {{
        top->clk = 0; top->eval(); top->clk = 1; top->eval();
    }}
    top->rst = 0;
    uint64_t cycle = 0;
    for (; cycle < max_cycles; cycle++) {{
        bool busy = false;
        for (int i = 0; i < {n}; i++) busy |= duts[i].kr < duts[i].n;
        if (!busy) break;
        for (int phase = 0; phase < 2; phase++) {{
            if (phase == 1) {{ top->clk = 0; top->eval(); }}
{body}
        }}
        top->clk = 1; top->eval();
    }}
    for (int i = 0; i < {n}; i++) fclose(duts[i].out);
    printf("%llu\\n", (unsigned long long)cycle);
    top->final();
    delete top;
    delete ctx;
    return cycle >= max_cycles ? 3 : 0;
}}
"""


class Harness:
    """A built Verilator model of a bank of accelerators and its C++ harness."""

    def __init__(self, accelerators: list, build_dir: Path, optimize: bool = True):
        """``accelerators``: specs or :class:`Accelerator` instances (see :class:`Bank`).
        ``optimize``: compile the C++ for speed (a long run: a whole test set) rather than
        for a quick build (many networks, few images each: about 4x faster to build)."""
        self.accelerators = list(accelerators)
        self.specs = [a.spec if isinstance(a, (Accelerator, PipelinedAccelerator)) else a
                      for a in self.accelerators]
        self.optimize = optimize
        self.dir = Path(build_dir).resolve()
        self.binary = self.dir / "obj_dir" / f"V{TOP}"
        self.build_seconds = 0.0

    def build(self) -> Harness:
        """Verilog (Amaranth), C++ (Verilator), one executable."""
        toolchain.setup()
        t0 = time.perf_counter()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / f"{TOP}.v").write_text(runner.verilator_text(
            verilog.convert(Bank(self.accelerators), name=TOP, emit_src=False)))
        (self.dir / "harness.cpp").write_text(harness_cpp(self.specs))
        self.verilog_seconds = time.perf_counter() - t0
        cmd = ["verilator", "--cc", "--exe", "--build", "-O3", "--x-assign", "fast",
               "--x-initial", "fast", "--noassert", "-Wno-fatal", "-Wno-WIDTHEXPAND",
               "-Wno-WIDTHTRUNC", "--output-split", "0", "--output-split-cfuncs", "0",
               "-j", "2", "--top-module", TOP, f"{TOP}.v", "harness.cpp"]
        level = "-O2" if self.optimize else "-O0"
        cmd += ["-CFLAGS", level, "-MAKEFLAGS",
                f"OPT_FAST={level} OPT_SLOW={level} OPT_GLOBAL={level}"]
        done = subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True)
        if done.returncode != 0:
            (self.dir / "build.log").write_text(done.stdout + done.stderr)
            raise StageFailed(f"Verilator failed; see {self.dir / 'build.log'}:\n"
                              f"{done.stderr[-2000:]}")
        self.build_seconds = time.perf_counter() - t0
        return self

    def run(self, images: list[np.ndarray], jobs: int = 2) -> list[Results]:
        """Simulate ``images[i]`` (N_i x n_pixels uint8) on accelerator i, split over ``jobs``
        processes; returns per accelerator what it answered and when."""
        jobs = max(1, min(jobs, max(len(im) for im in images)))
        chunks = [[np.array_split(np.asarray(im, np.uint8).reshape(len(im), -1), jobs)[j]
                   for im in images] for j in range(jobs)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(jobs) as pool:
            outs = list(pool.map(lambda j: self._run_job(j, chunks[j]), range(jobs)))
        seconds = time.perf_counter() - t0
        results = []
        for i in range(len(self.specs)):
            parts = [o[0][i] for o in outs]
            res = Results(*(np.concatenate([p[k] for p in parts]) for k in range(8)))
            res.job = np.concatenate([np.full(len(p[0]), j) for j, p in enumerate(parts)])
            res.sim_cycles = sum(o[1] for o in outs)
            res.seconds = seconds
            results.append(res)
        return results

    def _run_job(self, job: int, images: list[np.ndarray]):
        folder = self.dir / f"job{job}"
        folder.mkdir(exist_ok=True)
        lines, limit = [], 0
        for i, (spec, im) in enumerate(zip(self.specs, images, strict=True)):
            words, counts = input_transfers(spec, im)
            (folder / f"input{i}.bin").write_bytes(np.ascontiguousarray(words, "<u4").tobytes())
            (folder / f"counts{i}.bin").write_bytes(np.asarray(counts, "<u4").tobytes())
            (folder / f"results{i}.bin").unlink(missing_ok=True)
            lines.append(f"{len(im)} {len(words)} {words.shape[1]} input{i}.bin counts{i}.bin "
                         f"results{i}.bin")
            # twice the run of as many images with every input an event
            dense = golden.Events.dense([ly.inputs for ly in spec.layers], max(len(im), 1))
            limit = max(limit, 2 * int(timing.timeline(spec, dense)["result"][-1]) + 1000)
        (folder / "config.txt").write_text("\n".join(lines) + "\n")
        done = subprocess.run([str(self.binary), "config.txt", str(limit)], cwd=folder,
                              capture_output=True, text=True)
        if done.returncode not in (0, 3):
            raise StageFailed(f"the harness failed (exit {done.returncode}): {done.stderr}")
        cycles = int(done.stdout.split()[0]) if done.stdout.strip() else 0
        return [self._parse(folder / f"results{i}.bin", spec)
                for i, spec in enumerate(self.specs)], cycles

    @staticmethod
    def _parse(path: Path, spec: AcceleratorSpec):
        layout = result_layout(spec)
        words = (layout.size + 31) // 32
        dt = np.dtype([("r", "<u4", (words,)), ("s", "<i8", (spec.num_classes,)),
                       ("when", "<u8", (3,))])
        raw = np.fromfile(path, dtype=dt) if path.exists() else np.zeros(0, dt)
        cls, cyc, ev = [], [], []
        for row in raw["r"]:
            res = layout.from_bits(sum(int(w) << (32 * k) for k, w in enumerate(row)))
            cls.append(res.cls)
            cyc.append(res.cycles)
            ev.append(list(res.events))
        n_layers = len(spec.layers)
        when = raw["when"].astype(np.int64)
        return (np.array(cls, np.int64), raw["s"].astype(np.int64),
                np.array(cyc, np.int64), np.array(ev, np.int64).reshape(-1, n_layers),
                when[:, 2] - when[:, 1], when[:, 0], when[:, 1], when[:, 2])


def compare(net, spec: AcceleratorSpec, images: np.ndarray, res: Results,
            limit: int = 20) -> list[str]:
    """Mismatches of ``res`` against the golden model (classes, scores, events) and the cycle
    model (the accelerator's own count and the harness's count): a message per image, at most
    ``limit``; an empty list when everything agrees."""
    want = net.run(np.asarray(images, np.uint8).reshape(len(images), -1))
    events = np.stack(want.events, 1) if want.events else np.zeros((len(images), 0))
    msgs = []
    if len(res.cls) != len(images):
        msgs.append(f"{len(res.cls)} results for {len(images)} images (the harness timed out?)")
        return msgs
    # the timeline of each process's images, as the cycle model has it
    timeline = {k: np.zeros(len(images), np.int64)
                for k in ("first_pixel", "last_pixel", "result", "cycles")}
    for j in np.unique(res.job):
        idx = np.flatnonzero(res.job == j)
        tl = timing.timeline(spec, want.events.select(idx))
        for k in timeline:
            timeline[k][idx] = tl[k]
    checks = [("class", res.cls, want.classes), ("scores", res.scores, want.scores),
              ("events", res.events, events),
              ("cycles (accelerator)", res.cycles, timeline["cycles"]),
              ("first pixel (harness)", res.first_pixel, timeline["first_pixel"]),
              ("last pixel (harness)", res.last_pixel, timeline["last_pixel"]),
              ("result (harness)", res.result, timeline["result"])]
    bad = np.zeros(len(images), bool)
    for _, got, exp in checks:
        g, e = np.asarray(got), np.asarray(exp)
        bad |= (g != e).reshape(len(images), -1).any(1)
    for k in np.flatnonzero(bad)[:limit]:
        parts = [f"{name} {np.asarray(got)[k].tolist()} != {np.asarray(exp)[k].tolist()}"
                 for name, got, exp in checks if np.any(np.asarray(got)[k] != np.asarray(exp)[k])]
        msgs.append(f"image {k}: " + "; ".join(parts))
    if bad.sum() > limit:
        msgs.append(f"... {int(bad.sum())} images in all")
    return msgs


def cpu_jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))
