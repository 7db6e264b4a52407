"""Board support: a table of boards (:mod:`.table`), one object per FPGA family
(:mod:`.families`: PLL, memories, synthesis options, bitstream), the board top (:mod:`.top`),
the build and its report (:mod:`.build`, ``gxnor build``) and flashing (:mod:`.flash`,
``gxnor flash``). Adding a board is one entry in ``table.BOARDS``."""

from .build import KIND, build, build_main, predicted_throughput, report_markdown
from .families import ECP5, ICE40, ecp5_pll, ice40_pll
from .flash import flash, flash_command, flash_main
from .table import BOARDS, UNSUPPORTED, Board, board
from .top import BoardTop

__all__ = ["BOARDS", "ECP5", "ICE40", "KIND", "UNSUPPORTED", "Board", "BoardTop", "board",
           "build", "build_main", "ecp5_pll", "flash", "flash_command", "flash_main",
           "ice40_pll", "predicted_throughput", "report_markdown"]
