# amaranth: UnusedElaboratable=no
"""The board table and the FPGA families: PLL settings, memories (gxnor.hw.boards)."""

import pytest

from gxnor.hw import boards
from gxnor.hw.boards import families


def test_plls_match_icepll_and_ecppll():
    # icepll -i 12 -o 30 / ecppll -i 25 -o 100
    p = boards.ice40_pll(12e6, 30e6)
    assert (p["DIVR"], p["DIVF"], p["DIVQ"], p["FILTER_RANGE"]) == (0, 79, 5, 1)
    e = boards.ecp5_pll(25e6, 100e6)
    assert (e["CLKI_DIV"], e["CLKFB_DIV"], e["CLKOP_DIV"]) == (1, 4, 6)
    for f in (20e6, 33e6, 48e6):
        p = boards.ice40_pll(12e6, f)
        assert p["f_out"] <= f
        assert p["f_out"] == 12e6 * (p["DIVF"] + 1) / (p["DIVR"] + 1) / 2 ** p["DIVQ"]
        assert 533e6 <= p["f_out"] * 2 ** p["DIVQ"] <= 1066e6
    for f in (62.5e6, 85e6, 125e6):
        e = boards.ecp5_pll(25e6, f)
        assert e["f_out"] <= f and 400e6 <= e["f_out"] * e["CLKOP_DIV"] <= 800e6
    with pytest.raises(ValueError, match="no iCE40 PLL"):
        boards.ice40_pll(12e6, 5e6)


def test_board_names():
    assert boards.board("icebreaker").family is boards.ICE40
    assert boards.board("ulx3s-85f").weights == "rom"
    with pytest.raises(ValueError, match="no UART"):
        boards.board("upduino-v3")
    with pytest.raises(ValueError, match="unknown board 'nope'.*icebreaker"):
        boards.board("nope")


def test_spram_capacity_is_checked():
    with pytest.raises(ValueError, match="SPRAM blocks"):
        families.SPRAMStore(depth=16384 * 2, width=64)
    assert families.SPRAMStore(depth=8576, width=64).starts_empty  # the default net, P=32
    with pytest.raises(ValueError, match="no 'spram' weight memory"):
        families.ECP5.weight_store(None, "spram")
