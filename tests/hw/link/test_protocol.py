"""The UART protocol's pure-Python side: CRC, frames, answers (gxnor.hw.link.protocol)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gxnor.hw.link import protocol as P


def test_crc8_is_crc8_smbus():
    # the catalogue check value of CRC-8/SMBUS (poly 0x07, init 0, no reflection, no xorout)
    assert P.crc8(b"123456789") == 0xF4
    assert P.crc8(b"") == 0


@given(st.binary(max_size=300), st.integers(0, 255), st.data())
def test_frames_round_trip_in_any_split(payload, cmd, data):
    wire = P.frame(cmd, payload) * 2
    cut = data.draw(st.integers(0, len(wire)))
    reader = P.FrameReader()
    got = reader.feed(b"\x00\x11" + wire[:cut]) + reader.feed(wire[cut:])
    assert got == [(cmd, payload)] * 2
    assert reader.dropped == 2


def test_reader_rejects_corrupted_answers():
    bad = bytearray(P.frame(P.Cmd.PING | P.RESPONSE, b"abc"))
    bad[-1] ^= 1
    with pytest.raises(P.ProtocolError, match="payload checksum"):
        P.FrameReader().feed(bytes(bad))
    bad = bytearray(P.frame(P.Cmd.PING | P.RESPONSE, b"abc"))
    bad[2] ^= 4
    with pytest.raises(P.ProtocolError, match="header checksum"):
        P.FrameReader().feed(bytes(bad))


def test_reader_needs_counts_missing_bytes():
    wire = P.frame(1, b"12345")
    r = P.FrameReader()
    assert r.needed() == P.HEADER_BYTES
    r.feed(wire[:3])
    assert r.needed() == 2
    r.feed(wire[3:7])
    assert r.needed() == len(wire) - 7


def test_frame_limits():
    with pytest.raises(ValueError, match="at most"):
        P.frame(1, bytes(P.MAX_PAYLOAD + 1))
    with pytest.raises(ValueError, match="not a byte"):
        P.frame(256)


def _info(**kw):
    fields = dict(magic=P.MAGIC, version=P.VERSION, lanes=32, n_pixels=784, num_classes=10,
                  n_layers=3, score_bytes=3, word_bytes=8, weight_words=8576, net_id=0xDEADBEEF,
                  weights_ram=1, loaded_words=0, clock_hz=30_000_000, divisor=30)
    fields.update(kw)
    return P.Info(**fields)


def test_info_and_results_round_trip():
    info = _info()
    assert P.Info.decode(info.encode()) == info
    res = P.RunResult(7, [-(2**23), 5, 0, 2**23 - 1, -1, 1, 2, 3, 4, 5], 123456, [151, 194, 185])
    assert P.RunResult.decode(res.encode(info), info) == res
    assert len(res.encode(info)) == info.run_answer_bytes


def test_info_rejects_foreign_devices():
    with pytest.raises(P.ProtocolError, match="not a gxnor board"):
        P.Info.decode(_info(magic=b"XX").encode())
    with pytest.raises(P.ProtocolError, match="expected"):
        P.Info.decode(b"\x00" * 5)


def test_load_frames_cover_every_word_once():
    words = list(range(1000, 1257))
    reader = P.FrameReader()
    seen = {}
    for f in P.load_frames(words, word_bytes=3, max_payload=100):
        [(cmd, payload)] = reader.feed(f)
        assert cmd == P.Cmd.LOAD and len(payload) <= 100
        addr = int.from_bytes(payload[:4], "little")
        for k in range(4, len(payload), 3):
            seen[addr] = int.from_bytes(payload[k:k + 3], "little")
            addr += 1
    assert seen == dict(enumerate(words))


def test_device_error_names_code_and_command():
    assert "PAYLOAD_CRC" in str(P.DeviceError(2, P.Cmd.RUN))
    assert "RUN" in str(P.DeviceError(2, P.Cmd.RUN))


def test_link_rate():
    # 784 pixels + 6 bytes of frame at 1 Mbaud (10 bits per byte)
    assert P.link_images_per_s(1_000_000, 784, 40) == pytest.approx(1e5 / 790)


def _expand(payload: bytes, n: int) -> list[int]:
    """The image a RUNZ payload describes (the board's rule, written out)."""
    out = []
    for k in range(0, len(payload), 2):
        out += [0] * payload[k] + [payload[k + 1]]
    return out + [0] * (n - len(out))


@given(st.lists(st.one_of(st.just(0), st.integers(0, 255)), min_size=1, max_size=2000))
def test_sparse_payload_describes_the_image(pixels):
    payload = P.sparse_payload(pixels)
    assert len(payload) % 2 == 0
    assert _expand(payload, len(pixels)) == pixels
    # never longer than needed: one pair per nonzero pixel plus one per 256 zeros
    assert len(payload) <= 2 * (sum(1 for v in pixels if v) + len(pixels) // 256)
    f = P.run_frame(bytes(pixels))
    assert len(f) <= P.frame_bytes(len(pixels))
    assert f[1] == (P.Cmd.RUNZ if len(payload) < len(pixels) else P.Cmd.RUN)


def test_sparse_mnist_like_image_is_shorter():
    img = bytes([0] * 300 + [200] * 5 + [0] * 400 + [17] + [0] * 78)
    assert P.sparse_payload(img) == bytes([255, 0, 44, 200, 0, 200, 0, 200, 0, 200, 0, 200,
                                           255, 0, 144, 17])
    assert P.link_images_per_s(1_000_000, 784, 40, request_bytes=22) == pytest.approx(1e5 / 46)
