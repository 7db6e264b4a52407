"""The weight code: the one definition that hw/, export/ and sim/ share.

Ternary (and binary) weights are 2-bit codes, the gated-XNOR encoding:

    bit 0 = nonzero  (the gate: 0 closes it, the synapse does nothing)
    bit 1 = sign     (1 = negative; the product's sign is XNOR of the two sign bits,
                      with 1 meaning +: sign(w*x) = +1  iff  w_sign == x_sign)

    value  0  ->  0b00
    value +1  ->  0b01
    value -1  ->  0b11
    (0b10 is invalid)

Z_N with N >= 2 uses N+1-bit two's complement integers (k = n - 2^(N-1)); only the 2-bit
code runs on the accelerator. A word of P lanes puts lane j at bits [w*j + w - 1 : w*j].
"""

from __future__ import annotations

import numpy as np

NONZERO_BIT = 0
SIGN_BIT = 1
CODE_BITS = 2  # ternary / binary
CODE_ZERO, CODE_POS, CODE_NEG = 0b00, 0b01, 0b11


class CodeError(ValueError):
    pass


def code_bits(n_bits: int) -> int:
    return CODE_BITS if n_bits <= 1 else n_bits + 1


def encode(w: np.ndarray, n_bits: int) -> np.ndarray:
    """Integer weights -> unsigned codes (uint8)."""
    w = np.asarray(w).astype(np.int64)
    if n_bits <= 1:
        if np.any(np.abs(w) > 1):
            raise CodeError("ternary code takes only -1, 0, +1")
        return (((w != 0).astype(np.uint8) << NONZERO_BIT)
                | ((w < 0).astype(np.uint8) << SIGN_BIT))
    bits = n_bits + 1
    lim = 2 ** (n_bits - 1)
    if np.any(np.abs(w) > lim):
        raise CodeError(f"Z_{n_bits} code takes integers in [-{lim}, {lim}]")
    return (w & ((1 << bits) - 1)).astype(np.uint8)


def decode(codes: np.ndarray, n_bits: int) -> np.ndarray:
    """Unsigned codes -> integer weights (int8). Raises CodeError on the invalid 0b10."""
    c = np.asarray(codes).astype(np.int64)
    if n_bits <= 1:
        nz = (c >> NONZERO_BIT) & 1
        sg = (c >> SIGN_BIT) & 1
        if np.any((nz == 0) & (sg == 1)):
            raise CodeError("invalid ternary code 0b10 (sign set on a zero weight)")
        if np.any(c >> CODE_BITS):
            raise CodeError("code wider than 2 bits")
        return (nz * (1 - 2 * sg)).astype(np.int8)
    bits = n_bits + 1
    v = c & ((1 << bits) - 1)
    v = np.where(v >= 1 << (bits - 1), v - (1 << bits), v)
    return v.astype(np.int8)


def code_object(n_bits: int) -> dict:
    """The manifest's ``weights.code`` object: this module's definition, written out."""
    if n_bits <= 1:
        return {"zero": CODE_ZERO, "pos": CODE_POS, "neg": CODE_NEG, "nonzero_bit": NONZERO_BIT,
                "sign_bit": SIGN_BIT}
    return {"twos_complement_bits": code_bits(n_bits)}


def word_bytes(lanes: int, width: int) -> int:
    return (lanes * width + 7) // 8


def pack_rom(codes: np.ndarray, width: int) -> np.ndarray:
    """Lane codes (words, lanes) -> little-endian word bytes (words, word_bytes), lane j at
    bits [width*j + width - 1 : width*j] of its word."""
    codes = np.asarray(codes, dtype=np.uint8)
    words, lanes = codes.shape
    shifts = np.arange(width, dtype=np.uint8)
    bits = ((codes[:, :, None] >> shifts) & 1).reshape(words, lanes * width)
    pad = word_bytes(lanes, width) * 8 - lanes * width
    if pad:
        bits = np.concatenate([bits, np.zeros((words, pad), np.uint8)], axis=1)
    return np.packbits(bits, axis=1, bitorder="little")


def unpack_rom(data: np.ndarray, lanes: int, width: int) -> np.ndarray:
    """Inverse of :func:`pack_rom`: (words, word_bytes) bytes -> (words, lanes) codes."""
    data = np.asarray(data, dtype=np.uint8)
    bits = np.unpackbits(data, axis=1, bitorder="little")[:, : lanes * width]
    bits = bits.reshape(data.shape[0], lanes, width).astype(np.uint8)
    return (bits << np.arange(width, dtype=np.uint8)).sum(axis=2).astype(np.uint8)


def rom_lanes(w_int: np.ndarray, lanes: int) -> np.ndarray:
    """The ROM word order: (n_out, n_in) integer weights -> (groups * n_in, lanes) lane values.

    Word address = group * n_in + input_index; lane j of group g is output neuron g*P + j;
    lanes past n_out hold 0 (gate closed). :func:`rom_weights` is the inverse.
    """
    n_out, n_in = w_int.shape
    groups = -(-n_out // lanes)
    padded = np.zeros((groups * lanes, n_in), dtype=w_int.dtype)
    padded[:n_out] = w_int
    # (groups, lanes, n_in) -> (groups, n_in, lanes) -> (groups * n_in, lanes)
    return padded.reshape(groups, lanes, n_in).transpose(0, 2, 1).reshape(groups * n_in, lanes)


def rom_weights(lane_values: np.ndarray, n_out: int, n_in: int) -> np.ndarray:
    """Inverse of :func:`rom_lanes`: (groups * n_in, lanes) -> (groups * lanes, n_in), of
    which the first ``n_out`` rows are the layer's weights and the rest are padding lanes."""
    words, lanes = lane_values.shape
    groups = words // n_in
    return lane_values.reshape(groups, n_in, lanes).transpose(0, 2, 1).reshape(
        groups * lanes, n_in)


def hex_lines(data: np.ndarray, word_bits: int) -> list[str]:
    """$readmemh lines (most significant digit first) for (words, word_bytes) bytes."""
    digits = (word_bits + 3) // 4
    return [bytes(row[::-1]).hex()[-digits:] for row in np.asarray(data, np.uint8)]


def parse_hex_lines(lines: list[str], nbytes: int) -> np.ndarray:
    out = np.zeros((len(lines), nbytes), np.uint8)
    for k, line in enumerate(lines):
        v = int(line, 16)
        out[k] = np.frombuffer(v.to_bytes(nbytes, "little"), np.uint8)
    return out
