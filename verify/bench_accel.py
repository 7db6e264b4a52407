"""cocotb testbench for the generated accelerator Verilog (run through gxnor.verify.runner).

One :class:`AcceleratorBench` owns the clock, the pixel-stream driver, the monitors on the
input and output streams, the golden model and an in-order checker. The golden model is fed
from the *input monitor* (the pixels the DUT actually accepted), not from the driver's list.
Random idle cycles on the input and random back-pressure on the outputs are parameters.

Parameters come from the environment (set by the runner): ``GXNOR_EXPORT`` (export dir),
``GXNOR_IMAGES`` (.npy of uint8 images), ``GXNOR_IDLE`` / ``GXNOR_STALL`` (probabilities),
``GXNOR_SEED``, ``GXNOR_REPORT`` (JSON summary written at the end), ``GXNOR_LOAD`` ("1": the
DUT has a ``weights_in`` port and the bench loads the weights through it first).
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
from cocotb.triggers import FallingEdge, RisingEdge

from gxnor.hw import timing
from gxnor.hw.spec import AcceleratorSpec, result_layout
from gxnor.sim import golden


def high(signal) -> bool:
    """1 exactly (X/Z, e.g. before Icarus first evaluates a combinational block, count as 0)."""
    return str(signal.value) == "1"


class AcceleratorBench:
    def __init__(self, dut, net: golden.Network, idle: float, stall: float, seed: int):
        self.dut, self.net = dut, net
        self.idle, self.stall = idle, stall
        self.rng = random.Random(seed)
        self.n_pixels = int(np.prod(net.input_shape))
        self.n_classes = net.layers[-1].n_out
        self.outputs = [ly.n_out for ly in net.layers]
        self.result = result_layout(AcceleratorSpec.from_export(net.export))
        self.expected: deque = deque()
        self.seen_pixels: list[int] = []
        self.scores: list[int] = []
        self.checked = 0
        self.errors = 0
        self.messages: list[str] = []
        self.cycles: list[int] = []
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())

    async def reset(self):
        d = self.dut
        d.rst.value = 1
        d.pixels__valid.value = 0
        d.scores__ready.value = 0
        d.result__ready.value = 0
        for _ in range(3):
            await RisingEdge(d.clk)
        d.rst.value = 0
        await RisingEdge(d.clk)

    # -- driver ---------------------------------------------------------------------------
    async def send(self, images: np.ndarray):
        d = self.dut
        for img in images.reshape(len(images), -1):
            for px in img:
                while self.idle and self.rng.random() < self.idle:
                    d.pixels__valid.value = 0
                    await RisingEdge(d.clk)
                d.pixels__payload.value = int(px)
                d.pixels__valid.value = 1
                await RisingEdge(d.clk)
                while not high(d.pixels__ready):
                    await RisingEdge(d.clk)
        d.pixels__valid.value = 0

    # -- monitors -------------------------------------------------------------------------
    async def input_monitor(self):
        d = self.dut
        while True:
            await RisingEdge(d.clk)
            if high(d.pixels__valid) and high(d.pixels__ready):
                self.seen_pixels.append(int(d.pixels__payload.value))
                if len(self.seen_pixels) == self.n_pixels:
                    self._expect(np.array(self.seen_pixels, np.uint8))
                    self.seen_pixels = []
            elif not high(d.pixels__ready):
                await RisingEdge(d.pixels__ready)  # the DUT is computing: nothing to see

    def _expect(self, image: np.ndarray):
        res = self.net.run(image.reshape(1, *self.net.input_shape))
        events = [int(e[0]) for e in res.events]
        self.expected.append({
            "cls": int(res.classes[0]),
            "scores": [int(s) for s in res.scores[0]],
            "events": events,
            "cycles": int(timing.image_cycles(events, self.outputs, self.net.lanes)),
        })

    async def output_monitor(self):
        d = self.dut
        while True:
            ready = int(not (self.stall and self.rng.random() < self.stall))
            d.scores__ready.value = ready
            d.result__ready.value = ready
            if not (high(d.scores__valid) or high(d.result__valid)):
                # skip the cycles where nothing can come out, without a Python step each
                if high(d.busy):
                    await FallingEdge(d.busy)  # computing: wake when the class is known
                    continue
                if not self.expected:
                    await RisingEdge(d.busy)  # nothing owed: wait for the next image
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
        for key in ("cls", "scores", "events", "cycles"):
            if got[key] != want[key]:
                self._error(f"image {self.checked}: {key} = {got[key]}, golden {want[key]}")
        self.cycles.append(got["cycles"])
        self.checked += 1

    def _error(self, msg: str):
        self.errors += 1
        if len(self.messages) < 20:
            self.messages.append(msg)
        self.dut._log.error(msg)


@cocotb.test()
async def accelerator_matches_golden_model(dut):
    """Every image: class, scores, events per layer and cycle count equal the golden model."""
    net = golden.Network(os.environ["GXNOR_EXPORT"])
    images = np.load(os.environ["GXNOR_IMAGES"])
    tb = AcceleratorBench(dut, net, float(os.environ.get("GXNOR_IDLE", "0")),
                          float(os.environ.get("GXNOR_STALL", "0")),
                          int(os.environ.get("GXNOR_SEED", "0")))
    await tb.reset()
    cocotb.start_soon(tb.input_monitor())
    cocotb.start_soon(tb.output_monitor())
    t0 = time.perf_counter()
    start = cocotb.utils.get_sim_time("ns")
    await tb.send(images)
    # watchdog: far more cycles than the dense array would need, whatever the handshakes do
    dense = timing.dense_cycles([ly.n_in for ly in net.layers], tb.outputs, net.lanes)
    slack = 1.0 / max(1e-3, 1.0 - max(tb.idle, tb.stall))
    limit = int(len(images) * (dense + 2 * tb.n_pixels + 4 * tb.n_classes + 64) * slack) + 1000
    waited = 0
    while tb.checked + tb.errors < len(images) and tb.errors < 50:
        await RisingEdge(dut.clk)
        waited += 1
        if waited > limit:
            tb._error(f"timeout: {tb.checked} of {len(images)} results after {waited} cycles")
            break
    wall = time.perf_counter() - t0
    sim_cycles = (cocotb.utils.get_sim_time("ns") - start) / 10
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
