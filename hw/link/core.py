"""The board core: the accelerator behind a UART that speaks ``gxnor.hw.link.protocol``.

:class:`BoardCore` is everything on the FPGA except clocking and pins (``gxnor.hw.boards`` adds
those per board), so the same design runs in cocotb with the host client talking to its
``rx`` / ``tx`` pins (``gxnor.host.simboard``).

Data path::

    rx -> UARTRx -> FIFO -> parser --pixels--> Accelerator --scores/result--> answerer
                               |  \\--LOAD--> weight memory <--read-- Accelerator
                               \\--INFO/STATS/LOAD/ERROR answers--> FrameTx -> UARTTx -> tx

* The receive FIFO (``fifo_depth`` bytes, one block RAM) takes bytes at line rate while the
  accelerator computes, so RUN frames can come back to back; a byte that finds it full is
  counted in ``rx_errors``.
* RUN pixels stream into the accelerator as they arrive; the payload checksum comes after the
  last pixel, so the parser queues a verdict per image and the answerer sends either the
  result or ``ERROR(PAYLOAD_CRC)`` (the result is discarded). Answers keep request order: the
  parser answers other requests only when no RUN answer is outstanding, and a LOAD waits for
  the accelerator to be idle before it writes.
* A frame that stops for ``timeout`` cycles is abandoned (a RUN is padded with zero pixels and
  its result discarded) and answered with ``ERROR(TIMEOUT)``.
* Weight memory: ``"rom"`` (initialised from the export, still writable by LOAD), ``"ram"``
  (starts empty: LOAD first, as on SPRAM) or ``"spram"`` (iCE40UP5K SB_SPRAM256KA blocks).
"""


import math

from amaranth.hdl import Array, Cat, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from gxnor.base.errors import InputError

from ..accelerator import Accelerator
from ..spec import AcceleratorSpec
from . import protocol as P
from .uart import UARTRx, UARTTx

WEIGHT_MEMORIES = ("rom", "ram", "spram")
# the parser's answers, in the order of its answer table
ANSWER_INFO, ANSWER_STATS, ANSWER_LOAD, ANSWER_ERROR = range(4)
SPRAM_WORDS, SPRAM_BITS, SPRAM_BLOCKS = 16384, 16, 4


def crc8_next(crc, byte):
    """Combinational CRC-8 step, the same function as ``protocol.crc8_update``.

    The CRC is linear over GF(2) with initial value 0, so ``CRC8_TABLE[x]`` is the XOR of
    ``CRC8_TABLE[1 << i]`` over the set bits i of x: each output bit is an XOR of input bits.
    """
    x = (crc ^ byte)[:8]
    bits = []
    for j in range(8):
        taps = [x[i] for i in range(8) if (P.CRC8_TABLE[1 << i] >> j) & 1]
        v = taps[0]
        for t in taps[1:]:
            v = v ^ t
        bits.append(v)
    return Cat(*bits)


def _pack(layout, values: dict):
    """A Cat() of a protocol payload layout's fields (little-endian): the payload as bits.
    ``values`` holds an int, bytes or a Value per field."""
    parts = []
    for name, size in P.field_bytes(layout):
        v = values[name]
        if isinstance(v, bytes):
            v = int.from_bytes(v, "little")
        if isinstance(v, int):
            parts.append(Const(v, 8 * size))
        elif len(v) >= 8 * size:
            parts.append(v.as_unsigned()[:8 * size])
        else:
            parts.append(Cat(v, Const(0, 8 * size - len(v))))
    return Cat(*parts)


class FrameTx(wiring.Component):
    """Wraps ``length`` payload bytes from ``data`` in a frame (SYNC, command, length, header
    CRC, payload, payload CRC) on ``out``. Pulse ``start`` (with ``cmd``, ``length``) while
    ``idle``; the payload bytes are taken after the header."""

    start: In(1)
    cmd: In(8)
    length: In(16)
    idle: Out(1)
    data: In(stream.Signature(8))
    out: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        cmd, length = Signal(8), Signal(16)
        crc = Signal(8)
        left = Signal(16)
        hdr = Array([Const(P.SYNC, 8), cmd, length[:8], length[8:], crc])
        hidx = Signal(range(5))
        # the CRC takes each sent byte one cycle later (off the payload's path); a CRC byte
        # goes out only when no update is pending
        crc_byte, crc_pending = Signal(8), Signal()
        fold = Signal()
        m.d.sync += [crc_byte.eq(self.out.payload), crc_pending.eq(fold)]
        with m.If(crc_pending):
            m.d.sync += crc.eq(crc8_next(crc, crc_byte))
        with m.FSM(name="frame_tx"):
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(~crc_pending)
                with m.If(self.start & ~crc_pending):
                    m.d.sync += [cmd.eq(self.cmd), length.eq(self.length), hidx.eq(0),
                                 crc.eq(0)]
                    m.next = "HEADER"
            with m.State("HEADER"):
                m.d.comb += [self.out.valid.eq((hidx != 4) | ~crc_pending),
                             self.out.payload.eq(hdr[hidx])]
                with m.If(self.out.valid & self.out.ready):
                    m.d.sync += hidx.eq(hidx + 1)
                    m.d.comb += fold.eq((hidx != 0) & (hidx != 4))
                    with m.If(hidx == 4):
                        m.d.sync += [crc.eq(0), left.eq(length)]
                        with m.If(length == 0):
                            m.next = "CRC"
                        with m.Else():
                            m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [self.out.valid.eq(self.data.valid),
                             self.out.payload.eq(self.data.payload),
                             self.data.ready.eq(self.out.ready)]
                with m.If(self.data.valid & self.out.ready):
                    m.d.comb += fold.eq(1)
                    m.d.sync += left.eq(left - 1)
                    with m.If(left == 1):
                        m.next = "CRC"
            with m.State("CRC"):
                m.d.comb += [self.out.valid.eq(~crc_pending), self.out.payload.eq(crc)]
                with m.If(self.out.valid & self.out.ready):
                    m.next = "IDLE"
        return m


class WeightStore(wiring.Component):
    """The weight memory: one port, synchronous read (data the cycle after the address);
    ``we`` writes ``wdata`` at ``addr`` instead of reading."""

    def __init__(self, depth: int, width: int, kind: str, init=()):
        if kind not in WEIGHT_MEMORIES:
            raise ValueError(f"weight memory must be one of {WEIGHT_MEMORIES}, got {kind!r}")
        self._depth, self._width, self._kind, self._init = depth, width, kind, list(init)
        if kind == "spram":
            cols = math.ceil(width / SPRAM_BITS)
            rows = math.ceil(depth / SPRAM_WORDS)
            if cols * rows > SPRAM_BLOCKS:
                raise InputError(f"weights need {cols} x {rows} SPRAM blocks ({width}-bit words "
                                 f"x {depth}); the iCE40UP5K has {SPRAM_BLOCKS}: use fewer lanes "
                                 "or a smaller network")
        super().__init__({
            "addr": In(range(max(depth, 2))),
            "wdata": In(width),
            "we": In(1),
            "rdata": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        if self._kind != "spram":
            m.submodules.mem = mem = memory.Memory(
                shape=self._width, depth=self._depth,
                init=self._init if self._kind == "rom" else [])
            rd, wr = mem.read_port(), mem.write_port()
            m.d.comb += [rd.addr.eq(self.addr), wr.addr.eq(self.addr), wr.data.eq(self.wdata),
                         wr.en.eq(self.we), rd.en.eq(~self.we), self.rdata.eq(rd.data)]
            return m
        cols = math.ceil(self._width / SPRAM_BITS)
        rows = math.ceil(self._depth / SPRAM_WORDS)
        row = self.addr[14:] if rows > 1 else Const(0, 1)
        row_q = Signal.like(row)
        m.d.sync += row_q.eq(row)
        outs = []
        for r in range(rows):
            parts = []
            for c in range(cols):
                dout = Signal(SPRAM_BITS, name=f"spram{r}_{c}_out")
                m.submodules[f"spram{r}_{c}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=self.addr[:14], i_DATAIN=self.wdata.word_select(c, SPRAM_BITS),
                    i_MASKWREN=Const(0b1111, 4), i_WREN=self.we & (row == r),
                    i_CHIPSELECT=Const(1, 1), i_CLOCK=ClockSignal("sync"),
                    i_STANDBY=Const(0, 1), i_SLEEP=Const(0, 1),
                    i_POWEROFF=Const(1, 1), o_DATAOUT=dout)
                parts.append(dout)
            outs.append(Cat(*parts)[:self._width])
        m.d.comb += self.rdata.eq(Array(outs)[row_q] if rows > 1 else outs[0])
        return m


def core_info(spec: AcceleratorSpec, *, divisor: int, weights: str = "rom", clock_hz: int = 0,
              net_id: int = 0, loaded_words: int = 0, **_) -> P.Info:
    """The INFO a :class:`BoardCore` with these parameters answers to PING."""
    return P.Info(P.MAGIC, P.VERSION, spec.lanes, spec.n_pixels, spec.num_classes,
                  len(spec.layers), P.score_bytes(spec.score_bits), spec.word_bytes,
                  spec.weight_words, net_id, int(weights != "rom"), loaded_words,
                  int(clock_hz), divisor)


class BoardCore(wiring.Component):
    """The accelerator with its UART protocol engine (see the module docstring).

    Parameters: ``spec`` (:class:`AcceleratorSpec`), ``divisor`` (clock cycles per UART bit),
    ``weights`` (``"rom"``, ``"ram"`` or ``"spram"``), ``timeout`` (cycles without a byte
    that abandon a frame), ``clock_hz`` and ``net_id`` (reported by PING), ``fifo_depth``.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    activity: Out(1)  # toggles with every answered RUN (an LED)
    loaded: Out(1)  # the whole weight memory has been written (or is a ROM)

    def __init__(self, spec: AcceleratorSpec, *, divisor: int, weights: str = "rom",
                 timeout: int = 1 << 20, clock_hz: int = 0, net_id: int = 0,
                 fifo_depth: int = 512):
        if not isinstance(spec, AcceleratorSpec):
            raise TypeError(f"spec must be an AcceleratorSpec, got {spec!r}")
        if weights not in WEIGHT_MEMORIES:
            raise ValueError(f"weights must be one of {WEIGHT_MEMORIES}, got {weights!r}")
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
        super().__init__()

    @property
    def score_bytes(self) -> int:
        return P.score_bytes(self._spec.score_bits)

    def info(self, loaded_words: int = 0) -> P.Info:
        """What PING answers (``loaded_words`` is live in the hardware)."""
        return core_info(self._spec, divisor=self._divisor, weights=self._weights,
                         clock_hz=self._clock_hz, net_id=self._net_id,
                         loaded_words=loaded_words)

    def elaborate(self, platform):
        spec = self._spec
        m = Module()
        n_layers, n_cls = len(spec.layers), spec.num_classes
        sb, wb = self.score_bytes, spec.word_bytes

        m.submodules.uart_rx = urx = UARTRx(self._divisor)
        m.submodules.uart_tx = utx = UARTTx(self._divisor)
        m.submodules.rx_fifo = rxf = fifo.SyncFIFOBuffered(width=8, depth=self._fifo_depth)
        m.submodules.frame_tx = ftx = FrameTx()
        m.submodules.accel = acc = Accelerator(spec, external_weights=True)
        m.submodules.weights = wst = WeightStore(spec.weight_words, spec.word_bits,
                                                 self._weights, spec.words)
        m.submodules.verdicts = vq = fifo.SyncFIFO(width=3, depth=4)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        wiring.connect(m, ftx.out, utx.data)

        # statistics
        images, errors, dropped, rx_errors = (Signal(32, name=n) for n, _ in P.STATS_LAYOUT)
        loaded_words = Signal(32)
        m.d.comb += self.loaded.eq((self._weights == "rom") | (loaded_words >= spec.weight_words))

        # receive: UART -> FIFO (a full FIFO drops the byte and counts it)
        m.d.comb += [rxf.w_data.eq(urx.data.payload), rxf.w_en.eq(urx.data.valid),
                     urx.data.ready.eq(1)]
        with m.If((urx.data.valid & ~rxf.w_rdy) | urx.framing_error):
            m.d.sync += rx_errors.eq(rx_errors + 1)
        # one register stage between the FIFO's block RAM and the parser (timing)
        byte, have = Signal(8), Signal()
        take = Signal()
        with m.If(~have | take):
            m.d.comb += rxf.r_en.eq(1)
            m.d.sync += [byte.eq(rxf.r_data), have.eq(rxf.r_rdy)]

        # weights: the LOAD writer, else the accelerator reads
        w_addr, w_data, w_en = Signal.like(wst.addr), Signal(spec.word_bits), Signal()
        m.d.comb += [wst.addr.eq(Mux(w_en, w_addr, acc.weight_addr)), wst.wdata.eq(w_data),
                     wst.we.eq(w_en), acc.weight_data.eq(wst.rdata)]

        inflight = Signal(range(4))
        inc, dec = Signal(), Signal()
        m.d.sync += inflight.eq(inflight + inc - dec)
        tx_src = Signal()  # 0: parser answers, 1: RUN answers (exclusive by construction)
        m.d.comb += tx_src.eq(inflight != 0)

        # ---- parser --------------------------------------------------------------------
        cmd, length, crc, count = Signal(8), Signal(16), Signal(8), Signal(16)
        code = Signal(3)
        kind = Signal(2)  # ANSWER_*
        addr = Signal(8 * P.LOAD_ADDR_BYTES)
        word = Signal(8 * wb)
        wbyte = Signal(range(max(wb, 2)))
        nwords, bidx = Signal(16), Signal(16)
        addr_err = Signal()
        quiet = Signal(range(self._timeout + 1))
        waiting = Signal()
        timed_out = Signal()
        m.d.comb += timed_out.eq(quiet == self._timeout)
        with m.If(waiting & ~have):
            m.d.sync += quiet.eq(quiet + 1)
        with m.Else():
            m.d.sync += quiet.eq(0)
        crc_next = crc8_next(crc, byte)
        new_word = Cat(word[8:], byte) if wb > 1 else byte

        info_vec = _pack(P.INFO_LAYOUT, {**self.info().__dict__, "loaded_words": loaded_words})
        stats_vec = _pack(P.STATS_LAYOUT, {"images": images, "errors": errors,
                                           "dropped": dropped, "rx_errors": rx_errors})
        answers = [  # (command, payload bits) per ANSWER_*
            (P.Cmd.PING | P.RESPONSE, info_vec),
            (P.Cmd.STATS | P.RESPONSE, stats_vec),
            (P.Cmd.LOAD | P.RESPONSE, _pack(P.LOAD_ANSWER_LAYOUT, {"words": nwords})),
            (P.ERROR_ANSWER, _pack(P.ERROR_LAYOUT, {"code": code, "cmd": cmd})),
        ]
        ans_cmd = Array(Const(int(a[0]), 8) for a in answers)[kind]
        ans_len = Array(Const(len(a[1]) // 8, 16) for a in answers)[kind]
        ans_byte = Array(a[1].word_select(bidx[:6], 8) for a in answers)[kind]
        p_valid, p_byte = Signal(), Signal(8)

        def timeout_to(state_if_feed=None):
            with m.Elif(timed_out):
                if state_if_feed:
                    m.next = state_if_feed
                else:
                    fail(P.Err.TIMEOUT)

        def fail(err):
            m.d.sync += code.eq(err)
            m.next = "ERROR"

        def payload_end(checks, on_ok):
            """The payload checksum byte: a bad checksum, then each (condition, error) of
            ``checks``, answer ERROR; otherwise ``on_ok()`` and ANSWER."""
            m.d.comb += [take.eq(have), waiting.eq(1)]
            with m.If(have):
                with m.If(byte != crc):
                    fail(P.Err.PAYLOAD_CRC)
                for cond, err in checks:
                    with m.Elif(cond):
                        fail(err)
                with m.Else():
                    on_ok()
                    m.next = "ANSWER"
            timeout_to()

        def header_byte(field, nxt):
            m.d.comb += [take.eq(have), waiting.eq(1)]
            with m.If(have):
                m.d.sync += [field.eq(byte), crc.eq(crc_next)]
                m.next = nxt
            timeout_to()

        with m.FSM(name="parser"):
            with m.State("HUNT"):
                m.d.comb += take.eq(have)
                with m.If(have):
                    with m.If(byte == P.SYNC):
                        m.d.sync += crc.eq(0)
                        m.next = "CMD"
                    with m.Else():
                        m.d.sync += dropped.eq(dropped + 1)
            with m.State("CMD"):
                header_byte(cmd, "LEN0")
            with m.State("LEN0"):
                header_byte(length[:8], "LEN1")
            with m.State("LEN1"):
                header_byte(length[8:], "HCRC")
            with m.State("HCRC"):
                m.d.comb += [take.eq(have), waiting.eq(1)]
                with m.If(have):
                    m.d.sync += [crc.eq(0), count.eq(length)]
                    with m.If(byte != crc):
                        fail(P.Err.HEADER_CRC)
                    with m.Elif(cmd == P.Cmd.RUN):
                        with m.If(length == spec.n_pixels):
                            m.next = "FEED"
                        with m.Else():
                            m.d.sync += code.eq(P.Err.LENGTH)
                            m.next = "SKIP"
                    with m.Elif(cmd == P.Cmd.LOAD):
                        with m.If(length >= P.LOAD_ADDR_BYTES + wb):
                            m.d.sync += bidx.eq(0)
                            m.next = "LOAD_WAIT"
                        with m.Else():
                            m.d.sync += code.eq(P.Err.LENGTH)
                            m.next = "SKIP"
                    with m.Elif((cmd == P.Cmd.PING) | (cmd == P.Cmd.STATS)):
                        with m.If(length == 0):
                            m.next = "CTRL_CRC"
                        with m.Else():
                            m.d.sync += code.eq(P.Err.LENGTH)
                            m.next = "SKIP"
                    with m.Else():
                        m.d.sync += code.eq(P.Err.COMMAND)
                        m.next = "SKIP"
                timeout_to()
            with m.State("SKIP"):  # the payload and its checksum of a rejected frame
                m.d.comb += [take.eq(have), waiting.eq(1)]
                with m.If(have):
                    m.d.sync += count.eq(count - 1)
                    with m.If(count == 0):
                        m.next = "ERROR"
                timeout_to()
            with m.State("FEED"):
                m.d.comb += [acc.pixels.valid.eq(have), acc.pixels.payload.eq(byte),
                             take.eq(have & acc.pixels.ready), waiting.eq(1)]
                with m.If(take):
                    m.d.sync += [crc.eq(crc_next), count.eq(count - 1)]
                    with m.If(count == 1):
                        m.next = "RUN_CRC"
                timeout_to("PAD")
            with m.State("PAD"):  # an abandoned RUN: zeros push the accelerator through
                m.d.comb += [acc.pixels.valid.eq(1), acc.pixels.payload.eq(0)]
                with m.If(acc.pixels.ready):
                    m.d.sync += count.eq(count - 1)
                    with m.If(count == 1):
                        m.d.comb += [vq.w_en.eq(1), vq.w_data.eq(P.Err.TIMEOUT), inc.eq(1)]
                        m.next = "HUNT"
            with m.State("RUN_CRC"):
                m.d.comb += [take.eq(have), waiting.eq(1)]
                with m.If(have):
                    m.d.comb += [vq.w_en.eq(1), inc.eq(1),
                                 vq.w_data.eq(Mux(byte == crc, 0, P.Err.PAYLOAD_CRC))]
                    m.next = "HUNT"
                with m.Elif(timed_out):
                    m.d.comb += [vq.w_en.eq(1), inc.eq(1), vq.w_data.eq(P.Err.TIMEOUT)]
                    m.next = "HUNT"
            with m.State("LOAD_WAIT"):  # the accelerator must be idle before weights change
                with m.If(inflight == 0):
                    m.next = "LOAD_ADDR"
            with m.State("LOAD_ADDR"):
                m.d.comb += [take.eq(have), waiting.eq(1)]
                with m.If(have):
                    m.d.sync += [addr.eq(Cat(addr[8:], byte)), crc.eq(crc_next),
                                 count.eq(count - 1), bidx.eq(bidx + 1)]
                    with m.If(bidx == P.LOAD_ADDR_BYTES - 1):
                        m.d.sync += [wbyte.eq(0), nwords.eq(0), addr_err.eq(0)]
                        m.next = "LOAD_DATA"
                timeout_to()
            with m.State("LOAD_DATA"):
                m.d.comb += [take.eq(have), waiting.eq(1)]
                with m.If(have):
                    m.d.sync += [word.eq(new_word), crc.eq(crc_next), count.eq(count - 1),
                                 wbyte.eq(wbyte + 1)]
                    with m.If(wbyte == wb - 1):
                        m.d.sync += [wbyte.eq(0), addr.eq(addr + 1), nwords.eq(nwords + 1)]
                        with m.If(addr < spec.weight_words):
                            m.d.comb += [w_en.eq(1), w_addr.eq(addr),
                                         w_data.eq(new_word[:spec.word_bits])]
                        with m.Else():
                            m.d.sync += addr_err.eq(1)
                    with m.If(count == 1):
                        m.next = "LOAD_CRC"
                timeout_to()
            with m.State("LOAD_CRC"):
                def loaded():
                    m.d.sync += [loaded_words.eq(loaded_words + nwords), kind.eq(ANSWER_LOAD)]
                payload_end([(wbyte != 0, P.Err.LENGTH), (addr_err, P.Err.ADDRESS)], loaded)
            with m.State("CTRL_CRC"):
                def ctrl():
                    m.d.sync += kind.eq(Mux(cmd == P.Cmd.PING, ANSWER_INFO, ANSWER_STATS))
                payload_end([], ctrl)
            with m.State("ERROR"):
                m.d.sync += kind.eq(ANSWER_ERROR)
                m.next = "ANSWER"
            with m.State("ANSWER"):  # after every RUN answer before it, in request order
                with m.If((inflight == 0) & ftx.idle):
                    m.d.comb += [ftx.start.eq(1), ftx.cmd.eq(ans_cmd), ftx.length.eq(ans_len)]
                    m.d.sync += bidx.eq(0)
                    with m.If(kind == ANSWER_ERROR):
                        m.d.sync += errors.eq(errors + 1)
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [p_valid.eq(1), p_byte.eq(ans_byte)]
                with m.If(ftx.data.ready):
                    m.d.sync += bidx.eq(bidx + 1)
                    with m.If(bidx == ans_len - 1):
                        m.next = "HUNT"

        # ---- RUN answers -----------------------------------------------------------------
        run_len = P.run_answer_bytes(n_cls, sb, n_layers)
        res = acc.result.payload
        result_bits = Cat(res.cls, Const(0, 8 * P.CLASS_BYTES - len(res.cls)), res.cycles,
                          *res.events)
        assert len(result_bits) == 8 * (run_len - n_cls * sb)
        run_error = _pack(P.ERROR_LAYOUT, {"code": vq.r_data, "cmd": P.Cmd.RUN})
        r_valid, r_byte = Signal(), Signal(8)
        score_ext = Signal(8 * sb)  # the score sign-extended to whole bytes
        m.d.comb += score_ext.eq(acc.scores.payload.as_signed())
        ridx = Signal(range(max(sb, len(result_bits) // 8) + 1))
        nscore = Signal(range(n_cls + 1))
        activity = Signal()
        m.d.comb += self.activity.eq(activity)

        def send_value(valid, bits, on_last):
            """Hand ``bits`` to the frame writer a byte at a time (while ``valid``); with its
            last byte, ``on_last()`` (which acknowledges the source)."""
            m.d.comb += [r_valid.eq(valid), r_byte.eq(bits.word_select(ridx, 8))]
            with m.If(valid & ftx.data.ready):
                m.d.sync += ridx.eq(ridx + 1)
                with m.If(ridx == len(bits) // 8 - 1):
                    m.d.sync += ridx.eq(0)
                    on_last()

        with m.FSM(name="answer"):
            with m.State("WAIT"):
                with m.If(vq.r_rdy & ftx.idle):
                    with m.If(vq.r_data == 0):
                        m.d.comb += [ftx.start.eq(1), ftx.cmd.eq(P.Cmd.RUN | P.RESPONSE),
                                     ftx.length.eq(run_len)]
                        m.d.sync += [ridx.eq(0), nscore.eq(0)]
                        m.next = "SCORES"
                    with m.Else():
                        m.next = "DISCARD"
            with m.State("SCORES"):
                def score_sent():
                    m.d.comb += acc.scores.ready.eq(1)
                    m.d.sync += nscore.eq(nscore + 1)
                    with m.If(nscore == n_cls - 1):
                        m.next = "RESULT"
                send_value(acc.scores.valid, score_ext, score_sent)
            with m.State("RESULT"):
                def result_sent():
                    m.d.comb += acc.result.ready.eq(1)
                    m.d.sync += images.eq(images + 1)
                    m.next = "DONE"
                send_value(acc.result.valid, result_bits, result_sent)
            with m.State("DISCARD"):  # a rejected RUN: drop its result, answer ERROR
                m.d.comb += [acc.scores.ready.eq(1), acc.result.ready.eq(ftx.idle)]
                with m.If(acc.result.valid & ftx.idle):
                    m.d.comb += [ftx.start.eq(1), ftx.cmd.eq(P.ERROR_ANSWER),
                                 ftx.length.eq(len(run_error) // 8)]
                    m.d.sync += [ridx.eq(0), errors.eq(errors + 1)]
                    m.next = "ERROR"
            with m.State("ERROR"):
                def error_sent():
                    m.next = "DONE"
                send_value(Const(1), run_error, error_sent)
            with m.State("DONE"):  # the frame's checksum is out: next answer
                with m.If(ftx.idle):
                    m.d.comb += [vq.r_en.eq(1), dec.eq(1)]
                    m.d.sync += activity.eq(~activity)
                    m.next = "WAIT"

        m.d.comb += [
            ftx.data.valid.eq(Mux(tx_src, r_valid, p_valid)),
            ftx.data.payload.eq(Mux(tx_src, r_byte, p_byte)),
        ]
        return m
