"""The training-set-size study of Desai et al.: a power law y = a n^b of accuracy against training subjects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from mskseg.stats import PowerLawFit, power_law_fit


def training_size_fits(frame: pd.DataFrame, sizes: Mapping[str, int], metrics: Sequence[str]
                       ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict[str, dict[str, PowerLawFit]]]:
    """Fit ``metric = a * n_train^b`` per structure to the methods of the study.

    ``frame`` is a metrics frame (method, subject, structure, metric columns); ``sizes`` maps
    each method of the study to its number of training subjects. The fit uses one point per
    method, the mean over its test subjects, as Desai et al. plot them; R^2 is that of those
    means. Returns the fit table (structure, metric, a, b, r2, n_points, then the means per
    size), the per-subject points per metric (columns series = structure, n_train, metric) and
    the fits per metric and structure. A structure with fewer than two sizes gets no fit.
    """
    sub = frame[frame["method"].isin(list(sizes))].assign(n_train=lambda f: f["method"].map(sizes))
    if sub.empty:
        raise ValueError(f"no metrics of the study's methods {list(sizes)}")
    rows, points, fits = [], {}, {}
    for metric in metrics:
        points[metric] = sub[["structure", "n_train", metric]].rename(columns={"structure": "series"})
        fits[metric] = {}
        for structure, part in sub.groupby("structure", sort=False):
            means = part.groupby("n_train")[metric].mean().dropna()
            row = {"structure": structure, "metric": metric, "a": float("nan"), "b": float("nan"),
                   "r2": float("nan"), "n_points": len(means)}
            try:
                fit = power_law_fit(means.index.to_numpy(float), means.to_numpy(float))
            except ValueError as err:
                row["note"] = str(err)
            else:
                fits[metric][structure] = fit
                row.update({"a": fit.a, "b": fit.b, "r2": fit.r2, "note": ""})
            row.update({f"mean_n{int(n)}": v for n, v in means.items()})
            rows.append(row)
    return pd.DataFrame(rows), points, fits
