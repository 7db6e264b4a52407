import pytest
from amaranth.sim import Simulator

from gxnor.hw.layouts import event_layout, token_layout


@pytest.fixture
def simulate():
    """simulate(dut, *testbenches, clock=True): run Amaranth testbenches on ``dut``."""

    def run(dut, *benches, clock=True):
        sim = Simulator(dut)
        if clock:
            sim.add_clock(1e-6)
        for k, bench in enumerate(benches):
            sim.add_testbench(bench, background=k > 0)
        sim.run()

    return run


@pytest.fixture
def small_token():
    """small_token(lanes=4): a token layout for block tests (16-entry lists, 4-bit indices)."""

    def make(lanes=4, depth=16, words=64, index_bits=4, ports=1):
        return token_layout(depth=depth, words=words, neurons=16, thresholds=32, lanes=lanes,
                            index_bits=index_bits, word_bits=2 * lanes, ports=ports)

    return make


@pytest.fixture
def small_event():
    return event_layout(4)


@pytest.fixture
def check_results():
    """check_results(got, ref, cycles=None): the accelerator's results (``run_images``) equal
    the golden model's ``ref`` image by image (events, scores, class) and, given, the cycles
    each image reports."""

    def check(got, ref, cycles=None):
        assert len(got) == len(ref.classes)
        for i, res in enumerate(got):
            assert res["events"] == [int(e[i]) for e in ref.events], f"image {i}: events"
            assert res["scores"] == ref.scores[i].tolist(), f"image {i}: scores"
            assert res["cls"] == int(ref.classes[i]), f"image {i}: class"
            if cycles is not None:
                assert res["cycles"] == cycles[i], f"image {i}: cycles"

    return check
