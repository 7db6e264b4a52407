"""Run the accelerator in Amaranth's simulator (async testbench API) on a batch of images."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from .accelerator import Accelerator
from .fetch import sliced_read
from .pipeline import PipelinedAccelerator, image_beats
from .spec import AcceleratorSpec


async def send_image(ctx, dut, image) -> None:
    """Testbench step: offer ``image``'s pixels to ``dut.pixels`` until each is taken."""
    for px in np.asarray(image, np.uint8).reshape(-1):
        ctx.set(dut.pixels.payload, int(px))
        ctx.set(dut.pixels.valid, 1)
        await ctx.tick().until(dut.pixels.ready)
    ctx.set(dut.pixels.valid, 0)


def _beats(dut, spec, images) -> tuple[list, np.ndarray]:
    """The pipeline's input beats of ``images`` as payloads of ``dut.events``, and the beats
    of each image."""
    words, counts = image_beats(spec, np.asarray(images).reshape(len(images), -1))
    shape = dut.events.payload.shape()
    return ([shape.from_bits(sum(int(w) << (32 * k) for k, w in enumerate(row)))
             for row in words], counts)


def run_images(spec: AcceleratorSpec, images: np.ndarray, *, idle_every: int = 0,
               stall_every: int = 0, vcd: str | None = None, load: bool = False,
               external: bool = False) -> list[dict]:
    """Feed ``images`` (uint8, any shape with n_pixels per image) through the accelerator of
    ``spec`` (either schedule: pixels, or the pipeline's beats).

    ``idle_every`` > 0 inserts an idle cycle on the pixel stream after every so many pixels;
    ``stall_every`` > 0 holds ``ready`` low on the outputs every so many cycles. ``load``: the
    accelerator starts with an empty weight memory that is filled through ``weights_in``
    first (the SPRAM path). Returns per
    image: ``cls``, ``scores`` (list), ``cycles``, ``events`` (list per layer).
    """
    flat = np.asarray(images, dtype=np.uint8).reshape(len(images), -1)
    if flat.shape[1] != spec.n_pixels:
        raise ValueError(f"images have {flat.shape[1]} pixels, the network takes "
                         f"{spec.n_pixels}")
    if spec.schedule == "pipelined":
        if load or external:
            raise ValueError("the layer pipeline keeps its weights in ROMs of its engines")
        dut = PipelinedAccelerator(spec)
        transfers, counts = _beats(dut, spec, flat)
        port = dut.events
        inputs = np.split(np.arange(len(transfers)), np.cumsum(counts)[:-1])
        inputs = [[transfers[t] for t in idx] for idx in inputs]
    else:
        dut = Accelerator(spec, loadable=load, external_weights=external)
        port = dut.pixels
        inputs = [[int(px) for px in img] for img in flat]
    results: list[dict] = []

    async def feed(ctx):
        if load:
            for addr, word in enumerate(spec.words):
                ctx.set(dut.weights_in.payload, {"addr": addr, "data": word})
                ctx.set(dut.weights_in.valid, 1)
                await ctx.tick().until(dut.weights_in.ready)
            ctx.set(dut.weights_in.valid, 0)
        count = 0
        for img in inputs:
            for px in img:
                count += 1
                if idle_every and count % idle_every == 0:
                    ctx.set(port.valid, 0)
                    await ctx.tick()
                ctx.set(port.payload, px)
                ctx.set(port.valid, 1)
                await ctx.tick().until(port.ready)
            ctx.set(port.valid, 0)

    async def collect(ctx):
        cycle = 0
        scores: list[int] = []
        while len(results) < len(flat):
            stall = bool(stall_every) and cycle % stall_every == stall_every - 1
            ctx.set(dut.scores.ready, not stall)
            ctx.set(dut.result.ready, not stall)
            await ctx.delay(1e-9)  # let combinational valid settle
            if not stall and ctx.get(dut.scores.valid):
                scores.append(ctx.get(dut.scores.payload))
            if not stall and ctx.get(dut.result.valid):
                res = ctx.get(dut.result.payload)
                results.append({
                    "cls": int(res.cls),
                    "scores": scores,
                    "cycles": int(res.cycles),
                    "events": [int(e) for e in res.events],
                })
                scores = []
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    if external:
        words = spec.words

        async def memory(ctx):  # a synchronous ROM outside the accelerator
            async for _, _, addr in ctx.tick().sample(dut.weight_addr):
                ctx.set(dut.weight_data, sliced_read(words, [addr[t] for t in range(
                    spec.slices)], spec.word_bits))

        sim.add_process(memory)
    sim.add_testbench(feed, background=True)
    sim.add_testbench(collect)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return results


def trace_pipeline(spec, images: np.ndarray, max_cycles: int = 100_000) -> dict:
    """Run ``images`` through the layer pipeline of ``spec`` with beats offered every cycle and
    results taken at once, and count from outside: the cycles (from the first after reset)
    each beat and each result was seen, the engines busy in each cycle, and the beats of
    each image. Raises if the results are not all out within ``max_cycles``."""
    dut = PipelinedAccelerator(spec)
    beats, counts = _beats(dut, spec, np.asarray(images, dtype=np.uint8))
    seen = {"beat": [], "result": [], "engines_busy": [], "beats_per_image": counts}

    async def bench(ctx):
        ctx.set(dut.scores.ready, 1)
        ctx.set(dut.result.ready, 1)
        k = cycle = 0
        while len(seen["result"]) < len(images):
            if k < len(beats):
                ctx.set(dut.events.payload, beats[k])
            ctx.set(dut.events.valid, k < len(beats))
            await ctx.delay(1e-9)
            if k < len(beats) and ctx.get(dut.events.ready):
                seen["beat"].append(cycle)
                k += 1
            if ctx.get(dut.result.valid):
                seen["result"].append(cycle)
            seen["engines_busy"].append(bin(ctx.get(dut.stages) >> 1).count("1"))
            await ctx.tick()
            cycle += 1
            if cycle >= max_cycles:
                raise RuntimeError(f"{len(seen['result'])} of {len(images)} results in "
                                   f"{max_cycles} cycles")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return seen


def image_edges(counts) -> tuple[np.ndarray, np.ndarray]:
    """The positions of each image's first and last beat among all beats (``counts``: the
    beats of each image)."""
    ends = np.cumsum(counts) - 1
    return np.concatenate([[0], ends[:-1] + 1]), ends
