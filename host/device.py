"""The host runtime: ``gxnor run``. One client (:class:`Device`) for the board's UART protocol
(``gxnor.hw.link.protocol``) over any byte transport: a serial port (pyserial), or the board core
running in cocotb (``--sim``, see ``gxnor.host.simboard``), so the same code that drives a
real board is tested without one.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import numpy as np

from gxnor.base.errors import InputError
from gxnor.hw.link import protocol as P


class Device:
    """A gxnor board behind a byte transport with ``write(bytes)`` and ``read(n) -> bytes``
    (fewer bytes than asked, or none, means the read timed out)."""

    def __init__(self, transport):
        self.transport = transport
        self.reader = P.FrameReader()
        self._frames: deque = deque()
        self.info: P.Info | None = None

    # ---- frames ------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self.transport.write(bytes(data))

    def read_frame(self) -> tuple[int, bytes]:
        while not self._frames:
            data = self.transport.read(self.reader.needed())
            if not data:
                raise TimeoutError("no answer from the board (is it configured with the gxnor "
                                   "bitstream, and the port / baud rate right?)")
            self._frames.extend(self.reader.feed(data))
        return self._frames.popleft()

    def answer(self, request_cmd: int) -> bytes:
        """The next answer's payload; an ERROR answer raises :class:`protocol.DeviceError`."""
        cmd, payload = self.read_frame()
        if cmd == P.ERROR_ANSWER:
            err = P.decode_layout(P.ERROR_LAYOUT, payload, "ERROR")
            raise P.DeviceError(err["code"], err["cmd"])
        if cmd != request_cmd | P.RESPONSE:
            raise P.ProtocolError(f"answer 0x{cmd:02x} to request 0x{request_cmd:02x}")
        return payload

    def request(self, cmd: int, payload: bytes = b"") -> bytes:
        self.send(P.frame(cmd, payload))
        return self.answer(cmd)

    # ---- commands ----------------------------------------------------------------------
    def ping(self) -> P.Info:
        self.info = P.Info.decode(self.request(P.Cmd.PING))
        return self.info

    def stats(self) -> dict:
        return P.decode_stats(self.request(P.Cmd.STATS))

    def load(self, words: list[int], max_payload: int = 1024) -> int:
        info = self.info or self.ping()
        if len(words) != info.weight_words:
            raise ValueError(f"{len(words)} weight words for a board that holds "
                             f"{info.weight_words}")
        written = 0
        for f in P.load_frames(words, info.word_bytes, max_payload):
            self.send(f)
            written += P.decode_layout(P.LOAD_ANSWER_LAYOUT, self.answer(P.Cmd.LOAD),
                                       "LOAD")["words"]
        self.info = self.ping()
        return written

    def run(self, images: np.ndarray, window: int = 4) -> list[P.RunResult]:
        """Classify ``images`` (uint8, n_pixels each), ``window`` frames in flight (RUNZ where
        it is shorter than RUN)."""
        info = self.info or self.ping()
        flat = np.asarray(images, np.uint8).reshape(len(images), -1)
        if flat.shape[1] != info.n_pixels:
            raise ValueError(f"images have {flat.shape[1]} pixels; the board's network takes "
                             f"{info.n_pixels}")
        out: list[P.RunResult] = []
        sent = 0
        while len(out) < len(flat):
            while sent < len(flat) and sent - len(out) < window:
                self.send(P.run_frame(flat[sent]))
                sent += 1
            out.append(P.RunResult.decode(self.answer(P.Cmd.RUN), info))
        return out

    def bench(self, images: int, patience_s: float = 600.0) -> dict:
        """Replay ``images`` images through the board's on-chip throughput harness (BENCH,
        :mod:`gxnor.hw.link.throughput`); returns its counters (images, mismatches, cycles,
        crc). The answer comes when the run is over: reads are retried for ``patience_s``."""
        info = self.info or self.ping()
        if not info.bench_images:
            raise InputError("the board has no on-chip throughput harness: build it with "
                             "`gxnor build EXPORT --board BOARD --bench-images N`")
        self.send(P.bench_request(images))
        deadline = time.monotonic() + patience_s
        while True:
            try:
                return P.decode_bench(self.answer(P.Cmd.BENCH))
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    def prepare(self, export_dir: Path | None) -> P.Info:
        """PING; check the network against ``export_dir``; load the weights if the board's
        memory needs them."""
        info = self.ping()
        if export_dir is None:
            if info.needs_weights:
                raise InputError("the board's weight memory is empty (SPRAM): pass --export-dir "
                                 "with the exported network to load it")
            return info
        nid = P.network_id(export_dir)
        if nid != info.net_id:
            raise InputError(f"{export_dir}: network id {nid:08x}, the board runs {info.net_id:08x}"
                             " (build the bitstream from this export)")
        if info.needs_weights:
            self.load(board_words(export_dir, info))
        return self.info


def board_words(export_dir: Path, info: P.Info) -> list[int]:
    """The export's weights packed for the board's shared engine (its lanes, its last layer's
    slices), in weight-memory order."""
    from gxnor.export import format
    from gxnor.hw.spec import AcceleratorSpec

    net = format.load(export_dir)
    return AcceleratorSpec.from_export(net, info.lanes, slices=info.slices).words


def selftest(dev: Device, images: np.ndarray, export_dir: Path | None) -> dict:
    """Exercise the protocol's error paths between good images; returns the checks made.

    Malformed frames: garbage bytes, a bad header checksum, an unknown command, a RUN of the
    wrong length, a RUN with a bad payload checksum between two good ones (back to back), a
    LOAD past the end of memory, a RUN cut off in the middle (timeout), RUNZ frames that
    describe too many pixels or have an odd length, a BENCH the board cannot run (no
    harness) or of the wrong length. Every one must get its ERROR answer and
    the good images around them (RUN, then RUNZ frames) their results.
    """
    info = dev.prepare(export_dir)
    flat = np.asarray(images, np.uint8).reshape(len(images), -1)
    if len(flat) < 4:
        raise InputError("the self-test needs at least 4 images")
    checks: list[dict] = []
    results: dict[int, P.RunResult] = {}

    def check(name, got, want):
        checks.append({"check": name, "got": got, "want": want, "ok": got == want})

    def next_error(name, code):
        """The next answer must be ERROR(code)."""
        try:
            dev.answer(P.Cmd.RUN)
            check(name, "answer", code.name)
        except P.DeviceError as exc:
            check(name, exc.name, code.name)

    def expect_error(name, data, code):
        dev.send(data)
        next_error(name, code)

    before = dev.stats()
    good = lambda k: P.frame(P.Cmd.RUN, flat[k].tobytes())  # noqa: E731
    dev.send(b"\x00\x13\x37")  # no SYNC byte: dropped
    bad_head = bytearray(P.frame(P.Cmd.PING))
    bad_head[4] ^= 0xFF
    expect_error("bad header checksum", bytes(bad_head), P.Err.HEADER_CRC)
    expect_error("unknown command", P.frame(0x42, b"abc"), P.Err.COMMAND)
    expect_error("RUN of the wrong length", P.frame(P.Cmd.RUN, flat[0][:-1].tobytes()),
                 P.Err.LENGTH)
    bad_crc = bytearray(good(1))
    bad_crc[-1] ^= 0x01
    dev.send(good(0) + bytes(bad_crc) + good(1))  # back to back
    results[0] = P.RunResult.decode(dev.answer(P.Cmd.RUN), info)
    next_error("RUN with a bad payload checksum", P.Err.PAYLOAD_CRC)
    results[1] = P.RunResult.decode(dev.answer(P.Cmd.RUN), info)
    past_end = P.frame(P.Cmd.LOAD, info.weight_words.to_bytes(P.LOAD_ADDR_BYTES, "little")
                       + bytes(info.word_bytes))
    expect_error("LOAD past the end", past_end, P.Err.ADDRESS)
    cut = good(2)[: P.HEADER_BYTES + info.n_pixels // 2]
    expect_error("RUN cut off (timeout)", cut, P.Err.TIMEOUT)
    too_many = bytes([255, 1]) * (info.n_pixels // 256 + 2)  # more pixels than the image
    expect_error("RUNZ past the image's end", P.frame(P.Cmd.RUNZ, too_many), P.Err.LENGTH)
    expect_error("RUNZ of odd length", P.frame(P.Cmd.RUNZ, b"\x00"), P.Err.LENGTH)
    if info.bench_images:
        expect_error("BENCH of the wrong length", P.frame(P.Cmd.BENCH, b"\x01"), P.Err.LENGTH)
    else:
        expect_error("BENCH without the harness", P.bench_request(1), P.Err.COMMAND)
    for k, r in enumerate(dev.run(flat[2:]), start=2):
        results[k] = r
    after = dev.stats()
    check("STATS images", after["images"] - before["images"], len(flat))
    check("STATS errors", after["errors"] - before["errors"], 9)
    check("STATS dropped >= 3", after["dropped"] - before["dropped"] >= 3, True)
    check("STATS rx_errors", after["rx_errors"] - before["rx_errors"], 0)
    check("INFO after the errors", dev.ping().net_id, info.net_id)
    return {"checks": checks,
            "results": [results[k].__dict__ for k in range(len(flat))]}


def session(dev: Device, images: np.ndarray, export_dir: Path | None, mode: str,
            bench: int = 0) -> dict:
    """What ``gxnor run`` does on a board or in simulation (``mode`` run, selftest, or bench:
    ``bench`` images through the on-chip harness); returns a JSON-able report."""
    t0 = time.perf_counter()
    if mode == "selftest":
        report = selftest(dev, images, export_dir)
    elif mode == "bench":
        dev.prepare(export_dir)
        t1 = time.perf_counter()
        report = {"bench": dev.bench(bench), "bench_seconds": time.perf_counter() - t1,
                  "bench_requested": bench}
        if len(images):  # the core answers RUN frames as before once the harness is done
            report["results"] = [r.__dict__ for r in dev.run(images)]
    else:
        dev.prepare(export_dir)
        t1 = time.perf_counter()
        results = dev.run(images)
        report = {"results": [r.__dict__ for r in results],
                  "run_seconds": time.perf_counter() - t1}
        report["stats"] = dev.stats()
    report["info"] = {k: (v.decode() if isinstance(v, bytes) else v)
                      for k, v in (dev.info.__dict__ if dev.info else {}).items()}
    report["seconds"] = time.perf_counter() - t0
    return report


class SerialTransport:
    def __init__(self, port: str, baud: int, timeout: float = 2.0):
        import serial

        try:
            self.ser = serial.Serial(port, baud, timeout=timeout)
        except serial.SerialException as exc:
            raise InputError(f"{port}: cannot open the serial port ({exc}); is the "
                                    "board plugged in? (iCEBreaker: /dev/ttyUSB1, ULX3S: "
                                    "/dev/ttyUSB0)") from exc

    def write(self, data: bytes) -> None:
        self.ser.write(data)

    def read(self, n: int) -> bytes:
        return self.ser.read(n)
