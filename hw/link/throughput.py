"""The on-chip throughput harness: the core measured on the board itself.

No host link carries what the core does (1M images/s would be 784 MB/s of pixels), so a board
built with ``gxnor build --bench-images N`` keeps the export's first N test images (encoded as
events: :func:`gxnor.hw.pipeline.encode_beats`) and the class the golden model gives each in
block RAM. A ``BENCH`` request (docs/PROTOCOL.md) replays them back to back through the core,
as many images in all as it asks for (image k is stored image k mod N), takes every score and
result the cycle it is offered, checks each class on chip and counts:

* ``images``: results taken;
* ``mismatches``: classes that differ from the stored golden class;
* ``cycles``: from the cycle the first input is offered to the cycle the last result is
  taken, both included;
* ``crc``: CRC-32 (ISO-HDLC, as ``zlib.crc32``) over every result as the RUN answer carries
  it after the scores (class, cycles, events per layer: :func:`gxnor.hw.link.answers.
  result_bits`), each padded with zero bytes to whole ``crc_chunk`` words.

The inputs are offered every cycle and the results taken at once, which is exactly what the
cycle model's timeline assumes (:func:`gxnor.hw.timing.timeline`): :func:`expected` predicts
every counter, so a board's answer is checked to the cycle and to the bit.

The layer pipeline reads the stored beats directly; the shared engine takes pixels, which
:class:`~gxnor.hw.pixels.BeatPixels` expands from one-event beats.
"""

from __future__ import annotations

import zlib

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import crc, data, memory, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from gxnor.base.errors import InputError

from .. import timing
from ..argmax import Classifier
from ..layouts import MAGNITUDE_BITS, beat_layout, event_layout
from ..pipeline import encode_beats, engine_event
from ..pixels import BeatPixels
from ..spec import AcceleratorSpec, PipelineSpec, result_layout
from . import protocol as P
from .answers import result_bits

#: bits of the cycle counter (a u64 on the wire): 2**40 cycles is over an hour at 200 MHz
CYCLE_COUNTER_BITS = 40
#: the counters a run leaves, in the BENCH answer's order
COUNTERS = data.StructLayout({"images": 32, "mismatches": 32, "cycles": CYCLE_COUNTER_BITS,
                              "crc": 32})
#: the CRC the harness computes over the results (zlib.crc32 on the host)
CRC = crc.catalog.CRC32_ISO_HDLC


def input_encoding(spec) -> tuple[data.Layout, int]:
    """(the event layout, events per beat) the harness stores: the pipeline's input beats, or
    one-event beats the shared engine's pixel stream is expanded from."""
    if isinstance(spec, PipelineSpec):
        return engine_event(spec, 0), spec.input_ports
    return event_layout(max(1, (spec.n_pixels - 1).bit_length()), MAGNITUDE_BITS), 1


def encode_images(spec, images):
    """The stored beats of ``images`` (:func:`gxnor.hw.pipeline.encode_beats` in the
    :func:`input_encoding` of ``spec``; a conv first layer's pixels packed by row and
    column)."""
    event, ports = input_encoding(spec)
    index = spec.input_index() if isinstance(spec, PipelineSpec) else None
    return encode_beats(images, event, ports, index)


def result_bytes(spec) -> int:
    """Bytes of one result as the CRC sees it (before padding)."""
    return P.CLASS_BYTES + P.CYCLES_BYTES + P.EVENTS_BYTES * len(spec.layers)


def crc_chunk(spec) -> int:
    """Bytes the CRC takes per cycle: enough that a result is through before the next one
    can come (the scores take ``Classifier.cycles_per_score`` cycles each, then the result)."""
    gap = Classifier.cycles_per_score * spec.num_classes + 1
    return -(-result_bytes(spec) // gap)


def stored_bits(spec, images) -> int:
    """Bits of block RAM the harness's stores take for ``images``."""
    event, ports = input_encoding(spec)
    words, _ = encode_images(spec, images)
    cls_bits = max(1, (max(spec.num_classes, 2) - 1).bit_length())
    return len(words) * beat_layout(event, ports).size + len(images) * cls_bits


class ThroughputHarness(wiring.Component):
    """Replays stored images through an accelerator and counts (see the module docstring).

    Parameters
    ----------
    spec: the accelerator's (:class:`AcceleratorSpec` or :class:`PipelineSpec`).
    images: N x n_pixels uint8, the images it stores (N >= 1).
    expected: N classes (the golden model's) each result is checked against.

    Members
    -------
    run: In(stream(32)) — the images to run; taken when idle, starting the run (the counters
        restart from zero).
    busy: Out(1) — a run is under way (from the cycle after ``run`` is taken).
    counters: Out(COUNTERS) — the run's counts (the last run's while idle).
    events (pipeline) / pixels (shared engine): Out(stream) — to the accelerator's input.
    scores, result: In(stream) — from the accelerator; always taken.

    Timing: the first input is offered ``latency`` cycles after ``run`` is taken.
    """

    latency = 5  # run taken -> read -> its beat -> registered -> into the FIFO -> offered
    #: beats the output FIFO holds: enough that it never runs dry while the core takes one
    #: every cycle (two reads in flight, the output register, and the issue rule counts the
    #: FIFO's level before this cycle's read; at 4, the tests see a bubble)
    FIFO_DEPTH = 5

    def __init__(self, spec, images, expected):
        if not isinstance(spec, AcceleratorSpec | PipelineSpec):
            raise TypeError(f"spec must be an AcceleratorSpec or a PipelineSpec, got {spec!r}")
        images = np.asarray(images, np.uint8).reshape(len(images), -1)
        expected = np.asarray(expected).reshape(-1)
        if len(images) < 1 or images.shape[1] != spec.n_pixels:
            raise InputError(f"the throughput harness needs >= 1 image of {spec.n_pixels} "
                             f"pixels, got an array of shape {images.shape}")
        if len(expected) != len(images) or not ((expected >= 0).all()
                                                 and (expected < spec.num_classes).all()):
            raise InputError(f"the throughput harness needs one class in 0..{spec.num_classes - 1}"
                             f" per image ({len(images)}), got {expected.tolist()[:8]}")
        self._spec = spec
        self._pipelined = isinstance(spec, PipelineSpec)
        self._event, self._ports = input_encoding(spec)
        words, _ = encode_images(spec, images)
        self._beats = [sum(int(w) << (32 * k) for k, w in enumerate(row)) for row in words]
        self._expected = [int(c) for c in expected]
        members = {
            "run": In(stream.Signature(32)),
            "busy": Out(1),
            "counters": Out(COUNTERS),
            "scores": In(stream.Signature(signed(spec.score_bits), always_ready=True)),
            "result": In(stream.Signature(result_layout(spec), always_ready=True)),
        }
        if self._pipelined:
            members["events"] = Out(stream.Signature(beat_layout(self._event, self._ports)))
        else:
            members["pixels"] = Out(stream.Signature(unsigned(MAGNITUDE_BITS)))
        super().__init__(members)

    @property
    def stored(self) -> int:
        """Images in the store."""
        return len(self._expected)

    def elaborate(self, platform):
        spec = self._spec
        m = Module()
        beat_shape = beat_layout(self._event, self._ports)
        m.submodules.beat_store = beats = memory.Memory(
            shape=unsigned(beat_shape.size), depth=len(self._beats), init=self._beats)
        m.submodules.class_store = classes = memory.Memory(
            shape=range(max(spec.num_classes, 2)), depth=len(self._expected),
            init=self._expected)
        rd, crd = beats.read_port(), classes.read_port()
        c = self.counters

        # the input: the stored beats in order, wrapping, until ``to_send`` images are out
        if self._pipelined:
            out = wiring.flipped(self.events)
        else:
            m.submodules.beat_pixels = expand = BeatPixels(spec.n_pixels, self._event)
            wiring.connect(m, expand.pixels, wiring.flipped(self.pixels))
            out = expand.beats
        # The store's output (several block RAMs and the mux tree after them) only goes into
        # registers: a read is issued when the FIFO has room for it and every read in flight,
        # its beat is registered, then written to the FIFO, whose output is a register too
        # (with the store's output deciding when to stop reading, this was the ULX3S build's
        # critical path: 62 MHz, then 73 MHz). Reads issued past the run's last beat are
        # dropped.
        m.submodules.out_fifo = fifo = SyncFIFOBuffered(width=beat_shape.size,
                                                        depth=self.FIFO_DEPTH)
        wiring.connect(m, fifo.r_stream, out)
        addr = Signal(range(max(len(self._beats), 2)))
        to_send, to_take = Signal(32), Signal(32)
        feeding = Signal()
        read = Signal()  # rd.data holds a beat (read last cycle)
        held = Signal()  # ``beat`` holds one
        beat = Signal(beat_shape)
        issue = feeding & (fifo.level + read + held < self.FIFO_DEPTH)
        write = held & feeding
        final = write & beat.last & (to_send == 1)
        m.d.comb += [rd.addr.eq(addr), rd.en.eq(1), fifo.w_en.eq(write),
                     fifo.w_data.eq(beat)]
        m.d.sync += [read.eq(issue), held.eq(read), beat.eq(rd.data)]
        with m.If(issue):
            m.d.sync += addr.eq(Mux(addr == len(self._beats) - 1, 0, addr + 1))
        with m.If(write & beat.last):
            m.d.sync += to_send.eq(to_send - 1)
            with m.If(final):
                m.d.sync += feeding.eq(0)

        # the results: each class against the stored one, each result into the CRC
        cidx = Signal(range(max(self.stored, 2)))
        m.d.comb += crd.addr.eq(cidx)
        chunk = 8 * crc_chunk(spec)
        res = result_bits(self.result.payload)
        n_chunks = -(-len(res) // chunk)
        shift = Signal(n_chunks * chunk)
        left = Signal(range(n_chunks + 1))
        m.submodules.crc = crc_unit = crc.Processor(CRC(data_width=chunk))
        m.d.comb += [crc_unit.data.eq(shift[:chunk]), crc_unit.valid.eq(left != 0),
                     c.crc.eq(crc_unit.crc)]
        with m.If(left != 0):
            m.d.sync += [shift.eq(shift >> chunk), left.eq(left - 1)]
        take = self.result.valid & self.busy & (to_take != 0)
        with m.If(take):
            m.d.sync += [shift.eq(res), left.eq(n_chunks), c.images.eq(c.images + 1),
                         to_take.eq(to_take - 1),
                         cidx.eq(Mux(cidx == self.stored - 1, 0, cidx + 1))]
            with m.If(self.result.payload.cls != crd.data):
                m.d.sync += c.mismatches.eq(c.mismatches + 1)

        # the clock: from the first input offered to the last result taken, both included
        started = Signal()
        with m.If(self.busy & (started | fifo.r_rdy) & (to_take != 0)):
            m.d.sync += c.cycles.eq(c.cycles + 1)
        with m.If(fifo.r_rdy):
            m.d.sync += started.eq(1)

        # a run: wait for the CRC to take the last result
        m.d.comb += self.run.ready.eq(~self.busy)
        with m.If(self.run.valid & self.run.ready):
            m.d.comb += crc_unit.start.eq(1)
            m.d.sync += [self.busy.eq(1), to_send.eq(self.run.payload),
                         to_take.eq(self.run.payload), feeding.eq(self.run.payload != 0),
                         addr.eq(0), cidx.eq(0), started.eq(0),
                         c.images.eq(0), c.mismatches.eq(0), c.cycles.eq(0)]
        with m.Elif(self.busy & (to_take == 0) & ~take & (left == 0) & ~feeding):
            m.d.sync += self.busy.eq(0)
        return m


def expected(spec, events, classes, count: int) -> dict:
    """The counters a run of ``count`` images answers, from the golden model's ``events``
    (per layer, per stored image) and ``classes`` (per stored image): images = count,
    mismatches = 0, cycles from the cycle model's timeline of the replayed sequence, the CRC
    over the predicted results (what the accelerator reports per image included)."""
    n = len(classes)
    order = np.arange(count) % n if n else np.zeros(0, np.int64)
    if count == 0:
        return {"images": 0, "mismatches": 0, "cycles": 0, "crc": 0}
    ev = events.select(order)  # golden.Events: the cycle model needs where they are
    tl = timing.timeline(spec, ev)
    size, chunk = result_bytes(spec), crc_chunk(spec)
    pad = bytes(-size % chunk)
    value = 0
    for k in range(count):
        r = P.RunResult(int(classes[order[k]]), [], int(tl["cycles"][k]),
                        [int(e[k]) for e in ev])
        value = zlib.crc32(r.result_bytes() + pad, value)
    # the timeline counts from reset; an idle core takes its first input the cycle it is
    # offered
    cycles = int(tl["result"][-1] - tl["first_pixel"][0]) + 1
    return {"images": count, "mismatches": 0, "cycles": cycles, "crc": value}

