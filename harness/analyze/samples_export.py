"""analysis/samples.jsonl: every generation's text and scores, one record per model x benchmark x item x repeat.

`load.py` keeps only text lengths in memory; the report's sample explorer needs the texts themselves
(prompt, gold, reasoning, answer) beside the scores under both protocols and the proxy record's
metadata. This module re-reads the same raw files and proxy logs, joins them with the same keys
`load.py` derived (prompt key or request hash, in `BenchData.keys`), and writes one documented file
the report stage reads (results/README.md describes its fields). Nothing here computes a statistic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.analyze.categories import Taxonomy
from harness.analyze.load import PROTOCOLS, BenchData, RunData, _item_id
from harness.benchmarks import spec
from harness.hashing import prompt_key
from harness.io import atomic_write_text, iter_jsonl
from harness.lm_eval_files import as_obj
from harness.reasoning import split_reasoning

SAMPLES_SCHEMA_VERSION = 1
FILE_NAME = "samples.jsonl"


def _messages_text(messages: Any) -> str:
    """The chat as one readable text: a lone user message as is, else each turn under its role."""
    if isinstance(messages, str):
        return messages
    if not isinstance(messages, list):
        return ""
    turns: list[tuple[str, str]] = []
    for m in messages:
        if isinstance(m, dict):
            c = m.get("content")
            turns.append((str(m.get("role", "")), c if isinstance(c, str) else json.dumps(c, ensure_ascii=False)))
    if len(turns) == 1 and turns[0][0] == "user":
        return turns[0][1]
    return "\n\n".join(f"[{r}]\n{c}" for r, c in turns)


def _lm_eval_messages(rec: dict[str, Any]) -> Any:
    try:
        return json.loads(as_obj(as_obj(rec.get("arguments"))["gen_args_0"]["arg_0"])[0])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _raw_text(rec: dict[str, Any]) -> str:
    resps = as_obj(rec.get("resps"))
    while isinstance(resps, list) and resps:
        resps = resps[0]
    return resps if isinstance(resps, str) else ""


def _gold(bench: str, doc: dict[str, Any], target: Any) -> str | None:
    """What a correct answer is, for the reader: the answer field, lm-eval's target, or IFEval's instructions."""
    if spec(bench).per_instruction:
        ids = list(doc.get("instruction_id_list") or [])
        kwargs = as_obj(doc.get("kwargs")) or []
        lines = []
        for i, iid in enumerate(ids):
            kw = kwargs[i] if isinstance(kwargs, list) and i < len(kwargs) else None
            kw = {k: v for k, v in kw.items() if v is not None} if isinstance(kw, dict) else {}
            lines.append(f"{iid} {json.dumps(kw, ensure_ascii=False)}" if kw else str(iid))
        return "\n".join(lines) or None
    field = spec(bench).dataset.answer_field
    ans = doc.get(field) if field else None
    if ans is None:
        ans = target
    return None if ans is None else str(ans)


def _categories(bench: str, tax: Taxonomy, prompt: str, doc: dict[str, Any]) -> list[str]:
    """The item's categories from the benchmark's registry `categories` (as summary.categories has them)."""
    cats = spec(bench).categories
    return tax.item_categories(cats, prompt, doc.get("instruction_id_list") or [],
                               doc.get(cats.field) if cats and cats.field else None)


def _text_fields(raw: str) -> dict[str, Any]:
    sp = split_reasoning(raw)
    return {"reasoning": sp.reasoning, "answer": sp.answer, "has_reasoning": sp.has_reasoning,
            "think_closed": sp.think_closed}


def _lm_eval_texts(rd: RunData, bd: BenchData) -> dict[tuple[int, str], dict[str, Any]]:
    """(repeat, item) -> prompt, gold, texts, read from the samples files in load.py's repeat order."""
    bdir = rd.run_dir / "raw" / bd.model / bd.bench
    out: dict[tuple[int, str], dict[str, Any]] = {}
    for rep in bd.repeats:
        path = bdir / str(rep.get("samples", ""))
        if not path.is_file():
            continue
        for rec in iter_jsonl(path):
            doc = as_obj(rec.get("doc"))
            if not isinstance(doc, dict):
                continue
            item = _item_id(bd.bench, doc, rec.get("doc_id"))
            key = (rep["repeat"], item)
            if key in out:  # the same generation appears once per filter; the first is kept (as load.py does)
                continue
            msgs = _lm_eval_messages(rec)
            text_field = spec(bd.bench).dataset.text_field
            prompt = _messages_text(msgs) if msgs is not None else str((doc.get(text_field) if text_field else "") or "")
            out[key] = {"prompt": prompt, "gold": _gold(bd.bench, doc, rec.get("target")), "doc": doc,
                        "seed": rep.get("seed"), **_text_fields(_raw_text(rec))}
    return out


def _evalplus_texts(rd: RunData, bd: BenchData, he_prompts: dict[str, dict[str, Any]]) -> dict[tuple[int, str], dict[str, Any]]:
    path = rd.run_dir / "raw" / bd.model / bd.bench / "generations.jsonl"
    out: dict[tuple[int, str], dict[str, Any]] = {}
    if not path.is_file():
        return out
    for rec in iter_jsonl(path):
        tid = rec.get("task_id")
        if tid is None:
            continue
        key = (int(rec.get("repeat") or 0), str(tid))
        if rec.get("error") and key in out and not out[key].get("error"):
            continue  # a later failed retry never hides a finished generation
        if rec.get("reasoning") is None and rec.get("answer") is None:
            texts = _text_fields(rec.get("content") or "")
        else:
            texts = {"reasoning": rec.get("reasoning") or "", "answer": rec.get("answer") or "",
                     "has_reasoning": bool(rec.get("reasoning")), "think_closed": bool(rec.get("think_closed", True))}
        out[key] = {"prompt": he_prompts.get(str(tid), {}).get("prompt", ""), "gold": None, "doc": {},
                    "seed": rec.get("seed"), "request_hash": rec.get("request_hash"),
                    "finish_reason": rec.get("finish_reason"), "usage": rec.get("usage"),
                    "latency_s": rec.get("latency_s"), "error": rec.get("error"), "source": "generations", **texts}
    return out


def _proxy_index(rd: RunData, model: str, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """Join key -> the fields of the last successful proxy record with that key (load.py's rule)."""
    path = rd.run_dir / "proxy" / f"{model}.jsonl"
    out: dict[str, dict[str, Any]] = {}
    if not path.is_file() or not wanted:
        return out
    for rec in iter_jsonl(path):
        if rec.get("error") or rec.get("status") not in (None, 200):
            continue
        req: dict[str, Any] = rec["request"] if isinstance(rec.get("request"), dict) else {}
        keys = []
        if "messages" in req:
            keys.append(prompt_key(req["messages"], req.get("seed")))
        if rec.get("request_hash"):
            keys.append(rec["request_hash"])
        keys = [k for k in keys if k in wanted]
        if not keys:
            continue
        if rec.get("reasoning") is None and rec.get("answer") is None:
            texts = _text_fields(rec.get("content") or "")
        else:
            texts = {"reasoning": rec.get("reasoning") or "", "answer": rec.get("answer") or "",
                     "has_reasoning": bool(rec.get("reasoning")), "think_closed": bool(rec.get("think_closed", True))}
        fields = {"prompt": _messages_text(req.get("messages")) if "messages" in req else None,
                  "request_hash": rec.get("request_hash"), "finish_reason": rec.get("finish_reason"),
                  "usage": rec.get("usage"), "latency_s": rec.get("latency_s"), "cache_hit": rec.get("cache_hit"),
                  "proxy_id": rec.get("id"), "source": "proxy", **texts}
        for k in keys:
            out[k] = fields
    return out


def sample_records(rd: RunData, tax: Taxonomy, he_prompts: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per model x benchmark x item x repeat that has a score under some protocol."""
    records: list[dict[str, Any]] = []
    models = sorted({m for m, _ in rd.benches})
    for model in models:
        benches = {b: bd for (m, b), bd in rd.benches.items() if m == model}
        wanted = {key for bd in benches.values() for keys in bd.keys.values() for _, key in keys.values()}
        proxy = _proxy_index(rd, model, wanted)
        for bench in sorted(benches):
            bd = benches[bench]
            texts = (_lm_eval_texts(rd, bd) if spec(bench).runner == "lm_eval" else _evalplus_texts(rd, bd, he_prompts))
            reps = sorted({r for p in bd.outcomes.values() for r in p})
            meta = rd.items.get(bench, {})
            for rep in reps:
                items = sorted({i for p in bd.outcomes.values() for i in p.get(rep, {})},
                               key=lambda i: (meta.get(i, {}).get("doc_id") if meta.get(i, {}).get("doc_id") is not None else 10**9, i))
                for item in items:
                    t = dict(texts.get((rep, item)) or {"prompt": "", "gold": None, "doc": {}, "reasoning": "", "answer": "",
                                                        "has_reasoning": False, "think_closed": True, "source": "missing"})
                    key = bd.keys.get(rep, {}).get(item)
                    p = proxy.get(key[1]) if key else None
                    if p is not None:  # the proxy record is what the model actually returned
                        t.update({k: v for k, v in p.items() if v is not None or k not in t})
                    doc = t.pop("doc", {}) or {}
                    if spec(bench).dataset.answer_field and not t.get("gold"):
                        t["gold"] = meta.get(item, {}).get("answer")
                    if not t.get("prompt"):
                        t["prompt"] = meta.get(item, {}).get("text") or he_prompts.get(item, {}).get("prompt", "")
                    usage = t.pop("usage", None) or {}
                    g = bd.gens.get(rep, {}).get(item)
                    rec = {
                        "schema_version": SAMPLES_SCHEMA_VERSION, "model": model, "benchmark": bench, "item": item,
                        "repeat": rep, "seed": t.get("seed"),
                        "prompt": t.get("prompt") or "", "gold": t.get("gold"),
                        "reasoning": t.get("reasoning") or "", "answer": t.get("answer") or "",
                        "has_reasoning": bool(t.get("has_reasoning")), "think_closed": bool(t.get("think_closed", True)),
                        "scores": {proto: bd.outcomes.get(proto, {}).get(rep, {}).get(item) for proto in PROTOCOLS},
                        "finish_reason": t.get("finish_reason") or (g.finish_reason if g else None),
                        "prompt_tokens": usage.get("prompt_tokens"),
                        "completion_tokens": usage.get("completion_tokens") or (g.completion_tokens if g else None),
                        "latency_s": t.get("latency_s") if t.get("latency_s") is not None else (g.latency_s if g else None),
                        "request_hash": t.get("request_hash"), "cache_hit": t.get("cache_hit"),
                        "source": t.get("source", "sample"),
                        "categories": _categories(bench, tax, meta.get(item, {}).get("text") or he_prompts.get(item, {}).get("prompt")
                                                 or t.get("prompt") or "", doc),
                    }
                    records.append(rec)
    return records


def write_samples(out_dir: Path, rd: RunData, tax: Taxonomy, he_prompts: dict[str, dict[str, Any]]) -> Path:
    """Write analysis/samples.jsonl atomically; returns its path."""
    path = out_dir / FILE_NAME
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in sample_records(rd, tax, he_prompts)]
    atomic_write_text(path, "".join(lines))
    return path
