"""The host <-> board UART protocol: the one definition, used by the board RTL
(``gxnor.hw.link.core``) and by the host runtime (``gxnor.host``). Specified in docs/PROTOCOL.md.

Every message, in both directions, is one frame::

    SYNC(0xA5) CMD LEN_LO LEN_HI HCRC PAYLOAD[LEN] PCRC

``HCRC`` is the CRC-8 of ``CMD LEN_LO LEN_HI``, ``PCRC`` the CRC-8 of the payload (0 for an
empty payload). CRC-8: polynomial x^8 + x^2 + x + 1 (0x07), initial value 0, no reflection, no
final XOR (CRC-8/SMBUS). Multi-byte fields are little-endian.

Requests and their answers (answer command = request command | 0x80):

* ``PING`` (empty) -> ``INFO``: what the board runs (see :class:`Info`).
* ``LOAD`` (u32 first word address, then whole weight words of ``word_bytes`` each) ->
  ``u16`` words written. Writes the weight memory (needed where it is SPRAM).
* ``RUN`` (exactly ``n_pixels`` bytes, one uint8 per pixel) -> the class scores
  (``score_bytes`` each, signed), the class (u8), the cycle count (u32) and the events per layer
  (u16 each). RUN frames may be sent back to back; the answers come in order.
* ``RUNZ`` (the same image as byte pairs ``ZEROS PIXEL``: ``ZEROS`` zero pixels, then
  ``PIXEL``; pixels after the last pair are 0) -> the RUN answer (command ``RUN | 0x80``).
  MNIST images are 81% black: a RUNZ frame is about 2.6x shorter than a RUN frame.
* ``STATS`` (empty) -> u32 images, u32 error answers, u32 bytes dropped outside frames,
  u32 UART receive errors (framing + overrun).
* ``BENCH`` (u32 images) -> u32 images, u32 mismatches, u64 cycles, u32 CRC-32: a board built
  with the on-chip throughput harness (INFO ``bench_images`` > 0) replays the test images it
  stores back to back through the core that many times in all, checks every class on chip and
  answers what it counted (:mod:`gxnor.hw.link.throughput`). Without the harness: ERROR
  (COMMAND).

A malformed request is answered by an ``ERROR`` frame (payload: error code, request command) and
the board carries on with the next frame. A frame that stops for ``timeout`` cycles in the
middle is abandoned with ``ERROR(TIMEOUT)``.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from ..spec import CYCLE_BITS, EVENT_COUNT_BITS

SYNC = 0xA5
VERSION = 4  # 2: RUNZ; 3: BENCH, INFO bench_images; 4: INFO slices
MAGIC = b"GX"
HEADER_BYTES = 5  # SYNC CMD LEN_LO LEN_HI HCRC
MAX_PAYLOAD = 0xFFFF
RESPONSE = 0x80  # answer command = request | RESPONSE


class Cmd(IntEnum):
    PING = 0x01
    LOAD = 0x02
    RUN = 0x03
    STATS = 0x04
    RUNZ = 0x05
    BENCH = 0x06
    ERROR = 0x7F  # answer only (0x7F | 0x80 = 0xFF on the wire)


class Err(IntEnum):
    HEADER_CRC = 1  # header checksum wrong: the length cannot be trusted, resynchronise
    PAYLOAD_CRC = 2  # payload checksum wrong (a RUN's result is discarded)
    LENGTH = 3  # payload length wrong for the command (RUNZ: pairs past the image's end)
    COMMAND = 4  # unknown command
    TIMEOUT = 5  # the frame stopped in the middle
    ADDRESS = 6  # LOAD past the end of the weight memory


ERROR_ANSWER = Cmd.ERROR | RESPONSE

# Fixed-size payloads: (field, struct code) in wire order, little-endian
INFO_LAYOUT = (("magic", "2s"), ("version", "B"), ("lanes", "H"), ("n_pixels", "H"),
               ("num_classes", "B"), ("n_layers", "B"), ("score_bytes", "B"),
               ("word_bytes", "B"), ("weight_words", "I"), ("net_id", "I"),
               ("weights_ram", "B"), ("loaded_words", "I"), ("clock_hz", "I"), ("divisor", "H"),
               ("bench_images", "H"), ("slices", "B"))
STATS_LAYOUT = (("images", "I"), ("errors", "I"), ("dropped", "I"), ("rx_errors", "I"))
LOAD_ANSWER_LAYOUT = (("words", "H"),)
BENCH_REQUEST_LAYOUT = (("images", "I"),)
BENCH_REQUEST_BYTES = 4
BENCH_LAYOUT = (("images", "I"), ("mismatches", "I"), ("cycles", "Q"), ("crc", "I"))
ERROR_LAYOUT = (("code", "B"), ("cmd", "B"))


def layout_format(layout) -> str:
    return "<" + "".join(code for _, code in layout)


def field_bytes(layout) -> list[tuple[str, int]]:
    """(field, bytes) of each field of a payload layout."""
    return [(name, struct.calcsize("<" + code)) for name, code in layout]


LOAD_ADDR_BYTES = 4
# RUN answer fields after the scores: the class (a byte: at most 256 classes), then the
# accelerator's result word's counters, whole bytes of their widths (gxnor.hw.spec)
CLASS_BYTES = 1
CYCLES_BYTES, EVENTS_BYTES = CYCLE_BITS // 8, EVENT_COUNT_BITS // 8


def run_answer_bytes(num_classes: int, score_bytes: int, n_layers: int) -> int:
    """Payload bytes of a RUN answer: the scores, the class, the cycles, events per layer."""
    return num_classes * score_bytes + CLASS_BYTES + CYCLES_BYTES + EVENTS_BYTES * n_layers


def _crc8_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


CRC8_TABLE = _crc8_table()


def crc8_update(crc: int, byte: int) -> int:
    return CRC8_TABLE[crc ^ byte]


def crc8(data: bytes) -> int:
    crc = 0
    for b in data:
        crc = CRC8_TABLE[crc ^ b]
    return crc


def frame(cmd: int, payload: bytes = b"") -> bytes:
    """One frame on the wire."""
    if not 0 <= cmd <= 0xFF:
        raise ValueError(f"command {cmd} is not a byte")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes; a frame holds at most {MAX_PAYLOAD}")
    head = bytes([cmd]) + len(payload).to_bytes(2, "little")
    return bytes([SYNC]) + head + bytes([crc8(head)]) + bytes(payload) + bytes([crc8(payload)])


class ProtocolError(Exception):
    """The other side sent something that is not a valid frame or not the expected answer."""


class DeviceError(Exception):
    """The board answered a request with an ERROR frame."""

    def __init__(self, code: int, cmd: int):
        self.code, self.cmd = code, cmd
        #: the error code's name (``PAYLOAD_CRC``, ...), or ``code N`` for an unknown one
        self.name = Err(code).name if code in Err._value2member_map_ else f"code {code}"
        cname = Cmd(cmd).name if cmd in Cmd._value2member_map_ else f"0x{cmd:02x}"
        super().__init__(f"board answered ERROR {self.name} to a {cname} request")


class FrameReader:
    """Splits a byte stream into (cmd, payload) frames, checking both checksums.

    ``feed(data)`` returns the complete frames; bytes before a SYNC are counted in ``dropped``.
    A frame with a bad checksum raises :class:`ProtocolError` (the host does not resynchronise
    silently: a corrupted answer is an error worth reporting).
    """

    def __init__(self):
        self._buf = bytearray()
        self.dropped = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        frames = []
        while True:
            start = self._buf.find(SYNC)
            if start < 0:
                self.dropped += len(self._buf)
                self._buf.clear()
                break
            if start:
                self.dropped += start
                del self._buf[:start]
            if len(self._buf) < HEADER_BYTES:
                break
            head = bytes(self._buf[1:4])
            if crc8(head) != self._buf[4]:
                raise ProtocolError(f"answer header checksum wrong: {bytes(self._buf[:5]).hex()}")
            length = int.from_bytes(head[1:], "little")
            end = HEADER_BYTES + length + 1
            if len(self._buf) < end:
                break
            payload = bytes(self._buf[HEADER_BYTES:end - 1])
            if crc8(payload) != self._buf[end - 1]:
                raise ProtocolError(f"answer payload checksum wrong (command 0x{head[0]:02x}, "
                                    f"{length} bytes)")
            frames.append((head[0], payload))
            del self._buf[:end]
        return frames

    def needed(self) -> int:
        """Bytes still missing for the frame in the buffer (at least 1)."""
        if len(self._buf) < HEADER_BYTES:
            return HEADER_BYTES - len(self._buf)
        length = int.from_bytes(self._buf[2:4], "little")
        return max(1, HEADER_BYTES + length + 1 - len(self._buf))


@dataclass(frozen=True)
class Info:
    magic: bytes
    version: int
    lanes: int
    n_pixels: int
    num_classes: int
    n_layers: int
    score_bytes: int
    word_bytes: int
    weight_words: int
    net_id: int
    weights_ram: int
    loaded_words: int
    clock_hz: int
    divisor: int
    bench_images: int = 0  # test images the on-chip throughput harness holds (0: none)
    slices: int = 1  # the shared engine's last layer in this many slices of the lanes

    @classmethod
    def decode(cls, payload: bytes) -> Info:
        info = cls(**decode_layout(INFO_LAYOUT, payload, "INFO"))
        if info.magic != MAGIC or info.version != VERSION:
            raise ProtocolError(f"not a gxnor board (magic {info.magic!r}, version "
                                f"{info.version}; expected {MAGIC!r}, {VERSION})")
        return info

    def encode(self) -> bytes:
        return struct.pack(layout_format(INFO_LAYOUT), *(getattr(self, f) for f, _ in INFO_LAYOUT))

    @property
    def needs_weights(self) -> bool:
        """The weight memory starts empty (SPRAM) and has not been filled yet."""
        return bool(self.weights_ram) and self.loaded_words < self.weight_words

    @property
    def run_answer_bytes(self) -> int:
        return run_answer_bytes(self.num_classes, self.score_bytes, self.n_layers)


@dataclass(frozen=True)
class RunResult:
    cls: int
    scores: list[int] = field(default_factory=list)
    cycles: int = 0
    events: list[int] = field(default_factory=list)

    @classmethod
    def decode(cls, payload: bytes, info: Info) -> RunResult:
        if len(payload) != info.run_answer_bytes:
            raise ProtocolError(f"RUN answer has {len(payload)} bytes, expected "
                                f"{info.run_answer_bytes}")
        sb = info.score_bytes
        scores = [int.from_bytes(payload[i * sb:(i + 1) * sb], "little", signed=True)
                  for i in range(info.num_classes)]
        pos = info.num_classes * sb
        label = int.from_bytes(payload[pos:pos + CLASS_BYTES], "little")
        pos += CLASS_BYTES
        cyc = int.from_bytes(payload[pos:pos + CYCLES_BYTES], "little")
        pos += CYCLES_BYTES
        events = [int.from_bytes(payload[pos + EVENTS_BYTES * i:pos + EVENTS_BYTES * (i + 1)],
                                 "little") for i in range(info.n_layers)]
        return cls(label, scores, cyc, events)

    def encode(self, info: Info) -> bytes:
        sb = info.score_bytes
        return (b"".join(s.to_bytes(sb, "little", signed=True) for s in self.scores)
                + self.result_bytes())

    def result_bytes(self) -> bytes:
        """The answer's bytes after the scores: the class, the cycles, the events per layer
        (:func:`gxnor.hw.link.answers.result_bits` in the RTL)."""
        return (self.cls.to_bytes(CLASS_BYTES, "little")
                + self.cycles.to_bytes(CYCLES_BYTES, "little")
                + b"".join(e.to_bytes(EVENTS_BYTES, "little") for e in self.events))


def decode_layout(layout, payload: bytes, what: str) -> dict:
    """A fixed-size payload as {field: value}; a wrong length is a ProtocolError."""
    fmt = layout_format(layout)
    if len(payload) != struct.calcsize(fmt):
        raise ProtocolError(f"{what} answer has {len(payload)} bytes, expected "
                            f"{struct.calcsize(fmt)}")
    return dict(zip((n for n, _ in layout), struct.unpack(fmt, payload), strict=True))


def decode_stats(payload: bytes) -> dict:
    return decode_layout(STATS_LAYOUT, payload, "STATS")


def bench_request(images: int) -> bytes:
    """A BENCH frame: replay ``images`` images through the on-chip harness."""
    if not 0 <= images < 2**32:
        raise ValueError(f"{images} images: a BENCH request counts up to 2**32 - 1")
    return frame(Cmd.BENCH, struct.pack(layout_format(BENCH_REQUEST_LAYOUT), images))


def decode_bench(payload: bytes) -> dict:
    return decode_layout(BENCH_LAYOUT, payload, "BENCH")


def load_frames(words: list[int], word_bytes: int, max_payload: int = 1024) -> list[bytes]:
    """LOAD frames that write ``words`` from address 0, ``max_payload`` bytes at most each."""
    per = max(1, (max_payload - LOAD_ADDR_BYTES) // word_bytes)
    out = []
    for start in range(0, len(words), per):
        chunk = words[start:start + per]
        payload = start.to_bytes(LOAD_ADDR_BYTES, "little") + b"".join(
            w.to_bytes(word_bytes, "little") for w in chunk)
        out.append(frame(Cmd.LOAD, payload))
    return out


def sparse_payload(pixels) -> bytes:
    """A RUNZ payload: (zeros, pixel) pairs up to the last nonzero pixel; a run of more than
    255 zeros takes (255, 0) pairs (256 zero pixels each)."""
    out = bytearray()
    zeros = 0
    for v in bytes(pixels):
        if v == 0:
            zeros += 1
            continue
        while zeros > 255:
            out += b"\xff\x00"
            zeros -= 256
        out += bytes([zeros, v])
        zeros = 0
    return bytes(out)


def run_frame(pixels) -> bytes:
    """The shorter of a RUN and a RUNZ frame for one image (``n_pixels`` uint8 values)."""
    data = bytes(pixels)
    sparse = sparse_payload(data)
    return frame(Cmd.RUNZ, sparse) if len(sparse) < len(data) else frame(Cmd.RUN, data)


def frame_bytes(payload: int) -> int:
    return HEADER_BYTES + payload + 1


def link_images_per_s(baud: float, n_pixels: int, answer_payload: int,
                      request_bytes: float | None = None) -> float:
    """Images/s an 8N1 UART carries at ``baud`` (10 bits per byte): RUN frames one way and
    their answers the other way at the same time (full duplex). ``request_bytes``: the mean
    request frame (RUNZ frames of real images), else a dense RUN frame."""
    req = frame_bytes(n_pixels) if request_bytes is None else request_bytes
    return baud / 10 / max(req, frame_bytes(answer_payload))


def score_bytes(score_bits: int) -> int:
    return (score_bits + 7) // 8


def network_id(export_dir: str | Path) -> int:
    """32-bit identity of an export (the first bytes of its manifest's SHA-256): the board
    reports it so the host can check it talks to the network it expects."""
    digest = hashlib.sha256((Path(export_dir) / "manifest.json").read_bytes()).digest()
    return int.from_bytes(digest[:4], "little")
