"""The ranges of gxnor's numeric options: one definition, checked by the CLI and by the stages.

Each :class:`Limit` knows the option it guards; ``check`` raises an
:class:`~gxnor.base.errors.InputError` that names the option and the range, and the CLI's
argument types call it, so ``gxnor rtl --lanes 100000`` fails at once with exit code 2 instead
of running for minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class Limit:
    option: str
    lo: float
    hi: float
    why: str = ""

    def check(self, value, what: str | None = None):
        """``value`` if it is a number within [lo, hi] (integers for integer limits)."""
        name = what or self.option
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{name} must be a number, got {value!r}")
        if isinstance(self.lo, int) and isinstance(self.hi, int) and not isinstance(value, int):
            raise InputError(f"{name} must be an integer, got {value!r}")
        if not self.lo <= value <= self.hi:
            why = f" ({self.why})" if self.why else ""
            raise InputError(f"{name} must be in {self.lo}..{self.hi}, got {value}{why}")
        return value

    def parse(self, text: str):
        """argparse ``type=``: the string of a command-line value, checked."""
        kind = int if isinstance(self.lo, int) and isinstance(self.hi, int) else float
        try:
            value = kind(text)
        except ValueError:
            raise InputError(f"{self.option} must be {'an integer' if kind is int else 'a number'}"
                             f", got {text!r}") from None
        return self.check(value)


#: PE lanes: the export packs up to this many weight codes into one ROM word
LANES = Limit("--lanes", 1, 1024, "ROM words of up to 2048 bits")
#: images per simulation / run
IMAGES = Limit("--images", 1, 1_000_000)
#: processes of the fast simulation path
JOBS = Limit("--jobs", 1, 64)
PORTS = Limit("--input-ports", 1, 64)
#: the harness's store: the iCE40's block RAM holds about a dozen MNIST images, the ECP5's
#: hundreds; the class memory is addressed by a 16-bit INFO field
BENCH_IMAGES = Limit("--bench-images", 1, 65_535)
#: a BENCH request's u32 count
BENCH_COUNT = Limit("--bench", 0, 2**32 - 1)
#: random networks of the differential tests
NETWORKS = Limit("--random", 1, 100_000)
#: core clock of a board build, MHz
CLOCK_MHZ = Limit("--clock", 1.0, 400.0, "MHz")
#: UART baud rate
BAUD = Limit("--baud", 1200, 12_000_000)
#: training
EPOCHS = Limit("--epochs", 1, 100_000)
BATCH = Limit("--batch-size", 1, 1_000_000)
THREADS = Limit("--threads", 1, 1024)
SEED = Limit("--seed", 0, 2**63 - 1)
LEARNING_RATE = Limit("--lr", 1e-12, 1e3)
TIME_LIMIT_MIN = Limit("--time-limit", 0.0, 1e7, "minutes")
