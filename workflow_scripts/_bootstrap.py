"""Put ``<repo>/src`` on ``sys.path`` so that rule scripts import :mod:`mskseg` in any env.

Snakemake blocks ``PYTHONPATH`` in conda jobs but puts this folder on ``sys.path``; every
script starts with ``import _bootstrap``.
"""

import sys
from pathlib import Path

_SRC = str(Path(__file__).resolve().parent.parent / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)
