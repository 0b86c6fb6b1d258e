"""The loopback SLURM's helper decodes external programs' output whatever the locale (apt under LANG=C)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

#: a program that prints UTF-8 and a byte that is no text at all, as apt's progress output can
NOISY = r"import sys; sys.stdout.buffer.write('Param\u00e8tres \u2713 '.encode() + bytes([255]) + b'\n')"


def test_output_is_decoded_safely_under_an_ascii_locale() -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import slurm_loopback; "
            f"out = slurm_loopback._run([sys.executable, '-c', {NOISY!r}]).stdout; "
            "print(ascii(out))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONUTF8", "PYTHONIO"))}
    env.update(LANG="C", LC_ALL="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0")  # a plain ASCII locale
    result = subprocess.run([sys.executable, "-c", code, str(REPO / "tools")], env=env, capture_output=True,
                            check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert "Param\\xe8tres \\u2713 \\ufffd" in result.stdout.decode("ascii")
