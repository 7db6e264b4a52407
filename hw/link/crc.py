"""The protocol's CRC-8 as combinational logic."""

from amaranth.hdl import Cat

from . import protocol as P


def crc8_next(crc, byte):
    """The CRC after ``byte`` (combinational), the same function as ``protocol.crc8_update``.

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
