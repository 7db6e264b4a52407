"""The request parser: frames in, actions out (pixels, weight words, answers to send)."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import protocol as P
from .crc import crc8_next

#: what the control answerer sends for a request (the order of its answer table)
ANSWER_INFO, ANSWER_STATS, ANSWER_LOAD, ANSWER_ERROR, ANSWER_BENCH = range(5)

ANSWER = data.StructLayout({
    "kind": 3,  # ANSWER_*
    "code": 3,  # ERROR: the error code
    "cmd": 8,  # ERROR: the request's command
    "words": 16,  # LOAD: the words written
})


def load_word_layout(words: int, word_bits: int) -> data.StructLayout:
    return data.StructLayout({"addr": range(max(words, 2)), "data": word_bits})


class RequestParser(wiring.Component):
    """Reads request frames from the received bytes (docs/PROTOCOL.md) and acts on them.

    * RUN: the pixels go to the accelerator as they arrive (``pixels``); the checksum comes
      after the last one, so a verdict follows on ``verdicts`` (0, or the error that discards
      the image's result). A RUN that stops for ``timeout`` cycles is padded with zeros (the
      accelerator must finish the image) and its verdict is TIMEOUT.
    * RUNZ: the same image as (zeros, pixel) byte pairs: each pair's zero pixels, then its
      pixel, go to the accelerator; the pixels after the last pair are zeros. Pairs that
      describe more than ``n_pixels`` pixels: the rest is dropped and the verdict is LENGTH.
    * LOAD: waits until no RUN answer is outstanding, then writes each whole weight word as
      it arrives (``load``); words past the end are not written.
    * BENCH (a core with the on-chip throughput harness, ``bench``): waits until no RUN
      answer is outstanding, hands the image count to the harness (``bench``) and waits
      while it runs (``bench_busy``); then its answer.
    * PING, STATS, LOAD's answer, BENCH's, and every rejected frame: an answer request on
      ``answers``; the parser waits until it has been sent (so answers keep request order).
    Bytes outside a frame are dropped (``dropped`` pulses); a frame that stops for
    ``timeout`` cycles is abandoned with ERROR(TIMEOUT).

    Members
    -------
    rx: In(stream(8)) — the received bytes.
    pixels: Out(stream(8)) — a RUN's pixels.
    verdicts: Out(stream(3)) — one per RUN (into a FIFO; the parser waits if it is full).
    load: Out(stream(load_word_layout)) — LOAD's words; always ready.
    loaded: Out(stream(16)) — an accepted LOAD's word count; always ready.
    answers: Out(stream(ANSWER)) — taken when sent.
    runs_pending: In(1) — RUN answers are still to be sent.
    dropped: Out(1) — pulse: a byte outside any frame.
    bench: Out(stream(32)) — a BENCH request's image count (to the harness).
    bench_busy: In(1) — the harness is running.
    """

    def __init__(self, *, n_pixels: int, weight_words: int, word_bits: int, timeout: int,
                 bench: bool = False):
        self._n_pixels, self._timeout, self._bench = n_pixels, timeout, bench
        self._weight_words, self._word_bits = weight_words, word_bits
        self._word_bytes = (word_bits + 7) // 8
        super().__init__({
            "rx": In(stream.Signature(8)),
            "pixels": Out(stream.Signature(8)),
            "verdicts": Out(stream.Signature(3)),
            "load": Out(stream.Signature(load_word_layout(weight_words, word_bits),
                                         always_ready=True)),
            "loaded": Out(stream.Signature(16, always_ready=True)),
            "answers": Out(stream.Signature(ANSWER)),
            "runs_pending": In(1),
            "dropped": Out(1),
            "bench": Out(stream.Signature(32)),
            "bench_busy": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        wb = self._word_bytes
        byte, have = self.rx.payload, self.rx.valid
        header = Signal(24)  # CMD LEN_LO LEN_HI
        cmd, length = header[:8], header[8:]
        crc, count, hidx = Signal(8), Signal(16), Signal(range(3))
        code = self.answers.payload.code
        addr = Signal(8 * P.LOAD_ADDR_BYTES)
        word = Signal(8 * wb)
        wbyte = Signal(range(max(wb, 2)))
        nwords, bidx = Signal(16), Signal(range(P.LOAD_ADDR_BYTES))
        addr_err = Signal()
        crc_next = crc8_next(crc, byte)
        pos = Signal(range(self._n_pixels + 1))  # RUNZ: pixels sent so far
        zrun = Signal(8)  # RUNZ: zero pixels still to send before the pair's pixel
        zerr = Signal(3)  # RUNZ: the verdict if the checksum is right (LENGTH, TIMEOUT)
        full = pos == self._n_pixels
        run_ok, runz_ok, empty, load_ok, ctrl_ok, bench_ok, known, header_ok = (
            Signal(name=n) for n in ("run_ok", "runz_ok", "empty", "load_ok", "ctrl_ok",
                                     "bench_ok", "known", "header_ok"))
        is_bench = (cmd == P.Cmd.BENCH) if self._bench else Const(0, 1)
        new_word = Cat(word[8:], byte) if wb > 1 else byte
        m.d.comb += [self.answers.payload.cmd.eq(cmd), self.answers.payload.words.eq(nwords),
                     self.pixels.payload.eq(byte), self.loaded.payload.eq(nwords)]

        # the frame timeout: cycles without a byte while the parser waits inside a frame
        waiting = Signal()
        quiet = Signal(range(self._timeout + 1))
        timed_out = Signal()
        m.d.comb += timed_out.eq(quiet == self._timeout)
        with m.If(waiting & ~have):
            m.d.sync += quiet.eq(quiet + 1)
        with m.Else():
            m.d.sync += quiet.eq(0)

        with m.FSM(name="parser") as fsm:
            with m.State("HUNT"):
                with m.If(have):
                    with m.If(byte == P.SYNC):
                        m.d.sync += [crc.eq(0), hidx.eq(0)]
                        m.next = "HEADER"
                    with m.Else():
                        m.d.comb += self.dropped.eq(1)
            with m.State("HEADER"):  # CMD LEN_LO LEN_HI
                with m.If(have):
                    m.d.sync += [header.eq(Cat(header[8:], byte)), crc.eq(crc_next),
                                 hidx.eq(hidx + 1)]
                    with m.If(hidx == 2):
                        m.next = "DECIDE"
                with m.Elif(timed_out):
                    m.d.sync += code.eq(P.Err.TIMEOUT)
                    m.next = "ERROR"
            with m.State("DECIDE"):  # what the header asks for, registered (timing)
                m.d.sync += [
                    run_ok.eq((cmd == P.Cmd.RUN) & (length == self._n_pixels)),
                    runz_ok.eq((cmd == P.Cmd.RUNZ) & ~length[0]
                               & (length <= 2 * self._n_pixels)),
                    empty.eq(length == 0),
                    load_ok.eq((cmd == P.Cmd.LOAD) & (length >= P.LOAD_ADDR_BYTES + wb)),
                    ctrl_ok.eq(((cmd == P.Cmd.PING) | (cmd == P.Cmd.STATS)) & (length == 0)),
                    bench_ok.eq(is_bench & (length == P.BENCH_REQUEST_BYTES)),
                    known.eq((cmd == P.Cmd.RUN) | (cmd == P.Cmd.LOAD) | (cmd == P.Cmd.PING)
                             | (cmd == P.Cmd.STATS) | (cmd == P.Cmd.RUNZ) | is_bench),
                ]
                m.next = "HCRC"
            with m.State("HCRC"):  # the header's checksum, compared (registered: timing)
                with m.If(have):
                    m.d.sync += [crc.eq(0), count.eq(length), bidx.eq(0), pos.eq(0),
                                 zerr.eq(0), header_ok.eq(byte == crc)]
                    m.next = "ROUTE"
                with m.Elif(timed_out):
                    m.d.sync += code.eq(P.Err.TIMEOUT)
                    m.next = "ERROR"
            with m.State("ROUTE"):  # the header's checksum and command decide what follows
                with m.If(~header_ok):
                    m.d.sync += code.eq(P.Err.HEADER_CRC)
                    m.next = "ERROR"
                with m.Elif(run_ok):
                    m.next = "FEED"
                with m.Elif(runz_ok):
                    m.next = "ZSKIP"
                    with m.If(empty):
                        m.next = "ZFILL"
                with m.Elif(load_ok):
                    m.next = "LOAD_WAIT"
                with m.Elif(ctrl_ok):
                    m.next = "CHECK"
                with m.Elif(bench_ok):
                    m.next = "BENCH_ARGS"
                with m.Else():
                    m.d.sync += code.eq(Mux(known, P.Err.LENGTH, P.Err.COMMAND))
                    m.next = "SKIP"
            with m.State("SKIP"):  # a rejected frame's payload and checksum
                with m.If(have):
                    m.d.sync += count.eq(count - 1)
                    with m.If(count == 0):
                        m.next = "ERROR"
                with m.Elif(timed_out):
                    m.d.sync += code.eq(P.Err.TIMEOUT)
                    m.next = "ERROR"
            with m.State("FEED"):  # a RUN's pixels, as the accelerator takes them
                m.d.comb += [self.pixels.valid.eq(have), self.rx.ready.eq(self.pixels.ready)]
                with m.If(have & self.pixels.ready):
                    m.d.sync += [crc.eq(crc_next), count.eq(count - 1)]
                    with m.If(count == 1):
                        m.next = "RUN_CRC"
                with m.Elif(timed_out):
                    m.next = "PAD"
            with m.State("PAD"):  # an abandoned RUN: zeros push the accelerator through
                m.d.comb += [self.pixels.valid.eq((count != 1) | self.verdicts.ready),
                             self.pixels.payload.eq(0)]
                with m.If(self.pixels.valid & self.pixels.ready):
                    m.d.sync += count.eq(count - 1)
                    with m.If(count == 1):
                        m.d.comb += [self.verdicts.valid.eq(1),
                                     self.verdicts.payload.eq(P.Err.TIMEOUT)]
                        m.next = "HUNT"
            with m.State("ZSKIP"):  # RUNZ: a pair's zero count
                with m.If(have):
                    m.d.sync += [zrun.eq(byte), crc.eq(crc_next), count.eq(count - 1)]
                    m.next = "ZZERO"
                with m.Elif(timed_out):
                    m.d.sync += zerr.eq(P.Err.TIMEOUT)
                    m.next = "ZFILL"
            with m.State("ZZERO"):  # RUNZ: the pair's zero pixels
                with m.If(zrun == 0):
                    m.next = "ZVAL"
                with m.Elif(full):
                    m.d.sync += zerr.eq(P.Err.LENGTH)
                    m.next = "ZDRAIN"
                with m.Else():
                    m.d.comb += [self.pixels.valid.eq(1), self.pixels.payload.eq(0)]
                    with m.If(self.pixels.ready):
                        m.d.sync += [zrun.eq(zrun - 1), pos.eq(pos + 1)]
            with m.State("ZVAL"):  # RUNZ: the pair's pixel
                with m.If(full):
                    m.d.sync += zerr.eq(P.Err.LENGTH)
                    m.next = "ZDRAIN"
                with m.Else():
                    m.d.comb += [self.pixels.valid.eq(have),
                                 self.rx.ready.eq(self.pixels.ready)]
                    with m.If(have & self.pixels.ready):
                        m.d.sync += [crc.eq(crc_next), count.eq(count - 1), pos.eq(pos + 1)]
                        m.next = "ZSKIP"
                        with m.If(count == 1):
                            m.next = "ZFILL"
                    with m.Elif(timed_out):
                        m.d.sync += zerr.eq(P.Err.TIMEOUT)
                        m.next = "ZFILL"
            with m.State("ZDRAIN"):  # RUNZ: pairs past the image's end (checksummed, dropped)
                with m.If(have):
                    m.d.sync += [crc.eq(crc_next), count.eq(count - 1)]
                    with m.If(count == 1):
                        m.next = "RUN_CRC"
                with m.Elif(timed_out):
                    m.d.sync += zerr.eq(P.Err.TIMEOUT)
                    m.next = "ZFILL"
            with m.State("ZFILL"):  # RUNZ: zeros to the image's end (also after a timeout)
                with m.If(~full):
                    m.d.comb += [self.pixels.valid.eq(1), self.pixels.payload.eq(0)]
                    with m.If(self.pixels.ready):
                        m.d.sync += pos.eq(pos + 1)
                with m.Elif(zerr == P.Err.TIMEOUT):
                    m.d.comb += [self.verdicts.valid.eq(1),
                                 self.verdicts.payload.eq(P.Err.TIMEOUT)]
                    with m.If(self.verdicts.ready):
                        m.next = "HUNT"
                with m.Else():
                    m.next = "RUN_CRC"
            with m.State("RUN_CRC"):
                m.d.comb += self.rx.ready.eq(self.verdicts.ready)
                with m.If(have & self.verdicts.ready):
                    m.d.comb += [self.verdicts.valid.eq(1),
                                 self.verdicts.payload.eq(Mux(byte == crc, zerr,
                                                              P.Err.PAYLOAD_CRC))]
                    m.next = "HUNT"
                with m.Elif(timed_out & self.verdicts.ready):
                    m.d.comb += [self.verdicts.valid.eq(1),
                                 self.verdicts.payload.eq(P.Err.TIMEOUT)]
                    m.next = "HUNT"
            with m.State("BENCH_ARGS"):  # BENCH: the image count
                with m.If(have):
                    m.d.sync += [addr.eq(Cat(addr[8:], byte)), crc.eq(crc_next),
                                 bidx.eq(bidx + 1)]
                    with m.If(bidx == P.BENCH_REQUEST_BYTES - 1):
                        m.next = "CHECK"
                with m.Elif(timed_out):
                    m.d.sync += code.eq(P.Err.TIMEOUT)
                    m.next = "ERROR"
            with m.State("BENCH_WAIT"):  # the RUN answers before it out, then the harness
                m.d.comb += [self.bench.valid.eq(~self.runs_pending),
                             self.bench.payload.eq(addr)]
                with m.If(self.bench.valid & self.bench.ready):
                    m.next = "BENCH_RUN"
            with m.State("BENCH_RUN"):
                with m.If(~self.bench_busy):
                    m.d.sync += self.answers.payload.kind.eq(ANSWER_BENCH)
                    m.next = "ANSWER"
            with m.State("LOAD_WAIT"):  # the accelerator must be idle before weights change
                with m.If(~self.runs_pending):
                    m.next = "LOAD_ADDR"
            with m.State("LOAD_ADDR"):
                with m.If(have):
                    m.d.sync += [addr.eq(Cat(addr[8:], byte)), crc.eq(crc_next),
                                 count.eq(count - 1), bidx.eq(bidx + 1)]
                    with m.If(bidx == P.LOAD_ADDR_BYTES - 1):
                        m.d.sync += [wbyte.eq(0), nwords.eq(0), addr_err.eq(0)]
                        m.next = "LOAD_DATA"
                with m.Elif(timed_out):
                    m.d.sync += code.eq(P.Err.TIMEOUT)
                    m.next = "ERROR"
            with m.State("LOAD_DATA"):  # each whole word is written as it completes
                with m.If(have):
                    m.d.sync += [word.eq(new_word), crc.eq(crc_next), count.eq(count - 1),
                                 wbyte.eq(wbyte + 1)]
                    with m.If(wbyte == wb - 1):
                        m.d.sync += [wbyte.eq(0), addr.eq(addr + 1), nwords.eq(nwords + 1)]
                        with m.If(addr < self._weight_words):
                            m.d.comb += [self.load.valid.eq(1),
                                         self.load.payload.addr.eq(addr),
                                         self.load.payload.data.eq(
                                             new_word[:self._word_bits])]
                        with m.Else():
                            m.d.sync += addr_err.eq(1)
                    with m.If(count == 1):
                        m.next = "CHECK"
                with m.Elif(timed_out):
                    m.d.sync += code.eq(P.Err.TIMEOUT)
                    m.next = "ERROR"
            with m.State("CHECK"):  # the payload checksum of LOAD, PING, STATS
                is_load = cmd == P.Cmd.LOAD
                with m.If(have):
                    with m.If(byte != crc):
                        m.d.sync += code.eq(P.Err.PAYLOAD_CRC)
                        m.next = "ERROR"
                    with m.Elif(is_load & (wbyte != 0)):
                        m.d.sync += code.eq(P.Err.LENGTH)
                        m.next = "ERROR"
                    with m.Elif(is_load & addr_err):
                        m.d.sync += code.eq(P.Err.ADDRESS)
                        m.next = "ERROR"
                    with m.Elif(is_bench):
                        m.next = "BENCH_WAIT"
                    with m.Else():
                        m.d.comb += self.loaded.valid.eq(is_load)
                        m.d.sync += self.answers.payload.kind.eq(
                            Mux(is_load, ANSWER_LOAD,
                                Mux(cmd == P.Cmd.PING, ANSWER_INFO, ANSWER_STATS)))
                        m.next = "ANSWER"
                with m.Elif(timed_out):
                    m.d.sync += code.eq(P.Err.TIMEOUT)
                    m.next = "ERROR"
            with m.State("ERROR"):
                m.d.sync += self.answers.payload.kind.eq(ANSWER_ERROR)
                m.next = "ANSWER"
            with m.State("ANSWER"):  # sent after every RUN answer before it
                m.d.comb += self.answers.valid.eq(1)
                with m.If(self.answers.ready):
                    m.next = "HUNT"

        # the states that take any byte as it comes; the states inside a frame time out
        byte_states = ("HEADER", "HCRC", "SKIP", "LOAD_ADDR", "LOAD_DATA", "CHECK", "ZSKIP",
                       "ZDRAIN", "BENCH_ARGS")
        m.d.comb += waiting.eq(fsm.ongoing("FEED") | fsm.ongoing("RUN_CRC")
                               | (fsm.ongoing("ZVAL") & ~full)
                               | Cat(fsm.ongoing(s) for s in byte_states).any())
        with m.If(Cat(fsm.ongoing(s) for s in ("HUNT", *byte_states)).any()):
            m.d.comb += self.rx.ready.eq(1)
        return m
