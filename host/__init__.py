"""The host runtime: the client that talks to a gxnor board (``gxnor run``), on a serial port or
on the board core simulated in cocotb."""
