"""cocotb bench: the board core's protocol engine under garbage (issue 11).

Random byte streams and random mutations of valid frames (truncation, a duplicated byte, a
flipped bit, a wrong length with a valid header checksum, bursts of garbage between frames) go
into the core's ``rx`` pin; after each case the line stays idle for longer than the core's frame
timeout and a valid request follows (PING or RUN of a random image). The bench checks that

* every byte the core sends belongs to a valid frame (both checksums right, nothing between
  frames), so no garbage ever produces an answer that is not a frame;
* the valid request is answered, correctly (INFO as the core reports it, RUN as the golden
  model computes it), within a bound: the core never hangs.

LOAD frames are not mutated: a LOAD writes its words as they arrive, before its checksum is
known (docs/PROTOCOL.md), so a corrupted LOAD changes the weights by design.

Parameters from the environment (set by :func:`gxnor.verify.runner.run_link`):
``GXNOR_EXPORT``, ``GXNOR_DIVISOR``, ``GXNOR_TIMEOUT`` (the core's frame timeout in cycles),
``GXNOR_INFO`` (the INFO payload the core must answer, hex), ``GXNOR_CASES``, ``GXNOR_SEED``,
``GXNOR_REPORT``.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import Timer

from gxnor.hw.link import protocol as P
from gxnor.sim import golden

from .uart_pins import UARTPins, start_board

CLOCK_NS = 10


def garbage(rng: random.Random, n_pixels: int) -> tuple[str, bytes]:
    """One case of malformed input: (what it is, the bytes)."""
    image = bytes(rng.choice((0, rng.randrange(256))) for _ in range(n_pixels))
    valid = rng.choice([P.frame(P.Cmd.PING), P.frame(P.Cmd.STATS), P.frame(P.Cmd.RUN, image),
                        P.frame(P.Cmd.RUNZ, P.sparse_payload(image))])
    kind = rng.choice(["random", "truncated", "duplicated", "bit flip", "wrong length",
                       "burst between frames", "sync storm"])
    if kind == "random":
        return kind, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
    if kind == "truncated":
        return kind, valid[:rng.randrange(1, len(valid))]
    if kind == "duplicated":
        k = rng.randrange(len(valid))
        return kind, valid[:k + 1] + valid[k:]
    if kind == "bit flip":
        k = rng.randrange(len(valid))
        return kind, valid[:k] + bytes([valid[k] ^ (1 << rng.randrange(8))]) + valid[k + 1:]
    if kind == "wrong length":  # a header whose checksum is right for the wrong length
        cmd = rng.choice([P.Cmd.PING, P.Cmd.STATS, P.Cmd.RUN, P.Cmd.RUNZ, 0x42])
        length = rng.choice([0, 1, n_pixels - 1, n_pixels + 1, rng.randrange(1, 200)])
        payload = bytes(rng.randrange(256) for _ in range(min(length, rng.randrange(0, 200))))
        head = bytes([cmd]) + length.to_bytes(2, "little")
        return kind, bytes([P.SYNC]) + head + bytes([P.crc8(head)]) + payload
    if kind == "burst between frames":
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 30)))
        return kind, valid + junk + valid
    return kind, bytes([P.SYNC] * rng.randrange(1, 12))


class LinkBench:
    def __init__(self, dut, net: golden.Network, divisor: int, timeout: int, info: bytes):
        self.dut, self.net, self.info = dut, net, info
        self.pins = UARTPins(dut, divisor, 0, CLOCK_NS)
        self.byte_cycles = 10 * divisor
        self.timeout = timeout
        self.reader = P.FrameReader()
        self.frames: list[tuple[int, bytes]] = []
        self.taken = 0  # bytes of pins.received already parsed
        self.errors: list[str] = []
        self.n_pixels = int(np.prod(net.input_shape))

    def parse(self) -> None:
        """Every byte the core sent must belong to a valid frame."""
        new = bytes(self.pins.received[self.taken:])
        self.taken += len(new)
        try:
            self.frames += self.reader.feed(new)
        except P.ProtocolError as exc:
            self.errors.append(f"the core sent an invalid frame: {exc}")
            self.reader = P.FrameReader()
        if self.reader.dropped:
            self.errors.append(f"the core sent {self.reader.dropped} bytes outside frames")
            self.reader.dropped = 0

    async def idle(self, cycles: int) -> None:
        await Timer(cycles * CLOCK_NS, unit="ns")
        self.parse()

    async def answer(self, limit_cycles: int) -> tuple[int, bytes] | None:
        """The next frame, waiting at most ``limit_cycles``."""
        waited = 0
        step = 4 * self.byte_cycles
        while not self.frames and waited < limit_cycles:
            await self.idle(step)
            waited += step
        return self.frames.pop(0) if self.frames else None


@cocotb.test()
async def protocol_survives_garbage(dut):
    net = golden.Network(os.environ["GXNOR_EXPORT"])
    divisor, timeout = int(os.environ["GXNOR_DIVISOR"]), int(os.environ["GXNOR_TIMEOUT"])
    tb = LinkBench(dut, net, divisor, timeout, bytes.fromhex(os.environ["GXNOR_INFO"]))
    rng = random.Random(int(os.environ.get("GXNOR_SEED", "0")))
    await start_board(dut, CLOCK_NS)
    cocotb.start_soon(tb.pins.monitor())
    kinds: dict[str, int] = {}
    dense = sum(ly.n_in * ly.n_out for ly in net.layers) + 64 * len(net.layers)
    cases = int(os.environ.get("GXNOR_CASES", "50"))
    for case in range(cases):
        kind, data = garbage(rng, tb.n_pixels)
        kinds[kind] = kinds.get(kind, 0) + 1
        await tb.pins.send(data)
        # past the frame timeout, then every answer the garbage caused has gone out
        await tb.idle(timeout + 4 * tb.byte_cycles + dense)
        while await tb.answer(2 * (P.HEADER_BYTES + 64) * tb.byte_cycles) is not None:
            pass
        if rng.random() < 0.5:
            await tb.pins.send(P.frame(P.Cmd.PING))
            want = (P.Cmd.PING | P.RESPONSE, tb.info)
        else:
            image = np.array([rng.choice((0, rng.randrange(256))) for _ in range(tb.n_pixels)],
                             np.uint8)
            sparse = rng.random() < 0.5  # RUN or RUNZ: the same answer
            await tb.pins.send(P.frame(P.Cmd.RUNZ, P.sparse_payload(image)) if sparse
                               else P.frame(P.Cmd.RUN, image.tobytes()))
            want = (P.Cmd.RUN | P.RESPONSE, expected_run(net, image, tb.info))
        limit = dense + (P.HEADER_BYTES + 2 * len(want[1]) + 8) * tb.byte_cycles + timeout
        got = await tb.answer(limit)
        if got is None:
            tb.errors.append(f"case {case} ({kind}, {data.hex()}): no answer to a valid "
                             f"request within {limit} cycles")
        elif got != want:
            tb.errors.append(f"case {case} ({kind}, {data.hex()}): answer {got[0]:02x} "
                             f"{got[1].hex()}, expected {want[0]:02x} {want[1].hex()}")
        if len(tb.errors) > 10:
            break
    report = {"cases": cases, "kinds": kinds, "errors": tb.errors,
              "bytes_received": len(tb.pins.received), "frames_left": len(tb.frames)}
    Path(os.environ["GXNOR_REPORT"]).write_text(json.dumps(report, indent=1))
    assert not tb.errors, "\n".join(tb.errors)


def expected_run(net: golden.Network, image: np.ndarray, info_payload: bytes) -> bytes:
    """The RUN answer the golden model predicts (scores, class, cycles, events)."""
    from gxnor.hw import timing

    info = P.Info.decode(info_payload)
    res = net.run(image.reshape(1, -1))
    events = res.events.image(0)
    cyc = timing.image_cycles(events, [ly.n_out for ly in net.layers], info.lanes,
                              slices=info.slices)
    return P.RunResult(int(res.classes[0]), [int(s) for s in res.scores[0]], int(cyc),
                       list(events)).encode(info)
