"""The weight / activation code as an Amaranth layout, built from :mod:`gxnor.export.codes`."""

from amaranth.lib import data

from gxnor.export import codes

#: 2-bit gated-XNOR code: ``nonzero`` opens the gate, ``sign`` is 1 for negative.
TernaryCode = data.StructLayout({"nonzero": 1, "sign": 1})

# The layout must put the fields where the export's code definition says they are.
assert TernaryCode["nonzero"].offset == codes.NONZERO_BIT
assert TernaryCode["sign"].offset == codes.SIGN_BIT
assert TernaryCode.size == codes.CODE_BITS


def event_layout(index_bits: int) -> data.StructLayout:
    """An event: which input fired, its magnitude (pixel value, or 1) and its sign."""
    return data.StructLayout({"index": index_bits, "magnitude": 8, "sign": 1})
