"""Statistics used to compare segmentation methods (after Desai et al.).

* :func:`kruskal_wallis` -- Kruskal-Wallis H test across methods;
* :func:`dunn` -- Dunn's post-hoc test of every pair of methods, corrected for multiple
  comparisons;
* :func:`paired_wilcoxon` -- Wilcoxon signed-rank test of two methods paired by subject;
* :func:`compare_methods` -- all three per structure of a metrics frame, and
  :func:`significance` to read a pair's verdict back out of it;
* :func:`power_law_fit` -- accuracy against training-set size, ``y = a * n**b``.

The wrappers never raise on degenerate data (one group, identical values, no pairs): they
return NaN statistics with a ``reason`` string instead, so one bad structure does not stop
a report.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import optimize
from scipy import stats as sstats

#: multiple-comparison corrections accepted by :func:`adjust_pvalues` and friends
ADJUST_METHODS = ("holm", "bonferroni", "fdr_bh", "none")

#: columns of :func:`compare_methods`
COMPARISON_COLUMNS = ("structure", "metric", "test", "method_a", "method_b", "statistic", "pvalue",
                      "p_adjusted", "significant", "n", "reason")


def _check_adjust(method: str) -> None:
    if method not in ADJUST_METHODS:
        raise ValueError(f"unknown p-value adjustment {method!r}; allowed: {', '.join(ADJUST_METHODS)}")


def adjust_pvalues(pvalues: Sequence[float], method: str = "holm") -> np.ndarray:
    """Correct a family of p-values for multiple comparisons.

    Parameters
    ----------
    pvalues
        Raw p-values in [0, 1]. NaN entries stay NaN and are not counted in the family.
    method
        ``"holm"`` (step-down Bonferroni), ``"bonferroni"``, ``"fdr_bh"`` (Benjamini-Hochberg)
        or ``"none"`` (returned unchanged).

    Returns
    -------
    numpy.ndarray
        Adjusted p-values (float, same length and order as the input, capped at 1).

    Raises
    ------
    ValueError
        For an unknown method or a p-value outside [0, 1].
    """
    _check_adjust(method)
    p = np.asarray(pvalues, dtype=float).reshape(-1)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    if not ok.any():
        return out
    if method == "none" or ok.sum() == 1:  # a family of one needs no correction
        out[ok] = p[ok]
    else:
        out[ok] = _adjust(p[ok], method)
    return out


def _adjust(p: np.ndarray, method: str) -> np.ndarray:
    """Holm, Bonferroni or Benjamini-Hochberg adjusted p-values (as statsmodels' multipletests gives
    them; written out because multipletests runs a full garbage collection on every call)."""
    m = p.size
    if method == "bonferroni":
        return np.minimum(1.0, p * m)
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, ranked * (m - np.arange(m))))
    else:  # fdr_bh
        adj = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
        adj = np.minimum(1.0, adj)
    out = np.empty(m)
    out[order] = adj
    return out


def _clean(values: ArrayLike) -> np.ndarray:
    """Finite-or-inf float values of ``values`` with NaNs dropped (1-D)."""
    a = np.asarray(values, dtype=float).reshape(-1)
    return a[~np.isnan(a)]


@dataclass(frozen=True)
class KruskalResult:
    """Kruskal-Wallis H test. ``statistic``/``pvalue`` are NaN when the test could not run
    (``reason`` says why); ``n_groups`` and ``n`` count the groups and values used."""

    statistic: float
    pvalue: float
    n_groups: int
    n: int
    reason: str = ""


def kruskal_wallis(groups: Mapping[str, ArrayLike]) -> KruskalResult:
    """Kruskal-Wallis H test across groups (wraps :func:`scipy.stats.kruskal`).

    Parameters
    ----------
    groups
        Group name -> values. NaNs are dropped; groups left without values are dropped.

    Returns
    -------
    KruskalResult
        NaN statistic and p-value with a reason when fewer than two groups have values or
        all values are identical; never raises for such data.
    """
    samples = [v for v in (_clean(x) for x in groups.values()) if v.size]
    n = int(sum(v.size for v in samples))
    if len(samples) < 2:
        return KruskalResult(np.nan, np.nan, len(samples), n, "fewer than 2 groups with values")
    if np.unique(np.concatenate(samples)).size == 1:
        return KruskalResult(np.nan, np.nan, len(samples), n, "all values identical")
    res = sstats.kruskal(*samples)
    return KruskalResult(float(res.statistic), float(res.pvalue), len(samples), n)


def dunn(groups: Mapping[str, ArrayLike], p_adjust: str = "holm") -> pd.DataFrame:
    """Dunn's post-hoc test of every pair of groups (the tests check it against
    :func:`scikit_posthocs.posthoc_dunn`, which is not imported here: it loads seaborn, ~1 s).

    Uses the pooled ranks of all groups with the tie correction and two-sided normal
    p-values, then corrects the family of all pairs of non-empty groups with ``p_adjust``
    (:func:`adjust_pvalues`, which gives the same numbers as ``posthoc_dunn(p_adjust=...)``).

    Parameters
    ----------
    groups
        Group name -> values; NaNs are dropped first.
    p_adjust
        One of :data:`ADJUST_METHODS`.

    Returns
    -------
    pandas.DataFrame
        Square, index and columns the group names in input order, adjusted p-values with
        1.0 on the diagonal. Rows and columns of groups without values are NaN (diagonal
        included); all off-diagonal entries are NaN when fewer than two groups have values
        or all values are identical.
    """
    _check_adjust(p_adjust)
    out = _dunn_raw(groups)
    upper = np.triu_indices(out.shape[0], 1)
    values = out.to_numpy(copy=True)
    values[upper] = adjust_pvalues(values[upper], p_adjust)
    values.T[upper] = values[upper]
    return pd.DataFrame(values, index=out.index, columns=out.columns)


def _dunn_raw(groups: Mapping[str, ArrayLike]) -> pd.DataFrame:
    """Unadjusted Dunn p-values as described in :func:`dunn`."""
    names = list(groups)
    out = pd.DataFrame(np.nan, index=pd.Index(names), columns=pd.Index(names))
    cleaned = [_clean(groups[name]) for name in names]
    present = [i for i, v in enumerate(cleaned) if v.size]
    for i in present:
        out.iloc[i, i] = 1.0
    if len(present) < 2 or np.unique(np.concatenate([cleaned[i] for i in present])).size == 1:
        return out
    z = _dunn_z({names[i]: cleaned[i] for i in present}).to_numpy(dtype=float)
    p = 2.0 * sstats.norm.sf(np.abs(z))
    np.fill_diagonal(p, 1.0)
    out.iloc[present, present] = p
    return out


def _dunn_z(groups: Mapping[str, ArrayLike]) -> pd.DataFrame:
    """Signed Dunn z (mean rank of row group minus column group over its SE), NaN where undefined."""
    names = list(groups)
    cleaned = [_clean(groups[name]) for name in names]
    sizes = np.array([v.size for v in cleaned], dtype=float)
    values = np.concatenate(cleaned) if cleaned else np.empty(0)
    z = np.full((len(names), len(names)), np.nan)
    n = values.size
    if n >= 2:
        _, t = np.unique(values, return_counts=True)
        var = n * (n + 1) / 12.0 - np.sum(t.astype(float) ** 3 - t) / (12.0 * (n - 1))
        parts = np.split(sstats.rankdata(values), np.cumsum(sizes).astype(int)[:-1])
        mean_rank = np.array([r.mean() if r.size else np.nan for r in parts])
        if var > 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                z = (mean_rank[:, None] - mean_rank[None, :]) / np.sqrt(var * (1 / sizes[:, None] + 1 / sizes[None, :]))
            np.fill_diagonal(z, np.nan)
    return pd.DataFrame(z, index=pd.Index(names), columns=pd.Index(names))


@dataclass(frozen=True)
class WilcoxonResult:
    """Paired Wilcoxon signed-rank test; ``n`` is the number of complete pairs used."""

    statistic: float
    pvalue: float
    n: int
    reason: str = ""


def paired_wilcoxon(a: pd.Series, b: pd.Series) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test of ``a`` against ``b`` paired by index.

    Parameters
    ----------
    a, b
        Values indexed by subject id (unique labels); pairs are matched on the index, and
        pairs missing from either series or with a NaN are dropped.

    Returns
    -------
    WilcoxonResult
        Wraps :func:`scipy.stats.wilcoxon` (default ``zero_method="wilcox"`` and
        ``method="auto"``: the exact distribution without ties or zero differences; with
        them, an exhaustive sign-flip permutation test for n <= 13 pairs -- deterministic
        but about a second per call -- else the normal approximation; scipy's warnings
        about small samples or zeros are silenced). With no complete pair the
        statistic and p-value are NaN (reason ``"no pairs"``); when every difference is
        zero the statistic is 0 and p = 1.0 (reason ``"all differences zero"``).
    """
    for name, s in (("a", a), ("b", b)):
        if not s.index.is_unique:
            raise ValueError(f"series {name} has duplicate index labels; pairing needs unique subject ids")
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").astype(float).dropna()
    n = len(joined)
    if n < 1:
        return WilcoxonResult(np.nan, np.nan, 0, "no pairs")
    diff = joined["a"].to_numpy() - joined["b"].to_numpy()
    if np.all(diff == 0):
        return WilcoxonResult(0.0, 1.0, n, "all differences zero")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sstats.wilcoxon(joined["a"].to_numpy(), joined["b"].to_numpy(), alternative="two-sided")
    return WilcoxonResult(float(res.statistic), float(res.pvalue), n)


def _row(structure: str, metric: str, test: str, a: str, b: str, statistic: float, pvalue: float,
         p_adjusted: float, alpha: float, n: int, reason: str) -> dict:
    return {"structure": structure, "metric": metric, "test": test, "method_a": a, "method_b": b,
            "statistic": float(statistic), "pvalue": float(pvalue), "p_adjusted": float(p_adjusted),
            "significant": bool(p_adjusted < alpha), "n": int(n), "reason": reason}


def compare_methods(frame: pd.DataFrame, metric: str, *, methods: Sequence[str] | None = None,
                    p_adjust: str = "holm", alpha: float = 0.05) -> pd.DataFrame:
    """Kruskal-Wallis, Dunn and paired Wilcoxon tests between methods, per structure.

    Parameters
    ----------
    frame
        Metrics frame: one row per (method, subject, structure) with column ``metric``.
    metric
        Column to compare (NaN values are dropped test by test).
    methods
        Methods to compare, in this order; default all, in order of first appearance.
    p_adjust
        Correction (:data:`ADJUST_METHODS`) of Dunn's pairs and of the Wilcoxon pairs, each
        family taken per structure.
    alpha
        Significance level for the ``significant`` column.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COMPARISON_COLUMNS`. Per structure (order of first appearance): one
        ``test="kruskal"`` row (empty method names, ``p_adjusted = pvalue``), then one
        ``"dunn"`` row per unordered method pair (statistic = signed z, mean rank of
        ``method_a`` minus ``method_b``; ``n`` = values of both), then one ``"wilcoxon"``
        row per pair (paired by subject; ``n`` = complete pairs). ``significant`` is
        ``p_adjusted < alpha`` (False for NaN). Empty (same columns) with fewer than two
        methods. ``attrs`` records ``p_adjust`` and ``alpha``.

    Raises
    ------
    ValueError
        For missing columns, an unknown correction, or duplicate (method, subject, structure) rows.
    """
    _check_adjust(p_adjust)
    missing = [c for c in ("method", "subject", "structure", metric) if c not in frame.columns]
    if missing:
        raise ValueError(f"metrics frame lacks columns {missing}")
    if frame.duplicated(["method", "subject", "structure"]).any():
        raise ValueError("metrics frame has duplicate (method, subject, structure) rows")
    methods = list(pd.unique(frame["method"])) if methods is None else list(methods)
    rows: list[dict] = []
    if len(methods) >= 2:
        for structure in pd.unique(frame["structure"]):
            rows.extend(_compare_structure(frame[frame["structure"] == structure], str(structure),
                                           metric, methods, p_adjust, alpha))
    out = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    out["significant"] = out["significant"].astype(bool)
    out.attrs.update({"p_adjust": p_adjust, "alpha": float(alpha)})
    return out


def _compare_structure(sub: pd.DataFrame, structure: str, metric: str, methods: list[str],
                       p_adjust: str, alpha: float) -> list[dict]:
    """The kruskal, dunn and wilcoxon rows of one structure."""
    series = {m: sub.loc[sub["method"] == m].set_index("subject")[metric].astype(float) for m in methods}
    groups = {m: s.to_numpy() for m, s in series.items()}
    kw = kruskal_wallis(groups)
    rows = [_row(structure, metric, "kruskal", "", "", kw.statistic, kw.pvalue, kw.pvalue, alpha, kw.n,
                 kw.reason)]
    raw, z = _dunn_raw(groups), _dunn_z(groups)
    pairs = list(itertools.combinations(methods, 2))
    raw_p = [raw.loc[a, b] for a, b in pairs]
    for (a, b), p, p_adj in zip(pairs, raw_p, adjust_pvalues(raw_p, p_adjust), strict=True):
        n = int(series[a].notna().sum() + series[b].notna().sum())
        reason = "" if np.isfinite(p) else (kw.reason or "a method has no values")
        rows.append(_row(structure, metric, "dunn", a, b, z.loc[a, b], p, p_adj, alpha, n, reason))
    tests = [paired_wilcoxon(series[a], series[b]) for a, b in pairs]
    p_adj = adjust_pvalues([t.pvalue for t in tests], p_adjust)
    for (a, b), t, p in zip(pairs, tests, p_adj, strict=True):
        rows.append(_row(structure, metric, "wilcoxon", a, b, t.statistic, t.pvalue, p, alpha, t.n, t.reason))
    return rows


def _pair_row(comparisons: pd.DataFrame, structure: str, test: str, a: str, b: str) -> pd.Series | None:
    sel = comparisons[(comparisons["structure"] == structure) & (comparisons["test"] == test)
                      & (((comparisons["method_a"] == a) & (comparisons["method_b"] == b))
                         | ((comparisons["method_a"] == b) & (comparisons["method_b"] == a)))]
    return None if sel.empty else sel.iloc[0]


def significance(comparisons: pd.DataFrame, structure: str, a: str, b: str, *, n_methods: int) -> bool | None:
    """Whether methods ``a`` and ``b`` differ significantly for ``structure``.

    Parameters
    ----------
    comparisons
        Output of :func:`compare_methods` (its ``significant`` column carries ``alpha``).
    structure, a, b
        Structure and the two methods (either order).
    n_methods
        Number of methods compared. With three or more, Dunn's test decides, and only counts
        when the structure's Kruskal-Wallis test is significant; with two, the paired
        Wilcoxon test decides.

    Returns
    -------
    bool or None
        None when the relevant test is absent or could not be run (NaN p-value), or when
        ``n_methods < 2``.
    """
    if n_methods < 2:
        return None
    if n_methods == 2:
        row = _pair_row(comparisons, structure, "wilcoxon", a, b)
        if row is None or not np.isfinite(row["p_adjusted"]):
            return None
        return bool(row["significant"])
    kw = comparisons[(comparisons["structure"] == structure) & (comparisons["test"] == "kruskal")]
    if kw.empty or not np.isfinite(kw.iloc[0]["pvalue"]):
        return None
    row = _pair_row(comparisons, structure, "dunn", a, b)
    if row is None or not np.isfinite(row["p_adjusted"]):
        return None
    return bool(kw.iloc[0]["significant"]) and bool(row["significant"])


@dataclass(frozen=True)
class PowerLawFit:
    """``y = a * n**b`` with coefficient of determination ``r2`` (linear space) over ``n_points``."""

    a: float
    b: float
    r2: float
    n_points: int

    def predict(self, n: ArrayLike) -> np.ndarray:
        """``a * n**b`` for training-set sizes ``n`` (array of the same shape)."""
        return self.a * np.asarray(n, dtype=float) ** self.b


def _power(n: np.ndarray, a: float, b: float) -> np.ndarray:
    return a * n ** b


def power_law_fit(n_train: ArrayLike, values: ArrayLike) -> PowerLawFit:
    """Fit accuracy against training-set size as ``y = a * n**b``.

    Least squares in linear space (:func:`scipy.optimize.curve_fit`), started from the
    least-squares line through ``(log n, log y)``.

    Parameters
    ----------
    n_train
        Training-set sizes (number of scans), one per value; repeats allowed.
    values
        Accuracy values (e.g. Dice), same length.

    Returns
    -------
    PowerLawFit
        ``r2 = 1 - SS_res / SS_tot`` of the fitted curve in linear space; NaN when all
        values are equal (SS_tot = 0).

    Raises
    ------
    ValueError
        On different lengths, non-finite or non-positive ``n`` or values, or fewer than two
        distinct ``n``.
    RuntimeError
        If the optimiser does not converge.
    """
    n = np.asarray(n_train, dtype=float).reshape(-1)
    y = np.asarray(values, dtype=float).reshape(-1)
    if n.shape != y.shape:
        raise ValueError(f"n_train and values differ in length ({n.size} vs {y.size})")
    if not (np.all(np.isfinite(n)) and np.all(np.isfinite(y))):
        raise ValueError("power-law fit needs finite n_train and values (drop NaNs first)")
    if np.any(n <= 0) or np.any(y <= 0):
        raise ValueError("power-law fit needs positive n_train and positive values")
    if np.unique(n).size < 2:
        raise ValueError("power-law fit needs at least 2 distinct training-set sizes")
    b0, log_a0 = np.polyfit(np.log(n), np.log(y), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        (a, b), _ = optimize.curve_fit(_power, n, y, p0=(float(np.exp(log_a0)), float(b0)), maxfev=10000)
    ss_res = float(np.sum((y - _power(n, a, b)) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else np.nan
    return PowerLawFit(float(a), float(b), float(r2), int(n.size))
