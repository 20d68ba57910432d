"""Display tables: number formatting, best-per-column bolding, and Markdown / HTML rendering.

A `Table` holds already formatted cells so the Markdown and the HTML versions of a table show the same text.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

MISSING = "–"


@dataclass
class Cell:
    text: str
    bold: bool = False
    note: str | None = None  # why a value is missing; rendered as a numbered footnote
    ci: str | None = None  # "[lo, hi]", shown after the value (Markdown) or under it (HTML)

    def plain(self) -> str:
        return f"{self.text} {self.ci}" if self.ci else self.text


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]
    align: list[str]  # "l" or "r" per column
    notes: list[str] = field(default_factory=list)  # extra lines printed under the table

    def footnotes(self) -> list[str]:
        """Distinct missing-value reasons in reading order (index + 1 is the footnote number)."""
        seen: list[str] = []
        for row in self.rows:
            for cell in row:
                if cell.note and cell.note not in seen:
                    seen.append(cell.note)
        return seen


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_number(value: float) -> str:
    """Two decimals; three significant digits for small magnitudes (e.g. 0.0123 s)."""
    value = float(value)
    if value != 0 and abs(value) < 0.1:
        return f"{value:.3g}"
    return f"{value:.2f}"


def fmt_value(value) -> str:
    """'15.81', or the missing mark."""
    return MISSING if is_missing(value) else fmt_number(value)


def fmt_ci(ci) -> str | None:
    """'[14.20, 17.50]', or None when there is no complete interval."""
    if ci is None or len(ci) != 2 or any(is_missing(c) for c in ci):
        return None
    return f"[{fmt_number(ci[0])}, {fmt_number(ci[1])}]"


def fmt_delta(value) -> str:
    return MISSING if is_missing(value) else ("+" if value >= 0 else "−") + fmt_number(abs(value))


def best_rows(values: list, better: str | None) -> set[int]:
    """Indices of the best value(s) at display precision; `better` is "min", "max" or None (no best)."""
    shown = [(i, float(fmt_number(v))) for i, v in enumerate(values) if not is_missing(v)]
    if better is None or len(shown) < 2:
        return set()
    target = (min if better == "min" else max)(v for _, v in shown)
    return {i for i, v in shown if v == target}


def _cell_md(cell: Cell, footnotes: list[str]) -> str:
    text = cell.text.replace("|", "\\|")
    if cell.bold:
        text = f"**{text}**"
    if cell.ci:
        text += f" {cell.ci}"
    if cell.note:
        text += f" [{footnotes.index(cell.note) + 1}]"
    return text


def to_markdown(table: Table) -> str:
    """GitHub-flavoured Markdown table, footnotes for missing values, then the table's notes."""
    footnotes = table.footnotes()
    cells = [[_cell_md(c, footnotes) for c in row] for row in table.rows]
    widths = [max([len(h)] + [len(r[j]) for r in cells]) for j, h in enumerate(table.headers)]

    def line(parts: list[str]) -> str:
        padded = [
            p.rjust(w) if a == "r" else p.ljust(w) for p, w, a in zip(parts, widths, table.align, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2))
            for w, a in zip(widths, table.align, strict=True)
        )
        + "|"
    )
    out = [line(table.headers), rule] + [line(r) for r in cells]
    if footnotes or table.notes:
        out.append("")
        out += [f"[{i}] {note}" for i, note in enumerate(footnotes, 1)]
        out += table.notes
    return "\n".join(out) + "\n"


def to_html(table: Table, css_class: str = "table", table_id: str | None = None) -> str:
    """A static <table> (every string escaped); missing values carry their reason as a footnote and tooltip."""
    esc = html.escape
    footnotes = table.footnotes()
    tid = f' id="{esc(table_id)}"' if table_id else ""
    out = [f'<table class="{esc(css_class)}"{tid}>', "<thead><tr>"]
    out += [f'<th class="{a}">{esc(h)}</th>' for h, a in zip(table.headers, table.align, strict=True)]
    out.append("</tr></thead><tbody>")
    for row in table.rows:
        tds = []
        for j, (cell, align) in enumerate(zip(row, table.align, strict=True)):
            text = esc(cell.text)
            if cell.bold:
                text = f"<strong>{text}</strong>"
            if cell.ci:
                text += f'<span class="ci">{esc(cell.ci)}</span>'
            title = ""
            if cell.note:
                n = footnotes.index(cell.note) + 1
                text += f'<sup class="fn">{n}</sup>'
                title = f' title="{esc(cell.note)}"'
            tag = "th" if j == 0 else "td"
            scope = ' scope="row"' if j == 0 else ""
            tds.append(f'<{tag}{scope} class="{align}"{title}>{text}</{tag}>')
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table>")
    if footnotes:
        out.append(
            '<ol class="footnotes">' + "".join(f"<li>{esc(note)}</li>" for note in footnotes) + "</ol>"
        )
    out += [f'<p class="note">{esc(note)}</p>' for note in table.notes]
    return "\n".join(out)
