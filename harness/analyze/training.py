"""Training-set composition and a leakage check of training prompts against benchmark items.

Schema (TeichAI): one row per example, {"messages": [{"role": "system"|"user"|"assistant",
"content": ...}]}; the assistant content holds `<think>…</think>` then the answer.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

from harness.io import JsonlReadStats, iter_jsonl, sha256_file
from harness.reasoning import split_reasoning

BUCKETS = ((1, 500, "1–500"), (501, 2000, "501–2,000"), (2001, 5000, "2,001–5,000"),
           (5001, 20000, "5,001–20,000"), (20001, None, ">20,000"))
NGRAM = 8  # word n-gram length for the overlap check
NGRAM_THRESHOLD = 0.5  # share of a benchmark item's n-grams found in one training prompt
MIN_SUBSTRING = 40  # characters: shorter normalized texts are not tested for containment


def training_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".jsonl", ".json", ".parquet") and p.is_file())
    return []


def load_examples(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows as {prompt, response, system}; plus the inputs read (path, sha256, malformed lines)."""
    rows: list[dict[str, Any]] = []
    inputs: list[dict[str, Any]] = []
    for f in training_files(path):
        records: list[dict[str, Any]]
        entry: dict[str, Any] = {"path": str(f), "sha256": sha256_file(f)}
        if f.suffix == ".parquet":
            import pandas as pd

            records = pd.read_parquet(f).to_dict("records")
        elif f.suffix == ".json":
            try:
                data = json.loads(f.read_text(encoding="utf-8"))
            except ValueError:
                entry["error"] = "not JSON"
                inputs.append(entry)
                continue
            records = data if isinstance(data, list) else []
        else:
            stats = JsonlReadStats(str(f))
            records = list(iter_jsonl(f, stats))
            entry.update(records=stats.records, malformed_lines=stats.skipped)
        for rec in records:
            msgs = rec.get("messages")
            if msgs is None or not len(msgs):
                continue
            msgs = list(msgs)
            user = " \n".join(str(m.get("content") or "") for m in msgs if m.get("role") == "user")
            asst = " \n".join(str(m.get("content") or "") for m in msgs if m.get("role") == "assistant")
            rows.append({"prompt": user, "response": asst})
        inputs.append(entry)
    return rows, inputs


def _stats(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"mean": None, "median": None}
    return {"mean": round(statistics.fmean(values), 1), "median": round(statistics.median(values), 1)}


def composition(rows: list[dict[str, Any]], topic_rules: Any) -> dict[str, Any]:
    n = len(rows)
    reasoning = []
    with_reasoning = 0
    for r in rows:
        sp = split_reasoning(r["response"])
        r["reasoning_chars"] = len(sp.reasoning)
        with_reasoning += sp.has_reasoning
        reasoning.append(len(sp.reasoning))
    topics: dict[str, int] = {}
    for r in rows:
        for lab in topic_rules.label(r["prompt"]):
            topics[lab] = topics.get(lab, 0) + 1
    buckets = []
    for lo, hi, name in BUCKETS:
        c = sum(1 for v in reasoning if v >= lo and (hi is None or v <= hi))
        buckets.append({"bucket": name, "count": c, "share": round(c / n, 4) if n else None})
    none = sum(1 for v in reasoning if v == 0)
    return {
        "n": n,
        "with_reasoning": with_reasoning,
        "share_with_reasoning": round(with_reasoning / n, 4) if n else None,
        "prompt_chars": _stats([len(r["prompt"]) for r in rows]),
        "response_chars": _stats([len(r["response"]) for r in rows]),
        "reasoning_chars": _stats([v for v in reasoning]),
        "topics": [{"topic": k, "count": v, "share": round(v / n, 4) if n else None}
                   for k, v in sorted(topics.items(), key=lambda kv: (-kv[1], kv[0]))],
        "topics_multilabel": True,
        "reasoning_buckets": buckets,
        "no_reasoning": none,
    }


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", (text or "").lower())).strip()


def _ngrams(words: list[str], n: int = NGRAM) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def leakage(rows: list[dict[str, Any]], items: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Check every training prompt against every benchmark item (bench -> item id -> text).

    exact: normalized texts equal; substring: one normalized text contains the other (both at least
    MIN_SUBSTRING chars); ngram: at least NGRAM_THRESHOLD of the item's word 8-grams occur in the prompt.
    """
    prompts = [_norm(r["prompt"]) for r in rows]
    prompt_grams = [_ngrams(p.split()) for p in prompts]
    index: dict[tuple[str, ...], list[int]] = {}
    for i, grams in enumerate(prompt_grams):
        for g in grams:
            index.setdefault(g, []).append(i)
    hits: list[dict[str, Any]] = []
    checked = 0
    for bench, bitems in items.items():
        for item_id, text in bitems.items():
            t = _norm(text)
            if not t:
                continue
            checked += 1
            grams = _ngrams(t.split())
            counts: dict[int, int] = {}
            for g in grams:
                for i in index.get(g, ()):
                    counts[i] = counts.get(i, 0) + 1
            cands = set(counts)
            for i, p in enumerate(prompts):
                kind = None
                score = 0.0
                if p == t:
                    kind, score = "exact", 1.0
                elif len(t) >= MIN_SUBSTRING and len(p) >= MIN_SUBSTRING and (t in p or p in t):
                    kind, score = "substring", 1.0
                elif i in cands and grams:
                    share = counts[i] / len(grams)
                    if share >= NGRAM_THRESHOLD:
                        kind, score = "ngram", round(share, 3)
                if kind:
                    hits.append({"benchmark": bench, "item": item_id, "training_index": i, "kind": kind,
                                 "score": score, "training_prompt_head": rows[i]["prompt"][:80]})
    by_kind = {k: sum(1 for h in hits if h["kind"] == k) for k in ("exact", "substring", "ngram")}
    return {"method": {"normalize": "lowercase, punctuation to spaces, whitespace collapsed",
                       "ngram": NGRAM, "ngram_threshold": NGRAM_THRESHOLD, "min_substring_chars": MIN_SUBSTRING},
            "training_prompts": len(prompts), "benchmark_items_checked": checked,
            "hits_by_kind": by_kind, "hits": hits}
