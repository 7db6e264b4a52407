"""The classifier: the class scores of an image, their argmax, and the scores stream out."""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out


class Classifier(wiring.Component):
    """Keeps the last layer's scores of one image and their argmax (the largest score; among
    equal scores the lowest class index, as ``gxnor.export.thresholds.argmax_lowest``), then
    streams the scores out in class order when asked.

    Parameters
    ----------
    classes: the number of classes.
    score: the layout of an incoming score (``cls``, ``score``;
        :func:`gxnor.hw.serializer.score_out_layout`).

    Members
    -------
    scores_in: In(stream(score)) — in class order; always ready.
    send: In(1) — pulse: stream the scores out (after the last one came in).
    scores: Out(stream(signed score)) — one per class, in class order, with back-pressure.
    sent: Out(1) — pulse: the last score was taken.
    cls: Out(range(classes)) — the argmax.

    Timing: the scores go out one a cycle with ``ready`` held high (the buffer reads class 0
    while idle, and the next class as a score is taken): ``classes`` cycles from the cycle
    after ``send`` to ``sent``.
    """

    #: cycles per score out (``ready`` held high)
    cycles_per_score = 1

    def __init__(self, classes: int, score: data.Layout):
        if classes < 1:
            raise ValueError(f"classes must be >= 1, got {classes!r}")
        self._classes = classes
        super().__init__({
            "scores_in": In(stream.Signature(score, always_ready=True)),
            "send": In(1),
            "scores": Out(stream.Signature(score["score"].shape)),
            "sent": Out(1),
            "cls": Out(range(max(classes, 2))),
        })

    def elaborate(self, platform):
        m = Module()
        n = self._classes
        m.submodules.buffer = buf = memory.Memory(shape=self.scores.payload.shape(), depth=n,
                                                  init=[])
        wr, rd = buf.write_port(), buf.read_port()

        # in: every score to the buffer; the argmax as they arrive (class 0 first)
        best = Signal(signed(len(self.scores.payload)))
        inp = self.scores_in
        with m.If(inp.valid):
            m.d.comb += [wr.addr.eq(inp.payload.cls), wr.data.eq(inp.payload.score),
                         wr.en.eq(1)]
            with m.If((inp.payload.cls == 0) | (inp.payload.score > best)):
                m.d.sync += [best.eq(inp.payload.score), self.cls.eq(inp.payload.cls)]

        # out: the buffer reads class 0 while idle (the last layer's scores are all in before
        # ``send``), then the next class in the cycle a score is taken
        index = Signal(range(max(n, 2)))
        m.d.comb += self.scores.payload.eq(rd.data)
        with m.FSM(name="classifier"):
            with m.State("IDLE"):
                m.d.comb += [rd.addr.eq(0), rd.en.eq(1)]
                with m.If(self.send):
                    m.d.sync += index.eq(0)
                    m.next = "SCORES"
            with m.State("SCORES"):
                m.d.comb += [self.scores.valid.eq(1), rd.addr.eq(index + 1),
                             rd.en.eq(self.scores.ready)]
                with m.If(self.scores.ready):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == n - 1):
                        m.d.comb += self.sent.eq(1)
                        m.next = "IDLE"
        return m
