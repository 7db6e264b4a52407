"""The cycle model: the single definition of the accelerator's timing contract, built from
the latencies its blocks declare (``gxnor.hw.sequencer``, ``.events``, ``.fetch``,
``.serializer``, ``.argmax``).

The hardware is built to these numbers and its tests check it cycle for cycle. For one fully
connected layer with E input events (nonzero activations), n_out outputs and P lanes,
G = ceil(n_out / P) groups of n_g = min(P, n_out - g P) neurons, B = ceil(E / k) bundles of k
events:

* ``SETUP`` cycles load the layer's parameters.
* Group g issues its B bundles back to back (no bubbles) and then one END token that moves
  the P accumulators to the output serializer; the END token of group g must wait until the
  serializer has finished group g-1 (n_{g-1} cycles: one threshold or score per cycle), so
  group g occupies the issue stage for max(B + 1, n_{g-1}) cycles (n_{-1} = 0). A hidden
  layer's last group waits ``SETTLE`` cycles more: until the group before has left the
  serializer, so that its outputs are all in the next layer's list.
* The next layer starts (``SETUP``) the cycle after the last END token, while the serializer
  still writes the last group's outputs: its group 0 issues the list's earlier events at
  once, and the last group's events (E_tail of them: the events whose index is in that group)
  from ``COMMIT`` + n_{G-1} cycles after that END token, when the list is complete; its END
  token waits for both.
* After the last layer's last END token: ``PIPELINE`` cycles to reach the PE array (the
  event-list read and the weight fetch), n_{G-1} serializer cycles, ``SERIALIZER_LATENCY``
  cycles through the registers around the score unit, ``DRAIN`` cycles until the class is
  known.

So an image's cycles depend on each layer's E and, where a layer follows one of several
groups, on E_tail: :func:`image_cycles` takes the golden model's events
(:class:`gxnor.sim.golden.Events`, which know where the events are). The count starts on the
cycle after the engine takes the image (``TAKE`` cycles after its last pixel is accepted, on
an idle engine) and stops when the class is known (loading pixels and streaming results out
are not counted: :func:`io_cycles`). The dense reference is the same array with E = n_in for
every layer.
"""

from __future__ import annotations

import math

import numpy as np

from gxnor.sim.golden import Events

from .argmax import Classifier
from .conv import ConvPEArray, tokens_per_event
from .events import EventLists, PieceEventLists
from .fetch import WeightFetch
from .pe import PEArray
from .sequencer import Sequencer
from .serializer import Serializer, serial_cycles
from .spec import layer_folds

SETUP = Sequencer.SETUP_CYCLES
#: from issuing a token to the PE array: the event-list read and register, the weight-memory
#: read and register (block RAM outputs only feed registers: timing)
TO_PE = EventLists.latency + WeightFetch.latency
#: from issuing an END token to its group's sums leaving the PE array (the PE array registers
#: the lanes' terms first)
PIPELINE = TO_PE + PEArray.latency - 1
#: the same for the layer pipeline's engines, whose event lists register each block RAM's
#: answer before choosing between them (:class:`~gxnor.hw.events.PieceEventLists`)
PIPELINED_TO_PE = PieceEventLists.latency + WeightFetch.latency
PIPELINED_PIPELINE = PIPELINED_TO_PE + PEArray.latency - 1
SERIALIZER_LATENCY = Serializer.latency
DRAIN = Sequencer.DRAIN_CYCLES
#: a hidden layer's last group: its END token waits this much more than the serializer's
#: credit, until the group before has left the serializer and is in the next layer's list
#: (``Sequencer(settle=)``)
SETTLE = PIPELINE + SERIALIZER_LATENCY
#: from a hidden layer's last END token to the first cycle the next layer may issue the
#: events of that last group, besides the group's serializer cycles: the sums reach the
#: serializer, its latency, the list's count (a register) and the sequencer's (a register)
COMMIT = PIPELINE + SERIALIZER_LATENCY + 2
#: the shared engine takes an image (its sequencer's start) the cycle after the image's last
#: pixel is in (the input list's full flag, a register), at the earliest
TAKE = 1


def group_sizes(n_out: int, lanes: int) -> list[int]:
    """n_g for each group g: P neurons, the last group what is left."""
    groups = math.ceil(n_out / lanes)
    return [min(lanes, n_out - g * lanes) for g in range(groups)]


def bundles(events, ports: int = 1):
    """Tokens that carry E events, ``ports`` at a time."""
    return -(-np.asarray(events, dtype=np.int64) // ports)


def tail_events(events_per_layer, layer_outputs: list[int], lanes: int) -> list:
    """Per layer l: E_tail, its events that the last group of layer l-1 wrote (index >=
    (G-1) P), the part of its list that is read only once layer l-1's last outputs are in;
    all of them after a one-group layer, none for layer 0 (its list is complete when the image
    starts). ``events_per_layer`` must know where its events are
    (:meth:`gxnor.sim.golden.Events.from_index`) when a layer follows one of several groups."""
    tails = [np.zeros_like(np.asarray(events_per_layer[0], dtype=np.int64))]
    for layer in range(1, len(layer_outputs)):
        groups = math.ceil(layer_outputs[layer - 1] / lanes)
        if groups == 1:
            tails.append(np.asarray(events_per_layer[layer], dtype=np.int64))
            continue
        if not isinstance(events_per_layer, Events):
            raise ValueError(
                f"layer {layer} follows a layer of {groups} groups: its cycles depend on where "
                "its events are, which a list of counts does not say (pass the golden model's "
                "events, gxnor.sim.golden.Events)")
        tails.append(np.asarray(events_per_layer.from_index(layer, (groups - 1) * lanes),
                                dtype=np.int64))
    return tails


def issue_plan(events_per_layer, layer_outputs: list[int], lanes: int, ports: int = 1,
               rate: int = 1, slices: int = 1) -> list[list[tuple]]:
    """The sequencer's issue of one image (or of each image: arrays), cycle 0 being the first
    counted cycle (layer 0's ``SETUP``): per layer, per group, ``(first, early, resume, late,
    end)``: ``early`` bundles from cycle ``first``, ``late`` bundles from cycle ``resume`` (a
    group 0 waiting for the last outputs of the layer before), the END token at ``end``. Then
    the image's cycles: :func:`image_cycles`."""
    folds = layer_folds(len(layer_outputs), ports, rate, slices)
    tails = tail_events(events_per_layer, layer_outputs, lanes)
    plan, end, tail_ready = [], -1, None  # end: the last END token so far (SETUP at end + 1)
    for layer, (e, n_out, (k, r)) in enumerate(zip(events_per_layer, layer_outputs, folds,
                                                   strict=True)):
        e = np.asarray(e, dtype=np.int64)
        b = bundles(e, k)
        early = (e - tails[layer]) // k  # full bundles of the list's earlier part
        sizes = [serial_cycles(n, r) for n in group_sizes(n_out, lanes)]
        hidden = layer < len(layer_outputs) - 1
        first, credit, groups = end + 1 + SETUP, 0, []
        for g, size in enumerate(sizes):
            if g == 0 and tail_ready is not None:
                resume = np.maximum(first + early, tail_ready)
                end = np.maximum(resume + b - early, credit)
                groups.append((first, early, resume, b - early, end))
            else:
                end = np.maximum(first + b, credit)
                groups.append((first, b, first + b, 0 * b, end))
            settle = SETTLE if hidden and g + 2 == len(sizes) else 0
            credit, first = end + size + settle, end + 1
        plan.append(groups)
        tail_ready = end + COMMIT + sizes[-1]
    return plan


def image_cycles(events_per_layer, layer_outputs: list[int], lanes: int, ports: int = 1,
                 rate: int = 1, slices: int = 1):
    """Cycles per image; ``events_per_layer[l]`` is E of layer l (int or per-image array),
    the golden model's :class:`~gxnor.sim.golden.Events` where a layer follows one of several
    groups (:func:`tail_events`)."""
    plan = issue_plan(events_per_layer, layer_outputs, lanes, ports, rate, slices)
    last = group_sizes(layer_outputs[-1], lanes)[-1]  # scores: one a cycle
    total = plan[-1][-1][-1] + 1 + PIPELINE + last + SERIALIZER_LATENCY + DRAIN
    return total if np.ndim(total) else int(total)


def event_bound(events, n_out: int, lanes: int):
    """The ideal: every event of every group in one cycle, nothing else."""
    return np.asarray(events, dtype=np.int64) * math.ceil(n_out / lanes)


def dense_cycles(layer_inputs: list[int], layer_outputs: list[int], lanes: int,
                 ports: int = 1, rate: int = 1, slices: int = 1) -> int:
    """The same array without zero-skipping: every input is an event."""
    return int(image_cycles(Events.dense(layer_inputs), layer_outputs, lanes, ports, rate,
                            slices))


def result_latency(events_per_layer, layer_outputs: list[int], lanes: int, ports: int = 1,
                   rate: int = 1, slices: int = 1):
    """Cycles from the cycle after an image's last pixel is accepted to the cycle its result is
    valid on an idle engine, counted outside the accelerator (results taken as soon as
    offered): the cycle the engine takes the image, the compute cycles, then the scores
    (``Classifier.cycles_per_score`` each) and the result's cycle."""
    return (TAKE + image_cycles(events_per_layer, layer_outputs, lanes, ports, rate, slices)
            + Classifier.cycles_per_score * layer_outputs[-1] + 1)


def folding(spec) -> dict:
    """The cycle model's arguments of an accelerator spec (``gxnor.hw.spec``): outputs per
    layer, lanes, ports, rate, slices."""
    return {"layer_outputs": [ly.n_out for ly in spec.layers], "lanes": spec.lanes,
            "ports": spec.ports, "rate": spec.rate, "slices": spec.slices}


def shared_timeline(compute, n_pixels: int, n_classes: int) -> dict:
    """When each image's pixels go in and its result comes out on the shared engine, cycle by
    cycle, when pixels are offered every cycle from cycle 0 (the first after reset) and results
    are taken as soon as they are offered; ``compute[i]``: image i's compute cycles
    (:func:`image_cycles`). Returns arrays over the images: ``first_pixel``, ``last_pixel``
    (the cycles they are accepted), ``done`` (the class is known) and ``result`` (the result
    is valid).

    The rules (``gxnor.hw.accelerator``): the input lists take alternate images; a list takes
    its next image the cycle after it is free (the engine finished the image it held) and the
    previous image's last pixel is in; the engine starts an image in the cycle after its last
    pixel arrives or the cycle after the previous result was taken, whichever is later; then its
    compute cycles, then the scores (``Classifier.cycles_per_score`` each) and the result.
    """
    compute = np.asarray(compute, dtype=np.int64)
    n = len(compute)
    first, last, done, result = (np.zeros(n, np.int64) for _ in range(4))
    for i in range(n):
        free = done[i - 2] + 1 if i >= 2 else 0  # the list's previous image is through
        first[i] = 1 if i == 0 else max(last[i - 1] + 1, free) + 1
        last[i] = first[i] + n_pixels - 1
        start = last[i] + TAKE if i == 0 else max(last[i] + TAKE, result[i - 1] + 1)
        done[i] = start + compute[i]
        result[i] = done[i] + Classifier.cycles_per_score * n_classes + 1
    return {"first_pixel": first, "last_pixel": last, "done": done, "result": result}


def io_cycles(n_pixels: int, n_classes: int) -> int:
    """Cycles per image outside the compute count when images come back to back: the scores,
    the result (output ``ready`` held high) and the cycle in which the engine takes the next
    image. The pixels of the next image arrive while the engine computes; only when they take
    longer than that (one cycle per pixel and one between images) do they set the pace: see
    :func:`interval`."""
    return Classifier.cycles_per_score * n_classes + 2


def interval(compute, n_pixels: int, n_classes: int):
    """Cycles between results when images come back to back (steady state): the compute and
    the results, or the pixels of the next image, whichever takes longer."""
    return np.maximum(np.asarray(compute) + io_cycles(n_pixels, n_classes), n_pixels + 1)


#: the rows of :func:`schedule`, in the order of the blocks along the engine
BLOCKS = ("issue", "event_lists", "weight_fetch", "pe_array", "serializer")


def schedule(events_per_layer, layer_outputs: list[int], lanes: int, ports: int = 1,
             rate: int = 1, slices: int = 1) -> dict:
    """Which block holds work in which cycle, for one image: {block: {cycle: label}}, cycle 0
    being the first counted cycle (``TAKE + 1`` after the last pixel on an idle engine). The
    same numbers as :func:`image_cycles` (:func:`issue_plan`), cycle by cycle: the
    accelerator's ``stages`` port shows exactly these cycles (tests/hw/test_timing.py), and
    docs/ARCHITECTURE.md draws them.

    issue: the sequencer issues a token (``e`` bundle, ``END``); event_lists / weight_fetch: a
    token is in their registers (``latency`` cycles each); pe_array: a token reaches the
    accumulators; serializer: a group's neurons are on their way through it.
    """
    rows: dict = {b: {} for b in BLOCKS}
    folds = layer_folds(len(layer_outputs), ports, rate, slices)
    plan = issue_plan(events_per_layer, layer_outputs, lanes, ports, rate, slices)
    for layer, (groups, n_out, (_, layer_rate)) in enumerate(
            zip(plan, layer_outputs, folds, strict=True)):
        sizes = [serial_cycles(n, layer_rate) for n in group_sizes(n_out, lanes)]
        for g, ((first, early, resume, late, end), size) in enumerate(
                zip(groups, sizes, strict=True)):
            cycles = [*range(int(first), int(first + early)),
                      *range(int(resume), int(resume + late))]
            tokens = [(c, f"L{layer} g{g} e{k}") for k, c in enumerate(cycles)]
            tokens.append((int(end), f"L{layer} g{g} END"))
            for c, label in tokens:
                rows["issue"][c] = label
                for d in range(EventLists.latency):
                    rows["event_lists"][c + 1 + d] = label
                for d in range(WeightFetch.latency):
                    rows["weight_fetch"][c + 1 + EventLists.latency + d] = label
                rows["pe_array"][c + TO_PE] = label
            out = int(end) + PIPELINE  # the group's sums leave the PE array
            for c in range(out + 1, out + 1 + size + SERIALIZER_LATENCY):
                rows["serializer"][c] = f"L{layer} g{g}"
    return rows


def wavejson(rows: dict, cycles: int, title: str) -> dict:
    """WaveDrom's WaveJSON for a :func:`schedule`: one lane per block, a box per piece of
    work (events share one box per group)."""
    lanes = [{"name": "clk", "wave": "p" + "." * (cycles - 1)}]
    for block in BLOCKS:
        wave, labels, prev = "", [], None
        for c in range(cycles):
            label = rows[block].get(c)
            if label is not None and block != "serializer":
                label = label.rsplit(" e", 1)[0]  # a group's events: one box
            if label is None:
                wave += "0" if prev is not None or c == 0 else "."
            elif label == prev:
                wave += "."
            else:
                wave += "5" if label.endswith("END") else "3"
                labels.append("end" if label.endswith("END") else label)
            prev = label
        lanes.append({"name": block.replace("_", " "), "wave": wave, "data": labels})
    return {"signal": lanes, "head": {"text": title}, "config": {"hscale": 2}}


# --- the layer pipeline (``gxnor.hw.pipeline``) ---------------------------------------------


def input_beats(events, input_ports: int):
    """Beats that carry an image's E nonzero pixels, ``input_ports`` at a time (at least one:
    the beat that ends the image)."""
    return np.maximum(bundles(events, input_ports), 1)


def engine_cycles(events, n_out: int, fold, conv=None) -> np.ndarray | int:
    """Cycles a pipeline engine spends issuing one image in steady state (the same image over
    and over): one to start it, then per group max(B + 1, the previous group's serializer
    cycles), the previous group of group 0 being the last group of the image before. A
    convolution (``conv``: its :class:`~gxnor.hw.spec.ConvShape`): per group its E x k x
    ceil(k / T) tokens (T = ``fold.ports`` taps a token) and the END, after the previous
    group's drain credit (:func:`conv_credits`; the start of an image overlaps it)."""
    sizes = [serial_cycles(n, fold.rate) for n in group_sizes(n_out, fold.lanes)]
    if conv is not None:
        b = np.asarray(events, dtype=np.int64) * tokens_per_event(conv, fold.ports)
        credits = conv_credits(conv, n_out, fold)
        total = 0
        for g in range(len(sizes)):
            total = total + b + credits[g - 1]
        return total if np.ndim(total) else int(total)
    b = bundles(events, fold.ports)
    total = 1
    for g in range(len(sizes)):
        total = total + np.maximum(b + 1, sizes[g - 1])
    return total if np.ndim(total) else int(total)


def conv_credits(conv, n_out: int, fold) -> list[int]:
    """Per group of a convolution engine: the cycles from its END token to the next group's
    first token (``gxnor.hw.conv.ConvPEArray.credit``)."""
    return [ConvPEArray.credit(conv, fold.lanes, fold.rate, n)
            for n in group_sizes(n_out, fold.lanes)]


def output_cycles(n_classes: int) -> int:
    """Cycles of the pipeline's output per image: the scores and the result (``ready`` held
    high) and the cycle that starts the next."""
    return Classifier.cycles_per_score * n_classes + 2


def stage_cycles(spec, events_per_layer) -> dict:
    """Per stage of a :class:`~gxnor.hw.spec.PipelineSpec` (``input``, ``L0`` ..,
    ``output``): its cycles per image in steady state, per image (arrays over the images).
    The slowest stage bounds the interval between results (:func:`pipeline_timeline` has
    the exact one)."""
    out = {"input": input_beats(events_per_layer[0], spec.input_ports)}
    for i, (e, ly, fold) in enumerate(zip(events_per_layer, spec.layers, spec.folds,
                                          strict=True)):
        out[f"L{i}"] = np.asarray(engine_cycles(e, ly.n_out, fold, ly.conv))
    out["output"] = np.full(len(out["input"]), output_cycles(spec.num_classes))
    return out


def result_interval(result) -> float:
    """The mean cycles between consecutive results of a timeline's ``result`` cycles (one
    image: the cycles until its result)."""
    result = np.asarray(result)
    return float(np.diff(result).mean()) if len(result) > 1 else float(result[0] + 1)


def pipeline_timeline(spec, events_per_layer) -> dict:
    """When each image's beats go in, each engine starts and frees it, and its result comes
    out, cycle by cycle, when beats are offered every cycle from cycle 0 (the first after
    reset) and results are taken as soon as they are offered. ``events_per_layer[l][i]``: E
    of layer l for image i. Returns arrays over the images: ``first_pixel`` / ``last_pixel``
    (the image's first and last beat accepted), ``start`` / ``release`` (per engine: the
    start cycle, the last END token), ``done`` (the last engine's last score is in), ``result``
    (the result is valid) and ``cycles`` (what the accelerator reports: done - last_pixel).

    The rules (``gxnor.hw.pipeline``): image i uses buffer i mod B of every boundary; a buffer
    is free the cycle after its consumer released it; an engine starts an image in the first
    cycle after its previous image's last END token in which the image's input buffer is full
    and its output buffer free (both seen one cycle after they change); each group's END token
    waits for the serializer's credit, across images; the last outputs leave the serializer
    ``PIPELINED_PIPELINE + serial + SERIALIZER_LATENCY`` cycles after the last END token; the output
    sends the scores and the result (:func:`output_cycles`).
    """
    ev = [np.asarray(e, dtype=np.int64).reshape(-1) for e in events_per_layer]
    n, n_layers = len(ev[0]), len(spec.layers)
    beats = input_beats(ev[0], spec.input_ports)
    first, last = np.zeros(n, np.int64), np.zeros(n, np.int64)
    start = np.zeros((n_layers, n), np.int64)
    release = np.zeros((n_layers, n), np.int64)
    commit = np.zeros((n_layers, n), np.int64)
    result = np.zeros(n, np.int64)
    sizes = [[serial_cycles(s, f.rate) for s in group_sizes(ly.n_out, f.lanes)]
             for ly, f in zip(spec.layers, spec.folds, strict=True)]
    credit = [None] * n_layers  # (the last END token, its group's serializer cycles)
    n_cls, nb = spec.num_classes, spec.buffers
    for i in range(n):
        free = release[0, i - nb] + 1 if i >= nb else 0
        first[i] = max(last[i - 1] + 1 if i else 0, free)
        last[i] = first[i] + beats[i] - 1
        ready = last[i] + 1
        for layer in range(n_layers):
            after = release[layer, i - 1] + 1 if i else 0
            if i < nb:
                out_free = 0
            elif layer + 1 < n_layers:
                out_free = release[layer + 1, i - nb] + 1
            else:
                out_free = result[i - nb] + 1
            t = start[layer, i] = max(after, ready, out_free)
            ly, fold = spec.layers[layer], spec.folds[layer]
            s = t + 1  # the group's first bundle
            if ly.conv:  # every token waits for the drain of the group before
                b = int(ev[layer][i]) * tokens_per_event(ly.conv, fold.ports)
                for wait in conv_credits(ly.conv, ly.n_out, fold):
                    if credit[layer] is not None:
                        s = max(s, credit[layer][0] + credit[layer][1])
                    end = s + b
                    credit[layer] = (end, wait)
                    s = end + 1
                sums = PIPELINED_TO_PE + ConvPEArray.sums_after_end(ly.conv, fold.lanes,
                                                                    fold.rate)
                release[layer, i] = end
                commit[layer, i] = end + sums + sizes[layer][-1] + SERIALIZER_LATENCY
                ready = commit[layer, i] + 1
                continue
            b = int(bundles(int(ev[layer][i]), fold.ports))
            for size in sizes[layer]:
                end = s + b
                if credit[layer] is not None:
                    end = max(end, credit[layer][0] + credit[layer][1])
                credit[layer] = (end, size)
                s = end + 1
            release[layer, i] = end
            commit[layer, i] = end + PIPELINED_PIPELINE + sizes[layer][-1] + SERIALIZER_LATENCY
            ready = commit[layer, i] + 1
        wait = max(result[i - 1] + 1 if i else 0, ready)
        result[i] = wait + Classifier.cycles_per_score * n_cls + 1
    done = commit[-1]
    return {"first_pixel": first, "last_pixel": last, "start": start, "release": release,
            "done": done, "result": result, "cycles": done - last}


def timeline(spec, events_per_layer) -> dict:
    """The run of images through either schedule (:func:`shared_timeline`,
    :func:`pipeline_timeline`): ``first_pixel``, ``last_pixel`` (the first and last input
    transfer: a pixel, or a beat of the pipeline), ``done``, ``result`` and ``cycles`` (what
    the accelerator reports per image: the shared engine its compute cycles, the pipeline its
    latency)."""
    if spec.schedule == "pipelined":
        return pipeline_timeline(spec, events_per_layer)
    compute = np.asarray(image_cycles(events_per_layer, **folding(spec))).reshape(-1)
    tl = shared_timeline(compute, spec.n_pixels, spec.num_classes)
    tl["cycles"] = compute
    return tl
