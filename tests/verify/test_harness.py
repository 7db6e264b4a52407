# amaranth: UnusedElaboratable=no
"""The fast RTL path (gxnor.verify.harness): Verilator runs whole image sets, the harness
counts clock edges itself, Python compares with the golden model and the cycle model; and
deliberate RTL mutations must each make it fail."""

import numpy as np
import pytest

from gxnor.hw.accelerator import Accelerator
from gxnor.hw.pe import PEArray
from gxnor.hw.sequencer import Sequencer
from gxnor.hw.serializer import Serializer
from gxnor.hw.threshold import ThresholdUnit
from gxnor.verify import harness, random_nets

pytestmark = [pytest.mark.sim, pytest.mark.slow]


# ---- mutants: one deliberate mistake each ----------------------------------------------
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


class OffByOneSerializer(Serializer):
    ThresholdUnit = OffByOne


class SkipsAnEvent(Sequencer):
    SKIP_EVENTS = 1


class CounterOffByOne(Sequencer):
    FIRST_CYCLE = 1


MUTANTS = {
    "XNOR inverted": {"PEArray": XnorInverted},
    "gate ignored": {"PEArray": GateIgnored},
    "threshold off by one": {"Serializer": OffByOneSerializer},
    "one event skipped": {"Sequencer": SkipsAnEvent},
    "cycle counter off by one": {"Sequencer": CounterOffByOne},
}


def mutant(spec, blocks: dict) -> Accelerator:
    return type("Mutant", (Accelerator,), blocks)(spec)


def test_random_networks_and_every_mutation_is_caught(tmp_path, random_export):
    """One build: random networks as they are, and each mutation on two three-layer networks.
    The networks must pass and every mutant must fail (classes, scores, events or cycles)."""
    from gxnor.export import format
    from gxnor.hw.spec import AcceleratorSpec
    from gxnor.model.random_net import random_images
    from gxnor.sim import golden

    cases = [random_nets.draw(seed, images=16) for seed in (3, 11, 14, 21)]
    made = [random_nets.make(c, tmp_path / f"case{c.seed}") for c in cases]
    checks = [(None, net, spec, random_nets.case_images(c))
              for (net, spec), c in zip(made, cases, strict=True)]
    targets = []
    for k, (sizes, lanes) in enumerate((([9, 5, 3], 4), ([12, 7, 4], 3))):
        export = random_export(sizes, lanes, input_shape=(1, 4, 4), seed=40 + k)
        images = random_images(48, (4, 4), density=0.5, seed=k)
        images[5] = 0
        targets.append((golden.Network(export), AcceleratorSpec.from_export(
            format.load(export)), images))
    for name in MUTANTS:
        checks += [(name, *t) for t in targets]
    accels = [spec if name is None else mutant(spec, MUTANTS[name])
              for name, _, spec, _ in checks]
    h = harness.Harness(accels, tmp_path / "build", optimize=False).build()
    results = h.run([im for *_, im in checks], jobs=2)
    caught = {name: False for name in MUTANTS}
    for (name, net, spec, im), res in zip(checks, results, strict=True):
        msgs = harness.compare(net, spec, im, res)
        if name is None:
            assert msgs == [], msgs
            assert np.all(res.latency > res.cycles)  # counted outside: compute + the results
        elif msgs:
            caught[name] = True
    survived = [k for k, v in caught.items() if not v]
    assert not survived, f"mutations that survived: {survived}"


def test_the_default_net_on_mnist(mnist_trained_export, mnist_path, tmp_path):
    """A few hundred MNIST test images of the (one-epoch) default net at P=8, both cores."""
    from gxnor.export import format
    from gxnor.hw.spec import AcceleratorSpec
    from gxnor.model import data
    from gxnor.sim import golden

    images = data.load("mnist", mnist_path).test.images[:300]
    net = golden.Network(mnist_trained_export)
    spec = AcceleratorSpec.from_export(format.load(mnist_trained_export))
    h = harness.Harness([spec], tmp_path / "build", optimize=False).build()
    res = h.run([images], jobs=2)[0]
    assert harness.compare(net, spec, images, res) == []
    assert len(res.cls) == 300
