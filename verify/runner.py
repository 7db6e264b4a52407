"""One runner path for the cocotb benches: Verilog from ``gxnor rtl``, then
``cocotb_tools.runner`` with Icarus (default) or Verilator, results checked (the runner does not
raise when a cocotb test fails)."""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

import numpy as np

from gxnor.hw import toolchain

SIMULATORS = ("icarus", "verilator")
TOP = "gxnor_accel"


class SimulationFailed(AssertionError):
    pass


DUMP_REG = re.compile(r"reg (\\\$auto\$verilog_backend\S*dump_module\S*)\s*=\s*0;")
SINGLE_ALWAYS = re.compile(r"always @\*\n(\s+)(?!begin)([^\n]*;)\n")


def icarus_copy(verilog: Path) -> Path:
    """A copy of the Verilog for Icarus that runs every ``always @*`` block once at start-up.

    Yosys writes combinational logic as ``always @*`` blocks, which Verilog runs only when an
    input changes: a block whose inputs keep their initial values never runs and its outputs
    stay X (a time-0 race, amaranth-lang/amaranth#594). Yosys guards its larger blocks with a
    ``dump_module`` register that they read, declared ``= 0``; Icarus 11 applies a
    declaration's initial value without an event, so nothing fires, and Yosys's one-line
    blocks (``always @* x[3:0] = k;``, a constant into unused bits) do not read it at all.
    Here, in every module, the register gets its value from an ``initial`` block 1 ns in (a
    change every block sees), and every one-line block reads it too. Verilator:
    :func:`verilator_text`.
    """
    text = Path(verilog).read_text()
    parts = re.split(r"(?m)^(?=module )", text)
    for k, mod in enumerate(parts):
        if not mod.startswith("module ") or "always @*" not in mod:
            continue
        found = DUMP_REG.search(mod)
        if found:
            reg = found.group(1)
            mod = mod.replace(found.group(0), f"reg {reg} ;\n  initial #1 {reg} = 1'b0;")
        else:
            reg = f"\\gxnor_icarus_start{k}"
            header = mod.index(");\n") + 3
            mod = (mod[:header] + f"  reg {reg} ;\n  initial #1 {reg} = 1'b0;\n"
                   + mod[header:])
        parts[k] = SINGLE_ALWAYS.sub(
            lambda mt, reg=reg: f"always @* begin\n{mt.group(1)}if ({reg} ) begin end\n"
                                f"{mt.group(1)}{mt.group(2)}\n  end\n", mod)
    out = Path(verilog).with_name(Path(verilog).stem + "_icarus.v")
    out.write_text("".join(parts))
    return out


def verilator_text(text: str) -> str:
    """The Verilog for Verilator: Yosys's one-line ``always @*`` blocks as ``always_comb``.

    Verilator 5 schedules ``always @*`` as the standard says: a block that reads nothing (a
    constant into some bits of a reg, e.g. a token field that is 1 in one engine of the layer
    pipeline) never runs, and those bits stay 0. ``always_comb`` runs once at time 0 and then
    like ``always @*``; Yosys's larger blocks read their inputs and need nothing."""
    return SINGLE_ALWAYS.sub(lambda mt: f"always_comb\n{mt.group(1)}{mt.group(2)}\n", text)


def verilator_copy(verilog: Path) -> Path:
    """:func:`verilator_text` of a file, next to it."""
    out = Path(verilog).with_name(Path(verilog).stem + "_verilator.v")
    out.write_text(verilator_text(Path(verilog).read_text()))
    return out


def default_simulator() -> str:
    return os.environ.get("SIM", "icarus")


def run(export_dir: Path, images: np.ndarray, build_dir: Path, *, sim: str | None = None,
        idle: float = 0.0, stall: float = 0.0, seed: int = 0, waves: bool = False,
        verilog: Path | None = None, pipeline=None) -> dict:
    """Simulate ``images`` through the Verilog of ``export_dir``; returns the bench's report.
    ``pipeline``: a :class:`~gxnor.hw.spec.PipelineSpec` of the export (the DUT is that layer
    pipeline; default: the export's shared engine).

    Raises SimulationFailed when a cocotb test failed or did not run.
    """
    from gxnor.hw import rtl

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    env = {"GXNOR_EXPORT": str(Path(export_dir).resolve())}
    if pipeline is not None:
        described = build_dir / "pipeline.json"
        described.write_text(json.dumps({
            "folds": [[f.lanes, f.ports, f.rate] for f in pipeline.folds],
            "input_ports": pipeline.input_ports, "buffers": pipeline.buffers}))
        env["GXNOR_PIPELINE"] = str(described)
        if verilog is None:
            verilog = build_dir / f"{TOP}.v"
            verilog.write_text(rtl.verilog_text(pipeline, TOP))
    elif verilog is None:
        verilog = rtl.write_rtl(Path(export_dir), build_dir / "rtl", name=TOP)[0]
    img_path = build_dir / "images.npy"
    np.save(img_path, np.asarray(images, np.uint8))
    env.update({"GXNOR_IMAGES": str(img_path), "GXNOR_IDLE": str(idle),
                "GXNOR_STALL": str(stall), "GXNOR_SEED": str(seed)})
    return cocotb_run(verilog, TOP, "gxnor.verify.bench_accel", build_dir, sim=sim, seed=seed,
                      waves=waves, env=env)


def cocotb_run(verilog: Path, top: str, test_module: str, build_dir: Path, *, sim: str | None,
            env: dict, seed: int = 0, waves: bool = False) -> dict:
    """Build ``verilog`` and run the cocotb ``test_module`` on it; the report it wrote plus
    the test counts. Raises SimulationFailed when a test failed or none ran."""
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    sim = sim or default_simulator()
    if sim not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, got {sim!r}")
    toolchain.setup()
    report_path = build_dir / f"report-{sim}.json"
    report_path.unlink(missing_ok=True)
    runner = get_runner(sim)
    # one C++ file: the wheel's verilated.mk breaks the precompiled header that a split
    # (large) design uses ("Vtop__pch.h.fast: linker input file not found")
    build_args = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "--output-split", "0",
                  "--output-split-cfuncs", "0"] if sim == "verilator" \
        else []
    sim_build = build_dir / f"sim_build-{sim}"
    source = icarus_copy(verilog) if sim == "icarus" else verilator_copy(verilog)
    runner.build(sources=[source], hdl_toplevel=top, build_dir=sim_build,
                 build_args=build_args, always=True, waves=waves,
                 timescale=("1ns", "1ps"), log_file=sim_build / "build.log")
    results_xml = sim_build / "results.xml"
    results_xml.unlink(missing_ok=True)
    # cocotb's runner exits instead of returning when a test failed under pytest; outside
    # pytest it returns quietly. Either way the results file decides.
    with contextlib.suppress(SystemExit):
        runner.test(
            test_module=test_module, hdl_toplevel=top, build_dir=sim_build,
            test_dir=sim_build, waves=waves, seed=seed,
            extra_env={**env, "GXNOR_REPORT": str(report_path)},
            results_xml=str(results_xml), log_file=sim_build / "test.log",
        )
    # paths relative to the build folder: the CLI builds in a temporary folder it renames
    log = sim_build.relative_to(build_dir) / "test.log"
    if not results_xml.exists():
        raise SimulationFailed(f"cocotb ({sim}) wrote no results; see {log}")
    total, failed = get_results(results_xml)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    report.update({"simulator": sim, "tests": total, "failed": failed, "log": str(log)})
    if total == 0 or failed:
        msgs = "\n".join(report.get("messages", [])) or f"see {log}"
        raise SimulationFailed(f"cocotb ({sim}): {failed} of {total} tests failed\n{msgs}")
    return report


LINK_TOP = "gxnor_link"


def run_link(export_dir: Path, build_dir: Path, *, cases: int = 50, seed: int = 0,
             sim: str | None = None, divisor: int = 4) -> dict:
    """The protocol robustness bench (:mod:`.bench_link`) on the board core of ``export_dir``:
    ``cases`` malformed inputs, each followed by a valid request that must be answered right.
    Raises SimulationFailed when a check failed."""
    from gxnor.hw import rtl
    from gxnor.hw.link import protocol
    from gxnor.hw.link.core import core_info

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    spec = rtl.load_spec(Path(export_dir))
    timeout = 20 * 10 * divisor  # 20 byte times
    core = dict(divisor=divisor, weights="rom", timeout=timeout,
                net_id=protocol.network_id(export_dir))
    info = core_info(spec, **core).encode()
    verilog = build_dir / f"{LINK_TOP}.v"
    verilog.write_text(rtl.board_verilog_text(spec, name=LINK_TOP, **core))
    return cocotb_run(verilog, LINK_TOP, "gxnor.verify.bench_link", build_dir, sim=sim,
                      seed=seed, env={
                          "GXNOR_EXPORT": str(Path(export_dir).resolve()),
                          "GXNOR_DIVISOR": str(divisor), "GXNOR_TIMEOUT": str(timeout),
                          "GXNOR_INFO": info.hex(), "GXNOR_CASES": str(cases),
                          "GXNOR_SEED": str(seed)})
