"""``gxnor flash``: program a board with its bitstream (iceprog or openFPGALoader)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from gxnor.base.errors import InputError, StageFailed

from .table import Board, board


def flash_command(b: Board, bitstream: Path) -> list[str]:
    tool, *rest = b.program
    env = {"iceprog": "ICEPROG", "openFPGALoader": "OPENFPGALOADER"}[tool]
    exe = os.environ.get(env) or shutil.which(tool)
    if exe is None and tool == "iceprog" and shutil.which("openFPGALoader"):
        # openFPGALoader programs the iCEBreaker's flash too
        return [shutil.which("openFPGALoader"), "-b", "ice40_generic", "-f", str(bitstream)]
    if exe is None:
        pkg = {"iceprog": "fpga-icestorm", "openFPGALoader": "openfpgaloader"}[tool]
        raise InputError(f"{tool} not found: install it (Debian/Ubuntu: `sudo apt-get "
                                f"install {pkg}`) or point ${env} at it")
    return [exe, *rest, str(bitstream)]


def flash(board_name: str, bitstream: Path | None = None, out: Path = Path("build")) -> None:
    b = board(board_name)
    if bitstream is None:
        bitstream = Path(out) / b.name / b.family.bitstream
    if not Path(bitstream).exists():
        raise InputError(f"{bitstream}: no bitstream; run `make bitstream BOARD={b.name}`"
                                " first")
    cmd = flash_command(b, Path(bitstream))
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise StageFailed(f"{' '.join(cmd)} failed (exit {done.returncode}): is the "
                           f"{b.name} connected and accessible (USB permissions)?\n"
                           f"{(done.stdout + done.stderr).strip()[-1500:]}")


def flash_main(args) -> int:
    flash(args.board, args.bitstream, getattr(args, "out", Path("build")))
    print(f"flashed {args.board}")
    return 0
