"""Dataset manifests: one row per scan.

Columns: ``subject`` (required, a file-name-safe id), ``image`` (required, a volume file
or DICOM series folder), ``label`` (optional mask), ``label_poor`` (optional degraded mask),
``patient`` (optional; scans of one patient stay together in splits, default: the
subject), and any others (``timepoint``, ``side``, ``kl_grade``, ``group``, ...), kept as
they are. Relative paths are relative to the manifest's folder. CSV (``,``) or TSV (tab)
by file ending.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from mskseg.io.atomic import atomic_path

REQUIRED_COLUMNS = ("subject", "image")
PATH_COLUMNS = ("image", "label", "label_poor")
KNOWN_COLUMNS = ("subject", "patient", "image", "label", "label_poor", "timepoint", "side",
                 "kl_grade", "group")


#: subject ids become file names and wildcards: letters, digits, '-', '_', '.', not starting with '.' or '-'
SUBJECT_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_SUBJECT_RE = re.compile(rf"^{SUBJECT_ID_PATTERN}$")


def is_valid_subject_id(value: str) -> bool:
    """True if ``value`` may be used as a subject id (file names and wildcards)."""
    return bool(_SUBJECT_RE.match(value)) and ".." not in value


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file, the row and the problem."""


def _separator(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return ","
    if suffix in (".tsv", ".txt"):
        return "\t"
    raise ManifestError(f"{path}: a manifest is a .csv or .tsv file, not {suffix or 'no ending'!r}")


def explain_bad_id(value: str) -> str:
    """Why ``value`` is not a valid subject id (empty string if it is)."""
    if is_valid_subject_id(value):
        return ""
    if value == "":
        return "is empty"
    for char, name in (("/", "a path separator '/'"), ("\\", "a path separator '\\'"), (" ", "a space"),
                       ("\t", "a tab")):
        if char in value:
            return f"holds {name}"
    bad = sorted({c for c in value if not (c.isascii() and (c.isalnum() or c in "._-"))})
    if bad:
        return "holds " + ", ".join(repr(c) for c in bad)
    if ".." in value:
        return "holds '..'"
    return f"starts with {value[0]!r}"


def validate_ids(frame: pd.DataFrame, source: str) -> None:
    """Check the ``subject`` column: valid, unique ids. Row numbers in messages count data rows from 1."""
    problems = []
    for row, value in enumerate(frame["subject"].astype(str), start=1):
        why = explain_bad_id(value)
        if why:
            problems.append(f"row {row}: subject id {value!r} {why}")
    dup = frame["subject"][frame["subject"].duplicated()].astype(str).unique()
    if len(dup):
        problems.append("duplicate subject ids: " + ", ".join(dup[:10]))
    if problems:
        raise ManifestError(
            f"{source}: " + "; ".join(problems[:10])
            + ("" if len(problems) <= 10 else f" (and {len(problems) - 10} more)")
            + ". Ids may hold only letters, digits, '-', '_' and '.', and start with a letter or digit."
        )


def normalise_manifest(frame: pd.DataFrame, base: Path | None, source: str) -> pd.DataFrame:
    """Validate a manifest table and resolve its paths; returns a new frame."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ManifestError(f"{source}: missing column(s) {', '.join(missing)}; "
                            f"found {', '.join(map(str, frame.columns))}")
    if frame.empty:
        raise ManifestError(f"{source}: the manifest lists no subject")
    out = frame.copy()
    out["subject"] = out["subject"].astype(str).str.strip()
    validate_ids(out, source)
    for column in PATH_COLUMNS:
        if column not in out.columns:
            out[column] = ""
        out[column] = out[column].fillna("").astype(str).str.strip()
        if base is not None:
            out[column] = [_resolve(v, base) for v in out[column]]
    empty = out.index[out["image"] == ""].tolist()
    if empty:
        rows = ", ".join(str(i + 1) for i in empty[:10])
        raise ManifestError(f"{source}: row(s) {rows} give no image path")
    if "patient" not in out.columns:
        out["patient"] = out["subject"]
    out["patient"] = out["patient"].fillna("").astype(str).str.strip()
    out.loc[out["patient"] == "", "patient"] = out["subject"]
    first = [c for c in KNOWN_COLUMNS if c in out.columns]
    return out[first + [c for c in out.columns if c not in first]].reset_index(drop=True)


def _resolve(value: str, base: Path) -> str:
    if not value:
        return ""
    p = Path(os.path.expanduser(value))
    return str(p if p.is_absolute() else (base / p))


def read_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read, validate and resolve a CSV/TSV manifest (see module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"{p}: manifest file does not exist")
    try:
        frame = pd.read_csv(p, sep=_separator(p), dtype=str, keep_default_na=False, comment=None)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ManifestError(f"{p}: cannot be parsed: {err}") from err
    frame.columns = [str(c).strip() for c in frame.columns]
    return normalise_manifest(frame, p.parent.resolve(), str(p))


def add_covariates(manifest: pd.DataFrame, path: str | os.PathLike[str]) -> pd.DataFrame:
    """Join a table of per-subject covariates (CSV/TSV with a ``subject`` column), e.g. KL grades.

    A ``patient`` column there overrides the manifest's patient where it is not empty."""
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"{p}: covariates file does not exist")
    cov = pd.read_csv(p, sep=_separator(p), dtype=str, keep_default_na=False)
    if "subject" not in cov.columns:
        raise ManifestError(f"{p}: covariates need a 'subject' column")
    clash = [c for c in cov.columns if c in manifest.columns and c not in ("subject", "patient")]
    if clash:
        raise ManifestError(f"{p}: covariate column(s) {', '.join(clash)} already in the manifest")
    cov["subject"] = cov["subject"].astype(str).str.strip()
    given = cov.rename(columns={"patient": "_covariate_patient"})
    out = manifest.merge(given, on="subject", how="left")
    if "_covariate_patient" in out.columns:  # the covariates' patient wins where it names one
        override = out["_covariate_patient"].fillna("").astype(str).str.strip()
        out["patient"] = override.where(override != "", out["patient"])
        out = out.drop(columns=["_covariate_patient"])
    return out


def write_manifest(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a manifest as TSV, atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)
