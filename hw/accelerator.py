"""The event-driven gated-XNOR accelerator for an N-layer fully connected network: the shared
schedule, one engine time-multiplexed over the layers.

Blocks, joined by streams (docs/ARCHITECTURE.md has the picture; ``gxnor.hw.timing`` the exact
timing contract, built from the blocks' latencies)::

    pixels -> PixelEvents -> EventLists (list 0)
    Sequencer -> EventLists -> WeightFetch -> PEArray -> Serializer -> EventLists (list 1-l%2)
                  (tokens)      (+ event)     (+ word)    (sums)     \\-> Classifier -> scores
                                                                      (last layer)

1. **PixelEvents** writes only nonzero pixels into event list 0: a layer's input arrives
   already compacted as (index, magnitude, sign) events, and zero activations cost no cycle.
2. **Sequencer**: for each layer and each group of P output neurons, one token per event of
   the layer's list, back to back, then an END token.
3. **EventLists** / **WeightFetch**: the event, then its weight word (P two-bit codes at
   layer base + group * n_in + index); every block RAM output goes straight into a register.
4. **PEArray**: P gated-XNOR accumulators; END hands the group's sums on.
5. **Serializer**: one neuron per cycle through the threshold unit (hidden layers: nonzero
   outputs are appended to the other event list) or the score unit (last layer), overlapped
   with the next group's accumulation.
6. **Classifier**: the argmax, and the scores out in class order.

Streams: ``pixels`` in (one uint8 per pixel, row-major); out: ``scores`` (one signed score per
class, in class order) then ``result`` (class, cycle count, events per layer) per image.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import timing
from .argmax import Classifier
from .events import EventLists
from .fetch import WeightFetch, load_layout
from .layouts import INPUT_LISTS, LISTS, MAGNITUDE_BITS, event_layout, token_layout
from .pe import PEArray
from .pixels import PixelEvents
from .sequencer import Sequencer
from .serializer import Serializer, score_out_layout
from .spec import AcceleratorSpec, result_layout

#: which blocks hold work in a cycle (the ``stages`` port): the rows of
#: ``gxnor.hw.timing.schedule``
STAGES = data.StructLayout({"issue": 1, "event_lists": 1, "weight_fetch": 1, "pe_array": 1,
                           "serializer": 1})


class Accelerator(wiring.Component):
    """The whole inference engine for one exported fully connected network.

    Parameters
    ----------
    spec: :class:`AcceleratorSpec` (``AcceleratorSpec.from_export(format.load(dir))``).
    loadable: no initial weights; add the ``weights_in`` stream that writes them
        (address = layer base + group * n_in + input, the order of the export's ROM images).
    external_weights: no weight memory inside; ``weight_addr`` out (an address per slice of
        the word: ``spec.slices``), ``weight_data`` in, read synchronously (data the cycle
        after the address), e.g. from SPRAM in a board top.

    Members (besides the streams): ``busy`` (an image is being computed) and ``stages`` (which
    blocks hold work this cycle: for waveforms, on-chip debugging and the timing tests).

    Timing: per image, exactly ``gxnor.hw.timing.image_cycles(events, **folding(spec))``
    cycles (``events``: the golden model's, which know where each layer's events are: a layer
    starts while the last group of the one before is written) from the cycle after the last
    pixel is accepted until the class is known; input
    takes one cycle per pixel, output two cycles per score plus one for the result (with
    ``ready`` held high): ``gxnor.hw.timing.io_cycles``.
    """

    #: the blocks it is built from (a variant overrides one, e.g. the mutation tests)
    PixelEvents, EventLists, Sequencer = PixelEvents, EventLists, Sequencer
    WeightFetch, PEArray, Serializer, Classifier = WeightFetch, PEArray, Serializer, Classifier

    def __init__(self, spec: AcceleratorSpec, *, loadable: bool = False,
                 external_weights: bool = False):
        if not isinstance(spec, AcceleratorSpec):
            raise TypeError(f"spec must be an AcceleratorSpec, got {spec!r}")
        if spec.lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {spec.lanes}")
        if loadable and external_weights:
            raise ValueError("loadable and external_weights exclude each other: an external "
                             "weight memory is loaded by whoever owns it")
        self._spec = spec
        self._memory = "loadable" if loadable else "external" if external_weights else "rom"
        ports = {
            "pixels": In(stream.Signature(unsigned(MAGNITUDE_BITS))),
            "scores": Out(stream.Signature(signed(spec.score_bits))),
            "result": Out(stream.Signature(result_layout(spec))),
            "busy": Out(1),
            "stages": Out(STAGES),
        }
        if loadable:
            ports["weights_in"] = In(stream.Signature(load_layout(spec.weight_words,
                                                                  spec.word_bits)))
        if external_weights:
            ports["weight_addr"] = Out(data.ArrayLayout(range(max(spec.weight_words, 2)),
                                                         spec.slices))
            ports["weight_data"] = In(spec.word_bits)
        super().__init__(ports)

    @property
    def spec(self) -> AcceleratorSpec:
        return self._spec

    def elaborate(self, platform):
        spec = self._spec
        m = Module()
        index_bits = max(1, (spec.event_depth - 1).bit_length())
        event = event_layout(index_bits)
        k = spec.ports
        token = token_layout(depth=spec.event_depth, words=spec.weight_words,
                             neurons=max(ly.n_out for ly in spec.layers),
                             thresholds=sum(ly.n_out for ly in spec.layers[:-1]),
                             lanes=spec.lanes, index_bits=index_bits, word_bits=spec.word_bits,
                             ports=k, slots=spec.slices)

        hidden = max((ly.n_in for ly in spec.layers[1:]), default=1)
        depths = [spec.n_pixels if i in INPUT_LISTS else hidden for i in range(LISTS)]
        m.submodules.pixel_events = pix = self.PixelEvents(spec.n_pixels, event, spec.banks)
        # banks: the hidden lists take up to r events a cycle, the input lists one; the lists
        # the sliced last layer reads are kept in S copies
        list_banks = [k if i in INPUT_LISTS else spec.banks for i in range(LISTS)]
        wide = self.Sequencer.reads(len(spec.layers) - 1)
        m.submodules.event_lists = ev = self.EventLists(depths, event, token, k, spec.banks,
                                                        spec.slices, wide, list_banks)
        m.submodules.sequencer = seq = self.Sequencer(spec, token, range(max(depths) + 1),
                                                      settle=timing.SETTLE)
        m.submodules.weight_fetch = fetch = self.WeightFetch(
            spec.weight_words, spec.word_bits, token, self._memory, spec.words, k, spec.slices)
        m.submodules.pe_array = pe = self.PEArray(spec.lanes, spec.acc_bits, token, k,
                                                  spec.slices)
        m.submodules.serializer = ser = self.Serializer(spec, pe.sums.payload.shape(), event)
        m.submodules.classifier = cls = self.Classifier(spec.num_classes,
                                                        score_out_layout(spec))

        # pixels -> an input event list
        wiring.connect(m, wiring.flipped(self.pixels), pix.pixels)
        wiring.connect(m, pix.events, ev.pixels)
        # the engine: sequencer -> event lists -> weight fetch -> PE array -> serializer
        wiring.connect(m, seq.tokens, ev.tokens)
        wiring.connect(m, ev.out, fetch.tokens)
        wiring.connect(m, fetch.out, pe.tokens)
        wiring.connect(m, pe.sums, ser.sums)
        # hidden layers' outputs back into the event lists; the scores to the classifier
        wiring.connect(m, ser.events, ev.feedback)
        wiring.connect(m, ser.scores, cls.scores_in)
        wiring.connect(m, cls.scores, wiring.flipped(self.scores))
        # the weight memory's ports
        if self._memory == "loadable":
            wiring.connect(m, wiring.flipped(self.weights_in), fetch.weights_in)
        if self._memory == "external":
            m.d.comb += [self.weight_addr.eq(fetch.weight_addr),
                         fetch.weight_data.eq(self.weight_data)]

        # the sequencer picks the lists and waits for the blocks downstream to run dry; a
        # group's outputs go to the list its tokens named (the next layer may have begun)
        clear_input = Signal(LISTS)
        m.d.comb += [
            ev.dst.eq(self.Sequencer.writes(ser.buffer)),
            seq.committed.eq(ser.image_done),
            ev.clear.eq(seq.clear | clear_input),
            seq.count.eq(ev.count),
            seq.idle.eq(~(ev.busy | fetch.busy | pe.busy | ser.busy)),
            self.busy.eq(seq.busy),
            self.stages.issue.eq(seq.tokens.valid),
            self.stages.event_lists.eq(ev.busy),
            self.stages.weight_fetch.eq(fetch.busy),
            self.stages.pe_array.eq(pe.tokens.valid),
            self.stages.serializer.eq(ser.busy),
            self.result.payload.cls.eq(cls.cls),
            self.result.payload.cycles.eq(seq.cycles),
            self.result.payload.events.eq(seq.events),
        ]

        # input: the pixels of alternate images fill the two input lists; a list takes the
        # next image once the engine is through with the image it holds
        full = Signal(2)  # the input list holds a whole image the engine has not finished
        fill = Signal()  # the list the pixels go to
        m.d.comb += ev.pixel_list.eq(Mux(fill, INPUT_LISTS[1], INPUT_LISTS[0]))
        with m.FSM(name="input"):
            with m.State("WAIT"):  # for the list to be free, then empty it
                with m.If(~full.bit_select(fill, 1)):
                    m.d.comb += clear_input.bit_select(ev.pixel_list, 1).eq(1)
                    m.next = "FILL"
            with m.State("FILL"):
                m.d.comb += pix.enable.eq(1)
                with m.If(pix.last):
                    m.d.sync += [full.bit_select(fill, 1).eq(1), fill.eq(~fill)]
                    m.next = "WAIT"

        # compute: one image at a time, from the cycle after its last pixel is in (starting in
        # that very cycle put the pixel input's logic in front of the sequencer's: the
        # iCE40's critical path, 31.9 MHz); then its scores out and its result
        use = Signal()  # the input list of the image being computed
        m.d.comb += seq.input_list.eq(Mux(use, INPUT_LISTS[1], INPUT_LISTS[0]))
        with m.FSM(name="compute"):
            with m.State("WAIT"):
                with m.If(full.bit_select(use, 1)):
                    m.d.comb += seq.start.eq(1)
                    m.next = "COMPUTE"
            with m.State("COMPUTE"):
                with m.If(seq.done):
                    m.d.comb += cls.send.eq(1)
                    m.d.sync += [full.bit_select(use, 1).eq(0), use.eq(~use)]
                    m.next = "SCORES"
            with m.State("SCORES"):
                with m.If(cls.sent):
                    m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += self.result.valid.eq(1)
                with m.If(self.result.ready):
                    m.next = "WAIT"
        return m
