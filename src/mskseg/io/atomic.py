"""Write files so that a reader never sees half of one.

Every writer in :mod:`mskseg` goes through :func:`atomic_path`: the data are written to a
temporary name in the destination folder and moved into place with :func:`os.replace`
once complete. A failure leaves the destination as it was and removes the temporary file.
A temporary name carries its writer's process id (``.tmp-p<pid>-<random>-<name>``), so that a
clean-up removes only what a process that no longer runs left behind (:func:`abandoned`).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

#: what every temporary file or folder name starts with
TEMPORARY_PREFIX = ".tmp-"
_OWNER = re.compile(r"^\.tmp-p(\d+)-")

#: file endings made of two parts, kept whole on temporary names (the writers pick the
#: format from the ending)
_DOUBLE_SUFFIXES = (".nii.gz", ".tar.gz", ".seg.nrrd")


def split_suffix(path: Path) -> tuple[str, str]:
    """``(stem, suffix)`` of a file name, keeping double suffixes such as ``.nii.gz`` whole."""
    name = path.name
    for double in _DOUBLE_SUFFIXES:
        if name.lower().endswith(double):
            return name[: -len(double)], name[-len(double) :]
    return path.stem, path.suffix


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` with the same ending; move it into place on success."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    stem, suffix = split_suffix(final)
    tmp = final.with_name(f"{TEMPORARY_PREFIX}p{os.getpid()}-{secrets.token_hex(4)}-{stem}{suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def temporary_owner(name: str) -> int | None:
    """The process id in a temporary file's name, or None (a name of another form)."""
    match = _OWNER.match(name)
    return int(match.group(1)) if match else None


def abandoned(name: str) -> bool:
    """Whether ``name`` is a temporary file whose writer no longer runs on this machine (or is unknown).

    A temporary file of this process, or of a process that still runs, is not abandoned.
    """
    if not name.startswith(TEMPORARY_PREFIX):
        return False
    owner = temporary_owner(name)
    if owner is None:
        return True
    if owner == os.getpid():
        return False
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it runs, as another user
        return False
    return False


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_text(path: str | os.PathLike[str]) -> str:
    """A UTF-8 text file's contents."""
    return Path(path).read_text(encoding="utf-8")
