# amaranth: UnusedElaboratable=no
"""The board core's parameters and what it reports (its behaviour is tested end to end in
tests/host/test_run.py and under garbage in tests/verify/test_bench_link.py)."""

import pytest

from gxnor.hw.link import protocol as P
from gxnor.hw.link.core import BoardCore
from gxnor.hw.spec import AcceleratorSpec
from gxnor.sim import golden


def test_board_core_rejects_bad_parameters(random_export):
    spec = AcceleratorSpec.from_export(golden.Network(random_export([5, 3], 4)))
    with pytest.raises(ValueError, match="weights"):
        BoardCore(spec, divisor=8, weights="eeprom")
    with pytest.raises(ValueError, match="timeout"):
        BoardCore(spec, divisor=8, timeout=10)
    with pytest.raises(ValueError, match="divisor"):
        BoardCore(spec, divisor=2)
    core = BoardCore(spec, divisor=8, weights="ram", net_id=7)
    info = core.info()
    assert (info.lanes, info.n_pixels, info.num_classes, info.weights_ram, info.net_id) == \
        (4, 16, 3, 1, 7)
    assert P.Info.decode(info.encode()) == info
