import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gxnor.export import codes
from gxnor.model import zn


def test_ternary_code_table():
    assert codes.encode(np.array([0, 1, -1]), 1).tolist() == [0b00, 0b01, 0b11]
    assert codes.decode(np.array([0b00, 0b01, 0b11]), 1).tolist() == [0, 1, -1]


def test_invalid_code_is_rejected():
    with pytest.raises(codes.CodeError, match=r"invalid ternary code 0b10"):
        codes.decode(np.array([0b10]), 1)


@pytest.mark.parametrize("n_bits", [0, 1, 2, 3])
def test_state_integers(n_bits):
    w = zn.weight_integers(np.arange(zn.num_states(n_bits)), n_bits)
    assert w[0] == -w[-1] and np.all(np.diff(w) > 0)
    assert np.array_equal(codes.decode(codes.encode(w, n_bits), n_bits), w)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 70), st.sampled_from([1, 2]), st.data())
def test_rom_pack_round_trip(words, lanes, n_bits, data):
    width = codes.code_bits(n_bits)
    lim = 2 ** max(n_bits - 1, 0)
    w = np.array(data.draw(st.lists(st.integers(-lim, lim), min_size=words * lanes,
                                    max_size=words * lanes))).reshape(words, lanes)
    packed = codes.pack_rom(codes.encode(w, n_bits), width)
    assert packed.shape == (words, codes.word_bytes(lanes, width))
    back = codes.decode(codes.unpack_rom(packed, lanes, width), n_bits)
    assert np.array_equal(back, w)
    lines = codes.hex_lines(packed, lanes * width)
    assert np.array_equal(codes.parse_hex_lines(lines, packed.shape[1]), packed)


def test_lane_zero_is_in_the_low_bits():
    w = np.array([[1, -1, 0, 1]])  # lanes 0..3
    packed = codes.pack_rom(codes.encode(w, 1), 2)
    assert int.from_bytes(packed[0].tobytes(), "little") == 0b01_00_11_01
    assert codes.hex_lines(packed, 8) == ["4d"]
