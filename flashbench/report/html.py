"""Static index.html: tables, plots, gallery and provenance; inline CSS, no JavaScript, every string escaped."""

from __future__ import annotations

import html
from pathlib import Path

from flashbench.report.gallery import Gallery
from flashbench.report.leaderboard import LABELS
from flashbench.report.protocol import protocol_lines
from flashbench.report.runs import RunRecord
from flashbench.report.tables import Table, to_html

CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#f6f8fa; --accent:#0b5cad; --warn:#9a3412; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.5 -apple-system,"Segoe UI",Helvetica,Arial,"DejaVu Sans",sans-serif; color:var(--fg);
       background:#fff; }
header { background:#0f2540; color:#fff; padding:22px 0 18px; }
header h1 { margin:0; font-size:22px; font-weight:600; letter-spacing:.2px; }
header p { margin:4px 0 0; color:#c9d6e3; font-size:13px; }
header p.protocol { font-size:12px; margin:2px 0 0; }
main, .wrap { max-width:1180px; margin:0 auto; padding:0 24px; }
section { margin:28px 0; }
h2 { font-size:18px; border-bottom:1px solid var(--line); padding-bottom:6px; margin:0 0 12px; }
h3 { font-size:15px; margin:18px 0 8px; }
.table { border-collapse:collapse; font-variant-numeric:tabular-nums; width:100%; margin:4px 0 8px;
         font-size:13px; }
.table th, .table td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); white-space:nowrap; }
.table thead th { background:var(--bg); border-bottom:2px solid var(--line); font-weight:600; }
.table tbody tr:nth-child(even) { background:#fbfcfd; }
.table tbody th { font-weight:500; text-align:left; }
.table .r { text-align:right; } .table .l { text-align:left; }
.table strong { color:var(--accent); }
.table .ci { display:block; color:var(--muted); font-size:11px; line-height:1.2; }
.scroll { overflow-x:auto; }
.grid { display:grid; grid-template-columns:repeat(auto-fit,minmax(540px,1fr)); gap:4px 32px; }
sup.fn { color:var(--muted); margin-left:2px; }
ol.footnotes, p.note, p.caption { color:var(--muted); font-size:12px; margin:4px 0; }
ol.footnotes { padding-left:20px; }
.warning { background:#fff4e5; border:1px solid #f5c58a; color:var(--warn); padding:10px 14px; border-radius:6px;
           font-weight:600; }
figure { margin:0 0 16px; }
figure img { max-width:100%; border:1px solid var(--line); border-radius:4px; }
figcaption { color:var(--muted); font-size:12px; margin-top:4px; }
.sample { border:1px solid var(--line); border-radius:6px; padding:12px 14px; margin:0 0 14px; }
.sample h4 { margin:0 0 2px; font-size:14px; }
.sample .prompt { color:var(--muted); font-size:12px; margin:0 0 8px; }
.strip { display:grid; grid-template-columns:190px 1fr; gap:10px; align-items:center; margin:4px 0; }
.strip .label { font-size:12px; font-weight:600; overflow-wrap:anywhere; }
.strip img { height:96px; max-width:100%; object-fit:contain; object-position:left; display:block; }
.strip .missing { color:var(--warn); font-size:12px; }
.strip .label small { display:block; font-weight:400; color:var(--muted); }
footer { border-top:1px solid var(--line); background:var(--bg); margin-top:36px; padding:16px 0 28px;
         color:var(--muted); font-size:12px; }
footer .table { font-size:12px; background:#fff; }
code { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12px; }
"""


def _esc(value) -> str:
    return html.escape("" if value is None else str(value))


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{_esc(anchor)}"><h2>{_esc(title)}</h2>\n{body}\n</section>'


def _gallery_html(gallery: Gallery) -> str:
    parts = [f'<p class="note">{_esc(n)}</p>' for n in gallery.notes]
    if gallery.items:
        parts.insert(
            0,
            '<p class="caption">Coloured outlines: target masks from the benchmark. Translucent fills: '
            "masks tracked by the segmenter in the generated video.</p>",
        )
    group = None
    for item in gallery.items:
        if item.group != group:
            group = item.group
            parts.append(f"<h3>{_esc(group)} object{'s' if group != '1' else ''}</h3>")
        frames = ", ".join(str(i) for i in item.frame_indices)
        parts.append(
            f'<div class="sample"><h4>{_esc(item.sample_id)}</h4>'
            f'<p class="prompt">{_esc(item.object_count)} object{"s" if item.object_count != 1 else ""} · frames {_esc(frames)} · '
            f"“{_esc(item.prompt)}”</p>"
        )
        for strip in item.strips:
            note = f"<small>{_esc(strip.note)}</small>" if strip.note else ""
            body = (
                f'<img src="{_esc(strip.image)}" alt="{_esc(strip.label)}: {_esc(item.sample_id)}" loading="lazy">'
                if strip.image
                else f'<span class="missing">not drawn: {_esc(strip.note)}</span>'
            )
            if not strip.image:
                note = ""
            parts.append(
                f'<div class="strip"><div class="label">{_esc(strip.label)}{note}</div><div>{body}</div></div>'
            )
        parts.append("</div>")
    return "\n".join(parts)


def _provenance_html(runs: list[RunRecord], provenance: dict) -> str:
    headers = ["Run", "Generator", "Condition", "Seed", "Bench hash", "Git commit", "Created", "Failed"]
    rows = []
    for run in runs:
        info = run.info()
        commit = (info["git_commit"] or "")[:10] + (" (dirty)" if info["git_dirty"] else "")
        cells = [
            info["name"],
            info["generator"],
            info["condition"],
            info["seed"],
            (info["bench_hash"] or "")[:12],
            commit,
            info["created"],
            info["errors"],
        ]
        rows.append(
            "<tr>"
            + "".join(
                f"<td><code>{_esc(c)}</code></td>" if i in (4, 5) else f"<td>{_esc(c)}</td>"
                for i, c in enumerate(cells)
            )
            + "</tr>"
        )
    table = (
        '<div class="scroll"><table class="table"><thead><tr>'
        + "".join(f"<th>{_esc(h)}</th>" for h in headers)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
    )
    packages = ", ".join(f"{k} {v}" for k, v in (provenance.get("packages") or {}).items() if v)
    dirty = " (uncommitted changes)" if provenance.get("git_dirty") else ""
    report = (
        f"Report generated {_esc(provenance.get('created'))} by flashbench {_esc(provenance.get('flashbench_version'))}"
        f" (commit <code>{_esc((provenance.get('git_commit') or 'unknown')[:10])}</code>{dirty}), "
        f"Python {_esc(provenance.get('python'))}; {_esc(packages)}."
    )
    return f'<div class="wrap"><h3>Provenance</h3>{table}<p>{report}</p></div>'


def render_index(
    out: Path,
    runs: list[RunRecord],
    leaderboard: Table,
    group_tables: dict[str, Table],
    plots: dict[str, Path],
    gallery: Gallery,
    provenance: dict,
    compare: Table | None = None,
    warning: str | None = None,
) -> Path:
    """Write `out`/index.html and return its path. Paths in `plots` are made relative to `out`."""
    out = Path(out)
    bench = runs[0].info()
    subtitle = (
        f"Benchmark {_esc(bench['bench_name'] or '?')} · content hash <code>{_esc((bench['bench_hash'] or '?')[:12])}"
        f"</code> · {len(runs)} run{'s' if len(runs) != 1 else ''} · generated {_esc(provenance.get('created'))}"
    )
    protocol = "".join(f'<p class="protocol">{_esc(line)}</p>' for line in protocol_lines(runs))
    body = []
    if warning:
        body.append(f'<p class="warning" role="alert">{_esc(warning)}</p>')
    body.append(
        _section(
            "Leaderboard",
            '<div class="scroll">'
            + to_html(leaderboard, table_id="leaderboard")
            + '</div><p class="caption">Mean over scored samples, 95% bootstrap CI in brackets; '
            "best per column in bold. ObjMC in pixels. s = denoising seconds per video. Tracker ceiling: the "
            "benchmark's real videos scored with the same segmenter.</p>",
            "leaderboard",
        )
    )
    if compare is not None:
        body.append(
            _section(
                "Ablation vs base",
                '<div class="scroll">' + to_html(compare, table_id="compare") + "</div>",
                "compare",
            )
        )
    groups = "".join(
        f'<div><h3>{_esc(LABELS[k])}</h3><div class="scroll">{to_html(t, table_id=f"groups-{k}")}</div></div>'
        for k, t in group_tables.items()
    )
    side_by_side = (
        max((len(t.headers) for t in group_tables.values()), default=0) <= 6
    )  # up to 4 groups + All
    if len(next(iter(group_tables.values())).headers) <= 2:  # Method + All: results.json has no groups
        groups = '<p class="note">No per-group metrics in results.json.</p>'
    body.append(
        _section(
            "By object count", f'<div class="{"grid" if side_by_side else "stack"}">{groups}</div>', "groups"
        )
    )
    figures = {
        "by_group": "Metrics by number of objects per video (error bars: 95% CI).",
        "speed_quality": "Quality against mean denoising time per video (log scale).",
    }
    figs = "".join(
        f'<figure><img src="{_esc(Path(p).relative_to(out).as_posix())}" alt="{_esc(figures.get(k, k))}">'
        f"<figcaption>{_esc(figures.get(k, k))}</figcaption></figure>"
        for k, p in plots.items()
    )
    body.append(_section("Plots", figs, "plots"))
    body.append(_section("Samples", _gallery_html(gallery), "gallery"))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>FlashBench report</title><style>{CSS}</style></head>
<body><header><div class="wrap"><h1>FlashBench report</h1><p>{subtitle}</p>{protocol}</div></header>
<main>
{chr(10).join(body)}
</main>
<footer>{_provenance_html(runs, provenance)}</footer>
</body></html>
"""
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
