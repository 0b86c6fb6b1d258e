"""Open a Snakemake report in headless Chromium as a reader would, for the report test.

``install()`` puts Debian's ``chromium`` on the machine when it is missing (root and apt-get: what CI has;
``../shared/notes/headless-chromium.md``). :func:`browse_report` loads a copy of the report with a small script
added that, once the page has rendered, records the menu's section names, clicks one section and then its
first entry's view button (as a reader would), and leaves the result in the DOM that Chromium dumps:
``#probe-menu`` holds the menu text before the clicks, the rest of the DOM is the page after them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")

_PROBE = """
<script>
window.addEventListener("load", function () {
  function click(el) { el.dispatchEvent(new MouseEvent("click", {bubbles: true, cancelable: true})); }
  function byText(text) {
    return Array.from(document.querySelectorAll("a, li, span, div"))
      .filter(function (el) { return el.childElementCount <= 2 && el.textContent.trim() === text; });
  }
  setTimeout(function () {
    var seen = document.createElement("pre"); seen.id = "probe-menu";
    var nav = document.querySelector("nav");
    seen.textContent = nav ? nav.innerText : document.body.innerText;
    document.body.appendChild(seen);
    var steps = SECTION.slice();
    function next() {
      if (!steps.length) { return view(); }
      var found = byText(steps.shift());
      if (found.length) { click(found[found.length - 1]); }
      setTimeout(next, 1500);
    }
    function view() {
      var names = Array.from(document.querySelectorAll("a")).filter(function (a) {
        return a.getAttribute("href") === "#" && a.closest("table"); });
      if (names.length) { click(names[0]); }
      setTimeout(function () {
        var done = document.createElement("pre"); done.id = "probe-done"; done.textContent = String(names.length);
        document.body.appendChild(done);
      }, 1500);
    }
    next();
  }, 1500);
});
</script>
"""


class BrowserError(RuntimeError):
    """Chromium is missing and cannot be installed, or did not render the page."""


def find_browser() -> str | None:
    """The first headless-capable browser on PATH."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def install() -> str:
    """The browser's path, after ``apt-get install chromium`` when none is there (needs root and apt-get)."""
    found = find_browser()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BrowserError("no chromium on PATH and it cannot be installed here (needs root and apt-get); "
                           "install Debian's `chromium` package")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, encoding="utf-8", errors="replace",
                                check=False)
        if result.returncode != 0:
            raise BrowserError(f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    found = find_browser()
    if not found:
        raise BrowserError("apt-get installed chromium but no browser is on PATH")
    return found


def dump_dom(page: Path, *, browser: str | None = None, budget_ms: int = 15000, timeout_s: int = 120) -> str:
    """The DOM of ``page`` after its scripts ran for ``budget_ms`` of virtual time."""
    exe = browser or install()
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", f"--virtual-time-budget={budget_ms}",
           "--dump-dom", page.resolve().as_uri()]
    result = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=timeout_s,
                            check=False)
    if result.returncode != 0 or "<html" not in result.stdout.lower():
        raise BrowserError(f"chromium failed on {page} (exit {result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def probe_copy(report: Path, clicks: list[str], workdir: Path) -> Path:
    """A copy of ``report`` in ``workdir`` with the probe script: once rendered, it clicks the menu entries named
    ``clicks`` in turn (a section, then a subsection), then the first listed result's view button."""
    text = report.read_text(encoding="utf-8")
    probe = _PROBE.replace("SECTION", json.dumps(list(clicks)))
    at = text.rfind("</body>")
    if at < 0:
        raise BrowserError(f"{report}: no </body>; not an HTML report")
    copy = workdir / f"probe-{report.name}"
    copy.write_text(text[:at] + probe + text[at:], encoding="utf-8")
    return copy


def browse_report(report: Path, clicks: list[str], workdir: Path, *, browser: str | None = None) -> str:
    """The DOM after opening :func:`probe_copy` of ``report`` (the clicks done)."""
    return dump_dom(probe_copy(report, clicks, workdir), browser=browser)


def screenshot(page: Path, png: Path, *, browser: str | None = None, size: tuple[int, int] = (1400, 1000),
               budget_ms: int = 15000, timeout_s: int = 120) -> Path:
    """A PNG of ``page`` after its scripts ran for ``budget_ms`` of virtual time."""
    exe = browser or install()
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", f"--virtual-time-budget={budget_ms}",
           f"--window-size={size[0]},{size[1]}", f"--screenshot={png.resolve()}", page.resolve().as_uri()]
    result = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=timeout_s,
                            check=False)
    if result.returncode != 0 or not png.exists():
        raise BrowserError(f"chromium made no screenshot of {page} (exit {result.returncode}): {result.stderr[-2000:]}")
    return png


__all__ = ["BrowserError", "browse_report", "dump_dom", "find_browser", "install", "probe_copy", "screenshot"]
