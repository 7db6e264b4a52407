"""Output folders and files that are written atomically and never replace anything else.

Every gxnor command that writes a folder goes through :func:`output_dir`:

* the folder is built under a hidden temporary name beside its destination and renamed into
  place when it is complete, so it is either complete or absent; a command that fails or is
  interrupted leaves the previous output as it was and removes its temporary folder (and the
  parent folders it created);
* it replaces an existing folder only when that folder is the same *kind* of output: it holds
  the marker file ``.gxnor-output`` naming the kind, or the kind's recognizer accepts it (an
  export is recognized by its manifest), or it is empty;
* anything else is refused with an :class:`OutputError` (exit code 2) before anything is
  touched: a file, a symbolic link, a folder of another kind (a training run, the project, a
  home folder), the current folder or one of its parents, an input of the command or a folder
  that contains one.

Single files (JSON reports) go through :func:`write_file`, with the same rules.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

MARKER = ".gxnor-output"


class OutputError(InputError):
    """The chosen output cannot be written without destroying something else."""


@dataclass(frozen=True)
class Kind:
    """A kind of output folder.

    ``name`` goes into the marker file; ``command`` is named in messages; ``recognize`` accepts
    a folder of this kind that carries no marker (written before markers existed, or defined
    by its own format, like an export); ``marker`` says whether the marker file is written.
    """

    name: str
    command: str
    recognize: Callable[[Path], bool] | None = None
    marker: bool = True

    def owns(self, folder: Path) -> bool:
        """``folder`` (an existing directory) may be replaced by this kind of output."""
        if not any(folder.iterdir()):
            return True
        if marker_kind(folder) == self.name:
            return True
        return bool(self.recognize and self.recognize(folder))


def marker_kind(folder: Path) -> str | None:
    """The kind named by ``folder``'s marker file, or None."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data.get("kind") if isinstance(data, dict) else None


def only_files(*names: str) -> Callable[[Path], bool]:
    """A recognizer: the folder holds nothing but (some of) these entries."""
    allowed = set(names)

    def recognize(folder: Path) -> bool:
        return all(p.name in allowed for p in folder.iterdir())

    return recognize


def check(path: str | os.PathLike, kind: Kind, inputs: Iterable = ()) -> Path:
    """Raise :class:`OutputError` unless ``path`` may be written as a ``kind`` output; returns
    its absolute path. Nothing is touched."""
    p = Path(path)
    where = f"{kind.command}: output {p}"
    if p.is_symlink():
        raise OutputError(f"{where} is a symbolic link; refusing to replace it")
    target = p.resolve()
    for inp in inputs:
        if inp is None:
            continue
        src = Path(inp).resolve()
        if target == src:
            raise OutputError(f"{where} is the command's input; choose another --out")
        if target in src.parents:
            raise OutputError(f"{where} contains the command's input {inp}; choose another "
                              "--out")
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise OutputError(f"{where} is the current folder or one of its parents; refusing to "
                          "replace it")
    if p.exists():
        if not p.is_dir():
            raise OutputError(f"{where} exists and is a file, not a {kind.command} output "
                              "folder; refusing to replace it")
        if not kind.owns(p):
            raise OutputError(f"{where} exists and is not a {kind.command} output folder "
                              f"(no {MARKER} marker of kind {kind.name!r}); refusing to replace "
                              "it: remove it or choose another --out")
    return Path(os.path.abspath(p))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p ``folder``; returns the folders it created, deepest last."""
    missing = []
    f = folder
    while not f.exists():
        missing.append(f)
        f = f.parent
    folder.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def _remove_empty(created: list[Path]) -> None:
    for f in reversed(created):
        with contextlib.suppress(OSError):
            f.rmdir()


def _swap(tmp: Path, dest: Path, kind: Kind) -> None:
    """Put the finished folder ``tmp`` at ``dest``, replacing an output of the same kind."""
    if dest.exists() or dest.is_symlink():
        check(dest, kind)  # still ours? (something may have appeared since the first check)
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        dest.rename(old)
        try:
            tmp.rename(dest)
        except BaseException:
            old.rename(dest)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(dest)


@contextlib.contextmanager
def output_dir(path: str | os.PathLike, kind: Kind, inputs: Iterable = ()) -> Iterator[Path]:
    """Yield a fresh temporary folder to write into; on success it becomes ``path``.

    The checks of :func:`check` run first; on any exception (including KeyboardInterrupt) the
    temporary folder and the parents created for it are removed and ``path`` is untouched.
    """
    inputs = list(inputs)
    dest = check(path, kind, inputs)
    created = _make_parents(dest.parent)
    try:
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    except BaseException:
        _remove_empty(created)
        raise
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private (0700)
        yield tmp
        if kind.marker:
            (tmp / MARKER).write_text(json.dumps({"kind": kind.name, "by": kind.command}) + "\n")
        _swap(tmp, dest, kind)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise


def container(path: str | os.PathLike, kind: Kind) -> Path:
    """A folder a command adds to over many runs (``gxnor bench``): made, with its marker,
    when missing; an existing one must be empty or be of ``kind`` (as in :func:`check`).
    Whatever the command writes inside goes through :func:`output_dir` or
    :func:`write_file`."""
    dest = check(path, kind)
    dest.mkdir(parents=True, exist_ok=True)
    if kind.marker and marker_kind(dest) != kind.name:
        (dest / MARKER).write_text(json.dumps({"kind": kind.name, "by": kind.command}) + "\n")
    return dest


def write_file(path: str | os.PathLike, text: str | bytes, *,
               may_replace: Callable[[Path], bool], what: str) -> Path:
    """Write ``text`` (or bytes) to the file ``path`` atomically (temporary file + rename).

    An existing ``path`` is replaced only when ``may_replace(path)`` says it is this command's
    own kind of file; a folder, a symbolic link or any other file is refused with
    :class:`OutputError`.
    """
    p = check_file(path, may_replace=may_replace, what=what)
    created = _make_parents(p.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    except BaseException:
        _remove_empty(created)
        raise
    try:
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _remove_empty(created)
        raise
    return p


def check_file(path: str | os.PathLike, *, may_replace: Callable[[Path], bool],
               what: str) -> Path:
    """The checks of :func:`write_file`, without writing."""
    p = Path(path)
    if p.is_symlink() or (p.exists() and not p.is_file()):
        raise OutputError(f"{what} {p} exists and is not a regular file; refusing to replace it")
    if p.exists() and not may_replace(p):
        raise OutputError(f"{what} {p} exists and is not a file this command wrote; refusing "
                          "to replace it: remove it or choose another name")
    return p


def replace_file(path: Path, data: bytes | str) -> None:
    """Write a file inside a folder the command owns, atomically (temporary file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if isinstance(data, str):
        tmp.write_text(data)
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


def is_json_of(key: str, value: str) -> Callable[[Path], bool]:
    """A ``may_replace`` test for :func:`write_file`: the file is JSON with ``key == value``."""

    def test(p: Path) -> bool:
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and data.get(key) == value

    return test
