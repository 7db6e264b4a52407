"""The board core: the accelerator behind a UART that speaks ``gxnor.hw.link.protocol``.

:class:`BoardCore` is everything on the FPGA except clocking and pins (``gxnor.hw.boards`` adds
those per board), so the same design runs in cocotb with the host client talking to its
``rx`` / ``tx`` pins (``gxnor.host.simboard``).

Data path::

    rx -> UARTRx -> FIFO -> RequestParser --pixels--> Accelerator --scores/result--+
                               |   |   \\--LOAD words--> WeightStore <--reads--/    |
                               |   \\--verdicts--> FIFO --> RunAnswers <-----------+
                               \\--answers--> ControlAnswers                         |
                        ControlAnswers / RunAnswers -> FrameMux -> FrameTx -> UARTTx -> tx

* The receive FIFO (``fifo_depth`` bytes, one block RAM) takes bytes at line rate while the
  accelerator computes, so RUN frames can come back to back; a byte that finds it full is
  counted in ``rx_errors``.
* RUN pixels stream into the accelerator as they arrive; the payload checksum comes after the
  last pixel, so the parser queues a verdict per image and the RUN answerer sends either the
  result or ``ERROR(PAYLOAD_CRC)`` (the result is discarded). Answers keep request order: the
  control answerer waits while RUN answers are pending (the verdict FIFO is not empty), and a
  LOAD waits for the accelerator to be idle before it writes.
* A frame that stops for ``timeout`` cycles is abandoned (a RUN is padded with zero pixels and
  its result discarded) and answered with ``ERROR(TIMEOUT)``.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from gxnor.base.errors import InputError

from ..accelerator import Accelerator
from ..pipeline import PipelinedAccelerator, engine_event
from ..pixels import PixelBeats
from ..spec import AcceleratorSpec, PipelineSpec, result_layout
from . import protocol as P
from .answers import ControlAnswers, RunAnswers
from .framer import FrameMux, FrameTx, payload_bits
from .parser import RequestParser
from .throughput import ThroughputHarness
from .uart import UARTRx, UARTTx
from .weights import WeightStore

WEIGHT_MEMORIES = ("rom", "ram")


class SkidBuffer(wiring.Component):
    """A stream register with a registered ``ready`` upstream: two entries, so a transfer
    every cycle passes through, and nothing downstream reaches upstream in the same cycle.

    Members: ``i``: In(stream(width)); ``o``: Out(stream(width)). Latency 1."""

    latency = 1

    def __init__(self, width: int):
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width))})

    def elaborate(self, platform):
        m = Module()
        spare_valid, spare = Signal(), Signal.like(self.i.payload)
        m.d.comb += self.i.ready.eq(~spare_valid)
        taken = ~self.o.valid | self.o.ready  # the output register is free this cycle
        with m.If(taken):
            with m.If(spare_valid):
                m.d.sync += [self.o.payload.eq(spare), self.o.valid.eq(1),
                             spare_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & self.i.ready):
            m.d.sync += [spare.eq(self.i.payload), spare_valid.eq(1)]
        return m


def weights_ram(weights) -> bool:
    """Whether the weight memory ``weights`` starts empty (the host loads it)."""
    return weights.starts_empty if isinstance(weights, WeightStore) else weights == "ram"


def core_info(spec: AcceleratorSpec | PipelineSpec, *, divisor: int, weights="rom",
              clock_hz: int = 0, net_id: int = 0, loaded_words: int = 0, bench=None,
              **_) -> P.Info:
    """The INFO a :class:`BoardCore` with these parameters answers to PING. A layer pipeline
    reports its widest engine's lanes and no loadable weight words (each engine's weights are
    a ROM of its own)."""
    lanes, word_bytes, words = _weight_memory(spec)
    return P.Info(P.MAGIC, P.VERSION, lanes, spec.n_pixels, spec.num_classes,
                  len(spec.layers), P.score_bytes(spec.score_bits), word_bytes,
                  words, net_id, int(weights_ram(weights)), loaded_words,
                  int(clock_hz), divisor, 0 if bench is None else len(bench[1]),
                  1 if isinstance(spec, PipelineSpec) else spec.slices)


def _weight_memory(spec) -> tuple[int, int, int]:
    """(lanes, bytes per word, words) of the weight memory LOAD writes."""
    if isinstance(spec, PipelineSpec):
        return max(f.lanes for f in spec.folds), 1, 0
    return spec.lanes, spec.word_bytes, spec.weight_words


class BoardCore(wiring.Component):
    """The accelerator with its UART protocol engine (see the module docstring).

    Parameters
    ----------
    spec: :class:`~gxnor.hw.spec.AcceleratorSpec` (the shared engine) or
        :class:`~gxnor.hw.spec.PipelineSpec` (the layer pipeline: its pixels become beats
        (:class:`~gxnor.hw.pixels.PixelBeats`); its weights are ROMs, so ``weights`` must be
        ``"rom"`` and every LOAD is answered ERROR(ADDRESS)).
    divisor: clock cycles per UART bit.
    weights: the weight memory: ``"rom"`` (block RAM initialised from the export, still
        writable by LOAD), ``"ram"`` (block RAM that starts empty: LOAD first) or a
        :class:`~gxnor.hw.link.weights.WeightStore` of the board's FPGA family (SPRAM).
    timeout: cycles without a byte that abandon a frame.
    clock_hz, net_id: reported by PING.
    fifo_depth: bytes of the receive FIFO.
    bench: (images, classes): build in the on-chip throughput harness
        (:class:`~gxnor.hw.link.throughput.ThroughputHarness`) with these stored images and
        the classes to check them against; BENCH requests run it. While it runs, the
        accelerator's input comes from the harness and its results go to it.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    activity: Out(1)  # toggles with every answered RUN (an LED)
    loaded: Out(1)  # the whole weight memory has been written (or is a ROM)

    def __init__(self, spec: AcceleratorSpec, *, divisor: int, weights="rom",
                 timeout: int = 1 << 20, clock_hz: int = 0, net_id: int = 0,
                 fifo_depth: int = 512, bench=None):
        if not isinstance(spec, AcceleratorSpec | PipelineSpec):
            raise TypeError(f"spec must be an AcceleratorSpec or a PipelineSpec, got {spec!r}")
        if isinstance(spec, PipelineSpec) and weights != "rom":
            raise InputError(f"the layer pipeline keeps its weights in ROM, not {weights!r}")
        if not isinstance(weights, WeightStore) and weights not in WEIGHT_MEMORIES:
            raise ValueError(f"weights must be one of {WEIGHT_MEMORIES} or a WeightStore, got "
                             f"{weights!r}")
        if spec.num_classes > 256:
            raise InputError(f"{spec.num_classes} classes: the protocol's class field is a byte")
        if spec.n_pixels > P.MAX_PAYLOAD:
            raise InputError(f"{spec.n_pixels} pixels do not fit one RUN frame "
                             f"({P.MAX_PAYLOAD} bytes)")
        if not isinstance(divisor, int) or divisor < 4:
            raise ValueError(f"divisor must be an integer >= 4 (clock cycles per UART bit), "
                             f"got {divisor!r}")
        if timeout < 16 * divisor:
            raise ValueError(f"timeout of {timeout} cycles is shorter than two UART bytes")
        self._spec, self._divisor, self._weights = spec, divisor, weights
        self._timeout, self._clock_hz, self._net_id = timeout, clock_hz, net_id
        self._fifo_depth = fifo_depth
        self._bench = bench
        if bench is not None:  # checked here, before any elaboration
            self._harness = ThroughputHarness(spec, *bench)
        super().__init__()

    def info(self, loaded_words: int = 0) -> P.Info:
        """What PING answers (``loaded_words`` is live in the hardware)."""
        return core_info(self._spec, divisor=self._divisor, weights=self._weights,
                         clock_hz=self._clock_hz, net_id=self._net_id,
                         loaded_words=loaded_words, bench=self._bench)

    def elaborate(self, platform):
        spec = self._spec
        m = Module()
        pipelined = isinstance(spec, PipelineSpec)
        _, word_bytes, weight_words = _weight_memory(spec)
        if pipelined:
            store = None
        elif isinstance(self._weights, WeightStore):
            store = self._weights
        else:
            store = WeightStore(spec.weight_words, spec.word_bits,
                                spec.words if self._weights == "rom" else None, spec.slices)

        m.submodules.uart_rx = urx = UARTRx(self._divisor)
        m.submodules.uart_tx = utx = UARTTx(self._divisor)
        m.submodules.rx_fifo = rxf = fifo.SyncFIFOBuffered(width=8, depth=self._fifo_depth)
        m.submodules.parser = parser = RequestParser(
            n_pixels=spec.n_pixels, weight_words=weight_words, word_bits=8 * word_bytes,
            timeout=self._timeout, bench=self._bench is not None)
        if pipelined:
            m.submodules.accel = acc = PipelinedAccelerator(spec)
            m.submodules.beats = beats = PixelBeats(spec.n_pixels, engine_event(spec, 0),
                                                    spec.input_ports, spec.layers[0].conv)
        else:
            m.submodules.accel = acc = Accelerator(spec, external_weights=True)
            m.submodules.weights = store
        m.submodules.verdicts = vq = fifo.SyncFIFO(width=3, depth=4)
        m.submodules.run_answers = runs = RunAnswers(
            spec.num_classes, spec.score_bits, result_layout(spec), len(spec.layers))
        m.submodules.frame_mux = fmux = FrameMux()
        m.submodules.frame_tx = ftx = FrameTx()

        # statistics, and what PING / STATS answer
        images, errors, dropped, rx_errors = (Signal(32, name=n) for n, _ in P.STATS_LAYOUT)
        loaded_words = Signal(32)
        info = payload_bits(P.INFO_LAYOUT, {**self.info().__dict__,
                                            "loaded_words": loaded_words})
        stats = payload_bits(P.STATS_LAYOUT, {"images": images, "errors": errors,
                                              "dropped": dropped, "rx_errors": rx_errors})
        if self._bench is not None:
            m.submodules.harness = harness = self._harness
            bench = payload_bits(P.BENCH_LAYOUT, {f: harness.counters[f]
                                                  for f, _ in P.BENCH_LAYOUT})
            wiring.connect(m, parser.bench, harness.run)
            m.d.comb += parser.bench_busy.eq(harness.busy)
        else:
            harness, bench = None, payload_bits(P.BENCH_LAYOUT, dict.fromkeys(
                (f for f, _ in P.BENCH_LAYOUT), 0))
        m.submodules.control_answers = control = ControlAnswers(len(info), len(stats),
                                                                len(bench))
        full = (loaded_words >= weight_words) if store is not None and store.starts_empty else 1
        m.d.comb += [control.info.eq(info), control.stats.eq(stats), control.bench.eq(bench),
                     self.loaded.eq(full)]

        # receive: UART -> FIFO (a full FIFO drops the byte and counts it), then a skid
        # buffer between the FIFO's block RAM and the parser: the FIFO's read enable is a
        # register, so the parser's frame state does not run on into the FIFO's level
        # counter (the iCE40's critical path, 31.2 MHz)
        m.submodules.rx_skid = skid = SkidBuffer(8)
        m.d.comb += [urx.rx.eq(self.rx), rxf.w_data.eq(urx.data.payload),
                     rxf.w_en.eq(urx.data.valid), urx.data.ready.eq(1),
                     skid.i.valid.eq(rxf.r_rdy), skid.i.payload.eq(rxf.r_data),
                     rxf.r_en.eq(skid.i.ready)]
        wiring.connect(m, skid.o, parser.rx)

        # requests: pixels to the accelerator (through a register: the parser's frame state
        # decides a pixel's valid, and that must not run on into the accelerator's input
        # logic), LOAD words to the weights, verdicts queued
        pix_valid, pix_data = Signal(), Signal(8)
        with m.If(parser.pixels.ready):
            m.d.sync += [pix_valid.eq(parser.pixels.valid), pix_data.eq(parser.pixels.payload)]
        # the accelerator's input: the RUN pixels, or the harness while it runs (a BENCH
        # starts once every RUN before it is answered: the accelerator is idle then)
        acc_in = acc.events if pipelined else acc.pixels
        host_ready = Signal()  # the accelerator takes the host's input
        if pipelined:
            m.d.comb += [parser.pixels.ready.eq(~pix_valid | beats.pixels.ready),
                         beats.pixels.valid.eq(pix_valid), beats.pixels.payload.eq(pix_data),
                         beats.beats.ready.eq(host_ready)]
            host_valid, host_payload = beats.beats.valid, beats.beats.payload
        else:
            m.d.comb += parser.pixels.ready.eq(~pix_valid | host_ready)
            host_valid, host_payload = pix_valid, pix_data
        from_host = [acc_in.valid.eq(host_valid), acc_in.payload.eq(host_payload),
                     host_ready.eq(acc_in.ready)]
        if harness is not None:
            bench_in = harness.events if pipelined else harness.pixels
            with m.If(harness.busy):
                m.d.comb += [acc_in.valid.eq(bench_in.valid),
                             acc_in.payload.eq(bench_in.payload),
                             bench_in.ready.eq(acc_in.ready)]
            with m.Else():
                m.d.comb += from_host
        else:
            m.d.comb += from_host
        if not pipelined:
            # LOAD writes one cycle after the parser hands the word over: the parser's state
            # decode then does not reach the weight memory's address pins (the iCE40's
            # critical path); a LOAD runs only while the accelerator is idle, and the next
            # request is at least a UART byte later
            wr = Signal()
            wr_addr = Signal.like(parser.load.payload.addr)
            wr_data = Signal.like(parser.load.payload.data)
            m.d.sync += [wr.eq(parser.load.valid), wr_addr.eq(parser.load.payload.addr),
                         wr_data.eq(parser.load.payload.data)]
            m.d.comb += [store.addr[t].eq(Mux(wr, wr_addr, acc.weight_addr[t]))
                         for t in range(spec.slices)]
            m.d.comb += [store.wdata.eq(wr_data), store.we.eq(wr),
                         acc.weight_data.eq(store.rdata)]
        wiring.connect(m, parser.verdicts, vq.w_stream)
        wiring.connect(m, vq.r_stream, runs.verdicts)
        wiring.connect(m, parser.answers, control.requests)

        # answers: RUN answers while any is pending, control answers otherwise (in order)
        runs_pending = vq.level != 0
        m.d.comb += [parser.runs_pending.eq(runs_pending), control.runs_pending.eq(runs_pending),
                     fmux.select.eq(runs_pending)]
        if harness is not None:  # the results: to the RUN answers, or to the harness
            m.d.comb += [runs.scores.payload.eq(acc.scores.payload),
                         runs.result.payload.eq(acc.result.payload),
                         harness.scores.payload.eq(acc.scores.payload),
                         harness.result.payload.eq(acc.result.payload)]
            with m.If(harness.busy):
                m.d.comb += [harness.scores.valid.eq(acc.scores.valid),
                             harness.result.valid.eq(acc.result.valid),
                             acc.scores.ready.eq(1), acc.result.ready.eq(1)]
            with m.Else():
                m.d.comb += [runs.scores.valid.eq(acc.scores.valid),
                             runs.result.valid.eq(acc.result.valid),
                             acc.scores.ready.eq(runs.scores.ready),
                             acc.result.ready.eq(runs.result.ready)]
        else:
            wiring.connect(m, acc.scores, runs.scores)
            wiring.connect(m, acc.result, runs.result)
        wiring.connect(m, control.frames, fmux.a)
        wiring.connect(m, runs.frames, fmux.b)
        # the payload bytes through a skid buffer: the answerers' state (the accelerator's
        # result valid, the RUN answer's byte choice) does not run on into the frame writer's
        # byte count (the iCE40's critical path at 33.4 MHz)
        m.submodules.tx_skid = tx_skid = SkidBuffer(8)
        m.d.comb += [ftx.frames.start.eq(fmux.out.start), ftx.frames.cmd.eq(fmux.out.cmd),
                     ftx.frames.length.eq(fmux.out.length), fmux.out.idle.eq(ftx.frames.idle)]
        wiring.connect(m, fmux.out.data, tx_skid.i)
        wiring.connect(m, tx_skid.o, ftx.frames.data)
        wiring.connect(m, ftx.out, utx.data)
        m.d.comb += self.tx.eq(utx.tx)

        # counters
        with m.If((urx.data.valid & ~rxf.w_rdy) | urx.framing_error):
            m.d.sync += rx_errors.eq(rx_errors + 1)
        with m.If(parser.dropped):
            m.d.sync += dropped.eq(dropped + 1)
        with m.If(control.error | runs.error):
            m.d.sync += errors.eq(errors + 1)
        with m.If(runs.answered):
            m.d.sync += images.eq(images + 1)
        with m.If(runs.done):
            m.d.sync += self.activity.eq(~self.activity)
        with m.If(parser.loaded.valid):
            m.d.sync += loaded_words.eq(loaded_words + parser.loaded.payload)
        return m
