"""Tests of mskseg.stats against scipy and hand computations on fixed data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs
from scipy import stats as sstats

from mskseg.stats import (
    COMPARISON_COLUMNS,
    adjust_pvalues,
    compare_methods,
    dunn,
    kruskal_wallis,
    paired_wilcoxon,
    power_law_fit,
    significance,
)

# --- adjust_pvalues ---------------------------------------------------------------------


def test_holm_and_bonferroni_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    np.testing.assert_allclose(adjust_pvalues(p, "holm"), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(adjust_pvalues(p, "bonferroni"), [0.04, 0.16, 0.12, 0.02])
    np.testing.assert_allclose(adjust_pvalues([0.3, 0.6], "bonferroni"), [0.6, 1.0])
    np.testing.assert_allclose(adjust_pvalues(p, "none"), p)


def test_nan_stays_nan_and_leaves_the_family() -> None:
    out = adjust_pvalues([0.01, np.nan, 0.04, 0.03, 0.005], "holm")
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2, 3, 4]], [0.03, 0.06, 0.06, 0.02])
    assert np.all(np.isnan(adjust_pvalues([np.nan, np.nan])))
    assert adjust_pvalues([]).shape == (0,)


def test_fdr_bh_matches_scipy() -> None:
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    np.testing.assert_allclose(adjust_pvalues(p, "fdr_bh"), sstats.false_discovery_control(p, method="bh"))


def test_adjust_rejects_unknown_method_and_bad_values() -> None:
    with pytest.raises(ValueError, match="holm"):
        adjust_pvalues([0.1], "sidak")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust_pvalues([1.5])


# --- Kruskal-Wallis ---------------------------------------------------------------------

GROUPS = {
    "A": [1.0, 2.0, 2.0, 3.0, 5.0],
    "B": [2.0, 4.0, 4.0, 6.0],
    "C": [5.0, 7.0, 8.0, 8.0, 9.0, np.nan],
}


def test_kruskal_equals_scipy() -> None:
    res = kruskal_wallis(GROUPS)
    expected = sstats.kruskal(GROUPS["A"], GROUPS["B"], GROUPS["C"][:-1])
    assert res.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert res.pvalue == pytest.approx(expected.pvalue, rel=1e-12)
    assert (res.n_groups, res.n, res.reason) == (3, 14, "")


def test_kruskal_drops_empty_groups() -> None:
    res = kruskal_wallis({"A": [1.0, 2.0, 3.0], "B": [np.nan], "C": [4.0, 5.0], "D": []})
    expected = sstats.kruskal([1.0, 2.0, 3.0], [4.0, 5.0])
    assert res.pvalue == pytest.approx(expected.pvalue)
    assert (res.n_groups, res.n) == (2, 5)


@pytest.mark.parametrize("groups, reason", [
    ({"A": [1.0, 2.0]}, "fewer than 2 groups"),
    ({"A": [1.0, 2.0], "B": [np.nan, np.nan]}, "fewer than 2 groups"),
    ({"A": [3.0, 3.0], "B": [3.0, np.nan, 3.0]}, "identical"),
])
def test_kruskal_degenerate(groups: dict, reason: str) -> None:
    res = kruskal_wallis(groups)
    assert np.isnan(res.statistic) and np.isnan(res.pvalue)
    assert reason in res.reason


# --- Dunn -------------------------------------------------------------------------------


def _dunn_by_hand(groups: dict[str, list[float]], z_only: bool = False) -> pd.DataFrame:
    """Dunn's z with the tie correction, two-sided normal p, Holm over the pairs (or the signed z)."""
    names = list(groups)
    clean = {k: [v for v in vals if not np.isnan(v)] for k, vals in groups.items()}
    pooled = np.concatenate([clean[k] for k in names])
    ranks = sstats.rankdata(pooled)  # average ranks for ties
    n_total = pooled.size
    _, t = np.unique(pooled, return_counts=True)
    var = n_total * (n_total + 1) / 12 - np.sum(t**3 - t) / (12 * (n_total - 1))
    mean_rank, start = {}, 0
    for k in names:
        mean_rank[k] = ranks[start:start + len(clean[k])].mean()
        start += len(clean[k])
    pairs = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names))]
    raw, zs = [], []
    for i, j in pairs:
        a, b = names[i], names[j]
        z = (mean_rank[a] - mean_rank[b]) / np.sqrt(var * (1 / len(clean[a]) + 1 / len(clean[b])))
        zs.append(z)
        raw.append(2 * sstats.norm.sf(abs(z)))
    if z_only:
        return pd.DataFrame({"a": [names[i] for i, _ in pairs], "b": [names[j] for _, j in pairs], "z": zs})
    # Holm by hand
    order = np.argsort(raw)
    m = len(raw)
    holm = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * raw[idx]))
        holm[idx] = running
    out = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for (i, j), p in zip(pairs, holm, strict=True):
        out.iloc[i, j] = out.iloc[j, i] = p
    return out


def test_dunn_matches_hand_computation_with_ties() -> None:
    res = dunn(GROUPS, "holm")
    expected = _dunn_by_hand(GROUPS)
    assert list(res.index) == list(res.columns) == ["A", "B", "C"]
    np.testing.assert_allclose(res.to_numpy(), expected.to_numpy(), rtol=1e-10)
    assert np.all(np.diag(res.to_numpy()) == 1.0)


@pytest.mark.parametrize("method", ["fdr_bh", "bonferroni"])
def test_dunn_matches_scikit_posthocs_corrections(method: str) -> None:
    res = dunn(GROUPS, method)
    expected = scikit_posthocs.posthoc_dunn([GROUPS["A"], GROUPS["B"], GROUPS["C"]], p_adjust=method)
    np.testing.assert_allclose(res.to_numpy(), expected.to_numpy(), rtol=1e-12)


def test_dunn_keeps_input_order_and_marks_empty_groups() -> None:
    groups = {"zeta": GROUPS["C"], "empty": [np.nan], "alpha": GROUPS["A"], "mid": GROUPS["B"]}
    res = dunn(groups, "holm")
    assert list(res.index) == ["zeta", "empty", "alpha", "mid"]
    assert res.loc["empty"].isna().all() and res["empty"].isna().all()
    expected = _dunn_by_hand({"zeta": GROUPS["C"], "alpha": GROUPS["A"], "mid": GROUPS["B"]})
    sub = res.loc[["zeta", "alpha", "mid"], ["zeta", "alpha", "mid"]]
    np.testing.assert_allclose(sub.to_numpy(), expected.to_numpy(), rtol=1e-10)


def test_dunn_degenerate_gives_nan_off_diagonal() -> None:
    res = dunn({"A": [2.0, 2.0], "B": [2.0, 2.0, 2.0]})
    assert res.loc["A", "B"] != res.loc["A", "B"]  # NaN
    assert res.loc["A", "A"] == 1.0
    assert np.isnan(dunn({"A": [1.0, 2.0]}).to_numpy()).sum() == 0  # single group: diagonal only


# --- paired Wilcoxon --------------------------------------------------------------------


def test_paired_wilcoxon_aligns_on_index_and_drops_nan_pairs() -> None:
    subjects = [f"s{i}" for i in range(9)]
    a_vals = np.array([0.91, 0.85, 0.88, 0.93, 0.79, 0.90, 0.87, 0.92, 0.80])
    b_vals = np.array([0.89, 0.86, 0.84, 0.90, 0.75, 0.91, 0.83, 0.88, np.nan])
    a = pd.Series(a_vals, index=subjects)
    b = pd.Series(b_vals, index=subjects).iloc[::-1]  # other order
    b = pd.concat([b, pd.Series([0.5], index=["only_in_b"])])
    res = paired_wilcoxon(a, b)
    expected = sstats.wilcoxon(a_vals[:8], b_vals[:8])
    assert res.n == 8
    assert res.statistic == pytest.approx(expected.statistic)
    assert res.pvalue == pytest.approx(expected.pvalue, rel=1e-12)
    shuffled = paired_wilcoxon(a.iloc[[3, 1, 0, 2, 8, 7, 6, 5, 4]], b)
    assert shuffled.pvalue == pytest.approx(res.pvalue, rel=1e-12)


def test_paired_wilcoxon_edge_cases() -> None:
    same = pd.Series([0.8, 0.9, 0.7], index=["x", "y", "z"])
    res = paired_wilcoxon(same, same.copy())
    assert (res.pvalue, res.n, res.reason) == (1.0, 3, "all differences zero")
    none = paired_wilcoxon(same, pd.Series([0.1], index=["other"]))
    assert np.isnan(none.pvalue) and none.n == 0 and none.reason == "no pairs"
    with pytest.raises(ValueError, match="duplicate"):
        paired_wilcoxon(pd.Series([1.0, 2.0], index=["x", "x"]), same)


# --- compare_methods / significance -------------------------------------------------------


def _frame(offsets: dict[str, float], n_subjects: int = 12, structures=("femur", "tibia")) -> pd.DataFrame:
    rng = np.random.default_rng(42)
    rows = []
    for s in structures:
        for m, off in offsets.items():
            for i in range(n_subjects):
                rows.append({"method": m, "subject": f"s{i:02d}", "structure": s,
                             "dice": off + 0.01 * rng.standard_normal()})
    return pd.DataFrame(rows)


def test_compare_methods_rows_and_consistency() -> None:
    frame = _frame({"A": 0.9, "B": 0.8, "C": 0.7})
    frame.loc[frame.index[3], "dice"] = np.nan
    out = compare_methods(frame, "dice")
    assert list(out.columns) == list(COMPARISON_COLUMNS)
    assert list(out["structure"].unique()) == ["femur", "tibia"]
    femur = out[out["structure"] == "femur"]
    assert list(femur["test"]) == ["kruskal"] + ["dunn"] * 3 + ["wilcoxon"] * 3
    assert list(zip(femur["method_a"], femur["method_b"], strict=True))[1:4] == [("A", "B"), ("A", "C"), ("B", "C")]
    sub = frame[frame["structure"] == "femur"]
    groups = {m: sub.loc[sub["method"] == m, "dice"].to_numpy() for m in "ABC"}
    kw = femur.iloc[0]
    assert kw["pvalue"] == pytest.approx(kruskal_wallis(groups).pvalue)
    assert kw["p_adjusted"] == kw["pvalue"] and kw["n"] == 35
    d = femur[femur["test"] == "dunn"]
    expected = [dunn(groups).loc[a, b] for a, b in zip(d["method_a"], d["method_b"], strict=True)]
    np.testing.assert_allclose(d["p_adjusted"], expected)
    assert (d["statistic"] > 0).all()  # A ranks above B above C
    w = femur[femur["test"] == "wilcoxon"]
    np.testing.assert_allclose(w["p_adjusted"], adjust_pvalues(w["pvalue"].to_numpy(), "holm"))
    assert list(w["n"]) == [11, 11, 12]
    assert out["significant"].dtype == bool and out["significant"].all()
    assert out.attrs == {"p_adjust": "holm", "alpha": 0.05}


def test_compare_methods_dunn_statistic_is_hand_z() -> None:
    rows = [{"method": m, "subject": f"s{i}", "structure": "femur", "dice": v}
            for m, vals in GROUPS.items() for i, v in enumerate(vals)]
    out = compare_methods(pd.DataFrame(rows), "dice", p_adjust="none")
    d = out[out["test"] == "dunn"].reset_index(drop=True)
    hand = _dunn_by_hand(GROUPS, z_only=True)
    assert list(d["method_a"]) == list(hand["a"]) and list(d["method_b"]) == list(hand["b"])
    np.testing.assert_allclose(d["statistic"], hand["z"], rtol=1e-12)
    np.testing.assert_allclose(d["pvalue"], 2 * sstats.norm.sf(np.abs(hand["z"])), rtol=1e-10)
    np.testing.assert_allclose(d["p_adjusted"], d["pvalue"])
    assert list(d["n"]) == [9, 10, 9]


def test_compare_methods_selection_and_errors() -> None:
    frame = _frame({"A": 0.9, "B": 0.8, "C": 0.7}, structures=("femur",))
    out = compare_methods(frame, "dice", methods=["C", "A"], p_adjust="none")
    assert set(out["method_a"]) | set(out["method_b"]) == {"", "C", "A"}
    empty = compare_methods(frame, "dice", methods=["A"])
    assert empty.empty and list(empty.columns) == list(COMPARISON_COLUMNS)
    with pytest.raises(ValueError, match="duplicate"):
        compare_methods(pd.concat([frame, frame.iloc[:1]]), "dice")
    with pytest.raises(ValueError, match="lacks"):
        compare_methods(frame, "hd95_mm")


def _comparisons(kw_p: float, dunn_p: float, wil_p: float, alpha: float = 0.05) -> pd.DataFrame:
    rows = [("kruskal", "", "", kw_p), ("dunn", "A", "B", dunn_p), ("wilcoxon", "A", "B", wil_p)]
    return pd.DataFrame([{"structure": "femur", "metric": "dice", "test": t, "method_a": a, "method_b": b,
                          "statistic": 1.0, "pvalue": p, "p_adjusted": p, "significant": p < alpha, "n": 10,
                          "reason": ""} for t, a, b, p in rows])


def test_significance_rules() -> None:
    both = _comparisons(0.01, 0.02, 0.5)
    assert significance(both, "femur", "B", "A", n_methods=3) is True
    assert significance(both, "femur", "A", "B", n_methods=2) is False  # Wilcoxon decides
    assert significance(_comparisons(0.2, 0.001, 0.001), "femur", "A", "B", n_methods=3) is False
    assert significance(_comparisons(np.nan, 0.001, 0.001), "femur", "A", "B", n_methods=3) is None
    assert significance(_comparisons(0.01, 0.01, np.nan), "femur", "A", "B", n_methods=2) is None
    assert significance(both, "femur", "A", "Z", n_methods=3) is None
    assert significance(both, "tibia", "A", "B", n_methods=3) is None


# --- power law --------------------------------------------------------------------------


def test_power_law_recovers_exact_data() -> None:
    n = np.array([5, 10, 20, 40, 80, 160], dtype=float)
    fit = power_law_fit(n, 0.55 * n**0.12)
    assert fit.a == pytest.approx(0.55, rel=1e-6)
    assert fit.b == pytest.approx(0.12, rel=1e-6)
    assert abs(fit.r2 - 1.0) < 1e-9
    assert fit.n_points == 6
    np.testing.assert_allclose(fit.predict([1.0, 100.0]), [fit.a, fit.a * 100**fit.b])


def test_power_law_noisy_r2_by_hand_and_linear_least_squares() -> None:
    n = np.array([4, 4, 8, 8, 16, 16, 32, 32, 64], dtype=float)
    y = np.array([0.62, 0.66, 0.71, 0.69, 0.74, 0.77, 0.80, 0.78, 0.83])
    fit = power_law_fit(n, y)
    curve = fit.a * n**fit.b
    ss_res = np.sum((y - curve) ** 2)
    assert fit.r2 == pytest.approx(1 - ss_res / np.sum((y - y.mean()) ** 2), rel=1e-12)
    assert 0.8 < fit.r2 < 1.0
    # a minimum of the squared error in linear space: nudging either parameter makes it worse
    for da, db in [(1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)]:
        assert np.sum((y - (fit.a + da) * n ** (fit.b + db)) ** 2) > ss_res


@pytest.mark.parametrize("n, y, match", [
    ([10, 10, 10], [0.7, 0.8, 0.75], "distinct"),
    ([10, 20], [0.7, 0.0], "positive"),
    ([0, 20], [0.7, 0.8], "positive"),
    ([10, 20, 30], [0.7, 0.8], "length"),
    ([10, 20], [0.7, np.nan], "finite"),
])
def test_power_law_rejects_bad_input(n: list, y: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        power_law_fit(n, y)


@pytest.mark.parametrize("method", ["holm", "bonferroni", "fdr_bh"])
def test_adjust_pvalues_equals_statsmodels_multipletests(method: str) -> None:
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(7)
    for n in (2, 3, 7, 20):
        p = rng.uniform(0, 0.2, n)
        p[0] = p[1]  # a tie
        np.testing.assert_allclose(adjust_pvalues(p, method), multipletests(p, method=method)[1], rtol=0, atol=1e-15)
