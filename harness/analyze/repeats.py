"""Statistics for benchmarks sampled k > 1 times per item (samples_per_item; issue 11).

- avg@k: mean over items of each item's share of correct samples (the field's headline for AIME).
- pass@j: Chen et al.'s unbiased estimator per item, averaged (stats.pass_at_k).
- maj@k: per item, the most frequent extracted answer (lm-eval's own AIME extraction) is the
  model's answer; it is right when the samples giving that answer were scored right.
- the paired block for k > 1 keeps the k = 1 shape: the four cells on each model's per-item
  majority of correct samples (right when more than half of its samples are), `delta_pp` the
  avg@k difference, the sign-flip permutation test on per-item mean differences, its bootstrap
  interval and Connor power on the same differences.
- variance: one-way random-effects (ANOVA) split of the variance of avg@k into a between-item part
  (which only more items shrink) and a within-item part (sampling noise, which more samples per
  item shrink), and the k that would halve the interval of the paired difference, if any k would.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.analyze import paired as pz
from harness.analyze import stats

Reps = Mapping[int, Mapping[str, bool]]  # repeat -> item -> correct


def per_item(reps: Reps) -> dict[str, list[int]]:
    """item -> its 0/1 outcomes, in repeat order."""
    out: dict[str, list[int]] = {}
    for rep in sorted(reps):
        for item, ok in reps[rep].items():
            out.setdefault(item, []).append(int(bool(ok)))
    return out


def max_k(reps: Reps) -> int:
    return max((len(v) for v in per_item(reps).values()), default=0)


def score_block(reps: Reps) -> dict[str, Any]:
    """A model's `scores` entry when k > 1: avg@k, counted in samples, with an item-bootstrap interval.

    `correct`/`n` count samples so that "correct/n" reads as avg@k; `items` and `k` say what they
    are made of. The interval resamples items (a Wilson interval over samples would treat the k
    samples of one item as independent, which they are not).
    """
    items = per_item(reps)
    means = np.array([sum(v) / len(v) for v in items.values()], dtype=float)
    correct = sum(sum(v) for v in items.values())
    n = sum(len(v) for v in items.values())
    ci = pz.delta_ci95(means)
    return {"correct": int(correct), "n": int(n), "accuracy": round(float(means.mean()), 4) if means.size else None,
            "ci95": None if ci is None else [round(ci[0] / 100, 4), round(ci[1] / 100, 4)],
            "items": len(items), "k": max_k(reps), "ci_method": "percentile bootstrap over items"}


def paired_block(cand: Reps, base: Reps) -> dict[str, Any]:
    """The k > 1 `paired` block (same keys as k = 1, test = sign-flip permutation on item means)."""
    common, mc, mb, d = pz.item_differences(cand, base)
    n = len(common)
    if n == 0:
        return {"both": 0, "only_candidate": 0, "only_baseline": 0, "neither": 0, "n": 0, "delta_pp": None,
                "test": None, "p_value": None, "stars": "n/a", "cohens_h": None, "effect": None}
    vc, vb = mc > 0.5, mb > 0.5  # majority of correct samples per item
    test = pz.sign_flip_test(d)
    pc, pb = float(mc.mean()), float(mb.mean())
    h = stats.cohens_h(pc, pb)
    return {"both": int(np.sum(vc & vb)), "only_candidate": int(np.sum(vc & ~vb)),
            "only_baseline": int(np.sum(~vc & vb)), "neither": int(np.sum(~vc & ~vb)), "n": n,
            "delta_pp": round(100 * (pc - pb), 2), "test": test["test"], "p_value": test["p_value"],
            "stars": stats.stars(test["p_value"]), "cohens_h": round(h, 3), "effect": stats.h_label(h),
            "cells": "majority of correct samples per item (right when more than half of its k samples are)",
            "permutation": {k: test[k] for k in ("nonzero_items", "flips", "seed")},
            "delta_ci95": pz.delta_ci95(d), **pz.power_block(d)}


def pass_at(reps: Reps) -> dict[str, float]:
    """Unbiased pass@j for j = 1, 2, 4, ... up to the smallest per-item sample count, and that count."""
    items = per_item(reps)
    if not items:
        return {}
    kmin = min(len(v) for v in items.values())
    js = sorted({1, kmin} | {2 ** e for e in range(1, int(math.log2(kmin)) + 1) if 2 ** e <= kmin})
    return {f"pass@{j}": round(float(np.mean([stats.pass_at_k(len(v), sum(v), j) for v in items.values()])), 4) for j in js}


def majority_vote(answers: Mapping[int, Mapping[str, tuple[str | None, bool]]]) -> dict[str, Any]:
    """maj@k from per-repeat (extracted answer, correct) pairs.

    Votes go to the normalized extracted answer; samples without one do not vote; an item without
    any vote is wrong. Ties go to the answer given first in repeat order (recorded in `ties`).
    """
    per: dict[str, list[tuple[str | None, bool]]] = {}
    for rep in sorted(answers):
        for item, pair in answers[rep].items():
            per.setdefault(item, []).append(pair)
    correct = ties = 0
    for votes in per.values():
        counts: dict[str, list[Any]] = {}  # answer -> [count, first position, correct]
        for pos, (ans, ok) in enumerate(votes):
            if ans is None or ans == "":
                continue
            c = counts.setdefault(ans, [0, pos, ok])
            c[0] += 1
        if not counts:
            continue
        best = max(counts.values(), key=lambda c: (c[0], -c[1]))
        ties += sum(1 for c in counts.values() if c[0] == best[0]) > 1
        correct += bool(best[2])
    n = len(per)
    return {"k": max((len(v) for v in per.values()), default=0), "correct": correct, "n": n,
            "accuracy": round(correct / n, 4) if n else None, "items_with_tied_vote": ties}


def variance_split(reps: Reps) -> dict[str, Any]:
    """Between- and within-item variance of one model's outcomes (one-way random effects, ANOVA)."""
    items = per_item(reps)
    return _split([np.array(v, dtype=float) for v in items.values()])


def _within(groups: list[np.ndarray]) -> float:
    """Pooled within-item variance of single samples (unbiased, ddof 1 per item)."""
    ss = sum(float(np.sum((g - g.mean()) ** 2)) for g in groups)
    dof = sum(len(g) - 1 for g in groups)
    return ss / dof if dof else float("nan")


def _split(groups: list[np.ndarray]) -> dict[str, Any]:
    n = len(groups)
    ks = [len(g) for g in groups]
    if n < 2 or min(ks) < 2:
        return {"available": False, "reason": "needs at least 2 items with 2 or more samples each"}
    k = float(np.mean(ks))
    within = _within(groups)
    total = float(np.var([g.mean() for g in groups], ddof=1))  # variance of the observed item means
    between = max(0.0, total - within / k)
    per_k = between + within / k
    return {"available": True, "items": n, "k": round(k, 2), "between_item": round(between, 5),
            "within_item": round(within, 5), "variance_of_item_means": round(total, 5),
            "share_within": round((within / k) / per_k, 4) if per_k else None}


def difference_split(cand: Reps, base: Reps) -> dict[str, Any]:
    """The variance of the per-item paired difference, split, and the k that halves its interval.

    Var(mean d) = (B + W/k) / n with W = W_candidate + W_baseline (single-sample within-item
    variances; the two models sample independently) and B the between-item variance of the true
    differences. Halving the interval at fixed n needs B + W/k' = (B + W/k) / 4; when B alone is
    at least that, no k does and only more items help (4x the items always halves it).
    """
    ic, ib = per_item(cand), per_item(base)
    common = sorted(set(ic) & set(ib))
    gc = [np.array(ic[i], dtype=float) for i in common]
    gb = [np.array(ib[i], dtype=float) for i in common]
    if len(common) < 2 or min(len(g) for g in gc + gb) < 2:
        return {"available": False, "reason": "needs at least 2 paired items with 2 or more samples per model"}
    kc, kb = float(np.mean([len(g) for g in gc])), float(np.mean([len(g) for g in gb]))
    wc, wb = _within(gc), _within(gb)
    d = np.array([c.mean() - b.mean() for c, b in zip(gc, gb, strict=True)])
    total = float(np.var(d, ddof=1))
    within_now = wc / kc + wb / kb
    between = max(0.0, total - within_now)
    k_now = (kc + kb) / 2
    w1 = wc + wb  # within-item variance of a difference of single samples (k = 1 per model)
    per_k = between + within_now
    out: dict[str, Any] = {"available": True, "items": len(common), "k": round(k_now, 2),
                           "between_item": round(between, 5), "within_item_single_sample": round(w1, 5),
                           "variance_of_item_differences": round(total, 5),
                           "share_within": round(within_now / per_k, 4) if per_k else None,
                           "items_to_halve": 4 * len(common)}
    target = per_k / 4 - between
    if per_k == 0:
        out.update(k_to_halve=None, k_to_halve_reason="no variance: every item's difference is the same")
    elif target <= 0:
        out.update(k_to_halve=None, k_to_halve_reason=(
            "between-item variance alone is more than a quarter of the current variance: no number of samples "
            f"per item halves the interval; {4 * len(common)} items would"))
    else:
        out["k_to_halve"] = int(math.ceil(w1 / target))
    return out


# -- maj@k inputs: lm-eval's extracted AIME answers ---------------------------------------------
def extract_aime_answer(text: str) -> str | None:
    """The answer lm-eval's AIME scorer compares (lm_eval.tasks.aime.utils.process_results), normalized.

    Same steps as that function: the text between the first and last `$`, else the whole text,
    replaced by the last \\boxed{} content when there is one; then lm-eval's `strip_string`.
    """
    from lm_eval.tasks.aime.utils import last_boxed_only_string, remove_boxed, strip_string

    idx = [i for i, ch in enumerate(text) if ch == "$"]
    answer = text if len(idx) <= 1 else text[idx[0] + 1: idx[-1]]
    boxed = last_boxed_only_string(text)
    if boxed is not None:
        try:
            content = remove_boxed(boxed)
            if content is not None:
                answer = content
        except (AssertionError, IndexError):
            pass
    try:
        answer = strip_string(answer)
    except Exception:  # noqa: S110 - lm-eval's is_equiv falls back to the raw string the same way
        pass
    return answer or None


def answer_extractor(bench: str) -> Any:
    """The benchmark's registry `answer_extraction`: `aime_integer` (above), or a module:function(text) -> answer."""
    from harness.benchmarks import resolve, spec

    name = spec(bench).answer_extraction
    if name is None:
        return None
    return extract_aime_answer if name == "aime_integer" else resolve(name)


def extracted_answers(run_dir: Path, model: str, bench: str, repeats: list[dict[str, Any]], proto: str,
                 outcomes: Mapping[int, Mapping[str, bool]]) -> dict[int, dict[str, tuple[str | None, bool]]]:
    """repeat -> item -> (extracted answer, correct) for a benchmark with an answer extraction, from the samples files.

    The loader records which samples file each repeat came from (`BenchData.repeats[*].samples`);
    the text is the scored text of `proto`: the record of the `reasoning_stripped` filter when the
    run has one, else the raw response (stripped of its reasoning for that protocol).
    """
    from harness.analyze.load import _item_id, _raw_text
    from harness.io import iter_jsonl
    from harness.lm_eval_files import as_obj
    from harness.reasoning import strip_reasoning

    extract = answer_extractor(bench)
    out: dict[int, dict[str, tuple[str | None, bool]]] = {}
    for rep in repeats:
        r, name = rep.get("repeat"), rep.get("samples")
        path = run_dir / "raw" / model / bench / str(name)
        if name is None or not isinstance(r, int) or not path.is_file() or r not in outcomes:
            continue
        texts: dict[str, dict[str, str]] = {}
        for rec in iter_jsonl(path):
            doc = as_obj(rec.get("doc"))
            if not isinstance(doc, dict):
                continue
            item = _item_id(bench, doc, rec.get("doc_id"))
            filt = str(rec.get("filter", "none"))
            scored = as_obj(rec.get("filtered_resps"))
            scored = scored[0] if isinstance(scored, list) and scored else scored
            texts.setdefault(item, {}).setdefault(filt, scored if isinstance(scored, str) else _raw_text(rec))
        for item, ok in outcomes[r].items():
            t = texts.get(item, {})
            if proto == "reasoning_stripped":
                text = t.get("reasoning_stripped")
                if text is None:
                    text = strip_reasoning(t.get("none", ""))
            else:
                text = t.get("none", "")
            out.setdefault(r, {})[item] = (extract(text or ""), bool(ok))
    return out


def _maj(rd: Any, model: str, bench: str, proto: str) -> dict[str, Any]:
    """maj@k for one benchmark, or for a group's pooled row (items prefixed by benchmark)."""
    from harness.benchmarks import registry

    years = tuple(registry().members(bench))
    answers: dict[int, dict[str, tuple[str | None, bool]]] = {}
    for y in years:
        bd = rd.benches.get((model, y))
        if bd is None:
            return {"available": False, "reason": f"{model} has no {y} results"}
        got = extracted_answers(rd.run_dir, model, y, bd.repeats, proto, bd.outcomes.get(proto, {}))
        for rep, items in got.items():
            answers.setdefault(rep, {}).update({(f"{y}:{i}" if len(years) > 1 else i): v for i, v in items.items()})
    return majority_vote(answers)


def repeat_stats(per: Mapping[str, Any], cand: str, base: str, proto: str, bench: str, rd: Any) -> dict[str, Any]:
    """`benchmarks.<b>.repeats`: avg@k, pass@j, maj@k per model and the variance split, for k > 1."""
    from harness.benchmarks import registry

    out: dict[str, Any] = {"protocol": proto, "models": {}}
    for m, bd in per.items():
        reps = bd.outcomes.get(proto, {})
        items = per_item(reps)
        entry: dict[str, Any] = {"k": max_k(reps), "items": len(items),
                                 "avg_at_k": round(float(np.mean([sum(v) / len(v) for v in items.values()])), 4) if items else None,
                                 "pass_at": pass_at(reps), "variance": variance_split(reps)}
        if all(answer_extractor(b) is not None for b in registry().members(bench)):
            try:
                entry["maj_at_k"] = _maj(rd, m, bench, proto)
            except ImportError:
                entry["maj_at_k"] = {"available": False, "reason": "lm-eval is not installed (its answer extraction)"}
        else:
            entry["maj_at_k"] = {"available": False, "reason": f"{bench} has no single extracted answer to vote on"}
        out["models"][m] = entry
    if cand in per and base in per:
        out["difference"] = difference_split(per[cand].outcomes.get(proto, {}), per[base].outcomes.get(proto, {}))
    return out
