"""Pictures in docs/ that are generated from the code, so that they cannot drift from it.

``docs/schedule.svg`` (and its WaveJSON ``docs/schedule.json``) is the schedule of one image
on the shared engine from the cycle model (``gxnor.hw.timing.schedule``), the same cycles the
accelerator's ``stages`` port shows in simulation. ``make docs`` rewrites them;
tests/gxnor/test_docs.py fails when the committed ones differ from what the code gives.
"""

from __future__ import annotations

import json
from pathlib import Path

from gxnor.base import files

#: the example drawn: two layers (4 and 2 neurons) on 2 lanes, 3 and 2 input events; layer
#: 0's outputs 1 and 3 fire (3 is in its last group: layer 1 reads it once it is written)
EXAMPLE = {"events": [3, 2], "outputs": [4, 2], "lanes": 2, "fired": [1, 3]}


def example_events():
    """The example's events, and where layer 1's are (:class:`gxnor.sim.golden.Events`)."""
    import numpy as np

    from gxnor.sim import golden

    hidden = np.zeros(EXAMPLE["outputs"][0], bool)
    hidden[EXAMPLE["fired"]] = True
    return golden.Events(EXAMPLE["events"], [None, hidden])


def schedule_json() -> dict:
    from gxnor.hw import timing

    e, n, p = EXAMPLE["events"], EXAMPLE["outputs"], EXAMPLE["lanes"]
    events = example_events()
    cycles = int(timing.image_cycles(events, n, p))
    title = (f"one image, shared engine: layers of {n} neurons on {p} lanes, {e} input events"
             f" -> {cycles} cycles (gxnor.hw.timing)")
    return timing.wavejson(timing.schedule(events, n, p), cycles, title)


def render() -> dict[str, str]:
    """{file name: contents} of the generated pictures."""
    import yowasp_wavedrom

    source = schedule_json()
    return {"schedule.json": json.dumps(source, indent=1) + "\n",
            "schedule.svg": yowasp_wavedrom.render(source) + "\n"}


def write(folder: Path) -> list[Path]:
    out = []
    for name, text in render().items():
        path = Path(folder) / name
        files.replace_file(path, text)
        out.append(path)
    return out


if __name__ == "__main__":
    for p in write(Path(__file__).resolve().parents[1] / "docs"):
        print(p)
