"""The board core's protocol engine under random bytes and mutated frames (cocotb, Verilator):
never hangs, answers only valid frames, answers the valid request after the garbage right."""

import pytest

from gxnor.verify import runner

pytestmark = pytest.mark.sim


@pytest.mark.slow
def test_protocol_survives_garbage(random_export, tmp_path):
    export = random_export([7, 3], 4, input_shape=(1, 3, 3), seed=6)
    report = runner.run_link(export, tmp_path, cases=60, seed=1, sim="verilator")
    assert report["errors"] == [] and report["failed"] == 0
    assert len(report["kinds"]) == 7  # every kind of garbage was tried
    assert report["bytes_received"] > 0
