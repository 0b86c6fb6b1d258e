"""SHA-256 digests of files, remembered across runs so that a file is read again only when it changed.

A training job decides whether to resume by the *content* of its inputs: copying a folder or touching
a file keeps every digest, so the job resumes; a changed byte changes one, so it starts afresh. Reading
every input at every start would cost minutes at the papers' sizes, so :class:`Digests` keeps each
file's digest with its size and modification time in a JSON file and reads a file again only when
either differs (a copied or touched file is read once more and gives the same digest).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from mskseg.io.tables import read_json, write_json

_CHUNK = 1 << 22


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Digests:
    """Files' SHA-256 digests, cached in ``store`` (a JSON file) by absolute path, size and mtime."""

    def __init__(self, store: str | os.PathLike) -> None:
        self.store = Path(store)
        try:
            loaded = read_json(self.store)
        except (OSError, ValueError):
            loaded = {}
        self._known: dict[str, list] = loaded if isinstance(loaded, dict) else {}
        self.read = 0  # files read (not answered from the cache) since this object was made

    def digest(self, path: str | os.PathLike) -> str:
        """The digest of ``path`` (from the cache if its size and modification time are unchanged)."""
        key = str(Path(path).resolve())
        st = os.stat(path)
        known = self._known.get(key)
        if known and known[0] == st.st_size and known[1] == st.st_mtime_ns:
            return str(known[2])
        value = file_sha256(path)
        self._known[key] = [st.st_size, st.st_mtime_ns, value]
        self.read += 1
        return value

    def of(self, paths: Sequence[str | os.PathLike]) -> list[str]:
        """The digests of ``paths``, in order; the cache is saved afterwards."""
        values = [self.digest(p) for p in paths]
        self.save()
        return values

    def save(self) -> None:
        write_json(self.store, self._known)


__all__ = ["Digests", "file_sha256"]
