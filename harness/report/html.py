"""report.html: report.md's numbers as static HTML, plus a per-sample explorer for each comparison.

Reads only `analysis/summary.json` (through the already rendered report.md text) and
`analysis/samples.jsonl` (written by `harness analyze`, one record per model x benchmark x item x repeat).
Writes, under the run directory so a copy of it keeps working offline:
  report.html                  tables and figures (no JavaScript needed), the explorer's index inline
  report_files/samples/<n>.js  one script per benchmark item with every model's texts, loaded by a
                               <script> tag when a row is opened (fetch() of file:// is blocked in Chromium)

Model output is untrusted. Python escapes everything it writes into HTML (markdown-it with raw HTML
off; JSON inside <script> with <, >, & escaped); the page's script puts texts in with textContent only;
a Content-Security-Policy allows no inline script but the page's own (by hash) and no network.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from harness.benchmarks import registry
from harness.report.figures import label

SAMPLES_FILE = "analysis/samples.jsonl"
SIDECAR_DIR = "report_files/samples"
SUPPORTED_SCHEMA = 1
PROTOCOLS = ("as_recorded", "reasoning_stripped")
OUTCOMES = ("both", "only_candidate", "only_baseline", "neither")
PROMPT_HEAD = 1000  # characters of each prompt kept in the page for the row list and text search
REQUIRED = {"model": str, "benchmark": str, "item": str, "repeat": int, "prompt": str, "answer": str,
            "reasoning": str, "scores": dict}
ASSETS = Path(__file__).parent


class SamplesError(ValueError):
    """analysis/samples.jsonl is malformed; the message names the line and the field."""


def read_samples(path: Path) -> list[dict[str, Any]]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as exc:
                raise SamplesError(f"{path}:{n}: not JSON ({exc})") from None
            if not isinstance(rec, dict):
                raise SamplesError(f"{path}:{n}: not a JSON object")
            if rec.get("schema_version") != SUPPORTED_SCHEMA:
                raise SamplesError(f"{path}:{n}: field 'schema_version' is {rec.get('schema_version')!r}, "
                                   f"this harness reads {SUPPORTED_SCHEMA} (run `harness analyze` again)")
            for field, typ in REQUIRED.items():
                if not isinstance(rec.get(field), typ):
                    raise SamplesError(f"{path}:{n}: field {field!r} missing or not {typ.__name__}")
            out.append(rec)
    return out


def comparisons(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """summary.comparisons when present (several candidates), else the single top-level comparison."""
    comps = summary.get("comparisons")
    if isinstance(comps, list) and comps:
        return comps
    return [{"candidate": summary["candidate"], "baseline": summary["baseline"], "benchmarks": summary["benchmarks"]}]


def majority(values: list[bool | None]) -> bool | None:
    """Right when more than half of the scored repeats are right (summary.json's rule); None if none scored."""
    scored = [v for v in values if v is not None]
    return None if not scored else sum(scored) * 2 > len(scored)


def _truncated(rec: dict[str, Any]) -> bool:
    return rec.get("finish_reason") == "length" or (bool(rec.get("has_reasoning")) and rec.get("think_closed") is False)


def build(summary: dict[str, Any], samples: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """The page's index (rows, per-model item stats) and the per-item sidecar payloads."""
    by_key: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for rec in samples:
        by_key.setdefault((rec["benchmark"], rec["item"]), {}).setdefault(rec["model"], []).append(rec)
    bench_order = {b: i for i, b in enumerate(registry().analysis_order())}
    keys = sorted(by_key, key=lambda k: bench_order.get(k[0], len(bench_order)))  # stable: keeps analyze's item order
    comps = comparisons(summary)
    models = list(dict.fromkeys([m for c in comps for m in (c["candidate"], c["baseline"])] +
                                sorted({r["model"] for r in samples})))
    items, sidecars = [], {}
    stats: dict[str, dict[int, dict[str, Any] | None]] = {m: {} for m in models}
    for idx, key in enumerate(keys):
        per = by_key[key]
        for recs in per.values():
            recs.sort(key=lambda r: r["repeat"])
        first = next(per[m][0] for m in models if m in per)
        items.append({"b": key[0], "i": key[1], "p": first["prompt"][:PROMPT_HEAD], "g": first.get("gold"),
                      "c": list(first.get("categories") or []), "s": idx})
        sidecars[idx] = {"benchmark": key[0], "item": key[1], "prompt": first["prompt"], "gold": first.get("gold"),
                         "models": {m: [_detail(r, first["prompt"]) for r in per[m]] for m in models if m in per}}
        for m in models:
            if not per.get(m):
                stats[m][idx] = None
                continue
            recs = per[m]
            stats[m][idx] = {"k": len(recs),
                             "ok": [sum(r["scores"].get(p) is True for r in recs) for p in PROTOCOLS],
                             "n": [sum(r["scores"].get(p) is not None for r in recs) for p in PROTOCOLS],
                             "r": sum(len(r["reasoning"]) for r in recs) / len(recs),
                             "t": sum(_truncated(r) for r in recs)}
    rows, comp_out = [], []
    for ci, comp in enumerate(comps):
        cand, base = comp["candidate"], comp["baseline"]
        benches = {}
        for b, blk in (comp.get("benchmarks") or {}).items():
            if registry().group(b) or not blk.get("paired"):
                continue  # pooled rows would repeat their members (AIME 2024 + 2025); unpaired benchmarks have no cells
            if blk.get("protocol") not in PROTOCOLS:
                raise SamplesError(f"summary.json: comparison {ci} ({cand} vs {base}), benchmark {b}: field 'protocol' "
                                   f"is {blk.get('protocol')!r}, expected one of {', '.join(PROTOCOLS)}")
            benches[b] = {"protocol": blk["protocol"], "paired": {o: blk["paired"].get(o) for o in OUTCOMES}}
        comp_out.append({"candidate": cand, "baseline": base, "benchmarks": benches})
        for idx, key in enumerate(keys):
            b = key[0]
            if b not in benches or cand not in by_key[key] or base not in by_key[key]:
                continue
            proto = benches[b]["protocol"]
            vc = majority([r["scores"].get(proto) for r in by_key[key][cand]])
            vb = majority([r["scores"].get(proto) for r in by_key[key][base]])
            if vc is None or vb is None:
                continue  # paired statistics use items both models have a score for
            outcome = "both" if vc and vb else "only_candidate" if vc else "only_baseline" if vb else "neither"
            rows.append([ci, idx, outcome])
    data = {"schema_version": 1, "run": summary.get("run"), "protocols": list(PROTOCOLS), "models": models,
            "labels": {b: label(b) for b in {k[0] for k in keys}}, "comparisons": comp_out,
            "items": items, "stats": {m: [stats[m].get(i) for i in range(len(keys))] for m in models},
            "rows": rows, "sidecar_dir": SIDECAR_DIR}
    return data, sidecars


def _detail(rec: dict[str, Any], item_prompt: str) -> dict[str, Any]:
    out = {k: rec.get(k) for k in ("repeat", "seed", "answer", "reasoning", "has_reasoning", "think_closed", "scores",
                                   "finish_reason", "prompt_tokens", "completion_tokens", "latency_s", "request_hash",
                                   "cache_hit", "source")}
    if rec["prompt"] != item_prompt:  # a model sent a different prompt (another template): show it
        out["prompt"] = rec["prompt"]
    return out


def _script_json(obj: Any) -> str:
    """JSON safe inside an HTML <script> element: no '</script>' or '<!--' can appear in it."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _sidecar_js(idx: int, payload: dict[str, Any]) -> str:
    # U+2028/2029 are legal in JSON strings; escaped, the file also parses in pre-ES2019 engines.
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return f"harnessSample({idx},{text});\n"


def _markdown(md_text: str) -> str:
    from markdown_it import MarkdownIt

    # Raw HTML off: any markup in report.md (item texts, model names) is shown as text.
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(md_text)


def _explorer_html(data: dict[str, Any] | None, note: str | None) -> str:
    e = html.escape
    out = ['<section class="explorer" id="explorer">', "<h2>Sample explorer</h2>"]
    if data is None:
        out.append(f'<p class="error">{e(note or "no samples")}</p></section>')
        return "\n".join(out)
    comp_opts = "".join(f'<option value="{i}">{e(c["candidate"])} vs {e(c["baseline"])}</option>'
                        for i, c in enumerate(data["comparisons"]))
    benches = [b for b in registry().analysis_order() if any(b in c["benchmarks"] for c in data["comparisons"])]
    benches += sorted({b for c in data["comparisons"] for b in c["benchmarks"]} - set(benches))
    bench_btns = "".join(f'<button type="button" data-filter-benchmark="{e(b)}">{e(label(b))}</button>'
                         for b in benches)
    outcome_btns = "".join(f'<button type="button" data-filter-outcome="{o}">{o}</button>' for o in OUTCOMES)
    out.append(f"""<noscript><p>The explorer needs JavaScript; the report's tables above do not.</p></noscript>
<p class="muted">One row per paired item. Click a row for the prompt, the gold answer and each model's answer, reasoning,
scores under both protocols and proxy metadata. <span id="explorer-protocols"></span></p>
<div class="controls">
<label>comparison <select data-filter-comparison>{comp_opts}</select></label>
<span><button type="button" data-filter-benchmark="" aria-pressed="true">all benchmarks</button>{bench_btns}</span>
</div>
<div class="controls">
<span><button type="button" data-filter-outcome="" aria-pressed="true">all outcomes</button>{outcome_btns}</span>
</div>
<div class="controls">
<label>category <select data-filter-category><option value="">all categories</option></select></label>
<label>truncation <select data-filter-truncation><option value="">any</option>
<option value="any">either model truncated</option><option value="candidate">candidate truncated</option>
<option value="baseline">baseline truncated</option><option value="none">neither truncated</option></select></label>
<label>search <input type="search" data-filter-search placeholder="item id, prompt, gold, category"></label>
<label>sort <select data-sort><option value="item">item order</option>
<option value="delta_desc">reasoning length: candidate − baseline, largest first</option>
<option value="delta_asc">reasoning length: candidate − baseline, smallest first</option>
<option value="delta_abs">reasoning length: largest difference either way</option></select></label>
<span id="explorer-count" class="muted"></span>
</div>
<div class="split">
<div class="list"><table><colgroup><col style="width:5.6rem"><col style="width:5.6rem"><col style="width:6.4rem">
<col style="width:8.4rem"><col style="width:2.8rem"><col style="width:2.8rem"><col style="width:4.6rem"><col style="width:4.6rem">
<col style="width:5rem"><col style="width:2.6rem"><col></colgroup><thead><tr><th>Benchmark</th><th>Item</th><th>Category</th><th>Outcome</th>
<th title="candidate: right / scored repeats, primary protocol">C</th><th title="baseline: right / scored repeats, primary protocol">B</th>
<th title="candidate: mean reasoning characters">C think</th><th title="baseline: mean reasoning characters">B think</th>
<th title="reasoning characters, candidate minus baseline">Δ think</th>
<th title="truncated: finish_reason length or unclosed think block">cut</th><th>Prompt</th></tr></thead>
<tbody id="explorer-rows"></tbody></table></div>
<aside data-detail hidden></aside>
</div>
</section>""")
    return "\n".join(out)


def render_page(summary: dict[str, Any], report_md: str, data: dict[str, Any] | None, note: str | None) -> str:
    css = (ASSETS / "report.css").read_text(encoding="utf-8")
    js = (ASSETS / "explorer.js").read_text(encoding="utf-8") if data is not None else ""
    script_hash = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode()
    # No network, no inline script but ours; sidecars and figures are files next to the page.
    csp = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' file: data:; "
           f"script-src 'self' file: 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'")
    title = f"Evaluation report: {summary.get('candidate')} vs {summary.get('baseline')} ({summary.get('run')})"
    data_tag = f'<script type="application/json" id="harness-data">{_script_json(data)}</script>\n' if data is not None else ""
    js_tag = f"<script>{js}</script>\n" if data is not None else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{html.escape(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{css}</style>
</head>
<body>
<header class="top"><a href="#report">Report</a><a href="#explorer">Sample explorer</a>
<span class="muted">generated from analysis/summary.json and analysis/samples.jsonl</span></header>
<main id="report">
{_markdown(report_md)}
</main>
{_explorer_html(data, note)}
{data_tag}{js_tag}</body>
</html>
"""


def _write_sidecars(run_dir: Path, sidecars: dict[int, dict[str, Any]]) -> None:
    """Replace report_files/samples/ as a whole, so no file of an older report survives beside the new page."""
    final = run_dir / SIDECAR_DIR
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".samples."))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it 0700; the report must stay readable where it is served or copied
    try:
        for idx, payload in sidecars.items():
            (tmp / f"{idx}.js").write_text(_sidecar_js(idx, payload), encoding="utf-8")
        old = None
        if final.exists():
            old = final.with_name(f".samples.old.{os.getpid()}")
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_html(run_dir: Path, summary: dict[str, Any], report_md: str) -> Path:
    """Write report.html (and its sidecars); returns the page's path."""
    from harness.cli import UsageError
    from harness.io import atomic_write_text

    spath = run_dir / SAMPLES_FILE
    data, note = None, None
    if spath.is_file():
        try:
            data, sidecars = build(summary, read_samples(spath))
        except SamplesError as exc:
            raise UsageError(str(exc)) from None
        _write_sidecars(run_dir, sidecars)
    else:
        note = f"{SAMPLES_FILE} not found: run `harness analyze --run {run_dir}` again to write it."
    out = run_dir / "report.html"
    atomic_write_text(out, render_page(summary, report_md, data, note))
    return out
