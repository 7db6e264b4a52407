"""Verification of the generated Verilog against the golden model: cocotb benches, the runner,
the random-network suite (``gxnor sim``)."""
