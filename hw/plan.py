"""The folding planner: how to fold each layer of the pipeline for a device.

For each layer the planner knows, per candidate fold (P lanes, k event ports, r neurons per
serializer cycle: :class:`~gxnor.hw.spec.Fold`), the cycles the layer's engine spends on each
of the export's own test images (the cycle model, :func:`gxnor.hw.timing.engine_cycles`, on
the golden model's event counts) and what it costs (:func:`estimate`: LUT4 and 18-kbit block
RAMs, a model calibrated against yosys ``synth_ecp5`` on the default MLP, see
docs/BENCHMARKS.md). It then picks, as FINN's folding does for a target number of cycles
per frame, the smallest target T such that every stage has a fold whose mean cycles are
<= T and the cheapest such folds fit the budget, and takes the cheapest plan within
``slack`` of that T (a few cycles of interval are not worth thousands of LUTs).

The result, :class:`Plan`, prints as the table ``gxnor build`` shows before synthesis and
writes into the build report next to yosys' and nextpnr's numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from amaranth.hdl import Shape

from gxnor.base.errors import InputError

from . import timing
from .conv import bank_rows, segments, tokens_per_event
from .fetch import BLOCK_SHAPES, WeightFetch
from .spec import Fold, PipelineSpec, conv_taps, event_ports


@dataclass(frozen=True)
class Budget:
    """What the planner may spend: LUT4s and 18-kbit block RAMs (the board, the UART core and
    routing need the rest)."""

    luts: int
    brams: int
    name: str = ""

    def check(self) -> Budget:
        for what, v in (("luts", self.luts), ("brams", self.brams)):
            if not isinstance(v, int) or v < 1:
                raise InputError(f"budget {what} must be a positive integer, got {v!r}")
        return self


#: the devices' resources (LUT4, 18-kbit block RAMs)
DEVICES = {
    "LFE5U-85F": (83640, 208),
    "LFE5U-45F": (43848, 108),
    "LFE5U-25F": (24288, 56),
}

#: the share of a device the planner fills by default (the rest: the UART core, routing, and
#: nextpnr's headroom to meet the clock). At half the 85F (~43k LUT4 placed) nextpnr was
#: still placing after 25 minutes on a 2-core machine; at ~24k LUT4 the pipeline built in 9
#: minutes and met 75 MHz (docs/BENCHMARKS.md), so the default stays in that range; pass a
#: larger budget for more speed
DEFAULT_SHARE = 0.3
#: the share of the block RAMs: they do not crowd the routing as logic does, and a CNN's
#: weights need them (the paper CNN's 1024 x 512 layer alone is 1 Mbit, 58 of the 85F's 208
#: blocks); the board's UART core and the on-chip harness's images take the rest
DEFAULT_BRAM_SHARE = 0.8


def device_budget(device: str, share: float = DEFAULT_SHARE,
                  bram_share: float = DEFAULT_BRAM_SHARE) -> Budget:
    if device not in DEVICES:
        raise InputError(f"no resource table for device {device!r}; devices: "
                         f"{', '.join(DEVICES)}")
    luts, brams = DEVICES[device]
    return Budget(int(luts * share), int(brams * bram_share),
                  f"{share:.0%} of the LUT4s, {bram_share:.0%} of the block RAMs of {device}")


# --- the cost model ------------------------------------------------------------------------

#: The cost model, in LUT4 equivalents (a CCU2C carry cell counts as two LUT4s, as nextpnr
#: counts them), calibrated with yosys 0.70 ``synth_ecp5`` + ``abc -lut 4`` (the pipeline's
#: synthesis flow, see ``gxnor.hw.boards.build``) on the default MLP folded 256x4x8,
#: 256x4x8, 10x4x1 and on PE arrays alone (docs/BENCHMARKS.md has the per-block table):
#: a PE lane costs about one LUT4 per bit of its k gated terms (magnitude + sign), of its
#: adder tree and of its accumulator, plus its gates; the serializer one and a quarter per
#: bit of its shadow bank plus its r threshold units; the event lists a few hundred per bank.
LANE_FACTOR, LANE_FIXED = 1.1, 4.0
SHADOW_PER_BIT = 1.27
UNIT_PER_ACC_BIT, UNIT_FIXED = 5.7, 50.0
LISTS_FIXED, LISTS_PER_BANK = 300.0, 250.0
ENGINE_FIXED = 250.0
#: a convolution lane's pooling maximum (comparator and register), per accumulator bit
CONV_PER_ACC_BIT = 3.0
#: a convolution's lane in one accumulator bank: its gated term, the read-add-write path
#: (adder, forwarding and clear multiplexers) and its share of the tap rotation and the
#: drain's bank multiplexer, per accumulator bit and fixed. Calibrated with yosys
#: ``synth_ecp5`` on the paper CNN's second layer (32 -> 64 channels, k 5, 11-bit
#: accumulators) at 16 lanes: 1, 5 and 25 taps a token gave 2,428, 7,424 and 29,058 LUT4 +
#: 2 CCU2C: ~70 per lane and bank
CONV_BANK_PER_ACC_BIT, CONV_BANK_FIXED = 5.5, 7.5
#: LUT4s of one ECP5 distributed-RAM block (16 words x 4 bits) an accumulator bank of at
#: most 64 words becomes
DPR_LUTS = 2.0
#: a ROM of at most this many bits goes to LUTs, ~1 LUT4 per 8 bits per read port; larger
#: ones to block RAM (``WeightFetch.BLOCK_ROM_BITS``)
LUT_ROM_BITS = WeightFetch.BLOCK_ROM_BITS


def _event(layer: int, spec):
    from .pipeline import engine_event

    return engine_event(spec, layer)


def _term_bits(layer: int, spec) -> int:
    return Shape.cast(_event(layer, spec)["magnitude"].shape).width


def lane_luts(ports: int, bits: int, acc_bits: int) -> float:
    """LUT4 of one PE lane: k terms of ``bits`` + sign, the adder tree, the accumulator."""
    terms = ports * (bits + 1)
    tree = (ports - 1) * (bits + 1 + max(ports.bit_length() - 1, 1))
    return LANE_FACTOR * (terms + tree + acc_bits) + LANE_FIXED


def blocks(words: int, width: int, dual: bool = False) -> int:
    """18-kbit blocks of a ``words`` x ``width`` memory in the best of the block's aspect
    ratios (``dual``: two ports, so not the 36-bit one)."""
    shapes = BLOCK_SHAPES[:-1] if dual else BLOCK_SHAPES
    return min(math.ceil(width / w) * math.ceil(words / d) for d, w in shapes)


def weight_brams(words: int, width: int, ports: int) -> int:
    """18-kbit blocks of a ROM of ``words`` x ``width`` bits read by ``ports`` ports: each
    true-dual-port block gives two read ports, so every pair of ports is a copy. Small ROMs
    become logic (0 blocks)."""
    if words * width <= LUT_ROM_BITS:
        return 0
    if ports == 1:
        return blocks(words, width)
    return math.ceil(ports / 2) * blocks(words, width, dual=True)


def acc_brams(words: int, width: int) -> int:
    """18-kbit blocks of a convolution's accumulator RAM (one read and one write port); at
    most 64 words becomes LUT RAM."""
    if words <= 64:
        return 0
    return blocks(words, width)


def list_brams(depth: int, event_bits: int, banks: int, buffers: int) -> int:
    """18-kbit blocks of one boundary's event lists: ``buffers`` lists of ``banks`` banks;
    a bank of at most 64 entries x 36 bits becomes distributed RAM (LUTs)."""
    per_bank = math.ceil(depth / banks)
    if per_bank * event_bits <= 64 * 36:
        return 0
    return buffers * banks * blocks(per_bank, event_bits)


def estimate(spec: PipelineSpec, layer: int, fold: Fold | None = None,
             banks: int | None = None) -> dict:
    """The cost of layer ``layer``'s engine folded ``fold`` (default: the spec's): LUT4s,
    18-kbit blocks (weights, event lists) and the weight bits."""
    fold = fold or spec.folds[layer]
    ly = spec.layers[layer]
    banks = banks or max(event_ports(ly, fold), spec.banks(layer))
    bits = _term_bits(layer, spec)
    last = layer == len(spec.layers) - 1
    groups = math.ceil(ly.n_out / fold.lanes)
    # a convolution: T = ports taps a token, T lanes of one port each per output channel,
    # one weight word of T taps (one read port)
    taps, ports = (fold.ports, 1) if ly.conv else (1, fold.ports)
    words = (ly.conv.channels * tokens_per_event(ly.conv, taps) if ly.conv else ly.n_in) * groups
    width = 2 * fold.lanes * taps
    lane = (LANE_FACTOR * (bits + 1) + CONV_BANK_PER_ACC_BIT * ly.acc_bits + CONV_BANK_FIXED
            if ly.conv else lane_luts(ports, bits, ly.acc_bits))
    luts = (ENGINE_FIXED + taps * fold.lanes * lane
            + SHADOW_PER_BIT * fold.lanes * ly.acc_bits
            + (0 if last else fold.rate * (UNIT_PER_ACC_BIT * ly.acc_bits + UNIT_FIXED))
            + LISTS_FIXED + LISTS_PER_BANK * banks)
    wb = weight_brams(words, width, ports)
    if wb == 0:
        luts += words * width * ports / 8
    event_bits = _event(layer, spec).size
    lb = list_brams(ly.inputs, event_bits, banks, spec.buffers)
    ab = 0
    if ly.conv:  # the accumulator RAM banks (block or LUT RAM), each lane's pooling maximum
        _, bank_words = bank_rows(ly.conv, taps)
        acc_width = fold.lanes * ly.acc_bits
        ab = taps * acc_brams(bank_words, acc_width)
        if ab == 0:
            luts += taps * DPR_LUTS * -(-bank_words // 16) * -(-acc_width // 4)
        luts += CONV_PER_ACC_BIT * fold.lanes * ly.acc_bits
    return {"luts": int(round(luts)), "brams": wb + lb + ab, "weight_brams": wb,
            "list_brams": lb, "acc_brams": ab, "weight_bits": words * width}


# --- the plan ---------------------------------------------------------------------------------


@dataclass
class Plan:
    """A folded pipeline and what the cycle model and the cost model say of it."""

    spec: PipelineSpec
    budget: Budget
    images: int  # the test images the cycles come from
    stages: dict = field(default_factory=dict)  # name -> {mean, max, ...}
    interval: float = 0.0  # mean cycles between results (the exact pipeline timeline)
    latency: float = 0.0  # mean cycles from an image's last beat to its last score
    luts: int = 0
    brams: int = 0

    @property
    def bottleneck(self) -> str:
        return max(self.stages, key=lambda s: self.stages[s]["mean"])

    def table(self) -> str:
        """The per-stage table (text)."""
        head = (f"{'stage':<7}{'lanes':>6}{'ports':>6}{'rate':>5}{'cyc mean':>10}"
                f"{'cyc max':>9}{'weight bits':>13}{'est LUT4':>10}{'est BRAM':>10}")
        lines = [head, "-" * len(head)]
        bott = self.bottleneck
        for name, r in self.stages.items():
            lines.append(
                f"{name:<7}{r.get('lanes', ''):>6}{r.get('ports', ''):>6}{r.get('rate', ''):>5}"
                f"{r['mean']:>10.1f}{r['max']:>9}{r.get('weight_bits', ''):>13}"
                f"{r.get('luts', ''):>10}{r.get('brams', ''):>10}"
                + ("  <- bounds the pipeline" if name == bott else ""))
        name = f", {self.budget.name}" if self.budget.name else ""
        lines.append(f"total: est {self.luts} LUT4, {self.brams} BRAM (budget {self.budget.luts}"
                     f" LUT4, {self.budget.brams} BRAM{name}); interval {self.interval:.1f}"
                     f" cycles/image, latency {self.latency:.0f} ({self.images} test images, "
                     f"B={self.spec.buffers} buffers)")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"folds": [[f.lanes, f.ports, f.rate] for f in self.spec.folds],
                "input_ports": self.spec.input_ports, "buffers": self.spec.buffers,
                "budget": {"luts": self.budget.luts, "brams": self.budget.brams,
                           "name": self.budget.name},
                "images": self.images, "stages": self.stages,
                "interval_cycles": self.interval, "latency_cycles": self.latency,
                "bottleneck": self.bottleneck,
                "estimate": {"luts": self.luts, "brams": self.brams}}


def describe(spec: PipelineSpec, events_per_layer, budget: Budget) -> Plan:
    """The plan of a given pipeline (e.g. folds chosen by hand): cycles per stage from the
    cycle model, costs from the cost model, the exact interval and latency from the
    timeline."""
    ev = [np.asarray(e, np.int64).reshape(-1) for e in events_per_layer]
    cyc = timing.stage_cycles(spec, ev)
    stages, luts, brams = {}, 0, 0
    for name, c in cyc.items():
        row = {"mean": float(np.mean(c)), "max": int(np.max(c))}
        if name.startswith("L"):
            i = int(name[1:])
            f = spec.folds[i]
            cost = estimate(spec, i)
            row.update(lanes=f.lanes, ports=f.ports, rate=f.rate, **cost)
            luts += cost["luts"]
            brams += cost["brams"]
        elif name == "input":
            row.update(ports=spec.input_ports)
        stages[name] = row
    tl = timing.pipeline_timeline(spec, ev)
    return Plan(spec, budget, len(ev[0]), stages, timing.result_interval(tl["result"]),
                float(np.mean(tl["cycles"])), luts, brams)


class Option(NamedTuple):
    """A candidate fold of one layer: its mean cycles per image and its cost."""

    cycles: float
    luts: int
    brams: int
    fold: Fold


def _candidates(n_out: int, last: bool, kernel: int | None = None, max_lanes: int = 1024):
    """The folds tried for a layer; a convolution's ports (taps a token): for each count of
    tokens a kernel row (or rows a kernel) the fewest taps (or rows) that give it."""
    lanes = sorted({min(1 << j, n_out) for j in range(11) if 1 << j <= max_lanes} | {n_out})
    ports = (1, 2, 4, 8, 16)
    if kernel:
        fewest = {}  # tokens a kernel -> the fewest taps that give it
        for taps in conv_taps(kernel):
            fewest.setdefault(math.prod(segments(kernel, taps)), taps)
        ports = sorted(fewest.values())
    for p in lanes:
        for k in ports:
            for r in ((1,) if last else (1, 2, 4, 8, 16)):
                if p % r == 0:
                    yield Fold(p, k, r)


def plan(net, events_per_layer, budget: Budget, *, buffers: int = 3, slack: float = 0.05,
         target_cycles: float | None = None) -> Plan:
    """Fold the export ``net`` (:func:`gxnor.export.format.load`) for ``budget``.

    ``events_per_layer``: per layer, E of each test image (the golden model's). Picks the
    smallest per-stage target T (mean cycles per image) that the cheapest folds meeting it
    fit in the budget, then the cheapest plan whose T is within ``slack`` of it; with
    ``target_cycles``, the cheapest plan whose stages all meet that. Raises InputError
    naming the layer that cannot fit."""
    budget.check()
    ev = [np.asarray(e, np.int64).reshape(-1) for e in events_per_layer]
    n_layers = len(net.layers)
    base = PipelineSpec.from_export(net, [(1, 1, 1)] * n_layers, 1, buffers)
    options = []  # per layer: [Option]
    for i, ly in enumerate(base.layers):
        last = i == n_layers - 1
        opts = []
        for f in _candidates(ly.n_out, last, ly.conv and ly.conv.kernel):
            c = float(np.mean(timing.engine_cycles(ev[i], ly.n_out, f, ly.conv)))
            # the lists' banks also follow the writer (the input, the previous serializer):
            # the plan's own table (:func:`describe`) counts them exactly
            cost = estimate(base, i, f, banks=event_ports(ly, f))
            opts.append(Option(c, cost["luts"], cost["brams"], f))
        options.append(opts)
    inputs = [(float(np.mean(timing.input_beats(ev[0], m))), m) for m in (1, 2, 4, 8, 16)]
    floor = timing.output_cycles(net.layers[-1].n_out)

    def cheapest(opts, t):
        ok = [o for o in opts if o.cycles <= t]
        if not ok:
            return None
        # cheapest by the budget share of its scarcer resource, then faster
        return min(ok, key=lambda o: (max(o.luts / budget.luts, o.brams / budget.brams),
                                      o.cycles))

    def at(t):
        picks = [cheapest(o, t) for o in options]
        if any(p is None for p in picks):
            return None
        m = min((m for c, m in inputs if c <= t), default=None)
        if m is None:
            return None
        return picks, m

    def cost(sol):
        """LUT4 and blocks of a choice, each layer's lists banked for their writer too (the
        input's ports, the previous serializer's rate), as :func:`describe` counts them."""
        picks, m = sol
        luts = brams = 0
        for i, p in enumerate(picks):
            writer = m if i == 0 else picks[i - 1].fold.rate
            c = estimate(base, i, p.fold, banks=max(event_ports(base.layers[i], p.fold),
                                                    writer))
            luts, brams = luts + c["luts"], brams + c["brams"]
        return luts, brams

    def fits(sol):
        luts, brams = cost(sol)
        return luts <= budget.luts and brams <= budget.brams

    targets = sorted({o.cycles for opts in options for o in opts} | {c for c, _ in inputs})
    targets = [t for t in targets if t >= floor] or [floor]
    if target_cycles is not None:
        sol = at(max(target_cycles, floor))
        if sol is None:
            raise InputError(f"no fold reaches {target_cycles} cycles/image in every stage")
        chosen = sol
    else:
        best = next((t for t in targets if (s := at(t)) is not None and fits(s)), None)
        if best is None:
            # nothing fits: name the layer whose cheapest fold alone is too much
            for i, opts in enumerate(options):
                c = min(opts, key=lambda o: (o.luts, o.brams))
                if c.luts > budget.luts or c.brams > budget.brams:
                    raise InputError(
                        f"layer {i} ({base.layers[i].n_in}x{base.layers[i].n_out}): even its "
                        f"smallest fold needs ~{c.luts} LUT4 and {c.brams} block RAMs; the budget "
                        f"is {budget.luts} LUT4, {budget.brams} block RAMs")
            raise InputError(f"the layers' smallest folds together exceed the budget "
                             f"({budget.luts} LUT4, {budget.brams} block RAMs)")
        chosen = min((s for t in targets if t <= best * (1 + slack)
                      and (s := at(t)) is not None and fits(s)),
                     key=lambda s: cost(s)[0])
    picks, m = chosen
    spec = PipelineSpec.from_export(net, [p.fold for p in picks], m, buffers)
    return describe(spec, ev, budget)


def parse_folds(text: str) -> list[Fold]:
    """``--folds``: one LANESxPORTSxRATE per layer, comma-separated (PORTS and RATE may be
    left out: 1), e.g. ``256x4x8,256x4x8,10x4``."""
    folds = []
    for i, part in enumerate(text.split(",")):
        fields = part.strip().lower().split("x")
        try:
            nums = [int(f) for f in fields]
        except ValueError:
            nums = []
        if not 1 <= len(nums) <= 3:
            raise InputError(f"--folds: layer {i}: {part.strip()!r} is not LANES[xPORTS[xRATE]]")
        # ports are checked again against the layer (fc: a power of two; conv: 1 .. k)
        folds.append(Fold(*nums).check(f"--folds: layer {i}", None))
    return folds

