"""``gxnor rtl``: Verilog for an exported network."""

from __future__ import annotations

import json
from pathlib import Path

from amaranth.back import verilog

from gxnor.sim import golden

from .accelerator import Accelerator, AcceleratorSpec


def load_spec(export_dir: Path, lanes: int | None = None) -> AcceleratorSpec:
    """The accelerator spec of an export, for ``lanes`` lanes (default: the export's)."""
    return AcceleratorSpec.from_network(golden.Network(export_dir), lanes)


def verilog_text(spec: AcceleratorSpec, name: str = "gxnor_accel", loadable=False,
                 external_weights=False) -> str:
    top = Accelerator(spec, loadable=loadable, external_weights=external_weights)
    return verilog.convert(top, name=name, emit_src=False)


def board_verilog_text(spec: AcceleratorSpec, name: str = "gxnor_board", **core) -> str:
    """Verilog of :class:`~gxnor.hw.board.BoardCore` (ports clk, rst, rx, tx, activity,
    loaded); ``core`` are its keyword arguments (divisor, weights, timeout, ...)."""
    from .board import BoardCore

    return verilog.convert(BoardCore(spec, **core), name=name, emit_src=False)


def write_rtl(export_dir: Path, out: Path, lanes: int | None = None,
              name: str = "gxnor_accel") -> list[Path]:
    """Write ``NAME.v`` (weights inlined as memory initial values) and ``NAME.json``."""
    spec = load_spec(Path(export_dir), lanes)
    text = verilog_text(spec, name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vpath = out / f"{name}.v"
    tmp = vpath.with_suffix(".v.tmp")
    tmp.write_text(text)
    tmp.replace(vpath)
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
    jpath = out / f"{name}.json"
    jpath.write_text(json.dumps(info, indent=1))
    return [vpath, jpath]
