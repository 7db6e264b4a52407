"""The two answerers: control answers (INFO, STATS, LOAD, ERROR) and RUN answers."""

from amaranth.hdl import Array, Cat, Const, Module, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import protocol as P
from .framer import FrameSignature, ValueBytes, payload_bits
from .parser import ANSWER, ANSWER_ERROR


def result_bits(res) -> Value:
    """A result word (:func:`gxnor.hw.spec.result_layout`) as the RUN answer carries it after
    the scores: the class in whole bytes, the cycles, the events per layer
    (:meth:`~gxnor.hw.link.protocol.RunResult.result_bytes` on the host)."""
    return Cat(res.cls, Const(0, 8 * P.CLASS_BYTES - len(res.cls)), res.cycles, *res.events)


class ControlAnswers(wiring.Component):
    """Sends the answer the parser asks for, after every RUN answer before it.

    Members
    -------
    requests: In(stream(ANSWER)) — taken when its last payload byte is handed over.
    info: In(INFO payload bits) — what PING answers now.
    stats: In(STATS payload bits) — what STATS answers now.
    bench: In(BENCH payload bits) — what BENCH answers (the harness's counters).
    runs_pending: In(1) — RUN answers are still to be sent: wait.
    frames: Out(FrameSignature).
    error: Out(1) — pulse: an ERROR answer starts.
    """

    def __init__(self, info_bits: int, stats_bits: int, bench_bits: int = 8):
        super().__init__({
            "requests": In(stream.Signature(ANSWER)),
            "info": In(info_bits),
            "stats": In(stats_bits),
            "bench": In(bench_bits),
            "runs_pending": In(1),
            "frames": Out(FrameSignature),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        req = self.requests.payload
        answers = [  # (command, payload bits), in the order of parser.ANSWER_*
            (P.Cmd.PING | P.RESPONSE, self.info),
            (P.Cmd.STATS | P.RESPONSE, self.stats),
            (P.Cmd.LOAD | P.RESPONSE, payload_bits(P.LOAD_ANSWER_LAYOUT, {"words": req.words})),
            (P.ERROR_ANSWER, payload_bits(P.ERROR_LAYOUT, {"code": req.code, "cmd": req.cmd})),
            (P.Cmd.BENCH | P.RESPONSE, self.bench),
        ]
        longest = max(len(bits) // 8 for _, bits in answers)
        index = Signal(range(max(longest, 2)))
        last = Signal.like(index)  # the answer's last byte (registered: the answer's kind
        # into the byte count into the parser's state was the iCE40's critical path)
        length = Array(Const(len(bits) // 8, 16) for _, bits in answers)[req.kind]
        m.d.comb += [
            self.frames.cmd.eq(Array(Const(int(c), 8) for c, _ in answers)[req.kind]),
            self.frames.length.eq(length),
            self.frames.data.payload.eq(Array(bits.word_select(index, 8)
                                              for _, bits in answers)[req.kind]),
        ]
        with m.FSM(name="control_answers"):
            with m.State("WAIT"):
                with m.If(self.requests.valid & ~self.runs_pending & self.frames.idle):
                    m.d.comb += [self.frames.start.eq(1),
                                 self.error.eq(req.kind == ANSWER_ERROR)]
                    m.d.sync += [index.eq(0), last.eq(length - 1)]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += self.frames.data.valid.eq(1)
                with m.If(self.frames.data.ready):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == last):
                        m.d.comb += self.requests.ready.eq(1)
                        m.next = "WAIT"
        return m


class RunAnswers(wiring.Component):
    """Sends one answer per RUN, in order: the scores, the class, the cycles and the events
    per layer when its verdict is 0; ERROR(verdict) otherwise (the result is dropped).

    Parameters
    ----------
    classes, score_bytes: the scores (sign-extended to whole bytes on the wire).
    result: the accelerator's result layout (:func:`gxnor.hw.spec.result_layout`).
    score_bits: bits of a score.

    Members
    -------
    verdicts: In(stream(3)) — one per RUN; taken when its answer is out.
    scores: In(stream(signed score)), result: In(stream(result)) — from the accelerator.
    frames: Out(FrameSignature).
    answered: Out(1) — pulse: an image's result went out.
    error: Out(1) — pulse: an ERROR answer starts.
    done: Out(1) — pulse: an answer is complete.
    """

    def __init__(self, classes: int, score_bits: int, result: data.Layout, layers: int):
        self._classes, self._layers = classes, layers
        self._score_bytes = P.score_bytes(score_bits)
        super().__init__({
            "verdicts": In(stream.Signature(3)),
            "scores": In(stream.Signature(signed(score_bits))),
            "result": In(stream.Signature(result)),
            "frames": Out(FrameSignature),
            "answered": Out(1),
            "error": Out(1),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        sb, n_cls = self._score_bytes, self._classes
        run_len = P.run_answer_bytes(n_cls, sb, self._layers)
        result = result_bits(self.result.payload)
        assert len(result) == 8 * (run_len - n_cls * sb)
        error_bits = payload_bits(P.ERROR_LAYOUT, {"code": self.verdicts.payload,
                                                   "cmd": P.Cmd.RUN})
        # each value leaves as bytes: a score (sign-extended), the result, the error
        m.submodules.score_bytes = s_bytes = ValueBytes(sb)
        m.submodules.result_bytes = r_bytes = ValueBytes(len(result) // 8)
        m.submodules.error_bytes = e_bytes = ValueBytes(len(error_bits) // 8)
        m.d.comb += [s_bytes.value.payload.eq(self.scores.payload.as_signed()),
                     r_bytes.value.payload.eq(result),
                     e_bytes.value.payload.eq(error_bits)]
        sending = Signal(range(3))  # which of them feeds the frame
        sources = [s_bytes, r_bytes, e_bytes]
        m.d.comb += self.frames.data.payload.eq(Array(s.bytes.payload for s in sources)[sending])
        for k, s in enumerate(sources):
            m.d.comb += s.bytes.ready.eq(self.frames.data.ready & (sending == k))
        nscore = Signal(range(n_cls + 1))

        with m.FSM(name="run_answers"):
            with m.State("WAIT"):
                with m.If(self.verdicts.valid & self.frames.idle):
                    with m.If(self.verdicts.payload == 0):
                        m.d.comb += [self.frames.start.eq(1),
                                     self.frames.cmd.eq(P.Cmd.RUN | P.RESPONSE),
                                     self.frames.length.eq(run_len)]
                        m.d.sync += [nscore.eq(0), sending.eq(0)]
                        m.next = "SCORES"
                    with m.Else():
                        m.next = "DISCARD"
            with m.State("SCORES"):
                m.d.comb += [s_bytes.value.valid.eq(self.scores.valid),
                             self.scores.ready.eq(s_bytes.value.ready),
                             self.frames.data.valid.eq(s_bytes.bytes.valid)]
                with m.If(self.scores.valid & self.scores.ready):
                    m.d.sync += nscore.eq(nscore + 1)
                    with m.If(nscore == n_cls - 1):
                        m.d.sync += sending.eq(1)
                        m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += [r_bytes.value.valid.eq(self.result.valid),
                             self.result.ready.eq(r_bytes.value.ready),
                             self.frames.data.valid.eq(r_bytes.bytes.valid)]
                with m.If(self.result.valid & self.result.ready):
                    m.d.comb += self.answered.eq(1)
                    m.next = "DONE"
            with m.State("DISCARD"):  # a rejected RUN: drop its result, answer ERROR
                m.d.comb += [self.scores.ready.eq(1), self.result.ready.eq(self.frames.idle)]
                with m.If(self.result.valid & self.frames.idle):
                    m.d.comb += [self.frames.start.eq(1), self.frames.cmd.eq(P.ERROR_ANSWER),
                                 self.frames.length.eq(len(error_bits) // 8),
                                 self.error.eq(1)]
                    m.d.sync += sending.eq(2)
                    m.next = "ERROR"
            with m.State("ERROR"):
                m.d.comb += [e_bytes.value.valid.eq(1),
                             self.frames.data.valid.eq(e_bytes.bytes.valid)]
                with m.If(e_bytes.value.ready):
                    m.next = "DONE"
            with m.State("DONE"):  # the frame's checksum is out: the next answer
                with m.If(self.frames.idle):
                    m.d.comb += [self.verdicts.ready.eq(1), self.done.eq(1)]
                    m.next = "WAIT"
        return m
