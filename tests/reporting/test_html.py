"""The report's HTML pages: tables a reader sees as tables, everything escaped."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from mskseg.reporting.html import frame_html, html_document, markdown_html, markdown_page


def _cells(table: str) -> list[list[str]]:
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)
    return [re.findall(r"<t[hd]>(.*?)</t[hd]>", row, re.S) for row in rows]


def test_markdown_tables_keep_escaped_bars_bold_and_code_and_paragraphs() -> None:
    text = ("| method | \\|E\\| test | Dice |\n|---|---|---|\n| a | 3 | **0.9 ± 0.1** |\n| b | 4 | 0.8 † |\n\n"
            "Bold: best; `all` is the mean.\nSecond line.")
    out = markdown_html(text)
    assert _cells(out) == [["method", "|E| test", "Dice"], ["a", "3", "<b>0.9 ± 0.1</b>"], ["b", "4", "0.8 †"]]
    assert '<p class="note">Bold: best; <code>all</code> is the mean. Second line.</p>' in out


def test_markup_in_the_text_is_escaped() -> None:
    out = markdown_html("| x |\n|---|\n| <script>alert(1)</script> |")
    assert "<script>" not in out and "&lt;script&gt;" in out
    frame = pd.DataFrame({"subject": ["<img src=x>"], "v": [1.5]})
    assert "<img" not in frame_html(frame)
    assert "<h2>a &amp; b</h2>" in html_document("a & b", "")


def test_short_rows_are_padded_and_a_page_takes_its_title_from_the_first_line() -> None:
    out = markdown_html("| a | b | c |\n|---|---|---|\n| 1 |")
    assert _cells(out)[1] == ["1", "", ""]
    page = markdown_page("knee: Dice\n\n| a |\n|---|\n| 1 |\n")
    assert "<title>knee: Dice</title>" in page and _cells(page) == [["a"], ["1"]]


def test_frames_format_floats_blank_nan_flag_rows_and_say_when_empty() -> None:
    frame = pd.DataFrame({"s": ["x", "y"], "v": [0.12345, math.nan], "n": [3, 4]})
    out = frame_html(frame, decimals=2, flag=[False, True])
    assert _cells(out) == [["s", "v", "n"], ["x", "0.12", "3"], ["y", "", "4"]]
    assert out.count('<tr class="flag">') == 1 and '<tr class="flag"><td>y</td>' in out
    assert "(no rows)" in frame_html(frame.iloc[:0])
    with pytest.raises(ValueError, match="flag has 1 entries for 2 rows"):
        frame_html(frame, flag=[True])
