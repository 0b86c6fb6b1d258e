"""The README's pictures, made from a finished demo run (``make demo``, then ``make docs-images``).

    python tools/docs_images.py [--run .] [--out docs/images]

* ``rulegraph.svg``: Snakemake's ``--rulegraph`` of the run folder, rendered by Graphviz ``dot``
  (Debian's ``graphviz``). In a finished run the checkpoints are known, so every rule the demo runs
  is drawn (the demo has no three-plane method and no training-size study: ``fit_fusion`` and
  ``training_size_study`` are not in it).
* ``knee_segmentation.png``: one knee test subject of the demo, a sagittal slice through the femoral
  cartilage with the reference and the trained 2D U-Net's prediction, and the subject's Dice.
* ``report_gallery.png``: the run's ``results/report.html`` in headless Chromium, opened at the hip's overlay
  gallery on its worst case (Debian's ``chromium``; :mod:`headless_chromium` clicks as a reader would).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))


def rulegraph(run: Path, out: Path) -> Path:
    """The rule graph of the run folder as SVG."""
    dot = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--rulegraph",
                          "--quiet", "all"], cwd=run,
                          text=True, encoding="utf-8", errors="replace", capture_output=True, check=True).stdout
    dot = dot[dot.index("digraph"):]
    svg = subprocess.run(["dot", "-Tsvg"], input=dot,
                         text=True, encoding="utf-8", errors="replace", capture_output=True, check=True).stdout
    path = out / "rulegraph.svg"
    path.write_text(svg, encoding="utf-8")
    return path


def knee_figure(run: Path, out: Path, method: str = "shapefit") -> Path:
    """Reference and prediction contours on a sagittal slice of the first scored knee subject."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from mskseg.io import read_volume
    from mskseg.io.tables import read_table

    metrics = read_table(run / "results" / "evaluation" / "knee" / f"method-{method}_metrics.csv")
    subject = str(metrics["subject"].iloc[0])
    dice = metrics[metrics["subject"] == subject].set_index("structure")["dice"]
    volume = read_volume(run / "results" / "preprocess" / "knee" / f"sub-{subject}_image.nii.gz")
    image, aspect = volume.array, volume.spacing[2] / volume.spacing[1]  # rows: array axis 2, columns: axis 1
    ref = read_volume(run / "results" / "preprocess" / "knee" / f"sub-{subject}_mask.nii.gz").array
    pred = read_volume(run / "results" / "predictions" / "knee" / f"sub-{subject}_method-{method}_pred.nii.gz").array
    cartilage = (ref == 2).sum(axis=(1, 2))  # the slice (array axis 0) with the most femoral cartilage
    k = int(np.argmax(cartilage))
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 4.2), constrained_layout=True)
    names = {1: "femur", 2: "femoral cartilage", 3: "tibia", 4: "tibial cartilage"}
    colours = {1: "tab:blue", 2: "tab:orange", 3: "tab:green", 4: "tab:red"}
    for ax, labels, title in ((axes[0], ref, "reference"), (axes[1], pred, f"{method} (trained in the demo)")):
        ax.imshow(image[k].T, cmap="gray", origin="lower", aspect=aspect)
        for value, colour in colours.items():
            if (labels[k] == value).any():
                ax.contour((labels[k] == value).T.astype(float), levels=[0.5], colors=colour, linewidths=1.0)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    text = ", ".join(f"{names[v]} {dice[n]:.2f}" for v, n in
                     ((1, "femur"), (2, "femoral_cartilage"), (3, "tibia"), (4, "tibial_cartilage")))
    fig.suptitle(f"demo knee phantom {subject}, sagittal slice {k}; Dice: {text}", fontsize=9)
    path = out / "knee_segmentation.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def report_figure(run: Path, out: Path) -> Path:
    """A screenshot of the report at the hip's overlay gallery (the first, worst case shown)."""
    sys.path.insert(0, str(REPO / "tools"))
    from headless_chromium import probe_copy, screenshot

    page = probe_copy(run / "results" / "report.html", ["Overlays", "hip"], out)
    try:
        return screenshot(page, out / "report_gallery.png")
    finally:
        page.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=REPO, help="a folder holding a finished demo run")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in (rulegraph(args.run, args.out), knee_figure(args.run, args.out), report_figure(args.run, args.out)):
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
