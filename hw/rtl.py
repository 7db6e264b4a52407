"""``gxnor rtl``: Verilog for an exported network."""

from __future__ import annotations

import json
from pathlib import Path

from amaranth.back import verilog

from gxnor.base import files
from gxnor.export import format

from . import toolchain
from .accelerator import Accelerator
from .pipeline import PipelinedAccelerator
from .spec import AcceleratorSpec


def load_spec(export_dir: Path, lanes: int | None = None) -> AcceleratorSpec:
    """The accelerator spec of an export, for ``lanes`` lanes (default: the export's)."""
    return AcceleratorSpec.from_export(format.load(export_dir), lanes)


def verilog_text(spec, name: str = "gxnor_accel", loadable=False,
                 external_weights=False) -> str:
    """The accelerator of ``spec``: the shared engine (an :class:`AcceleratorSpec`) or the
    layer pipeline (a :class:`~gxnor.hw.spec.PipelineSpec`; its weights are ROMs)."""
    toolchain.setup()  # Amaranth's Verilog back-end runs Yosys
    if spec.schedule == "pipelined":
        if loadable or external_weights:
            raise ValueError("the layer pipeline's weights are ROMs")
        top = PipelinedAccelerator(spec)
    else:
        top = Accelerator(spec, loadable=loadable, external_weights=external_weights)
    return verilog.convert(top, name=name, emit_src=False)


def board_verilog_text(spec: AcceleratorSpec, name: str = "gxnor_board", **core) -> str:
    """Verilog of :class:`~gxnor.hw.link.core.BoardCore` (ports clk, rst, rx, tx, activity,
    loaded); ``core`` are its keyword arguments (divisor, weights, timeout, ...)."""
    from .link.core import BoardCore

    toolchain.setup()
    return verilog.convert(BoardCore(spec, **core), name=name, emit_src=False)


#: `gxnor rtl` output folders (marker file; older ones held just the Verilog and its JSON)
KIND = files.Kind("rtl", "gxnor rtl", recognize=files.only_files("gxnor_accel.v",
                                                                   "gxnor_accel.json"))


def write_rtl(export_dir: Path, out: Path, lanes: int | None = None,
              name: str = "gxnor_accel") -> list[Path]:
    """Write ``NAME.v`` (weights inlined as memory initial values) and ``NAME.json``."""
    files.check(out, KIND, [export_dir])
    spec = load_spec(Path(export_dir), lanes)
    text = verilog_text(spec, name)
    info = {
        "top": name,
        "export": str(Path(export_dir).resolve()),
        "lanes": spec.lanes,
        "layers": [[ly.n_in, ly.n_out] for ly in spec.layers],
        "acc_bits": spec.acc_bits,
        "score_bits": spec.score_bits,
        "weight_words": spec.weight_words,
        "ports": {
            "pixels": "stream: pixels__payload[7:0], pixels__valid, pixels__ready",
            "scores": f"stream: scores__payload[{spec.score_bits - 1}:0] (signed)",
            "result": "stream: result__payload = {events[L x 16], cycles[32], cls}",
        },
    }
    with files.output_dir(out, KIND, [export_dir]) as tmp:
        (tmp / f"{name}.v").write_text(text)
        (tmp / f"{name}.json").write_text(json.dumps(info, indent=1))
    return [Path(out) / f"{name}.v", Path(out) / f"{name}.json"]
