"""gxnor: from a GXNOR-trained ternary network to an event-driven FPGA accelerator.

The distribution's packages are the product's folders: ``gxnor.model`` (training),
``gxnor.export`` (integers for the hardware), ``gxnor.sim`` (golden model, cycle model,
cocotb benches) and ``gxnor.hw`` (Amaranth accelerator).
"""

__version__ = "0.1.0"
