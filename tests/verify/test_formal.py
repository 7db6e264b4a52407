# amaranth: UnusedElaboratable=no
"""Formal properties of the blocks (SymbiYosys + z3): each holds for the real block, and each
check fails for a block (or a claim) that is wrong."""

import pytest

from gxnor.hw.pe import PEArray
from gxnor.hw.threshold import ThresholdUnit
from gxnor.verify import formal

pytestmark = pytest.mark.sim


@pytest.mark.parametrize("name", list(formal.SPECS))
def test_property_holds(name, tmp_path):
    make, mode, depth = formal.SPECS[name]
    result = formal.prove(name, *make(), tmp_path, depth, mode)
    assert result["status"] == "PASS", result["log"]


class XnorInverted(PEArray):
    @staticmethod
    def agree(weight_sign, event_sign):
        return weight_sign ^ event_sign


class GateIgnored(PEArray):
    @staticmethod
    def gate(token_valid, token_end, code):
        return token_valid & ~token_end


class OffByOne(ThresholdUnit):
    @staticmethod
    def at_least(v, threshold):
        return v > threshold


@pytest.mark.parametrize("name, spec, mode, depth", [
    ("xnor_inverted", lambda: formal.pe_lane_spec(lanes=1, block=XnorInverted), "bmc", 8),
    ("gate_ignored", lambda: formal.pe_lane_spec(lanes=1, block=GateIgnored), "bmc", 8),
    ("threshold_off_by_one", lambda: formal.threshold_spec(block=OffByOne), "prove", 1),
    ("one_score_too_many", lambda: formal.classifier_stream_spec(scores_per_send=4), "bmc", 16),
    ("event_one_cycle_early", lambda: formal.event_lists_spec(latency=1), "bmc", 8),
])
def test_a_wrong_block_or_claim_fails(name, spec, mode, depth, tmp_path):
    assert formal.prove(name, *spec(), tmp_path, depth, mode)["status"] == "FAIL"
