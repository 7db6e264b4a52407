"""cocotb testbench for the generated accelerator Verilog (run through gxnor.verify.runner).

One :class:`AcceleratorBench` owns the clock, the input driver, the monitors on the input and
output streams, the golden model and an in-order checker; :class:`PipelineBench` is the same
bench for the layer pipeline (its input: beats of nonzero pixels). The golden model is fed
from the *input monitor* (what the DUT actually accepted), not from the driver's list. Random
idle cycles on the input and random back-pressure on the outputs are parameters.

What is checked per image: class, scores and events per layer against the golden model;
the cycles the accelerator reports against the cycle model (the shared engine's compute
cycles always; the pipeline's latency when the bench does not pause, it depends on when the
inputs came); and, when the bench does not pause, the cycles counted from outside the DUT
(its first and last input transfer and its result, from the first cycle the driver offers
input) against the cycle model's timeline (``gxnor.hw.timing.timeline``).

Parameters come from the environment (set by the runner): ``GXNOR_EXPORT`` (export dir),
``GXNOR_IMAGES`` (.npy of uint8 images), ``GXNOR_IDLE`` / ``GXNOR_STALL`` (probabilities),
``GXNOR_SEED``, ``GXNOR_REPORT`` (JSON summary written at the end), ``GXNOR_PIPELINE`` (a
JSON file of the layer pipeline's folds, input ports and buffers: the DUT is
:class:`~gxnor.hw.pipeline.PipelinedAccelerator`).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import First, RisingEdge
from cocotb.utils import get_sim_time

from gxnor.hw import timing
from gxnor.hw.layouts import beat_layout
from gxnor.hw.pipeline import engine_event
from gxnor.hw.spec import AcceleratorSpec, PipelineSpec, result_layout
from gxnor.sim import golden

from .harness import input_port, input_transfers

PERIOD_NS = 10


def high(signal) -> bool:
    """1 exactly (X/Z, e.g. before Icarus first evaluates a combinational block, count as 0)."""
    return str(signal.value) == "1"


class AcceleratorBench:
    """The shared engine's bench: pixels in, one a transfer. The input stream and what the
    driver offers on it are the fast harness's (:func:`.harness.input_port`,
    :func:`.harness.input_transfers`)."""

    def __init__(self, dut, net: golden.Network, spec, idle: float, stall: float, seed: int):
        self.dut, self.net, self.spec = dut, net, spec
        self.idle, self.stall = idle, stall
        self.paused = bool(idle or stall)
        self.rng = random.Random(seed)
        self.n_pixels = int(np.prod(net.input_shape))
        self.n_classes = net.layers[-1].n_out
        self.result = result_layout(spec)
        port, _ = input_port(spec)
        self.valid, self.ready, self.payload = (
            getattr(dut, f"{port}__{name}") for name in ("valid", "ready", "payload"))
        self.expected: deque = deque()
        self.seen: list[dict] = []  # per image: its events per layer, first and last transfer
        self.seen_pixels: list[int] = []
        self.scores: list[int] = []
        self.checked = 0
        self.errors = 0
        self.messages: list[str] = []
        self.cycles: list[int] = []
        self.origin = None  # the sim time the driver first offered input
        cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())

    async def reset(self):
        d = self.dut
        d.rst.value = 1
        self.valid.value = 0
        d.scores__ready.value = 0
        d.result__ready.value = 0
        for _ in range(3):
            await RisingEdge(d.clk)
        d.rst.value = 0  # the next edge is the first after reset: cycle 0

    def edge(self) -> int:
        """The rising edge now (call right after one), numbered as the cycle model's timeline
        numbers cycles: 0 is the first after reset, the first at which the driver offers
        input."""
        return round((get_sim_time("ns") - self.origin) / PERIOD_NS) - 1

    def transfers_of(self, images: np.ndarray) -> list[list[int]]:
        """Per image, the payloads the driver offers."""
        words, counts = input_transfers(self.spec, images)
        values = [sum(int(w) << (32 * j) for j, w in enumerate(row)) for row in words]
        ends = np.cumsum(counts)
        return [values[e - c:e] for c, e in zip(counts, ends, strict=True)]

    # -- driver ---------------------------------------------------------------------------
    async def send(self, images: np.ndarray):
        self.origin = get_sim_time("ns")  # (reset returns at the edge before cycle 0)
        for image in self.transfers_of(images):
            for word in image:
                while self.idle and self.rng.random() < self.idle:
                    self.valid.value = 0
                    await RisingEdge(self.dut.clk)
                self.payload.value = word
                self.valid.value = 1
                await RisingEdge(self.dut.clk)
                while not high(self.ready):
                    await RisingEdge(self.dut.clk)
        self.valid.value = 0

    # -- monitors -------------------------------------------------------------------------
    async def input_monitor(self):
        first = None  # the edge of the image's first transfer
        while True:
            await RisingEdge(self.dut.clk)
            if high(self.valid) and high(self.ready):
                first = self.edge() if first is None else first
                image = self.accept(int(self.payload.value))
                if image is not None:
                    self._expect(image, first, self.edge())
                    first = None
            elif not high(self.ready):
                await RisingEdge(self.ready)  # the DUT is computing: nothing to see

    def accept(self, payload: int) -> np.ndarray | None:
        """One accepted transfer; the image when it was the image's last."""
        self.seen_pixels.append(payload)
        if len(self.seen_pixels) < self.n_pixels:
            return None
        image, self.seen_pixels = np.array(self.seen_pixels, np.uint8), []
        return image

    def _expect(self, image: np.ndarray, first: int, last: int):
        res = self.net.run(image.reshape(1, *self.net.input_shape))
        self.seen.append({"events": res.events, "first_pixel": first, "last_pixel": last})
        self.expected.append({
            "cls": int(res.classes[0]),
            "scores": [int(s) for s in res.scores[0]],
            "events": list(res.events.image(0)),
        })

    def timeline(self) -> dict:
        """The cycle model's timeline of the images seen so far, as the DUT took them when
        the bench does not pause (the model's rules are causal: image i's times depend on
        images 0 .. i only)."""
        return timing.timeline(self.spec, golden.Events.join(img["events"] for img in self.seen))

    async def output_monitor(self):
        d = self.dut
        while True:
            ready = int(not (self.stall and self.rng.random() < self.stall))
            d.scores__ready.value = ready
            d.result__ready.value = ready
            if not (high(d.scores__valid) or high(d.result__valid)):
                # skip the cycles where nothing comes out, without a Python step each (the
                # outputs are registered: a transfer is possible from the next edge on)
                await First(RisingEdge(d.scores__valid), RisingEdge(d.result__valid))
                continue
            await RisingEdge(d.clk)
            if high(d.scores__valid) and high(d.scores__ready):
                self.scores.append(d.scores__payload.value.to_signed())
            if high(d.result__valid) and high(d.result__ready):
                self._check(int(d.result__payload.value))

    def _check(self, word: int):
        res = self.result.from_bits(word)
        got = {"cls": res.cls, "cycles": res.cycles, "events": list(res.events),
               "scores": self.scores}
        self.scores = []
        if not self.expected:
            self._error(f"result {self.checked} arrived with no image sent: {got}")
            return
        want = self.expected.popleft()
        k = self.checked
        tl = self.timeline()
        if not self.paused or self.spec.schedule == "shared":
            # the shared engine's compute cycles do not depend on when the pixels came
            want["cycles"] = int(tl["cycles"][k])
        if not self.paused:  # counted from outside the DUT
            got.update(first_pixel=self.seen[k]["first_pixel"],
                       last_pixel=self.seen[k]["last_pixel"], result=self.edge())
            want.update({key: int(tl[key][k]) for key in ("first_pixel", "last_pixel",
                                                           "result")})
        for key in want:
            if got[key] != want[key]:
                self._error(f"image {k}: {key} = {got[key]}, "
                            f"{'golden' if key in ('cls', 'scores', 'events') else 'model'} "
                            f"{want[key]}")
        self.cycles.append(got["cycles"])
        self.checked += 1

    def _error(self, msg: str):
        self.errors += 1
        if len(self.messages) < 20:
            self.messages.append(msg)
        self.dut._log.error(msg)


class PipelineBench(AcceleratorBench):
    """The layer pipeline's bench: beats of up to ``input_ports`` nonzero pixels in
    (:func:`gxnor.hw.pipeline.image_beats`, the one encoding), ``last`` on an image's final
    beat; the input monitor decodes the beats back into the image it hands the golden
    model."""

    def __init__(self, dut, net, spec: PipelineSpec, idle, stall, seed):
        super().__init__(dut, net, spec, idle, stall, seed)
        self.beat = beat_layout(engine_event(spec, 0), spec.input_ports)
        self.pixel_of = {int(ix): p for p, ix in enumerate(spec.input_index())}
        self.image = np.zeros(self.n_pixels, np.uint8)

    def accept(self, payload):
        beat = self.beat.from_bits(payload)
        for t in range(int(beat.n)):
            ev = beat.events[t]
            self.image[self.pixel_of[int(ev.index)]] = int(ev.magnitude)
        if not beat.last:
            return None
        image, self.image = self.image, np.zeros(self.n_pixels, np.uint8)
        return image


def bench_spec(net: golden.Network):
    """The DUT's spec: the shared engine of the export, or the layer pipeline that
    ``GXNOR_PIPELINE`` describes."""
    path = os.environ.get("GXNOR_PIPELINE")
    if not path:
        return AcceleratorSpec.from_export(net.export)
    with open(path) as f:
        p = json.load(f)
    return PipelineSpec.from_export(net.export, p["folds"], p["input_ports"],
                                    p["buffers"])


@cocotb.test()
async def accelerator_matches_golden_model(dut):
    """Every image: class, scores, events per layer equal the golden model; the cycles the
    accelerator reports and those counted from outside equal the cycle model."""
    net = golden.Network(os.environ["GXNOR_EXPORT"])
    images = np.load(os.environ["GXNOR_IMAGES"])
    spec = bench_spec(net)
    bench = PipelineBench if spec.schedule == "pipelined" else AcceleratorBench
    tb = bench(dut, net, spec, float(os.environ.get("GXNOR_IDLE", "0")),
               float(os.environ.get("GXNOR_STALL", "0")), int(os.environ.get("GXNOR_SEED", "0")))
    await tb.reset()
    cocotb.start_soon(tb.input_monitor())
    cocotb.start_soon(tb.output_monitor())
    t0 = time.perf_counter()
    start = get_sim_time("ns")
    # watchdog: the cycle model's run of these images, several times over and stretched by
    # the pauses, whatever the handshakes do
    res = net.run(images.reshape(len(images), -1))
    ends = timing.timeline(spec, res.events)["result"]
    slack = 1.0 / max(1e-3, 1.0 - max(tb.idle, tb.stall))
    limit = int((4 * int(ends[-1]) + 2 * len(images) * tb.n_pixels) * slack) + 1000
    await tb.send(images)
    waited = 0
    while tb.checked + tb.errors < len(images) and tb.errors < 50:
        await RisingEdge(dut.clk)
        waited += 1
        if waited > limit:
            tb._error(f"timeout: {tb.checked} of {len(images)} results after {waited} cycles")
            break
    wall = time.perf_counter() - t0
    sim_cycles = (get_sim_time("ns") - start) / PERIOD_NS
    report = {
        "images": len(images), "checked": tb.checked, "mismatches": tb.errors,
        "messages": tb.messages, "cycles_per_image": float(np.mean(tb.cycles or [0])),
        "wall_seconds": wall, "sim_cycles": sim_cycles,
        "images_per_s": len(images) / wall, "cycles_per_s": sim_cycles / wall,
    }
    if os.environ.get("GXNOR_REPORT"):
        with open(os.environ["GXNOR_REPORT"], "w") as f:
            json.dump(report, f, indent=1)
    assert tb.errors == 0, "\n".join(tb.messages)
    assert tb.checked == len(images)
