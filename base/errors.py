"""The error every layer raises for bad user input.

``gxnor`` turns an :class:`InputError` into exit code 2 with its message (which names the file,
the layer and the field, or the option); any other exception is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """Bad input from the user: a file, a field of a file, an option. Exit code 2."""


class StageFailed(Exception):
    """The stage ran and found a problem (simulation mismatches, a toolchain failure, timing
    not met): exit code 1, with this message and no traceback."""


class Unavailable(Exception):
    """A stage this installation cannot run (an optional extra is missing, or the build does
    not provide it yet): exit code 3, with this message."""
