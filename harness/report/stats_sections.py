"""Report sections for the statistics beyond the reference (issue 11): the paired interval, Holm,
what the study can detect, repeats, IFEval instruction level with clustered SEs, cost of answers.

Each function takes summary.json and returns markdown; render.py calls them where they belong.
"""

from __future__ import annotations

from typing import Any

from harness.benchmarks import registry
from harness.report.figures import label


def _h():  # render's formatting helpers (imported late: render imports this module)
    from harness.report import render

    return render


def _ci(ci: list[float] | None) -> str:
    return "—" if not ci else f"[{ci[0]:+.1f}, {ci[1]:+.1f}] pp"


def methods_text(s: dict[str, Any]) -> str:
    st = s.get("statistics") or {}
    fam = st.get("family") or []
    boot = st.get("delta_ci95") or {}
    mde = st.get("mde") or {}
    rt = st.get("repeats_test") or {}
    return (f"Multiplicity: Holm's step-down adjustment over the {len(fam)} non-pooled benchmarks of the comparison "
            f"({', '.join(label(b) for b in fam) or 'none'}); stars and the words significant / improved / degraded "
            "follow the adjusted p (the raw p is shown beside it); the pooled AIME row is derived from its years, not a member. "
            f"The interval on each paired difference is a {boot.get('method', 'paired bootstrap')} "
            f"({boot.get('resamples', '—'):,} resamples, seed {boot.get('seed', '—')}; {boot.get('unit', 'items')}). "
            f"Minimum detectable effect: {mde.get('method', 'Connor 1987')}, alpha {mde.get('alpha', 0.05)} two-sided, power "
            f"{mde.get('power', 0.8):.0%}. With several samples per item the paired test is a {rt.get('method', 'sign-flip test')} "
            f"(exact up to {rt.get('exact_up_to_nonzero_items', '—')} non-zero items, else {rt.get('flips', '—'):,} random flips, "
            f"seed {rt.get('seed', '—')}).\n")


def paired_beyond(s: dict[str, Any]) -> str:
    """4.4: delta with its interval, raw and Holm p, and the power columns."""
    r = _h()
    rows = []
    for bench, b in s["benchmarks"].items():
        p = b.get("paired")
        if not p:
            continue
        need = p.get("items_needed")
        rows.append([label(bench), p.get("n", b["n"]), r.pp(p.get("delta_pp")), _ci(p.get("delta_ci95")), p.get("test") or "—",
                     r.pval(p.get("p_value")), r.pval(p.get("p_holm")) if p.get("p_holm") is not None else "not in family",
                     s.get("benchmark_notes", {}).get(bench, {}).get("stars", "n/a"),
                     "—" if p.get("mde_pp") is None else f"{p['mde_pp']:.1f} pp",
                     "—" if need is None else f"{need:,}"])
    if not rows:
        return ""
    fam = (s.get("statistics") or {}).get("family") or []
    out = ["### 4.4 Paired differences: interval, multiplicity and power\n",
           r.table(["Benchmark", "n", "Δ", "95% CI of Δ (paired bootstrap)", "Test", "p", "p (Holm)", "Sig (Holm)",
                    "MDE (80% power)", "Items to detect observed Δ"], rows),
           f"Holm family ({len(fam)} tests): {', '.join(label(x) for x in fam)}. The pooled AIME row is derived from "
           "its years and is not a member; its stars follow its raw p.\n"]
    return "\n".join(out) + "\n" + detectable(s)


def detectable(s: dict[str, Any]) -> str:
    """The "what this study can detect" paragraph, one sentence per benchmark."""
    r = _h()
    st = (s.get("statistics") or {}).get("mde") or {}
    sents = []
    for bench, b in s["benchmarks"].items():
        p = b.get("paired")
        if not p or registry().group(bench):
            continue
        name = label(bench)
        unit = "items" if p.get("test", "").startswith("mcnemar") else "items (per-item mean over the samples)"
        if p.get("mde_pp") is None:
            sents.append(f"On {name}, {p.get('mde_reason', 'the power is undefined')}.")
            continue
        disc, n = p.get("discordance"), p.get("n", b["n"])
        spread = (f"the observed discordance ({100 * disc:.1f}%)" if p.get("test", "").startswith("mcnemar")
                  else f"the observed mean squared per-item difference ({disc:.3f})")
        sent = (f"On {name}, with {n} {unit} and {spread}, the study detects a difference "
                f"of {p['mde_pp']:.1f} pp or more" + (f" ({p['mde_note']})" if p.get("mde_note") else ""))
        if p.get("items_needed") is not None:
            sent += (f"; the observed {r.pp(p['delta_pp'])} would need about {p['items_needed']:,} items"
                     + (" (fewer than it has)" if p["items_needed"] <= n else ""))
        elif p.get("items_needed_reason"):
            sent += f"; {p['items_needed_reason']}"
        sents.append(sent + ".")
    if not sents:
        return ""
    return ("### 4.5 What this study can detect\n\n"
            f"At alpha {st.get('alpha', 0.05)} (two-sided) and {st.get('power', 0.8):.0%} power (Connor 1987): " + " ".join(sents)
            + " A difference below the detectable size that is not significant is not evidence that the models are equal.\n")


def repeats_section(s: dict[str, Any]) -> str:
    """4.6: avg@k, pass@j, maj@k, the item-level test and the variance split, for benchmarks with k > 1."""
    r = _h()
    benches = [(b, e) for b, e in s["benchmarks"].items() if e.get("repeats")]
    if not benches:
        return ""
    out = ["### 4.6 Repeats: several samples per item\n"]
    for bench, e in benches:
        rs = e["repeats"]
        name = label(bench)
        rows = []
        for m, v in rs["models"].items():
            maj = v.get("maj_at_k") or {}
            var = v.get("variance") or {}
            rows.append([m, v["k"], v["items"], r.pct(v["avg_at_k"]),
                         ", ".join(f"{k} {r.pct(x)}" for k, x in v["pass_at"].items()),
                         f"{r.pct(maj['accuracy'])} ({maj['correct']}/{maj['n']})" if maj.get("accuracy") is not None else maj.get("reason", "—"),
                         "—" if not var.get("available")
                         else f"{var['between_item']:.4f} / {var['within_item']:.4f} ({r.pct(var['share_within'])} of Var(avg@k))"])
        out.append(f"**{name}** (protocol {rs['protocol']})\n")
        out.append(r.table(["Model", "k", "Items", "avg@k", "pass@j (unbiased)", "maj@k", "Variance between / within item"], rows))
        p = e.get("paired") or {}
        if p:
            perm = p.get("permutation") or {}
            if not perm.get("nonzero_items"):
                how = "no item differs"
            elif p.get("test") == "sign_flip_exact":
                how = f"exact over all {perm.get('flips'):,} sign patterns of {perm['nonzero_items']} differing items"
            else:
                how = f"{perm.get('flips', 0):,} random sign flips, seed {perm.get('seed')}"
            out.append(f"Paired on per-item mean accuracy: Δ avg@k {r.pp(p.get('delta_pp'))}, 95% CI {_ci(p.get('delta_ci95'))}, "
                       f"sign-flip permutation p = {r.pval(p.get('p_value'))} ({how}); Holm p = {r.pval(p.get('p_holm'))}. "
                       f"The 2×2 cells count each model's majority of correct samples per item.\n")
        d = rs.get("difference") or {}
        if d.get("available"):
            share = r.pct(d.get("share_within"))
            if d.get("k_to_halve") is not None:
                k_line = f"about k = {d['k_to_halve']} samples per item would halve the interval of Δ"
            else:
                k_line = d.get("k_to_halve_reason", "no k halves the interval")
            out.append(f"Variance of the paired difference: {share} of it is sampling noise within items at k = {d['k']:g} "
                       f"(between-item {d['between_item']:.4f}, within-item {d['within_item_single_sample']:.4f} per single sample); "
                       f"{k_line}.\n")
    return "\n".join(out)


def ifeval_instruction(s: dict[str, Any], bench: str, number: str = "6.5") -> str:
    """6.5: instruction-level accuracy with SEs clustered by prompt (`bench`: an instruction-following benchmark)."""
    r = _h()
    il = (s["benchmarks"].get(bench) or {}).get("instruction_level")
    if not il:
        return ""
    rows = []
    for m, v in il["models"].items():
        rows.append([m, v["n"], v["clusters"], r.pct(v["mean"]), "—" if v["se_naive"] is None else f"{100 * v['se_naive']:.2f} pp",
                     "—" if v["se_clustered"] is None else f"{100 * v['se_clustered']:.2f} pp", v.get("design_effect", "—"),
                     "—" if not v.get("ci95") else f"[{r.pct(v['ci95'][0])}, {r.pct(v['ci95'][1])}]"])
    out = [f"### {number} Instruction-level accuracy with prompt-clustered standard errors\n",
           "Instructions of one prompt share one response, so they are not independent: standard errors are clustered by prompt "
           f"({il['se']}).\n",
           r.table(["Model", "Instructions", "Prompts", "Accuracy", "SE (naive)", "SE (clustered)", "Design effect", "95% CI (clustered)"], rows)]
    p = il.get("paired")
    if p and p.get("delta_pp") is not None:
        out.append(f"Paired, instruction by instruction on {p['prompts']} prompts: Δ {r.pp(p['delta_pp'])}, clustered SE "
                   f"{p['se_pp_clustered']} pp (naive {p['se_pp_naive']} pp), 95% CI {_ci(p.get('ci95_pp'))}, p = {r.pval(p.get('p_value'))}.\n")
    return "\n".join(out)


def cost_section(s: dict[str, Any], figures: dict[str, str]) -> str:
    """8.5: tokens, latency and accuracy per 1,000 completion tokens."""
    r = _h()
    rows_ = (s.get("cost") or {}).get("rows") or []
    if not rows_:
        return ""
    d = lambda x, f="{:,.0f}": "—" if not x else f"{f.format(x['mean'])} / {f.format(x['median'])} / {f.format(x['p90'])}"  # noqa: E731
    rows = [[c["model"], label(c["benchmark"]), c["generations"], r.pct(c["accuracy"]), d(c["completion_tokens"]),
             "—" if c.get("correct_per_1k_tokens") is None else f"{c['correct_per_1k_tokens']:.3f}",
             d(c["latency_s"], "{:,.1f}s"), d(c["generation_chars"])] for c in rows_]
    out = ["### 8.5 Cost of answers\n",
           r.table(["Model", "Benchmark", "Generations", "Accuracy", "Completion tokens mean / median / p90",
                    "Correct per 1,000 tokens", "Latency mean / median / p90", "Chars mean / median / p90"], rows)]
    missing = sorted({f"{c['model']}/{c['benchmark']}" for c in rows_ if c.get("missing")})
    if missing:
        out.append(f"No token counts for {', '.join(missing)} (no proxy record joined to these samples): characters are shown instead.\n")
    if "cost" in figures:
        out.append(f"![cost of answers]({figures['cost']})\n")
    return "\n".join(out)


def decision_p(p: dict[str, Any] | None) -> float | None:
    """The p that decides "significant": Holm-adjusted when the row is in the family, else the raw p."""
    if not p:
        return None
    return p.get("p_holm") if p.get("p_holm") is not None else p.get("p_value")


def p_text(p: dict[str, Any]) -> str:
    """"p = raw, Holm p = adjusted" (or only the raw p outside the family)."""
    r = _h()
    return f"p = {r.pval(p.get('p_value'))}" + (f", Holm p = {r.pval(p['p_holm'])}" if p.get("p_holm") is not None else "")


def pooled_suffix(p: dict[str, Any]) -> str:
    """Said after a pooled row's direction: its significance is its raw p, outside the Holm family."""
    return " (pooled row: raw p, outside the Holm family)" if p.get("p_holm") is None and p.get("p_holm_note") else ""


def comparisons(s: dict[str, Any]) -> list[dict[str, Any]]:
    """summary.comparisons (DESIGN.md §6), or the top-level comparison of a summary written before it existed."""
    return s.get("comparisons") or [{"candidate": s["candidate"], "baseline": s["baseline"], "benchmarks": s["benchmarks"],
                                     "benchmark_notes": s.get("benchmark_notes", {})}]


def multi_scorecard(s: dict[str, Any]) -> str:
    """3.1 with several candidates: a column per model, a delta column per candidate (vs the baseline)."""
    r = _h()
    comps = comparisons(s)
    models = list(dict.fromkeys([c["candidate"] for c in comps] + [c["baseline"] for c in comps]))
    rows = []
    for bench in dict.fromkeys(b for c in comps for b in c["benchmarks"]):
        blks = [c["benchmarks"].get(bench) for c in comps]
        scores: dict[str, Any] = {}
        for blk in blks:
            scores.update((blk or {}).get("scores", {}))
        first = next(b for b in blks if b)
        rows.append([label(bench), first["metric"], first["protocol"]]
                    + [r.frac(scores.get(m)) for m in models]
                    + [r.pp(((blk or {}).get("paired") or {}).get("delta_pp")) for blk in blks])
    return r.table(["Benchmark", "Metric", "Protocol", *models, *(f"Δ {c['candidate']}" for c in comps)], rows)


def pairwise_sections(s: dict[str, Any]) -> str:
    """3.3: one paired table per comparison (each its own Holm family); the later sections describe the first."""
    r = _h()
    comps = comparisons(s)
    out = ["### 3.3 Pairwise comparisons\n",
           f"Each candidate against {comps[0]['baseline']} on the items both have; Holm's adjustment runs over each "
           f"comparison's own benchmarks. Sections 4-12 detail the first comparison ({comps[0]['candidate']} vs "
           f"{comps[0]['baseline']}).\n"]
    for comp in comps:
        c, b = comp["candidate"], comp["baseline"]
        rows = []
        for bench, blk in comp["benchmarks"].items():
            p = blk.get("paired")
            if not p:
                rows.append([label(bench), blk["n"], "—", "—", "—", "—", "—", "—", "—", "not paired"])
                continue
            sig = "significant" if (decision_p(p) or 1) < 0.05 else "ns"
            rows.append([label(bench), p.get("n", blk["n"]), p["both"], p["only_candidate"], p["only_baseline"],
                         p["neither"], r.pp(p["delta_pp"]), _ci(p.get("delta_ci95")), p_text(p), sig + pooled_suffix(p)])
        out.append(f"#### {c} vs {b}\n")
        out.append(r.table(["Benchmark", "n", "Both ✅", f"Only {c} ✅", f"Only {b} ✅", "Both ❌", "Δ", "95% CI of Δ",
                            "p", "Sig (Holm)"], rows))
    return "\n".join(out)
