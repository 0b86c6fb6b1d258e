"""Model bundles: a method's trained models, exported from the run that trained them and loaded with checks.

A bundle is a folder (or one ``.tar.gz`` of its contents, the card first) holding ``card.json`` (written
last) and each fold's files as ``fold-<k>/<role><suffix>`` (``fold-0/model/sagittal.pt``, ``fold-0/fusion.json``).
The card records ``bundle_version`` (:data:`BUNDLE_VERSION`), ``method``, ``kind`` (``trained`` or
``shape_fitting``), ``method_config`` (the method's config entry), ``labels`` (the dataset's label map, name ->
value), ``preprocess`` (:func:`mskseg.workflow.settings.preprocess_settings`, tuples as lists), ``folds`` (per
fold: ``files`` role -> path inside the bundle, ``n_train``, ``n_val``, ``val_dice``: per history role its best
``val_dice`` or null), ``created`` (UTC, ISO 8601), ``versions`` (mskseg, torch, numpy, SimpleITK, python; null
where not installed) and ``checksums`` (path inside the bundle -> SHA-256, every file but the card).

Roles (:data:`KEYED_ROLES` take a ``/<key>``, :data:`SINGLE_ROLES` none) name what the prediction code reads:

* ``trained``: ``model/<view>`` (weights), ``info/<view>`` (:class:`mskseg.nn.model_info.ModelInfo` JSON),
  ``history/<view>`` (per-epoch CSV, optional) for each model view (``sagittal``, ``coronal``, ``axial``,
  ``mpr``, ``3d``), and ``fusion`` (three-plane fusion weights);
* ``shape_fitting``: ``pre_model/<view>``, ``pre_info/<view>``, ``pre_history/<view>`` (the presegmentation's
  model), ``regression/<part>``, ``regression_info/<part>``, ``regression_history/<part>`` (a bone or
  ``all``), ``refinement``, ``refinement_info``, ``refinement_history``, ``selection`` (the landmark selection
  TSV), ``shape_model/<bone>`` (the fold's ``.npz``) and ``shape_header/<bone>`` (its ``.json``);
* either kind, for the label-free QC of new scans: :data:`QC_KEYED_ROLES` per bone and ``volumes``.

This module imports no torch: it only copies, archives and checks files.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import math
import os
import platform
import re
import secrets
import shutil
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from mskseg.errors import ConfigError
from mskseg.io.atomic import TEMPORARY_PREFIX, atomic_path, split_suffix
from mskseg.io.checksums import file_sha256
from mskseg.io.tables import read_json, write_json

BUNDLE_VERSION = 1
CARD = "card.json"
ARCHIVE_SUFFIX = ".tar.gz"
KINDS = ("trained", "shape_fitting")
#: roles with a key (view, part or bone) and roles without, allowed per method kind
#: the label-free QC's files: per bone a shape model, its reference mask and landmarks; the training volumes
QC_KEYED_ROLES = ("qc_shape_model", "qc_shape_header", "qc_reference_mask", "qc_reference_landmarks")
QC_SINGLE_ROLES = ("volumes",)
KEYED_ROLES = {"trained": ("model", "info", "history", *QC_KEYED_ROLES),
               "shape_fitting": ("pre_model", "pre_info", "pre_history", "regression", "regression_info",
                                 "regression_history", "shape_model", "shape_header", *QC_KEYED_ROLES)}
SINGLE_ROLES = {"trained": ("fusion", *QC_SINGLE_ROLES),
                "shape_fitting": ("refinement", "refinement_info", "refinement_history", "selection",
                                  *QC_SINGLE_ROLES)}
#: (role, its partner): each present key of the first needs the second (and the reverse)
PAIRS = (("model", "info"), ("pre_model", "pre_info"), ("regression", "regression_info"),
         ("shape_model", "shape_header"), ("qc_shape_model", "qc_shape_header"),
         ("qc_reference_mask", "qc_reference_landmarks"))
#: roles every fold of a kind needs at least one key of
REQUIRED = {"trained": ("model",), "shape_fitting": ("pre_model", "regression", "shape_model")}
#: packages whose versions the card records
PACKAGES = ("mskseg", "torch", "numpy", "SimpleITK")
SPACING_TOL_MM = 1e-6
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class BundleError(ConfigError):
    """A bundle that cannot be used: not a bundle, a file changed or missing, another version, or made for
    other labels or preprocessing. The message names the bundle and the file or setting."""


@dataclass(frozen=True)
class FoldFiles:
    """A fold's source files by role (module docstring), e.g. ``{"model/sagittal": Path(...), "info/sagittal":
    ..., "history/sagittal": ...}``, and its numbers of training and validation subjects (>= 0)."""

    files: Mapping[str, Path]
    n_train: int
    n_val: int

    def __post_init__(self) -> None:
        if int(self.n_train) < 0 or int(self.n_val) < 0:
            raise ValueError(f"subject counts must be >= 0, got n_train={self.n_train}, n_val={self.n_val}")
        object.__setattr__(self, "files", {str(k): Path(v) for k, v in self.files.items()})


@dataclass(frozen=True)
class BundleFold:
    """One fold of a loaded bundle: absolute paths by role, subject counts and best validation Dice per history."""

    name: str
    files: dict[str, Path]
    n_train: int
    n_val: int
    val_dice: dict[str, float | None] = field(default_factory=dict)

    def path(self, role: str) -> Path:
        """The file of ``role``; a BundleError names the fold and the roles it has when there is none."""
        if role not in self.files:
            raise BundleError(f"fold {self.name}: no file of role {role!r} (has {sorted(self.files)})")
        return self.files[role]

    def keyed(self, kind: str) -> dict[str, Path]:
        """Key -> file of a keyed role, e.g. ``keyed("model") == {"sagittal": ...}`` (empty when none)."""
        return {role.split("/", 1)[1]: p for role, p in self.files.items() if role.startswith(f"{kind}/")}


@dataclass(frozen=True)
class Bundle:
    """A loaded, verified bundle: the card's fields and the folds' files (absolute paths under ``root``)."""

    source: Path                 # what was loaded: a folder or an archive
    root: Path                   # the folder holding the files (an archive's extraction cache)
    version: int
    method: str
    kind: str
    method_config: dict[str, Any]
    labels: dict[str, int]
    preprocess: dict[str, Any]
    folds: dict[str, BundleFold]
    created: str
    versions: dict[str, str | None]
    checksums: dict[str, str]


# ---- export ---------------------------------------------------------------------------------------
def _check_roles(kind: str, fold: str, roles: set[str]) -> None:
    """The roles are known for ``kind``, paired and complete (ValueError naming the fold and role)."""
    where = f"fold {fold}"
    for role in roles:
        base, _, key = role.partition("/")
        keyed, single = base in KEYED_ROLES[kind], base in SINGLE_ROLES[kind]
        if not (keyed or single) or (keyed and not _NAME.match(key)) or (single and role != base):
            raise ValueError(f"{where}: role {role!r} is not one of a {kind} method's roles "
                             f"{[f'{r}/<key>' for r in KEYED_ROLES[kind]] + list(SINGLE_ROLES[kind])}")
    for a, b in [*PAIRS, *((b, a) for a, b in PAIRS)]:
        for role in (r for r in roles if r.startswith(f"{a}/") and f"{b}/{r.split('/', 1)[1]}" not in roles):
            raise ValueError(f"{where}: {role!r} without {b + '/' + role.split('/', 1)[1]!r}")
    for base in REQUIRED[kind]:
        if not any(r.startswith(f"{base}/") for r in roles):
            raise ValueError(f"{where}: a {kind} method needs a {base}/<key> file")
    refinement = {r for r in roles if r in ("refinement", "refinement_info", "selection")}
    if refinement and len(refinement) < 3:
        raise ValueError(f"{where}: refinement, refinement_info and selection go together, got {sorted(refinement)}")


def best_val_dice(history: Path) -> float | None:
    """The highest finite ``val_dice`` of a history CSV; None without the column or a finite value."""
    with open(history, newline="", encoding="utf-8") as fh:
        values = []
        for row in csv.DictReader(fh):
            with contextlib.suppress(TypeError, ValueError):
                values.append(float(row.get("val_dice") or "nan"))
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) if finite else None


def package_versions() -> dict[str, str | None]:
    """Versions of :data:`PACKAGES` (None where not installed) and of python."""
    def version(name: str) -> str | None:
        return next((d.version for d in metadata.distributions(name=name)), None)
    return {name: version(name) for name in PACKAGES} | {"python": platform.python_version()}


def _temporary_sibling(path: Path) -> Path:
    """A temporary name beside ``path`` that :func:`mskseg.io.atomic.abandoned` recognises."""
    return path.with_name(f"{TEMPORARY_PREFIX}p{os.getpid()}-{secrets.token_hex(4)}-{path.name}")


@contextlib.contextmanager
def _temporary_folder(path: Path) -> Iterator[Path]:
    """A fresh temporary folder beside ``path``, removed on leaving unless it was moved away."""
    tmp = _temporary_sibling(path)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace_folder(tmp: Path, dest: Path) -> None:
    """Move folder ``tmp`` to ``dest``; an existing ``dest`` is moved aside first and removed afterwards
    (a reader sees the old bundle, nothing, or the new one: never half of one)."""
    old = _temporary_sibling(dest)
    if dest.exists():
        os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    finally:  # a failed move puts the old folder back
        if old.exists() and not dest.exists():
            os.replace(old, dest)
    shutil.rmtree(old, ignore_errors=True)


def _write_folder(root: Path, *, method: str, kind: str, method_config: Mapping, labels: Mapping[str, int],
                  preprocess: Mapping, folds: Mapping[str, FoldFiles]) -> None:
    """Copy the folds' files into the (empty) folder ``root`` and write the card last."""
    checksums: dict[str, str] = {}
    card_folds: dict[str, Any] = {}
    for fold, files in folds.items():
        placed: dict[str, str] = {}
        for role, source in sorted(files.files.items()):
            rel = f"fold-{fold}/{role}{split_suffix(source)[1]}"  # the source's ending kept
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, root / rel)
            checksums[rel] = file_sha256(root / rel)
            placed[role] = rel
        dice = {role: best_val_dice(root / rel) for role, rel in placed.items()
                if role.split("/")[0].endswith("history")}
        card_folds[fold] = {"files": placed, "n_train": int(files.n_train), "n_val": int(files.n_val),
                            "val_dice": dice}
    card = {"bundle_version": BUNDLE_VERSION, "method": method, "kind": kind, "method_config": dict(method_config),
            "labels": {str(k): int(v) for k, v in labels.items()}, "preprocess": dict(preprocess),
            "folds": card_folds, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "versions": package_versions(), "checksums": checksums}
    write_json(root / CARD, card)  # tuples as lists, numpy scalars as floats


def _check_export(dest: Path, method: str, kind: str, folds: Mapping[str, FoldFiles], archive: bool,
                  overwrite: bool) -> None:
    """What :func:`export_bundle` raises before it writes anything."""
    if kind not in KINDS:
        raise ValueError(f"bundle of method {method!r}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if not folds:
        raise ValueError(f"bundle of method {method!r}: no folds")
    if archive and not dest.name.endswith(ARCHIVE_SUFFIX):
        raise ValueError(f"{dest}: an archived bundle's name ends in {ARCHIVE_SUFFIX}")
    first = set(next(iter(folds.values())).files)
    for fold, files in folds.items():
        if not _NAME.match(str(fold)):
            raise ValueError(f"bundle of method {method!r}: fold name {fold!r} is not a plain name")
        _check_roles(kind, str(fold), set(files.files))
        if set(files.files) != first:
            raise ValueError(f"bundle of method {method!r}: fold {fold} has roles {sorted(files.files)}, "
                             f"fold {next(iter(folds))} {sorted(first)}")
    if dest.exists() and not overwrite:
        raise FileExistsError(f"{dest}: exists (export with overwrite=True to replace it)")


def export_bundle(dest: Path, *, method: str, kind: str, method_config: Mapping, labels: Mapping[str, int],
                  preprocess: Mapping, folds: Mapping[str, FoldFiles], archive: bool = False,
                  overwrite: bool = False) -> Path:
    """Export a method's trained models as a bundle at ``dest`` (a folder, or one ``.tar.gz`` with ``archive``).

    The bundle is written into a temporary folder beside ``dest`` and moved into place only when complete
    (an archive, the card its first member, is packed from it under a temporary name): an error, such as a
    missing source file (OSError), leaves ``dest`` as it was and no temporary folder or file behind.

    Parameters
    ----------
    method, kind, method_config
        The method's name, kind (``trained`` or ``shape_fitting``) and config entry (tuples become lists).
    labels, preprocess
        The dataset's label map (name -> value) and :func:`mskseg.workflow.settings.preprocess_settings`.
    folds
        Fold name -> its files by role (module docstring); every fold needs the same roles.
    overwrite
        Replace an existing ``dest``; without it an existing ``dest`` raises FileExistsError.

    A ValueError (before anything is written) names an unknown kind, no folds, a fold name or role that is not
    allowed, unpaired or missing roles, folds with different roles, or an archive name without ``.tar.gz``.
    """
    dest = Path(dest)
    _check_export(dest, method, kind, folds, archive, overwrite)
    with _temporary_folder(dest) as tmp:
        _write_folder(tmp, method=method, kind=kind, method_config=method_config, labels=labels,
                      preprocess=preprocess, folds={str(k): v for k, v in folds.items()})
        if archive:
            with atomic_path(dest) as packed, tarfile.open(packed, "w:gz") as tar:
                tar.add(tmp / CARD, arcname=CARD)
                for path in sorted(p for p in tmp.rglob("*") if p.is_file() and p.name != CARD):
                    tar.add(path, arcname=path.relative_to(tmp).as_posix())
        else:
            _replace_folder(tmp, dest)
    return dest


# ---- load -----------------------------------------------------------------------------------------
def _read_card(root: Path, source: Path) -> dict[str, Any]:
    """The card of a bundle folder, its version checked."""
    try:
        card = read_json(root / CARD)
    except FileNotFoundError:
        raise BundleError(f"bundle {source}: no {CARD}: not a bundle") from None
    except (OSError, ValueError) as err:
        raise BundleError(f"bundle {source}: {CARD} cannot be read ({err})") from None
    version = card.get("bundle_version") if isinstance(card, dict) else None
    if version != BUNDLE_VERSION:
        newer = isinstance(version, int) and version > BUNDLE_VERSION
        raise BundleError(f"bundle {source}: bundle version {version!r}; this mskseg reads version {BUNDLE_VERSION}"
                          + (" (made by a newer mskseg: update it)" if newer else ""))
    missing = [k for k in ("method", "kind", "labels", "preprocess", "folds", "checksums") if k not in card]
    if missing:
        raise BundleError(f"bundle {source}: {CARD} lacks {missing}")
    return card


def verify(root: Path, card: Mapping[str, Any], source: Path) -> None:
    """Every file of the card's ``checksums`` exists under ``root`` (inside it) with its SHA-256, and every fold's
    file is among them (BundleError naming the file and the failed check)."""
    checksums = card["checksums"]
    for rel, expected in sorted(checksums.items()):
        path = root / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not Path(rel).parts:
            raise BundleError(f"bundle {source}: {rel!r}: a path outside the bundle")
        if not path.is_file():
            raise BundleError(f"bundle {source}: {rel}: missing (the card lists it with a checksum)")
        actual = file_sha256(path)
        if actual != expected:
            raise BundleError(f"bundle {source}: {rel}: checksum mismatch (SHA-256 {actual[:12]}..., the card says "
                              f"{str(expected)[:12]}...): the file changed after export")
    for fold, entry in card["folds"].items():
        for role, rel in entry["files"].items():
            if rel not in checksums:
                raise BundleError(f"bundle {source}: fold {fold}, {role}: {rel} has no checksum in the card")


def _archive_card(archive: Path) -> bytes:
    """The card's bytes of an archived bundle (its first member)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.next()
            fh = tar.extractfile(member) if member is not None and member.name == CARD else None
            if fh is None:
                raise BundleError(f"bundle {archive}: the archive does not start with {CARD}: not a bundle")
            return fh.read()
    except (OSError, tarfile.TarError) as err:
        raise BundleError(f"bundle {archive}: cannot be read as a {ARCHIVE_SUFFIX} ({err})") from None


def _extract(archive: Path, cache: Path) -> None:
    """Extract an archived bundle into ``cache`` (atomically: into a temporary sibling that is then moved); an
    existing ``cache`` is replaced only when it is empty or a bundle folder."""
    if cache.exists() and any(cache.iterdir()) and not (cache / CARD).is_file():
        raise BundleError(f"bundle {archive}: cannot extract into {cache}: it exists and holds no bundle")
    with _temporary_folder(cache) as tmp:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(tmp, filter="data")
        except (OSError, tarfile.TarError) as err:
            raise BundleError(f"bundle {archive}: cannot be extracted ({err})") from None
        _replace_folder(tmp, cache)


def _extracted(archive: Path, extract_to: Path | None) -> tuple[Path, bool]:
    """The folder of an archive's files and whether it was verified: a cache whose card equals the archive's
    and whose files verify is used as it is; otherwise the archive is extracted (again), not yet verified."""
    cache = Path(extract_to) if extract_to is not None else archive.with_name(f"{split_suffix(archive)[0]}.extracted")
    card = _archive_card(archive)
    with contextlib.suppress(OSError, BundleError):
        if (cache / CARD).read_bytes() == card:
            verify(cache, _read_card(cache, archive), archive)
            return cache, True
    _extract(archive, cache)
    return cache, False


def load_bundle(path: Path, *, extract_to: Path | None = None) -> Bundle:
    """Load a bundle (a folder, or a ``.tar.gz``), verifying its version and every file's checksum.

    An archive is extracted into ``extract_to`` or, by default, ``<name without .tar.gz>.extracted``
    beside it; a later load reuses that folder while its card equals the archive's and its files verify,
    and extracts again otherwise (the archive is what counts). Files not listed in the card are ignored.
    A BundleError says when there is no bundle at ``path``, it has another bundle version, a listed file is
    missing or changed (named, with the check that failed) or the card names a path outside the bundle.
    """
    source = Path(path)
    if source.is_dir():
        root, verified = source, False
    elif source.is_file() and source.name.endswith(ARCHIVE_SUFFIX):
        root, verified = _extracted(source, extract_to)
    else:
        raise BundleError(f"bundle {source}: neither a bundle folder nor a {ARCHIVE_SUFFIX} file")
    card, root = _read_card(root, source), root.resolve()
    if not verified:
        verify(root, card, source)
    folds = {str(name): BundleFold(name=str(name), n_train=int(entry["n_train"]), n_val=int(entry["n_val"]),
                                   files={role: root / rel for role, rel in entry["files"].items()},
                                   val_dice=dict(entry.get("val_dice") or {}))
             for name, entry in card["folds"].items()}
    return Bundle(source=source.resolve(), root=root, version=int(card["bundle_version"]),
                  method=str(card["method"]), kind=str(card["kind"]),
                  method_config=dict(card.get("method_config") or {}),
                  labels={str(k): int(v) for k, v in card["labels"].items()}, preprocess=dict(card["preprocess"]),
                  folds=folds, created=str(card.get("created", "")), versions=dict(card.get("versions") or {}),
                  checksums=dict(card["checksums"]))


# ---- compatibility --------------------------------------------------------------------------------
def label_differences(bundle: Mapping[str, int], dataset: Mapping[str, int]) -> list[str]:
    """How the dataset's label map differs from the bundle's: missing, extra, or other values (empty: equal)."""
    out = [f"{name} ({bundle[name]}) missing" for name in bundle if name not in dataset]
    out += [f"{name} ({dataset[name]}) extra, not in the bundle" for name in dataset if name not in bundle]
    out += [f"{name} is {int(dataset[name])} here, {int(bundle[name])} in the bundle" for name in bundle
            if name in dataset and int(dataset[name]) != int(bundle[name])]
    return out


def _same(key: str, a: Any, b: Any) -> bool:
    """Whether two values of a preprocessing key agree (numbers within a tolerance, label sets unordered)."""
    if a is None or b is None or key in ("orientation", "modality"):
        return str(a).upper() == str(b).upper() if None not in (a, b) else a is b
    if key == "crop_labels":
        return sorted(int(v) for v in a) == sorted(int(v) for v in b)
    x, y = ([float(v) for v in (w if isinstance(w, (list, tuple)) else [w])] for w in (a, b))
    tol = SPACING_TOL_MM if key == "spacing" else 1e-9
    return len(x) == len(y) and all(abs(u - v) <= tol for u, v in zip(x, y, strict=True))


def preprocess_differences(bundle: Mapping[str, Any], dataset: Mapping[str, Any]) -> list[str]:
    """How the dataset's preprocessing differs from the bundle's in the keys that change what a model sees.

    Compared: ``orientation`` (which array axis a plane's slices run along), ``spacing`` (the voxel size the
    model learned, mm, within :data:`SPACING_TOL_MM`; None = kept, which differs from any spacing), ``modality``
    (the intensity normalisation: clipped z-score for MRI, quartile scaling for CT), ``clip_percentiles`` (only
    for MRI: CT ignores them) and the crop (``crop_labels``, ``crop_margin_mm``; only when both crop: a crop needs
    a mask, so scans without one, as new scans to segment, are never cropped, and a model trained on crops is
    applied to whole scans by design). Not compared: the interpolators (sub-voxel differences of the resampled
    image; the mask's applies to reference masks only).
    """
    keys = ["orientation", "spacing", "modality"]
    if str(dataset.get("modality")).lower() == "mri" == str(bundle.get("modality")).lower():
        keys.append("clip_percentiles")
    if bundle.get("crop_labels") and dataset.get("crop_labels"):
        keys += ["crop_labels", "crop_margin_mm"]
    return [f"{key} is {dataset.get(key)!r} here, {bundle.get(key)!r} in the bundle" for key in keys
            if not _same(key, dataset.get(key), bundle.get(key))]


def check_compatible(bundle: Bundle, *, labels: Mapping[str, int], preprocess: Mapping, where: str) -> None:
    """Raise a BundleError naming ``where`` (e.g. ``datasets.newknees.segment.bundle``) and every difference
    when a dataset's label map or preprocessing (:func:`preprocess_differences`) differs from the bundle's."""
    problems = [f"labels: {d}" for d in label_differences(bundle.labels, labels)]
    problems += [f"preprocess: {d}" for d in preprocess_differences(bundle.preprocess, preprocess)]
    if problems:
        raise BundleError(f"{where}: bundle {bundle.source} (method {bundle.method!r}) was made for other data: "
                          + "; ".join(problems))


__all__ = ["BUNDLE_VERSION", "CARD", "KEYED_ROLES", "SINGLE_ROLES", "Bundle", "BundleError",
           "BundleFold", "FoldFiles", "best_val_dice", "check_compatible", "export_bundle",
           "label_differences", "load_bundle", "package_versions", "preprocess_differences", "verify"]
