"""The layouts that cross the accelerator's block boundaries, built from the export's
definitions (:mod:`gxnor.export.codes`): the ternary code, the event, and the token that flows
through the engine's pipeline (sequencer -> event lists -> weight fetch -> PE array)."""

from amaranth.hdl import unsigned
from amaranth.lib import data

from gxnor.export import codes

#: 2-bit gated-XNOR code: ``nonzero`` opens the gate, ``sign`` is 1 for negative.
TernaryCode = data.StructLayout({"nonzero": 1, "sign": 1})

# The layout must put the fields where the export's code definition says they are.
assert TernaryCode["nonzero"].offset == codes.NONZERO_BIT
assert TernaryCode["sign"].offset == codes.SIGN_BIT
assert TernaryCode.size == codes.CODE_BITS

#: bits of an event's magnitude: the first layer's pixels (later layers: always 1)
MAGNITUDE_BITS = 8
#: the shared engine's event lists: two for the pixels of alternate images, two for the
#: outputs of alternate layers (``gxnor.hw.events``)
INPUT_LISTS, HIDDEN_LISTS = (0, 1), (2, 3)
LISTS = 4


def event_layout(index_bits: int, magnitude_bits: int = MAGNITUDE_BITS) -> data.StructLayout:
    """An event: which input fired, its magnitude (pixel value, or 1) and its sign. A hidden
    layer's events have magnitude 1: an engine that reads only those may store one bit."""
    return data.StructLayout({"index": index_bits, "magnitude": magnitude_bits, "sign": 1})


def token_layout(*, depth: int, words: int, neurons: int, thresholds: int, lanes: int,
                 index_bits: int, word_bits: int, ports: int = 1,
                 magnitude_bits: int = MAGNITUDE_BITS, buffers: int = 2,
                 kernel: int = 0, slots: int | None = None) -> data.StructLayout:
    """The engine's work item: up to ``ports`` events of one group. The sequencer issues one
    per bundle of events of a group (then an END token per group); the event lists fill in
    ``event``, the weight fetch fills in ``word`` (one per event); the PE array consumes it.

    ``depth``: entries of an event list; ``words``: weight-memory words; ``neurons``: the
    widest layer; ``thresholds``: threshold-memory rows; ``lanes``: P; ``index_bits``,
    ``magnitude_bits``: the events' (:func:`event_layout`); ``buffers``: the layer pipeline's
    event lists per boundary; ``kernel``: a convolution's k (its tokens carry the kernel tap
    ``ky``, ``kx`` and ``koff`` = ky * k + kx the event meets; 0: none); ``slots``: the
    events a token can carry when more than ``ports`` (the shared engine's sliced last layer:
    :attr:`gxnor.hw.spec.AcceleratorSpec.slices`).
    """
    slots = ports if slots is None else max(slots, ports)
    taps = {} if not kernel else {"koff": range(max(kernel * kernel, 2)),
                                  "ky": range(max(kernel, 2)), "kx": range(max(kernel, 2))}
    return data.StructLayout({
        **taps,
        "end": 1,  # END: the group's sums go to the serializer (no event)
        "src": range(max(LISTS, buffers)),  # the event list the layer reads
        "pos": range(max(-(-depth // ports), 2)),  # the bundle's position in that list
        "n": range(slots + 1),  # events in the bundle (the last one of a list may be short)
        "base": range(max(words, 2)),  # weight address of the group: layer base + g * n_in
        "nbase": range(max(neurons, 2) + lanes),  # the group's first neuron in its layer
        "taddr": range(max(thresholds, 2) + lanes),  # its row in the threshold memory
        "size": range(lanes + 1),  # neurons in the group
        "last": 1,  # the last layer: scores, not thresholds
        "image_end": 1,  # the image's last group (the layer pipeline: its outputs are complete
        # once this group is through the serializer)
        "buffer": range(max(buffers, 2)),  # the layer pipeline: the image's buffer (the
        # input list it reads, the next layer's input list it feeds)
        "event": data.ArrayLayout(event_layout(index_bits, magnitude_bits), slots),
        "word": data.ArrayLayout(unsigned(word_bits), ports),
    })


def bundle_layout(event: data.Layout, ports: int) -> data.StructLayout:
    """Up to ``ports`` events written in one cycle: slots 0 .. n-1 hold them."""
    return data.StructLayout({"events": data.ArrayLayout(event, ports), "n": range(ports + 1)})


def beat_layout(event: data.Layout, ports: int) -> data.StructLayout:
    """An image's input as events (the layer pipeline's input stream, the on-chip harness's
    memory, sparse RUN frames): a bundle of up to ``ports`` nonzero pixels per transfer,
    ``last`` on the image's final one (which may carry none: an all-black image is one empty
    beat)."""
    return data.StructLayout({"events": data.ArrayLayout(event, ports), "n": range(ports + 1),
                              "last": 1})
