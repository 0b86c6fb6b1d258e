"""Proof that a volume file holds all the data its header declares, before SimpleITK reads it.

SimpleITK reads a truncated NIfTI (``.nii`` or ``.nii.gz``) without a word and fills the missing
voxels with zeros; a truncated MetaImage fails with a misleading reason (``No such file or
directory``: the real one goes to stderr). :func:`check_complete` reads the header itself, works
out how many bytes of data must follow, and checks that they are there:

======================  =======================================================================
NIfTI-1/2 ``.nii``      the file holds ``vox_offset + prod(dim) * bitpix / 8`` bytes
NIfTI ``.nii.gz``       the gzip stream is read to its end (every member, CRC and length checked)
                        and holds that many bytes
MetaImage ``.mha``,     the data (``LOCAL`` after the header, or the ``ElementDataFile``) holds
``.mhd``                ``prod(DimSize) * channels * element size`` bytes; compressed data is a
                        zlib stream read to its end that inflates to exactly that size
NRRD                    SimpleITK's own reader fails on truncated data with a clear message
DICOM series            checked when the series is read (:mod:`mskseg.io.volumes`): every file is a
                        slice of the series and the slices are evenly spaced
======================  =======================================================================

Every problem raises :class:`IncompleteVolumeError` with the reason (the caller names the file).
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

#: bytes read per step when a compressed stream is followed to its end
_CHUNK = 1 << 22

#: MetaImage element types of a fixed size (MET_LONG / MET_ULONG depend on the writer's platform)
_MET_SIZES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
              "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8}


class IncompleteVolumeError(ValueError):
    """A volume file that holds less (or other) data than its header declares."""


def check_complete(path: Path, fmt: str) -> None:
    """Raise :class:`IncompleteVolumeError` when ``path`` (of format ``fmt``) lacks data its header declares."""
    name = path.name.lower()
    if fmt == "nifti":
        _check_nifti(path, compressed=name.endswith(".gz"))
    elif fmt == "metaimage":
        _check_metaimage(path)


# ---- NIfTI ------------------------------------------------------------------------------------
def nifti_expected_bytes(header: bytes) -> int:
    """``vox_offset`` plus the data bytes a NIfTI-1 or NIfTI-2 header declares."""
    if len(header) < 348:
        raise IncompleteVolumeError(f"the file ends inside the NIfTI header ({len(header)} bytes)")
    for order in "<>":
        size = struct.unpack(order + "i", header[:4])[0]
        if size == 348:
            dim = struct.unpack(order + "8h", header[40:56])
            bitpix = struct.unpack(order + "h", header[72:74])[0]
            offset = struct.unpack(order + "f", header[108:112])[0]
            break
        if size == 540:
            if len(header) < 540:
                raise IncompleteVolumeError(f"the file ends inside the NIfTI-2 header ({len(header)} bytes)")
            bitpix = struct.unpack(order + "h", header[14:16])[0]
            dim = struct.unpack(order + "8q", header[16:80])
            offset = struct.unpack(order + "q", header[168:176])[0]
            break
    else:
        raise IncompleteVolumeError("not a NIfTI header (sizeof_hdr is neither 348 nor 540)")
    n_dims = int(dim[0])
    if not 1 <= n_dims <= 7 or any(d < 0 for d in dim[1:n_dims + 1]) or bitpix <= 0 or bitpix % 8:
        raise IncompleteVolumeError(f"the NIfTI header is damaged (dim {list(dim)}, bitpix {bitpix})")
    voxels = math.prod(int(d) for d in dim[1:n_dims + 1])
    return int(offset) + voxels * (bitpix // 8)


def _check_nifti(path: Path, compressed: bool) -> None:
    if not compressed:
        with open(path, "rb") as fh:
            expected = nifti_expected_bytes(fh.read(540))
        size = path.stat().st_size
        if size < expected:
            raise IncompleteVolumeError(f"truncated: the header declares {expected} bytes, the file holds {size}")
        return
    total, head = _inflate_all(path, wbits=16 + zlib.MAX_WBITS, keep=540)
    expected = nifti_expected_bytes(head)
    if total < expected:
        raise IncompleteVolumeError(f"truncated: the header declares {expected} bytes, the gzip stream holds {total}")


def _inflate_all(path: Path, wbits: int, keep: int, start: int = 0, length: int | None = None,
                 members: bool = True) -> tuple[int, bytes]:
    """Inflate the compressed stream of ``path`` from byte ``start`` (``length`` bytes at most) to its end.

    Returns the number of bytes it inflates to and the first ``keep`` of them. With ``members`` (gzip), a
    stream followed by another gzip member goes on into it, as ``gzip`` does; other trailing bytes are
    ignored. A stream that stops before its end marker raises :class:`IncompleteVolumeError`.
    """
    total, head = 0, bytearray()
    decomp = zlib.decompressobj(wbits)
    with open(path, "rb") as fh:
        fh.seek(start)
        remaining = length
        pending = b""
        while True:
            if not pending:
                want = _CHUNK if remaining is None else min(_CHUNK, remaining)
                pending = fh.read(want) if want > 0 else b""
                if remaining is not None:
                    remaining -= len(pending)
                if not pending:
                    break
            if decomp.eof:  # one stream ended; another gzip member may follow
                if not (members and pending.startswith(b"\x1f\x8b")):
                    break
                decomp = zlib.decompressobj(wbits)
            try:
                out = decomp.decompress(pending)
            except zlib.error as err:
                raise IncompleteVolumeError(f"the compressed data are damaged ({err})") from None
            total += len(out)
            if len(head) < keep:
                head += out[: keep - len(head)]
            pending = decomp.unused_data if decomp.eof else b""
    if not decomp.eof:
        raise IncompleteVolumeError(f"truncated: the compressed stream ends early (after {total} bytes of data)")
    return total, bytes(head)


# ---- MetaImage --------------------------------------------------------------------------------
def _metaimage_header(path: Path) -> tuple[dict[str, str], int]:
    """The header's ``key = value`` pairs and the byte offset where a ``LOCAL`` data block starts."""
    fields: dict[str, str] = {}
    with open(path, "rb") as fh:
        offset = 0
        for raw in fh:
            offset += len(raw)
            line = raw.decode("latin-1").strip()
            if "=" not in line:
                continue
            key, value = (part.strip() for part in line.split("=", 1))
            fields[key] = value
            if key == "ElementDataFile":
                break
            if offset > 1 << 16:
                raise IncompleteVolumeError("no ElementDataFile in the first 64 KiB of the MetaImage header")
    return fields, offset


def _check_metaimage(path: Path) -> None:
    fields, offset = _metaimage_header(path)
    data_file = fields.get("ElementDataFile")
    element = _MET_SIZES.get(fields.get("ElementType", ""))
    if data_file is None or element is None or "DimSize" not in fields:
        return  # a header SimpleITK will judge itself
    if data_file.upper().startswith("LIST") or "%" in data_file:
        return  # a data file per slice
    try:
        dims = [int(v) for v in fields["DimSize"].split()]
        channels = int(fields.get("ElementNumberOfChannels", "1"))
    except ValueError:
        raise IncompleteVolumeError(f"the MetaImage header is damaged (DimSize {fields['DimSize']!r})") from None
    expected = math.prod(dims) * channels * element
    if data_file.upper() == "LOCAL":
        source, start = path, offset
    else:
        source, start = path.parent / data_file, 0
        if not source.is_file():
            raise IncompleteVolumeError(f"its data file {source.name} does not exist")
    header_size = int(fields.get("HeaderSize", "0") or 0)
    available = source.stat().st_size - start - max(header_size, 0)
    if fields.get("CompressedData", "False").lower() != "true":
        if available < expected:
            raise IncompleteVolumeError(f"truncated: the header declares {expected} bytes of data, "
                                        f"{source.name} holds {max(available, 0)}")
        return
    declared = fields.get("CompressedDataSize")
    if declared is not None and declared.isdigit() and available < int(declared):
        raise IncompleteVolumeError(f"truncated: the header declares {declared} compressed bytes, "
                                    f"{source.name} holds {max(available, 0)}")
    total, _ = _inflate_all(source, wbits=zlib.MAX_WBITS, keep=0, start=start + max(header_size, 0),
                            length=int(declared) if declared and declared.isdigit() else None, members=False)
    if total != expected:
        raise IncompleteVolumeError(f"the compressed data inflate to {total} bytes, the header declares {expected}")


__all__ = ["IncompleteVolumeError", "check_complete", "nifti_expected_bytes"]
