"""Standalone HTML pages for the Snakemake report: tables a reader sees as tables, not as files to download.

Snakemake's report shows an HTML result inline and offers any other text file as a download, so the report's
tables are written as small self-contained pages (no scripts, no external files): :func:`html_document`
wraps a body, :func:`frame_html` renders a table, :func:`markdown_html` the Markdown this package writes
(title lines, paragraphs, pipe tables with ``\\|`` escapes, ``**bold**`` and ```code```). Everything is
escaped: a subject id or a structure name can never inject markup.

===============================  ==========================================================
input                            output
===============================  ==========================================================
empty table                      the header row and a row saying "(no rows)"
NaN / None cell                  an empty cell
a Markdown line that is no table  a paragraph (consecutive lines joined)
a table row with too few cells   padded with empty cells (too many: kept)
===============================  ==========================================================
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence

import pandas as pd

STYLE = """
body { font-family: sans-serif; font-size: 14px; margin: 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
tr.flag td { background: #fff0f0; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 12px; }
p.note { color: #555; max-width: 60em; }
"""


def html_document(title: str, body: str) -> str:
    """A complete page: ``title`` as heading (escaped), ``body`` as given (already HTML)."""
    t = html.escape(title)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style>"
            f"</head><body>\n<h2>{t}</h2>\n{body}\n</body></html>\n")


def _cell(value: object, decimals: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return html.escape(str(value))


def frame_html(frame: pd.DataFrame, *, decimals: int = 3, flag: Sequence[bool] | None = None) -> str:
    """``frame`` as an HTML table (index dropped); floats with ``decimals``; rows where ``flag`` is true are
    shaded (``tr.flag``)."""
    if flag is not None and len(flag) != len(frame):
        raise ValueError(f"flag has {len(flag)} entries for {len(frame)} rows")
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cls = ' class="flag"' if flag is not None and flag[i] else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{_cell(v, decimals)}</td>" for v in row) + "</tr>")
    if not rows:
        rows.append(f'<tr><td colspan="{max(1, len(frame.columns))}">(no rows)</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>"


def _inline(text: str) -> str:
    """Escape, then ``**bold**`` and ```code``` (the only inline Markdown this package writes)."""
    out = html.escape(text.replace("\\|", "|"))
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def _cells(line: str) -> list[str]:
    """The cells of a pipe-table row; ``\\|`` is a literal bar."""
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [c.strip() for c in re.split(r"(?<!\\)\|", body)]


def _is_rule(line: str) -> bool:
    return bool(re.fullmatch(r"\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?", line.strip()))


def _table(lines: list[str]) -> str:
    header = _cells(lines[0])
    body = [_cells(line) for line in lines[2:]]
    head = "".join(f"<th>{_inline(c)}</th>" for c in header)
    rows = ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r + [""] * (len(header) - len(r))) + "</tr>"
            for r in body]
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>"


def markdown_html(text: str) -> str:
    """The Markdown this package writes as HTML: pipe tables (a header row, a ``---`` rule, rows) and paragraphs
    (blank-line separated)."""
    lines = text.splitlines()
    parts: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            parts.append('<p class="note">' + _inline(" ".join(paragraph)) + "</p>")
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("|") and i + 1 < len(lines) and _is_rule(lines[i + 1]):
            flush()
            j = i + 2
            while j < len(lines) and lines[j].strip().startswith("|"):
                j += 1
            parts.append(_table(lines[i:j]))
            i = j
            continue
        if line.strip():
            paragraph.append(line.strip())
        else:
            flush()
        i += 1
    flush()
    return "\n".join(parts)


def markdown_page(text: str) -> str:
    """A Markdown file of this package as a page: its first line the title, the rest the body."""
    lines = text.strip("\n").splitlines()
    title = lines[0].strip() if lines else ""
    return html_document(title, markdown_html("\n".join(lines[1:])))


__all__ = ["frame_html", "html_document", "markdown_html", "markdown_page"]
