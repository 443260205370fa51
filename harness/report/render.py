"""report.md from summary.json: the reference report's twelve sections plus a validity audit and
provenance. Every number is read from the summary; sentences about results are generated from it."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from harness.analyze.summary import category_tables
from harness.benchmarks import registry
from harness.report import stats_sections as more
from harness.report.figures import label

SUP = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def pp(x: float | None) -> str:
    return "—" if x is None else f"{x:+.1f}pp"


def pval(p: float | None) -> str:
    if p is None:
        return "—"
    if p >= 0.001:
        return f"{p:.4f}" if p < 0.1 else f"{p:.3f}"
    mant, exp = f"{p:.2e}".split("e")
    return f"{mant}×10{str(int(exp)).translate(SUP)}"


def frac(s: dict[str, Any] | None) -> str:
    if not s or s.get("n") in (None, 0):
        return "—"
    return f"{s['correct']}/{s['n']} ({pct(s['accuracy'])})"


def num(x: float | None, d: int = 0) -> str:
    return "—" if x is None else f"{x:,.{d}f}"


def public_path(path: Any) -> str:
    """A path as the report shows it: never this machine's absolute location (only its last two parts)."""
    if not path:
        return "—"
    p = PurePath(str(path))
    return str(path) if not p.is_absolute() else "…/" + "/".join(p.parts[-2:])


def table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


# Sections 5-7 of the reference report, by registry `section` (a benchmark's kind, not its name).
BENCHMARK_SECTIONS = ("reasoning", "instruction_following", "code")


class Report:
    def __init__(self, s: dict[str, Any], figures: dict[str, str]):
        self.s, self.fig = s, figures
        self.c, self.b = s["candidate"], s["baseline"]
        self.B = s["benchmarks"]
        self.notes = s.get("benchmark_notes", {})
        self.comps = more.comparisons(s)  # several candidates: 3.1 gets a column per model, 3.3 a table per pair
        self.models = list(dict.fromkeys([c["candidate"] for c in self.comps] + [self.b]))
        self.parts: list[str] = []
        self.sec_no, self.sub_no, self.several = 0, 0, False

    def w(self, text: str = "") -> None:
        self.parts.append(text)

    def figure(self, key: str, alt: str) -> None:
        if key in self.fig:
            self.w(f"![{alt}]({self.fig[key]})\n")

    def direction(self, bench: str) -> str:
        p = self.B[bench].get("paired")
        if not p or p["delta_pp"] is None:
            return "not paired"
        dp = more.decision_p(p)  # Holm-adjusted when in the family
        sig = dp is not None and dp < 0.05
        if p["delta_pp"] > 0:
            return "improved" + ("" if sig else " (not significant)") + more.pooled_suffix(p)
        if p["delta_pp"] < 0:
            return "degraded" + ("" if sig else " (not significant)") + more.pooled_suffix(p)
        return "unchanged"

    # ---------------------------------------------------------------------------------------
    def render(self) -> str:
        s = self.s
        cands = [c["candidate"] for c in self.comps]
        self.w(f"# Evaluation report: {', '.join(cands)} vs {self.b} (run `{s['run']}`)\n")
        self.w(f"Generated from `analysis/summary.json` ({s['generated_at']}). Candidate{'s' if len(cands) > 1 else ''}: "
               f"{', '.join(f'**{c}**' for c in cands)}; baseline: **{self.b}**.\n")
        for i, (title, fn) in enumerate([
            ("Executive Summary", self.sec_exec), ("Methodology", self.sec_method), ("Overall Scorecard", self.sec_scorecard),
            ("Statistical Significance", self.sec_significance),
            *[(self.section_title(sec), lambda sec=sec: self.sec_benchmarks(sec)) for sec in BENCHMARK_SECTIONS],
            ("Reasoning Volume Analysis (Proxy Logs)", self.sec_reasoning),
            ("Training Dataset Composition", self.sec_training), ("Dataset vs Performance: What Drove the Results", self.sec_transfer),
            ("Comparison with Other Models", self.sec_comparison), ("Conclusions", self.sec_conclusions)], start=1):
            self.w(f"\n## {i}. {title}\n")
            self.sec_no = i
            fn()
        self.w("\n## Appendix A. Validity audit\n")
        self.sec_validity()
        self.w("\n## Appendix B. Provenance and inputs\n")
        self.sec_provenance()
        return "\n".join(self.parts)

    def headline_rows(self) -> list[list[Any]]:
        rows = []
        for bench, b in self.B.items():
            p = b.get("paired") or {}
            rows.append([label(bench), b["metric"], b["protocol"], b["n"], frac(b["scores"].get(self.c)),
                         frac(b["scores"].get(self.b)), pp(p.get("delta_pp")),
                         f"{more.p_text(p)} ({self.notes.get(bench, {}).get('stars', 'n/a')})" if p else "not paired"])
        return rows

    def sec_exec(self) -> None:
        self.w(table(["Benchmark", "Metric", "Protocol", "n", self.c, self.b, "Change", "Significance"], self.headline_rows()))
        self.figure("scores", "scores with 95% CIs")
        self.w("### The story in one paragraph\n")
        self.w(" ".join(self.findings()) + "\n")

    def findings(self) -> list[str]:
        out: list[str] = []
        gains: list[str] = []
        losses: list[str] = []
        flat: list[str] = []
        for bench, b in self.B.items():
            if registry().group(bench):  # pooled rows come after, in their own sentence
                continue
            p = b.get("paired")
            if not p or p["delta_pp"] is None:
                continue
            entry = f"{label(bench)} ({pp(p['delta_pp'])}, {more.p_text(p)}, Cohen's h {p['cohens_h']:+.2f} {p['effect']})"
            dp = more.decision_p(p)
            if dp is not None and dp < 0.05:
                (gains if p["delta_pp"] > 0 else losses).append(entry)
            else:
                flat.append(entry)
        if gains:
            out.append(f"{self.c} is significantly better than {self.b} on " + "; ".join(gains) + ".")
        if losses:
            out.append(f"{self.c} is significantly worse on " + "; ".join(losses) + ".")
        if flat:
            out.append("No significant difference on " + "; ".join(flat) + ".")
        for group in registry().groups():
            ac = self.B.get(group, {}).get("paired")
            if ac:
                out.append(f"On the {self.B[group]['n']} {registry().family(group)} problems pooled, the difference is "
                           f"{pp(ac['delta_pp'])} (p = {pval(ac['p_value'])}, {self.notes[group]['stars']}).")
        gap = [g for g in self.s["reasoning_volume"]["gap"] if g["ratio_candidate_to_baseline"] is not None]
        for g in gap:
            if registry().section_of(g["benchmark"]) == "reasoning":
                out.append(f"On {label(g['benchmark'])} {self.c} writes {g['ratio_candidate_to_baseline']:.2f}× the reasoning of {self.b} "
                           f"({num(g['candidate'])} vs {num(g['baseline'])} characters on average).")
        for c in self.s.get("validity", {}).get("protocol_comparison", []):
            if c.get("change") and c["change"] != "no change" and "reasoning_stripped" in c and "as_recorded" in c:
                a, r = c["as_recorded"]["delta_pp"], c["reasoning_stripped"]["delta_pp"]
                if a is not None and r is not None and abs(a - r) >= 1:
                    out.append(f"Protocol matters on {label(c['benchmark'])}: {c['change']} "
                               f"(primary here: {c['primary']}).")
        return out or ["Not enough paired data to draw conclusions."]

    def sec_method(self) -> None:
        prov = self.s.get("provenance") or {}
        models = prov.get("models") if isinstance(prov, dict) else None
        rows = []
        for m in self.models:
            info = (models or {}).get(m, {}) if isinstance(models, dict) else {}
            src = info.get("source") if isinstance(info, dict) else None
            src = ", ".join(f"{a}={b}" for a, b in src.items() if b) if isinstance(src, dict) else src
            rows.append([m, "baseline" if m == self.b else "candidate", src or public_path(info.get("path")),
                         (info.get("sha256") or "—")[:16]])
        self.w("### 2.1 Models\n")
        self.w(table(["Model", "Role", "Source", "sha256 (prefix)"], rows))
        self.w("### 2.2 Benchmarks and protocols\n")
        rows = []
        for bench, b in self.B.items():
            n = self.notes.get(bench, {})
            rows.append([label(bench), b["n"], b["metric"], b["protocol"],
                         ", ".join(f"{m}: {k}" for m, k in n.get("repeats", {}).items()), n.get("item_mismatch") or n.get("unpaired") or ""])
        self.w(table(["Benchmark", "Paired items", "Metric", "Primary protocol", "Repeats", "Notes"], rows))
        self.w("- `as_recorded`: the metric exactly as the tool recorded it (reasoning text, if any, scored as part of the answer).\n"
               "- `reasoning_stripped`: the same scorer applied to the text after the last `</think>`; an unclosed `<think>` counts as no answer.\n"
               "- Runs made by the harness use `reasoning_stripped` as primary; imported results use `as_recorded`, unless the "
               "validity audit finds reasoning inside the scored text of more than 5% of a model's samples: then "
               "`reasoning_stripped`. Both appear in Appendix A.\n")
        for bench, n in self.notes.items():
            if self.B[bench]["protocol"] == "reasoning_stripped" and "audit found" in n.get("protocol_reason", ""):
                self.w(f"- {label(bench)}: imported, yet primary protocol `reasoning_stripped`: the {n['protocol_reason']}.\n")
        rep = [b for b, n in self.notes.items() if n.get("pairing")]
        if rep:
            self.w(f"- Repeats ({', '.join(rep)}): {self.notes[rep[0]]['pairing']}.\n")
        self.w("### 2.3 Statistics\n")
        self.w("McNemar's test on paired items: exact binomial when discordant pairs < 25, chi-square with continuity correction "
               "otherwise (the test used is named per row). 95% intervals are Wilson score intervals. Effect size: Cohen's h "
               "(|h| < 0.2 negligible, < 0.5 small, < 0.8 medium, else large). Stars: *** p < 0.001, ** p < 0.01, * p < 0.05, ns otherwise.\n")
        self.w(more.methods_text(self.s))

    def sec_scorecard(self) -> None:
        self.w("### 3.1 Full results\n")
        if len(self.comps) > 1:
            self.w(more.multi_scorecard(self.s))
        else:
            rows = []
            for bench, b in self.B.items():
                p = b.get("paired") or {}
                rows.append([label(bench), b["metric"], b["n"], frac(b["scores"].get(self.c)), frac(b["scores"].get(self.b)),
                             pp(p.get("delta_pp")), self.direction(bench)])
            self.w(table(["Benchmark", "Metric", "n", self.c, self.b, "Delta", "Direction"], rows))
        self.w("### 3.2 Net impact\n")
        for f in self.findings()[:3]:
            self.w(f"- {f}")
        self.w("")
        for bench, n in self.notes.items():
            if n.get("avg_at_k"):
                self.w(f"- {label(bench)} over all repeats: " + "; ".join(
                    f"{m} avg@{v['k']} {pct(v['mean_accuracy'])}" for m, v in n["avg_at_k"].items()))
            if n.get("pass_at_k"):
                self.w(f"- {label(bench)} unbiased pass@k: " + "; ".join(
                    f"{m} " + ", ".join(f"{k} {pct(v)}" for k, v in d.items()) for m, d in n["pass_at_k"].items()))
        self.w("")
        if len(self.comps) > 1:
            self.w(more.pairwise_sections(self.s))

    def sec_significance(self) -> None:
        self.w("### 4.1 McNemar's test results\n")
        rows = []
        for bench, b in self.B.items():
            p = b.get("paired")
            if not p:
                continue
            rows.append([label(bench), b["n"], p["both"], p["only_candidate"], p["only_baseline"], p["neither"],
                         pval(p["p_value"]), p["test"], self.notes[bench]["stars"], f"h={p['cohens_h']:+.3f} ({p['effect']})"])
        self.w(table(["Benchmark", "n", "Both ✅", f"Only {self.c} ✅", f"Only {self.b} ✅", "Both ❌", "p-value", "Test", "Sig", "Cohen's h"], rows))
        self.w("Sig follows the Holm-adjusted p (4.4); the p-value column is the raw test.\n")
        self.w("### 4.2 Confidence intervals (95%, Wilson score)\n")
        rows = []
        for bench, b in self.B.items():
            sc, sb = b["scores"].get(self.c), b["scores"].get(self.b)
            ci = lambda s: "—" if not s or not s.get("ci95") else f"[{pct(s['ci95'][0])}, {pct(s['ci95'][1])}]"  # noqa: E731
            rows.append([label(bench), b["n"], pct(sc and sc["accuracy"]), ci(sc), pct(sb and sb["accuracy"]), ci(sb)])
        self.w(table(["Benchmark", "n", self.c, "95% CI", self.b, "95% CI"], rows))
        self.w("### 4.3 Interpretation\n")
        for bench, b in self.B.items():
            p = b.get("paired")
            if not p:
                continue
            disc = p["only_candidate"] + p["only_baseline"]
            ratio = (f"{p['only_candidate'] / p['only_baseline']:.1f}:1" if p["only_baseline"] else "all") if p["only_candidate"] >= p["only_baseline"] \
                else (f"1:{p['only_baseline'] / p['only_candidate']:.1f}" if p["only_candidate"] else "none")
            self.w(f"- **{label(bench)}**: {disc} discordant items ({p['only_candidate']} only {self.c}, {p['only_baseline']} only "
                   f"{self.b}; ratio {ratio}); {more.p_text(p)} ({self.notes[bench]['stars']}).")
        self.w("")
        self.w(more.paired_beyond(self.s))
        self.w(more.repeats_section(self.s))

    # -- sections 5-7: one per registry `section`; a group's block, then each benchmark's -------
    def _families(self, section: str) -> list[str]:
        """The names a section's title lists: present benchmarks (a group's members by the group's family)."""
        reg = registry()
        keys = [b for b in reg.keys() if reg[b].section == section]
        present = [b for b in keys if b in self.B] or keys
        return list(dict.fromkeys(reg.family(b) for b in present))

    def section_title(self, section: str) -> str:
        names = self._families(section)
        return (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0] if names else section) + " Results"

    def sub(self, title: str, bench: str | None = None) -> None:
        """A numbered subsection; in a section of several benchmarks the title names the benchmark."""
        self.sub_no += 1
        prefix = f"{label(bench)}: " if bench and self.several else ""
        self.w(f"### {self.sec_no}.{self.sub_no} {prefix}{title}\n")

    def sec_benchmarks(self, section: str) -> None:
        reg = registry()
        present = [b for b in reg.analysis_order() if b in self.B and reg.section_of(b) == section]
        self.sub_no = 0
        if not present:
            self.w(f"No {' or '.join(self._families(section))} results in this run.\n")
            return
        groups = [g for g in reg.groups() if any(m in present for m in reg.members(g))]
        singles = [b for b in present if not reg.group(b) and reg[b].group is None]
        self.several = len(groups) + len(singles) > 1
        for g in groups:
            self._group_block(g)
        for b in singles:
            {"instruction_following": self._instruction_block, "code": self._code_block}.get(reg[b].section, self._bench_block)(b)

    def _group_block(self, group: str) -> None:
        """A group (AIME 2024 + 2025): scores by member and pooled, agreement, per-question tables, topics."""
        reg = registry()
        rows_of = [b for b in [*reg.members(group), group] if b in self.B]
        grp = reg.group(group)
        by, topics = (grp.by, grp.topics) if grp else ("benchmark", "category")
        self.sub(f"Scores by {by}")
        rows = [[label(b), self.B[b]["n"], frac(self.B[b]["scores"].get(self.c)), frac(self.B[b]["scores"].get(self.b)),
                 "—" if not self.B[b].get("paired") else f"{self.B[b]['paired']['only_candidate'] - self.B[b]['paired']['only_baseline']:+d} questions"]
                for b in rows_of]
        self.w(table([by.capitalize(), "n", self.c, self.b, "Delta"], rows))
        self.sub("Agreement analysis")
        yrs = [b for b in rows_of if self.B[b].get("paired")]
        if yrs:
            rows = [[name] + [self.B[b]["paired"][k] for b in yrs] for name, k in
                    (("Both correct", "both"), ("Both wrong", "neither"), (f"Only {self.c} correct", "only_candidate"), (f"Only {self.b} correct",
                                                                                                                         "only_baseline"))]
            self.w(table(["Category"] + [label(b) for b in yrs], rows))
        for b in reg.members(group):
            self._per_question(b)
        with_categories = [b for b in rows_of if reg[reg.members(b)[0]].categories]
        tables = {b: rows_ for b in with_categories for bb, name, rows_, _ in category_tables(self.s.get("categories", {}))
                  if bb == b and name == b}
        if tables:
            self.sub(f"Accuracy by {topics}")
            self.w(f"Topics from keyword rules in `{public_path(self.s['categories'].get('taxonomy'))}`; a problem may carry several.\n")
            for b, rows_ in tables.items():
                rows = [[r["category"], r["n_items"], frac(r["scores"].get(self.c)), frac(r["scores"].get(self.b)), pp((r.get("paired") or {}).get("delta_pp")),
                         pval((r.get("paired") or {}).get("p_value"))] for r in rows_]
                self.w(f"**{label(b)}**\n")
                self.w(table(["Topic", "n", self.c, self.b, "Delta", "McNemar p"], rows))

    def _per_question(self, b: str) -> None:
        pq = self.s.get("per_question", {}).get(b)
        if not pq:
            return
        self.sub(f"{label(b)} per-question breakdown (protocol {pq['protocol']})")
        mark = lambda v: "—" if v is None else ("✅" if v else "❌")  # noqa: E731
        rows = [[i, r["id"], r["problem_head"] + "…", r["answer"], ", ".join(r["topics"]), mark(r["outcomes"].get(self.c)), mark(r["outcomes"].get(self.b)),
                 num(r["reasoning_chars"].get(self.c)), num(r["reasoning_chars"].get(self.b))] for i, r in enumerate(pq["rows"])]
        self.w(table(["#", "ID", "Problem (first 60 chars)", "Answer", "Topics", self.c, self.b, f"{self.c} reasoning (chars)",
                      f"{self.b} reasoning (chars)"], rows))

    def _category_table(self, bench: str, title: str, what: str) -> None:
        for bb, name, rows_, _ in category_tables(self.s.get("categories", {})):
            if bb == bench and name == bench:
                self.sub(title, bench)
                acc = lambda r, m: pct((r["scores"].get(m) or {}).get("accuracy"))  # noqa: E731
                rows = [[r["category"], r["n_items"], acc(r, self.c), acc(r, self.b),
                         pp((r.get("paired") or {}).get("delta_pp")), pval((r.get("paired") or {}).get("p_value"))] for r in rows_]
                self.w(table([what, "n", self.c, self.b, "Delta", "McNemar p"], rows))

    def _bench_block(self, bench: str) -> None:
        """Any other benchmark: its score, agreement, categories and per-question table when it has them."""
        b = self.B[bench]
        self.sub(f"Scores and agreement (protocol {b['protocol']}, metric {b['metric']})", bench)
        self.w(table(["Benchmark", "n", self.c, self.b], [[label(bench), b["n"], frac(b["scores"].get(self.c)), frac(b["scores"].get(self.b))]]))
        self._agreement(bench)
        field = (self.s.get("categories", {}).get(bench) or {}).get("field")
        self._category_table(bench, "Performance by category" + (f" (dataset field `{field}`)" if field else ""), "Category")
        self._per_question(bench)

    def _agreement(self, bench: str) -> None:
        p = self.B[bench].get("paired")
        if not p:
            self.w(f"{self.notes.get(bench, {}).get('unpaired', 'Not paired.')}\n")
            return
        n = sum(p[k] for k in ("both", "neither", "only_candidate", "only_baseline"))
        rows = [[name, p[k], pct(p[k] / n if n else None)] for name, k in
                (("Both pass", "both"), ("Both fail", "neither"), (f"Only {self.c} pass", "only_candidate"), (f"Only {self.b} pass", "only_baseline"))]
        rows.append(["**Total**", n, ""])
        self.w(table(["Category", "Count", "%"], rows))

    def _instruction_block(self, bench: str) -> None:
        self.sub(f"Prompt-level agreement (protocol {self.B[bench]['protocol']})", bench)
        self._agreement(bench)
        cat = self.s.get("categories", {}).get(bench)
        if not cat:
            return
        self.sub("Performance by instruction category (instruction level)", bench)
        rows = [[r["category"], r["n"], pct((r["scores"].get(self.c) or {}).get("accuracy")), pct((r["scores"].get(self.b) or {}).get("accuracy")),
                 pp((r.get("paired") or {}).get("delta_pp"))] for r in cat["categories"]]
        self.w(table(["Instruction category", "n", self.c, self.b, "Delta"], rows))
        better = [r["category"] for r in cat["categories"] if (r.get("paired") or {}).get("delta_pp", 0) > 0]
        worse = [r["category"] for r in cat["categories"] if (r.get("paired") or {}).get("delta_pp", 0) < 0]
        self.w(f"{self.c} is ahead on {len(better)} of {len(cat['categories'])} categories"
               + (f"; behind on {', '.join(worse)}." if worse else ".") + "\n")
        self.sub(f"Biggest wins and losses by instruction id (n ≥ {cat['min_n_for_ranking']})", bench)
        rows = [[r["instruction_id"], r["n"], pct((r["scores"].get(self.c) or {}).get("accuracy")), pct((r["scores"].get(self.b) or {}).get("accuracy")),
                 pp(r["paired"]["delta_pp"])] for r in cat["biggest_wins"] + [x for x in cat["biggest_losses"] if x not in cat["biggest_wins"]]]
        self.w(table(["Instruction ID", "n", self.c, self.b, "Advantage"], rows))
        self.sub("Statistical significance by category (McNemar on instruction pairs)", bench)
        rows = [[r["category"], r["n"], pval((r.get("paired") or {}).get("p_value")), (r.get("paired") or {}).get("stars", "n/a"),
                 (r.get("paired") or {}).get("test", "—")] for r in cat["categories"]]
        self.w(table(["Category", "n", "p-value", "Sig", "Test"], rows))
        self.figure("category_deltas", "per-category deltas")
        if (self.B[bench].get("instruction_level")):
            self.sub_no += 1
            self.w(more.ifeval_instruction(self.s, bench, f"{self.sec_no}.{self.sub_no}"))

    def _code_block(self, bench: str) -> None:
        self.w(f"{label(bench)}: a task passes when both the base and the plus tests pass (evalplus). "
               f"Protocol {self.B[bench]['protocol']}.\n")
        self.sub("Agreement analysis", bench)
        self._agreement(bench)
        cat = self.s.get("categories", {}).get(bench)
        if cat and not cat.get("prompts_available", True):
            self.w(f"({label(bench)} prompts were not available, so every task is labelled by its fallback category.)\n")
        self._category_table(bench, "Performance by problem category", "Category")
        one = self.s.get("categories", {}).get("solved_by_one", {}).get(bench)
        if one:
            self.sub(f"Problems only {self.c} solved ({len(one['candidate_only'])} total)", bench)
            self.w((", ".join(f"`{x}`" for x in one["candidate_only"]) or "none") + "\n")
            self.sub(f"Problems only {self.b} solved ({len(one['baseline_only'])} total)", bench)
            self.w((", ".join(f"`{x}`" for x in one["baseline_only"]) or "none") + "\n")

    def sec_reasoning(self) -> None:
        rv = self.s.get("reasoning_volume", {})
        self.w("### 8.1 Data sources and match quality\n")
        logs = rv.get("proxy_logs") or {}
        if logs:
            benches = sorted({b for v in logs.values() for b in v["per_benchmark"]})
            self.w(table(["Proxy log", "Records", "Malformed lines", "Cache hits", "Errors"] + benches,
                         [[f"proxy/{m}.jsonl", v["records"], v["malformed_lines"], v["cache_hits"], v["errors"]] + [v["per_benchmark"].get(b,
                                                                                                                                           0) for b in benches]
                          for m, v in logs.items()]))
        else:
            self.w("No proxy logs in this run: reasoning statistics come from the samples' own text.\n")
        rows = []
        for r in rv.get("rows", []):
            m = r.get("proxy_match")
            rows.append([r["model"], label(r["benchmark"]),
                         "—" if not m or m["rate"] is None else f"{pct(m['rate'])} ({m['matched']}/{m['joinable']})",
                         ", ".join(f"{k}: {v}" for k, v in r["sources"].items())])
        self.w(table(["Model", "Benchmark", "Sample↔log match", "Source of the statistics"], rows))
        self.w("### 8.2 Reasoning volume by model and benchmark\n")
        rows = [[r["model"], label(r["benchmark"]), r["n"], num(r["mean_reasoning_chars"]), num(r["mean_answer_chars"]),
                 pct(r["reasoning_share"], 0), pct(r["share_with_reasoning"]), "—" if r["mean_latency_s"] is None else f"{r['mean_latency_s']:.1f}s",
                 num(r["mean_completion_tokens"])] for r in rv.get("rows", [])]
        self.w(table(["Model", "Benchmark", "n", "Avg reasoning (chars)", "Avg answer (chars)", "Reasoning share", "% with reasoning", "Avg time",
                      "Avg completion tokens"], rows))
        self.figure("reasoning_lengths", "reasoning length distributions")
        self.w("### 8.3 The reasoning gap\n")
        def avg(g: dict[str, Any], role: str, model: str) -> str:
            return "no reasoning recorded" if model in g.get("no_reasoning_recorded", []) else num(g[role])

        rows = [[label(g["benchmark"]), avg(g, "candidate", self.c), avg(g, "baseline", self.b),
                 "—" if g["ratio_candidate_to_baseline"] is None else f"{g['ratio_candidate_to_baseline']:.2f}×"] for g in rv["gap"]]
        self.w(table(["Benchmark", f"{self.c} avg reasoning", f"{self.b} avg reasoning", "Ratio"], rows))
        unrecorded = [g for g in rv["gap"] if g.get("no_reasoning_recorded")]
        if unrecorded:
            who = sorted({m for g in unrecorded for m in g["no_reasoning_recorded"]})
            where = ", ".join(label(g["benchmark"]) for g in unrecorded)
            self.w(f"No reasoning is recorded for {', '.join(who)} on {where}: these files say nothing about how much "
                   f"it reasons, so no ratio is given. Likely causes: {unrecorded[0]['likely_causes']}.\n")
        self.w("### 8.4 Reasoning length vs correctness\n")
        rows = [[r["model"], label(r["benchmark"]), f"{num(r['mean_reasoning_correct'])} (n={r['n_correct']})",
                 f"{num(r['mean_reasoning_incorrect'])} (n={r['n_incorrect']})", num(r["difference"])] for r in rv.get("vs_correctness", [])]
        self.w(table(["Model", "Benchmark", "Correct: avg reasoning", "Incorrect: avg reasoning", "Δ"], rows))
        longer_wrong = [r for r in rv.get("vs_correctness", []) if r["difference"] is not None and r["difference"] < 0]
        known = [r for r in rv.get("vs_correctness", []) if r["difference"] is not None]
        if known:
            self.w(f"In {len(longer_wrong)} of {len(known)} model × benchmark pairs, wrong answers come with longer reasoning than right ones.\n")
        self.figure("reasoning_vs_correctness", "reasoning vs correctness")
        self.w(more.cost_section(self.s, self.fig))

    def sec_training(self) -> None:
        td = self.s.get("training_data")
        if not td:
            self.w("No training data configured.\n")
            return
        self.w("### 9.1 Overview\n")
        lk = self.s.get("leakage") or {}
        hits = lk.get("hits_by_kind", {})
        self.w(table(["Property", "Value"], [
            ["Total examples", td["n"]], ["With reasoning blocks", f"{td['with_reasoning']} ({pct(td['share_with_reasoning'])})"],
            ["Prompt length (chars): mean / median", f"{num(td['prompt_chars']['mean'])} / {num(td['prompt_chars']['median'])}"],
            ["Response length (chars): mean / median", f"{num(td['response_chars']['mean'])} / {num(td['response_chars']['median'])}"],
            ["Reasoning length (chars): mean / median", f"{num(td['reasoning_chars']['mean'])} / {num(td['reasoning_chars']['median'])}"],
            ["Leakage hits (exact / substring / n-gram)", f"{hits.get('exact', 0)} / {hits.get('substring', 0)} / {hits.get('ngram', 0)}"]]))
        self.w("### 9.2 Topic distribution (keyword rules; multi-label)\n")
        self.w(table(["Topic", "Count", "%"], [[t["topic"], t["count"], pct(t["share"])] for t in td["topics"]]))
        self.w("### 9.3 Leakage check\n")
        if lk:
            m = lk["method"]
            self.w(f"{lk['training_prompts']} training prompts checked against {lk['benchmark_items_checked']} benchmark items "
                   f"(exact match, containment of ≥ {m['min_substring_chars']} chars, "
                   f"or ≥ {pct(m['ngram_threshold'], 0)} of the item's word {m['ngram']}-grams; "
                   f"text normalized: {m['normalize']}).\n")
            if lk["hits"]:
                self.w(table(["Benchmark", "Item", "Training row", "Kind", "Score", "Training prompt (head)"],
                             [[h["benchmark"], h["item"], h["training_index"], h["kind"], h["score"], h["training_prompt_head"]] for h in lk["hits"][:50]]))
            else:
                self.w("No hits.\n")
        self.w("### 9.4 Reasoning length distribution in the training data\n")
        self.w(table(["Reasoning length", "Count", "%"], [[b["bucket"], b["count"], pct(b["share"])] for b in td["reasoning_buckets"]]
                     + [["none (0 chars)", td["no_reasoning"], pct(td["no_reasoning"] / td["n"] if td["n"] else None)]]))

    def sec_transfer(self) -> None:
        tr = self.s.get("transfer") or {}
        if not tr.get("available"):
            self.w(f"Not computed: {tr.get('reason', 'no data')}.\n")
            return
        self.w("Each benchmark category is placed by its representation in the training set (keyword rules in the taxonomy) "
               f"and by its delta. Rule: {tr['rule']}.\n")
        self.w("### 10.1 Skill transfer quadrants\n")
        names = {"Q1": "Direct transfer (high rep, improved)", "Q2": "Generalization (low rep, improved)",
                 "Q3": "Didn't help (high rep, no gain)", "Q4": "Expected weakness (low rep, no gain)"}
        self.w(table(["Quadrant", "Description", "Count", "%"], [[q, names[q], v["count"], pct(v["share"], 0)] for q, v in tr["quadrants"].items()]))
        self.w(table(["Benchmark", "Category", "Training examples", "Representation", "Delta", "Quadrant"],
                     [[label(p["benchmark"]), p["category"], p["training_examples"], p["representation"], pp(p["delta_pp"]),
                       p["quadrant"]] for p in tr["points"]]))
        self.w("### 10.2 Correlation: representation vs improvement\n")
        self.w(table(["Benchmark", "Categories", "Spearman ρ", "p-value"],
                     [[label(r["benchmark"]), r["categories"], "—" if r["spearman_rho"] is None else f"{r['spearman_rho']:+.3f}",
                       pval(r["spearman_p"])] for r in tr["per_benchmark"]]))
        self.w("### 10.3 High- vs low-representation skills\n")
        self.w(table(["Benchmark", "High-rep mean Δ", "Low-rep mean Δ", "Gap"],
                     [[label(r["benchmark"]), pp(r["mean_delta_high"]), pp(r["mean_delta_low"]),
                       pp(r["gap_pp"])] for r in tr["per_benchmark"]]))
        sig = [r for r in tr["per_benchmark"] if r["spearman_p"] is not None and r["spearman_p"] < 0.05]
        self.w(("Representation significantly predicts the delta on " + ", ".join(label(r["benchmark"]) for r in sig) + "."
                if sig else "On no benchmark does training representation significantly predict the delta (Spearman p ≥ 0.05 or undefined).") + "\n")

    def sec_comparison(self) -> None:
        cmp_ = self.s.get("comparison", {})
        pub = cmp_.get("published", {})
        # The run's benchmarks, then any other registry benchmark the published table has scores for.
        published_keys = {b for p in pub.get("models", []) for b, v in (p.get("scores") or {}).items() if v is not None}
        cols = [b for b in registry().keys() if b in self.B or b in published_keys]
        protocols = ", ".join(sorted(set(cmp_.get("protocols", {}).values())))
        rows = [[f"**{m} (this run)**", "—"] + [pct(cmp_.get("ours", {}).get(m, {}).get(b)) for b in cols] + [f"this run ({protocols})"]
                for m in (self.c, self.b)]
        for p in pub.get("models", []):
            sc = p.get("scores", {})
            rows.append([p["name"], p.get("params") or "—"] + ["—" if sc.get(b) is None else f"{sc[b]:.1f}%" for b in cols] + [p.get("source", "—")])
        self.w(f"Published scores from `{public_path(pub.get('path'))}`" + (f" ({pub['note']})" if pub.get("note") else "")
               + ". They use other prompts, decoding and metric variants: context, not a controlled comparison.\n")
        self.w(table(["Model", "Params", *[label(b) for b in cols], "Source"], rows))

    def sec_conclusions(self) -> None:
        self.w("### 12.1 What the data show\n")
        for i, f in enumerate(self.findings(), start=1):
            self.w(f"{i}. {f}")
        tr = self.s.get("transfer") or {}
        if tr.get("available"):
            q = tr["quadrants"]
            improved = q["Q1"]["count"] + q["Q2"]["count"]
            total = sum(v["count"] for v in q.values())
            self.w(f"{len(self.findings()) + 1}. {improved} of {total} benchmark categories improved; "
                   f"{q['Q2']['count']} of them with low training representation.")
        self.w("")
        self.w("### 12.2 The trade-off\n")
        rows = []
        for bench, b in self.B.items():
            p = b.get("paired")
            if p:
                rows.append([label(bench), f"{pp(p['delta_pp'])}, {self.direction(bench)} ({p['effect']} effect)"])
        self.w(table(["Dimension", "Effect"], rows))
        self.w("### 12.3 Caveats\n")
        for c in self.s.get("validity", {}).get("protocol_comparison", []):
            if c.get("change") and c["change"] != "no change":
                self.w(f"- {label(c['benchmark'])}: {c['change']} (primary protocol: {c['primary']}).")
        v = self.s["validity"]
        for r in v["per_model_benchmark"]:
            if r["missing"] or r["errors"]:
                self.w(f"- {r['model']} / {label(r['benchmark'])}: INCOMPLETE, {r['missing']} item x repeat "
                       f"left out ({r['errors']} whose generation failed); paired statistics use the complete items only.")
        for t in v.get("truncation", []):
            ex = t.get("excluding_truncated")
            tail = (f"; without the {ex['items_excluded']} truncated item(s) the difference is {pp(ex['delta_pp'])} "
                    f"(n = {ex['n']}, p = {pval(ex['p_value'])})") if ex else ""
            self.w(f"- {label(t['benchmark'])}: more than {pct(t['threshold'], 0)} of the answers of "
                   f"{', '.join(t['models_over_threshold'])} hit the token budget (finish_reason=length){tail}.")
        unknown = [f"{r['model']} / {label(r['benchmark'])}" for r in v["per_model_benchmark"]
                   if r["n"] and not r.get("finish_reason_known")]
        if unknown:
            self.w(f"- Truncation is unknown for {', '.join(unknown)}: these samples carry no finish_reason "
                   f"(imported lm-eval samples record none), so answers cut by the token budget cannot be told apart.")
        for w in self.s["inputs"]["warnings"][:20]:
            self.w(f"- Input: {w}")
        for bench, n in self.notes.items():
            if n.get("item_mismatch"):
                self.w(f"- {label(bench)}: {n['item_mismatch']}.")
            if n.get("unpaired"):
                self.w(f"- {label(bench)}: {n['unpaired']}.")
        self.w("")

    def sec_validity(self) -> None:
        v = self.s.get("validity", {})
        self.w("### A.1 What was scored\n")
        rows = [[r["model"], label(r["benchmark"]), "yes" if r["imported"] else "no", r["n"], r["errors"], r["missing"],
                 pct(r.get("share_scored_with_reasoning")), pct(r.get("share_unclosed_reasoning")),
                 pct(r.get("share_finish_length")) if r.get("finish_reason_known") else "unknown", pct(r.get("share_empty_answer"))]
                for r in v["per_model_benchmark"]]
        self.w(table(["Model", "Benchmark", "Imported", "n", "Errors", "Missing", "Scored text holds reasoning (as recorded)",
                      "Unclosed reasoning", "finish_reason=length", "Empty answer (stripped)"], rows))
        for t in v.get("truncation", []):
            ex = t.get("excluding_truncated")
            if ex:
                self.w(f"- {label(t['benchmark'])} without truncated items: {pp(ex['delta_pp'])} "
                       f"(n = {ex['n']}, {ex['items_excluded']} excluded, p = {pval(ex['p_value'])}, {ex['test']}).")
        self.w("### A.2 Every headline number under both protocols\n")
        rows = []
        for c in v.get("protocol_comparison", []):
            a, r = c.get("as_recorded", {}), c.get("reasoning_stripped", {})
            acc = lambda d, m: pct((d.get("accuracy") or {}).get(m))  # noqa: E731
            rows.append([label(c["benchmark"]), c["primary"], f"{acc(a, self.c)} / {acc(a, self.b)}",
                         f"{pp(a.get('delta_pp'))} (p = {pval(a.get('p_value'))})",
                         f"{acc(r, self.c)} / {acc(r, self.b)}", f"{pp(r.get('delta_pp'))} (p = {pval(r.get('p_value'))})", c.get("change", "")])
        self.w(table(["Benchmark", "Primary", f"as recorded {self.c} / {self.b}", "Δ as recorded", f"stripped {self.c} / {self.b}", "Δ stripped",
                      "Change"], rows))
        res = [r for r in v.get("per_model_benchmark", []) if r.get("rescored")]
        if res:
            self.w("### A.3 Re-scoring of imported results\n")
            for r in res:
                info = r["rescored"]
                line = f"- {r['model']} / {label(r['benchmark'])}: `{info['scorer']}` on {info['rule']}"
                if "range_over_random_draws" in info:
                    lo, hi = info["range_over_random_draws"]
                    line += (f"; {len(info['random_dependent_items'])} prompt(s) score differently under other random draws of lm-eval's IFEval checkers "
                             f"(range {lo}–{hi} correct); {info['seeding']}")
                self.w(line + ".")
            sd = v.get("sentence_splitter")
            if sd:
                self.w(f"- IFEval sentence splitter data: {sd['source']}" + ("" if sd.get("exact") else
                       f"; NOT lm-eval's own data: instructions {', '.join(sd['affected_instructions'])} may score differently") + ".")
            self.w("")
        self.sandbox_line()

    def sandbox_line(self) -> None:
        """Where generated code ran and what the probe measured (manifest.json `sandbox`, copied by analyze)."""
        prov = self.s.get("provenance")
        sb = prov.get("sandbox") if isinstance(prov, dict) else None
        if not isinstance(sb, dict) or "passed" not in sb:
            code = [b for b in self.s.get("benchmarks", {}) if registry().section_of(b) == "code"]
            if code:
                self.w("### Sandbox for generated code\n")
                self.w("No probe recorded for this run (no `sandbox` in manifest.json): "
                       f"how isolated the generated {' and '.join(label(b) for b in code)} code was is unknown.\n")
            return
        import re

        c = sb.get("checks") or {}
        got = lambda k: "pass" if (c.get(k) or {}).get("passed") else "FAIL"  # noqa: E731
        fails = re.sub(r"(?<![\w.])/[^\s'\",;)]+", "<path>", "; ".join(sb.get("failures") or []))[:400]  # no machine paths
        self.w("### Sandbox for generated code\n")
        line = (f"Sandbox ({sb.get('mode')}, probed {sb.get('measured')}): network {got('network')}, "
                f"not root on the host {got('root')}, no write outside its work dir {got('writes')}.")
        if sb.get("allow_unisolated"):
            line += (f" **Unisolated execution of generated code was explicitly allowed** ({sb.get('allowed_by')})"
                     + (f"; the probe failed: {fails}" if not sb.get("passed") else "")
                     + ".")
        self.w(line + "\n")

    def sec_provenance(self) -> None:
        prov = self.s.get("provenance")
        if isinstance(prov, dict) and prov:
            rows: list[list[Any]] = []
            h = prov.get("harness") or {}
            rows.append(["harness", f"{h.get('version', '—')} git {h.get('git_sha') or prov.get('git_sha') or '—'}"
                         + (" (dirty)" if h.get("git_dirty") else "")])
            cfg = prov.get("config") or {}
            if isinstance(cfg, dict) and cfg.get("sha256"):
                rows.append(["config", f"{public_path(cfg.get('path'))} sha256 {cfg['sha256']}"])
            for key in ("models", "datasets"):
                for name, info in (prov.get(key) or {}).items():
                    if isinstance(info, dict):
                        src = info.get("source")
                        src = ", ".join(f"{a}={b}" for a, b in src.items() if b) if isinstance(src, dict) else src
                        rows.append([f"{key}.{name}", f"{src or public_path(info.get('path'))}; sha256 {info.get('sha256') or '—'}"])
            for name, c in ((prov.get("docker") or {}).get("containers") or {}).items():
                if isinstance(c, dict):
                    rows.append([f"image.{c.get('service') or name}", f"{c.get('image')} {' '.join(c.get('repo_digests') or []) or c.get('image_id') or ''}"])
            gpu = prov.get("gpu")
            if gpu:
                rows.append(["gpu", str(gpu)[:200]])
            self.w(table(["Item", "Value"], rows))
        else:
            self.w("No manifest.json in this run (imported results carry no provenance beyond their files).\n")
        inp = self.s.get("inputs", {})
        self.w(table(["Input file", "sha256 (prefix)", "Records", "Malformed lines"],
                     [[public_path(f.get("path")), (f.get("sha256") or "")[:16], f.get("records", "—"), f.get("malformed_lines",
                                                                                                              "—")] for f in inp.get("files", [])]))


def render(summary: dict[str, Any], figures: dict[str, str]) -> str:
    return Report(summary, figures).render()
