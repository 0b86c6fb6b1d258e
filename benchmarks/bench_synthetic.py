"""Generation time and peak memory of synthetic subjects (mskseg.synthetic).

Usage::

    python benchmarks/bench_synthetic.py            # all four cases, each in a fresh process
    python benchmarks/bench_synthetic.py knee-oai   # one case

Peak memory is the process's maximum resident set size (``resource.getrusage``), so each
case runs in its own subprocess. The landmark template (built once per process and kind,
then cached) is timed separately: a first subject costs ``template s + subject s``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

CASES = {
    "knee-demo": ("knee", None, None),
    "knee-oai": ("knee", (160, 384, 384), (0.7, 0.3646, 0.3646)),
    "hip-demo": ("hip", None, None),
    "hip-large": ("hip", (415, 244, 266), (0.78, 0.77, 0.96)),
}


def run_case(name: str) -> dict:
    """Generate one subject and return timing and memory figures."""
    from mskseg.synthetic import generate_subject
    from mskseg.synthetic.landmarks import template

    kind, shape, spacing = CASES[name]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tt = time.perf_counter()
    template(kind, 200)
    t0 = time.perf_counter()
    s = generate_subject(kind, 0, shape=shape, spacing=spacing)
    t1 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "case": name,
        "shape": list(s.image.shape),
        "spacing": list(s.image.spacing),
        "voxels_M": round(s.image.array.size / 1e6, 2),
        "template_seconds": round(t0 - tt, 2),
        "seconds": round(t1 - t0, 2),
        "peak_rss_MiB": round(peak / 1024, 1),
        "rss_before_MiB": round(base / 1024, 1),
        "landmarks": len(s.landmarks),
    }


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--child":
        print(json.dumps(run_case(argv[1])))
        return
    names = argv or list(CASES)
    print(f"{'case':<10} {'shape':<16} {'Mvox':>6} {'template s':>10} {'subject s':>9} {'peak RSS MiB':>13}")
    for name in names:
        out = subprocess.run([sys.executable, __file__, "--child", name], capture_output=True,
                             text=True, encoding="utf-8", errors="replace", check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        shape = "x".join(str(n) for n in r["shape"])
        print(f"{r['case']:<10} {shape:<16} {r['voxels_M']:>6} {r['template_seconds']:>10} "
              f"{r['seconds']:>9} {r['peak_rss_MiB']:>13}")


if __name__ == "__main__":
    main(sys.argv[1:])
