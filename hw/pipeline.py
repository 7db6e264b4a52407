"""The layer pipeline: one engine per layer, joined by event streams, so that layer l works on
image i+1 while layer l+1 works on image i (the ``pipelined`` schedule; the ``shared`` one is
``gxnor.hw.accelerator``). Built from the same blocks.

::

    events -> [input lists] -> LayerEngine 0 -> [lists] -> LayerEngine 1 -> ... -> LayerEngine L-1
    (beats)                    (sequencer, fetch,            \\-> Classifiers (B) -> scores, result
                                PE array, serializer)

Every boundary between two stages holds B event lists, *buffers* (``PipelineSpec.buffers``;
image i uses buffer i mod B everywhere): the stage before writes one while the stage after
reads another. A buffer is ``FREE``, then ``WRITING`` (from the cycle its producer starts the
image), then ``FULL`` (the image's last outputs are in), then ``FREE`` again once the consumer
has issued every event of it. The last boundary is B :class:`Classifier`\\ s: the scores of
the images, streamed out in order.

The input is already events: a stream of beats (:func:`gxnor.hw.layouts.beat_layout`), up to
``input_ports`` nonzero pixels each, the image's last beat flagged (on a board,
:class:`gxnor.hw.pixels.PixelBeats` turns a pixel stream into beats; the on-chip harness and
sparse RUN frames store them as they are).
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Module, Shape, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from .argmax import Classifier
from .conv import ConvPEArray, ConvSequencer, ConvWeightFetch, tile_words
from .events import PieceEventLists
from .fetch import WeightFetch
from .layouts import MAGNITUDE_BITS, beat_layout, bundle_layout, event_layout, token_layout
from .pe import PEArray, sums_layout
from .sequencer import LayerSequencer, next_buffer
from .serializer import Serializer, score_out_layout
from .spec import CYCLE_BITS, EVENT_COUNT_BITS, PipelineSpec, result_layout


class Buffer(enum.Enum, shape=2):
    """The state of one buffer of a boundary between two stages."""

    FREE = 0
    WRITING = 1
    FULL = 2


def engine_event(spec: PipelineSpec, layer: int) -> data.StructLayout:
    """The events layer ``layer`` reads: its input index (a conv layer's packed:
    :class:`~gxnor.hw.spec.ConvShape`), and the pixel's magnitude (layer 0) or one bit (a
    hidden layer's outputs are +-1)."""
    return event_layout(spec.layers[layer].index_bits, MAGNITUDE_BITS if layer == 0 else 1)


class LayerEngine(wiring.Component):
    """One layer of the pipeline: its two input event lists, a :class:`LayerSequencer`, its
    own weight memory (:class:`WeightFetch`, ``ports`` read ports), a :class:`PEArray` of its
    lanes and a :class:`Serializer` at its rate.

    Members
    -------
    inp: In(stream(bundle)) — appends to input list ``inp_buffer``; always ready.
    inp_buffer: In(range(B)).
    in_clear: In(B) — empty an input list (its producer starts an image in it).
    full, out_free: In(B) — the input lists that hold an image; the output lists it may write.
    count: Out(B x count) — the input lists' counts.
    start, buffer, release, clear: Out — the sequencer's (:class:`LayerSequencer`).
    out: Out(stream(bundle)) — a hidden layer's nonzero outputs, as the next layer's events,
        for its list ``out_buffer``; always ready downstream.
    scores: Out(stream(score)) — the last layer's: the class scores, in class order.
    out_buffer: Out(range(B)); image_done: Out(1) — the serializer's (:class:`Serializer`).
    busy: Out(1) — work in flight.

    Timing: an image's END token leaves the sequencer, reaches the serializer
    ``PIPELINED_PIPELINE`` cycles later and its last outputs leave ``serial +
    Serializer.latency`` after that (``gxnor.hw.timing``).
    """

    EventLists, LayerSequencer, WeightFetch = PieceEventLists, LayerSequencer, WeightFetch
    PEArray, Serializer = PEArray, Serializer

    def __init__(self, spec: PipelineSpec, layer: int):
        self._spec, self._layer = spec, layer
        self._last = layer == len(spec.layers) - 1
        ly = spec.layers[layer]
        event = engine_event(spec, layer)
        nb = spec.buffers
        members = {
            "inp": In(stream.Signature(bundle_layout(event, spec.banks(layer)),
                                       always_ready=True)),
            "inp_buffer": In(range(nb)),
            "in_clear": In(nb),
            "full": In(nb),
            "out_free": In(nb),
            "count": Out(data.ArrayLayout(range(ly.inputs + 1), nb)),
            "start": Out(1),
            "buffer": Out(range(nb)),
            "release": Out(1),
            "clear": Out(nb),
            "out_buffer": Out(range(nb)),
            "image_done": Out(1),
            "busy": Out(1),
        }
        if self._last:
            members["scores"] = Out(stream.Signature(score_out_layout(spec),
                                                     always_ready=True))
        else:
            members["out"] = Out(stream.Signature(
                bundle_layout(engine_event(spec, layer + 1), spec.banks(layer + 1)),
                always_ready=True))
        super().__init__(members)

    def blocks(self, m: Module):
        """The engine's blocks, added to ``m``: (event lists, sequencer, weight fetch, PE
        array, serializer)."""
        spec, layer = self._spec, self._layer
        ly, fold = spec.layers[layer], spec.folds[layer]
        event = engine_event(spec, layer)
        token = self.token(ly.n_out, fold.ports)
        m.submodules.event_lists = ev = self.EventLists([ly.n_in] * spec.buffers, event,
                                                        token, fold.ports, spec.banks(layer))
        m.submodules.sequencer = seq = self.LayerSequencer(
            ly, fold, token, range(ly.n_in + 1), self._last, spec.buffers)
        m.submodules.weight_fetch = fetch = self.WeightFetch(len(ly.words), 2 * fold.lanes,
                                                             token, "rom", ly.words,
                                                             fold.ports)
        m.submodules.pe_array = pe = self.PEArray(fold.lanes, ly.acc_bits, token, fold.ports)
        m.submodules.serializer = ser = self.Serializer(
            spec.engine(layer), pe.sums.payload.shape(), self.out_event,
            hidden=() if self._last else (ly,), scores=self._last, rate=fold.rate,
            out_banks=self.out_banks, lanes=fold.lanes)
        return ev, seq, fetch, pe, ser

    def token(self, neurons: int, ports: int, kernel: int = 0, words: int | None = None,
              taps: int = 1) -> data.Layout:
        """The token layout of this engine (:func:`gxnor.hw.layouts.token_layout`):
        ``neurons`` the output numbering's span, ``ports`` events per token, ``kernel`` a
        convolution's k, ``words`` its weight words (default: the layer's ROM image),
        ``taps`` the P-lane weight words a token's word holds (a convolution's taps)."""
        spec, layer = self._spec, self._layer
        ly, fold = spec.layers[layer], spec.folds[layer]
        event = engine_event(spec, layer)
        return token_layout(depth=ly.inputs, words=len(ly.words) if words is None else words,
                            neurons=neurons, thresholds=-(-ly.n_out // fold.rate),
                            lanes=fold.lanes,
                            index_bits=Shape.cast(event["index"].shape).width,
                            magnitude_bits=Shape.cast(event["magnitude"].shape).width,
                            word_bits=2 * fold.lanes * taps, ports=ports,
                            buffers=spec.buffers, kernel=kernel)

    @property
    def out_event(self) -> data.Layout:
        """The layout of the events the engine emits (the last layer: none; its own)."""
        return engine_event(self._spec, self._layer + (0 if self._last else 1))

    @property
    def out_banks(self) -> int:
        return 1 if self._last else self._spec.banks(self._layer + 1)

    def elaborate(self, platform):
        m = Module()
        ev, seq, fetch, pe, ser = self.blocks(m)

        wiring.connect(m, wiring.flipped(self.inp), ev.pixels)
        wiring.connect(m, seq.tokens, ev.tokens)
        wiring.connect(m, ev.out, fetch.tokens)
        wiring.connect(m, fetch.out, pe.tokens)
        wiring.connect(m, pe.sums, ser.sums)
        if self._last:
            wiring.connect(m, ser.scores, wiring.flipped(self.scores))
        else:
            wiring.connect(m, ser.events, wiring.flipped(self.out))
        m.d.comb += [
            ev.pixel_list.eq(self.inp_buffer),
            ev.clear.eq(self.in_clear),
            self.count.eq(ev.count),
            seq.full.eq(self.full),
            seq.out_free.eq(self.out_free),
            seq.count.eq(ev.count),
            self.start.eq(seq.start),
            self.buffer.eq(seq.buffer),
            self.release.eq(seq.release),
            self.clear.eq(seq.clear),
            self.out_buffer.eq(ser.buffer),
            self.image_done.eq(ser.image_done),
            self.busy.eq(seq.busy | ev.busy | fetch.busy | pe.busy | ser.busy),
        ]
        return m


class ConvEngine(LayerEngine):
    """A convolution layer of the pipeline (``gxnor.hw.conv``): the same edges and image
    protocol as :class:`LayerEngine`, its blocks a :class:`ConvSequencer` (a token per event
    and kernel tap), a :class:`ConvWeightFetch`, a :class:`ConvPEArray` (accumulators in block
    RAM, then the max-pooling drain) and the :class:`Serializer`, which numbers the outputs
    for the next layer. Its event lists hold the input map's nonzero activations."""

    ConvSequencer, ConvWeightFetch, ConvPEArray = ConvSequencer, ConvWeightFetch, ConvPEArray

    def blocks(self, m: Module):
        spec, layer = self._spec, self._layer
        ly, fold = spec.layers[layer], spec.folds[layer]
        shape = ly.conv
        row_step, stride = shape.numbering(spec.layers[layer + 1])
        event = engine_event(spec, layer)
        taps = fold.ports  # a convolution's ports are kernel taps per token
        words = tile_words(ly.words, shape, ly.n_in, fold.lanes, taps)
        token = self.token(max(ly.n_out, stride * ly.n_out), 1, shape.kernel, len(words),
                           taps)
        m.submodules.event_lists = ev = self.EventLists([ly.inputs] * spec.buffers, event,
                                                        token, 1, spec.banks(layer))
        m.submodules.sequencer = seq = self.ConvSequencer(ly, fold, token,
                                                          range(ly.inputs + 1), spec.buffers)
        m.submodules.weight_fetch = fetch = self.ConvWeightFetch(
            shape, taps, len(words), 2 * fold.lanes * taps, token, "rom", words)
        sums = sums_layout(fold.lanes, ly.acc_bits, token)
        m.submodules.pe_array = pe = self.ConvPEArray(fold.lanes, ly.acc_bits, token, shape,
                                                      row_step, stride, sums, fold.rate, taps)
        m.submodules.serializer = ser = self.Serializer(
            spec.engine(layer), sums, self.out_event, hidden=(ly,), scores=False,
            rate=fold.rate, out_banks=self.out_banks, lanes=fold.lanes, stride=stride)
        return ev, seq, fetch, pe, ser


class PipelinedAccelerator(wiring.Component):
    """The whole network as a layer pipeline (:class:`~gxnor.hw.spec.PipelineSpec`).

    Streams: ``events`` in (beats: up to ``input_ports`` nonzero pixels, ``last`` on the
    image's final beat); out ``scores`` (one signed score per class, in class order) then
    ``result`` (class, cycles, events per layer) per image, in image order. The result's
    ``cycles`` is the image's latency: from the cycle after its last beat is accepted to the
    cycle its last score is known (``gxnor.hw.timing.pipeline_timeline``, which has every
    beat, start and result of a run of images cycle by cycle).

    Members besides the streams: ``busy`` (any engine holds work) and ``stages`` (per stage:
    the input, each engine: holds work this cycle).
    """

    LayerEngine, ConvEngine, Classifier = LayerEngine, ConvEngine, Classifier

    def __init__(self, spec: PipelineSpec):
        if not isinstance(spec, PipelineSpec):
            raise TypeError(f"spec must be a PipelineSpec, got {spec!r}")
        self._spec = spec
        super().__init__({
            "events": In(stream.Signature(beat_layout(engine_event(spec, 0),
                                                      spec.input_ports))),
            "scores": Out(stream.Signature(signed(spec.score_bits))),
            "result": Out(stream.Signature(result_layout(spec))),
            "busy": Out(1),
            "stages": Out(len(spec.layers) + 1),
        })

    @property
    def spec(self) -> PipelineSpec:
        return self._spec

    def elaborate(self, platform):
        spec = self._spec
        n_layers, nb = len(spec.layers), spec.buffers
        m = Module()
        engines = []
        for i in range(n_layers):
            engine = self.ConvEngine if spec.layers[i].conv else self.LayerEngine
            m.submodules[f"engine{i}"] = e = engine(spec, i)
            engines.append(e)
        classifiers = []
        for j in range(nb):
            m.submodules[f"classifier{j}"] = c = self.Classifier(spec.num_classes,
                                                                 score_out_layout(spec))
            classifiers.append(c)

        now = Signal(CYCLE_BITS)  # cycles since reset
        m.d.sync += now.eq(now + 1)

        # boundary b (0 .. L): the buffers before engine b (b = L: the classifiers), what each
        # holds, and when its image's last beat went in and the events so far
        meta = data.StructLayout({"t": CYCLE_BITS,
                                  "events": data.ArrayLayout(EVENT_COUNT_BITS, n_layers)})
        state = [Array(Signal(Buffer, name=f"b{b}_buffer{j}") for j in range(nb))
                 for b in range(n_layers + 1)]
        info = [Array(Signal(meta, name=f"b{b}_meta{j}") for j in range(nb))
                for b in range(n_layers + 1)]

        def flags(b, value):
            return Cat(*(state[b][j] == value for j in range(nb)))

        # input: beats into the lists of engine 0, image after image
        fill = Signal(range(nb))
        beat = self.events
        st_fill = state[0][fill]
        m.d.comb += beat.ready.eq(st_fill != Buffer.FULL)
        e0 = engines[0]
        take = beat.valid & beat.ready
        m.d.comb += [e0.inp.valid.eq(take & (beat.payload.n != 0)),
                     e0.inp.payload.n.eq(beat.payload.n),
                     e0.inp_buffer.eq(fill)]
        for s in range(spec.input_ports):
            m.d.comb += e0.inp.payload.events[s].eq(beat.payload.events[s])
        with m.If(take):
            with m.If(st_fill == Buffer.FREE):
                m.d.comb += e0.in_clear.bit_select(fill, 1).eq(1)
            with m.If(beat.payload.last):
                m.d.sync += [st_fill.eq(Buffer.FULL), info[0][fill].t.eq(now),
                             fill.eq(next_buffer(fill, nb))]
            with m.Else():
                m.d.sync += st_fill.eq(Buffer.WRITING)

        # the engines: each takes its input buffer when full and its output buffer when free
        for b, e in enumerate(engines):
            nxt = b + 1
            m.d.comb += [e.full.eq(flags(b, Buffer.FULL)),
                         e.out_free.eq(flags(nxt, Buffer.FREE))]
            if nxt < n_layers:
                wiring.connect(m, e.out, engines[nxt].inp)
                # the clear of the next stage's list is registered: its first write comes
                # PIPELINED_PIPELINE + serializer cycles after the start, and the start's decision
                # (buffer flags -> sequencer) feeding that list's write address was the
                # critical path on the ECP5 (76 MHz)
                m.d.comb += engines[nxt].inp_buffer.eq(e.out_buffer)
                m.d.sync += engines[nxt].in_clear.eq(e.clear)
            with m.If(e.release):
                m.d.sync += state[b][e.buffer].eq(Buffer.FREE)
            with m.If(e.start):
                here, there = info[b][e.buffer], info[nxt][e.buffer]
                m.d.sync += [state[nxt][e.buffer].eq(Buffer.WRITING), there.t.eq(here.t)]
                for k in range(b):
                    m.d.sync += there.events[k].eq(here.events[k])
                m.d.sync += there.events[b].eq(e.count[e.buffer])
            with m.If(e.image_done):
                m.d.sync += state[nxt][e.out_buffer].eq(Buffer.FULL)

        # the last engine's scores to the classifier of their buffer; its latency when done
        last = engines[-1]
        latency = Array(Signal(CYCLE_BITS, name=f"latency{j}") for j in range(nb))
        for j, c in enumerate(classifiers):
            m.d.comb += [c.scores_in.valid.eq(last.scores.valid & (last.out_buffer == j)),
                         c.scores_in.payload.eq(last.scores.payload)]
        with m.If(last.image_done):
            m.d.sync += latency[last.out_buffer].eq(now - info[n_layers][last.out_buffer].t)

        # output: the images in order: scores, then the result
        out = Signal(range(nb))  # the buffer of the next image out
        st_out = state[n_layers][out]
        cls = Array(classifiers)[out]
        m.d.comb += [
            self.scores.valid.eq(cls.scores.valid),
            self.scores.payload.eq(cls.scores.payload),
            self.result.payload.cls.eq(cls.cls),
            self.result.payload.cycles.eq(latency[out]),
            self.result.payload.events.eq(info[n_layers][out].events),
        ]
        for j, c in enumerate(classifiers):
            m.d.comb += c.scores.ready.eq(self.scores.ready & (out == j))
        with m.FSM(name="output"):
            with m.State("WAIT"):
                with m.If(st_out == Buffer.FULL):
                    for j, c in enumerate(classifiers):
                        m.d.comb += c.send.eq(out == j)
                    m.next = "SCORES"
            with m.State("SCORES"):
                with m.If(cls.sent):
                    m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += self.result.valid.eq(1)
                with m.If(self.result.ready):
                    m.d.sync += [st_out.eq(Buffer.FREE), out.eq(next_buffer(out, nb))]
                    m.next = "WAIT"

        busy = [st_fill == Buffer.WRITING] + [e.busy for e in engines]
        m.d.comb += [self.stages.eq(Cat(*busy)), self.busy.eq(self.stages.any())]
        return m


def image_beats(spec: PipelineSpec, images) -> tuple[np.ndarray, np.ndarray]:
    """The input beats of ``images`` (N x n_pixels uint8) for the pipeline of ``spec``: see
    :func:`encode_beats`."""
    return encode_beats(images, engine_event(spec, 0), spec.input_ports, spec.input_index())


def encode_beats(images, event: data.Layout, ports: int,
                 index=None) -> tuple[np.ndarray, np.ndarray]:
    """The one encoding of images as events (:func:`gxnor.hw.layouts.beat_layout` of
    ``event``): each image's nonzero pixels in order, ``ports`` per beat (index, value, sign
    0), the last beat flagged; an all-black image is one empty beat. ``index``: each pixel's
    event index, in flat order (default: its flat position). Returns (the beats as rows of
    little-endian uint32 words, the beats of each image)."""
    images = np.asarray(images, np.uint8).reshape(len(images), -1)
    m = ports
    layout = beat_layout(event, m)
    ev_off, ev_bits = layout["events"].offset, event.size
    n_off, last_off = layout["n"].offset, layout["last"].offset
    idx_off, mag_off = event["index"].offset, event["magnitude"].offset
    words = (layout.size + 31) // 32
    rows, counts = [], np.zeros(len(images), np.int64)
    for i, img in enumerate(images):
        nz = np.flatnonzero(img)
        beats = max(1, -(-len(nz) // m))
        counts[i] = beats
        for b in range(beats):
            chunk = nz[b * m:(b + 1) * m]
            v = (len(chunk) << n_off) | (int(b == beats - 1) << last_off)
            for s, px in enumerate(chunk):
                at = int(px if index is None else index[px])
                v |= ((at << idx_off) | (int(img[px]) << mag_off)) << (ev_off + s * ev_bits)
            rows.append(v)
    out = np.zeros((len(rows), words), np.uint32)
    for r, v in enumerate(rows):
        for k in range(words):
            out[r, k] = (v >> (32 * k)) & 0xFFFFFFFF
    return out, counts
