"""The sequencer: walks the layers of an image, group by group, issuing one token per event."""

import math

from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import HIDDEN_LISTS, INPUT_LISTS, LISTS
from .spec import CYCLE_BITS, EVENT_COUNT_BITS, AcceleratorSpec


class Sequencer(wiring.Component):
    """Issues the work of one image on the shared engine, layer after layer.

    For each layer: ``SETUP`` (the layer's input list and the events it holds), then for each
    group of P output neurons one token per bundle of events of the list, back to back, and an
    END token that hands the group's sums to the serializer. The serializer needs n_g cycles
    for a group of n_g neurons, so the END token of group g waits until group g-1 is through:
    the sequencer keeps that credit itself (``cool``), so nothing downstream ever stalls.

    Layers overlap: a layer starts (``SETUP``) the cycle after the last END token of the layer
    before, while the serializer still writes that last group's outputs into the list the layer
    reads. The list is then in two parts: the events of the earlier groups, all written by then
    (the END token of a hidden layer's last group waits ``settle`` cycles more than the credit:
    until the group before has left the serializer), and those of the last group, which may
    be read once the serializer reports the layer's last outputs written (``committed``: its
    ``image_done``, as the sequencer marks each hidden layer's last group ``image_end``). So
    group 0 of a layer issues the earlier part at once, the rest after ``committed``; its END
    token waits for both. Each group carries the hidden list its outputs go to (``buffer``),
    so the serializer's writes need not follow the layer being issued. After the last layer's
    last END token: ``DRAIN`` until nothing is in flight.

    Parameters
    ----------
    spec: :class:`~gxnor.hw.spec.AcceleratorSpec`.
    token: the token layout (:func:`gxnor.hw.layouts.token_layout`).
    count: the shape of an event-list count.
    settle: the cycles from a group's END token to its last outputs being written, beyond its
        serializer cycles (the accelerator's: ``gxnor.hw.timing.SETTLE``).

    Members
    -------
    start: In(1) — the image's input list is complete: begin with layer 0.
    input_list: In — the list that holds the image's pixels (``INPUT_LISTS``), while
        ``start``.
    count: In(lists x count) — the event lists' counts.
    committed: In(1) — pulse: a hidden layer's last outputs are written in this cycle (the
        serializer's ``image_done``).
    idle: In(1) — nothing in flight downstream (event lists, weight fetch, serializer).
    tokens: Out(stream(token)) — always ready downstream.
    src: Out — the event list the current layer reads: the image's input list for layer 0,
        then ``HIDDEN_LISTS`` alternately.
    dst: Out — the list the current layer's outputs go to (``HIDDEN_LISTS[layer % 2]``; its
        tokens carry ``buffer`` = layer % 2).
    clear: Out(lists) — empty the list the current layer's outputs go to.
    busy: Out(1) — an image is being computed.
    done: Out(1) — pulse: the last layer is through (the class is known).
    cycles: Out(CYCLE_BITS) — the image's compute cycles (from the cycle after ``start``).
    events: Out(layers x EVENT_COUNT_BITS) — the events (input list length) of each layer.

    Timing (``gxnor.hw.timing``): ``SETUP_CYCLES`` per layer; group g occupies the issue for
    max(B + 1, n_{g-1}) cycles (B bundles, n_{g-1} the previous group's serializer cycles,
    plus ``settle`` before a hidden layer's last group); group 0 of a later layer ends no
    earlier than two cycles after ``committed`` plus the bundles of the last group's events;
    after the last layer's last END token the sequencer waits for the pipeline and the
    serializer, then ``DRAIN_CYCLES``.
    """

    SETUP_CYCLES = 1
    DRAIN_CYCLES = 1
    #: the cycle count's value in the first counted cycle (SETUP of layer 0)
    FIRST_CYCLE = 0
    #: events of a list that are issued: all of them (a variant may drop some)
    SKIP_EVENTS = 0

    def __init__(self, spec: AcceleratorSpec, token: data.Layout, count, *, settle: int):
        if not isinstance(spec, AcceleratorSpec):
            raise TypeError(f"spec must be an AcceleratorSpec, got {spec!r}")
        if settle < 0:
            raise ValueError(f"settle must be >= 0, got {settle}")
        self._spec, self._settle = spec, settle
        super().__init__({
            "start": In(1),
            "input_list": In(range(LISTS)),
            "count": In(data.ArrayLayout(count, LISTS)),
            "committed": In(1),
            "idle": In(1),
            "tokens": Out(stream.Signature(token, always_ready=True)),
            "src": Out(range(LISTS)),
            "dst": Out(range(LISTS)),
            "clear": Out(LISTS),
            "busy": Out(1),
            "done": Out(1),
            "cycles": Out(CYCLE_BITS),
            "events": Out(data.ArrayLayout(EVENT_COUNT_BITS, len(spec.layers))),
        })

    @staticmethod
    def reads(layer: int) -> tuple[int, ...]:
        """The event lists layer ``layer`` may read (``src``): layer 0 either input list,
        then ``HIDDEN_LISTS`` alternately (layer l writes the one layer l+1 reads)."""
        return INPUT_LISTS if layer == 0 else (HIDDEN_LISTS[(layer - 1) % 2],)

    @staticmethod
    def writes(buffer) -> int:
        """The hidden list a group's outputs go to, from its token's ``buffer`` (layer % 2):
        the one the next layer reads."""
        return Mux(buffer, HIDDEN_LISTS[1], HIDDEN_LISTS[0])

    def elaborate(self, platform):
        spec = self._spec
        lanes, n_layers = spec.lanes, len(spec.layers)
        m = Module()

        # per-layer constants: weight and threshold bases, groups, the last group's size
        def table(values):
            width = max(1, max(int(v) for v in values).bit_length())
            return Array(Const(int(v), width) for v in values)

        rate = spec.rate
        rshift = rate.bit_length() - 1
        wbase, wa = [], 0
        for ly in spec.layers:
            wbase.append(wa)
            wa += len(ly.words)
        tbase = [*spec.threshold_rows, 0]  # the last layer's scores are addressed by class
        groups = [math.ceil(ly.n_out / lanes) for ly in spec.layers]
        c_n_in = table([ly.n_in for ly in spec.layers])
        c_last_group = table([g - 1 for g in groups])
        c_last_size = table([ly.n_out - (g - 1) * lanes for ly, g in zip(spec.layers, groups,
                                                                           strict=True)])
        c_wbase, c_tbase = table(wbase), table(tbase)

        layer = Signal(range(max(n_layers, 2)))
        is_last = layer == n_layers - 1
        image_list = Signal.like(self.input_list)
        # the lists as ``reads`` gives them: an odd layer reads what layer 1 reads, an even
        # one (after 0) what layer 2 reads, and writes the other hidden list
        odd, even = (Const(self.reads(k)[0], len(self.src)) for k in (1, 2))
        m.d.comb += [self.src.eq(Mux(layer == 0, image_list, Mux(layer[0], odd, even))),
                     self.dst.eq(self.writes(layer[0]))]
        # events per token, k: the engine's ports, the sliced last layer's slices (a power
        # of two); f(k) for the current layer
        k_max = max(spec.ports, spec.slices)

        def per_token(f):
            return Mux(is_last, f(spec.slices), f(spec.ports)) if spec.slices > 1 \
                else f(spec.ports)

        ports = per_token(lambda k: k)
        kshift = per_token(lambda k: k.bit_length() - 1)
        up = per_token(lambda k: k - 1)  # to round a count up to whole bundles
        cnt = self.count[self.src]
        if self.SKIP_EVENTS:
            cnt = Mux(cnt > self.SKIP_EVENTS, cnt - self.SKIP_EVENTS, 0)
        # bundles of the list that may be issued (up to a whole list: one past the last
        # position), the next bundle
        avail = Signal(range(2 ** len(self.tokens.payload.pos) + 1))
        bundle = Signal.like(avail)
        final = Signal()  # the list is complete (avail: all of it)
        rem = Signal(range(k_max))  # events of the list's last bundle, if short (final)
        g = Signal(range(max(max(groups), 2)))
        base = Signal.like(self.tokens.payload.base)
        nbase = Signal.like(self.tokens.payload.nbase)
        cool = Signal(range(lanes + self._settle + 1))  # cycles until the serializer is free
        group_size = Signal(range(lanes + 1))
        is_last_group = g == c_last_group[layer]
        m.d.comb += group_size.eq(Mux(is_last_group, c_last_size[layer], lanes))
        serial = Signal(range(lanes + 1))  # cycles the serializer needs for this group
        m.d.comb += serial.eq(Mux(is_last, group_size, (group_size + rate - 1) >> rshift))
        with m.If(cool != 0):
            m.d.sync += cool.eq(cool - 1)

        # the token: the next bundle of list src (up to ports events), for the current group
        tok = self.tokens.payload
        short = final & (bundle + 1 == avail) & (rem != 0) if k_max > 1 else 0
        m.d.comb += [tok.src.eq(self.src), tok.pos.eq(bundle), tok.base.eq(base),
                     tok.n.eq(Mux(short, rem, ports)),
                     tok.nbase.eq(nbase), tok.taddr.eq(c_tbase[layer] + (nbase >> rshift)),
                     tok.size.eq(group_size), tok.last.eq(is_last),
                     tok.buffer.eq(layer[0]), tok.image_end.eq(is_last_group & ~is_last)]

        def take_list(whole):
            """The list's events (all of them if ``whole``, else its full bundles)."""
            bundles = Mux(whole, (cnt + up) >> kshift, cnt >> kshift) if k_max > 1 else cnt
            return [avail.eq(bundles), final.eq(whole), rem.eq(cnt & up if k_max > 1 else 0),
                    self.events[layer].eq(self.count[self.src])]

        with m.FSM(name="sequencer"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [layer.eq(0), self.cycles.eq(self.FIRST_CYCLE),
                                 image_list.eq(self.input_list), cool.eq(0)]
                    m.next = "SETUP"
            with m.State("SETUP"):
                m.d.comb += [self.busy.eq(1), self.clear.bit_select(self.dst, 1).eq(~is_last)]
                # layer 0's list is complete; a later layer's holds the earlier groups' events
                m.d.sync += [self.cycles.eq(self.cycles + 1), *take_list(layer == 0),
                             g.eq(0), base.eq(c_wbase[layer]), nbase.eq(0), bundle.eq(0)]
                m.next = "ISSUE"
            with m.State("ISSUE"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += self.cycles.eq(self.cycles + 1)
                with m.If(bundle != avail):
                    m.d.comb += self.tokens.valid.eq(1)
                    m.d.sync += bundle.eq(bundle + 1)
                with m.Elif(final & (cool == 0)):
                    # END token: this group's sums go to the serializer; a hidden layer's last
                    # group waits until this one's outputs are written (``settle``)
                    m.d.comb += [self.tokens.valid.eq(1), tok.end.eq(1), tok.n.eq(0)]
                    before_last = (g + 1 == c_last_group[layer]) & ~is_last
                    m.d.sync += [bundle.eq(0),
                                 cool.eq(serial - 1 + Mux(before_last, self._settle, 0))]
                    with m.If(is_last_group):
                        with m.If(is_last):
                            m.next = "DRAIN"
                        with m.Else():
                            m.d.sync += layer.eq(layer + 1)
                            m.next = "SETUP"
                    with m.Else():
                        m.d.sync += [g.eq(g + 1), base.eq(base + c_n_in[layer]),
                                     nbase.eq(nbase + lanes)]
            with m.State("DRAIN"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += self.cycles.eq(self.cycles + 1)
                with m.If(self.idle):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
        # the layer before's last outputs are in (the count a cycle after the write): the rest
        # of the list may go
        committed = Signal()
        m.d.sync += committed.eq(self.committed)
        with m.If(committed):
            m.d.sync += take_list(1)
        return m


def next_buffer(buffer, buffers: int):
    """The buffer after ``buffer`` (images take the ``buffers`` buffers in turn)."""
    return Mux(buffer == buffers - 1, 0, buffer + 1)


class LayerSequencer(wiring.Component):
    """Issues the work of one layer, image after image: the layer pipeline's sequencer (one
    per engine).

    The layer reads its input from one of ``buffers`` event lists (images take them in turn:
    image i uses buffer i mod B at every boundary) and writes its outputs to the next stage's
    list of the same number. An image starts when its input list is full (``full``) and the
    output list it goes to is free (``out_free``): in that cycle (``start``) the sequencer takes
    the list's event count and empties the output list (``clear``); then for each group of P
    output neurons one token per bundle of ``ports`` events and an END token, as
    :class:`Sequencer` does. The last END token marks the image's end (``image_end``: the
    serializer reports when its outputs are through) and frees the input list (``release``):
    its events have all been read. The serializer's credit (``cool``) carries over from one
    image to the next, so groups of consecutive images go through the serializer back to back.

    Parameters
    ----------
    layer: its :class:`~gxnor.hw.spec.LayerSpec`.
    fold: its :class:`~gxnor.hw.spec.Fold` (lanes, ports, rate).
    token: the token layout.
    count: the shape of an event-list count.
    last: the network's last layer (scores, one neuron per serializer cycle).
    buffers: B, the event lists at each boundary.

    Members
    -------
    full: In(B) — per input list: it holds an image that has not started.
    out_free: In(B) — per output list: the next stage has released it.
    count: In(B x count) — the input lists' counts.
    tokens: Out(stream(token)) — always ready downstream.
    start: Out(1) — pulse: an image starts (its count is taken) in buffer ``buffer``.
    buffer: Out(range(B)) — the buffer of the current image.
    release: Out(1) — pulse: the image's last END token: its input list is free.
    clear: Out(B) — empty that output list (with ``start``).
    busy: Out(1) — an image is being issued.

    Timing: one cycle to start an image (the cycle both lists are ready); group g occupies
    the issue for max(B + 1, n_{g-1}) cycles (B = bundles of events, n_{g-1} the previous
    group's serializer cycles, across images); ``gxnor.hw.timing.pipeline_timeline``.
    """

    def __init__(self, layer, fold, token: data.Layout, count, last: bool, buffers: int = 2):
        self._layer, self._fold, self._last, self._buffers = layer, fold, last, buffers
        super().__init__({
            "full": In(buffers),
            "out_free": In(buffers),
            "count": In(data.ArrayLayout(count, buffers)),
            "tokens": Out(stream.Signature(token, always_ready=True)),
            "start": Out(1),
            "buffer": Out(range(buffers)),
            "release": Out(1),
            "clear": Out(buffers),
            "busy": Out(1),
        })

    @property
    def group_words(self) -> int:
        """Weight words of one group: a fully connected layer's fan-in."""
        return self._layer.n_in

    def next_group(self, m: Module, last_group, g, base, nbase) -> None:
        """With a group's END token: after the image's last group, free its input list and
        wait for the next image; else on to the next group (its weights ``group_words`` on,
        its neurons ``lanes`` on)."""
        with m.If(last_group):
            m.d.comb += self.release.eq(1)
            m.d.sync += self.buffer.eq(next_buffer(self.buffer, self._buffers))
            m.next = "WAIT"
        with m.Else():
            m.d.sync += [g.eq(g + 1), base.eq(base + self.group_words),
                         nbase.eq(nbase + self._fold.lanes)]

    def take_image(self, m: Module, counts, zeros) -> None:
        """The WAIT state's work: once the current buffer's input list is full and its output
        list free, start the image (take the list's count into ``counts``, zero ``zeros``,
        empty the output list) and go to ISSUE."""
        buf = self.buffer
        with m.If(self.full.bit_select(buf, 1) & self.out_free.bit_select(buf, 1)):
            count = self.count[buf]
            m.d.comb += [self.start.eq(1), self.clear.bit_select(buf, 1).eq(1)]
            m.d.sync += [c.eq(count) for c in counts] + [z.eq(0) for z in zeros]
            m.next = "ISSUE"

    def elaborate(self, platform):
        ly, lanes, ports, rate = self._layer, self._fold.lanes, self._fold.ports, self._fold.rate
        rshift = rate.bit_length() - 1
        m = Module()
        groups = math.ceil(ly.n_out / lanes)
        last_size = ly.n_out - (groups - 1) * lanes

        buf = self.buffer
        n_events = Signal.like(self.count[0])
        left = Signal.like(n_events)
        bundle = Signal.like(self.tokens.payload.pos)
        g = Signal(range(max(groups, 2)))
        base = Signal.like(self.tokens.payload.base)
        nbase = Signal.like(self.tokens.payload.nbase)
        cool = Signal(range(lanes + 1))
        last_group = g == groups - 1
        group_size = Signal(range(lanes + 1))
        m.d.comb += group_size.eq(Mux(last_group, last_size, lanes))
        serial = Mux(last_group, -(-last_size // rate), -(-lanes // rate)) if not self._last \
            else group_size
        with m.If(cool != 0):
            m.d.sync += cool.eq(cool - 1)

        tok = self.tokens.payload
        m.d.comb += [tok.src.eq(buf), tok.buffer.eq(buf), tok.pos.eq(bundle),
                     tok.base.eq(base), tok.n.eq(Mux(left >= ports, ports, left)),
                     tok.nbase.eq(nbase), tok.taddr.eq(nbase >> rshift),
                     tok.size.eq(group_size), tok.last.eq(self._last),
                     tok.image_end.eq(last_group)]

        with m.FSM(name="layer_sequencer"):
            with m.State("WAIT"):
                self.take_image(m, [n_events, left], [g, base, nbase, bundle])
            with m.State("ISSUE"):
                m.d.comb += self.busy.eq(1)
                with m.If(left != 0):
                    m.d.comb += self.tokens.valid.eq(1)
                    m.d.sync += [bundle.eq(bundle + 1),
                                 left.eq(Mux(left >= ports, left - ports, 0))]
                with m.Elif(cool == 0):
                    m.d.comb += [self.tokens.valid.eq(1), tok.end.eq(1), tok.n.eq(0)]
                    m.d.sync += [bundle.eq(0), left.eq(n_events), cool.eq(serial - 1)]
                    self.next_group(m, last_group, g, base, nbase)
        return m
